"""Keep secrets out of summaries: a redaction hook and a built-in redactor.

`HistoryManager` passes every message through its ``redact`` hook before the summariser
sees it (the kept messages stay verbatim in the thread). The default, `redact_secrets`,
replaces common credentials with ``[REDACTED:<kind>]``: API keys (OpenAI, Anthropic,
AWS, GitHub, Slack, Google, Stripe), bearer tokens, JSON web tokens, passwords in URLs,
``password=``-style assignments and PEM private keys.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

__all__ = ["redact_secrets", "redact_text"]

# A value that looks like a credential, not a word: it has a digit or a symbol in it.
_CREDENTIAL = r"(?=[^\s\"',;}]*[0-9_\-+/=!@#$%^&*.~])[^\s\"',;}]{6,}"
# Strong keywords: whatever follows them is a secret. Weak ones ("secret", "token") are
# ordinary words too, so their value must also look like a credential.
_STRONG = (
    r"password|passwd|passphrase|secret[_-]?access[_-]?key|api[_-]?key|apikey|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key"
)
_KEYWORDS = _STRONG + r"|secret|token"

_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        "[REDACTED:private-key]",
    ),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}"), "[REDACTED:anthropic-key]"),
    (
        "openai-key",
        re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z_\-]*\d)[A-Za-z0-9_\-]{20,}"),
        "[REDACTED:api-key]",
    ),
    (
        "stripe-key",
        re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        "[REDACTED:api-key]",
    ),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED:aws-key]"),
    (
        "github-token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
        "[REDACTED:github-token]",
    ),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), "[REDACTED:slack-token]"),
    ("google-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), "[REDACTED:api-key]"),
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        "[REDACTED:jwt]",
    ),
    (
        "http-auth",
        re.compile(r"(?i)\b(bearer|basic|token)\s+(?=[A-Za-z._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{12,}"),
        r"\1 [REDACTED:token]",
    ),
    (
        # user:password@host, including passwords that contain "@" and an empty user.
        "url-password",
        re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s/]+(@[^\s@/]+)", re.IGNORECASE),
        r"\1[REDACTED:password]\2",
    ),
    (
        # KEY = "a quoted value, spaces allowed"
        "quoted-assignment",
        re.compile(rf"(?i)((?:\b|_)(?:{_KEYWORDS})[\"']?\s*[:=]\s*)([\"'])([^\"'\n]{{4,}})\2"),
        r"\1\2[REDACTED:secret]\2",
    ),
    (
        # DB_PASSWORD=..., aws_secret_access_key = ..., api_key: ...
        "assignment",
        re.compile(rf"(?i)((?:\b|_)(?:{_STRONG})[\"']?\s*[:=]\s*)([^\s\"',;}}]{{4,}})"),
        r"\1[REDACTED:secret]",
    ),
    (
        "weak-assignment",
        re.compile(rf"(?i)((?:\b|_)(?:secret|token)[\"']?\s*[:=]\s*)({_CREDENTIAL})"),
        r"\1[REDACTED:secret]",
    ),
]


# Something every pattern above needs in order to match, case-folded: text holding none of
# them cannot hold a secret, and is not scanned by each pattern in turn. Each is a
# substring of every match of its patterns (stripe: "_live_"/"_test_"; the keywords:
# "passw", "secret", "token", "api?key", "private?key"), as few and as long as that allows,
# since every one is a pass over the text; GitHub's five prefixes are one regex pass.
_NEEDED = (
    "-----begin", "sk-", "_live_", "_test_", "akia", "asia", "github_pat_", "xox", "aiza",
    "eyj", "bearer", "basic", "://", "passw", "passphrase", "secret", "token", "apikey",
    "api_key", "api-key", "privatekey", "private_key", "private-key",
)  # fmt: skip
_NEEDED_GITHUB = re.compile(r"gh[pousr]_")


def _may_hold_secret(text: str) -> bool:
    lowered = text.casefold()
    if "\u0131" in lowered or "\u0307" in lowered:
        # The patterns' IGNORECASE matches the Turkish dotless i (U+0131) and dotted capital
        # I (U+0130, folded to i + U+0307) as "i"; casefold() does not, so fold them too.
        lowered = lowered.replace("\u0131", "i").replace("i\u0307", "i")
    for needed in _NEEDED:
        if needed in lowered:
            return True
    return _NEEDED_GITHUB.search(lowered) is not None


def redact_text(text: str) -> str:
    """Replace the secrets `redact_secrets` knows in ``text``.

    A key-like string needs a digit to count as a key (``sk-learn-is-a-library`` is text),
    so the example's key has some, as real ones do.

    Args:
        text: Any text.

    Returns:
        ``text`` with each secret replaced by ``[REDACTED:<kind>]`` (``text`` itself when
            there is none).

    Example:
        >>> redact_text("key sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e and postgres://bob:hunter2@db/x")
        'key [REDACTED:api-key] and postgres://bob:[REDACTED:password]@db/x'
        >>> redact_text("nothing secret here")
        'nothing secret here'
    """
    if not _may_hold_secret(text):
        return text
    for _, pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(message: BaseMessage) -> BaseMessage:
    """Return ``message`` with common secrets replaced; the original is never changed.

    Redacts the text content, text blocks, and the arguments of tool calls. A message with
    nothing to redact is returned as it is; otherwise a copy is. This is
    `HistoryManager`'s default ``redact`` hook.

    Args:
        message: Any LangChain message.

    Returns:
        ``message`` itself when it holds no secret, else a redacted copy.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message = HumanMessage("My token is Bearer abcdef123456789xyz, thanks.")
        >>> redact_secrets(message).content
        'My token is Bearer [REDACTED:token], thanks.'
        >>> message.content  # unchanged
        'My token is Bearer abcdef123456789xyz, thanks.'
    """
    update: dict[str, Any] = {}
    content = _redact_value(message.content)
    if content != message.content:
        update["content"] = content
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [{**call, "args": _redact_value(call["args"])} for call in message.tool_calls]
        if calls != message.tool_calls:
            update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message
