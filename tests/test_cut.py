"""Point 2 (the cut) and the provider rules on generated histories."""

from __future__ import annotations

import random

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from compacting_supervisor._cut import plan_cut, split_history
from compacting_supervisor._messages import is_summary

from .helpers import anthropic_violations, openai_violations


def _turns(n: int) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for i in range(n):
        out += [HumanMessage(f"question {i}", id=f"h{i}"), AIMessage(f"answer {i}", id=f"a{i}")]
    return out


def _summary(text: str = "earlier facts") -> HumanMessage:
    return HumanMessage(text, additional_kwargs={"lc_source": "summarization"}, id="s")


def test_half_evicts_the_older_half() -> None:
    messages = _turns(5)  # 10 messages
    plan = plan_cut(messages, 0.5)
    assert plan is not None
    assert plan.evicted == messages[:5]
    assert plan.kept == messages[5:]


def test_point_eight_keeps_the_newest_fifth() -> None:
    messages = _turns(5)
    plan = plan_cut(messages, 0.8)
    assert plan is not None
    assert plan.evicted == messages[:8]
    assert plan.kept == messages[8:]


def test_system_messages_stay_first_and_are_not_counted() -> None:
    system = [SystemMessage("You are helpful.", id="sys1"), SystemMessage("Be brief.", id="sys2")]
    messages = [*system, *_turns(5)]
    plan = plan_cut(messages, 0.5)
    assert plan is not None
    assert plan.parts.system == system
    assert plan.evicted == messages[2:7]


def test_previous_summary_is_set_apart_not_summarised_as_conversation() -> None:
    messages = [SystemMessage("sys"), _summary(), *_turns(4)]
    parts = split_history(messages)
    assert parts.summary is messages[1]
    plan = plan_cut(messages, 0.5)
    assert plan is not None
    assert all(not is_summary(m) for m in plan.evicted)
    assert plan.evicted == messages[2:6]


def test_parallel_tool_calls_stay_with_their_results() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("weather in Paris and Rome?"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "lookup", "args": {"city": "Paris"}, "id": "p"},
                {"name": "lookup", "args": {"city": "Rome"}, "id": "r"},
            ],
        ),
        ToolMessage("sunny", tool_call_id="p"),
        ToolMessage("rainy", tool_call_id="r"),
        AIMessage("Paris sunny, Rome rainy."),
        HumanMessage("thanks"),
    ]
    for ratio in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        plan = plan_cut(messages, ratio)
        assert plan is not None
        assert len(plan.evicted) in (1, 4, 5), ratio
        assert not isinstance(plan.kept[0], ToolMessage)


def test_handoff_pair_is_never_split() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("list candidates"),
        AIMessage(
            "",
            name="supervisor",
            tool_calls=[{"name": "transfer_to_candidates_agent", "args": {}, "id": "t1"}],
        ),
        ToolMessage("Successfully transferred to candidates_agent", tool_call_id="t1"),
        AIMessage("Alice and Bob.", name="candidates_agent"),
        AIMessage(
            "Transferring back to supervisor",
            name="candidates_agent",
            tool_calls=[{"name": "transfer_back_to_supervisor", "args": {}, "id": "t2"}],
        ),
        ToolMessage("Successfully transferred back to supervisor", tool_call_id="t2"),
        AIMessage("Alice and Bob are the candidates.", name="supervisor"),
        HumanMessage("tell me about Alice"),
    ]
    for ratio in [i / 20 for i in range(1, 20)]:
        plan = plan_cut(messages, ratio)
        assert plan is not None
        assert openai_violations(plan.kept) == [], ratio
        assert openai_violations(plan.evicted) == [], ratio


def test_a_tool_result_far_from_its_call_still_blocks_the_cut() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("start"),
        AIMessage("", tool_calls=[{"name": "slow", "args": {}, "id": "x"}]),
        AIMessage("still working"),
        ToolMessage("done", tool_call_id="x"),
        AIMessage("finished"),
        HumanMessage("next"),
    ]
    plan = plan_cut(messages, 0.5)  # target 3 would split call x from its result
    assert plan is not None
    assert len(plan.evicted) == 1


def test_latest_human_message_is_never_summarised() -> None:
    messages = [HumanMessage("only question"), *[AIMessage(f"step {i}") for i in range(8)]]
    assert plan_cut(messages, 0.9) is None
    messages = [*_turns(2), HumanMessage("latest"), AIMessage("a"), AIMessage("b")]
    plan = plan_cut(messages, 0.99)
    assert plan is not None
    assert plan.kept[0].content == "latest"


def test_too_little_history_gives_no_plan() -> None:
    assert plan_cut([], 0.5) is None
    assert plan_cut([HumanMessage("hi")], 0.5) is None
    assert plan_cut([SystemMessage("sys"), HumanMessage("hi")], 0.5) is None


def _random_history(rng: random.Random) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    if rng.random() < 0.5:
        messages.append(SystemMessage("system prompt"))
    if rng.random() < 0.3:
        messages.append(_summary())
    for turn in range(rng.randint(1, 8)):
        messages.append(HumanMessage(f"human {turn}"))
        for step in range(rng.randint(0, 3)):
            calls = [
                {
                    "name": rng.choice(["lookup", "transfer_to_agent"]),
                    "args": {"n": k},
                    "id": f"c{turn}_{step}_{k}",
                }
                for k in range(rng.randint(1, 3))
            ]
            messages.append(
                AIMessage(
                    rng.choice(["", "let me check"]),
                    tool_calls=calls,
                    name=rng.choice([None, "supervisor", "agent"]),
                )
            )
            messages += [ToolMessage(f"result {c['id']}", tool_call_id=c["id"]) for c in calls]
        messages.append(AIMessage(f"answer {turn}", name=rng.choice([None, "agent"])))
    return messages


@pytest.mark.parametrize("seed", range(300))
def test_generated_histories_stay_valid_for_every_ratio(seed: int) -> None:
    rng = random.Random(seed)
    messages = _random_history(rng)
    assert openai_violations(messages) == []
    parts = split_history(messages)
    for ratio in (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.95):
        plan = plan_cut(messages, ratio)
        if plan is None:
            continue
        assert plan.evicted + plan.kept == parts.conversation  # kept is exactly a suffix
        assert plan.evicted and plan.kept
        assert not isinstance(plan.kept[0], ToolMessage)
        summary = _summary("summary of the evicted part")
        compacted = [*parts.system, summary, *plan.kept]
        assert compacted[: len(parts.system)] == parts.system
        assert openai_violations(compacted) == [], (seed, ratio)
        assert anthropic_violations(compacted) == [], (seed, ratio)
        humans = [m for m in parts.conversation if isinstance(m, HumanMessage)]
        assert humans[-1] in plan.kept


def test_tool_call_ids_reused_across_turns_still_allow_a_real_cut() -> None:
    messages: list[BaseMessage] = []
    for turn in range(10):
        messages += [
            HumanMessage(f"question {turn}"),
            AIMessage("", tool_calls=[{"name": "lookup", "args": {"n": turn}, "id": "call_0"}]),
            ToolMessage(f"result {turn}", tool_call_id="call_0"),
            AIMessage(f"answer {turn}"),
        ]
    messages.append(HumanMessage("latest"))
    plan = plan_cut(messages, 0.5)
    assert plan is not None
    assert len(plan.evicted) == 20
    assert openai_violations([_summary(), *plan.kept]) == []


def _one_request_many_calls(calls: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage("Read every record.")]
    for n in range(calls):
        call = {"name": "lookup", "args": {"n": n}, "id": f"c{n}"}
        messages += [
            AIMessage("", tool_calls=[call]),
            ToolMessage(f"record {n}", tool_call_id=f"c{n}"),
        ]
    return messages


def test_inside_a_run_the_cut_may_pass_the_request_which_stays_first() -> None:
    messages = _one_request_many_calls(10)
    assert plan_cut(messages, 0.5) is None  # after a run: never past the latest request
    plan = plan_cut(messages, 0.5, pin_request=True)
    assert plan is not None
    assert plan.kept[0] is messages[0]  # the request, verbatim, right after the summary
    assert messages[0] not in plan.evicted
    assert len(plan.evicted) == 10
    assert plan.evicted == messages[1:11]
    assert plan.kept[1:] == messages[11:]
    assert not isinstance(plan.kept[1], ToolMessage)
    assert openai_violations(plan.kept) == []


def test_pinning_changes_nothing_when_the_cut_falls_before_the_request() -> None:
    messages = [
        HumanMessage("first"), AIMessage("one"), HumanMessage("second"), AIMessage("two"),
        HumanMessage("third"), AIMessage("three"), HumanMessage("now"),
    ]  # fmt: skip
    assert plan_cut(messages, 0.5, pin_request=True) == plan_cut(messages, 0.5)
