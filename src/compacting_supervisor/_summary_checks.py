"""Checks on a summariser's reply: what must never replace history, and what it dropped.

`validate_summary` turns away a reply that is not a summary: empty or placeholder text
("N/A", "Summary:", "-"), a refusal ("I'm sorry, but I can't help with that.", with curly
apostrophes or not, "Lo siento, no puedo ..."), a provider's error report ("Error 429: rate
limit exceeded", a JSON error body, a stack trace), a markup page (an HTML 502 page, an XML
error document), headings with nothing under them, and near-empty text (punctuation, a
single word). The compaction is then given up and the history stays whole.
`summary_problem` says what is wrong, or None.

Every check looks at a bounded part of the reply (its first and last few hundred characters,
the lines of its first 20,000 characters), with plain string tests, no regular expressions:
the time taken is linear in the reply, whatever it holds. A long structured summary that
merely mentions an error or quotes a refusal in a bullet passes: refusal and error phrases
are looked for at the start of a reply, and anywhere only in a short reply with no structure.

`dropped_content` reports (never rejects) a reply that lost what the previous summary
carried: far shorter, with most of its ids and numbers gone.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from compacting_supervisor._summary_phrases import (
    ERROR_CLAUSES,
    ERROR_CORES,
    ERROR_OPENERS,
    ERROR_WORDS,
    HTTP_REASONS,
    JSON_ERROR_STARTS,
    LABELS,
    MARKUP_ENDS,
    MARKUP_STARTS,
    PLACEHOLDERS,
    REFUSAL_CORES,
    REFUSAL_OPENERS,
    SECTIONS,
    TRACE_OPENERS,
)
from compacting_supervisor.errors import SummarizationError

__all__ = ["dropped_content", "summary_problem", "validate_summary"]

_HEAD_CHARS = 400
"""How much of a reply's start is read for openers (refusals, errors, markup)."""
_TAIL_CHARS = 200
"""How much of a reply's end is read for the end of a markup page."""
_SHORT_CHARS = 600
"""A reply this short with no structure is searched throughout for refusal/error phrases."""
_OPENER_MAX_CHARS = 2000
"""A refusal or error opener rejects a reply shorter than this, or one with no headings."""
_SCAN_CHARS = 20_000
"""The lines of this much of a reply are read for its structure."""
_LINE_CHARS = 200
"""How much of each line is read to classify it."""
_MIN_WORDS = 2
_MIN_ALNUM = 5
"""Fewer words, or fewer letters and digits, is not a summary ("-", "OK", "Summary")."""

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u02bc": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
        "\u201f": '"', "\u00ab": '"', "\u00bb": '"', "\u2033": '"', "\u2013": "-",
        "\u2014": "-", "\u2212": "-", "\u00a0": " ",
    }
)  # fmt: skip
_DECORATION = "#*_>-+•·=~|\"' \t`"
"""What may sit before a reply's first word: markdown marks, bullets, quotes."""


def fold(text: str) -> str:
    """``text`` as the checks compare it: NFKC, quotes straightened, no accents, casefolded.

    Runs of spaces become one space, blank lines go. Linear in ``text``; call it on a
    bounded slice.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _folded(phrases: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(fold(p) for p in phrases))


_REFUSAL_OPENERS = _folded(REFUSAL_OPENERS)
_REFUSAL_CORES = _folded(REFUSAL_CORES)
_ERROR_OPENERS = _folded(ERROR_OPENERS)
_ERROR_CLAUSES = _folded(ERROR_CLAUSES)
_ERROR_CORES = _folded(ERROR_CORES)
_ERROR_WORDS = _folded(ERROR_WORDS)
_TRACE_OPENERS = _folded(TRACE_OPENERS)
_HTTP_REASONS = _folded(HTTP_REASONS)
_LABELS = tuple(sorted(_folded(LABELS), key=len, reverse=True))  # longest first
_NAMES = frozenset(_LABELS) | frozenset(_folded(SECTIONS))
"""What a heading or a ``Name: value`` line may be named."""
_PLACEHOLDERS = frozenset(fold(p) for p in PLACEHOLDERS)
_JSON_STARTS = tuple(p.replace(" ", "") for p in JSON_ERROR_STARTS)


def _is_wide(char: str) -> bool:
    """A CJK ideograph or kana: a word in itself, with no spaces around it."""
    return char >= "\u2e80"


def _starts_with(text: str, phrases: tuple[str, ...]) -> str | None:
    """The phrase ``text`` starts with, ending at a word boundary; None if none does."""
    for phrase in phrases:
        if text.startswith(phrase):
            last = phrase[-1]
            after = text[len(phrase) : len(phrase) + 1]
            if not last.isalnum() or _is_wide(last) or not after or not after.isalnum():
                return phrase
    return None


def _strip_lead(text: str) -> str:
    """``text`` without markdown marks, bullets, quotes and a "Summary:" label before it."""
    for _ in range(3):
        text = text.lstrip(_DECORATION + "\n")
        label = next((lb for lb in _LABELS if text.startswith(lb)), None)
        if label is None:
            break
        rest = text[len(label) :].lstrip(" *_")
        if not rest.startswith((":", "-", "\n")) and rest[:1].isalnum():
            break  # "Summary of days 0-3" is the summary itself, not a label
        text = rest.lstrip(":- *_")
    return text


@dataclass
class _Shape:
    """What a reply's lines hold: headings, body words, placeholders."""

    headings: int = 0
    bullets: int = 0
    placeholders: int = 0
    words: int = 0
    alnum: int = 0
    body_lines: int = 0
    whole: bool = True
    """Every line was read (the reply is within `_SCAN_CHARS`)."""


def _count_words(text: str) -> tuple[int, int]:
    """Words (runs of letters or digits; a CJK character is a word) and letters/digits."""
    words = alnum = 0
    inside = False
    for char in text:
        if char.isalnum():
            alnum += 1
            if _is_wide(char):
                words += 1
                inside = False
            elif not inside:
                words += 1
                inside = True
        else:
            inside = False
    return words, alnum


def _is_heading(line: str, raw: str) -> bool:
    if raw.startswith("#") or (raw.startswith(("**", "__")) and raw.endswith(("**", "__"))):
        return True
    if line.endswith(":") and _count_words(line)[0] <= 8:
        return True
    return line.rstrip(":. ") in _NAMES


def _value(line: str) -> str:
    """The text of a ``Summary: value`` or ``Goal: value`` line, without its label."""
    head, sep, rest = line.partition(":")
    if sep and head.strip(" *_#") in _NAMES:
        return rest.strip()
    return line


def _placeholder(text: str) -> bool:
    text = text.strip(" .!()*_\"'")
    if text in _PLACEHOLDERS:
        return True
    return len(text) < 60 and text[:1] + text[-1:] in {"[]", "{}", "<>"}


def _shape(text: str) -> _Shape:
    shape = _Shape(whole=len(text) <= _SCAN_CHARS)
    for raw_line in text[:_SCAN_CHARS].splitlines():
        raw = raw_line.strip()[:_LINE_CHARS]
        if not raw or raw.startswith("```") or raw.strip("-=*_~ ") == "":
            continue  # blank, a code fence or a rule
        if raw.lower().startswith(("<summary", "</summary")) and raw.endswith(">"):
            continue  # the tags a prompt may ask for
        line = fold(raw)
        if _is_heading(line, raw):
            words, alnum = _count_words(line)
            shape.headings += 1
            shape.words += words
            shape.alnum += alnum
            continue
        if raw[:1] in "-*+•" or raw[:2].rstrip(".)").isdigit():
            shape.bullets += 1
        body = line.lstrip(_DECORATION + "0123456789.)")
        if _placeholder(body) or _placeholder(_value(body)):
            shape.placeholders += 1
            continue
        words, alnum = _count_words(body)
        if words:
            shape.body_lines += 1
        shape.words += words
        shape.alnum += alnum
    return shape


def _unfenced(head: str) -> str:
    """``head`` without the code fence (and its language) a reply may open with."""
    start = head.lstrip(" `\n'\"")
    for language in ("json", "html", "xml", "text"):
        if start.startswith(language) and start[len(language) : len(language) + 1] in "\n ":
            return start[len(language) :].lstrip()
    return start


def _markup(head: str, tail: str) -> bool:
    start = _unfenced(head)
    if start.startswith(MARKUP_STARTS):
        return True
    return start.startswith("<") and tail.rstrip(" `\n").endswith(MARKUP_ENDS)


def _provider_error(lead: str, head: str) -> str | None:
    """The kind of error report ``lead`` opens, whatever the reply's length."""
    if "".join(_unfenced(head).split()).startswith(_JSON_STARTS):
        return "a JSON error body"
    if _starts_with(lead, _TRACE_OPENERS):
        return "a stack trace"
    first = lead.split(None, 1)[0] if lead.strip() else ""
    name = first.rstrip(":")
    if (
        first.endswith(("error:", "exception:"))
        and name not in _ERROR_WORDS
        and name.replace(".", "").replace("_", "").isalnum()
    ):
        return "an exception"  # openai.RateLimitError: ..., KeyError: ...
    return None


def _unquoted(text: str) -> str:
    """``text`` without what it quotes ("...", 「...」): a quoted refusal is reported speech."""
    kept: list[str] = []
    closing = ""
    for char in text:
        if closing:
            if char == closing:
                closing = ""
        elif char in _OPENING_QUOTES:
            closing = _OPENING_QUOTES[char]
        else:
            kept.append(char)
    return "".join(kept)


_OPENING_QUOTES = {'"': '"', "「": "」", "『": "』"}


def _clause_ends(after: str) -> bool:
    """``after`` (what follows a phrase) ends the clause: nothing, punctuation or a code."""
    after = after.lstrip(" ")
    if not after or after[0].isdigit():
        return True
    if after[0] == "-":  # "Error - 500" ends it, "Error-free" does not
        return not after[1:2].isalnum()
    return after[0] in ":.!(,;[#\n"


def _opens_clause(text: str, phrases: tuple[str, ...]) -> bool:
    """``text`` opens with one of ``phrases`` as a whole clause ("Forbidden: ...")."""
    return any(text.startswith(p) and _clause_ends(text[len(p) :]) for p in phrases)


def _error_opener(lead: str) -> bool:
    if _opens_clause(lead, _ERROR_WORDS) or _opens_clause(lead, _ERROR_CLAUSES):
        return True
    if lead[:3].isdigit() and "400" <= lead[:3] <= "599":  # "503 Service Unavailable"
        after = lead[3:].lstrip(" ")
        return _starts_with(after, _HTTP_REASONS) is not None or _opens_clause(after, _ERROR_WORDS)
    words = lead.split(" ", 2)
    if words[0] in ("http", "status") and len(words) > 1 and words[1][:3].isdigit():
        return True  # "HTTP 502", "status 429"
    return _starts_with(lead, _ERROR_OPENERS) is not None


def summary_problem(text: str) -> str | None:
    """What makes ``text`` (a summariser's reply, stripped) no summary; None when it is one.

    Linear in ``text``: only its first and last few hundred characters and the lines of
    its first 20,000 are read.
    """
    head = fold(text[:_HEAD_CHARS])
    tail = fold(text[-_TAIL_CHARS:])
    if not head:
        return "empty or placeholder text (nothing written)"
    if _markup(head, tail):
        return "a markup page (HTML or XML), not a summary"
    lead = _strip_lead(head)
    shape = _shape(text)
    error = _provider_error(lead, head)
    if error:
        return f"{error}, not a summary"
    unstructured = shape.headings < 2
    if len(text) < _OPENER_MAX_CHARS or unstructured:
        if _starts_with(lead, _REFUSAL_OPENERS):
            return "a refusal, not a summary"
        if _error_opener(lead):
            return "an error report, not a summary"
    if len(text) <= _SHORT_CHARS and shape.headings == 0 and shape.bullets <= 1:
        whole = _unquoted(fold(text))
        if any(core in whole for core in _REFUSAL_CORES):
            return "a refusal, not a summary"
        if any(core in whole for core in _ERROR_CORES):
            return "an error report, not a summary"
    if not shape.body_lines:  # (in the first `_SCAN_CHARS` when the reply is longer)
        if shape.headings:
            return "headings with nothing under them"
        if shape.placeholders:
            return "empty or placeholder text (a placeholder)"
        return "empty or placeholder text (punctuation or symbols only)"
    if shape.whole and (shape.words < _MIN_WORDS or shape.alnum < _MIN_ALNUM):
        return "near-empty text (a word or two)"
    return None


def validate_summary(text: Any) -> str:
    """Return ``text`` stripped, or raise if it must not replace any history.

    Raises:
        SummarizationError: The text is empty, a placeholder, a refusal, an error report,
            a markup page, headings without a body or a word or two; the message says which.
    """
    if not isinstance(text, str):
        msg = f"The summariser returned {type(text).__name__}, not text."
        raise SummarizationError(msg)
    stripped = text.strip()
    problem = summary_problem(stripped)
    if problem:
        msg = f"The summariser's reply is {problem}: {stripped[:120]!r}."
        raise SummarizationError(msg, text=text)
    return stripped


_MIN_PREVIOUS_CHARS = 200
"""A previous summary shorter than this has too little to lose to be worth a report."""
_SHORTER = 0.3
"""A new summary under this share of the previous one's length may have dropped it."""
_KEPT = 0.5
"""...when it keeps less than this share of the previous one's ids and numbers."""
_FACT_CHARS = 200_000
_STRIP = ".,;:!?()[]{}<>\"'`*"


def _facts(text: str) -> set[str]:
    """The ids and numbers in ``text``: words holding a digit ("CAND-101", "12", "tr_9f")."""
    return {
        word
        for token in text[:_FACT_CHARS].split()
        if (word := token.strip(_STRIP).casefold()) and any(c.isdigit() for c in word)
    }


def dropped_content(previous: str | None, new: str) -> str | None:
    """Say what ``new`` lost of ``previous``, when it looks like it dropped it; else None.

    A new summary under 30% of the previous one's length that keeps fewer than half of
    its ids and numbers (or, with none, of its longer words) has likely lost facts. The
    report holds figures only (lengths, counts), never the summaries' text.
    """
    if not previous or len(previous) < _MIN_PREVIOUS_CHARS or len(new) >= _SHORTER * len(previous):
        return None
    carried = _facts(previous)
    kind = "ids and numbers"
    if len(carried) < 3:
        kind = "longer words"
        carried = {
            w for t in previous[:_FACT_CHARS].split() if len(w := t.strip(_STRIP).casefold()) >= 6
        }
    if not carried:
        return None
    new_words = {token.strip(_STRIP).casefold() for token in new.split()}
    kept = len(carried & new_words)
    if kept >= _KEPT * len(carried):
        return None
    return (
        f"The new summary is {len(new)} characters, {len(new) / len(previous):.0%} of the "
        f"previous summary's {len(previous)}, and keeps {kept} of the {len(carried)} "
        f"{kind} it carried: facts may have been lost."
    )
