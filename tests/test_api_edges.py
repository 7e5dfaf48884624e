"""The edges of the public API: binding, the public rewrite, batch and event streams."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from compacting_supervisor import (
    CompactingSupervisor,
    HistoryManager,
    StaleCheckpointError,
    ThreadBusyError,
)
from compacting_supervisor._messages import is_summary
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph

CONFIG = {"configurable": {"thread_id": "e"}}


def _turns(supervisor: CompactingSupervisor, n: int, config: Any = CONFIG) -> None:
    for i in range(n):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}")]}, config)


def test_the_users_manager_is_the_supervisors_and_uses_the_graphs_saver(saver: Any) -> None:
    history = HistoryManager()
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=100_000)
    assert supervisor.history_manager is history
    _turns(supervisor, 3)
    snapshot = supervisor.get_state(CONFIG)
    compaction = history.compact_messages(snapshot.values["messages"])
    new_config = history.replace_thread_history(snapshot.config, compaction.messages)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == new_config["configurable"]["checkpoint_id"]


def test_a_different_memory_saver_is_rejected() -> None:
    with pytest.raises(ValueError, match="`memory_saver` is not the checkpointer"):
        CompactingSupervisor(chat_graph(InMemorySaver()), HistoryManager(InMemorySaver()))


def test_unbound_manager_explains_how_to_get_a_saver() -> None:
    with pytest.raises(ValueError, match=r"HistoryManager\(memory_saver=\.\.\.\)"):
        HistoryManager().replace_thread_history(CONFIG, [HumanMessage("hi")])


@pytest.mark.parametrize("bad", [[], [("user", "hi")], ["just text"], "text", None])
def test_public_rewrite_validates_messages(saver: Any, bad: Any) -> None:
    history = HistoryManager(saver)
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=100_000)
    _turns(supervisor, 1)
    head = saver.get_tuple(CONFIG).checkpoint["id"]
    with pytest.raises(ValueError, match="`messages`"):
        history.replace_thread_history(CONFIG, bad)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == head


def test_public_rewrite_of_an_unknown_thread_says_so(saver: Any) -> None:
    with pytest.raises(StaleCheckpointError, match="no checkpoint yet"):
        HistoryManager(saver).replace_thread_history(
            {"configurable": {"thread_id": "nobody"}}, [HumanMessage("hi")]
        )


def _two_step_graph(checkpointer: Any) -> Any:
    def first(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("first step done")]}

    def ask(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("second step done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("first", first)
    builder.add_node("ask", ask)
    builder.add_edge(START, "first")
    builder.add_edge("first", "ask")
    return builder.compile(checkpointer=checkpointer, interrupt_before=["ask"])


def test_public_rewrite_with_graph_refuses_a_paused_thread(saver: Any) -> None:
    graph = _two_step_graph(saver)
    history = HistoryManager(saver)
    graph.invoke({"messages": [HumanMessage("go")]}, CONFIG)
    assert graph.get_state(CONFIG).next == ("ask",)
    head = saver.get_tuple(CONFIG).checkpoint["id"]
    with pytest.raises(ThreadBusyError, match="ask"):
        history.replace_thread_history(CONFIG, [HumanMessage("go")], graph=graph)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == head
    assert graph.invoke(None, CONFIG)["messages"][-1].content == "second step done"


async def test_async_public_rewrite_with_graph_refuses_a_paused_thread(asaver: Any) -> None:
    graph = _two_step_graph(asaver)
    history = HistoryManager(asaver)
    await graph.ainvoke({"messages": [HumanMessage("go")]}, CONFIG)
    with pytest.raises(ThreadBusyError):
        await history.areplace_thread_history(CONFIG, [HumanMessage("go")], graph=graph)


def test_compaction_keeps_the_runs_metadata(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    config = {"configurable": {"thread_id": "e", "user_id": "u-42"}}
    _turns(supervisor, 6, config)
    result = supervisor.compact(config)
    head = saver.get_tuple(CONFIG)
    assert head.checkpoint["id"] == result.checkpoint_id
    assert head.metadata["user_id"] == "u-42"
    assert head.metadata["source"] == "update"
    found = [c.checkpoint["id"] for c in saver.list(CONFIG, filter={"user_id": "u-42"})]
    assert result.checkpoint_id in found


def test_no_safe_cut_is_reported_as_skipped(saver: Any) -> None:
    calls = iter(range(1000))

    def reply(messages: list[Any]) -> AIMessage:
        n = next(calls)
        if n < 6:
            return AIMessage("", tool_calls=[{"name": "noop", "args": {"n": n}, "id": f"c{n}"}])
        return AIMessage("done")

    model = ScriptedChatModel(responses=[reply])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def tools(state: MessagesState) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]
        return {"messages": [ToolMessage("ok " * 30, tool_call_id=call["id"])]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else "__end__"

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route)
    builder.add_edge("tools", "agent")
    supervisor = CompactingSupervisor(builder.compile(checkpointer=saver), token_limit=100)
    supervisor.invoke({"messages": [HumanMessage("one long tool-calling turn")]}, CONFIG)
    result = supervisor.last_compaction(CONFIG)
    assert result.status == "skipped"
    assert "no safe place to cut" in result.error
    assert result.tokens_before > 100


def test_batch_compacts_each_thread(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=120)
    configs = [{"configurable": {"thread_id": f"b{i}"}} for i in range(2)]
    for _ in range(3):
        outputs = supervisor.batch([{"messages": [HumanMessage("hello there")]}] * 2, configs)
        assert len(outputs) == 2
    for config in configs:
        assert supervisor.last_compaction(config).status == "compacted"
        assert is_summary(supervisor.get_state(config).values["messages"][0])


async def test_abatch_compacts_each_thread(asaver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(asaver), token_limit=120)
    configs = [{"configurable": {"thread_id": f"b{i}"}} for i in range(2)]
    for _ in range(3):
        await supervisor.abatch([{"messages": [HumanMessage("hello there")]}] * 2, configs)
    for config in configs:
        assert supervisor.last_compaction(config).status == "compacted"


def test_stream_events_passes_through_and_compacts(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=200)
    _turns(supervisor, 4)
    assert supervisor.last_compaction(CONFIG) is None
    # LangGraph's sync stream_events needs its (beta) v3 protocol.
    events = list(
        supervisor.stream_events({"messages": [HumanMessage("more")]}, CONFIG, version="v3")
    )
    assert events
    assert supervisor.last_compaction(CONFIG).status == "compacted"


async def test_astream_events_passes_through_and_compacts(asaver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(asaver), token_limit=200)
    for i in range(4):
        await supervisor.ainvoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
    assert supervisor.last_compaction(CONFIG) is None
    events = [
        e async for e in supervisor.astream_events({"messages": [HumanMessage("more")]}, CONFIG)
    ]
    assert any(e["event"] == "on_chat_model_stream" for e in events)
    assert supervisor.last_compaction(CONFIG).status == "compacted"
