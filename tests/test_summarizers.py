"""Summarisers: validation, timeouts and errors for any summariser, the offline default."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    SummarizationError,
)
from compacting_supervisor._cut import is_summary
from compacting_supervisor.summarizers import run_summarizer, validate_summary
from compacting_supervisor.testing import ScriptedChatModel

from .helpers import chat_graph

CONFIG = {"configurable": {"thread_id": "s"}}


class SlowSummarizer:
    """A custom summariser (not a chat model) that takes its time."""

    def __init__(self, seconds: float, answer: Any = "A fine summary of it all.") -> None:
        self.seconds = seconds
        self.answer = answer

    def summarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> Any:
        time.sleep(self.seconds)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    async def asummarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> Any:
        await asyncio.sleep(self.seconds)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _turns(supervisor: CompactingSupervisor, n: int) -> None:
    for i in range(n):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)


@pytest.mark.parametrize(
    ("summarizer", "cause"),
    [
        (SlowSummarizer(3.0), "did not answer within 0.3 s"),
        (SlowSummarizer(0, RuntimeError("disk on fire")), "RuntimeError: disk on fire"),
        (SlowSummarizer(0, None), "returned NoneType, not text"),
        (SlowSummarizer(0, "   "), "empty or placeholder"),
    ],
)
def test_custom_summariser_failures_leave_history_intact(
    saver: Any, summarizer: Any, cause: str
) -> None:
    history = HistoryManager(model=summarizer, summary_timeout=0.3, summary_retries=0)
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=100_000)
    _turns(supervisor, 3)
    before = supervisor.get_state(CONFIG).values["messages"]
    started = time.perf_counter()
    with pytest.raises(SummarizationError, match=cause):
        supervisor.compact(CONFIG)
    assert time.perf_counter() - started < 2.0
    assert supervisor.get_state(CONFIG).values["messages"] == before
    result = supervisor.last_compaction(CONFIG)
    assert result.status == "failed"
    assert result.messages_before == len(before) == 6
    assert result.tokens_before == result.tokens_after > 0
    # The automatic path: the run returns, the failure is recorded.
    supervisor.token_limit = 10
    out = supervisor.invoke({"messages": [HumanMessage("again")]}, CONFIG)
    assert out["messages"][-1].content.startswith("Reply 4")
    assert supervisor.last_compaction(CONFIG).status == "failed"


@pytest.mark.parametrize(
    ("summarizer", "cause"),
    [
        (SlowSummarizer(3.0), "did not answer within 0.3 s"),
        (SlowSummarizer(0, RuntimeError("disk on fire")), "RuntimeError: disk on fire"),
        (SlowSummarizer(0, None), "returned NoneType, not text"),
    ],
)
async def test_async_custom_summariser_failures_leave_history_intact(
    asaver: Any, summarizer: Any, cause: str
) -> None:
    history = HistoryManager(model=summarizer, summary_timeout=0.3, summary_retries=0)
    supervisor = CompactingSupervisor(chat_graph(asaver), history, token_limit=100_000)
    for i in range(3):
        await supervisor.ainvoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
    before = (await supervisor.aget_state(CONFIG)).values["messages"]
    with pytest.raises(SummarizationError, match=cause):
        await supervisor.acompact(CONFIG)
    assert (await supervisor.aget_state(CONFIG)).values["messages"] == before
    assert supervisor.last_compaction(CONFIG).messages_before == 6


def test_hung_summaries_do_not_starve_later_ones() -> None:
    hung = SlowSummarizer(5.0)
    for _ in range(6):
        with pytest.raises(SummarizationError):
            run_summarizer(hung, None, [HumanMessage("x")], max_tokens=50, timeout=0.05)
    quick = SlowSummarizer(0.0, "Quick summary.")
    assert (
        run_summarizer(quick, None, [HumanMessage("x")], max_tokens=50, timeout=1.0)
        == "Quick summary."
    )


def test_a_custom_summariser_is_used_and_not_nagged_about(
    saver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    history = HistoryManager(model=SlowSummarizer(0, "Custom summary: all good."))
    supervisor = CompactingSupervisor(chat_graph(saver), history, token_limit=100_000)
    _turns(supervisor, 3)
    result = supervisor.compact(CONFIG)
    assert result.summary == "Custom summary: all good."
    assert "embedded offline" not in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "N/A",
        "Previous conversation was too long to summarize.",
        "I'm sorry, I can't help with that.",
        "Error: rate limit exceeded",
        "Traceback (most recent call last):\n  File ...",
    ],
)
def test_unusable_summaries_are_rejected(text: str) -> None:
    with pytest.raises(SummarizationError):
        validate_summary(text)


def test_real_summaries_that_start_like_an_error_are_accepted() -> None:
    long = "Error handling was the main topic: " + "the user and agent discussed retries. " * 12
    assert validate_summary(long) == long.strip()


def test_prompt_without_a_chat_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="`prompt`"):
        HistoryManager(prompt="Summarise like a pirate.")


def test_extractive_keeps_a_foreign_summary_whole() -> None:
    previous = (
        "Maya flies TP 1351 on 12 May. She stays at Casa Amora. Her budget is 2000 EUR. "
        "She is allergic to nuts."
    )
    summary = ExtractiveSummarizer().summarize(
        previous,
        [HumanMessage("Book a table for two."), AIMessage("Done: Prado, 20:00.")],
        max_tokens=30,
    )
    assert previous in summary
    assert "Book a table for two." in summary


def test_langchain_middleware_summary_is_folded_forward(saver: Any) -> None:
    middleware_summary = HumanMessage(
        "Here is a summary of the conversation to date:\n\nThe user's name is Ada. "
        "She works on the billing service. Her ticket is BILL-7731.",
        additional_kwargs={"lc_source": "summarization"},
    )
    graph = chat_graph(saver)
    graph.update_state(CONFIG, {"messages": [middleware_summary]})
    supervisor = CompactingSupervisor(graph, token_limit=100_000)
    _turns(supervisor, 3)
    supervisor.compact(CONFIG)
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert is_summary(messages[0])
    assert sum(is_summary(m) for m in messages) == 1
    assert "BILL-7731" in messages[0].content
    assert "She works on the billing service." in messages[0].content


def test_chat_model_summariser_reply_is_validated(saver: Any) -> None:
    model = ScriptedChatModel(responses=["I'm sorry, I can't help with that."])
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model, retry_backoff=0), token_limit=100_000
    )
    _turns(supervisor, 3)
    with pytest.raises(SummarizationError, match="refusal"):
        supervisor.compact(CONFIG)


def test_extractive_skips_supervisor_handoffs_and_shows_call_arguments() -> None:
    from langgraph_supervisor.handoff import create_handoff_back_messages

    handoff = AIMessage(
        "", tool_calls=[{"name": "transfer_to_calendar_agent", "args": {}, "id": "h1"}]
    )
    handoff_result = ToolMessage(
        "Successfully transferred to calendar_agent",
        tool_call_id="h1",
        name="transfer_to_calendar_agent",
        response_metadata={"__handoff_destination": "calendar_agent"},
    )
    book = AIMessage(
        "",
        name="calendar_agent",
        tool_calls=[
            {
                "name": "schedule_interview",
                "args": {"candidate": "Alice", "when": "Tue 10:00"},
                "id": "c1",
            }
        ],
    )
    booked = ToolMessage(
        "Booked INT-2041: Alice Chen, Tuesday 10:00, room Tagus.", tool_call_id="c1"
    )
    echo = AIMessage(
        "Booked INT-2041: Alice Chen, Tuesday 10:00, room Tagus. Invitations sent.",
        name="calendar_agent",
    )
    back, back_result = create_handoff_back_messages("calendar_agent", "supervisor")
    messages = [
        HumanMessage("Book Alice on Tuesday at 10:00."),
        handoff,
        handoff_result,
        book,
        booked,
        echo,
        back,
        back_result,
        AIMessage("ok", name="supervisor"),
        HumanMessage("ok"),
    ]
    summary = ExtractiveSummarizer().summarize(None, messages, max_tokens=1000)
    lines = summary.splitlines()[1:]
    assert "transfer" not in summary.lower()
    assert lines == [
        "- user: Book Alice on Tuesday at 10:00.",
        "- calendar_agent: called schedule_interview(candidate=Alice, when=Tue 10:00)",
        "- tool result: Booked INT-2041: Alice Chen, Tuesday 10:00, room Tagus.",
        "- calendar_agent: (repeats a line above)",
        "- supervisor: ok",
        "- user: ok",  # short lines are kept even when they repeat
    ]


def test_extractive_keeps_a_tool_named_like_a_handoff() -> None:
    """Only results marked as hand-offs are skipped: a banking tool keeps its line."""
    call = AIMessage(
        "", tool_calls=[{"name": "transfer_to_savings", "args": {"amount": 500}, "id": "t1"}]
    )
    result = ToolMessage("Moved EUR 500 to savings.", tool_call_id="t1")
    summary = ExtractiveSummarizer().summarize(None, [call, result], max_tokens=1000)
    assert "transfer_to_savings(amount=500)" in summary
    assert "Moved EUR 500 to savings." in summary
