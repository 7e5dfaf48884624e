"""A langgraph-supervisor multi-agent graph, and a graph with extra channels, compacted.

The multi-agent graph is ``create_supervisor([candidates_agent, calendar_agent], ...)`` with
two ``create_react_agent`` workers calling real tools, all on scripted models. Every check
runs on InMemorySaver and on a SQLite file (sync), and on InMemorySaver and AsyncSqliteSaver
(async):

- a compaction leaves every sub-agent checkpoint namespace row byte-identical (no row added,
  removed or changed), and in the root namespace only adds the new head (nothing lost);
- the compacted history starts with the summary and has no orphan tool message and no
  unanswered tool call (hand-off pairs included);
- the following turns run normally and append after the compacted history;
- on a custom graph with extra channels only the messages channel value and version change.
"""

from __future__ import annotations

import copy
import operator
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent
from langgraph_supervisor import create_supervisor

from compacting_supervisor import CompactingSupervisor, HistoryManager
from compacting_supervisor._messages import METADATA_KEY, is_summary
from compacting_supervisor.testing import ScriptedChatModel

pytestmark = pytest.mark.filterwarnings(
    # create_react_agent moved to langchain.agents; the brief's graph still uses it.
    "ignore::langgraph.warnings.LangGraphDeprecatedSinceV10"
)

TOKEN_LIMIT = 400
RATIO = 0.5
N_TURNS = 8
MANUAL_AFTER_TURNS = (2, 5)  # 0-based turns after which `compact` is also called by hand
THREAD = "hiring"
HEAD = {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}
CANDIDATES = ("Ada Lovelace", "Alan Turing", "Grace Hopper")


# ---------------------------------------------------------------------------- savers


class Store:
    """A checkpointer plus a raw, byte-level view of everything it stores for a thread."""

    def __init__(self, saver: BaseCheckpointSaver[Any], path: Path | None = None) -> None:
        self.saver = saver
        self.path = path

    def rows(self, thread_id: str) -> dict[tuple[Any, ...], Any]:
        """Every stored row of the thread, keyed by (kind, checkpoint_ns, ...)."""
        if self.path is None:
            return self._memory_rows(thread_id)
        return self._sqlite_rows(thread_id)

    def sub_rows(self, thread_id: str) -> dict[tuple[Any, ...], Any]:
        """The rows of every sub-graph namespace (checkpoint_ns != '')."""
        return {k: v for k, v in self.rows(thread_id).items() if k[1] != ""}

    def _memory_rows(self, thread_id: str) -> dict[tuple[Any, ...], Any]:
        saver = self.saver
        assert isinstance(saver, InMemorySaver)
        rows: dict[tuple[Any, ...], Any] = {}
        for ns, checkpoints in saver.storage.get(thread_id, {}).items():
            for checkpoint_id, stored in checkpoints.items():
                rows[("checkpoint", ns, checkpoint_id)] = copy.deepcopy(stored)
        for (tid, ns, checkpoint_id), writes in saver.writes.items():
            if tid == thread_id:
                for inner, stored in writes.items():
                    rows[("write", ns, checkpoint_id, *inner)] = copy.deepcopy(stored)
        for (tid, ns, channel, version), stored in saver.blobs.items():
            if tid == thread_id:
                rows[("blob", ns, channel, version)] = copy.deepcopy(stored)
        return rows

    def _sqlite_rows(self, thread_id: str) -> dict[tuple[Any, ...], Any]:
        rows: dict[tuple[Any, ...], Any] = {}
        with closing(sqlite3.connect(str(self.path))) as conn:
            for ns, checkpoint_id, *rest in conn.execute(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
                "metadata FROM checkpoints WHERE thread_id = ?",
                (thread_id,),
            ):
                rows[("checkpoint", ns, checkpoint_id)] = tuple(rest)
            for ns, checkpoint_id, task_id, idx, *rest in conn.execute(
                "SELECT checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, "
                "value FROM writes WHERE thread_id = ?",
                (thread_id,),
            ):
                rows[("write", ns, checkpoint_id, task_id, idx)] = tuple(rest)
        return rows


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A sync checkpointer: InMemorySaver, or SqliteSaver on a file."""
    if request.param == "memory":
        yield Store(InMemorySaver())
        return
    path = tmp_path / "multi_agent.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        yield Store(saver, path)


@pytest.fixture(params=["memory", "async_sqlite"])
async def astore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An async checkpointer: InMemorySaver, or AsyncSqliteSaver on a file."""
    if request.param == "memory":
        yield Store(InMemorySaver())
        return
    path = tmp_path / "multi_agent_async.sqlite"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield Store(saver, path)


# ---------------------------------------------------------------------------- the multi-agent graph


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _call(tool_name: str, args: dict[str, Any] | None = None) -> AIMessage:
    call = {"name": tool_name, "args": args or {}, "id": _id("call")}
    return AIMessage("", tool_calls=[call], id=_id("ai"))


def _last_request(messages: Sequence[BaseMessage]) -> HumanMessage:
    return next(m for m in reversed(messages) if isinstance(m, HumanMessage) and not is_summary(m))


def _request_number(messages: Sequence[BaseMessage]) -> int:
    found = re.search(r"request (\d+)", str(_last_request(messages).content))
    assert found, "every user message names its request number"
    return int(found.group(1))


def final_answer(request: str) -> str:
    return f"All done for your message: {request}"


def route(request: str) -> str:
    return "calendar_agent" if "schedule" in request.lower() else "candidates_agent"


def turn_request(i: int) -> str:
    if i % 2:
        return f"Please schedule an interview with {CANDIDATES[i % 3]} on day {i} (request {i})."
    return f"Please list the candidates and read the best CV for the open role (request {i})."


def _unexpected(who: str, messages: Sequence[BaseMessage]) -> AssertionError:
    return AssertionError(f"{who} got an unexpected last message: {messages[-1]!r}")


def supervisor_reply(messages: list[BaseMessage]) -> AIMessage:
    """Hand the user's message to the right agent; answer once the agent is back."""
    last = messages[-1]
    if isinstance(last, HumanMessage) and not is_summary(last):
        return _call(f"transfer_to_{route(str(last.content))}")
    if isinstance(last, ToolMessage) and last.name == "transfer_back_to_supervisor":
        return AIMessage(final_answer(str(_last_request(messages).content)), id=_id("ai"))
    raise _unexpected("supervisor", messages)


def candidates_reply(messages: list[BaseMessage]) -> AIMessage:
    """list_candidates, then read_cv of the first one, then answer."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "transfer_to_candidates_agent":
        return _call("list_candidates", {"role": "backend engineer"})
    if isinstance(last, ToolMessage) and last.name == "list_candidates":
        return _call("read_cv", {"name": str(last.content).split(", ")[0]})
    if isinstance(last, ToolMessage) and last.name == "read_cv":
        return AIMessage(f"The strongest candidate: {last.content}", id=_id("ai"))
    raise _unexpected("candidates_agent", messages)


def calendar_reply(messages: list[BaseMessage]) -> AIMessage:
    """schedule_interview, then answer."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "transfer_to_calendar_agent":
        n = _request_number(messages)
        return _call("schedule_interview", {"candidate": CANDIDATES[n % 3], "day": f"day {n}"})
    if isinstance(last, ToolMessage) and last.name == "schedule_interview":
        return AIMessage(f"Booked. {last.content}", id=_id("ai"))
    raise _unexpected("calendar_agent", messages)


class Team:
    """The compiled supervisor graph, its models and what its tools did."""

    def __init__(self, checkpointer: BaseCheckpointSaver[Any], **supervisor_kwargs: Any) -> None:
        self.booked: list[tuple[str, str]] = []
        self.cvs_read: list[str] = []

        @tool
        def list_candidates(role: str) -> str:
            """List the candidates who applied for a role."""
            return ", ".join(CANDIDATES)

        @tool
        def read_cv(name: str) -> str:
            """Read a candidate's CV."""
            self.cvs_read.append(name)
            return f"{name}: ten years of distributed systems, strong references."

        @tool
        def schedule_interview(candidate: str, day: str) -> str:
            """Book an interview slot with a candidate."""
            self.booked.append((candidate, day))
            return f"Interview with {candidate} booked on {day} at 10:00."

        self.supervisor_model = ScriptedChatModel(responses=[supervisor_reply])
        self.candidates_model = ScriptedChatModel(responses=[candidates_reply])
        self.calendar_model = ScriptedChatModel(responses=[calendar_reply])
        candidates_agent = create_react_agent(
            model=self.candidates_model,
            tools=[list_candidates, read_cv],
            name="candidates_agent",
        )
        calendar_agent = create_react_agent(
            model=self.calendar_model, tools=[schedule_interview], name="calendar_agent"
        )
        self.graph = create_supervisor(
            [candidates_agent, calendar_agent], model=self.supervisor_model, **supervisor_kwargs
        ).compile(checkpointer=checkpointer)


# ---------------------------------------------------------------------------- checks


def ids(messages: Sequence[BaseMessage]) -> list[str | None]:
    return [m.id for m in messages]


def assert_tool_calls_paired(messages: Sequence[BaseMessage]) -> None:
    """Every tool call is answered right after its AIMessage; no tool message is an orphan."""
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in pending, f"orphan tool message at {i}: {message!r}"
            pending.discard(message.tool_call_id)
            continue
        assert not pending, f"tool calls {sorted(pending)} unanswered before message {i}"
        if isinstance(message, AIMessage) and message.tool_calls:
            pending = {str(c["id"]) for c in message.tool_calls}
    assert not pending, f"tool calls {sorted(pending)} never answered"


WORKER_TOOLS = {
    "candidates_agent": ["list_candidates", "read_cv"],
    "calendar_agent": ["schedule_interview"],
}


def assert_turn(
    before: Sequence[BaseMessage],
    after: Sequence[BaseMessage],
    request: str,
    output_mode: str,
) -> None:
    """The turn appended after ``before`` and is a full hand-off round ending in the answer."""
    assert ids(after[: len(before)]) == ids(before), "the turn did not append to the history"
    new = list(after[len(before) :])
    agent = route(request)
    # With output_mode="full_history" the worker's own tool calls land in the thread too.
    inner = WORKER_TOOLS[agent] if output_mode == "full_history" else []
    assert [type(m).__name__ for m in new] == [
        "HumanMessage",
        "AIMessage",  # supervisor: transfer_to_<agent>
        "ToolMessage",
        *["AIMessage", "ToolMessage"] * len(inner),  # the worker's tool calls
        "AIMessage",  # the agent's answer
        "AIMessage",  # transfer_back_to_supervisor
        "ToolMessage",
        "AIMessage",  # the supervisor's final answer
    ], [repr(m) for m in new]
    assert new[0].content == request
    assert new[1].tool_calls[0]["name"] == f"transfer_to_{agent}"
    for k, tool_name in enumerate(inner):
        call, answer = new[3 + 2 * k], new[4 + 2 * k]
        assert call.name == agent
        assert call.tool_calls[0]["name"] == tool_name
        assert answer.name == tool_name
    answer = new[-4]
    assert answer.name == agent
    assert answer.content
    assert answer.tool_calls == []
    assert new[-3].tool_calls[0]["name"] == "transfer_back_to_supervisor"
    final = after[-1]
    assert isinstance(final, AIMessage)
    assert final.name == "supervisor"
    assert final.tool_calls == []
    assert final.content == final_answer(request)
    assert_tool_calls_paired(after)


def assert_compacted(
    before: Sequence[BaseMessage], after: Sequence[BaseMessage], result: Any
) -> None:
    """``after`` is ``[summary, *kept]`` with kept a verbatim, well-paired suffix of ``before``."""
    assert result is not None
    assert result.status == "compacted", result
    assert is_summary(after[0]), f"compacted history starts with {after[0]!r}"
    assert not any(is_summary(m) for m in after[1:]), "more than one summary message"
    kept = list(after[1:])
    assert kept, "nothing kept"
    assert ids(kept) == ids(before[len(before) - len(kept) :]), "kept part is not a suffix"
    assert [m.model_dump() for m in kept] == [
        m.model_dump() for m in before[len(before) - len(kept) :]
    ], "kept messages changed"
    assert len(after) < len(before)
    assert result.messages_before == len(before)
    assert result.messages_after == len(after)
    previous_summary = 1 if is_summary(before[0]) else 0
    assert result.messages_summarized == len(before) - previous_summary - len(kept)
    assert any(isinstance(m, HumanMessage) for m in kept), "the latest request was evicted"
    assert_tool_calls_paired(after)
    earlier = before[0].response_metadata[METADATA_KEY] if previous_summary else {}
    meta = after[0].response_metadata[METADATA_KEY]
    assert meta["compactions"] == earlier.get("compactions", 0) + 1
    assert meta["messages_summarized"] == (
        earlier.get("messages_summarized", 0) + result.messages_summarized
    )
    assert meta["messages_kept"] == len(kept)  # usage on them is stale
    assert abs(meta["compacted_at"] - time.time()) < 60


def assert_only_new_head(
    rows_before: dict[tuple[Any, ...], Any],
    rows_after: dict[tuple[Any, ...], Any],
    checkpoint_id: str,
) -> None:
    """A compaction adds the new root head (and its messages blob) and touches nothing else."""
    removed = rows_before.keys() - rows_after.keys()
    assert not removed, f"rows removed by the compaction: {sorted(removed)}"
    changed = [k for k in rows_before if rows_before[k] != rows_after[k]]
    assert not changed, f"rows changed by the compaction: {changed}"
    added = rows_after.keys() - rows_before.keys()
    assert ("checkpoint", "", checkpoint_id) in added
    for key in added - {("checkpoint", "", checkpoint_id)}:
        assert key[:3] == ("blob", "", "messages"), f"unexpected row added: {key}"
    assert len(added) <= 2, sorted(added)


def assert_sub_rows_identical(
    sub_before: dict[tuple[Any, ...], Any], sub_after: dict[tuple[Any, ...], Any]
) -> None:
    assert sub_before, "the sub-agents wrote no namespaced checkpoint: nothing was checked"
    assert sub_after.keys() == sub_before.keys(), (
        f"added {sorted(sub_after.keys() - sub_before.keys())}, "
        f"removed {sorted(sub_before.keys() - sub_after.keys())}"
    )
    changed = [k for k in sub_before if sub_before[k] != sub_after[k]]
    assert not changed, f"sub-agent rows changed: {changed}"


def sub_namespaces(rows: dict[tuple[Any, ...], Any]) -> set[str]:
    return {k[1].split(":")[0] for k in rows if k[0] == "checkpoint"}


class Tracker:
    """Runs the per-turn bookkeeping shared by the sync and async multi-agent tests."""

    def __init__(
        self, team: Team, supervisor: CompactingSupervisor, thread_id: str, output_mode: str
    ) -> None:
        self.team = team
        self.output_mode = output_mode
        self.supervisor = supervisor
        self.thread_id = thread_id
        self.seen: set[str] = set()
        self.auto: list[Any] = []
        self.manual: list[Any] = []
        self.after_compaction: list[BaseMessage] | None = None
        self.turns = 0  # turns checked so far
        self.compacted_turns: set[int] = set()  # turns after which the thread was compacted
        self.checked_next: set[int] = set()  # ... and whose next turn was checked

    def calls_before_turn(self) -> int:
        return len(self.team.supervisor_model.calls)

    def check_turn(
        self,
        before: list[BaseMessage],
        output: dict[str, Any],
        request: str,
        calls_before: int,
    ) -> None:
        assert_turn(before, output["messages"], request, self.output_mode)
        # The supervisor's model really read the compacted history this turn.
        first_call = self.team.supervisor_model.calls[calls_before]
        assert ids(first_call) == [*ids(before), output["messages"][len(before)].id]
        if self.after_compaction is not None:
            assert ids(before) == ids(self.after_compaction)
            assert is_summary(first_call[0])
            self.after_compaction = None
            self.checked_next.add(self.turns - 1)
        self.turns += 1

    def note_auto(self, pre_compaction: list[BaseMessage], now: list[BaseMessage]) -> None:
        result = self.supervisor.last_compaction(self.thread_id)
        if result is None or result.checkpoint_id in self.seen:
            return
        assert result.trigger == "token_limit"
        assert_compacted(pre_compaction, now, result)
        assert self.supervisor.history_manager.token_counter.count(pre_compaction) > TOKEN_LIMIT
        self.seen.add(result.checkpoint_id)
        self.auto.append(result)
        self.after_compaction = now
        self.compacted_turns.add(self.turns - 1)

    def note_manual(self, before: list[BaseMessage], now: list[BaseMessage], result: Any) -> None:
        assert result is not None
        assert result.trigger == "manual"
        assert_compacted(before, now, result)
        assert self.supervisor.last_compaction(self.thread_id) is result
        self.seen.add(result.checkpoint_id)
        self.manual.append(result)
        self.after_compaction = now
        self.compacted_turns.add(self.turns - 1)

    def finish(self, final_messages: list[BaseMessage], turns: int) -> None:
        assert self.auto, "no automatic compaction happened"
        assert len(self.manual) == len(MANUAL_AFTER_TURNS)
        assert self.turns == turns
        # Every compaction but the last turn's was followed by a checked turn.
        assert self.compacted_turns - {turns - 1} == self.checked_next
        assert len(self.checked_next) >= 3
        assert is_summary(final_messages[0])
        calendar_turns = [i for i in range(turns) if i % 2]
        assert [day for _, day in self.team.booked] == [f"day {i}" for i in calendar_turns]
        assert self.team.cvs_read == [CANDIDATES[0]] * (turns - len(calendar_turns))


# ---------------------------------------------------------------------------- multi-agent tests


@pytest.mark.parametrize("output_mode", ["last_message", "full_history"])
def test_multi_agent_supervisor_compacts_cleanly(store: Store, output_mode: str) -> None:
    team = Team(store.saver, output_mode=output_mode)
    supervisor = CompactingSupervisor(
        team.graph, HistoryManager(), token_limit=TOKEN_LIMIT, compaction_ratio=RATIO
    )
    thread_id = THREAD
    config = {"configurable": {"thread_id": thread_id}}
    tracker = Tracker(team, supervisor, thread_id, output_mode)

    def messages() -> list[BaseMessage]:
        return list(supervisor.get_state(config).values.get("messages", []))

    for i in range(N_TURNS):
        request = turn_request(i)
        before = messages()
        calls_before = tracker.calls_before_turn()
        output = supervisor.invoke({"messages": [("user", request)]}, config)
        tracker.check_turn(before, output, request, calls_before)
        tracker.note_auto(output["messages"], messages())

        if i in MANUAL_AFTER_TURNS:
            rows_before = store.rows(thread_id)
            sub_before = store.sub_rows(thread_id)
            assert {"supervisor", "candidates_agent", "calendar_agent"} <= sub_namespaces(
                sub_before
            )
            history = messages()
            head_before = store.saver.get_tuple(HEAD)
            result = supervisor.compact(config)
            assert_sub_rows_identical(sub_before, store.sub_rows(thread_id))
            assert result is not None
            assert_only_new_head(rows_before, store.rows(thread_id), result.checkpoint_id)
            tracker.note_manual(history, messages(), result)
            assert supervisor.get_state(config).next == ()
            assert_only_messages_changed(store.saver, head_before, store.saver.get_tuple(HEAD))

    tracker.finish(messages(), N_TURNS)


@pytest.mark.parametrize("output_mode", ["last_message", "full_history"])
async def test_multi_agent_supervisor_compacts_cleanly_async(
    astore: Store, output_mode: str
) -> None:
    team = Team(astore.saver, output_mode=output_mode)
    supervisor = CompactingSupervisor(
        team.graph, HistoryManager(), token_limit=TOKEN_LIMIT, compaction_ratio=RATIO
    )
    thread_id = THREAD
    config = {"configurable": {"thread_id": thread_id}}
    tracker = Tracker(team, supervisor, thread_id, output_mode)

    async def messages() -> list[BaseMessage]:
        return list((await supervisor.aget_state(config)).values.get("messages", []))

    for i in range(N_TURNS):
        request = turn_request(i)
        before = await messages()
        calls_before = tracker.calls_before_turn()
        output = await supervisor.ainvoke({"messages": [("user", request)]}, config)
        tracker.check_turn(before, output, request, calls_before)
        tracker.note_auto(output["messages"], await messages())

        if i in MANUAL_AFTER_TURNS:
            rows_before = astore.rows(thread_id)
            sub_before = astore.sub_rows(thread_id)
            assert {"supervisor", "candidates_agent", "calendar_agent"} <= sub_namespaces(
                sub_before
            )
            history = await messages()
            head_before = await astore.saver.aget_tuple(HEAD)
            result = await supervisor.acompact(config)
            assert_sub_rows_identical(sub_before, astore.sub_rows(thread_id))
            assert result is not None
            assert_only_new_head(rows_before, astore.rows(thread_id), result.checkpoint_id)
            tracker.note_manual(history, await messages(), result)
            assert (await supervisor.aget_state(config)).next == ()
            head_after = await astore.saver.aget_tuple(HEAD)
            assert_only_messages_changed(astore.saver, head_before, head_after)

    tracker.finish(await messages(), N_TURNS)


def test_multi_agent_stream_reports_compaction(store: Store) -> None:
    """The event stream's "compaction" events agree with last_compaction and the state."""
    team = Team(store.saver)
    supervisor = CompactingSupervisor(
        team.graph, HistoryManager(), token_limit=TOKEN_LIMIT, compaction_ratio=RATIO
    )
    config = {"configurable": {"thread_id": "stream"}}
    compactions = []
    for i in range(N_TURNS):
        request = turn_request(i)
        events = list(supervisor.stream({"messages": [("user", request)]}, config))
        assert events[-1]["type"] == "end"
        values = events[-1]["values"]["messages"]
        assert values[-1].content == final_answer(request)
        tokens = "".join(
            e["content"] for e in events if e["type"] == "token" and e["agent"] == "supervisor"
        )
        assert tokens.endswith(final_answer(request))
        for event in events:
            if event["type"] == "compaction":
                assert event["status"] == "compacted", event
                assert supervisor.last_compaction("stream").checkpoint_id == event["checkpoint_id"]
                state = supervisor.get_state(config).values["messages"]
                assert is_summary(state[0])
                assert_tool_calls_paired(state)
                compactions.append(event)
    assert compactions, "no compaction event in the stream"


# ---------------------------------------------------------------------------- extra channels


class NotesState(MessagesState):
    notes: Annotated[list[str], operator.add]
    counter: int
    last_speaker: str


def notes_graph(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    def respond(state: NotesState) -> dict[str, Any]:
        n = state.get("counter", 0) + 1
        return {
            "messages": [
                AIMessage(
                    f"Reply {n}: I noted '{state['messages'][-1].content}'. "
                    "Here is a long enough answer for the thread to grow.",
                    id=_id("ai"),
                )
            ],
            "notes": [f"note {n}"],
            "counter": n,
        }

    def audit(state: NotesState) -> dict[str, Any]:
        return {"last_speaker": "auditor", "notes": [f"audited {state['counter']}"]}

    builder = StateGraph(NotesState)
    builder.add_node("respond", respond)
    builder.add_node("audit", audit)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", "audit")
    builder.add_edge("audit", END)
    return builder.compile(checkpointer=checkpointer)


def version_number(version: Any) -> int:
    return version if isinstance(version, int) else int(str(version).split(".")[0])


def assert_only_messages_changed(saver: Any, old: Any, new: Any) -> None:
    old_cp, new_cp = old.checkpoint, new.checkpoint
    assert new_cp["id"] > old_cp["id"]
    old_values = {k: v for k, v in old_cp["channel_values"].items() if k != "messages"}
    new_values = {k: v for k, v in new_cp["channel_values"].items() if k != "messages"}
    assert new_values == old_values
    assert {k: saver.serde.dumps_typed(v) for k, v in new_values.items()} == {
        k: saver.serde.dumps_typed(v) for k, v in old_values.items()
    }
    old_versions = dict(old_cp["channel_versions"])
    new_versions = dict(new_cp["channel_versions"])
    assert new_versions.keys() == old_versions.keys()
    changed = {k for k in old_versions if old_versions[k] != new_versions[k]}
    assert changed == {"messages"}
    assert version_number(new_versions["messages"]) > version_number(old_versions["messages"])
    assert version_number(new_versions["messages"]) > max(
        version_number(v) for v in old_versions.values()
    )
    assert new_cp["versions_seen"] == old_cp["versions_seen"]
    assert new_cp.get("updated_channels") == old_cp.get("updated_channels")
    assert new.metadata["source"] == "update"
    assert new.metadata["step"] == old.metadata["step"] + 1
    assert new.parent_config["configurable"]["checkpoint_id"] == old_cp["id"]
    assert not new.pending_writes


def assert_notes_turn(
    compacted: list[BaseMessage], output: dict[str, Any], old_values: dict[str, Any], n: int
) -> None:
    assert ids(output["messages"][: len(compacted)]) == ids(compacted)
    assert is_summary(output["messages"][0])
    assert [type(m).__name__ for m in output["messages"][len(compacted) :]] == [
        "HumanMessage",
        "AIMessage",
    ]
    assert output["messages"][-1].content.startswith(f"Reply {n}:")
    assert output["counter"] == n
    assert output["notes"] == [*old_values["notes"], f"note {n}", f"audited {n}"]
    assert output["last_speaker"] == "auditor"


def test_extra_channels_untouched_by_compaction(store: Store) -> None:
    graph = notes_graph(store.saver)
    supervisor = CompactingSupervisor(graph, HistoryManager(), token_limit=100_000)
    config = {"configurable": {"thread_id": "notes"}}
    head = {"configurable": {"thread_id": "notes", "checkpoint_ns": ""}}
    for i in range(1, 5):
        supervisor.invoke({"messages": [("user", f"Remember item {i}, please.")]}, config)
    assert supervisor.last_compaction("notes") is None
    old = store.saver.get_tuple(head)
    old_values = dict(supervisor.get_state(config).values)
    rows_before = store.rows("notes")

    result = supervisor.compact(config)

    new = store.saver.get_tuple(head)
    assert result is not None
    assert new.checkpoint["id"] == result.checkpoint_id
    assert_only_new_head(rows_before, store.rows("notes"), result.checkpoint_id)
    assert_only_messages_changed(store.saver, old, new)
    assert {"notes", "counter", "last_speaker"} <= old.checkpoint["channel_values"].keys()
    compacted = list(supervisor.get_state(config).values["messages"])
    assert_compacted(old_values["messages"], compacted, result)

    output = supervisor.invoke({"messages": [("user", "And item 5.")]}, config)
    assert_notes_turn(compacted, output, old_values, 5)


async def test_extra_channels_untouched_by_compaction_async(astore: Store) -> None:
    graph = notes_graph(astore.saver)
    supervisor = CompactingSupervisor(graph, HistoryManager(), token_limit=100_000)
    config = {"configurable": {"thread_id": "notes"}}
    head = {"configurable": {"thread_id": "notes", "checkpoint_ns": ""}}
    for i in range(1, 5):
        await supervisor.ainvoke({"messages": [("user", f"Remember item {i}, please.")]}, config)
    assert supervisor.last_compaction("notes") is None
    old = await astore.saver.aget_tuple(head)
    old_values = dict((await supervisor.aget_state(config)).values)
    rows_before = astore.rows("notes")

    result = await supervisor.acompact(config)

    new = await astore.saver.aget_tuple(head)
    assert result is not None
    assert new.checkpoint["id"] == result.checkpoint_id
    assert_only_new_head(rows_before, astore.rows("notes"), result.checkpoint_id)
    assert_only_messages_changed(astore.saver, old, new)
    assert {"notes", "counter", "last_speaker"} <= old.checkpoint["channel_values"].keys()
    compacted = list((await supervisor.aget_state(config)).values["messages"])
    assert_compacted(old_values["messages"], compacted, result)

    output = await supervisor.ainvoke({"messages": [("user", "And item 5.")]}, config)
    assert_notes_turn(compacted, output, old_values, 5)
