"""A thread over its limit always gets compacted, and no summariser call exceeds its budget.

Whatever holds a message's size (its text, a tool call's arguments, a tool result), it is
summarised in pieces that fit; no call reads more than ``summary_input_tokens`` or the
summariser model's own input window, prompt included; and the number of calls stays near
the least the input needs.
"""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from compacting_supervisor import (
    CompactingSupervisor,
    HistoryManager,
    KeepTokens,
    SummarizationError,
    TokenCounter,
)
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph

COUNTER = TokenCounter()
CONFIG = {"configurable": {"thread_id": "big"}}


def _facts_summariser(window: int | None = None) -> ScriptedChatModel:
    """Answers with every WORD-n marker it was shown, so the test sees what reached it."""

    def summarise(messages: list[BaseMessage]) -> str:
        request = str(messages[-1].content)
        found = sorted(set(re.findall(r"WORD-\d+", request)), key=lambda w: int(w[5:]))
        return "## Current state\n- seen " + (" ".join(found[:3] + found[-3:]) or "nothing")

    profile = {"max_input_tokens": window} if window else None
    return ScriptedChatModel(responses=[summarise], profile=profile)


def _write_file_history(words: int) -> list[BaseMessage]:
    body = " ".join(f"WORD-{n}" if n % 500 == 0 else "lorem" for n in range(words))
    call = {"name": "write_file", "args": {"path": "notes.md", "body": body}, "id": "w1"}
    return [
        HumanMessage("Write my notes to a file."),
        AIMessage("", tool_calls=[call]),
        ToolMessage("written", tool_call_id="w1", name="write_file"),
        AIMessage("Done: notes.md is written."),
        HumanMessage("Thanks. What next?"),
        AIMessage("Next we review the notes."),
    ]


def _prompt_sizes(model: ScriptedChatModel) -> list[int]:
    return [COUNTER.count(call) for call in model.calls]


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_bulk_in_tool_call_arguments_is_split_within_the_window(run_async: bool) -> None:
    """A write_file call with a 12,000-word body, a summariser window of 4,000 tokens."""
    model = _facts_summariser(window=4_000)
    history = HistoryManager(model=model)
    messages = _write_file_history(12_000)
    assert COUNTER.count(messages[:2]) > 12_000  # far larger than the window
    call = history.acompact_messages if run_async else history.compact_messages
    outcome = call(messages, compaction_ratio=0.9)
    compaction = asyncio.run(outcome) if run_async else outcome  # type: ignore[arg-type]
    assert compaction is not None
    budget = int(4_000 * 0.6)
    assert max(_prompt_sizes(model)) <= budget
    # Every marker of the body reached the summariser, in order, once each piece.
    shown = " ".join(str(call[-1].content).split("<new_messages>")[1] for call in model.calls)
    assert re.findall(r"WORD-\d+", shown) == [f"WORD-{n}" for n in range(0, 12_000, 500)]
    assert "write_file" in shown
    assert "notes.md" in shown


def test_no_call_exceeds_summary_input_tokens_and_calls_stay_near_the_least() -> None:
    model = _facts_summariser()
    history = HistoryManager(model=model, summary_input_tokens=1_000)
    messages: list[BaseMessage] = []
    for n in range(13):
        messages += [HumanMessage(f"question {n} " + "detail " * 60), AIMessage("ok " * 40)]
    compaction = history.compact_messages(messages, compaction_ratio=0.9)
    assert compaction is not None
    sizes = _prompt_sizes(model)
    assert max(sizes) <= 1_000
    # The least: the transcript's tokens over what one call leaves for it.
    core = history._core().summary
    prompt = core._prompt_tokens(None, [], 1_000)
    transcript = sum(core._size(m) for m in compaction.summarized)
    least = math.ceil(transcript / (1_000 - prompt - (1_000 - prompt) // 2))
    assert len(sizes) <= least + 1


def test_an_explicit_budget_never_exceeds_the_model_window() -> None:
    model = _facts_summariser(window=1_500)
    history = HistoryManager(model=model, summary_input_tokens=50_000)
    compaction = history.compact_messages(_write_file_history(3_000), compaction_ratio=0.9)
    assert compaction is not None
    assert max(_prompt_sizes(model)) <= 1_500


def test_a_budget_that_cannot_hold_the_prompt_is_named() -> None:
    history = HistoryManager(model=_facts_summariser(), summary_input_tokens=300)
    with pytest.raises(SummarizationError, match="`summary_input_tokens` \\(300\\)"):
        history.compact_messages(_write_file_history(200), compaction_ratio=0.9)


def test_a_thread_grown_by_a_huge_tool_call_gets_compacted(saver: Any) -> None:
    """End to end: the wrapper's next compaction succeeds and the thread shrinks."""
    model = _facts_summariser(window=3_000)
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model), token_limit=2_000
    )
    supervisor.update_state(CONFIG, {"messages": _write_file_history(8_000)})
    supervisor.invoke({"messages": [HumanMessage("And now?")]}, CONFIG)
    result = supervisor.last_compaction(CONFIG)
    assert result is not None
    assert result.status == "compacted"
    assert max(_prompt_sizes(model)) <= int(3_000 * 0.6)
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert COUNTER.count(messages) < 2_000


async def test_a_thread_grown_by_a_huge_tool_call_gets_compacted_async(asaver: Any) -> None:
    model = _facts_summariser(window=3_000)
    supervisor = CompactingSupervisor(
        chat_graph(asaver), HistoryManager(model=model), token_limit=2_000
    )
    await supervisor.aupdate_state(CONFIG, {"messages": _write_file_history(8_000)})
    await supervisor.ainvoke({"messages": [HumanMessage("And now?")]}, CONFIG)
    result = supervisor.last_compaction(CONFIG)
    assert result is not None
    assert result.status == "compacted"
    assert max(_prompt_sizes(model)) <= int(3_000 * 0.6)


# ---------------------------------------------------------------------------- property

_TEXT = st.text(alphabet="abcdefghij klmnop<>{}:\"'/\n", min_size=1, max_size=60)
_MESSAGE = st.one_of(
    st.builds(lambda t, n: HumanMessage(f"{t} " * n), _TEXT, st.integers(1, 20)),
    st.builds(lambda t, n: AIMessage(f"{t} " * n), _TEXT, st.integers(1, 20)),
    st.builds(
        lambda t, n: AIMessage(
            "", tool_calls=[{"name": "save", "args": {"body": f"{t} " * n}, "id": "c"}]
        ),
        _TEXT,
        st.integers(1, 40),
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    history=st.lists(_MESSAGE, min_size=4, max_size=30),
    window=st.sampled_from([2_500, 4_000, 8_000]),
    on_sqlite=st.booleans(),
)
def test_any_history_over_its_limit_ends_under_it_with_every_original_archived(
    history: list[BaseMessage], window: int, on_sqlite: bool, tmp_path_factory: Any
) -> None:
    # Tool calls are answered, as a provider requires; each message under a tenth of the limit.
    limit = 3_000
    messages: list[BaseMessage] = [HumanMessage("Start.")]
    for n, message in enumerate(history):
        if COUNTER.count([message]) > limit // 10:
            continue
        if isinstance(message, AIMessage) and message.tool_calls:
            call = {**message.tool_calls[0], "id": f"c{n}"}
            messages += [
                message.model_copy(update={"tool_calls": [call]}),
                ToolMessage("saved", tool_call_id=f"c{n}", name="save"),
            ]
        else:
            messages.append(message)
    while COUNTER.count(messages) <= limit:  # over its limit, as a thread is when it compacts
        messages += [AIMessage("padding " * 250), HumanMessage("more " * 250)]
    messages.append(HumanMessage("Go on."))
    saver: Any
    if on_sqlite:
        path = Path(tmp_path_factory.mktemp("prop")) / "t.sqlite"
        saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    else:
        saver = InMemorySaver()
    model = _facts_summariser(window=window)
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model), token_limit=limit, keep=KeepTokens(1_200)
    )
    supervisor.update_state(CONFIG, {"messages": messages}, as_node="assistant")
    before = supervisor.get_state(CONFIG).values["messages"]
    result = supervisor.compact(CONFIG)
    assert result is not None
    assert result.succeeded
    after = supervisor.get_state(CONFIG).values["messages"]
    assert COUNTER.count(after) <= limit
    assert max(_prompt_sizes(model)) <= int(window * 0.6)
    archived = {m.id for m in supervisor.transcript(CONFIG).messages}
    assert {m.id for m in before} <= archived


def test_a_long_name_is_carried_once_not_on_every_piece() -> None:
    """A name too long to repeat on each piece moves into the text: few calls, none over."""
    model = _facts_summariser()
    history = HistoryManager(model=model, summary_input_tokens=1_000, max_summary_tokens=200)
    name = "-".join(f"w{i}" for i in range(300))  # about 600 tokens in the name alone
    messages: list[BaseMessage] = [
        HumanMessage("note: " + "the quick brown fox jumps over the lazy dog " * 40, name=name),
        AIMessage("ok"),
        HumanMessage("next"),
        AIMessage("ok"),
    ]
    compaction = history.compact_messages(messages, compaction_ratio=0.5)
    assert compaction is not None
    assert 1 < len(model.calls) <= 6
    assert max(_prompt_sizes(model)) <= 1_000


def test_a_summary_full_of_tags_never_takes_a_call_over_budget() -> None:
    """Tags in the running summary are escaped in the prompt and take more than counted."""

    def tagged(messages: list[BaseMessage]) -> str:
        return "## Artifacts (verbatim)\n" + "\n".join(
            f"- block {n} is <div id={n}>" for n in range(60)
        )

    model = ScriptedChatModel(responses=[tagged])
    history = HistoryManager(model=model, summary_input_tokens=1_200, max_summary_tokens=600)
    messages: list[BaseMessage] = []
    for n in range(30):
        messages += [HumanMessage(f"question {n} " + "detail " * 40), AIMessage("ok " * 20)]
    assert history.compact_messages(messages, compaction_ratio=0.9) is not None
    assert max(_prompt_sizes(model)) <= 1_200


def test_huge_backoff_waits_at_most_five_minutes() -> None:
    from compacting_supervisor._compaction.summarise import _MAX_BACKOFF

    assert _MAX_BACKOFF == 300.0
    history = HistoryManager(
        model=ScriptedChatModel(responses=["## Goal\n- fine"]), retry_backoff=1e300
    )
    assert history.retry_backoff == 1e300  # accepted: finite; each wait is capped
