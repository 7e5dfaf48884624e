"""One compaction core, two ways to persist it.

The core (`compacting_supervisor._compaction.Compactor`) takes messages and settings and
returns an outcome, with no saver and no graph; the checkpoint rewrite (`HistoryManager`,
the wrapper) and the state update (a node of a graph) both persist that same outcome.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import START, MessagesState, StateGraph

from compacting_supervisor import (
    HistoryManager,
    KeepMessages,
    StaleCheckpointError,
    is_summary,
)
from compacting_supervisor._flow import adrive, drive
from compacting_supervisor._persist.state_update import replacing_update
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph


def _history(turns: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage("You help with hiring.")]
    for n in range(turns):
        messages += [
            HumanMessage(f"Question {n}: who is free on day {n}?", id=f"h{n}"),
            AIMessage(f"Answer {n}: candidate {n} is free on day {n}.", id=f"a{n}"),
        ]
    return messages


def _shape(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    """What a reader sees of a history: type and text (summary ids and times differ)."""
    return [(m.type, m.text) for m in messages]


def test_the_core_needs_no_saver_and_its_sync_and_async_drivers_agree() -> None:
    core = HistoryManager(model=ScriptedChatModel(responses=["Summary of days 0-3."]))._core()
    messages = _history(8)
    sync = drive(core.compact(messages, KeepMessages(4)))
    asyn = pytest.importorskip("asyncio").run(adrive(core.compact(messages, KeepMessages(4))))
    assert sync is not None
    assert asyn is not None
    assert _shape(sync.messages) == _shape(asyn.messages)
    assert sync.messages[0] == messages[0]
    assert is_summary(sync.messages[1])
    assert sync.messages[2:] == messages[-4:]
    assert sync.summarized == messages[1:-4]
    assert sync.tokens_after < sync.tokens_before
    assert sync.summarizer_calls == 1
    assert sync.offloaded_results == 0


def test_the_outcome_counts_what_the_manager_counts() -> None:
    manager = HistoryManager(
        model=ScriptedChatModel(responses=["The user greeted the assistant four times."])
    )
    messages = _history(6)
    compaction = manager.compact_messages(messages, keep=KeepMessages(2))
    assert compaction is not None
    assert compaction.tokens_before == manager.token_counter.count(messages)
    assert compaction.tokens_after == manager.token_counter.count(compaction.messages)


def _compacting_graph(checkpointer: Any, manager: HistoryManager, *, use_async: bool) -> Any:
    """A graph whose `compact` node persists the core's outcome as a state update."""

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Answer to: {state['messages'][-1].text}")]}

    def compact(state: MessagesState) -> dict[str, Any]:
        outcome = manager.compact_messages(state["messages"], keep=KeepMessages(2))
        return replacing_update(outcome.messages) if outcome and len(state["messages"]) > 6 else {}

    async def acompact(state: MessagesState) -> dict[str, Any]:
        outcome = await manager.acompact_messages(state["messages"], keep=KeepMessages(2))
        return replacing_update(outcome.messages) if outcome and len(state["messages"]) > 6 else {}

    builder = StateGraph(MessagesState)
    builder.add_node("compact", acompact if use_async else compact)
    builder.add_node("answer", answer)
    builder.add_edge(START, "compact")
    builder.add_edge("compact", "answer")
    return builder.compile(checkpointer=checkpointer)


KEPT_AFTER_FIVE_TURNS = [
    "Answer to: Turn 2",
    "Turn 3",
    "Answer to: Turn 3",
    "Turn 4",
    "Answer to: Turn 4",
]
"""Compacted at turn 3 (7 messages): the last answer and the new question were kept."""


def _turns(graph: Any, config: dict[str, Any]) -> list[Any]:
    return [graph.invoke({"messages": [HumanMessage(f"Turn {n}")]}, config) for n in range(5)]


def test_a_state_update_persists_the_compaction_and_keeps_every_original(saver: Any) -> None:
    manager = HistoryManager(model=ScriptedChatModel(responses=["Turns so far, summarised."]))
    graph = _compacting_graph(saver, manager, use_async=False)
    config = {"configurable": {"thread_id": "node"}}
    _turns(graph, config)
    messages = graph.get_state(config).values["messages"]
    assert is_summary(messages[0])
    assert [m.text for m in messages[1:]] == KEPT_AFTER_FIVE_TURNS
    originals = {
        m.text for s in graph.get_state_history(config) for m in s.values.get("messages", [])
    }
    assert {f"Turn {n}" for n in range(5)} <= originals
    assert {f"Answer to: Turn {n}" for n in range(5)} <= originals


async def test_a_state_update_persists_the_compaction_async(asaver: Any) -> None:
    manager = HistoryManager(model=ScriptedChatModel(responses=["Turns so far, summarised."]))
    graph = _compacting_graph(asaver, manager, use_async=True)
    config = {"configurable": {"thread_id": "anode"}}
    for n in range(5):
        await graph.ainvoke({"messages": [HumanMessage(f"Turn {n}")]}, config)
    messages = (await graph.aget_state(config)).values["messages"]
    assert is_summary(messages[0])
    assert [m.text for m in messages[1:]] == KEPT_AFTER_FIVE_TURNS
    originals = {
        m.text async for s in graph.aget_state_history(config) for m in s.values["messages"]
    }
    assert {f"Turn {n}" for n in range(5)} <= originals


# ---------------------------------------------------------------- a thread id or a config


def _compacted_thread(saver: Any) -> tuple[HistoryManager, Any]:
    manager = HistoryManager(
        model=ScriptedChatModel(responses=["The user greeted the assistant four times."])
    )
    graph = chat_graph(saver)
    for n in range(4):
        graph.invoke(
            {"messages": [HumanMessage(f"Hello {n}")]}, {"configurable": {"thread_id": "t1"}}
        )
    return manager, graph


def test_every_manager_method_takes_a_thread_id_or_a_config(saver: Any) -> None:
    manager, graph = _compacted_thread(saver)
    config = {"configurable": {"thread_id": "t1"}}
    result = manager.compact_thread("t1", graph=graph, keep=KeepMessages(2))
    assert result is not None
    assert result.thread_id == "t1"
    assert manager.transcript("t1", graph=graph).thread_id == "t1"
    assert manager.transcript("t1", graph=graph) == manager.transcript(config, graph=graph)
    assert manager.thread_stats("t1", graph=graph) == manager.thread_stats(config, graph=graph)
    assert manager.thread_stats("t1", graph=graph).compactions == 1
    new = manager.replace_thread_history("t1", [HumanMessage("Only this")], graph=graph)
    assert new["configurable"]["thread_id"] == "t1"
    assert [m.text for m in graph.get_state(config).values["messages"]] == ["Only this"]


async def test_every_async_manager_method_takes_a_thread_id_or_a_config(asaver: Any) -> None:
    manager = HistoryManager(
        model=ScriptedChatModel(responses=["The user greeted the assistant four times."])
    )
    graph = chat_graph(asaver)
    for n in range(4):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"Hi {n}")]}, {"configurable": {"thread_id": "t1"}}
        )
    result = await manager.acompact_thread("t1", graph=graph, keep=KeepMessages(2))
    assert result is not None
    assert (await manager.atranscript("t1", graph=graph)).thread_id == "t1"
    assert (await manager.athread_stats("t1", graph=graph)).compactions == 1
    await manager.areplace_thread_history("t1", [HumanMessage("Only this")], graph=graph)
    state = await graph.aget_state({"configurable": {"thread_id": "t1"}})
    assert [m.text for m in state.values["messages"]] == ["Only this"]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (None, TypeError),
        (3, TypeError),
        ("", ValueError),
        ({}, ValueError),
        ({"configurable": {"thread_id": ""}}, ValueError),
    ],
)
def test_a_bad_thread_is_named_in_the_error(bad: Any, error: type[Exception]) -> None:
    manager = HistoryManager(
        model=ScriptedChatModel(responses=["The user greeted the assistant four times."])
    )
    calls = [
        lambda: manager.compact_thread(bad),
        lambda: manager.transcript(bad),
        lambda: manager.thread_stats(bad),
        lambda: manager.replace_thread_history(bad, [HumanMessage("x")]),
    ]
    for call in calls:
        with pytest.raises(error, match="`config`"):
            call()


def test_a_replacement_against_a_stale_snapshot_still_writes_nothing(saver: Any) -> None:
    manager, graph = _compacted_thread(saver)
    snapshot = graph.get_state({"configurable": {"thread_id": "t1"}})
    graph.invoke({"messages": [HumanMessage("one more")]}, {"configurable": {"thread_id": "t1"}})
    with pytest.raises(StaleCheckpointError):
        manager.replace_thread_history(snapshot.config, [HumanMessage("x")], graph=graph)


def test_token_counter_must_be_a_counter() -> None:
    with pytest.raises(TypeError, match="`token_counter`"):
        HistoryManager(token_counter="cl100k_base")  # type: ignore[arg-type]
