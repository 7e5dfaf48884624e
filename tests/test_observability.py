"""Every compaction reports its trigger, sizes, reduction, summariser tokens and duration:
in the result, the stream event, the logs and the checkpoint; threads report their totals."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from compacting_supervisor import CompactingSupervisor, HistoryManager, TokenCounter
from compacting_supervisor.testing import ScriptedChatModel, echo_graph

CONFIG = {"configurable": {"thread_id": "obs"}}
COUNTER = TokenCounter()
SUMMARY = "The user asked for stories; the agent told the same diary story each time."


def llm_supervisor(saver: Any, **kwargs: Any) -> tuple[CompactingSupervisor, ScriptedChatModel]:
    summariser = ScriptedChatModel(responses=[SUMMARY])
    history = HistoryManager(model=summariser, retry_backoff=0)
    return CompactingSupervisor(echo_graph(checkpointer=saver), history, **kwargs), summariser


def test_result_reports_trigger_sizes_and_summariser_tokens(saver: Any) -> None:
    supervisor, summariser = llm_supervisor(saver, token_limit=300)
    while supervisor.last_compaction("obs") is None:
        supervisor.invoke({"messages": [HumanMessage("Tell me a story.")]}, CONFIG)
    result = supervisor.last_compaction("obs")
    assert result.status == "compacted"
    assert result.trigger == "token_limit"
    assert result.tokens_saved == result.tokens_before - result.tokens_after > 0
    assert result.reduction == pytest.approx(result.tokens_saved / result.tokens_before)
    assert result.summarizer_calls == len(summariser.calls) == 1
    # Exactly what the model was sent, and exactly what it wrote.
    assert result.summarizer_input_tokens == COUNTER.count(summariser.calls[0])
    assert result.summarizer_output_tokens == COUNTER.count_text(SUMMARY)
    assert 0 < result.duration < 30


def test_failed_attempts_count_every_summariser_call(saver: Any) -> None:
    summariser = ScriptedChatModel(responses=[RuntimeError("rate limited"), SUMMARY])
    history = HistoryManager(model=summariser, retry_backoff=0, summary_retries=2)
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver), history, token_limit=10**6)
    for _ in range(3):
        supervisor.invoke({"messages": [HumanMessage("Tell me a story.")]}, CONFIG)
    result = supervisor.compact(CONFIG)
    assert result.summarizer_calls == 2
    assert result.summarizer_input_tokens == 2 * COUNTER.count(summariser.calls[1])


def test_stream_event_log_and_checkpoint_carry_the_same_figures(
    saver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, _ = llm_supervisor(saver, token_limit=300)
    events: list[dict[str, Any]] = []
    with caplog.at_level(logging.INFO, logger="compacting_supervisor"):
        while not events:
            stream = supervisor.stream({"messages": [HumanMessage("Tell me a story.")]}, CONFIG)
            events = [e for e in stream if e["type"] == "compaction"]
    event = events[0]
    result = event["result"]
    for key in (
        "trigger",
        "tokens_before",
        "tokens_after",
        "summarizer_calls",
        "summarizer_input_tokens",
        "summarizer_output_tokens",
        "duration",
    ):
        assert event[key] == getattr(result, key)
    assert event["reduction"] == result.reduction
    assert event["tokens_saved"] == result.tokens_saved

    logged = [r for r in caplog.records if getattr(r, "compaction", None)]
    assert len(logged) == 1
    assert "trigger token_limit" in logged[0].getMessage()
    assert logged[0].compaction["tokens_after"] == result.tokens_after  # type: ignore[attr-defined]

    head = next(iter(supervisor.get_state_history(CONFIG)))
    details = head.metadata["compacting_supervisor"]
    assert details["trigger"] == "token_limit"
    assert details["tokens_before"] == result.tokens_before
    assert details["tokens_after"] == result.tokens_after
    assert details["reduction"] == round(result.reduction, 4)
    assert details["summarizer_input_tokens"] == result.summarizer_input_tokens
    assert details["summarizer_output_tokens"] == result.summarizer_output_tokens
    assert 0 < details["duration"] <= result.duration + 0.01


def test_thread_stats_total_every_compaction_from_the_checkpoints(saver: Any) -> None:
    supervisor, _ = llm_supervisor(saver, token_limit=300)
    results = []
    for _ in range(14):
        supervisor.invoke({"messages": [HumanMessage("Tell me a story.")]}, CONFIG)
        result = supervisor.last_compaction("obs")
        if result is not None and result not in results and result.succeeded:
            results.append(result)
    assert len(results) >= 2
    # A fresh wrapper (another worker process) reads the same totals from the checkpoints.
    other, _ = llm_supervisor(saver, token_limit=300)
    stats = other.thread_stats("obs")
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert stats.thread_id == "obs"
    assert stats.messages == len(messages)
    assert stats.tokens == COUNTER.count(messages)
    assert stats.compactions == len(results)
    assert stats.tokens_saved == sum(r.tokens_saved for r in results)
    assert stats.messages_summarized == sum(r.messages_summarized for r in results)
    assert stats.summarizer_tokens == sum(
        r.summarizer_input_tokens + r.summarizer_output_tokens for r in results
    )
    assert stats.token_limit == 300
    assert stats.utilisation == pytest.approx(stats.tokens / 300, abs=1e-3)
    assert stats.last_compaction_at is not None


async def test_thread_stats_async(asaver: Any) -> None:
    supervisor, _ = llm_supervisor(asaver, token_limit=300)
    for _ in range(6):
        await supervisor.ainvoke({"messages": [HumanMessage("Tell me a story.")]}, CONFIG)
    stats = await supervisor.athread_stats(CONFIG)
    assert stats.compactions >= 1
    assert stats.tokens_saved > 0


def test_thread_stats_of_a_thread_never_compacted(saver: Any) -> None:
    supervisor, _ = llm_supervisor(saver, token_limit=10**6)
    supervisor.invoke({"messages": [HumanMessage("Hello")]}, CONFIG)
    stats = supervisor.thread_stats(CONFIG)
    assert (stats.compactions, stats.tokens_saved, stats.last_compaction_at) == (0, 0, None)
    assert stats.messages == 2
