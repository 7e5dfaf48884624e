"""Issue 3, point 9: the complete transcript of a thread across all its compactions."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, SystemMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    KeepMessages,
)
from compacting_supervisor._persist.reads import ListParents
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph, tool_agent

CONFIG = {"configurable": {"thread_id": "archive"}}
PLAIN = {"configurable": {"thread_id": "uncompacted"}}


def _view(messages: list[Any]) -> list[tuple[str, Any, Any]]:
    return [(m.type, m.content, getattr(m, "tool_calls", None)) for m in messages]


def _summaries() -> ScriptedChatModel:
    counter = iter(range(1, 1000))
    return ScriptedChatModel(
        responses=[lambda messages: f"Running summary number {next(counter)}."]
    )


def test_transcript_holds_every_message_once_in_order(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    reference = chat_graph(saver)  # the same conversation, never compacted
    reference.update_state(PLAIN, {"messages": [SystemMessage("You are terse.")]})
    supervisor.update_state(CONFIG, {"messages": [SystemMessage("You are terse.")]})
    for i in range(14):
        message = {"messages": [HumanMessage(f"Question {i}: what about item {i}?")]}
        supervisor.invoke(message, CONFIG)
        reference.invoke(message, PLAIN)

    transcript = supervisor.transcript(CONFIG)
    everything = reference.get_state(PLAIN).values["messages"]
    assert len(transcript.sessions) >= 3
    assert _view(transcript.messages) == _view(everything)
    ids = [m.id for m in transcript.messages]
    assert len(ids) == len(set(ids))
    for number, session in enumerate(transcript.sessions, start=1):
        assert session.summary == f"Running summary number {number}."
        assert session.messages

    markdown = transcript.to_markdown()
    for i in range(14):
        assert f"Question {i}: what about item {i}?" in markdown
    for number in range(1, len(transcript.sessions) + 1):
        assert f"## Archived session {number}" in markdown
        assert f"> Running summary number {number}." in markdown
    assert markdown.index("## Archived session 1") < markdown.index("## Live conversation")
    assert markdown.count("**user:** Question 0:") == 1


async def test_async_transcript_with_tool_calls(asaver: Any) -> None:
    supervisor = CompactingSupervisor(
        tool_agent(asaver), HistoryManager(model=_summaries()), token_limit=350
    )
    for i in range(6):
        await supervisor.ainvoke({"messages": [HumanMessage(f"Trip {i}: weather?")]}, CONFIG)
    transcript = await supervisor.atranscript(CONFIG)
    assert transcript.sessions
    messages = transcript.messages
    assert [m.content for m in messages if m.type == "human"] == [
        f"Trip {i}: weather?" for i in range(6)
    ]
    tool_results = [m for m in messages if m.type == "tool"]
    assert len(tool_results) == 12  # two parallel lookups per turn, none lost
    assert "calls `lookup`" in transcript.to_markdown()


def test_a_thread_that_never_compacted_is_all_live(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    supervisor.invoke({"messages": [HumanMessage("hello")]}, CONFIG)
    transcript = supervisor.transcript(CONFIG)
    assert transcript.sessions == []
    assert transcript.live[0].content == "hello"
    assert "## Live conversation" in transcript.to_markdown()


def test_mid_thread_system_messages_are_archived(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=100_000
    )
    supervisor.update_state(CONFIG, {"messages": [SystemMessage("s-top")]})
    supervisor.invoke({"messages": [HumanMessage("q1")]}, CONFIG)
    supervisor.update_state(CONFIG, {"messages": [SystemMessage("s-mid")]})
    for i in range(4):
        supervisor.invoke({"messages": [HumanMessage(f"q{i + 2}")]}, CONFIG)
    everything = [m.content for m in supervisor.get_state(CONFIG).values["messages"]]
    supervisor.compact(CONFIG)
    transcript = supervisor.transcript(CONFIG)
    assert [m.content for m in transcript.messages] == everything
    assert "s-mid" in transcript.to_markdown()


def test_a_history_replacement_is_archived_not_mistaken_for_a_compaction(saver: Any) -> None:
    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=100_000)
    for i in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"q{i}")]}, CONFIG)
    snapshot = supervisor.get_state(CONFIG)
    original = snapshot.values["messages"]
    edited = [original[0].model_copy(update={"content": "q0 (edited)"}), *original[1:]]
    supervisor.history_manager.replace_thread_history(
        snapshot.config, edited, graph=supervisor.agent
    )
    transcript = supervisor.transcript(CONFIG)
    assert [s.kind for s in transcript.sessions] == ["replacement"]
    assert [m.content for m in transcript.sessions[0].messages] == ["q0"]
    assert transcript.live[0].content == "q0 (edited)"
    assert "removed or changed by a history replacement" in transcript.to_markdown()


# ------------------------------------------------------------------ time travel (issue 18, part 5)

TRAVEL = {"configurable": {"thread_id": "travel"}}


def _compactions_of(history: list[Any]) -> list[Any]:
    """The compaction checkpoints among ``history`` (snapshots), oldest first."""
    return [
        s
        for s in reversed(history)
        if s.metadata.get("source") == "update"
        and (s.metadata.get("compacting_supervisor") or {}).get("kind") == "compaction"
    ]


def _branch_config(snapshot: Any) -> dict[str, Any]:
    return {
        "configurable": {
            "thread_id": "travel",
            "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
        }
    }


def _check_branch(transcript: Any, stats: Any, fork: Any, on_branch: int, head: Any) -> None:
    """The transcript and stats follow the branch forked from ``fork``, not the abandoned one.

    ``on_branch`` compactions are on that branch; ``head`` is the thread's state now.
    """
    humans = [m.content for m in fork.values["messages"] if m.type == "human"]
    last = int(humans[-1].split(":")[0].removeprefix("Question "))
    expected = [f"Question {i}: what about item {i}?" for i in range(last + 1)]
    assert [m.content for m in transcript.messages if m.type == "human"] == [
        *expected,
        "A new branch",
    ]
    ids = [m.id for m in transcript.messages]
    assert len(ids) == len(set(ids))
    assert len(transcript.sessions) == on_branch
    assert stats.compactions == on_branch
    assert stats.messages == len(head.values["messages"])
    assert transcript.live[-1].id == head.values["messages"][-1].id


def _travel(supervisor: CompactingSupervisor) -> tuple[Any, int]:
    """Run 14 turns, then run from the state right after the second compaction."""
    for i in range(14):
        supervisor.invoke(
            {"messages": [HumanMessage(f"Question {i}: what about item {i}?")]}, TRAVEL
        )
    compactions = _compactions_of(list(supervisor.get_state_history(TRAVEL)))
    assert len(compactions) >= 3
    return compactions[1], len(compactions)


def test_transcript_and_stats_follow_the_branch_after_time_travel(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    fork, total = _travel(supervisor)
    # Time travel: run the plain graph from an older checkpoint (no compaction after it).
    supervisor.agent.invoke({"messages": [HumanMessage("A new branch")]}, _branch_config(fork))
    assert len(_compactions_of(list(supervisor.get_state_history(TRAVEL)))) == total
    transcript = supervisor.transcript(TRAVEL)
    stats = supervisor.thread_stats(TRAVEL)
    _check_branch(transcript, stats, fork, 2, supervisor.get_state(TRAVEL))
    assert transcript.sessions[-1].checkpoint_id == fork.config["configurable"]["checkpoint_id"]
    assert stats.last_compaction_at == fork.created_at


def test_a_branch_from_before_any_compaction_has_no_archived_session(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    _travel(supervisor)
    history = list(supervisor.get_state_history(TRAVEL))
    first = _compactions_of(history)[0]
    before = next(
        s
        for s in history
        if s.config["configurable"]["checkpoint_id"]
        == first.parent_config["configurable"]["checkpoint_id"]
    )
    supervisor.agent.invoke({"messages": [HumanMessage("A new branch")]}, _branch_config(before))
    transcript = supervisor.transcript(TRAVEL)
    stats = supervisor.thread_stats(TRAVEL)
    _check_branch(transcript, stats, before, 0, supervisor.get_state(TRAVEL))
    assert stats.last_compaction_at is None


async def test_async_transcript_and_stats_follow_the_branch(asaver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(asaver), HistoryManager(model=_summaries()), token_limit=250
    )
    for i in range(14):
        await supervisor.ainvoke(
            {"messages": [HumanMessage(f"Question {i}: what about item {i}?")]}, TRAVEL
        )
    history = [s async for s in supervisor.aget_state_history(TRAVEL)]
    compactions = _compactions_of(history)
    assert len(compactions) >= 3
    fork = compactions[1]
    await supervisor.agent.ainvoke(
        {"messages": [HumanMessage("A new branch")]}, _branch_config(fork)
    )
    transcript = await supervisor.atranscript(TRAVEL)
    stats = await supervisor.athread_stats(TRAVEL)
    _check_branch(transcript, stats, fork, 2, await supervisor.aget_state(TRAVEL))
    assert stats.last_compaction_at == fork.created_at


class _CountingSaver(InMemorySaver):
    """Counts the reads the archive makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, Any]] = []

    def list(self, config: Any, **kwargs: Any) -> Any:
        self.reads.append(("list", kwargs.get("filter")))
        return super().list(config, **kwargs)

    def get_tuple(self, config: Any) -> Any:
        self.reads.append(("get_tuple", config["configurable"].get("checkpoint_id")))
        return super().get_tuple(config)


def test_the_archive_reads_each_checkpoint_it_needs_once() -> None:
    saver = _CountingSaver()
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    _travel(supervisor)
    saver.reads.clear()
    sessions = len(supervisor.transcript(TRAVEL).sessions)
    assert sessions >= 3
    lists = [r for r in saver.reads if r[0] == "list"]
    tuples = [r for r in saver.reads if r[0] == "get_tuple"]
    assert lists == [("list", {"source": "update"})]  # the compactions, nothing else listed
    assert len(tuples) == len(set(tuples)) <= sessions + 1  # what they compacted, the head
    saver.reads.clear()
    stats = supervisor.history_manager.thread_stats(TRAVEL, graph=supervisor.agent)
    assert stats.compactions == sessions
    assert len(saver.reads) <= 2


class _Opaque(BaseCheckpointSaver[Any]):
    """A saver the archive knows nothing about (it wraps an InMemorySaver)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = InMemorySaver()
        self.lists: list[Any] = []

    def get_tuple(self, config: Any) -> Any:
        return self.inner.get_tuple(config)

    def list(self, config: Any, **kwargs: Any) -> Any:
        self.lists.append(kwargs.get("filter"))
        return self.inner.list(config, **kwargs)

    def put(self, *args: Any) -> Any:
        return self.inner.put(*args)

    def put_writes(self, *args: Any, **kwargs: Any) -> None:
        self.inner.put_writes(*args, **kwargs)

    def get_next_version(self, current: Any, channel: Any) -> Any:
        return self.inner.get_next_version(current, channel)


def test_any_other_saver_is_listed_once_and_followed_along_the_branch() -> None:
    saver = _Opaque()
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    fork, _ = _travel(supervisor)
    supervisor.agent.invoke({"messages": [HumanMessage("A new branch")]}, _branch_config(fork))
    saver.lists.clear()
    transcript = supervisor.transcript(TRAVEL)
    stats = supervisor.history_manager.thread_stats(TRAVEL, graph=supervisor.agent)
    _check_branch(transcript, stats, fork, 2, supervisor.get_state(TRAVEL))
    assert saver.lists == [None, None]  # one whole listing per read


def _parents_listed(listed: list[Any]) -> dict[str, str | None]:
    return {
        t.checkpoint["id"]: (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        for t in listed
    }


def test_the_parents_are_read_without_listing_on_every_saver_we_know(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=_summaries()), token_limit=250
    )
    for i in range(4):
        supervisor.invoke({"messages": [HumanMessage(f"Question {i}")]}, TRAVEL)
    parents = ListParents("travel", saver).run()
    assert parents == _parents_listed(list(saver.list(TRAVEL)))
    assert ListParents("no-such-thread", saver).run() == {}


async def test_async_the_parents_are_read_without_listing(asaver: Any) -> None:
    supervisor = CompactingSupervisor(
        chat_graph(asaver), HistoryManager(model=_summaries()), token_limit=250
    )
    for i in range(4):
        await supervisor.ainvoke({"messages": [HumanMessage(f"Question {i}")]}, TRAVEL)
    parents = await ListParents("travel", asaver).arun()
    assert parents == _parents_listed([t async for t in asaver.alist(TRAVEL)])


def test_thread_stats_counts_an_in_run_compaction_followed_by_a_saver_level_one() -> None:
    """A compaction made inside a run (a node's, a middleware's) stays counted, and in the
    transcript, after a rewrite (the wrapper's, the CLI's) compacts the thread again."""

    manager = HistoryManager(model=ExtractiveSummarizer())

    def assistant(state: MessagesState) -> dict[str, Any]:
        messages = state["messages"]
        if messages[-1].text == "compact in run":  # what a node or a middleware writes
            compaction = manager.compact_messages(messages, keep=KeepMessages(2))
            assert compaction is not None
            return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *compaction.messages]}
        return {"messages": [AIMessage("reply " + "word " * 30)]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "mixed"}}
    for turn in range(6):
        graph.invoke({"messages": [HumanMessage(f"q{turn} " + "x " * 30)]}, config)
    graph.invoke({"messages": [HumanMessage("compact in run")]}, config)
    assert manager.thread_stats(config, graph=graph).compactions == 1
    for turn in range(6):
        graph.invoke({"messages": [HumanMessage(f"r{turn} " + "x " * 30)]}, config)
    manager.compact_thread(config, graph=graph, keep=KeepMessages(2))
    stats = manager.thread_stats(config, graph=graph)
    assert stats.compactions == 2
    assert len(stats.cache_by_session) == 3
    assert len(manager.transcript(config, graph=graph).sessions) == 2
