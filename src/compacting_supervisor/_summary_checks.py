"""Checks on a summariser's reply: what must never replace history.

An empty reply, a placeholder ("N/A", "Summary"), a refusal ("I'm sorry, I can't ...") or an
error text is a failed summary: the compaction is given up and the history stays whole.
"""

from __future__ import annotations

from typing import Any

from compacting_supervisor.errors import SummarizationError

__all__ = ["validate_summary"]

_REFUSAL_MAX_CHARS = 400
"""A refusal or error message is short; a summary that merely starts with "Error" is not."""

_PLACEHOLDERS = {
    "",
    "n/a",
    "na",
    "none",
    "null",
    "summary",
    "[summary]",
    "<summary>",
    "no summary",
    "no summary available",
    "todo",
    "tbd",
    "...",
    "previous conversation was too long to summarize.",
    "previous conversation was too long to summarise.",
}
_REFUSAL_PREFIXES = (
    "i'm sorry",
    "i am sorry",
    "sorry, i",
    "i cannot",
    "i can't",
    "i can not",
    "i'm unable",
    "i am unable",
    "as an ai",
    "error:",
    "error code",
    "traceback (most recent call last)",
)


def validate_summary(text: Any) -> str:
    """Return ``text`` stripped, or raise if it must not replace any history.

    Raises:
        SummarizationError: The text is empty, a placeholder, a refusal or an error.
    """
    if not isinstance(text, str):
        msg = f"The summariser returned {type(text).__name__}, not text."
        raise SummarizationError(msg)
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered.rstrip(".") in {p.rstrip(".") for p in _PLACEHOLDERS}:
        msg = f"The summariser returned empty or placeholder text ({stripped[:60]!r})."
        raise SummarizationError(msg, text=text)
    if lowered.startswith(_REFUSAL_PREFIXES) and len(stripped) < _REFUSAL_MAX_CHARS:
        msg = (
            "The summariser returned a refusal or an error instead of a summary: "
            f"{stripped[:120]!r}."
        )
        raise SummarizationError(msg, text=text)
    return stripped
