"""`CompactionNode`: the compaction as a graph node and as an agent's ``pre_model_hook``.

Every saver behaviour runs on InMemorySaver and a SQLite file, sync and async:

- ``create_react_agent(pre_model_hook=CompactionNode(...))``: one run of many tool calls
  stays under the trigger, many turns compact, the state reads the summary then the kept
  messages, and every original stays in ``get_state_history``;
- ``create_supervisor(pre_model_hook=CompactionNode(...))``: the supervisor runs as a
  subgraph, where a compaction of its own copy leaves the parent's ``messages`` whole (the
  trap, shown first); the node compacts the parent's instead, and an agent called from a
  node of a graph with a state of its own compacts its own copy;
- ``stream_mode="messages"`` shows the agent's tokens and nothing of the compaction;
- a failing summariser leaves the history unchanged and trips the breaker; an interrupt
  pending across a compaction resumes; large tool results are offloaded;
- a compaction is a traced run, and a cancelled one ends its run; a plain ``StateGraph``
  (a TypedDict or pydantic state) takes the node too;
- under blockbuster, in a fresh process, the async paths never block the event loop;
- bad input says which parameter is wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import create_react_agent
from langgraph.types import Command
from pydantic import BaseModel

from compacting_supervisor import (
    ChatModelSummarizer,
    CompactionError,
    CompactionNode,
    HistoryManager,
    KeepMessages,
    KeepTokens,
    MessageCount,
    TokenCounter,
    is_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import openai_violations
from .test_middleware import (
    CALLS,
    LIMIT,
    ModelCallingSummarizer,
    _facts_summariser,
    _tool_loop_model,
    export_logs,
    export_step,
    lookup,
)
from .test_multi_agent import Team, assert_tool_calls_paired, turn_request
from .test_tracing import SUMMARY, Recorder

pytestmark = pytest.mark.filterwarnings(
    # create_react_agent moved to langchain.agents; create_supervisor still builds on it.
    "ignore::langgraph.warnings.LangGraphDeprecatedSinceV10"
)

COUNTER = TokenCounter()


def _react_agent(checkpointer: Any, model: ScriptedChatModel, **kwargs: Any) -> tuple[Any, Any]:
    node = CompactionNode(
        model=_facts_summariser(), token_limit=LIMIT, keep=KeepTokens(500), **kwargs
    )
    agent = create_react_agent(
        model, tools=[lookup], pre_model_hook=node, checkpointer=checkpointer
    )
    return agent, node


def _check_one_long_run(model: ScriptedChatModel, state: dict[str, Any], node: Any) -> None:
    assert len(model.calls) == CALLS + 1  # 42 tool calls and the answer, in one run
    for call in model.calls:  # every model call's input stayed under the trigger
        assert COUNTER.count(call) <= LIMIT
        assert openai_violations(call) == []
    messages = state["messages"]
    assert messages[-1].text == "All records are read."
    summary = next(m for m in messages if is_summary(m))
    assert "FACT-00" in summary.text  # the first tool result survives in the summary
    assert node.last_compaction("t").status == "compacted"


def _originals_kept(history: Sequence[Any]) -> set[str]:
    return {m.text for s in history for m in s.values.get("messages", [])}


# ---------------------------------------------------------------------------- create_react_agent


def test_forty_tool_calls_in_one_run_stay_under_the_trigger(saver: Any) -> None:
    model = _tool_loop_model()
    agent, node = _react_agent(saver, model)
    config = {"configurable": {"thread_id": "t"}}
    state = agent.invoke({"messages": [HumanMessage("Read all records.")]}, config)
    _check_one_long_run(model, state, node)
    stored = agent.get_state(config).values["messages"]
    assert is_summary(stored[0])
    seen = _originals_kept(list(agent.get_state_history(config)))
    assert {lookup.invoke({"n": n}) for n in range(CALLS)} <= seen


async def test_forty_tool_calls_in_one_run_stay_under_the_trigger_async(asaver: Any) -> None:
    model = _tool_loop_model()
    agent, node = _react_agent(asaver, model)
    config = {"configurable": {"thread_id": "t"}}
    state = await agent.ainvoke({"messages": [HumanMessage("Read all records.")]}, config)
    _check_one_long_run(model, state, node)
    seen = _originals_kept([s async for s in agent.aget_state_history(config)])
    assert {lookup.invoke({"n": n}) for n in range(CALLS)} <= seen


def _note(n: int) -> str:
    return f"Note {n}: the review of budget line {n} moved to room {n}. " + "details " * 20


def _chat_agent(checkpointer: Any, summariser: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """An agent that answers each note; compacts over six messages, keeping two."""
    node = CompactionNode(
        history_manager=HistoryManager(
            model=summariser or _facts_summariser(), retry_backoff=0, summary_retries=0
        ),
        trigger=MessageCount(6),
        keep=KeepMessages(2),
        **kwargs,
    )
    answer = ScriptedChatModel(responses=[lambda m: f"Noted: {m[-1].text[:12]}"])
    return create_react_agent(
        answer, tools=[], pre_model_hook=node, checkpointer=checkpointer
    ), node


def _check_many_turns(state: dict[str, Any], stored: list[BaseMessage], history: list[Any]) -> None:
    assert [m.type for m in stored] == ["human", "ai", "human", "ai"]
    assert is_summary(stored[0])  # the summary, then the kept messages
    assert stored[1].text == f"Noted: {_note(4)[:12]}"  # ... kept verbatim, in order
    assert stored[2].text == _note(5)
    assert stored == state["messages"]
    assert {_note(n) for n in range(6)} <= _originals_kept(history)  # nothing lost


def test_many_turns_compact_and_every_original_stays(saver: Any) -> None:
    agent, node = _chat_agent(saver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(6):
        state = agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
    stored = agent.get_state(config).values["messages"]
    _check_many_turns(state, stored, list(agent.get_state_history(config)))
    assert node.last_compaction("t").status == "compacted"


async def test_many_turns_compact_and_every_original_stays_async(asaver: Any) -> None:
    agent, node = _chat_agent(asaver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(6):
        state = await agent.ainvoke({"messages": [HumanMessage(_note(n))]}, config)
    stored = (await agent.aget_state(config)).values["messages"]
    _check_many_turns(state, stored, [s async for s in agent.aget_state_history(config)])
    assert node.last_compaction("t").status == "compacted"


def _check_transcript(transcript: Any, turns: int) -> None:
    texts = [m.text for m in transcript.messages]
    originals = [text for n in range(turns) for text in (_note(n), f"Noted: {_note(n)[:12]}")]
    assert texts == originals  # every message the thread held, each once, in order
    assert len(transcript.sessions) >= 2
    assert all(session.summary for session in transcript.sessions)


def test_the_transcript_holds_every_original(saver: Any) -> None:
    agent, _ = _chat_agent(saver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(8):
        agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
    _check_transcript(HistoryManager().transcript(config, graph=agent), 8)


async def test_the_transcript_holds_every_original_async(asaver: Any) -> None:
    agent, _ = _chat_agent(asaver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(8):
        await agent.ainvoke({"messages": [HumanMessage(_note(n))]}, config)
    _check_transcript(await HistoryManager().atranscript(config, graph=agent), 8)


def test_a_failing_summariser_leaves_the_history_and_trips_the_breaker(saver: Any) -> None:
    broken = ScriptedChatModel(responses=[RuntimeError("provider down")])
    agent, node = _chat_agent(saver, broken, max_consecutive_failures=2)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(6):
        state = agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
    assert state["messages"][-1].text == f"Noted: {_note(5)[:12]}"  # the run went on
    assert [m.text for m in state["messages"] if m.type == "human"] == [_note(n) for n in range(6)]
    assert not any(is_summary(m) for m in state["messages"])
    assert node._circuits["t"].failures == 2
    assert len(broken.calls) == 2  # then the breaker paused compaction
    assert node.last_compaction("t").status == "skipped"


def test_a_compaction_is_a_run_inside_the_nodes_run(saver: Any) -> None:
    recorder = Recorder()
    summariser = ScriptedChatModel(responses=[SUMMARY])
    node = CompactionNode(model=summariser, trigger=MessageCount(6), keep=KeepMessages(2))
    answer = ScriptedChatModel(responses=["Noted, thank you."])
    agent = create_react_agent(answer, tools=[], pre_model_hook=node, checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}, "callbacks": [recorder]}
    for n in range(4):
        agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
    [(run_id, run)] = recorder.compactions()
    assert recorder.chains[run["parent"]]["name"] == "pre_model_hook"  # the node's run
    assert run["inputs"]["thread_id"] == "t"
    assert run["outputs"]["compacted"] is True
    assert len(recorder.summariser_calls(run_id)) == 1


def test_an_interrupt_pending_across_a_compaction_resumes(saver: Any) -> None:
    def step(messages: list[BaseMessage]) -> AIMessage:
        if messages[-1].type == "tool":
            return AIMessage(f"Read: {messages[-1].text[:10]}")
        n = len([m for m in messages if m.type == "tool"])
        return AIMessage("", tool_calls=[{"name": "lookup", "args": {"n": n}, "id": f"c{n}"}])

    node = CompactionNode(model=_facts_summariser(), trigger=MessageCount(6), keep=KeepTokens(60))
    agent = create_react_agent(
        ScriptedChatModel(responses=[step]),
        tools=[lookup],
        pre_model_hook=node,
        interrupt_before=["tools"],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}}
    statuses = []
    for n in range(4):
        agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
        assert agent.get_state(config).next == ("tools",)  # paused before the tool
        state = agent.invoke(Command(resume=True), config)
        assert state["messages"][-1].text.startswith("Read: FACT-")  # resumed, the tool ran
        result = node.last_compaction("t")
        statuses.append(result.status if result else None)
    assert "compacted" in statuses
    assert is_summary(state["messages"][0])
    assert openai_violations(state["messages"]) == []


def test_a_megabyte_tool_result_is_stored_before_the_model_reads_it(
    saver: Any, tmp_path: Any
) -> None:
    from langgraph.prebuilt import ToolNode

    from compacting_supervisor import DirectoryResultStore, OffloadToolResults

    model = ScriptedChatModel(responses=[export_step])
    policy = OffloadToolResults(DirectoryResultStore(tmp_path))
    tools = ToolNode(
        [export_logs, policy.read_tool()],
        wrap_tool_call=policy.wrap_tool_call,
        awrap_tool_call=policy.awrap_tool_call,
    )
    node = CompactionNode(model=_facts_summariser(), token_limit=LIMIT, offload=policy)
    agent = create_react_agent(model, tools=tools, pre_model_hook=node, checkpointer=saver)
    state = agent.invoke(
        {"messages": [HumanMessage("Export the logs.")]}, {"configurable": {"thread_id": "t"}}
    )
    assert state["messages"][-1].text == "The logs start with ERROR-4711."
    assert max(COUNTER.count(call) for call in model.calls) < 2_000  # never the megabyte
    assert len(list(tmp_path.glob("tr_*.txt"))) == 1


# ---------------------------------------------------------------------------- create_supervisor


def _run_team(team: Team, turns: int) -> list[BaseMessage]:
    config = {"configurable": {"thread_id": "hiring"}}
    for i in range(turns):
        team.graph.invoke({"messages": [HumanMessage(turn_request(i))]}, config)
    return team.graph.get_state(config).values["messages"]


async def _arun_team(team: Team, turns: int) -> list[BaseMessage]:
    config = {"configurable": {"thread_id": "hiring"}}
    for i in range(turns):
        await team.graph.ainvoke({"messages": [HumanMessage(turn_request(i))]}, config)
    return (await team.graph.aget_state(config)).values["messages"]


def _supervisor_node(**kwargs: Any) -> CompactionNode:
    return CompactionNode(trigger=MessageCount(10), keep=KeepMessages(3), **kwargs)


def test_the_supervisor_trap_a_subgraph_compaction_leaves_the_parent_whole(saver: Any) -> None:
    """Compacting the supervisor subgraph's own copy: the parent merges it back by id."""
    node = _supervisor_node(compact_parent=False)
    team = Team(saver, pre_model_hook=node)
    messages = _run_team(team, 5)
    assert node.last_compaction("hiring").status == "compacted"  # it did compact, in vain:
    assert not is_summary(messages[0])  # the parent keeps every message,
    assert len(messages) > 30
    assert sum(map(is_summary, messages)) >= 2  # and gains the summaries at its end


def _check_team(team: Team, node: CompactionNode, messages: list[BaseMessage]) -> None:
    assert node.last_compaction("hiring").status == "compacted"
    assert is_summary(messages[0])
    assert sum(map(is_summary, messages)) == 1
    assert len(messages) <= 10
    assert_tool_calls_paired(messages)
    # The supervisor's model never read more than the trigger allows, after the first turn.
    assert max(len(call) for call in team.supervisor_model.calls) <= 10
    # The sub-agents worked every turn, with their own messages whole.
    assert len(team.cvs_read) == 3 and len(team.booked) == 2
    for call in team.calendar_model.calls:
        assert call[-1].type == "tool"


def test_the_supervisors_hook_compacts_the_parents_messages(saver: Any) -> None:
    node = _supervisor_node()
    team = Team(saver, pre_model_hook=node)
    messages = _run_team(team, 5)
    _check_team(team, node, messages)
    config = {"configurable": {"thread_id": "hiring"}}
    seen = _originals_kept(list(team.graph.get_state_history(config)))
    assert {turn_request(i) for i in range(5)} <= seen


async def test_the_supervisors_hook_compacts_the_parents_messages_async(asaver: Any) -> None:
    node = _supervisor_node()
    team = Team(asaver, pre_model_hook=node)
    messages = await _arun_team(team, 5)
    _check_team(team, node, messages)


def test_with_durability_exit_the_parent_is_compacted_when_told(
    saver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``durability="exit"`` stores no checkpoint during the run: the parent cannot be read,
    so the node compacts the subgraph's copy and says so; ``compact_parent=True`` is the fix."""
    config = {"configurable": {"thread_id": "hiring"}}
    unsure = Team(saver, pre_model_hook=_supervisor_node())
    for i in range(5):
        unsure.graph.invoke(
            {"messages": [HumanMessage(turn_request(i))]}, config, durability="exit"
        )
    assert not is_summary(unsure.graph.get_state(config).values["messages"][0])
    assert "compact_parent=True" in caplog.text
    node = _supervisor_node(compact_parent=True)
    team = Team(saver, pre_model_hook=node)
    other = {"configurable": {"thread_id": "told"}}
    for i in range(5):
        team.graph.invoke({"messages": [HumanMessage(turn_request(i))]}, other, durability="exit")
    messages = team.graph.get_state(other).values["messages"]
    assert is_summary(messages[0])
    assert sum(map(is_summary, messages)) == 1


def _hand_off_to(target: str) -> Any:
    """A stand-in supervisor: hand off to ``target``, then answer when it hands back."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage) and str(last.name).startswith("transfer_back"):
            return AIMessage(f"{target} found a room.")
        call = {"name": f"transfer_to_{target}", "args": {}, "id": f"{target}-{len(messages)}"}
        return AIMessage("", tool_calls=[call])

    return step


@pytest.mark.parametrize("shared", [False, True])
def test_a_supervisor_inside_a_supervisor(saver: Any, shared: bool) -> None:
    """Both supervisors compact (one node or two): the inner team its own copy (handed back
    as its last message), the outer team its history, which opens with one summary."""
    from langgraph_supervisor import create_supervisor

    outer_node = CompactionNode(trigger=MessageCount(10), keep=KeepMessages(3))
    inner_node = (
        outer_node if shared else CompactionNode(trigger=MessageCount(8), keep=KeepMessages(3))
    )
    worker = create_react_agent(
        ScriptedChatModel(responses=["Room 4 is free on Monday. " * 4]), tools=[], name="worker"
    )
    inner = create_supervisor(
        [worker],
        model=ScriptedChatModel(responses=[_hand_off_to("worker")]),
        pre_model_hook=inner_node,
        supervisor_name="inner_supervisor",
    ).compile(name="inner_team")
    outer = create_supervisor(
        [inner],
        model=ScriptedChatModel(responses=[_hand_off_to("inner_team")]),
        pre_model_hook=outer_node,
    ).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(5):
        request = f"Request {n}: find a free room for the review of line {n}. " * 4
        messages = outer.invoke({"messages": [HumanMessage(request)]}, config)["messages"]
        assert sum(map(is_summary, messages)) == (n > 0)  # never a summary mid-history
    assert is_summary(messages[0])
    assert messages[-1].text == "inner_team found a room."
    assert_tool_calls_paired(messages)
    assert inner_node.last_compaction("t").status == "compacted"


def _slow_puts(saver: Any, seconds: float = 0.05) -> Any:
    """The saver, each root checkpoint put taking ``seconds`` (a remote Postgres, a busy disk)."""
    put, aput = saver.put, saver.aput

    def slow_put(config: Any, *args: Any) -> Any:
        if not config["configurable"].get("checkpoint_ns"):
            time.sleep(seconds)
        return put(config, *args)

    async def slow_aput(config: Any, *args: Any) -> Any:
        if not config["configurable"].get("checkpoint_ns"):
            await asyncio.sleep(seconds)
        return await aput(config, *args)

    saver.put, saver.aput = slow_put, slow_aput
    return saver


def test_a_slow_saver_still_has_the_parents_messages_compacted(
    saver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default ``durability="async"`` the parent's checkpoint is stored in the
    background while the supervisor runs: the hook waits for it rather than compacting the
    subgraph's copy (which would append a summary to the parent's messages at every turn)."""
    node = _supervisor_node()
    team = Team(_slow_puts(saver), pre_model_hook=node)
    messages = _run_team(team, 5)
    assert "not stored" not in caplog.text
    _check_team(team, node, messages)


async def test_a_slow_saver_still_has_the_parents_messages_compacted_async(
    asaver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    node = _supervisor_node()
    team = Team(_slow_puts(asaver), pre_model_hook=node)
    messages = await _arun_team(team, 5)
    assert "not stored" not in caplog.text
    _check_team(team, node, messages)


def test_a_node_serving_many_threads_remembers_only_the_latest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A served graph's node lives as long as the worker and sees every thread: what it keeps
    per thread (first seen, last result and its summary, breaker, hand-ups) is bounded."""
    import compacting_supervisor._recent as recent

    monkeypatch.setattr(recent, "THREADS_KEPT", 50)
    broken = ScriptedChatModel(responses=[RuntimeError("provider down")])
    node = CompactionNode(
        history_manager=HistoryManager(model=broken, summary_retries=0, retry_backoff=0),
        trigger=MessageCount(2),
        keep=KeepMessages(1),
    )
    state = {"messages": [HumanMessage(_note(n)) for n in range(3)]}
    for n in range(200):
        node.invoke(state, {"configurable": {"thread_id": f"t{n}"}})
    assert node.last_compaction("t199").status == "failed"  # recent threads are remembered
    assert node._circuits["t199"].failures == 1
    assert node.last_compaction("t0") is None  # the oldest are forgotten
    kept = [node._results, node._first_seen, node._circuits, node._requests, node._handed_up]
    assert [len(records) <= 50 for records in kept] == [True] * 5


def test_without_a_checkpointer_the_supervisor_is_told_what_to_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No saver, no parent checkpoint to read: the node cannot tell whether the parent shares
    its messages, so it compacts its own copy and says once which setting decides."""
    unsure = Team(None, pre_model_hook=_supervisor_node())
    messages: list[BaseMessage] = []
    for i in range(5):
        request = {"messages": [*messages, HumanMessage(turn_request(i))]}
        messages = unsure.graph.invoke(request)["messages"]
    assert caplog.text.count("compact_parent=True") == 1
    assert sum(map(is_summary, messages)) >= 2  # the trap: summaries merged to the end
    caplog.clear()
    told = Team(None, pre_model_hook=_supervisor_node(compact_parent=True))
    messages = []
    for i in range(5):
        request = {"messages": [*messages, HumanMessage(turn_request(i))]}
        messages = told.graph.invoke(request)["messages"]
    assert "compact_parent" not in caplog.text
    assert is_summary(messages[0])
    assert sum(map(is_summary, messages)) == 1


def test_two_subgraphs_sharing_a_node_on_one_thread_skip_only_their_own_rerun() -> None:
    """One node, the hook of two teams' supervisors running side by side on one thread (an
    outer supervisor's parallel hand-off): each team's rerun after handing its compacted
    history up is recognised as its own, whatever the other team did in between."""
    summariser = ScriptedChatModel(responses=[SUMMARY])
    node = CompactionNode(
        model=summariser, trigger=MessageCount(2), keep=KeepMessages(2), compact_parent=True
    )

    def config(team: str, task: int) -> dict[str, Any]:
        namespace = f"{team}:1|supervisor:{task}|pre_model_hook:{task}"
        return {"configurable": {"thread_id": "t", "checkpoint_ns": namespace}}

    notes = [HumanMessage(_note(n), id=f"n{n}") for n in range(4)]
    handed = node.invoke({"messages": notes}, config("team_a", 2))
    assert isinstance(handed, Command) and handed.goto == "supervisor"  # to team_a's graph
    other = [HumanMessage(_note(n), id=f"o{n}") for n in range(4)]
    assert isinstance(node.invoke({"messages": other}, config("team_b", 3)), Command)
    compacted = handed.update["messages"].value  # team_a's supervisor runs again from it
    assert node.invoke({"messages": compacted}, config("team_a", 4)) is None
    assert len(summariser.calls) == 2  # one compaction per team,
    assert node.last_compaction("t").status == "compacted"  # and no attempt on the rerun


class _Question(TypedDict):
    question: str
    answer: str


def test_an_agent_called_from_a_node_with_its_own_state_compacts_its_own_copy(saver: Any) -> None:
    """The agent runs as a subgraph of a graph without messages: there is no parent history
    to compact, so the node compacts the agent's (it would fail the run otherwise)."""
    node = CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2))
    model = ScriptedChatModel(responses=[lambda m: f"Read {len(m)} messages."])
    agent = create_react_agent(model, tools=[], pre_model_hook=node)

    def ask(state: _Question) -> dict[str, Any]:
        notes = [HumanMessage(_note(n)) for n in range(8)] + [HumanMessage(state["question"])]
        return {"answer": agent.invoke({"messages": notes})["messages"][-1].text}

    builder = StateGraph(_Question)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=saver)
    state = graph.invoke({"question": "Which room?"}, {"configurable": {"thread_id": "t"}})
    assert state["answer"] == "Read 3 messages."  # the summary, a kept note, the question
    assert node.last_compaction("t").status == "compacted"


# ---------------------------------------------------------------------------- streaming


def _streaming_summariser() -> ChatModelSummarizer:
    """A chat-model summariser whose model streams its tokens word by word."""
    return ChatModelSummarizer(
        ScriptedChatModel(responses=["## Current state\n- SUMMARY-TOKEN notes were taken"])
    )


def test_nothing_of_the_compaction_reaches_the_messages_stream(saver: Any) -> None:
    node = CompactionNode(
        history_manager=HistoryManager(model=_streaming_summariser()),
        trigger=MessageCount(6),
        keep=KeepMessages(2),
    )
    answer = ScriptedChatModel(responses=[lambda m: f"ANSWER-TOKEN for {m[-1].text[:7]}"])
    agent = create_react_agent(answer, tools=[], pre_model_hook=node, checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    streamed: list[tuple[BaseMessage, dict[str, Any]]] = []
    for n in range(5):
        streamed += agent.stream(
            {"messages": [HumanMessage(_note(n))]}, config, stream_mode="messages"
        )
    assert is_summary(agent.get_state(config).values["messages"][0])  # it compacted
    assert node.last_compaction("t").status == "compacted"
    assert {meta["langgraph_node"] for _, meta in streamed} == {"agent"}
    assert not any("SUMMARY-TOKEN" in str(chunk.content) for chunk, _ in streamed)
    assert not any(is_summary(chunk) for chunk, _ in streamed)
    spoken = "".join(str(chunk.content) for chunk, _ in streamed)
    assert spoken == "".join(f"ANSWER-TOKEN for Note {n}:" for n in range(5))


def _check_nothing_streamed(streamed: list[Any], node: CompactionNode) -> None:
    assert node.last_compaction("t").summary.startswith("SUMMARY-TOKEN")  # it compacted
    assert not any("SUMMARY-TOKEN" in str(chunk.content) for chunk, _ in streamed)
    assert {meta["langgraph_node"] for _, meta in streamed} == {"agent"}


def _custom_summariser_agent(saver: Any) -> tuple[Any, CompactionNode]:
    node = CompactionNode(
        history_manager=HistoryManager(model=ModelCallingSummarizer()),
        trigger=MessageCount(6),
        keep=KeepMessages(2),
    )
    answer = ScriptedChatModel(responses=["ANSWER-TOKEN"])
    return create_react_agent(answer, tools=[], pre_model_hook=node, checkpointer=saver), node


def test_a_summarisers_own_model_calls_never_reach_the_messages_stream(saver: Any) -> None:
    """Any summariser, not only `ChatModelSummarizer`: the compaction's run is ``nostream``."""
    agent, node = _custom_summariser_agent(saver)
    config = {"configurable": {"thread_id": "t"}}
    streamed: list[Any] = []
    for n in range(5):
        request = {"messages": [HumanMessage(_note(n))]}
        streamed += agent.stream(request, config, stream_mode="messages")
    _check_nothing_streamed(streamed, node)


async def test_a_summarisers_own_model_calls_never_reach_the_messages_stream_async(
    asaver: Any,
) -> None:
    agent, node = _custom_summariser_agent(asaver)
    config = {"configurable": {"thread_id": "t"}}
    streamed: list[Any] = []
    for n in range(5):
        request = {"messages": [HumanMessage(_note(n))]}
        streamed += [c async for c in agent.astream(request, config, stream_mode="messages")]
    _check_nothing_streamed(streamed, node)


def test_the_supervisors_compaction_never_reaches_the_messages_stream(saver: Any) -> None:
    node = CompactionNode(
        history_manager=HistoryManager(model=_streaming_summariser()),
        trigger=MessageCount(10),
        keep=KeepMessages(3),
    )
    team = Team(saver, pre_model_hook=node)
    config = {"configurable": {"thread_id": "hiring"}}
    streamed = []
    for i in range(5):
        request = {"messages": [HumanMessage(turn_request(i))]}
        for _, (chunk, meta) in team.graph.stream(
            request, config, stream_mode="messages", subgraphs=True
        ):
            streamed.append((chunk, meta))
    assert is_summary(team.graph.get_state(config).values["messages"][0])  # it compacted
    assert not any("SUMMARY-TOKEN" in str(chunk.content) for chunk, _ in streamed)
    assert not any(is_summary(chunk) for chunk, _ in streamed)
    assert "pre_model_hook" not in {meta["langgraph_node"] for _, meta in streamed}
    spoken = "".join(c.text for c, m in streamed if m["langgraph_node"] == "agent")
    assert spoken.count("All done for your message") == 5  # each answer once, in tokens


# ---------------------------------------------------------------------------- a plain graph


def _plain_graph(checkpointer: Any, node: CompactionNode) -> Any:
    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Answer to: {state['messages'][-1].text[:7]}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("compact", node)
    builder.add_node("answer", answer)
    builder.add_edge(START, "compact")
    builder.add_edge("compact", "answer")
    return builder.compile(checkpointer=checkpointer)


def test_a_node_of_any_graph_with_messages(saver: Any) -> None:
    node = CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2))
    graph = _plain_graph(saver, node)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(4):
        state = graph.invoke({"messages": [HumanMessage(_note(n))]}, config)
    assert is_summary(state["messages"][0])  # 7 messages at the fourth turn: compacted
    assert [m.text for m in state["messages"][1:]] == [
        "Answer to: Note 2:",
        _note(3),
        "Answer to: Note 3:",
    ]


async def test_a_node_of_any_graph_with_messages_async(asaver: Any) -> None:
    node = CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2))
    graph = _plain_graph(asaver, node)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(4):
        state = await graph.ainvoke({"messages": [HumanMessage(_note(n))]}, config)
    assert is_summary(state["messages"][0])
    assert [m.text for m in state["messages"][2:]] == [_note(3), "Answer to: Note 3:"]


def _note_graph(saver: Any, *, parallel: bool) -> Any:
    """START -> compact -> answer, with a node writing a note beside or before the compaction."""

    def note(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"NOTE-{len(state['messages'])}")]}

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Answer to: {state['messages'][-1].text[:7]}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("compact", CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2)))
    builder.add_node("note", note)
    builder.add_node("answer", answer)
    if parallel:  # the note is written in the compaction's step
        builder.add_edge(START, "compact")
        builder.add_edge(START, "note")
        builder.add_edge(["compact", "note"], "answer")
    else:  # the compaction on a step of its own
        builder.add_edge(START, "note")
        builder.add_edge("note", "compact")
        builder.add_edge("compact", "answer")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("parallel", [False, True])
def test_messages_written_in_the_compactions_step_are_dropped(saver: Any, parallel: bool) -> None:
    """The update is an `Overwrite`, which drops every other write of ``messages`` in the
    same step (docs/node.md says to give the node a step of its own); on its own step,
    every note stays."""
    graph = _note_graph(saver, parallel=parallel)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(5):
        graph.invoke({"messages": [HumanMessage(_note(n))]}, config)
    history = list(graph.get_state_history(config))
    assert is_summary(history[0].values["messages"][0])  # it compacted
    notes = {text for text in _originals_kept(history) if text.startswith("NOTE-")}
    assert (len(notes) < 5) is parallel


# ---------------------------------------------------------------------------- bad input


class _Todos(TypedDict):
    todos: list[str]


def test_a_graph_without_messages_is_told_what_to_do() -> None:
    builder = StateGraph(_Todos)
    builder.add_node("compact", CompactionNode())
    builder.add_edge(START, "compact")
    graph = builder.compile()
    with pytest.raises(CompactionError, match=r"without a 'messages' channel.*MessagesState"):
        graph.invoke({"todos": ["a"]})


def test_a_node_is_not_a_model_a_middleware_or_a_summariser() -> None:
    from langchain.agents import create_agent

    from compacting_supervisor import CompactionMiddleware

    with pytest.raises(TypeError, match=r"`model` got a CompactionNode.*pre_model_hook="):
        create_react_agent(CompactionNode(), tools=[lookup])  # bound to tools
    hi = {"messages": [HumanMessage("hi")]}
    with pytest.raises(TypeError, match=r"called with a list, as a chat model is.*pre_model_hook"):
        create_react_agent(CompactionNode(), tools=[]).invoke(hi)
    with pytest.raises(TypeError, match=r"called with a list, as a chat model is"):
        create_agent(CompactionNode(), tools=[]).invoke(hi)
    with pytest.raises(TypeError, match=r"`middleware` got a CompactionNode.*CompactionMiddleware"):
        create_agent(ScriptedChatModel(responses=["x"]), tools=[], middleware=[CompactionNode()])
    assert not hasattr(CompactionNode(), "wrap_tool_call")  # still no such attribute to probes
    model = ScriptedChatModel(responses=["x"])
    misplaced = create_react_agent(model, tools=[], pre_model_hook=CompactionMiddleware())
    with pytest.raises(TypeError, match=r"create_agent middleware.*use CompactionNode"):
        misplaced.invoke(hi)
    graph = create_react_agent(ScriptedChatModel(responses=["x"]), tools=[])
    with pytest.raises(TypeError, match="`model` is the summariser's chat model, not a graph"):
        CompactionNode(model=graph)
    with pytest.raises(TypeError, match="`compact_parent` must be None, True or False"):
        CompactionNode(compact_parent="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`token_limit` and `trigger`"):
        CompactionNode(token_limit=100, trigger=MessageCount(4))


class _PydanticState(BaseModel):
    messages: Annotated[list[AnyMessage], add_messages]


def test_a_pydantic_state_schema_is_read_too(saver: Any) -> None:
    def answer(state: _PydanticState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Answer to: {state.messages[-1].text[:7]}")]}

    builder = StateGraph(_PydanticState)
    builder.add_node("compact", CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2)))
    builder.add_node("answer", answer)
    builder.add_edge(START, "compact")
    builder.add_edge("compact", "answer")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    for n in range(4):
        state = graph.invoke({"messages": [HumanMessage(_note(n))]}, config)
    assert is_summary(state["messages"][0])
    assert [m.text for m in state["messages"][2:]] == [_note(3), "Answer to: Note 3:"]


class _OldFormat(TypedDict):
    messages: list[Any]  # no add_messages reducer: what old checkpoints stored


def test_messages_stored_in_an_old_format_are_refused_with_the_fix() -> None:
    builder = StateGraph(_OldFormat)
    builder.add_node("compact", CompactionNode(trigger=MessageCount(1)))
    builder.add_edge(START, "compact")
    graph = builder.compile()
    old = [{"role": "user", "content": "hi"}, ("assistant", "hello")]
    with pytest.raises(CompactionError, match=r"not a LangChain message.*add_messages"):
        graph.invoke({"messages": old})


# ---------------------------------------------------------------------------- the event loop

_ON_THE_LOOP = """
import asyncio, sys
from blockbuster import BlockBuster, BlockingError
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
import compacting_supervisor._flow as flow
import compacting_supervisor.middleware as middleware_module
import compacting_supervisor.node as node_module
from compacting_supervisor import HistoryManager, KeepMessages, TokenLimit
from compacting_supervisor.testing import ScriptedChatModel

def agent():
    summariser = ScriptedChatModel(responses=["## Current state\\n- notes were taken"])
    settings = dict(
        history_manager=HistoryManager(model=summariser), trigger=TokenLimit(300),
        keep=KeepMessages(2),
    )
    model = ScriptedChatModel(responses=["Answer " + "words " * 30])
    if sys.argv[1] == "node":
        from langgraph.prebuilt import create_react_agent
        return create_react_agent(
            model, tools=[], pre_model_hook=node_module.CompactionNode(**settings),
            checkpointer=InMemorySaver(),
        )
    if sys.argv[1] == "supervisor":  # the hook of a subgraph: it compacts the parent
        from langgraph.prebuilt import create_react_agent
        from langgraph_supervisor import create_supervisor
        worker = create_react_agent(model, tools=[], name="worker")
        return create_supervisor(
            [worker], model=model, pre_model_hook=node_module.CompactionNode(**settings),
        ).compile(checkpointer=InMemorySaver())
    from langchain.agents import create_agent
    return create_agent(
        model, tools=[], middleware=[middleware_module.CompactionMiddleware(**settings)],
        checkpointer=InMemorySaver(),
    )

async def turns():
    graph, config = agent(), {"configurable": {"thread_id": "t"}}
    for n in range(5):
        text = f"Turn {n} " + "text " * 40
        state = await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
    return state

async def main():
    detector = BlockBuster()  # stricter than LangGraph Server's: file stats count too
    detector.activate()
    try:
        # The control: the same flow driven on the event loop is caught blocking it.
        off_loop = node_module.adrive_off_loop
        node_module.adrive_off_loop = middleware_module.adrive_off_loop = flow.adrive
        try:
            await turns()
        except BlockingError as exc:
            print("on the loop:", str(exc).splitlines()[0])
        node_module.adrive_off_loop = middleware_module.adrive_off_loop = off_loop
        state = await turns()
        print("off the loop:", state["messages"][0].text[:17])
    finally:
        detector.deactivate()

asyncio.run(main())
"""


@pytest.mark.parametrize("form", ["node", "supervisor", "middleware"])
def test_the_async_paths_never_block_the_event_loop(form: str) -> None:
    """Under blockbuster, the detector LangGraph Server runs graphs under, in a fresh
    process (the tokenizer not loaded yet): the compaction's first run blocks nothing."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _ON_THE_LOOP, form],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on the loop: Blocking call to" in result.stdout  # the detector works
    assert "off the loop: Here is a summary" in result.stdout  # and ours blocks nothing


# ---------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("where", ["summariser", "redaction"])
async def test_a_cancelled_compaction_ends_its_run_with_the_cancellation(where: str) -> None:
    """Cancelled while awaiting the summariser (on the loop) or while redacting (in the
    worker thread): the traced run ends with the cancellation, and nothing is written."""
    import time

    def slow_redact(message: BaseMessage) -> BaseMessage:
        time.sleep(0.5)  # four messages: two seconds in the worker thread
        return message

    recorder = Recorder()
    summariser = ScriptedChatModel(responses=[SUMMARY], delay=5.0 if where == "summariser" else 0)
    manager = HistoryManager(
        model=summariser, summary_timeout=None, redact=slow_redact if where == "redaction" else None
    )
    node = CompactionNode(history_manager=manager, trigger=MessageCount(2), keep=KeepMessages(1))
    state = {"messages": [HumanMessage(_note(n)) for n in range(4)]}
    config = {"callbacks": [recorder], "configurable": {"thread_id": "t"}}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(node.ainvoke(state, config), timeout=1.0)
    [(_, run)] = recorder.compactions()
    assert isinstance(run["error"], asyncio.CancelledError)  # ended, not left open
    assert node.last_compaction("t") is None


def test_thread_stats_count_the_compactions_made_inside_runs(saver: Any) -> None:
    """`thread_stats` counts the node's compactions (no metadata marks them) as it counts
    the wrapper's: how many, when the last was, what they summarised and saved."""
    agent, node = _chat_agent(saver)
    config = {"configurable": {"thread_id": "t"}}
    results = []
    for n in range(10):
        agent.invoke({"messages": [HumanMessage(_note(n))]}, config)
        result = node.last_compaction("t")
        if result is not None and result not in results and result.status == "compacted":
            results.append(result)
    stats = HistoryManager().thread_stats(config, graph=agent)
    assert len(results) >= 2
    assert stats.compactions == len(results)
    assert stats.messages == len(agent.get_state(config).values["messages"])
    assert stats.messages_summarized == sum(r.messages_summarized for r in results)
    assert stats.tokens_saved > 0
    assert stats.last_compaction_at is not None
    assert len(stats.cache_by_session) == stats.compactions + 1


async def test_thread_stats_count_the_compactions_made_inside_runs_async(asaver: Any) -> None:
    agent, node = _chat_agent(asaver)
    config = {"configurable": {"thread_id": "t"}}
    summarised = compactions = 0
    for n in range(10):
        before = node.last_compaction("t")
        await agent.ainvoke({"messages": [HumanMessage(_note(n))]}, config)
        result = node.last_compaction("t")
        if result is not before and result is not None and result.status == "compacted":
            compactions += 1
            summarised += result.messages_summarized
    stats = await HistoryManager().athread_stats(config, graph=agent)
    assert compactions >= 2
    assert (stats.compactions, stats.messages_summarized) == (compactions, summarised)
