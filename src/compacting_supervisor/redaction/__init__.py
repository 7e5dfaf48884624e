r"""Keep secrets out of summaries: the redaction hook, its rules, and a way to plug in more.

`HistoryManager` passes every message through its ``redact`` hook before the summariser
sees it (the kept messages stay verbatim in the thread). The default, `redact_secrets`,
replaces secrets with ``[REDACTED:<kind>]`` wherever a message carries text (content and
its blocks, tool-call arguments, raw ``additional_kwargs``, invalid tool calls, a tool
message's artifact):

- known key formats: OpenAI, Anthropic, AWS, GitHub, Slack, Google and Stripe keys, JSON
  web tokens, bearer and basic credentials, passwords in URLs and ``curl -u``, PEM
  private keys;
- any value under a secret-bearing key (``password``, ``db_password``, ``apiKey``,
  ``X-Api-Key``, ``client_secret``, ``GITHUB_TOKEN``, ``Authorization``, ``Cookie`` ...):
  in tool-call arguments, JSON and YAML, ``key=value`` and ``key: value`` lines, HTTP
  headers and XML elements, whatever the value looks like;
- after decoding: JSON read as JSON (``\/``, ``\uXXXX`` escapes), escaped and
  percent-encoded text, base64 ``user:password`` after ``Basic``.

Personal data (e-mail addresses, card numbers, IBANs, phone numbers) is kept unless asked
for: `redact_personal_data`, or ``redact_with(personal_data=True)``. Any other engine
(detect-secrets, Presidio, your own) plugs in as a `Redactor`, a ``redact(text) -> text``
object, through `redact_with`; ``compacting_supervisor.redaction.detect_secrets`` has an
adapter for detect-secrets. `HighEntropyRedactor` also hides long random tokens with no
key and no known format (``redact_with(HighEntropyRedactor())``); it is not on by default
because random values that are not secrets (CSRF tokens, signatures, public keys, encoded
blobs) look the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage

from compacting_supervisor.errors import CompactionError
from compacting_supervisor.redaction._keys import high_entropy_tokens
from compacting_supervisor.redaction._messages import redact_message
from compacting_supervisor.redaction._pii import scan_personal_data
from compacting_supervisor.redaction._rules import PATTERNS as _PATTERNS
from compacting_supervisor.redaction._rules import may_hold_secret as _may_hold_secret
from compacting_supervisor.redaction._rules import scan_secrets
from compacting_supervisor.redaction._structure import redact_string

__all__ = [
    "HighEntropyRedactor",
    "Redactor",
    "redact_personal_data",
    "redact_secrets",
    "redact_text",
    "redact_with",
]

# What the rules were called before this module became a package (tests read them).
_ = (_PATTERNS, _may_hold_secret)


@runtime_checkable
class Redactor(Protocol):
    """A redaction engine: text in, the same text with what it finds replaced, out.

    Any object with this method plugs into `redact_with`: an adapter for detect-secrets
    (``compacting_supervisor.redaction.detect_secrets.DetectSecretsRedactor``), one for
    Presidio's ``AnalyzerEngine`` and ``AnonymizerEngine``, or a few lines of your own. It
    is called on every string a message carries, after JSON in it has been parsed and
    escapes decoded. An exception it raises fails the compaction: the history is left
    unchanged rather than sent unredacted.

    Example:
        >>> class HideNames:
        ...     def redact(self, text: str) -> str:
        ...         return text.replace("Alice", "[NAME]")
        >>> isinstance(HideNames(), Redactor)
        True
    """

    def redact(self, text: str) -> str:
        """Return ``text`` with what this engine finds replaced."""
        ...


class HighEntropyRedactor:
    """A `Redactor` for secrets with no key and no known format: long random tokens.

    Replaces with ``[REDACTED:high-entropy]`` each run of 20 to 1,000 base64 or URL-safe
    characters (not a URL's part, not the value of a key naming a public random value:
    ``public_key``, ``csrf-token``, ``sha``, ``signature``, ``nonce`` ...) that holds a
    letter and a digit and has
    more than ``base64_limit`` bits of Shannon entropy a character. A run of hex digits
    needs more than ``hex_limit``, 32 digits or more, and words before it in the same
    string that do not name a hash (``commit``, ``sha256``, ``md5``, ``trace id`` ...):
    a UUID, or a hex string that is a whole value (a JSON string, say), is left. The
    limits are detect-secrets' (``Base64HighEntropyString`` 4.5,
    ``HexHighEntropyString`` 3.0). Masks, counting runs and documentation keys are left.
    Linear in the text.

    Args:
        base64_limit: Entropy a token of other characters than hex digits must exceed.
        hex_limit: Entropy a token of hex digits must exceed.

    Raises:
        ValueError: A limit is not a number between 0 and 8.

    Example:
        >>> HighEntropyRedactor().redact("use 9Xq2LmZr7TpW4vKa8sDf1GhJ6yBn3CeU then")
        'use [REDACTED:high-entropy] then'
        >>> HighEntropyRedactor().redact("commit 3f9a1c0e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39")
        'commit 3f9a1c0e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39'
    """

    def __init__(self, *, base64_limit: float = 4.5, hex_limit: float = 3.0) -> None:
        for name, value in (("base64_limit", base64_limit), ("hex_limit", hex_limit)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 8:
                msg = f"`{name}` must be a number of bits between 0 and 8, got {value!r}."
                raise ValueError(msg)
        self.base64_limit = float(base64_limit)
        self.hex_limit = float(hex_limit)

    def redact(self, text: str) -> str:
        """Return ``text`` with each high-entropy token replaced."""
        spans = high_entropy_tokens(text, base64_limit=self.base64_limit, hex_limit=self.hex_limit)
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts.append(text[last:start])
            parts.append("[REDACTED:high-entropy]")
            last = end
        parts.append(text[last:])
        return "".join(parts)


def _secrets_and_personal_data(text: str) -> str:
    return scan_personal_data(scan_secrets(text))


def redact_text(text: str, *, personal_data: bool = False) -> str:
    """Replace the secrets (and, if asked, the personal data) `redact_secrets` knows in ``text``.

    A key-like string needs a digit to count as a key (``sk-learn-is-a-library`` is text),
    so the example's key has some, as real ones do. Text that is a JSON object or array is
    read as JSON: values under a secret-bearing key are replaced whatever they look like,
    and the result is written back as JSON.

    Args:
        text: Any text.
        personal_data: Also replace e-mail addresses, card numbers (Luhn-checked), IBANs
            (checksum-checked) and phone numbers.

    Returns:
        ``text`` with each secret replaced by ``[REDACTED:<kind>]`` (``text`` itself when
            there is none).

    Example:
        >>> redact_text("key sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e and postgres://bob:hunter2@db/x")
        'key [REDACTED:api-key] and postgres://bob:[REDACTED:password]@db/x'
        >>> redact_text('{"user": "bob", "password": "correct horse"}')
        '{"user": "bob", "password": "[REDACTED:secret]"}'
        >>> redact_text("mail bob@example.com", personal_data=True)
        'mail [REDACTED:email]'
        >>> redact_text("nothing secret here")
        'nothing secret here'
    """
    return redact_string(text, _secrets_and_personal_data if personal_data else scan_secrets)


def redact_secrets(message: BaseMessage) -> BaseMessage:
    """Return ``message`` with its secrets replaced; the original is never changed.

    Redacts every text the message carries: content and content blocks, tool-call
    arguments (values under secret-bearing keys whatever they look like), raw
    ``additional_kwargs``, invalid tool calls and a tool message's artifact. A message
    with nothing to redact is returned as it is; otherwise a copy is. This is
    `HistoryManager`'s default ``redact`` hook.

    Args:
        message: Any LangChain message.

    Returns:
        ``message`` itself when it holds no secret, else a redacted copy.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> message = HumanMessage("My token is Bearer abcdef123456789xyz, thanks.")
        >>> redact_secrets(message).content
        'My token is Bearer [REDACTED:token], thanks.'
        >>> message.content  # unchanged
        'My token is Bearer abcdef123456789xyz, thanks.'
        >>> call = {"name": "login", "args": {"username": "bob", "password": "Zq9xLm2Pw7Rt"},
        ...         "id": "c1"}
        >>> [redacted] = redact_secrets(AIMessage("", tool_calls=[call])).tool_calls
        >>> redacted["args"]
        {'username': 'bob', 'password': '[REDACTED:secret]'}
    """
    return redact_message(message, scan_secrets)


def redact_personal_data(message: BaseMessage) -> BaseMessage:
    """Like `redact_secrets`, and also e-mail addresses, card numbers, IBANs and phones.

    Pass it as ``HistoryManager(redact=redact_personal_data)``.

    Args:
        message: Any LangChain message.

    Returns:
        ``message`` itself when it holds nothing to redact, else a redacted copy.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> redact_personal_data(HumanMessage("Call +44 20 7946 0958 or a@b.org")).content
        'Call [REDACTED:phone] or [REDACTED:email]'
    """
    return redact_message(message, _secrets_and_personal_data)


def redact_with(
    *redactors: Redactor, personal_data: bool = False
) -> Callable[[BaseMessage], BaseMessage]:
    """Build a ``redact`` hook for `HistoryManager` from other redaction engines.

    The hook applies the built-in rules first (known key formats, secret-bearing keys in
    any structure, decoding; personal data too if asked), then each redactor, in order, to
    every string the message carries. A redactor that raises, or returns something other
    than text, fails the compaction with a `CompactionError` (its exception chained): the
    history stays as it was and nothing reaches the summariser.

    Args:
        *redactors: Objects with a ``redact(text) -> text`` method (`Redactor`).
        personal_data: Also apply the built-in personal-data rules.

    Returns:
        A function from a message to its redacted copy (the message itself when nothing
        was redacted).

    Raises:
        TypeError: A redactor has no callable ``redact`` method (when building the hook).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> class HideNames:
        ...     def redact(self, text: str) -> str:
        ...         return text.replace("Alice", "[NAME]")
        >>> hook = redact_with(HideNames())
        >>> hook(HumanMessage("Alice's key is sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e")).content
        "[NAME]'s key is [REDACTED:api-key]"
    """
    for index, redactor in enumerate(redactors):
        if not callable(getattr(redactor, "redact", None)):
            msg = (
                f"`redactors` must be objects with a `redact(text) -> str` method; item "
                f"{index} is a {type(redactor).__name__}. Wrap a function f as an object "
                "whose redact method calls f."
            )
            raise TypeError(msg)
    builtin = _secrets_and_personal_data if personal_data else scan_secrets

    def scan(text: str) -> str:
        text = builtin(text)
        for redactor in redactors:
            name = type(redactor).__name__
            try:
                result = redactor.redact(text)
            except Exception as exc:
                msg = (
                    f"The redactor {name} failed ({type(exc).__name__}: {exc}); nothing was "
                    "sent to the summariser and the history is unchanged."
                )
                raise CompactionError(msg) from exc
            if not isinstance(result, str):
                msg = (
                    f"The redactor {name} returned {type(result).__name__}, not text; "
                    "nothing was sent to the summariser and the history is unchanged."
                )
                raise CompactionError(msg)
            text = result
        return text

    def redact(message: BaseMessage) -> BaseMessage:
        return redact_message(message, scan)

    return redact
