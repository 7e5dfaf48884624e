"""The summary's length cap: a reply over it is shortened, keeping every section.

Counted exactly with the package's token counter. Lines are dropped from the end of the
longest sections first, so every heading stays; then the text is cut at a sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["cap_summary", "cut_at_sentence", "shorten"]

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def cap_summary(text: str, limit: int, counter: TokenCounter) -> str:
    """``text`` if it has at most ``limit`` tokens, else shortened to fit (and logged)."""
    tokens = counter.count_text(text)
    if tokens <= limit:
        return text
    shortened = shorten(text.strip(), limit, counter.count_text)
    logger.warning(
        "The summariser wrote %d tokens, over the summary's cap of %d (`max_summary_tokens`); "
        "it was shortened to %d tokens (the longest sections cut, every section kept, at "
        "sentences). Raise `max_summary_tokens` if summaries keep losing detail.",
        tokens,
        limit,
        counter.count_text(shortened),
    )
    return shortened


def shorten(text: str, limit: int, count: Callable[[str], int]) -> str:
    """Fit ``text`` in ``limit`` tokens, keeping something of every section.

    With headings, the room left after the headings is shared out: sections smaller than
    an even share stay whole, the others split the rest evenly. Each keeps its lines from
    the top, and the first line that does not fit is cut at a sentence (or a word). Text
    with no headings, or headings that alone do not fit, is cut at a sentence boundary.
    """
    lines = text.splitlines()
    if len(lines) < 2 or not any(_HEADING.match(line) for line in lines):
        return cut_at_sentence(text, limit, count)
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines:
        if _HEADING.match(line):
            sections.append((line, []))
        elif line.strip():
            sections[-1][1].append(line)
    headings = sum(count(h) + 1 for h, _ in sections if h is not None)
    sizes = [sum(count(line) + 1 for line in body) for _, body in sections]
    room = limit - headings - 2  # newlines and rounding
    if room <= 0 or not sum(sizes):
        return cut_at_sentence(text, limit, count)
    # Water-filling: sections smaller than an even share stay whole; the rest split the room.
    shares = dict.fromkeys(range(len(sections)), 0)
    pending = sorted(range(len(sections)), key=lambda i: sizes[i])
    left = room
    while pending:
        fair = left // len(pending)
        if sizes[pending[0]] > fair:
            for i in pending:
                shares[i] = fair
            break
        smallest = pending.pop(0)
        shares[smallest] = sizes[smallest]
        left -= sizes[smallest]
    out: list[str] = []
    for index, (heading, body) in enumerate(sections):
        if heading is not None:
            out.append(heading)
        share = shares[index]
        for line in body:
            cost = count(line) + 1
            if cost <= share:
                out.append(line)
                share -= cost
                continue
            if share >= 8:  # room for a meaningful head of the line
                out.append(cut_at_sentence(line, share - 1, count))
            break
    shortened = "\n".join(out)
    return shortened if count(shortened) <= limit else cut_at_sentence(shortened, limit, count)


def cut_at_sentence(text: str, limit: int, count: Callable[[str], int]) -> str:
    """Return the longest head of ``text`` within ``limit`` tokens that ends a sentence.

    When not even the first sentence fits, the head ends at a word, marked ``…``.
    """
    if count(text) <= limit:
        return text
    for pattern, mark in ((_SENTENCE_END, ""), (re.compile(r"\s+"), " …")):
        ends = [m.start() for m in pattern.finditer(text)]
        low, high, best = 0, len(ends) - 1, ""
        while low <= high:
            middle = (low + high) // 2
            head = text[: ends[middle]].rstrip() + mark
            if count(head) <= limit:
                best, low = head, middle + 1
            else:
                high = middle - 1
        if best.strip(" …"):
            return best
    low, high = 0, len(text)  # one long word: cut it
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle] + "…") <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…" if low else ""
