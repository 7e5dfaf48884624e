"""Points 4, 5 and 8: the checkpoint rewrite, on InMemorySaver and SQLite, sync and async."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    StaleCheckpointError,
    ThreadBusyError,
)
from compacting_supervisor._messages import is_summary
from compacting_supervisor._persist.rewrite import waiting_nodes

from .helpers import (
    anthropic_violations,
    approval_graph,
    chat_graph,
    openai_violations,
    tool_agent,
)

CONFIG = {"configurable": {"thread_id": "thread-1"}}


def _history(supervisor: CompactingSupervisor) -> list[tuple[str | None, list[Any]]]:
    """Every checkpoint of the thread with its messages, oldest first."""
    return [
        (s.config["configurable"]["checkpoint_id"], list(s.values.get("messages", [])))
        for s in reversed(list(supervisor.get_state_history(CONFIG)))
    ]


async def _ahistory(supervisor: CompactingSupervisor) -> list[tuple[str | None, list[Any]]]:
    return [
        (s.config["configurable"]["checkpoint_id"], list(s.values.get("messages", [])))
        async for s in supervisor.aget_state_history(CONFIG)
    ][::-1]


def _assert_clean_rewrite(before: Any, after: Any, saver: Any) -> None:
    """The invariants of a correct compaction, given the head tuples around it."""
    old, new = before.checkpoint, after.checkpoint
    assert new["id"] > old["id"]
    assert new["ts"] > old["ts"]
    assert after.parent_config["configurable"]["checkpoint_id"] == old["id"]
    assert after.metadata["source"] == "update"
    assert after.metadata["step"] == before.metadata["step"] + 1
    assert after.metadata["compacting_supervisor"]["compacted_checkpoint_id"] == old["id"]
    changed = {
        k
        for k in new["channel_versions"]
        if new["channel_versions"][k] != old["channel_versions"].get(k)
    }
    assert changed == {"messages"}
    assert new["channel_versions"]["messages"] > old["channel_versions"]["messages"]
    assert new["versions_seen"] == old["versions_seen"]
    assert new["updated_channels"] == old.get("updated_channels")
    for key, value in old["channel_values"].items():
        if key != "messages":
            assert new["channel_values"][key] == value


def _run_turns(supervisor: CompactingSupervisor, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}: tell me more")]}, CONFIG)


async def _arun_turns(supervisor: CompactingSupervisor, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await supervisor.ainvoke({"messages": [HumanMessage(f"turn {i}: tell me more")]}, CONFIG)


def test_compaction_rewrites_only_messages_and_loses_nothing(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    _run_turns(supervisor, 6)
    before = saver.get_tuple(CONFIG)
    history_before = _history(supervisor)
    old_messages = supervisor.get_state(CONFIG).values["messages"]

    result = supervisor.compact(CONFIG)

    assert result is not None and result.succeeded
    after = saver.get_tuple(CONFIG)
    _assert_clean_rewrite(before, after, saver)
    assert result.previous_checkpoint_id == before.checkpoint["id"]
    assert result.checkpoint_id == after.checkpoint["id"]
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert is_summary(messages[0])
    assert messages[1:] == old_messages[-len(messages) + 1 :]
    assert result.messages_before == len(old_messages) == 12
    assert result.messages_summarized == 9  # the default: the oldest 80%
    assert result.messages_after == len(messages) == 4
    assert result.tokens_after < result.tokens_before
    # Nothing lost, nothing corrupted: every earlier checkpoint reads exactly as before.
    history_after = _history(supervisor)
    assert history_after[:-1] == history_before
    assert history_after[-1] == (result.checkpoint_id, messages)


async def test_async_compaction_rewrites_only_messages_and_loses_nothing(asaver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(asaver), token_limit=100_000)
    await _arun_turns(supervisor, 6)
    before = await asaver.aget_tuple(CONFIG)
    history_before = await _ahistory(supervisor)

    result = await supervisor.acompact(CONFIG)

    assert result is not None and result.succeeded
    after = await asaver.aget_tuple(CONFIG)
    _assert_clean_rewrite(before, after, asaver)
    history_after = await _ahistory(supervisor)
    assert history_after[:-1] == history_before
    assert is_summary(history_after[-1][1][0])


def test_next_turn_appends_after_the_compacted_history(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    _run_turns(supervisor, 4)
    supervisor.compact(CONFIG)
    compacted = supervisor.get_state(CONFIG).values["messages"]
    out = supervisor.invoke({"messages": [HumanMessage("after the compaction")]}, CONFIG)
    assert out["messages"][: len(compacted)] == compacted
    assert [m.type for m in out["messages"][len(compacted) :]] == ["human", "ai"]
    assert out["messages"][-2].content == "after the compaction"
    assert supervisor.get_state(CONFIG).next == ()


async def test_async_next_turn_appends_after_the_compacted_history(asaver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(asaver), token_limit=100_000)
    await _arun_turns(supervisor, 4)
    await supervisor.acompact(CONFIG)
    compacted = (await supervisor.aget_state(CONFIG)).values["messages"]
    out = await supervisor.ainvoke({"messages": [HumanMessage("after the compaction")]}, CONFIG)
    assert out["messages"][: len(compacted)] == compacted
    assert out["messages"][-2].content == "after the compaction"


def test_running_summary_carries_early_facts_through_many_compactions(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(max_summary_tokens=2_000), token_limit=300
    )
    supervisor.invoke({"messages": [HumanMessage("My employee number is 88231.")]}, CONFIG)
    _run_turns(supervisor, 12)
    compactions = [
        s for s in supervisor.get_state_history(CONFIG) if s.metadata.get("source") == "update"
    ]
    assert len(compactions) >= 3
    summary = supervisor.get_state(CONFIG).values["messages"][0]
    assert is_summary(summary)
    assert "88231" in summary.content
    assert summary.response_metadata["compacting_supervisor"]["compactions"] == len(compactions)


def test_llm_summariser_gets_previous_summary_and_only_new_messages(saver: Any) -> None:
    from compacting_supervisor.testing import ScriptedChatModel

    summaries = iter(["FIRST SUMMARY with code 4242.", "SECOND SUMMARY keeps code 4242."])
    model = ScriptedChatModel(responses=[lambda messages: next(summaries)])
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model), token_limit=100_000
    )
    _run_turns(supervisor, 4)
    supervisor.compact(CONFIG)
    _run_turns(supervisor, 3, start=4)
    supervisor.compact(CONFIG)

    first, second = (call[-1].content for call in model.calls)
    assert "(none yet)" in first
    assert "turn 0" in first
    assert "FIRST SUMMARY with code 4242." in second  # the running summary is fed back...
    assert "turn 0" not in second  # ...instead of the messages it already covers
    assert "Here is a summary" not in second.split("<new_messages>")[1]
    assert "turn 4" in second
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert messages[0].content.endswith("SECOND SUMMARY keeps code 4242.")
    assert sum(is_summary(m) for m in messages) == 1


def test_compacted_sqlite_history_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite"
    with sqlite3.connect(path, check_same_thread=False) as conn:
        supervisor = CompactingSupervisor(chat_graph(SqliteSaver(conn)), token_limit=100_000)
        _run_turns(supervisor, 5)
        result = supervisor.compact(CONFIG)
        expected = supervisor.get_state(CONFIG).values["messages"]
    with sqlite3.connect(path, check_same_thread=False) as conn:
        reopened = CompactingSupervisor(chat_graph(SqliteSaver(conn)), token_limit=100_000)
        state = reopened.get_state(CONFIG)
        assert state.config["configurable"]["checkpoint_id"] == result.checkpoint_id
        assert state.values["messages"] == expected
        out = reopened.invoke({"messages": [HumanMessage("still here?")]}, CONFIG)
        assert out["messages"][: len(expected)] == expected


def _interrupting_graph(checkpointer: Any) -> Any:
    return approval_graph(checkpointer, padding="details " * 60)


def test_interrupted_thread_is_not_compacted_until_it_resumes(saver: Any) -> None:
    supervisor = CompactingSupervisor(_interrupting_graph(saver), token_limit=50)
    for i in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"request {i} " + "words " * 40)]}, CONFIG)
        if i < 2:
            supervisor.invoke(Command(resume="yes"), CONFIG)
    state = supervisor.get_state(CONFIG)
    assert state.interrupts
    assert supervisor.last_compaction(CONFIG).status == "skipped"
    head = saver.get_tuple(CONFIG).checkpoint["id"]
    with pytest.raises(ThreadBusyError):
        supervisor.compact(CONFIG)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == head  # nothing written
    interrupt_id = state.interrupts[0].id
    out = supervisor.invoke(Command(resume={interrupt_id: "yes"}), CONFIG)
    assert out["messages"][-1].content.startswith("approved: yes")
    assert supervisor.last_compaction(CONFIG).status == "compacted"


async def test_async_interrupted_thread_is_not_compacted(asaver: Any) -> None:
    supervisor = CompactingSupervisor(_interrupting_graph(asaver), token_limit=50)
    await supervisor.ainvoke({"messages": [HumanMessage("request " + "words " * 80)]}, CONFIG)
    assert supervisor.last_compaction(CONFIG).status == "skipped"
    with pytest.raises(ThreadBusyError):
        await supervisor.acompact(CONFIG)
    out = await supervisor.ainvoke(Command(resume="ok"), CONFIG)
    assert out["messages"][-1].content.startswith("approved: ok")


def test_stale_head_writes_nothing(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    history = supervisor.history_manager
    _run_turns(supervisor, 3)
    snapshot = supervisor.get_state(CONFIG)
    compaction = history.compact_messages(snapshot.values["messages"], compaction_ratio=0.5)
    _run_turns(supervisor, 1, start=3)  # a run finishes meanwhile
    head = saver.get_tuple(CONFIG)
    with pytest.raises(StaleCheckpointError):
        history.replace_thread_history(snapshot.config, compaction.messages)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == head.checkpoint["id"]
    # Against the current head it goes through.
    new_config = history.replace_thread_history(CONFIG, compaction.messages)
    assert saver.get_tuple(CONFIG).checkpoint["id"] == new_config["configurable"]["checkpoint_id"]


async def test_async_stale_head_writes_nothing(asaver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(asaver), token_limit=100_000)
    history = supervisor.history_manager
    await _arun_turns(supervisor, 3)
    snapshot = await supervisor.aget_state(CONFIG)
    compaction = await history.acompact_messages(snapshot.values["messages"])
    await _arun_turns(supervisor, 1, start=3)
    with pytest.raises(StaleCheckpointError):
        await history.areplace_thread_history(snapshot.config, compaction.messages)


def test_compacted_tool_history_is_accepted_by_openai_and_anthropic(saver: Any) -> None:
    supervisor = CompactingSupervisor(tool_agent(saver), token_limit=350, compaction_ratio=0.6)
    for city_turn in range(6):
        supervisor.invoke({"messages": [HumanMessage(f"Trip {city_turn}: weather?")]}, CONFIG)
    compactions = [
        s for s in supervisor.get_state_history(CONFIG) if s.metadata.get("source") == "update"
    ]
    assert compactions
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert any(isinstance(m, ToolMessage) for m in messages)
    assert openai_violations(messages) == []
    assert anthropic_violations(messages) == []
    for snapshot in compactions:
        assert openai_violations(snapshot.values["messages"]) == []
        assert anthropic_violations(snapshot.values["messages"]) == []


def test_the_rule_checkers_catch_broken_histories() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "c1"}])
    assert openai_violations([HumanMessage("hi"), call, HumanMessage("?")])
    assert openai_violations([HumanMessage("hi"), ToolMessage("orphan", tool_call_id="zz")])
    assert anthropic_violations([AIMessage("I start"), HumanMessage("hi")])


async def test_async_running_summary_carries_early_facts(asaver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(asaver), HistoryManager(max_summary_tokens=2_000), token_limit=300
    )
    await supervisor.ainvoke({"messages": [HumanMessage("My employee number is 88231.")]}, CONFIG)
    await _arun_turns(supervisor, 12)
    compactions = [
        s
        async for s in supervisor.aget_state_history(CONFIG)
        if s.metadata.get("source") == "update"
    ]
    assert len(compactions) >= 3
    summary = (await supervisor.aget_state(CONFIG)).values["messages"][0]
    assert "88231" in summary.content
    assert summary.response_metadata["compacting_supervisor"]["compactions"] == len(compactions)


async def test_async_llm_summariser_gets_previous_summary(asaver: Any) -> None:
    from compacting_supervisor.testing import ScriptedChatModel

    summaries = iter(["FIRST SUMMARY with code 4242.", "SECOND SUMMARY keeps code 4242."])
    model = ScriptedChatModel(responses=[lambda messages: next(summaries)])
    supervisor = CompactingSupervisor(
        chat_graph(asaver), HistoryManager(model=model), token_limit=100_000
    )
    await _arun_turns(supervisor, 4)
    await supervisor.acompact(CONFIG)
    await _arun_turns(supervisor, 3, start=4)
    await supervisor.acompact(CONFIG)
    second = model.calls[-1][-1].content
    assert "FIRST SUMMARY with code 4242." in second
    assert "turn 0" not in second
    messages = (await supervisor.aget_state(CONFIG)).values["messages"]
    assert messages[0].content.endswith("SECOND SUMMARY keeps code 4242.")


async def test_async_compacted_tool_history_is_accepted_by_providers(asaver: Any) -> None:
    supervisor = CompactingSupervisor(tool_agent(asaver), token_limit=350, compaction_ratio=0.6)
    for turn in range(6):
        await supervisor.ainvoke({"messages": [HumanMessage(f"Trip {turn}: weather?")]}, CONFIG)
    compactions = [
        s
        async for s in supervisor.aget_state_history(CONFIG)
        if s.metadata.get("source") == "update"
    ]
    assert compactions
    for snapshot in [await supervisor.aget_state(CONFIG), *compactions]:
        assert openai_violations(snapshot.values["messages"]) == []
        assert anthropic_violations(snapshot.values["messages"]) == []


# ------------------------------------------------- a thread paused before a node (issue 18, part 5)


def _paused_before_agent(checkpointer: Any) -> Any:
    """The chat graph compiled with ``interrupt_before=["assistant"]``."""
    return chat_graph(checkpointer).builder.compile(
        checkpointer=checkpointer, interrupt_before=["assistant"]
    )


def test_a_thread_paused_before_a_node_is_left_alone_without_the_graph(saver: Any) -> None:
    graph = _paused_before_agent(saver)
    for i in range(4):
        graph.invoke({"messages": [HumanMessage(f"request {i} " + "words " * 40)]}, CONFIG)
        if i < 3:
            graph.invoke(None, CONFIG)  # resume: the assistant answers
    assert graph.get_state(CONFIG).next == ("assistant",)
    head = saver.get_tuple(CONFIG)
    assert not head.pending_writes  # nothing but the checkpoint itself tells it is paused
    manager = HistoryManager(memory_saver=saver)  # no graph: what the CLI does
    with pytest.raises(ThreadBusyError) as caught:
        manager.compact_thread(CONFIG, compaction_ratio=0.5)
    assert "assistant" in caught.value.reason
    assert saver.get_tuple(CONFIG).checkpoint["id"] == head.checkpoint["id"]
    graph.invoke(None, CONFIG)  # resumed and finished: now it compacts
    assert manager.compact_thread(CONFIG, compaction_ratio=0.5) is not None


async def test_async_a_thread_paused_before_a_node_is_left_alone(asaver: Any) -> None:
    graph = _paused_before_agent(asaver)
    await graph.ainvoke({"messages": [HumanMessage("request " + "words " * 80)]}, CONFIG)
    await graph.ainvoke(None, CONFIG)
    await graph.ainvoke({"messages": [HumanMessage("again " + "words " * 80)]}, CONFIG)
    manager = HistoryManager(memory_saver=asaver)
    with pytest.raises(ThreadBusyError):
        await manager.acompact_thread(CONFIG, compaction_ratio=0.5)
    await graph.ainvoke(None, CONFIG)
    assert await manager.acompact_thread(CONFIG, compaction_ratio=0.5) is not None


def _fan_in(checkpointer: Any, *, defer: bool = False, interrupt_before: Any = None) -> Any:
    """``a`` and ``b`` from the start, then ``c`` once both ran: a join edge
    (``add_edge(["a", "b"], "c")``), or a deferred ``c`` that waits for the branches."""

    def say(name: str) -> Any:
        return lambda state: {"messages": [AIMessage(f"{name} says " + "word " * 30)]}

    builder = StateGraph(MessagesState)
    builder.add_node("a", say("a"))
    builder.add_node("b", say("b"))
    builder.add_node("c", say("c"), defer=defer)
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    if defer:
        builder.add_edge("a", "c")
        builder.add_edge("b", "c")
    else:
        builder.add_edge(["a", "b"], "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=checkpointer, interrupt_before=interrupt_before)


def test_a_graph_with_a_join_edge_is_compacted(saver: Any) -> None:
    """A join's barrier stays in the checkpoint, emptied, after it fires: the thread is idle
    (LangGraph's ``next`` is empty) and compacts, with the graph or without it (the CLI)."""
    graph = _fan_in(saver)
    for turn in range(4):
        graph.invoke({"messages": [HumanMessage(f"question {turn} " + "x " * 40)]}, CONFIG)
    assert graph.get_state(CONFIG).next == ()
    manager = HistoryManager(model=ExtractiveSummarizer(), memory_saver=saver)
    result = manager.compact_thread(CONFIG, graph=graph, compaction_ratio=0.5)
    assert result is not None and result.status == "compacted"
    graph.invoke({"messages": [HumanMessage("one more " + "x " * 40)]}, CONFIG)
    assert manager.compact_thread(CONFIG, compaction_ratio=0.5) is not None  # no graph


def test_waiting_nodes_agrees_with_get_state_next_on_every_checkpoint(saver: Any) -> None:
    """The graph-free test gives LangGraph's own ``next`` for each checkpoint of each thread."""
    threads = {
        "chat": chat_graph(saver),
        "tools": tool_agent(saver),
        "approval": approval_graph(saver),
        "paused": _paused_before_agent(saver),
        "join": _fan_in(saver),
        "join-paused": _fan_in(saver, interrupt_before=["c"]),
        "deferred": _fan_in(saver, defer=True),
        "deferred-paused": _fan_in(saver, defer=True, interrupt_before=["c"]),
    }
    for name, graph in threads.items():
        config = {"configurable": {"thread_id": name}}
        graph.invoke({"messages": [HumanMessage("hello")]}, config)
        graph.invoke(Command(resume="yes") if name == "approval" else None, config)
        graph.invoke({"messages": [HumanMessage("and again")]}, config)
        for snapshot in graph.get_state_history(config):
            stored = saver.get_tuple(snapshot.config)
            assert waiting_nodes(stored.checkpoint) == sorted(set(snapshot.next)), name


# ---------------------------------------------------------------- the head read once


class _TurnDuringSummary:
    """A summariser during whose call another writer (the bare graph) runs a turn."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    def summarize(self, previous: str | None, messages: Any, *, max_tokens: int) -> str:
        self.graph.invoke({"messages": [HumanMessage("a turn during the compaction")]}, CONFIG)
        return "Summary: the user asked for more several times."

    async def asummarize(self, previous: str | None, messages: Any, *, max_tokens: int) -> str:
        await self.graph.ainvoke(
            {"messages": [HumanMessage("a turn during the compaction")]}, CONFIG
        )
        return "Summary: the user asked for more several times."


def _head_mark_agrees(saver: Any, head: Any, mark: Any) -> None:
    assert mark == (head.checkpoint["id"], bool(head.pending_writes))


def test_head_mark_tells_the_head_and_its_pending_writes(saver: Any) -> None:
    """Read without deserialising, the head's id and pending writes are get_tuple's."""
    from compacting_supervisor._persist.rewrite import HeadMark

    assert HeadMark("thread-1", saver).run() == (None, False)
    graph = approval_graph(saver)
    graph.invoke({"messages": [HumanMessage("deploy?")]}, CONFIG)  # paused: pending writes
    mark = HeadMark("thread-1", saver).run()
    head = saver.get_tuple(CONFIG)
    assert mark is not None
    assert mark[1]
    _head_mark_agrees(saver, head, mark)
    graph.invoke(Command(resume="yes"), CONFIG)
    _head_mark_agrees(saver, saver.get_tuple(CONFIG), HeadMark("thread-1", saver).run())


async def test_async_head_mark_tells_the_head_and_its_pending_writes(asaver: Any) -> None:
    from compacting_supervisor._persist.rewrite import HeadMark

    assert await HeadMark("thread-1", asaver).arun() == (None, False)
    graph = approval_graph(asaver)
    await graph.ainvoke({"messages": [HumanMessage("deploy?")]}, CONFIG)
    mark = await HeadMark("thread-1", asaver).arun()
    assert mark is not None
    assert mark[1]
    _head_mark_agrees(asaver, await asaver.aget_tuple(CONFIG), mark)
    await graph.ainvoke(Command(resume="yes"), CONFIG)
    _head_mark_agrees(
        asaver, await asaver.aget_tuple(CONFIG), await HeadMark("thread-1", asaver).arun()
    )


def test_a_turn_written_during_a_compaction_is_never_hidden(saver: Any) -> None:
    """The head is read once; a run that finishes before the write still stops it."""
    graph = chat_graph(saver)
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=_TurnDuringSummary(graph)), token_limit=100_000
    )
    _run_turns(supervisor, 4)
    with pytest.raises(StaleCheckpointError):
        supervisor.compact(CONFIG)
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert messages[-2].content == "a turn during the compaction"
    assert not any(is_summary(m) for m in messages)
    # With nobody writing meanwhile, the compaction is built on the head it read.
    before = saver.get_tuple(CONFIG)
    CompactingSupervisor(graph, token_limit=100_000).compact(CONFIG)
    _assert_clean_rewrite(before, saver.get_tuple(CONFIG), saver)


async def test_async_a_turn_written_during_a_compaction_is_never_hidden(asaver: Any) -> None:
    graph = chat_graph(asaver)
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=_TurnDuringSummary(graph)), token_limit=100_000
    )
    await _arun_turns(supervisor, 4)
    with pytest.raises(StaleCheckpointError):
        await supervisor.acompact(CONFIG)
    messages = (await supervisor.aget_state(CONFIG)).values["messages"]
    assert messages[-2].content == "a turn during the compaction"
    assert not any(is_summary(m) for m in messages)
    before = await asaver.aget_tuple(CONFIG)
    await CompactingSupervisor(graph, token_limit=100_000).acompact(CONFIG)
    _assert_clean_rewrite(before, await asaver.aget_tuple(CONFIG), asaver)


class _CountedReads:
    """Counts the saver's whole-checkpoint reads (``get_tuple`` / ``aget_tuple``).

    InMemorySaver's ``aget_tuple`` calls its ``get_tuple``: that is one read.
    """

    def __init__(self, saver: Any) -> None:
        self.reads = 0
        self._inside = False
        get, aget = saver.get_tuple, saver.aget_tuple

        def get_tuple(config: Any) -> Any:
            self.reads += not self._inside
            return get(config)

        async def aget_tuple(config: Any) -> Any:
            self.reads += 1
            self._inside = True
            try:
                return await aget(config)
            finally:
                self._inside = False

        saver.get_tuple, saver.aget_tuple = get_tuple, aget_tuple


def test_a_rewrite_deserialises_the_head_once(saver: Any) -> None:
    """compact() and replace_thread_history read the head whole once, then write on it."""
    graph = chat_graph(saver)
    supervisor = CompactingSupervisor(graph, token_limit=100_000)
    _run_turns(supervisor, 4)
    before = saver.get_tuple(CONFIG)
    counted = _CountedReads(saver)
    supervisor.compact(CONFIG)
    assert counted.reads == 1
    after = saver.get_tuple(CONFIG)
    _assert_clean_rewrite(before, after, saver)
    counted.reads = 0
    kept = after.checkpoint["channel_values"]["messages"][-2:]
    HistoryManager().replace_thread_history(CONFIG, kept, graph=graph)
    assert counted.reads == 1
    replaced = saver.get_tuple(CONFIG)
    _assert_clean_rewrite(after, replaced, saver)
    assert [m.id for m in replaced.checkpoint["channel_values"]["messages"]] == [m.id for m in kept]


async def test_async_a_rewrite_deserialises_the_head_once(asaver: Any) -> None:
    graph = chat_graph(asaver)
    supervisor = CompactingSupervisor(graph, token_limit=100_000)
    await _arun_turns(supervisor, 4)
    before = await asaver.aget_tuple(CONFIG)
    counted = _CountedReads(asaver)
    await supervisor.acompact(CONFIG)
    assert counted.reads == 1
    after = await asaver.aget_tuple(CONFIG)
    _assert_clean_rewrite(before, after, asaver)
    counted.reads = 0
    kept = after.checkpoint["channel_values"]["messages"][-2:]
    await HistoryManager().areplace_thread_history(CONFIG, kept, graph=graph)
    assert counted.reads == 1
    replaced = await asaver.aget_tuple(CONFIG)
    _assert_clean_rewrite(after, replaced, asaver)
    assert [m.id for m in replaced.checkpoint["channel_values"]["messages"]] == [m.id for m in kept]
