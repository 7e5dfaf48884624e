"""When a thread is compacted (triggers), what is kept (keep policies), and exact counts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from compacting_supervisor import CompactingSupervisor, HistoryManager, TokenCounter
from compacting_supervisor._cut import _blocked_cuts, split_history
from compacting_supervisor._messages import is_summary
from compacting_supervisor.keep import KeepMessages, KeepRatio, KeepTokens
from compacting_supervisor.testing import ScriptedChatModel, echo_graph
from compacting_supervisor.triggers import (
    AllOf,
    AnyOf,
    ContextFraction,
    MessageCount,
    Repetition,
    TimeSinceCompaction,
    TokenLimit,
    TriggerContext,
    When,
    context_window_of,
)

from .helpers import openai_violations

CONFIG = {"configurable": {"thread_id": "t"}}
COUNTER = TokenCounter()


def turn(supervisor: CompactingSupervisor, text: str = "Tell me more.") -> Any:
    return supervisor.invoke({"messages": [HumanMessage(text)]}, CONFIG)


def messages_of(supervisor: CompactingSupervisor) -> list[BaseMessage]:
    return supervisor.get_state(CONFIG).values["messages"]


# ---------------------------------------------------------------------------- triggers


def test_token_limit_is_the_default_trigger(saver: Any) -> None:
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver), token_limit=300)
    assert isinstance(supervisor.trigger, TokenLimit)
    assert supervisor.trigger.tokens == 300
    while supervisor.last_compaction("t") is None:
        turn(supervisor)
    assert supervisor.last_compaction("t").trigger == "token_limit"


def test_message_count_trigger_compacts_by_count_not_size(saver: Any) -> None:
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver), trigger=MessageCount(6))
    for _ in range(3):
        turn(supervisor)
        assert supervisor.last_compaction("t") is None  # 2, 4, 6 messages: not more than 6
    turn(supervisor)  # 8 messages
    result = supervisor.last_compaction("t")
    assert result.status == "compacted"
    assert result.trigger == "message_count"
    assert result.messages_before == 8
    assert not result.still_over_limit  # the count trigger has no size to be over


def test_context_fraction_reads_the_window_from_the_model_profile(saver: Any) -> None:
    model = ScriptedChatModel(responses=["A fairly long answer about the topic. " * 6])
    model.profile = {"max_input_tokens": 1_000}
    trigger = ContextFraction(0.4, model=model)
    assert (trigger.context_window, trigger.limit) == (1_000, 400)
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver, model=model), trigger=trigger)
    while supervisor.last_compaction("t") is None:
        turn(supervisor)
        assert len(messages_of(supervisor)) < 40
    result = supervisor.last_compaction("t")
    assert result.trigger == "context_fraction"
    assert result.tokens_before > 400


def test_context_fraction_knows_common_models_and_says_when_it_cannot() -> None:
    assert context_window_of("openai:gpt-4o-mini") == 128_000
    assert context_window_of("gpt-4") == 8_192
    assert context_window_of("claude-sonnet-4-5") == 200_000
    assert ContextFraction(0.5, context_window=10_000).limit == 5_000
    with pytest.raises(ValueError, match="`context_window=`"):
        ContextFraction(0.6, model="my-private-model")
    with pytest.raises(ValueError, match="no model was given"):
        ContextFraction(0.6)
    with pytest.raises(ValueError, match="`fraction`"):
        ContextFraction(1.5, context_window=1000)


def test_event_trigger_sees_the_state_and_names_the_compaction(saver: Any) -> None:
    calls: list[dict[str, Any]] = []

    def milestone(state: Any) -> bool:
        calls.append(dict(state))
        return any("milestone" in m.text for m in state["messages"])

    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=When(milestone, name="milestone"),
    )
    turn(supervisor, "Start the project.")
    turn(supervisor, "Next step.")
    assert supervisor.last_compaction("t") is None
    turn(supervisor, "We reached the milestone!")
    result = supervisor.last_compaction("t")
    assert result.trigger == "milestone"
    assert result.status == "compacted"
    assert "messages" in calls[0]


def test_repetition_trigger_fires_when_the_agent_loops(saver: Any) -> None:
    model = ScriptedChatModel(
        responses=["First I will read the file.", "Now the tests.", *["Let me retry that."] * 5],
        cycle=False,
    )
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver, model=model),
        trigger=Repetition(replies=3),
    )
    for _ in range(4):
        turn(supervisor)
        assert supervisor.last_compaction("t") is None
    turn(supervisor)  # the third "Let me retry that." in a row
    assert supervisor.last_compaction("t").trigger == "repetition"


def test_repetition_needs_similar_replies() -> None:
    def ctx(*replies: str) -> TriggerContext:
        return TriggerContext("t", [AIMessage(r) for r in replies], tokens=0)

    assert Repetition(replies=2).check(ctx("Checking the logs now.", "Checking the logs now!"))
    assert Repetition(replies=2).check(ctx("Checking the logs.", "Booking a flight.")) is None
    assert Repetition(replies=3).check(ctx("same", "same")) is None  # too few replies
    with pytest.raises(ValueError, match="`replies`"):
        Repetition(replies=1)


def test_time_since_compaction_uses_the_time_recorded_in_the_summary(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=TimeSinceCompaction(3600),
    )
    turn(supervisor)
    turn(supervisor)
    assert supervisor.last_compaction("t") is None  # first seen just now
    supervisor.compact(CONFIG)
    summary = messages_of(supervisor)[0]
    recorded = summary.response_metadata["compacting_supervisor"]["compacted_at"]
    assert abs(recorded - time.time()) < 60

    trigger = supervisor.trigger
    assert trigger.check(supervisor._trigger_context("t", messages_of(supervisor), {})) is None
    later = TriggerContext(
        "t", messages_of(supervisor), 0, last_compaction_at=recorded, now=recorded + 3601
    )
    assert trigger.check(later) == "time_since_compaction"
    # A thread never compacted counts from when this process first saw it.
    fresh = TriggerContext("u", [], 0, first_seen_at=100.0, now=3800.0)
    assert trigger.check(fresh) == "time_since_compaction"


def test_triggers_combine() -> None:
    many = [HumanMessage("hello there")] * 5
    ctx = TriggerContext("t", many, tokens=50)
    assert (TokenLimit(10) | MessageCount(100)).check(ctx) == "token_limit"
    assert (TokenLimit(100) | MessageCount(3)).check(ctx) == "message_count"
    assert (TokenLimit(100) | MessageCount(10)).check(ctx) is None
    assert (TokenLimit(10) & MessageCount(3)).check(ctx) == "token_limit+message_count"
    assert (TokenLimit(10) & MessageCount(10)).check(ctx) is None
    assert AnyOf(AllOf(TokenLimit(10), MessageCount(3)), MessageCount(100)).check(ctx)
    with pytest.raises(ValueError, match="at least one trigger"):
        AnyOf()
    with pytest.raises(TypeError, match="takes triggers"):
        AllOf(TokenLimit(10), 5)  # type: ignore[arg-type]


def test_combined_trigger_in_a_supervisor(saver: Any) -> None:
    """``AllOf``: big enough *and* at a milestone (not a size on its own: no size limit)."""
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=TokenLimit(200) & When(lambda s: "done" in s["messages"][-2].text),
    )
    for _ in range(5):
        turn(supervisor)
    assert supervisor.last_compaction("t") is None  # over 200 tokens, but no milestone
    turn(supervisor, "That part is done.")
    result = supervisor.last_compaction("t")
    assert result.trigger == "token_limit+event"
    assert supervisor._token_threshold() is None


def test_bad_trigger_and_keep_are_rejected() -> None:
    graph = echo_graph(checkpointer=None)
    with pytest.raises(TypeError, match="`trigger` must be a Trigger"):
        CompactingSupervisor(graph, HistoryManager(memory_saver=_memory()), trigger=500)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`keep` must be a KeepPolicy"):
        CompactingSupervisor(graph, HistoryManager(memory_saver=_memory()), keep=20)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`messages` must be a positive integer"):
        MessageCount(0)
    with pytest.raises(ValueError, match="`tokens`"):
        KeepTokens(-5)


def _memory() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()


# ---------------------------------------------------------------------------- keep policies


def long_history(turns: int = 12) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for i in range(turns):
        messages.append(HumanMessage(f"Question {i}: what about item {i}?"))
        if i % 3 == 0:
            call = {"name": "lookup", "args": {"item": i}, "id": f"c{i}"}
            messages.append(AIMessage("", tool_calls=[call]))
            messages.append(ToolMessage(f"item {i} data " * 5, tool_call_id=f"c{i}"))
        messages.append(AIMessage(f"Answer {i}: item {i} is fine."))
    return messages


@pytest.mark.parametrize("keep_n", [1, 3, 4, 7, 10, 20])
def test_keep_messages_keeps_at_least_the_newest_n_on_a_safe_boundary(keep_n: int) -> None:
    history = long_history()
    result = HistoryManager().compact_messages(history, keep=KeepMessages(keep_n))
    assert result is not None
    assert len(result.kept) >= keep_n
    assert result.kept == history[-len(result.kept) :]
    assert not isinstance(result.kept[0], ToolMessage)
    assert openai_violations(result.messages) == []
    # Moving back only as far as the nearest safe boundary: one message fewer would split.
    assert len(result.kept) - keep_n <= 2


def test_keep_messages_with_more_than_the_thread_holds_compacts_nothing() -> None:
    history = long_history(3)
    assert HistoryManager().compact_messages(history, keep=KeepMessages(100)) is None


@pytest.mark.parametrize("budget", [40, 100, 200, 400])
def test_keep_tokens_keeps_the_newest_messages_that_fit(budget: int) -> None:
    history = long_history()
    result = HistoryManager().compact_messages(history, keep=KeepTokens(budget))
    assert result is not None
    sizes = [COUNTER.count_message(m) for m in history]
    fit = 0  # how many of the newest messages fit in the budget
    while fit < len(history) and sum(sizes[len(history) - fit - 1 :]) <= budget:
        fit += 1
    target = len(history) - fit
    cut = len(history) - len(result.kept)
    blocked = _blocked_cuts(history)
    # The cut is the nearest safe boundary at or before the target: everything that fits
    # is kept, and more only where a tool call and its results had to stay together.
    assert cut <= target
    assert all(
        blocked[c] or isinstance(history[c], ToolMessage) for c in range(cut + 1, target + 1)
    )
    assert not isinstance(result.kept[0], ToolMessage)
    assert openai_violations(result.messages) == []


def test_keep_policy_drives_the_supervisor(saver: Any) -> None:
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver), token_limit=400, keep=KeepMessages(4)
    )
    while supervisor.last_compaction("t") is None:
        turn(supervisor)
    after = messages_of(supervisor)
    conversation = split_history(after).conversation
    assert is_summary(after[0])
    assert len(conversation) == 4
    assert repr(supervisor.keep) == "KeepMessages(4)"
    assert isinstance(CompactingSupervisor(echo_graph(checkpointer=saver)).keep, KeepRatio)


# ---------------------------------------------------------------------------- exact counts


def reply_with_usage(input_tokens: int, output_tokens: int) -> AIMessage:
    return AIMessage(
        "Here is the answer.",
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


def test_usage_metadata_is_the_base_and_only_newer_messages_are_counted() -> None:
    supervisor = CompactingSupervisor(echo_graph(checkpointer=_memory()))
    history = [HumanMessage("Hello, tell me about the weather in Paris.")]
    counted = COUNTER.count(history)
    # The provider saw a system prompt and tools we cannot see: 900 more tokens.
    answer = reply_with_usage(counted + 900, 7)
    later = [HumanMessage("And tomorrow?")]
    tokens = supervisor.context_tokens([*history, answer, *later])
    assert tokens == counted + 900 + 7 + COUNTER.count_message(later[0])


@pytest.mark.parametrize(
    ("input_tokens", "why"),
    [(1, "far too small"), (10_000_000, "200x too large"), (0, "zero"), (-5, "negative")],
)
def test_implausible_usage_is_ignored(input_tokens: int, why: str) -> None:
    supervisor = CompactingSupervisor(echo_graph(checkpointer=_memory()))
    history = [HumanMessage("Hello " * 50), reply_with_usage(input_tokens, 5)]
    assert supervisor.context_tokens(history) == COUNTER.count(history), why


def test_usage_from_before_a_compaction_is_not_trusted(saver: Any) -> None:
    """A kept answer reports the size of the longer history it answered."""
    big = 50_000

    def answer(messages: list[BaseMessage]) -> AIMessage:
        # Report what an honest provider would: what it was sent, plus a hidden prompt.
        return reply_with_usage(COUNTER.count(messages) + 100, 5)

    model = ScriptedChatModel(responses=[answer])
    supervisor = CompactingSupervisor(echo_graph(checkpointer=saver, model=model), token_limit=big)
    for i in range(8):
        turn(supervisor, f"Question {i}: " + "details " * 30)
    supervisor.compact(CONFIG)
    after = messages_of(supervisor)
    stale = [m for m in after if isinstance(m, AIMessage) and m.usage_metadata]
    assert stale  # kept answers still carry their old usage...
    assert supervisor.context_tokens(after) == COUNTER.count(after)  # ...which is not used
    turn(supervisor, "A new question.")
    now = messages_of(supervisor)
    fresh = now[-1]
    assert supervisor.context_tokens(now) == (
        fresh.usage_metadata["input_tokens"] + fresh.usage_metadata["output_tokens"]
    )


def test_declared_system_prompt_and_tools_are_counted() -> None:
    @tool
    def lookup(city: str) -> str:
        """Look up the weather of a city."""
        return city

    prompt = "You are a meticulous travel agent. " * 20
    graph = echo_graph(checkpointer=_memory())
    plain = CompactingSupervisor(graph)
    declared = CompactingSupervisor(graph, system_prompt=prompt, tools=[lookup])
    numbers = CompactingSupervisor(graph, system_prompt=300, tools=120)
    history = [HumanMessage("hi")]
    base = plain.context_tokens(history)
    assert declared.context_tokens(history) == base + declared.overhead_tokens
    assert declared.overhead_tokens > COUNTER.count_text(prompt) + 4  # the tool schema too
    assert numbers.context_tokens(history) == base + 420
    with pytest.raises(ValueError, match="`system_prompt`"):
        CompactingSupervisor(graph, system_prompt=-1)
    with pytest.raises(ValueError, match="`tools`"):
        CompactingSupervisor(graph, tools="lookup")  # type: ignore[arg-type]


def test_declared_prompt_makes_compaction_come_sooner(saver: Any) -> None:
    graph = echo_graph(checkpointer=saver)
    supervisor = CompactingSupervisor(graph, token_limit=400, system_prompt=300)
    turn(supervisor)
    turn(supervisor)  # ~110 tokens of messages + 300 declared
    result = supervisor.last_compaction("t")
    assert result is not None
    assert result.trigger == "token_limit"


# ---------------------------------------------------------------------------- found in review


def test_a_raising_trigger_counts_as_not_firing_and_spares_the_others(
    saver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy(state: Any) -> bool:
        return state["stage"] == "done"  # no such key

    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=When(buggy, name="stage") | TokenLimit(300),
    )
    while supervisor.last_compaction("t") is None:
        turn(supervisor)
        assert len(messages_of(supervisor)) < 30
    assert supervisor.last_compaction("t").trigger == "token_limit"
    assert "raised on thread t" in caplog.text
    assert supervisor._circuits == {}  # a trigger's bug is not a failed compaction


def test_a_size_free_trigger_keeps_a_full_summary_and_reports_no_limit(saver: Any) -> None:
    summariser = ScriptedChatModel(responses=["Summary. " * 30])
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        HistoryManager(model=summariser, retry_backoff=0),
        trigger=MessageCount(20),
    )
    while supervisor.last_compaction("t") is None:
        turn(supervisor)
    result = supervisor.last_compaction("t")
    assert not result.still_over_limit  # token_limit's default 500 is no limit here
    assert "at most about 600 words" in summariser.calls[0][0].text  # 1,000 tokens, not 125
    stats = supervisor.thread_stats("t")
    assert (stats.token_limit, stats.utilisation) == (None, None)
    sized = CompactingSupervisor(
        echo_graph(checkpointer=saver), trigger=TokenLimit(1_000) & TokenLimit(4_000)
    )
    assert sized._token_threshold() == 4_000  # all of: nothing fires before the largest


def test_usage_of_an_earlier_answer_by_another_agent_is_not_used() -> None:
    supervisor = CompactingSupervisor(echo_graph(checkpointer=_memory()))
    analyst = reply_with_usage(3_064, 10)  # saw its own prompt and a large private result
    final = AIMessage("Revenue grew 12% in Q3.", name="supervisor")  # no usage reported
    history = [HumanMessage("How did revenue do?"), analyst, final]
    assert supervisor.context_tokens(history) == COUNTER.count(history)


def test_repetition_compares_tool_calls_and_ignores_handoffs() -> None:
    def call(args: dict[str, Any], text: str = "") -> AIMessage:
        return AIMessage(text, tool_calls=[{"name": "read_file", "args": args, "id": "x"}])

    def fired(*replies: AIMessage) -> str | None:
        return Repetition(replies=3).check(TriggerContext("t", list(replies), tokens=0))

    same = call({"path": "src/app.py"})
    assert fired(same, same, same) == "repetition"  # a tool-call-only loop
    narration = "Let me look at the next part of the file to find the bug."
    progressing = [call({"offset": i * 100}, narration) for i in range(3)]
    assert fired(*progressing) is None  # same words, new arguments: progress
    done = [AIMessage("Done."), AIMessage("Done."), AIMessage("Done.")]
    assert fired(*done) is None  # too short to mean anything
    back = AIMessage(
        "Transferring back to supervisor",
        tool_calls=[{"name": "transfer_back_to_supervisor", "args": {}, "id": "b"}],
        response_metadata={"__is_handoff_back": True},
    )
    assert fired(back, back, back) is None


@pytest.mark.parametrize(
    ("name", "window"),
    [
        ("gpt-4o-2024-08-06", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("gpt-4-0613", 8_192),
        ("o1-mini", 128_000),
        ("claude-sonnet-4-5-20250929", 200_000),
        ("anthropic:claude-3-5-haiku-latest", 200_000),
        ("gpt-3.5-turbo-instruct", None),  # another model of the family: not guessed
        ("gpt-4.5-preview", None),
        ("llama3.1:8b", None),
    ],
)
def test_known_windows_match_names_and_dated_versions_only(name: str, window: int | None) -> None:
    assert context_window_of(name) == window


def test_event_predicate_sees_the_state_with_version_v2(saver: Any) -> None:
    seen: list[Any] = []
    supervisor = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=When(lambda state: seen.append(sorted(state)) or False),
    )
    supervisor.invoke({"messages": [HumanMessage("hi")]}, CONFIG, version="v2")
    assert seen == [["messages"]]


def test_sizes_and_utilisation_follow_what_the_trigger_sees(saver: Any) -> None:
    """Found in review: an AllOf branch counted as a size; utilisation ignored overhead."""
    mixed = CompactingSupervisor(
        echo_graph(checkpointer=saver),
        trigger=MessageCount(6) | (TokenLimit(100) & When(lambda state: False)),
    )
    assert mixed._token_threshold() is None  # no size alone ever fires it
    declared = CompactingSupervisor(
        echo_graph(checkpointer=saver), token_limit=400, system_prompt=300
    )
    turn(declared)
    stats = declared.thread_stats("t")
    messages = messages_of(declared)
    assert stats.tokens == COUNTER.count(messages)
    assert stats.utilisation == round(declared.context_tokens(messages) / 400, 4)
    assert stats.utilisation > 0.8  # the declared prompt is most of it
    big = CompactingSupervisor(echo_graph(checkpointer=saver), trigger=TokenLimit(10_000))
    assert not big.over_limit([HumanMessage("word " * 600)])  # the trigger's size, not 500
    assert big.over_limit([HumanMessage("word " * 12_000)])
