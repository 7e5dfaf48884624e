"""The offline default summariser: the first sentence of every evicted message, no model.

`ExtractiveSummarizer` is re-exported by `compacting_supervisor.summarizers`, where users
import it; it lives here so each summariser is a module a reader can hold in mind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from compacting_supervisor._messages import handoff_call_ids, is_handoff, speaker, text_of
from compacting_supervisor._settings import check_count

__all__ = ["ExtractiveSummarizer"]


_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.DOTALL)


def _gist(text: str, limit: int) -> str:
    text = " ".join(text.split())
    match = _FIRST_SENTENCE.match(text)
    sentence = match.group(1) if match else text
    if len(sentence) > limit:
        sentence = sentence[: max(1, limit - 1)].rstrip() + "…"
    return sentence


def _call_text(call: Any) -> str:
    """``read_cv(name=Alice)``: a tool call with its arguments, each shortened."""
    args = call.get("args") or {}
    shown = ", ".join(f"{key}={_gist(str(value), 40)}" for key, value in args.items())
    return f"{call['name']}({shown})"


_FOREIGN = "earlier summary"
_REPEAT = "(repeats a line above)"
_MIN_REPEAT = 40  # shorter lines ("ok", "thanks") are kept even when they repeat
_ITEM = re.compile(r"^- (?P<who>[^:]+): (?P<text>.*)$")
_MARKER = re.compile(r"^- … (?P<count>\d+) more earlier items? …$")


class ExtractiveSummarizer:
    """The offline default: keeps the first sentence of each message, under its speaker.

    Deterministic, no model, no network. Each compaction appends one line per evicted
    message to the previous summary's lines; a tool call shows its arguments, a line that
    only repeats an earlier one of the same compaction (an agent echoing its tool result)
    reads ``(repeats a line above)``, and langgraph-supervisor hand-offs ("Successfully
    transferred to ...") get no line. A previous summary it did not write (an LLM's, or
    LangChain's middleware's) is carried whole. When its own lines would exceed
    ``max_tokens`` (estimated at 4 characters per token), every line is shortened first
    (down to 80 characters); if that is not enough, the middle lines are folded into one
    ``- … N more earlier items …`` line, so the earliest and the latest facts stay and the
    count of folded messages stays right.

    Pass an instance as ``HistoryManager(model=ExtractiveSummarizer())`` to choose it
    explicitly (and silence the one-time hint that an LLM summarises better).
    """

    _HEADER = "Earlier conversation (extractive summary, oldest first):"
    _LIMITS = (200, 120, 80)

    def summarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        """Return the previous summary's lines plus one line per evicted message."""
        check_count("max_tokens", max_tokens)
        items = self._items_of(previous)
        handoffs = handoff_call_ids(messages)
        seen: set[str] = set()
        for message in messages:
            if is_handoff(message, handoffs):
                continue  # "Successfully transferred to ..." carries no fact worth a line
            calls = self._calls_text(message)
            text = " ".join(text_of(message.content).split())
            if calls:  # tool calls are facts too: keep them with (or instead of) the text
                text = f"{calls}: {text}" if text else calls
            if not text:
                continue
            text = " ".join(text.split())
            gist = _gist(text, self._LIMITS[0])
            if gist in seen and len(gist) >= _MIN_REPEAT:  # an agent echoing a tool result
                text = _REPEAT
            seen.add(gist)
            items.append((speaker(message), text))
        budget = max(60, max_tokens * 4) - len(self._HEADER) - 1
        lines: list[str] = []
        for limit in self._LIMITS:
            lines = [self._render(item, limit) for item in items]
            own = [line for line, item in zip(lines, items, strict=True) if item[0] != _FOREIGN]
            if sum(len(line) + 1 for line in own) <= budget:
                return "\n".join([self._HEADER, *lines])
        return "\n".join([self._HEADER, *self._fold_middle(items, budget)])

    async def asummarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        """Async form of `summarize` (pure computation, no I/O)."""
        return self.summarize(previous, messages, max_tokens=max_tokens)

    @staticmethod
    def _render(item: tuple[str, str | int], limit: int) -> str:
        who, text = item
        if isinstance(text, int):
            return f"- … {text} more earlier item{'s' if text != 1 else ''} …"
        if who == _FOREIGN:  # a summary this summariser did not write: carried verbatim
            return f"- {who}: {text}"
        return f"- {who}: {_gist(text, limit)}"

    def _items_of(self, previous: str | None) -> list[tuple[str, str | int]]:
        if not previous:
            return []
        lines = [line for line in previous.splitlines() if line.strip()]
        if not lines or lines[0] != self._HEADER:
            # A summary written by an LLM (or LangChain's middleware): kept whole, first.
            return [(_FOREIGN, " ".join(previous.split()))]
        items: list[tuple[str, str | int]] = []
        for line in lines[1:]:
            if marker := _MARKER.match(line):
                items.append(("…", int(marker.group("count"))))
            elif item := _ITEM.match(line):
                items.append((item.group("who"), item.group("text")))
            else:
                items.append((_FOREIGN, line))
        return items

    @staticmethod
    def _calls_text(message: BaseMessage) -> str:
        if isinstance(message, AIMessage) and message.tool_calls:
            return "called " + ", ".join(_call_text(c) for c in message.tool_calls)
        return ""

    def _fold_middle(self, items: list[tuple[str, str | int]], budget: int) -> list[str]:
        """Keep the oldest and newest items at the shortest length; count the rest."""
        limit = self._LIMITS[-1]
        head: list[str] = []
        tail: list[str] = []
        size = len(self._render(("…", 10**6), limit)) + 1  # room for the marker
        i, j = 0, len(items) - 1
        open_sides = {"head", "tail"}
        side = "head"
        while i <= j and open_sides:
            if side not in open_sides:
                side = "tail" if side == "head" else "head"
            index = i if side == "head" else j
            if isinstance(items[index][1], int):  # an earlier fold stays inside the new one
                open_sides.discard(side)
                continue
            line = self._render(items[index], limit)
            foreign = items[index][0] == _FOREIGN  # carried whole, outside the budget
            if not foreign and size + len(line) + 1 > budget:
                break
            size += 0 if foreign else len(line) + 1
            if side == "head":
                head.append(line)
                i += 1
            else:
                tail.append(line)
                j -= 1
            side = "tail" if side == "head" else "head"
        if i > j:
            return [*head, *tail[::-1]]
        # Everything from i to j is folded, earlier markers included, into one count.
        folded = sum(t if isinstance(t, int) else 1 for _, t in items[i : j + 1])
        return [*head, self._render(("…", folded), limit), *tail[::-1]]
