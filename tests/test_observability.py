"""Every compaction reports its trigger, sizes, reduction, summariser tokens and duration:
in the result, the stream event, the logs and the checkpoint; threads report their totals."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

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


# ---------------------------------------------------------------------------- provider usage

HISTORY = [
    HumanMessage("Tell me a story about the lighthouse keeper."),
    AIMessage("Once upon a time a keeper kept a diary of every ship that passed."),
    HumanMessage("And then?"),
    AIMessage("One stormy night a ship without lights came too close to the rocks."),
    HumanMessage("What happened next?"),
    AIMessage("The keeper lit every lamp and the ship turned away in time."),
]


def _usage(read: int, written: int) -> dict[str, int]:
    return {"input_tokens": read, "output_tokens": written, "total_tokens": read + written}


async def _compact(history: HistoryManager, run_async: bool) -> Any:
    if run_async:
        return await history.acompact_messages(HISTORY, compaction_ratio=0.6)
    return history.compact_messages(HISTORY, compaction_ratio=0.6)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
async def test_the_providers_reported_usage_is_used_when_the_reply_carries_it(
    run_async: bool,
) -> None:
    reply = AIMessage(SUMMARY, usage_metadata=_usage(1234, 56))
    history = HistoryManager(model=ScriptedChatModel(responses=[reply]), retry_backoff=0)
    compaction = await _compact(history, run_async)
    assert compaction.summarizer_calls == 1
    # The billed figures, not our count of the prompt (far fewer tokens) or of the summary.
    assert (compaction.summarizer_input_tokens, compaction.summarizer_output_tokens) == (1234, 56)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    "usage", [None, _usage(0, 0), _usage(-5, 3)], ids=["none", "zeros", "negative"]
)
async def test_without_usable_usage_the_prompt_and_summary_are_counted(
    run_async: bool, usage: Any
) -> None:
    summariser = ScriptedChatModel(responses=[AIMessage(SUMMARY, usage_metadata=usage)])
    history = HistoryManager(model=summariser, retry_backoff=0)
    compaction = await _compact(history, run_async)
    assert compaction.summarizer_input_tokens == COUNTER.count(summariser.calls[0])
    assert compaction.summarizer_output_tokens == COUNTER.count_text(SUMMARY)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
async def test_failed_attempts_add_up_with_reported_and_counted_usage(run_async: bool) -> None:
    summariser = ScriptedChatModel(
        responses=[
            RuntimeError("rate limited"),  # no reply: its prompt is counted
            AIMessage("I'm sorry, I can't help.", usage_metadata=_usage(900, 7)),  # refused
            AIMessage(SUMMARY, usage_metadata=_usage(1000, 40)),
        ],
        cycle=False,
    )
    history = HistoryManager(model=summariser, retry_backoff=0, summary_retries=2)
    compaction = await _compact(history, run_async)
    assert compaction.summarizer_calls == 3
    prompt = COUNTER.count(summariser.calls[0])
    assert compaction.summarizer_input_tokens == prompt + 900 + 1000
    assert compaction.summarizer_output_tokens == 7 + 40


def test_every_piece_of_a_long_history_reports_its_own_usage() -> None:
    replies = [AIMessage(f"{SUMMARY} ({n})", usage_metadata=_usage(500 + n, 30)) for n in range(9)]
    summariser = ScriptedChatModel(responses=replies, cycle=False)
    history = HistoryManager(model=summariser, summary_input_tokens=700, retry_backoff=0)
    compaction = history.compact_messages(HISTORY * 6, compaction_ratio=0.9)
    calls = len(summariser.calls)
    assert calls > 1
    assert compaction.summarizer_calls == calls
    assert compaction.summarizer_input_tokens == sum(500 + n for n in range(calls))
    assert compaction.summarizer_output_tokens == 30 * calls


def test_a_summarizer_called_directly_reports_nothing_anywhere() -> None:
    """The reply's usage is only noted inside a history manager's call, never leaked."""
    from compacting_supervisor._summarizer_call import REPLIES
    from compacting_supervisor.summarizers import ChatModelSummarizer

    reply = AIMessage(SUMMARY, usage_metadata=_usage(10, 5))
    summarizer = ChatModelSummarizer(ScriptedChatModel(responses=[reply]))
    assert summarizer.summarize(None, HISTORY, max_tokens=300) == SUMMARY
    assert REPLIES.get() is None
