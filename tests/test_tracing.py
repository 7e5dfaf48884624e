"""Every compaction is its own run in LangChain's callbacks, the summariser's calls its children."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from compacting_supervisor import (
    CompactingSupervisor,
    CompactionMiddleware,
    HistoryManager,
    KeepMessages,
    MessageCount,
)
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph

SUMMARY = "## Current state\n- the user sent greetings, numbered one to five"


class Recorder(BaseCallbackHandler):
    """Records every chain and chat-model run with its parent."""

    def __init__(self) -> None:
        self.chains: dict[UUID, dict[str, Any]] = {}
        self.models: list[dict[str, Any]] = []

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.chains[run_id] = {
            "name": kwargs.get("name"),
            "inputs": inputs,
            "parent": parent_run_id,
            "tags": kwargs.get("tags"),
        }

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.chains[run_id]["outputs"] = outputs

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.chains[run_id]["error"] = error

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.models.append({"run_id": run_id, "parent": parent_run_id, "tags": kwargs.get("tags")})

    def compactions(self) -> list[tuple[UUID, dict[str, Any]]]:
        return [(rid, run) for rid, run in self.chains.items() if run["name"] == "compaction"]

    def summariser_calls(self, parent: UUID) -> list[dict[str, Any]]:
        return [m for m in self.models if m["parent"] == parent]


def _supervisor(saver: Any, summariser: Any) -> CompactingSupervisor:
    return CompactingSupervisor(
        chat_graph(saver),
        HistoryManager(model=summariser, retry_backoff=0, summary_retries=0),
        trigger=MessageCount(8),
        keep=KeepMessages(2),
    )


def _check_compaction_run(recorder: Recorder) -> None:
    [(run_id, run)] = recorder.compactions()
    assert run["inputs"]["thread_id"] == "t"
    assert run["inputs"]["messages"] == 10  # five turns: over MessageCount(8)
    assert run["inputs"]["tokens"] > run["outputs"]["tokens"]
    outputs = run["outputs"]
    assert outputs["compacted"] is True
    assert outputs["messages_kept"] == 2
    assert outputs["messages"] == 3  # the summary and the two kept
    assert outputs["messages_summarized"] == 8
    assert outputs["summarizer_calls"] == 1
    assert outputs["summarizer_input_tokens"] > 0
    [call] = recorder.summariser_calls(run_id)  # the summariser's call is its child
    assert "compacting_supervisor:summarizer" in call["tags"]


def test_the_wrappers_compaction_is_a_run_of_the_runs_callbacks(saver: Any) -> None:
    recorder = Recorder()
    supervisor = _supervisor(saver, ScriptedChatModel(responses=[SUMMARY]))
    config = {"configurable": {"thread_id": "t"}, "callbacks": [recorder]}
    for n in range(5):
        supervisor.invoke({"messages": [HumanMessage(f"Hello number {n}")]}, config)
    _check_compaction_run(recorder)


async def test_the_wrappers_compaction_is_a_run_async(asaver: Any) -> None:
    recorder = Recorder()
    supervisor = _supervisor(asaver, ScriptedChatModel(responses=[SUMMARY]))
    config = {"configurable": {"thread_id": "t"}, "callbacks": [recorder]}
    for n in range(5):
        await supervisor.ainvoke({"messages": [HumanMessage(f"Hello number {n}")]}, config)
    _check_compaction_run(recorder)


def test_a_manual_compaction_takes_the_configs_callbacks_and_a_failure_ends_in_error(
    saver: Any,
) -> None:
    recorder = Recorder()
    broken = ScriptedChatModel(responses=[RuntimeError("provider down")])
    supervisor = _supervisor(saver, broken)
    supervisor.trigger = MessageCount(100)  # only the manual compaction below
    for n in range(4):
        supervisor.invoke(
            {"messages": [HumanMessage(f"Hello number {n}")]}, {"configurable": {"thread_id": "t"}}
        )
    config = {"configurable": {"thread_id": "t"}, "callbacks": [recorder], "tags": ["nightly"]}
    try:
        supervisor.compact(config)
    except Exception as exc:
        error = exc
    [(_, run)] = recorder.compactions()
    assert run["error"] is error
    assert "nightly" in run["tags"]
    assert "outputs" not in run


def test_the_middlewares_compaction_is_a_child_of_the_agents_run(saver: Any) -> None:
    recorder = Recorder()
    middleware = CompactionMiddleware(
        model=ScriptedChatModel(responses=[SUMMARY]), trigger=MessageCount(6), keep=KeepMessages(2)
    )
    agent = create_agent(
        ScriptedChatModel(responses=["Noted, thank you."]),
        tools=[],
        middleware=[middleware],
        checkpointer=saver,
    )
    config = {"configurable": {"thread_id": "t"}, "callbacks": [recorder]}
    for n in range(4):
        agent.invoke({"messages": [HumanMessage(f"Hello number {n}, " * 10)]}, config)
    [(run_id, run)] = recorder.compactions()
    assert run["parent"] in recorder.chains  # inside the agent's run tree
    assert run["outputs"]["compacted"] is True
    assert len(recorder.summariser_calls(run_id)) == 1


async def test_a_cancelled_compaction_ends_its_run_with_the_cancellation() -> None:
    import asyncio

    from compacting_supervisor._flow import adrive

    recorder = Recorder()
    slow = ScriptedChatModel(responses=[SUMMARY], delay=5.0)
    core = HistoryManager(model=slow, summary_timeout=None)._core()
    messages = [HumanMessage(f"Hello number {n}") for n in range(6)]
    flow = core.compact(messages, 0.5, trace={"callbacks": [recorder]})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(adrive(flow), timeout=0.3)
    [(_, run)] = recorder.compactions()
    assert isinstance(run["error"], asyncio.CancelledError)  # ended, not left open
