"""`CompactionMiddleware`: the compaction inside one `create_agent` run, before each model call."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.types import Command

from compacting_supervisor import (
    CompactionError,
    CompactionMiddleware,
    HistoryManager,
    KeepMessages,
    KeepTokens,
    MessageCount,
    TokenCounter,
    is_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import openai_violations

COUNTER = TokenCounter()
LIMIT = 1_500
CALLS = 42


@tool
def lookup(n: int) -> str:
    """Look up record ``n``."""
    return f"FACT-{n:02d}: record {n} says the budget line {n} is {n * 100} euros. " * 3


def _tool_loop_model() -> ScriptedChatModel:
    """Calls `lookup` once per model call, 42 times in one run, then answers."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        done = sum(1 for m in messages if m.type == "tool")
        summary = next((m for m in messages if is_summary(m)), None)
        done += len(re.findall(r"FACT-\d+", summary.text)) if summary else 0
        if done >= CALLS:
            return AIMessage("All records are read.")
        call = {"name": "lookup", "args": {"n": done}, "id": f"call_{done}"}
        return AIMessage("", tool_calls=[call])

    return ScriptedChatModel(responses=[step])


def _facts_summariser() -> ScriptedChatModel:
    """Keeps every FACT-n of the existing summary and the new messages, in order."""

    def summarise(messages: list[BaseMessage]) -> str:
        facts = sorted(set(re.findall(r"FACT-\d+", str(messages[-1].content))))
        found = " ".join(facts) or "the user's notes, no records yet"
        return f"## Discoveries\n- {found}\n## Current state\n- working through the requests"

    return ScriptedChatModel(responses=[summarise])


def _agent(checkpointer: Any, model: ScriptedChatModel, **kwargs: Any) -> tuple[Any, Any]:
    middleware = CompactionMiddleware(
        model=_facts_summariser(), token_limit=LIMIT, keep=KeepTokens(500), **kwargs
    )
    agent = create_agent(model, tools=[lookup], middleware=[middleware], checkpointer=checkpointer)
    return agent, middleware


def _check_one_long_run(model: ScriptedChatModel, messages: list[BaseMessage], mw: Any) -> None:
    tool_results = [c for c in model.calls if c and c[-1].type == "tool"]
    assert len(model.calls) == CALLS + 1  # 42 tool calls and the answer, in one run
    assert len(tool_results) >= CALLS
    # Every model call's input stayed under the trigger, and no call lost its result.
    for call in model.calls:
        assert COUNTER.count(call) <= LIMIT
        assert openai_violations(call) == []
    assert messages[-1].text == "All records are read."
    summary = next(m for m in messages if is_summary(m))
    assert "FACT-00" in summary.text  # the first tool result survives in the summary
    assert mw.last_compaction("t").status == "compacted"


def test_forty_tool_calls_in_one_run_stay_under_the_trigger(saver: Any) -> None:
    model = _tool_loop_model()
    agent, mw = _agent(saver, model)
    config = {"configurable": {"thread_id": "t"}}
    state = agent.invoke({"messages": [HumanMessage("Read all records.")]}, config)
    _check_one_long_run(model, state["messages"], mw)
    # Persisted with the step: the next run starts from the compacted history, and every
    # original stays in the checkpoints before it.
    stored = agent.get_state(config).values["messages"]
    assert is_summary(stored[0])
    seen = {m.text for s in agent.get_state_history(config) for m in s.values.get("messages", [])}
    assert {lookup.invoke({"n": n}) for n in range(CALLS)} <= seen


async def test_forty_tool_calls_in_one_run_stay_under_the_trigger_async(asaver: Any) -> None:
    model = _tool_loop_model()
    agent, mw = _agent(asaver, model)
    config = {"configurable": {"thread_id": "t"}}
    state = await agent.ainvoke({"messages": [HumanMessage("Read all records.")]}, config)
    _check_one_long_run(model, state["messages"], mw)


def test_the_system_prompt_and_tools_count_towards_the_trigger(saver: Any) -> None:
    prompt = "You read records carefully and answer in euros. " * 40  # ~400 tokens
    model = _tool_loop_model()
    middleware = CompactionMiddleware(
        model=_facts_summariser(), token_limit=LIMIT, keep=KeepTokens(300)
    )
    agent = create_agent(
        model,
        tools=[lookup],
        system_prompt=prompt,
        middleware=[middleware],
        checkpointer=saver,
    )
    agent.invoke(
        {"messages": [HumanMessage("Read all records.")]}, {"configurable": {"thread_id": "t"}}
    )
    assert middleware._overhead("t") > COUNTER.count_text(prompt)  # the prompt and the schema
    assert middleware._overhead("another thread") == 0  # nothing declared, nothing seen there
    for call in model.calls[1:]:  # from the second call on, the request was seen
        assert COUNTER.count(call) <= LIMIT + 20


def test_an_interrupt_survives_and_resume_works(saver: Any) -> None:
    @tool
    def delete(n: int) -> str:
        """Delete record ``n``."""
        return f"deleted {n}"

    def step(messages: list[BaseMessage]) -> AIMessage:
        if messages[-1].type == "tool":
            return AIMessage("Deleted.")
        return AIMessage("", tool_calls=[{"name": "delete", "args": {"n": 7}, "id": "d1"}])

    model = ScriptedChatModel(responses=[step])
    middleware = CompactionMiddleware(
        model=_facts_summariser(), trigger=MessageCount(4), keep=KeepTokens(60)
    )
    agent = create_agent(
        model,
        tools=[delete],
        middleware=[middleware, HumanInTheLoopMiddleware(interrupt_on={"delete": True})],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}}
    statuses = []
    for n in range(3):
        agent.invoke({"messages": [HumanMessage(f"Note {n}: " + "details " * 40)]}, config)
        assert agent.get_state(config).interrupts  # pending, after the compaction before it
        state = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
        assert state["messages"][-1].text == "Deleted."  # resumed, the tool ran
        result = middleware.last_compaction("t")
        statuses.append(result.status if result else None)
    assert "compacted" in statuses
    assert is_summary(state["messages"][0])
    assert openai_violations(state["messages"]) == []


def test_the_summariser_never_reaches_the_messages_stream(saver: Any) -> None:
    model = _tool_loop_model()
    agent, _ = _agent(saver, model)
    config = {"configurable": {"thread_id": "t"}}
    streamed = [
        chunk
        for chunk, _ in agent.stream(
            {"messages": [HumanMessage("Read all records.")]}, config, stream_mode="messages"
        )
    ]
    assert streamed
    # Nothing the summariser wrote is streamed: neither its tokens nor the summary message
    # the hook's state update writes (nor the update's removal of the old history).
    assert not any("## Discoveries" in str(chunk.content) for chunk in streamed)
    assert not any(is_summary(chunk) or chunk.type == "remove" for chunk in streamed)
    # ... while the compaction did happen, and the agent's own tokens are all there.
    assert is_summary(agent.get_state(config).values["messages"][0])
    spoken = "".join(str(c.content) for c in streamed if c.type in ("ai", "AIMessageChunk"))
    assert spoken.endswith("All records are read.")


class ModelCallingSummarizer:
    """A user's own `Summarizer` that asks its chat model, untagged: its tokens stream."""

    def __init__(self) -> None:
        self.model = ScriptedChatModel(responses=["SUMMARY-TOKEN notes were taken on rooms"])

    @staticmethod
    def _prompt(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        return [HumanMessage("Summarise: " + " ".join(m.text for m in messages))]

    def summarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        return self.model.invoke(self._prompt(messages)).text

    async def asummarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        return (await self.model.ainvoke(self._prompt(messages))).text


def test_a_summarisers_own_model_calls_never_reach_the_messages_stream(saver: Any) -> None:
    """A user's own `Summarizer` asking its chat model untagged: still nothing is streamed."""

    middleware = CompactionMiddleware(
        history_manager=HistoryManager(model=ModelCallingSummarizer()),
        trigger=MessageCount(6),
        keep=KeepMessages(2),
    )
    agent = create_agent(
        ScriptedChatModel(responses=["ANSWER-TOKEN"]),
        tools=[],
        middleware=[middleware],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}}
    streamed = []
    for n in range(5):
        request = {"messages": [HumanMessage(f"Note {n}: room {n} is booked. " * 6)]}
        streamed += list(agent.stream(request, config, stream_mode="messages"))
    assert middleware.last_compaction("t").summary.startswith("SUMMARY-TOKEN")  # it compacted
    assert not any("SUMMARY-TOKEN" in str(chunk.content) for chunk, _ in streamed)


def test_a_failing_summariser_never_fails_the_run(saver: Any) -> None:
    model = _tool_loop_model()
    middleware = CompactionMiddleware(
        history_manager=HistoryManager(
            model=ScriptedChatModel(responses=[RuntimeError("provider down")]), retry_backoff=0
        ),
        token_limit=LIMIT,
        keep=KeepTokens(500),
    )
    agent = create_agent(model, tools=[lookup], middleware=[middleware], checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    state = agent.invoke({"messages": [HumanMessage("Read all records.")]}, config)
    assert state["messages"][-1].text == "All records are read."
    assert not any(is_summary(m) for m in state["messages"])  # history unchanged
    assert middleware.last_compaction("t").status in {"failed", "skipped"}
    assert middleware._circuits["t"].failures >= 1


# ---------------------------------------------------------------------------- bad input


def test_bad_input_names_the_parameter() -> None:
    graph = create_agent(ScriptedChatModel(responses=["x"]), tools=[])
    with pytest.raises(TypeError, match="`model` is the summariser's chat model"):
        CompactionMiddleware(model=graph)
    with pytest.raises(ValueError, match="`token_limit` and `trigger`"):
        CompactionMiddleware(token_limit=100, trigger=MessageCount(4))
    with pytest.raises(TypeError, match="`history_manager`"):
        CompactionMiddleware(history_manager="manager")  # type: ignore[arg-type]
    with pytest.raises(CompactionError, match="without a 'messages' channel"):
        CompactionMiddleware().before_model({"todos": []}, None)


def test_the_package_imports_without_langchain_and_names_the_extra() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["langchain"] = None  # as if langchain were not installed
        import compacting_supervisor
        from compacting_supervisor import CompactionMiddleware
        try:
            CompactionMiddleware()
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert 'pip install "compacting-supervisor[agents]"' in result.stdout


@tool
def export_logs() -> str:
    """Export the service logs."""
    return "ERROR-4711 at the start. " + "log line with details. " * 45_000


def export_step(messages: list[BaseMessage]) -> AIMessage:
    """A model that exports the logs, then answers from what it read."""
    if messages[-1].type == "tool":
        return AIMessage("The logs start with ERROR-4711.")
    return AIMessage("", tool_calls=[{"name": "export_logs", "args": {}, "id": "e1"}])


def test_a_megabyte_tool_result_is_stored_before_the_model_reads_it(
    saver: Any, tmp_path: Any
) -> None:
    from compacting_supervisor import DirectoryResultStore, OffloadToolResults

    model = ScriptedChatModel(responses=[export_step])
    policy = OffloadToolResults(DirectoryResultStore(tmp_path))
    middleware = CompactionMiddleware(model=_facts_summariser(), token_limit=LIMIT, offload=policy)
    agent = create_agent(model, tools=[export_logs], middleware=[middleware], checkpointer=saver)
    state = agent.invoke(
        {"messages": [HumanMessage("Export the logs.")]}, {"configurable": {"thread_id": "t"}}
    )
    assert state["messages"][-1].text == "The logs start with ERROR-4711."
    assert max(COUNTER.count(call) for call in model.calls) < 2_000  # never the megabyte
    assert len(list(tmp_path.glob("tr_*.txt"))) == 1
    assert policy.tool_name in {t.name for t in middleware.tools}


def test_it_works_with_model_retry_middleware(saver: Any) -> None:
    from langchain.agents.middleware import ModelRetryMiddleware

    failures = iter([RuntimeError("flaky provider")])

    def flaky(messages: list[BaseMessage]) -> AIMessage:
        if (error := next(failures, None)) is not None:
            raise error
        return AIMessage("Noted: " + messages[-1].text[:30])

    middleware = CompactionMiddleware(
        model=_facts_summariser(), trigger=MessageCount(6), keep=KeepTokens(60)
    )
    agent = create_agent(
        ScriptedChatModel(responses=[flaky]),
        tools=[],
        middleware=[middleware, ModelRetryMiddleware(max_retries=2, initial_delay=0)],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}}
    for n in range(5):
        state = agent.invoke({"messages": [HumanMessage(f"Note {n}: " + "words " * 30)]}, config)
    assert state["messages"][-1].text.startswith("Noted: Note 4")
    assert is_summary(state["messages"][0])
    assert middleware.last_compaction("t").status == "compacted"


def test_each_thread_counts_its_own_prompt(saver: Any) -> None:
    """A prompt that differs per thread (per user) is charged to that thread only."""
    from langchain.agents.middleware import dynamic_prompt
    from langgraph.config import get_config

    @dynamic_prompt
    def per_user(request: Any) -> str:
        thread = get_config()["configurable"]["thread_id"]
        return "Long instructions for the big customer. " * 200 if thread == "big" else "Be brief."

    middleware = CompactionMiddleware(model=_facts_summariser(), token_limit=1_500)
    agent = create_agent(
        ScriptedChatModel(responses=["Noted."]),
        tools=[],
        middleware=[per_user, middleware],
        checkpointer=saver,
    )
    for thread in ("big", "small"):
        agent.invoke({"messages": [HumanMessage("hello")]}, {"configurable": {"thread_id": thread}})
    assert middleware._overhead("big") > 1_000
    assert middleware._overhead("small") < 50


def test_runs_without_a_thread_share_no_circuit_breaker() -> None:
    broken = ScriptedChatModel(responses=[RuntimeError("provider down")])
    middleware = CompactionMiddleware(
        history_manager=HistoryManager(model=broken, summary_retries=0),
        trigger=MessageCount(2),
        keep=KeepTokens(10),
    )
    agent = create_agent(ScriptedChatModel(responses=["ok"]), tools=[], middleware=[middleware])
    history = [HumanMessage("one " * 20), AIMessage("two " * 20), HumanMessage("three")]
    for _ in range(5):  # no checkpointer: five unrelated runs
        agent.invoke({"messages": history})
    assert len(broken.calls) == 5  # each tried; none paused by the others' failures


def test_a_messages_key_the_model_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match="create_agent's model reads the 'messages' channel"):
        CompactionMiddleware(history_manager=HistoryManager(messages_key="history"))


def test_the_transcript_holds_every_original(saver: Any) -> None:
    middleware = CompactionMiddleware(
        model=_facts_summariser(), trigger=MessageCount(6), keep=KeepTokens(60)
    )
    agent = create_agent(
        ScriptedChatModel(responses=[lambda m: f"Noted: {m[-1].text[:8]}"]),
        tools=[],
        middleware=[middleware],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}}
    notes = [f"Note {n}: " + "words " * 30 for n in range(8)]
    for note in notes:
        agent.invoke({"messages": [HumanMessage(note)]}, config)
    transcript = HistoryManager().transcript(config, graph=agent)
    assert [m.text for m in transcript.messages] == [
        text for note in notes for text in (note, f"Noted: {note[:8]}")
    ]
    assert len(transcript.sessions) >= 2
