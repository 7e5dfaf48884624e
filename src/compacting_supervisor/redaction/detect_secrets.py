"""A `Redactor` backed by Yelp's detect-secrets (``pip install detect-secrets``).

detect-secrets scans line by line with its default plugins (keywords, high-entropy
strings, some twenty vendors' key formats) and filters. Each secret it reports is replaced
by ``[REDACTED:<its type>]`` wherever it occurs in the text. Use it on top of the built-in
rules:

    from compacting_supervisor import HistoryManager, redact_with
    from compacting_supervisor.redaction.detect_secrets import DetectSecretsRedactor

    history = HistoryManager(model=model, redact=redact_with(DetectSecretsRedactor()))

detect-secrets' plugins scan each line once, but some of them are not linear in the
length of a line; the built-in rules are (see ``benchmarks/linear_time.py``).
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
            from detect_secrets.core.scan import scan_line
            from detect_secrets.settings import default_settings
        except ImportError as exc:
            msg = (
                "DetectSecretsRedactor needs detect-secrets: `pip install detect-secrets` "
                "(or the package's `redaction` extra)."
            )
            raise ImportError(msg) from exc
        self.min_length = min_length
        self._scan_line: Any = scan_line
        self._settings: Any = default_settings

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret detect-secrets reports replaced."""
        found: dict[str, str] = {}
        with self._settings():
            for line in text.splitlines():
                for secret in self._scan_line(line):
                    value = secret.secret_value
                    if value and len(value) >= self.min_length:
                        found[value] = _SLUG.sub("-", str(secret.type).lower()).strip("-")
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, f"[REDACTED:{found[value]}]")
        return text
