"""Point 7 (any history): property-based tests of the cut and of a full compaction.

Hypothesis generates valid agent histories (they satisfy OpenAI's ordering rules before
compaction):

- 0 to 2 leading system messages;
- optionally an earlier running summary right after them: a foreign one (an LLM's, or
  LangChain's middleware's, with or without its prefix, string or text blocks) or one the
  extractive summariser wrote itself; after it, optionally the end of a turn whose human
  message an earlier compaction took (so the conversation starts with an AI message);
- then turns: a human message (a string, or text and image blocks), 0 to 3 tool rounds (an
  AI message with 1 to 3 parallel tool calls, hand-offs included, named or not, its content
  blank, text, or Anthropic-style text plus ``tool_use`` blocks; then one tool message per
  call, in any order), and a final AI message, named or not;
- odd ids: None, unicode, very long, uuid-like, provider-style tool-call ids.

For every ``compaction_ratio`` in (0, 1), `plan_cut` and `HistoryManager.compact_messages`
(offline extractive summariser) must give a history that passes OpenAI's ordering rules and
langchain-anthropic's formatting, whose kept part is exactly a suffix of the original, whose
system messages are unchanged and first, with exactly one summary right after them into
which the earlier summary's content went.

The run is derandomized and database-free, so CI sees the same examples every time.
`GENERATED_HISTORIES` is the number of histories the file checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from compacting_supervisor import CompactingSupervisor, HistoryManager, TokenCounter
from compacting_supervisor._cut import plan_cut, split_history
from compacting_supervisor._messages import (
    METADATA_KEY,
    SUMMARY_MARKER,
    SUMMARY_PREFIX,
    is_summary,
)
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.summarizers import ExtractiveSummarizer
from compacting_supervisor.testing import ScriptedChatModel

from .conftest import apostgres_saver, postgres_saver
from .helpers import RecordingTrigger, anthropic_violations, chat_graph, openai_violations

MAX_MESSAGES = 40
"""Generation stops adding turns once a history reaches about this many messages."""

EXAMPLES = {"plan": 220, "compaction": 300, "chain": 100, "async": 50, "reused_ids": 80}
"""Histories generated per test; the file checks their sum."""

GENERATED_HISTORIES = sum(EXAMPLES.values())

_PROFILE: dict[str, Any] = {
    "database": None,
    "derandomize": True,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

IMAGE_BLOCK = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOL_NAMES = (
    "lookup",
    "search_candidates",
    "transfer_to_candidates_agent",
    "transfer_to_research_expert",
    "transfer_back_to_supervisor",
)
AGENT_NAMES = (None, "supervisor", "candidates_agent", "research_expert", "agent-2")
RATIOS = st.floats(0.01, 0.99)

_MANAGER = HistoryManager(model=None)
_EXTRACTIVE_HEADER = "Earlier conversation (extractive summary, oldest first):"
_MARKER_LINE = re.compile(r"^- … (\d+) more earlier items? …$")


# ---------------------------------------------------------------- strategies

_sentences = st.sampled_from(
    [
        "What is the weather in Paris?",
        "Find candidates for the backend role.",
        "Alice has 7 years of Go. Bob prefers Rust!",
        "ok",
        "  leading and trailing spaces  ",
        "line one\nline two\n\nline three",
        "Ünïcödé 🙂 \u2013 naïve café, 東京, Ελλάδα.",
        "Tabs\tand\u2028odd\u2029separators.",
        "x" * 600,
    ]
)
_text = st.one_of(_sentences, st.text(min_size=1, max_size=40).filter(str.strip))
"""Message text: Anthropic refuses blank text, so a blank answer is not a valid history."""
_short_text = st.one_of(_sentences, st.text(max_size=20))
_blank = st.sampled_from(["", " ", "\n\n", "\r\n"])
"""What models put beside tool calls when they have nothing to say."""


class _Ids:
    """Draws odd but unique message and tool-call ids for one history.

    With ``reuse_tool_ids``, tool-call ids come from a pool of three and repeat across
    rounds (unique within one AI message), as some OpenAI-compatible servers number them.
    """

    def __init__(self, draw: st.DrawFn, *, reuse_tool_ids: bool = False) -> None:
        self.draw = draw
        self.used: set[str] = set()
        self.reuse_tool_ids = reuse_tool_ids

    def _unique(self, candidate: str) -> str:
        value = candidate
        while value in self.used:
            value = f"{candidate}#{len(self.used)}"
        self.used.add(value)
        return value

    def message(self) -> str | None:
        style = self.draw(st.sampled_from(["none", "uuid", "unicode", "long", "lc_run"]))
        if style == "none":
            return None
        if style == "uuid":
            return self._unique(str(self.draw(st.uuids())))
        if style == "unicode":
            return self._unique(self.draw(st.text(min_size=1, max_size=12)))
        if style == "long":
            return self._unique("m" + "é" * self.draw(st.integers(200, 3000)))
        return self._unique(f"lc_run--{self.draw(st.uuids())}-{self.draw(st.integers(0, 9))}")

    def tool_call(self, name: str, taken: Sequence[str] = ()) -> str:
        if self.reuse_tool_ids:
            pool = [c for c in ("call_0", "call_1", "call_2") if c not in taken]
            return self.draw(st.sampled_from(pool))
        style = self.draw(
            st.sampled_from(["openai", "anthropic", "uuid", "kimi", "unicode", "long"])
        )
        alnum = st.text(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1
        )
        if style == "openai":
            return self._unique("call_" + self.draw(alnum))
        if style == "anthropic":
            return self._unique("toolu_01" + self.draw(alnum))
        if style == "uuid":
            return self._unique(str(self.draw(st.uuids())))
        if style == "kimi":
            return self._unique(f"functions.{name}:{self.draw(st.integers(0, 5))}")
        if style == "unicode":
            return self._unique(self.draw(st.text(min_size=1, max_size=12).filter(str.strip)))
        return self._unique("call_" + "Z" * self.draw(st.integers(200, 3000)))


def _human(draw: st.DrawFn, ids: _Ids) -> HumanMessage:
    if draw(st.booleans()):
        return HumanMessage(draw(_text), id=ids.message())
    blocks = draw(
        st.lists(
            st.one_of(
                _text.map(lambda t: {"type": "text", "text": t}),
                st.just(IMAGE_BLOCK),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return HumanMessage(blocks, id=ids.message())


def _tool_round(draw: st.DrawFn, ids: _Ids) -> list[BaseMessage]:
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(TOOL_NAMES))
        args = draw(
            st.dictionaries(
                st.sampled_from(["city", "query", "n", "ünï"]),
                st.one_of(st.integers(), _short_text),
                max_size=2,
            )
        )
        call_id = ids.tool_call(name, [c["id"] for c in calls])
        calls.append({"name": name, "args": args, "id": call_id, "type": "tool_call"})
    style = draw(st.sampled_from(["blank", "text", "blocks", "tool_use_only"]))
    tool_use = [
        {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["args"]} for c in calls
    ]
    content: Any
    if style == "blank":
        content = draw(_blank)
    elif style == "text":
        content = draw(_text)
    elif style == "blocks":
        content = [{"type": "text", "text": draw(_text | _blank)}, *tool_use]
    else:
        content = tool_use
    ai = AIMessage(
        content, tool_calls=calls, name=draw(st.sampled_from(AGENT_NAMES)), id=ids.message()
    )
    results: list[BaseMessage] = []
    for call in draw(st.permutations(calls)):
        body: Any = draw(_short_text)
        if draw(st.booleans()):
            body = [{"type": "text", "text": draw(_text)}]
        metadata: dict[str, Any] = {}
        if call["name"].startswith("transfer_"):
            body = f"Successfully transferred ({call['name']})"
            if draw(st.booleans()):  # marked as langgraph-supervisor marks its hand-offs
                metadata = {"__handoff_destination": call["name"].removeprefix("transfer_to_")}
        results.append(
            ToolMessage(
                body,
                tool_call_id=call["id"],
                name=draw(st.sampled_from([None, call["name"]])),
                status=draw(st.sampled_from(["success", "success", "error"])),
                response_metadata=metadata,
                id=ids.message(),
            )
        )
    return [ai, *results]


def _final_answer(draw: st.DrawFn, ids: _Ids) -> AIMessage:
    content: Any = draw(_text)
    if draw(st.booleans()):
        content = [{"type": "text", "text": content}]
    return AIMessage(content, name=draw(st.sampled_from(AGENT_NAMES)), id=ids.message())


def _turn_end(draw: st.DrawFn, ids: _Ids, max_rounds: int = 3) -> list[BaseMessage]:
    """What follows a human message: tool rounds, then the final answer."""
    messages: list[BaseMessage] = []
    for _ in range(draw(st.integers(0, max_rounds))):
        messages += _tool_round(draw, ids)
    return [*messages, _final_answer(draw, ids)]


def _turns(draw: st.DrawFn, ids: _Ids, limit: int, min_turns: int = 1) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for _ in range(draw(st.integers(min_turns, 6))):
        messages += [_human(draw, ids), *_turn_end(draw, ids)]
        if len(messages) >= limit:
            break
    return messages


def _summary_message(content: Any, message_id: str | None) -> HumanMessage:
    return HumanMessage(content, additional_kwargs={"lc_source": SUMMARY_MARKER}, id=message_id)


def _earlier_summary(draw: st.DrawFn, ids: _Ids) -> HumanMessage:
    style = draw(st.sampled_from(["foreign", "middleware", "blocks", "extractive"]))
    if style == "extractive":
        earlier = _turns(draw, ids, limit=12)
        text = ExtractiveSummarizer().summarize(
            None, earlier, max_tokens=draw(st.sampled_from([30, 200, 1000]))
        )
        return _summary_message(SUMMARY_PREFIX + text, ids.message())
    text = draw(st.one_of(_sentences, st.text(min_size=1, max_size=200)))
    if style == "middleware":
        return _summary_message(SUMMARY_PREFIX + text, ids.message())
    if style == "blocks":
        blocks = [{"type": "text", "text": text}, {"type": "text", "text": draw(_text)}]
        return _summary_message(blocks, ids.message())
    return _summary_message(text, ids.message())


def _history(draw: st.DrawFn, ids: _Ids) -> list[BaseMessage]:
    messages: list[BaseMessage] = [
        SystemMessage(draw(_text), id=ids.message()) for _ in range(draw(st.integers(0, 2)))
    ]
    min_turns = 1
    if draw(st.booleans()):
        messages.append(_earlier_summary(draw, ids))
        if draw(st.booleans()):  # a compaction took this turn's human message
            messages += _turn_end(draw, ids, max_rounds=2)
            min_turns = 0
    messages += _turns(draw, ids, limit=MAX_MESSAGES - len(messages) - 10, min_turns=min_turns)
    return messages


@st.composite
def histories(draw: st.DrawFn, *, reuse_tool_ids: bool = False) -> list[BaseMessage]:
    """A valid agent history: system messages, an earlier summary, turns."""
    return _history(draw, _Ids(draw, reuse_tool_ids=reuse_tool_ids))


Step = tuple[float, list[BaseMessage] | None]


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[BaseMessage], list[Step]]:
    """A history, then 2 to 4 steps: a ratio to compact with, maybe a turn to add after."""
    ids = _Ids(draw)  # one id space: added turns never reuse an id of the history
    messages = _history(draw, ids)
    steps: list[Step] = []
    for _ in range(draw(st.integers(2, 4))):
        turn = None
        if draw(st.booleans()):
            turn = [_human(draw, ids), *_turn_end(draw, ids, max_rounds=2)]
        steps.append((draw(RATIOS), turn))
    return messages, steps


# ---------------------------------------------------------------- oracles


def _groups_split(evicted: Sequence[BaseMessage], kept: Sequence[BaseMessage]) -> bool:
    """Whether a tool result sits on the other side of the cut from the call it answers.

    A result answers the latest earlier call with its id, so ids a model reuses across
    rounds are separate groups.
    """
    side: dict[str, str] = {}
    for where, messages in (("evicted", evicted), ("kept", kept)):
        for message in messages:
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    side[str(call["id"])] = where
            elif (
                isinstance(message, ToolMessage) and side.get(message.tool_call_id, where) != where
            ):
                return True
    return False


def _latest_human(conversation: Sequence[BaseMessage]) -> int | None:
    humans = [
        i for i, m in enumerate(conversation) if isinstance(m, HumanMessage) and not is_summary(m)
    ]
    return humans[-1] if humans else None


def _safe_cuts(conversation: Sequence[BaseMessage]) -> list[int]:
    """Every cut (evict ``conversation[:c]``) the rules allow, found by brute force."""
    latest = _latest_human(conversation)
    upper = latest if latest is not None else len(conversation) - 1
    return [
        c
        for c in range(1, upper + 1)
        if not isinstance(conversation[c], ToolMessage)
        and not _groups_split(conversation[:c], conversation[c:])
    ]


def _reference_cut(
    conversation: Sequence[BaseMessage], ratio: float, safe: list[int] | None = None
) -> int | None:
    """The documented rule: the nearest safe cut at or before the target, else after it."""
    n = len(conversation)
    safe = _safe_cuts(conversation) if safe is None else safe
    if n < 2 or not safe:
        return None
    latest = _latest_human(conversation)
    upper = latest if latest is not None else n - 1
    target = min(max(1, math.floor(ratio * n + 1e-9)), upper)
    below = [c for c in safe if c <= target]
    return max(below) if below else min(safe)


def _visible_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "image_url":
            parts.append("[image]")
    return "\n".join(parts)


def _summarisable(message: BaseMessage, handoffs: set[str]) -> bool:
    """Whether the extractive summariser should write a line for ``message``.

    ``handoffs`` holds the ids of the batch's tool calls whose results are marked as
    hand-offs: those results, and calls that are all hand-offs with no text, get no line.
    """
    if isinstance(message, ToolMessage) and message.tool_call_id in handoffs:
        return False
    if _visible_text(message.content).strip():
        return True
    if isinstance(message, AIMessage) and message.tool_calls:
        return not all(call["id"] in handoffs for call in message.tool_calls)
    return False


def _handoff_ids(batch: Sequence[BaseMessage]) -> set[str]:
    return {
        m.tool_call_id
        for m in batch
        if isinstance(m, ToolMessage) and "__handoff_destination" in m.response_metadata
    }


def _summary_body(message: BaseMessage) -> str:
    return _visible_text(message.content).removeprefix(SUMMARY_PREFIX).strip()


def _is_own(summary_body: str) -> bool:
    """Whether the extractive summariser wrote this summary."""
    lines = [line for line in summary_body.splitlines() if line.strip()]
    return bool(lines) and lines[0] == _EXTRACTIVE_HEADER


def _same_item(old: str, new: str) -> bool:
    """Whether ``new`` is the summary line ``old``, shortened at most."""
    old_who, _, old_text = old.partition(": ")
    new_who, _, new_text = new.partition(": ")
    if old_who != new_who:
        return False
    if old_who == "- earlier summary" or new_text == old_text:
        return new_text == old_text
    return old_text.startswith(new_text.removesuffix("…").rstrip())


def _items(summary_body: str) -> int:
    """How many messages (or foreign summaries) a summary accounts for."""
    if not summary_body:
        return 0
    lines = [line for line in summary_body.splitlines() if line.strip()]
    if not _is_own(summary_body):
        return 1
    return sum(int(m.group(1)) if (m := _MARKER_LINE.match(line)) else 1 for line in lines[1:])


def _snapshot(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    return [m.model_copy(deep=True) for m in messages]


def _assert_valid_history(messages: Sequence[BaseMessage]) -> None:
    assert openai_violations(messages) == []
    assert anthropic_violations(messages) == []


# ---------------------------------------------------------------- properties


def _check_compaction(
    messages: list[BaseMessage], ratio: float, result: Any, *, exact: bool = True
) -> None:
    """Every property of one `compact_messages` result on ``messages``.

    With ``exact``, the cut must also be the one the documented rule gives
    (`_reference_cut`); without it, only the safety properties are checked.
    """
    parts = split_history(messages)
    conversation = parts.conversation
    event(f"{len(conversation) // 10 * 10}+ conversation messages")
    if exact:
        cut = _reference_cut(conversation, ratio)
        if cut is None:
            event("no safe cut")
            assert result is None
            return
        assert result is not None
    elif result is None:
        event("no cut")
        return
    else:
        cut = len(result.summarized)
    event(f"kept starts with {type(conversation[cut]).__name__}")
    # The kept part is exactly a suffix; evicted + kept is the conversation.
    assert len(result.kept) == len(conversation) - cut
    assert all(a is b for a, b in zip(result.kept, conversation[cut:], strict=True))
    assert all(a is b for a, b in zip(result.summarized, conversation[:cut], strict=True))
    assert result.summarized and result.kept
    # System messages unchanged and first; one summary right after them; then the kept part.
    system = parts.system
    out = result.messages
    assert all(a is b for a, b in zip(out[: len(system)], system, strict=True))
    assert out[len(system)] is result.summary_message
    assert all(a is b for a, b in zip(out[len(system) + 1 :], result.kept, strict=True))
    assert len(out) == len(system) + 1 + len(result.kept)
    assert [i for i, m in enumerate(out) if is_summary(m)] == [len(system)]
    assert not any(isinstance(m, SystemMessage) for m in out[len(system) :])
    assert result.summary_message.content == SUMMARY_PREFIX + result.summary
    # Provider rules.
    _assert_valid_history(out)
    # Safe boundary: no tool result first, no tool-call id on both sides, latest human kept.
    assert not isinstance(result.kept[0], ToolMessage)
    assert not _groups_split(result.summarized, result.kept)
    latest = _latest_human(conversation)
    if latest is not None:
        assert any(m is conversation[latest] for m in result.kept)
    # The earlier summary's content reached the new one, and every evicted message counts.
    body = _summary_body(parts.summary) if parts.summary is not None else ""
    event("earlier summary: " + ("none" if not body else "own" if _is_own(body) else "foreign"))
    if any(_MARKER_LINE.match(line) for line in result.summary.splitlines()):
        event("summary folded")
    assert (result.previous_summary or "") == body
    summary_text = result.summary
    if body and not _is_own(body):  # foreign: carried whole
        assert " ".join(body.split()) in summary_text
    if _is_own(body):  # its own lines come first, in order, at most shortened
        old_lines = [line for line in body.splitlines()[1:] if line.strip()]
        for old, new in zip(old_lines, summary_text.splitlines()[1:], strict=False):
            if _MARKER_LINE.match(old) or _MARKER_LINE.match(new):
                break
            assert _same_item(old, new), (old, new)
    handoffs = _handoff_ids(result.summarized)
    expected = _items(body) + sum(1 for m in result.summarized if _summarisable(m, handoffs))
    assert _items(summary_text) == expected


@settings(max_examples=EXAMPLES["plan"], **_PROFILE)
@given(messages=histories(), ratio=RATIOS)
def test_plan_cut_on_any_history_and_every_ratio(messages: list[BaseMessage], ratio: float) -> None:
    """The cut, for the drawn ratio and for every distinct target the history allows."""
    _assert_valid_history(messages)  # the generator only makes valid histories
    parts = split_history(messages)
    conversation = parts.conversation
    n = len(conversation)
    safe = _safe_cuts(conversation)
    checked: set[int] = set()
    for r in [ratio, *(k / n for k in range(1, n))]:
        plan = plan_cut(messages, r)
        cut = _reference_cut(conversation, r, safe)
        if cut is None:
            assert plan is None, r
            continue
        assert plan is not None, r
        assert len(plan.evicted) == cut, r
        assert plan.evicted + plan.kept == conversation
        assert plan.parts.system == parts.system
        assert plan.parts.summary is parts.summary
        if cut in checked:
            continue
        checked.add(cut)
        assert not isinstance(plan.kept[0], ToolMessage)
        assert not _groups_split(plan.evicted, plan.kept)
        compacted = [*parts.system, _summary_message("summary", "s"), *plan.kept]
        _assert_valid_history(compacted)


@settings(max_examples=EXAMPLES["compaction"], **_PROFILE)
@given(messages=histories(), ratio=RATIOS)
def test_compact_messages_on_any_history(messages: list[BaseMessage], ratio: float) -> None:
    before = _snapshot(messages)
    original = list(messages)
    result = _MANAGER.compact_messages(messages, compaction_ratio=ratio)
    assert messages == before  # nothing mutated
    assert all(a is b for a, b in zip(messages, original, strict=True))
    _check_compaction(messages, ratio, result)


@settings(max_examples=EXAMPLES["chain"], **_PROFILE)
@given(session=sessions())
def test_repeated_compactions_stay_valid(session: tuple[list[BaseMessage], list[Step]]) -> None:
    """Compact, maybe add a turn, compact again: each step keeps every property."""
    messages, steps = session
    parts = split_history(messages)
    first = parts.summary
    compactions = summarized = 0
    for ratio, turn in steps:
        result = _MANAGER.compact_messages(messages, compaction_ratio=ratio)
        _check_compaction(messages, ratio, result)
        if result is not None:
            messages = result.messages
            assert all(a is b for a, b in zip(messages, parts.system, strict=False))
            compactions += 1
            summarized += len(result.summarized)
            meta = result.summary_message.response_metadata[METADATA_KEY]
            assert meta["compactions"] == compactions
            assert meta["messages_summarized"] == summarized
            assert meta["messages_kept"] == len(result.kept)
        if turn is not None:
            messages = [*messages, *turn]
            _assert_valid_history(messages)
    # A foreign earlier summary survives any number of compactions, whole.
    summary = split_history(messages).summary
    if first is not None and summary is not first:
        body = _summary_body(first)
        if body and not _is_own(body):
            assert summary is not None
            assert " ".join(body.split()) in _summary_body(summary)


@settings(max_examples=EXAMPLES["async"], **_PROFILE)
@given(messages=histories(), ratio=RATIOS)
def test_async_compaction_matches_sync(messages: list[BaseMessage], ratio: float) -> None:
    sync = _MANAGER.compact_messages(messages, compaction_ratio=ratio)
    result = asyncio.run(_MANAGER.acompact_messages(messages, compaction_ratio=ratio))
    _check_compaction(messages, ratio, result)
    if sync is None:
        assert result is None
        return
    assert result is not None
    assert result.summary == sync.summary
    assert result.kept == sync.kept
    assert result.summarized == sync.summarized


@settings(max_examples=EXAMPLES["reused_ids"], **_PROFILE)
@given(messages=histories(reuse_tool_ids=True), ratio=RATIOS)
def test_reused_tool_call_ids_are_never_split(messages: list[BaseMessage], ratio: float) -> None:
    """Ids repeated across rounds: the cut may be conservative, but is always safe."""
    assert openai_violations(messages) == []
    result = _MANAGER.compact_messages(messages, compaction_ratio=ratio)
    _check_compaction(messages, ratio, result, exact=False)


def test_blank_text_beside_tool_calls_is_summarised() -> None:
    """Found by these properties: blank text beside tool calls lost the calls."""
    messages = [
        HumanMessage("Weather in Paris?"),
        AIMessage(" ", tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
        AIMessage("It is sunny."),
        HumanMessage("Thanks"),
    ]
    result = _MANAGER.compact_messages(messages, compaction_ratio=0.8)
    assert result is not None
    assert len(result.summarized) == 4
    assert "called lookup" in result.summary


def test_generated_history_count() -> None:
    """The figure the README's Guarantees section quotes."""
    print(f"property tests check {GENERATED_HISTORIES} generated histories")
    assert GENERATED_HISTORIES >= 700


# ---------------------------------------------------------------- the count after each run


_OPERATIONS = st.lists(
    st.sampled_from(
        [
            "turn",
            "rewriting_turn",
            "dropping_turn",
            "bare_turn",
            "edit",
            "remove",
            "append",
            "compact",
            "wrapped_edit",
            "rewrite",
            "fork",
        ]
    ),
    min_size=1,
    max_size=8,
)
_TURNS = {"turn": "step", "rewriting_turn": "rewrite", "dropping_turn": "drop"}


def _graph(saver: Any) -> Any:
    """A chat graph whose run appends a reply, or on request changes an older message in
    place (same id) or removes one, as a node of any graph may."""
    from langgraph.graph import START, MessagesState, StateGraph

    def assistant(state: MessagesState) -> dict[str, Any]:
        messages = state["messages"]
        last = messages[-1].text
        if last.startswith("rewrite"):
            target = messages[len(messages) // 2]
            return {"messages": [target.model_copy(update={"content": "rewritten " * 9})]}
        if last.startswith("drop"):
            return {"messages": [RemoveMessage(id=str(messages[1].id)), AIMessage("dropped")]}
        return {"messages": [AIMessage(f"Reply to {last}: " + "some words " * 8)]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    return builder.compile(checkpointer=saver)


def _supervisor(graph: Any, recorder: Any) -> CompactingSupervisor:
    """The wrapper under test, counting from what runs added however short the thread
    (as it does from `MARK_FROM` messages on SQLite and Postgres)."""
    summariser = ScriptedChatModel(responses=["Summary: the user asked, the agent replied."])
    supervisor = CompactingSupervisor(graph, HistoryManager(model=summariser), trigger=recorder)
    supervisor._mark_from.clear()
    return supervisor


def _check_counts(recorder: RecordingTrigger) -> None:
    counter = TokenCounter()
    for messages, tokens in recorder.seen:
        assert tokens == counter.count(messages)


def _edits(messages: list[BaseMessage], step: int) -> dict[str, dict[str, Any]]:
    """The state updates another writer makes: a message changed in place, one removed, one
    appended (each keeps the others' ids)."""
    target = messages[step % len(messages)]
    changed = target.model_copy(update={"content": f"edited {step}: {target.text} " * 3})
    return {
        "edit": {"messages": [changed]},
        "remove": {"messages": [RemoveMessage(id=str(target.id))]},
        "append": {"messages": [AIMessage(f"a note {step} written outside any run")]},
    }


def _rewritten(messages: list[BaseMessage], step: int) -> list[BaseMessage]:
    """The same messages, one of them with other content (its id kept)."""
    index = step % len(messages)
    changed = messages[index].model_copy(update={"content": f"rewritten {step} " * 7})
    return [*messages[:index], changed, *messages[index + 1 :]]


def _write_outside_runs(
    supervisor: CompactingSupervisor, config: Any, operation: str, step: int, messages: Any
) -> bool:
    """Make ``operation`` if it writes the thread outside a run; whether it did."""
    graph = supervisor.agent
    if operation in ("edit", "remove", "append"):
        graph.update_state(config, _edits(messages, step)[operation])
    elif operation == "wrapped_edit":
        supervisor.update_state(config, _edits(messages, step)["edit"])
    elif operation == "rewrite":  # a checkpoint rewrite: same length, one message changed
        supervisor.history_manager.replace_thread_history(config, _rewritten(messages, step))
    elif operation == "compact":
        with contextlib.suppress(CompactionError):  # too short to shrink: left as is
            supervisor.compact(config, keep=0.5)
    else:
        return False
    return True


async def _awrite_outside_runs(
    supervisor: CompactingSupervisor, config: Any, operation: str, step: int, messages: Any
) -> bool:
    """Async form of `_write_outside_runs`."""
    graph = supervisor.agent
    if operation in ("edit", "remove", "append"):
        await graph.aupdate_state(config, _edits(messages, step)[operation])
    elif operation == "wrapped_edit":
        await supervisor.aupdate_state(config, _edits(messages, step)["edit"])
    elif operation == "rewrite":
        rewritten = _rewritten(messages, step)
        await supervisor.history_manager.areplace_thread_history(config, rewritten)
    elif operation == "compact":
        with contextlib.suppress(CompactionError):
            await supervisor.acompact(config, keep=0.5)
    else:
        return False
    return True


def _exact_after_every_run(saver_kind: str, operations: list[str], tmp: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(tmp / "count.sqlite", check_same_thread=False)
    saver = InMemorySaver() if saver_kind == "memory" else SqliteSaver(conn)
    graph = _graph(saver)
    recorder = RecordingTrigger()
    supervisor = _supervisor(graph, recorder)
    config: dict[str, Any] = {"configurable": {"thread_id": "count"}}
    for turn in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
    for step, operation in enumerate(operations):
        messages = supervisor.get_state(config).values["messages"]
        if operation in _TURNS:
            text = f"{_TURNS[operation]} {step}"
            supervisor.invoke({"messages": [HumanMessage(text)]}, config)
        elif operation == "bare_turn":
            graph.invoke({"messages": [HumanMessage(f"bare {step}")]}, config)
        elif _write_outside_runs(supervisor, config, operation, step, messages):
            pass
        else:  # a run from an older checkpoint (time travel)
            older = list(supervisor.get_state_history(config))[3].config
            supervisor.invoke({"messages": [HumanMessage(f"fork {step}")]}, older)
        supervisor.invoke({"messages": [HumanMessage(f"after {step}")]}, config)
    _check_counts(recorder)
    conn.close()


async def _aexact_after_every_run(saver_kind: str, operations: list[str], tmp: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with contextlib.AsyncExitStack() as stack:
        if saver_kind == "memory":
            saver: Any = InMemorySaver()
        else:
            path = str(tmp / "acount.sqlite")
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(path))
        graph = _graph(saver)
        recorder = RecordingTrigger()
        supervisor = _supervisor(graph, recorder)
        config: dict[str, Any] = {"configurable": {"thread_id": "count"}}
        for turn in range(3):
            await supervisor.ainvoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
        for step, operation in enumerate(operations):
            messages = (await supervisor.aget_state(config)).values["messages"]
            if operation in _TURNS:
                text = f"{_TURNS[operation]} {step}"
                await supervisor.ainvoke({"messages": [HumanMessage(text)]}, config)
            elif operation == "bare_turn":
                await graph.ainvoke({"messages": [HumanMessage(f"bare {step}")]}, config)
            elif await _awrite_outside_runs(supervisor, config, operation, step, messages):
                pass
            else:
                history = [s async for s in supervisor.aget_state_history(config)]
                older = history[3].config
                await supervisor.ainvoke({"messages": [HumanMessage(f"fork {step}")]}, older)
            await supervisor.ainvoke({"messages": [HumanMessage(f"after {step}")]}, config)
        _check_counts(recorder)


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=_OPERATIONS)
def test_the_count_after_each_run_is_exact_whoever_wrote_the_thread(
    saver_kind: str, operations: list[str]
) -> None:
    """Runs, runs of the bare graph, update_state (a message changed in place by id,
    removed, appended), compactions and time travel in any order: after every run the
    trigger is shown the exact count of the thread's messages (the count kept from the
    last run is reused only when runs alone appended since)."""
    with tempfile.TemporaryDirectory() as tmp:
        _exact_after_every_run(saver_kind, operations, Path(tmp))


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=_OPERATIONS)
def test_async_the_count_after_each_run_is_exact_whoever_wrote_the_thread(
    saver_kind: str, operations: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_aexact_after_every_run(saver_kind, operations, Path(tmp)))


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_runs_that_only_append_are_counted_from_the_last_count(run_async: bool) -> None:
    """On InMemorySaver the count kept is reused: each run counts only its new messages."""
    from langgraph.checkpoint.memory import InMemorySaver

    recorder = RecordingTrigger()
    supervisor = CompactingSupervisor(chat_graph(InMemorySaver()), trigger=recorder)
    config = {"configurable": {"thread_id": "reuse"}}
    counted: list[int] = []
    original = supervisor.history_manager.token_counter.count_message

    def count_message(message: BaseMessage) -> int:
        counted.append(1)
        return original(message)

    supervisor.history_manager.token_counter.count_message = count_message  # type: ignore[method-assign]

    async def turns() -> None:
        for turn in range(6):
            message = {"messages": [HumanMessage(f"turn {turn}")]}
            if run_async:
                await supervisor.ainvoke(message, config)
            else:
                supervisor.invoke(message, config)

    asyncio.run(turns())
    # The first run counts its two messages whole (anchored on the head before it), each
    # later run its own two new messages only; every figure exact.
    assert len(counted) == 2 * 6
    _check_counts(recorder)


# ------------------------------------------- the count kept between runs, against the store

_STORE_OPERATIONS = st.lists(
    st.sampled_from(
        [
            "turn",
            "turn",
            "tuple_turn",
            "exit_turn",
            "edit_turn",
            "exit_edit_turn",
            "rewriting_turn",
            "dropping_turn",
            "bare_turn",
            "other_worker",
            "edit",
            "remove",
            "append",
            "wrapped_edit",
            "rewrite",
            "compact",
            "fork",
        ]
    ),
    min_size=1,
    max_size=10,
)
_THREAD = "kept"


def _long_enough(operation: str, messages: list[BaseMessage]) -> str:
    """``operation``, or a plain turn where the thread is too short for a removal."""
    return "turn" if operation in ("remove", "dropping_turn") and len(messages) < 4 else operation


def _stored(snapshot: Any) -> list[BaseMessage]:
    return list(snapshot.values.get("messages") or [])


class _Store:
    """The wrapper under test, a second worker on the same saver, and the checks."""

    def __init__(self, saver: Any) -> None:
        self.graph = _graph(saver)
        self.recorder = RecordingTrigger()
        self.supervisor = _supervisor(self.graph, self.recorder)
        self.other = _supervisor(self.graph, RecordingTrigger())  # another worker: its own counts
        self.config: dict[str, Any] = {"configurable": {"thread_id": _THREAD}}
        self.counter = TokenCounter()

    def run(
        self, operation: str, step: int, messages: list[BaseMessage]
    ) -> tuple[str, Any, dict[str, Any]]:
        """The call an operation makes: which form, its input and its keyword arguments."""
        exit_mode = {"durability": "exit"}  # only the run's last checkpoint is stored
        if operation in _TURNS:
            return "supervisor", {"messages": [HumanMessage(f"{_TURNS[operation]} {step}")]}, {}
        if operation == "tuple_turn":
            return "supervisor", {"messages": [("user", f"a tuple {step}")]}, {}
        if operation == "exit_turn":
            return "supervisor", {"messages": [HumanMessage(f"exit {step}")]}, exit_mode
        if operation in ("edit_turn", "exit_edit_turn"):
            # The input changes the newest message by id, and the run changes an older one:
            # the thread does not grow.
            edited = messages[-1].model_copy(update={"content": f"rewrite {step}"})
            kwargs = exit_mode if operation == "exit_edit_turn" else {}
            return "supervisor", {"messages": [edited]}, kwargs
        if operation == "other_worker":
            return "other", {"messages": [HumanMessage(f"other {step}")]}, {}
        return "graph", {"messages": [HumanMessage(f"bare {step}")]}, {}

    def check_run(self, stored: list[BaseMessage]) -> None:
        """The trigger was shown the exact count of what the thread now stores."""
        assert self.recorder.seen[-1][1] == self.counter.count(stored)

    def kept(self) -> tuple[dict[str, Any], int, int] | None:
        """The count the wrapper keeps: its checkpoint's config, length and tokens."""
        kept = self.supervisor._counted.get(_THREAD)
        if kept is None:
            return None
        at = {"configurable": {"thread_id": _THREAD, "checkpoint_id": kept.checkpoint_id}}
        return at, kept.length, kept.tokens

    def check_kept(self, at: list[BaseMessage], length: int, tokens: int) -> None:
        """What the wrapper keeps is true of the checkpoint it names."""
        assert (length, tokens) == (len(at), self.counter.count(at))


def _kept_exact(saver: Any, operations: list[str]) -> None:
    store = _Store(saver)
    graph, supervisor, config = store.graph, store.supervisor, store.config
    for turn in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
    for step, planned in enumerate([*operations, "turn"]):
        messages = _stored(graph.get_state(config))
        operation = _long_enough(planned, messages)
        if _write_outside_runs(supervisor, config, operation, step, messages):
            pass
        elif operation == "fork":
            older = list(graph.get_state_history(config))[3].config
            supervisor.invoke({"messages": [HumanMessage(f"fork {step}")]}, older)
            store.check_run(_stored(graph.get_state(config)))
        else:
            form, value, kwargs = store.run(operation, step, messages)
            runner = {"supervisor": supervisor, "other": store.other, "graph": graph}[form]
            runner.invoke(value, config, **kwargs)
            if form == "supervisor":
                store.check_run(_stored(graph.get_state(config)))
        if (kept := store.kept()) is not None:
            store.check_kept(_stored(graph.get_state(kept[0])), kept[1], kept[2])


async def _akept_exact(saver: Any, operations: list[str]) -> None:
    store = _Store(saver)
    graph, supervisor, config = store.graph, store.supervisor, store.config
    for turn in range(3):
        await supervisor.ainvoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
    for step, planned in enumerate([*operations, "turn"]):
        messages = _stored(await graph.aget_state(config))
        operation = _long_enough(planned, messages)
        if await _awrite_outside_runs(supervisor, config, operation, step, messages):
            pass
        elif operation == "fork":
            older = [s async for s in graph.aget_state_history(config)][3].config
            await supervisor.ainvoke({"messages": [HumanMessage(f"fork {step}")]}, older)
            store.check_run(_stored(await graph.aget_state(config)))
        else:
            form, value, kwargs = store.run(operation, step, messages)
            runner = {"supervisor": supervisor, "other": store.other, "graph": graph}[form]
            await runner.ainvoke(value, config, **kwargs)
            if form == "supervisor":
                store.check_run(_stored(await graph.aget_state(config)))
        if (kept := store.kept()) is not None:
            store.check_kept(_stored(await graph.aget_state(kept[0])), kept[1], kept[2])


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite", "postgres"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=_STORE_OPERATIONS)
def test_the_kept_count_is_the_stored_threads_count_after_every_step(
    saver_kind: str, operations: list[str]
) -> None:
    """Runs that append, replace by id, remove, pass tuples or store only their last
    checkpoint; another worker's runs, bare runs, update_state, a checkpoint rewrite, a
    compaction and time travel, in any order: after each of the wrapper's runs the trigger
    is shown the exact count of the messages the thread stores, and after every step the
    count the wrapper keeps between runs is the exact count of the checkpoint it names."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    with tempfile.TemporaryDirectory() as tmp:
        if saver_kind == "memory":
            _kept_exact(InMemorySaver(), operations)
            return
        if saver_kind == "postgres":
            with postgres_saver() as saver:
                _kept_exact(saver, operations)
            return
        with contextlib.closing(
            sqlite3.connect(Path(tmp) / "kept.sqlite", check_same_thread=False)
        ) as conn:
            _kept_exact(SqliteSaver(conn), operations)


@pytest.mark.parametrize("saver_kind", ["memory", "aiosqlite", "apostgres"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=_STORE_OPERATIONS)
def test_async_the_kept_count_is_the_stored_threads_count_after_every_step(
    saver_kind: str, operations: list[str]
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async def main(tmp: str) -> None:
        if saver_kind == "memory":
            await _akept_exact(InMemorySaver(), operations)
            return
        if saver_kind == "apostgres":
            async with apostgres_saver() as saver:
                await _akept_exact(saver, operations)
            return
        async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "akept.sqlite")) as saver:
            await _akept_exact(saver, operations)

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(tmp))
