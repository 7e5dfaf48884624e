"""Every compaction reports its trigger, sizes, reduction, summariser tokens and duration:
in the result, the stream event, the logs and the checkpoint; threads report their totals."""

from __future__ import annotations

import dataclasses
import itertools
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


# ---------------------------------------------------------------------------- prompt cache

STORY = (
    "Once upon a time a keeper kept a diary of every ship that passed the rocks. "
    "Each page said which ship, which night, and what the sea was like."
)
Reported = tuple[int, int, int | None]
"""What a reply reported: input tokens, cache reads, cache writes (None: not reported)."""


class CachingProvider:
    """Answers as a provider with a prompt cache does, and keeps what each reply reported.

    The part of a request that repeats the previous request's messages (and the agent's
    hidden system prompt, ``hidden`` tokens) is read from the cache, the rest written to it
    (Anthropic's rule with a breakpoint at the end); ``writes=False`` reports reads only,
    as OpenAI does. A compaction rewrites the history, so the next request reads little.
    """

    def __init__(self, *, hidden: int = 150, writes: bool = True, text: str = STORY) -> None:
        self.hidden = hidden
        self.writes = writes
        self.text = text
        self.previous: list[str] = []
        self.reported: list[Reported] = []

    def __call__(self, messages: list[Any], body: Any = None) -> AIMessage:
        texts = [f"{type(m).__name__}:{m.text}" for m in messages]
        same = 0
        for ours, theirs in zip(texts, self.previous, strict=False):
            if ours != theirs:
                break
            same += 1
        inputs = self.hidden + COUNTER.count(messages)
        read = self.hidden + COUNTER.count(messages[:same]) if self.previous else 0
        written = inputs - read if self.writes else None
        self.previous = texts
        self.reported.append((inputs, read, written))
        details = {"cache_read": read} | ({} if written is None else {"cache_creation": written})
        usage = {"input_tokens": inputs, "output_tokens": 40, "total_tokens": inputs + 40}
        return AIMessage(self.text, usage_metadata={**usage, "input_token_details": details})


def _expected(reported: list[Reported]) -> tuple[Any, ...]:
    """``(model_calls, input_tokens, cache_read, cache_creation)`` summed by hand."""
    writes = [w for _, _, w in reported if w is not None]
    return (
        len(reported),
        sum(i for i, _, _ in reported),
        sum(r for _, r, _ in reported),
        sum(writes) if writes else None,
    )


def _figures(cache: Any) -> tuple[Any, ...]:
    return (cache.model_calls, cache.input_tokens, cache.cache_read, cache.cache_creation)


def _cached_supervisor(
    saver: Any, provider: CachingProvider, summariser: Any = SUMMARY, token_limit: int = 400
) -> CompactingSupervisor:
    # Not streamed: ScriptedChatModel's chunks carry no usage_metadata.
    agent = ScriptedChatModel(responses=[provider], disable_streaming=True)
    history = HistoryManager(model=ScriptedChatModel(responses=[summariser]), retry_backoff=0)
    return CompactingSupervisor(
        echo_graph(checkpointer=saver, model=agent), history, token_limit=token_limit
    )


class Conversation:
    """Turns of one thread, each reply's reported usage filed under its session."""

    def __init__(self, supervisor: CompactingSupervisor, provider: CachingProvider) -> None:
        self.supervisor = supervisor
        self.provider = provider
        self.sessions: list[list[Reported]] = [[]]
        self.results: list[Any] = []

    def note(self) -> None:
        self.sessions[-1].append(self.provider.reported[-1])
        result = self.supervisor.last_compaction("obs")
        if result is not None and result.succeeded and result not in self.results:
            self.results.append(result)
            self.sessions.append([])

    def done(self, compactions: int) -> bool:
        return len(self.results) >= compactions and bool(self.sessions[-1])


def _check_sessions(stats: Any, talk: Conversation) -> None:
    """Each session's figures are what the provider reported for its calls, each once."""
    sessions = talk.sessions
    assert stats.compactions == len(talk.results) >= 2
    assert len(stats.cache_by_session) == stats.compactions + 1 == len(sessions)
    for cache, reported in zip(stats.cache_by_session, sessions, strict=True):
        assert _figures(cache) == _expected(reported)
        assert cache.unreported_calls == 0
        assert cache.hit_rate == pytest.approx(cache.cache_read / cache.input_tokens)
    for result, cache in zip(talk.results, stats.cache_by_session, strict=False):
        assert result.agent_cache == cache  # the session each compaction closed
    assert _figures(stats.cache) == _expected([r for s in sessions for r in s])
    # What the figures show a user: each compaction rewrote the prefix, so the request
    # right after it read less from the cache than the request right before it.
    for before, after in itertools.pairwise(sessions):
        assert after[0][1] < before[-1][1]


def test_thread_stats_report_the_providers_cache_per_session(saver: Any) -> None:
    provider = CachingProvider()
    talk = Conversation(_cached_supervisor(saver, provider), provider)
    while not talk.done(2):
        talk.supervisor.invoke({"messages": [HumanMessage("And then?")]}, CONFIG)
        talk.note()
    # Another process reads the same figures from the checkpoints.
    _check_sessions(_cached_supervisor(saver, CachingProvider()).thread_stats("obs"), talk)


async def test_athread_stats_report_the_providers_cache_per_session(asaver: Any) -> None:
    provider = CachingProvider()
    talk = Conversation(_cached_supervisor(asaver, provider), provider)
    while not talk.done(2):
        await talk.supervisor.ainvoke({"messages": [HumanMessage("And then?")]}, CONFIG)
        talk.note()
    _check_sessions(await talk.supervisor.athread_stats(CONFIG), talk)


def test_the_compaction_event_and_checkpoint_carry_the_cache_figures(saver: Any) -> None:
    provider = CachingProvider()
    summariser = AIMessage(
        SUMMARY,
        usage_metadata={
            **_usage(900, 30),
            "input_token_details": {"cache_read": 0, "cache_creation": 900},
        },
    )
    supervisor = _cached_supervisor(saver, provider, summariser)
    events: list[dict[str, Any]] = []
    while not events:
        stream = supervisor.stream({"messages": [HumanMessage("And then?")]}, CONFIG)
        events = [e for e in stream if e["type"] == "compaction"]
    event, result = events[0], events[0]["result"]
    assert _figures(result.agent_cache) == _expected(provider.reported)
    assert event["agent_cache"] == dataclasses.asdict(result.agent_cache)
    assert event["agent_cache_hit_rate"] == result.agent_cache.hit_rate > 0
    # The summariser's transcript is new to the cache: all written, nothing read.
    assert (event["summarizer_cache_read"], event["summarizer_cache_creation"]) == (0, 900)
    details = next(iter(supervisor.get_state_history(CONFIG))).metadata["compacting_supervisor"]
    assert details["agent_cache"] == event["agent_cache"]
    assert (details["summarizer_cache_read"], details["summarizer_cache_creation"]) == (0, 900)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
async def test_the_summarisers_cache_is_unknown_unless_every_call_reports_it(
    run_async: bool,
) -> None:
    cached = {**_usage(1000, 40), "input_token_details": {"cache_read": 600}}
    summariser = ScriptedChatModel(
        responses=[
            AIMessage("I'm sorry, I can't help.", usage_metadata=cached),  # refused, retried
            AIMessage(SUMMARY, usage_metadata=cached),
        ],
        cycle=False,
    )
    history = HistoryManager(model=summariser, retry_backoff=0, summary_retries=1)
    compaction = await _compact(history, run_async)
    assert (compaction.summarizer_cache_read, compaction.summarizer_cache_creation) == (1200, None)

    summariser = ScriptedChatModel(
        responses=[RuntimeError("rate limited"), AIMessage(SUMMARY, usage_metadata=cached)],
        cycle=False,
    )
    history = HistoryManager(model=summariser, retry_backoff=0, summary_retries=1)
    compaction = await _compact(history, run_async)
    assert compaction.summarizer_cache_read is None  # the failed call reported nothing


def test_models_that_report_no_cache_read_as_unknown(saver: Any) -> None:
    plain = AIMessage(STORY, usage_metadata=_usage(400, 40))  # usage, no cache details
    agent = ScriptedChatModel(responses=[plain], disable_streaming=True)
    history = HistoryManager(model=ScriptedChatModel(responses=[SUMMARY]), retry_backoff=0)
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver, model=agent), history, token_limit=400
    )
    for _ in range(8):
        supervisor.invoke({"messages": [HumanMessage("And then?")]}, CONFIG)
    result = supervisor.last_compaction("obs")
    assert result is not None and result.succeeded
    assert (result.agent_cache, result.summarizer_cache_read) == (None, None)
    stats = supervisor.thread_stats("obs")
    assert stats.cache is None  # unknown, never "a 0 % hit rate"
    assert stats.cache_by_session == (None,) * (stats.compactions + 1)


async def test_the_current_session_is_read_from_the_thread(asaver: Any) -> None:
    provider = CachingProvider()
    supervisor = _cached_supervisor(asaver, provider, token_limit=10**6)
    for _ in range(3):
        await supervisor.ainvoke({"messages": [HumanMessage("And then?")]}, CONFIG)
    stats = await supervisor.athread_stats(CONFIG)
    assert stats.compactions == 0
    assert [_figures(c) for c in stats.cache_by_session] == [_expected(provider.reported)]
    assert stats.cache == stats.cache_by_session[0]
    assert stats.cache.hit_rate == pytest.approx(
        sum(r for _, r, _ in provider.reported) / sum(i for i, _, _ in provider.reported)
    )


def test_replies_without_cache_figures_are_counted_apart(saver: Any) -> None:
    provider = CachingProvider()
    agent = ScriptedChatModel(responses=[provider, AIMessage(STORY)], disable_streaming=True)
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver, model=agent))
    for _ in range(4):
        supervisor.invoke({"messages": [HumanMessage("And then?")]}, CONFIG)
    (session,) = supervisor.thread_stats("obs").cache_by_session
    assert _figures(session) == _expected(provider.reported)
    assert (session.model_calls, session.unreported_calls) == (2, 2)


def test_openai_reports_cache_reads_through_chat_openai(saver: Any) -> None:
    """A real ChatOpenAI client reads ``prompt_tokens_details.cached_tokens`` off the wire."""
    from langchain_openai import ChatOpenAI

    from .openai_server import openai_server

    provider = CachingProvider(writes=False)
    with openai_server(provider) as server:
        model = ChatOpenAI(model="gpt-4o", base_url=server.base_url, api_key="sk-test")
        supervisor = CompactingSupervisor(echo_graph(checkpointer=saver, model=model))
        for _ in range(3):
            supervisor.invoke({"messages": [HumanMessage("And then?")]}, CONFIG)
    (session,) = supervisor.thread_stats("obs").cache_by_session
    assert _figures(session) == _expected(provider.reported)
    assert session.cache_creation is None  # OpenAI reports reads only
    assert 0 < session.hit_rate < 1


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"cache_read": 700, "cache_creation": 100}, (700, 100)),
        ({"cache_read": 0}, (0, None)),  # OpenAI: a miss is a reported 0, writes unreported
        ({"priority_cache_read": 300, "priority": 500}, (300, None)),  # a service tier's
        ({"audio": 5}, (None, None)),
        (None, (None, None)),
    ],
)
def test_the_summarisers_cache_figures_are_noted_per_call(
    details: Any, expected: tuple[Any, Any]
) -> None:
    from compacting_supervisor._summarizer_call import call_summarizer, reported_usage
    from compacting_supervisor.summarizers import ChatModelSummarizer

    usage: dict[str, Any] = _usage(800, 30)
    if details is not None:
        usage["input_token_details"] = details
    replies: list[Any] = []
    summarizer = ChatModelSummarizer(
        ScriptedChatModel(responses=[AIMessage(SUMMARY, usage_metadata=usage)])
    )
    call_summarizer(summarizer, None, HISTORY, max_tokens=300, timeout=10, replies=replies)
    reported = reported_usage(replies)
    assert reported is not None
    assert (reported.cache_read, reported.cache_creation) == expected
    # Two replies in one call: a figure only one of them reported is unknown, not a part.
    other = reported._replace(cache_read=None)
    assert reported_usage([reported, other]).cache_read is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "record",
    [
        None,
        "cached",
        {"model_calls": 2, "input_tokens": 900},  # a field missing
        {"model_calls": 2, "input_tokens": -1, "unreported_calls": 0},
        {"model_calls": True, "input_tokens": 9, "unreported_calls": 0},
    ],
)
def test_a_malformed_record_in_metadata_reads_as_unknown(record: Any) -> None:
    from compacting_supervisor._usage import cache_from_record

    assert cache_from_record(record) is None


def test_a_streamed_scripted_reply_keeps_what_the_model_billed() -> None:
    """Streamed, a scripted reply's usage (cache figures included) arrives whole, on a last
    chunk as providers send it, so stream-mode runs report the same usage as invoke."""
    usage = {
        "input_tokens": 1200,
        "output_tokens": 3,
        "total_tokens": 1203,
        "input_token_details": {"cache_read": 1024, "cache_creation": 176},
    }
    model = ScriptedChatModel(responses=[AIMessage("All booked now.", usage_metadata=usage)])
    chunks = list(model.stream("Book it."))
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed += chunk
    assert streamed.text == "All booked now."
    assert streamed.usage_metadata == usage
    assert model.invoke("Book it.").usage_metadata == usage


def test_anthropic_cache_writes_reported_per_lifetime_are_counted() -> None:
    """ChatAnthropic reports a reply's cache writes per cache lifetime
    (``ephemeral_5m_input_tokens``) and sets ``cache_creation`` to 0: the writes count."""
    from anthropic.types import CacheCreation, Usage
    from langchain_anthropic.chat_models import _create_usage_metadata

    from compacting_supervisor import CacheUsage
    from compacting_supervisor._usage import cache_usage

    usage = Usage(
        input_tokens=50,
        output_tokens=20,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=3000,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=2500, ephemeral_1h_input_tokens=500),
    )
    metadata = _create_usage_metadata(usage)  # what ChatAnthropic puts on its replies
    assert metadata["input_token_details"]["cache_creation"] == 0
    cache = cache_usage([AIMessage("hi", usage_metadata=metadata)])
    assert isinstance(cache, CacheUsage)
    assert (cache.cache_read, cache.cache_creation) == (1000, 3000)
    assert cache.input_tokens == 4050
