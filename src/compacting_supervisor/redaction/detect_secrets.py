"""A `Redactor` backed by Yelp's detect-secrets (``pip install detect-secrets``).

detect-secrets scans line by line with its default plugins (keywords, high-entropy
strings, some twenty vendors' key formats) and filters. Each secret it reports is replaced
by ``[REDACTED:<its type>]`` wherever it occurs in the text. Use it on top of the built-in
rules:

    from compacting_supervisor import HistoryManager, redact_with
    from compacting_supervisor.redaction.detect_secrets import DetectSecretsRedactor

    history = HistoryManager(model=model, redact=redact_with(DetectSecretsRedactor()))

It scans the lines as detect-secrets scans a file's (its filters included), through
``detect_secrets.core.scan``'s line-based scanner, which detect-secrets 1.5 does not
export: hence the ``detect-secrets>=1.5,<2`` pin of the ``redaction`` extra.
detect-secrets' plugins are not all linear in the length of a line; the built-in rules
are (see ``benchmarks/linear_time.py``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DetectSecretsRedactor"]

_SLUG = re.compile(r"[^a-z0-9]+")


class DetectSecretsRedactor:
    """Redact what detect-secrets' default plugins find, one line at a time.

    Args:
        min_length: Secrets shorter than this are not replaced (a plugin that reports a
            fragment, such as a key's prefix, would otherwise blank that fragment out
            wherever it occurs).

    Raises:
        ImportError: detect-secrets is not installed (``pip install detect-secrets``).
        ValueError: ``min_length`` is below 1.

    Example:
        >>> redactor = DetectSecretsRedactor()  # doctest: +SKIP
        >>> redactor.redact('aws_key = "AKIAIOSFODNN7EXAMPLE"')  # doctest: +SKIP
        'aws_key = "[REDACTED:aws-access-key]"'
    """

    def __init__(self, *, min_length: int = 6) -> None:
        if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
            msg = f"`min_length` must be a whole number of at least 1, got {min_length!r}."
            raise ValueError(msg)
        try:
            from detect_secrets.core import scan
            from detect_secrets.settings import default_settings, get_settings
        except ImportError as exc:
            msg = (
                "DetectSecretsRedactor needs detect-secrets: `pip install detect-secrets` "
                "(or the package's `redaction` extra)."
            )
            raise ImportError(msg) from exc
        self.min_length = min_length
        self._scan: Any = scan
        self._settings: Any = default_settings
        self._get_settings: Any = get_settings

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret detect-secrets reports replaced."""
        found: dict[str, str] = {}
        lines = list(enumerate(text.splitlines(), start=1))
        with self._settings():
            # Scanned as the lines of a file, with detect-secrets' filters (its ad-hoc
            # `scan_line` reports every word as a candidate); the file does not exist.
            self._get_settings().disable_filters("detect_secrets.filters.common.is_invalid_file")
            self._scan.get_filters.cache_clear()
            for secret in self._scan._process_line_based_plugins(lines, filename="message.txt"):
                value = secret.secret_value
                if value and len(value) >= self.min_length:
                    found[value] = _SLUG.sub("-", str(secret.type).lower()).strip("-")
            self._scan.get_filters.cache_clear()
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, f"[REDACTED:{found[value]}]")
        return text
