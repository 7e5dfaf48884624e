"""Issue 18, part 1: a summary that is not a summary never replaces history.

Refusals, provider errors, markup pages, headings without a body and near-empty text, in the
languages users speak, are a failed summary (history unchanged, counted by the circuit
breaker); no real summary (the tests' and the demos', structured ones quoting errors) is
turned away; a reply that drops the previous summary's facts is reported.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from compacting_supervisor import CompactingSupervisor, HistoryManager, SummarizationError
from compacting_supervisor._messages import is_summary
from compacting_supervisor._summarizer_call import acall_summarizer, call_summarizer
from compacting_supervisor._summary_checks import (
    dropped_content,
    summary_problem,
    validate_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

from .data.summary_replies import BAD, KINDS, REAL
from .helpers import chat_graph

CONFIG = {"configurable": {"thread_id": "checks"}}


def test_the_corpus_has_a_few_dozen_bad_replies_of_every_kind() -> None:
    assert len(BAD) >= 40
    assert {kind for kind, _, _ in BAD} == set(KINDS)
    assert len(REAL) >= 40


@pytest.mark.parametrize(("kind", "note", "reply"), BAD, ids=[f"{k}: {n}" for k, n, _ in BAD])
def test_every_bad_reply_is_rejected_saying_what_is_wrong(kind: str, note: str, reply: str) -> None:
    with pytest.raises(SummarizationError, match="The summariser's reply is ") as caught:
        validate_summary(reply)
    assert caught.value.text == reply
    expected = {
        "refusal": ("refusal",),
        "provider error": ("error", "stack trace", "exception"),
        "markup": ("markup page",),
        "headings only": ("headings with nothing under them", "empty or placeholder"),
        "near-empty": ("empty or placeholder", "near-empty"),
    }[kind]
    assert any(word in str(caught.value) for word in expected)


@pytest.mark.parametrize(("note", "summary"), REAL, ids=[n for n, _ in REAL])
def test_every_real_summary_is_accepted(note: str, summary: str) -> None:
    assert summary_problem(summary.strip()) is None
    assert validate_summary(summary) == summary.strip()


@pytest.mark.parametrize(
    "summary",
    [
        "Overloaded servers were the theme of the week; the team added 3 nodes.",
        "Timed out jobs were re-queued (14 of them) on 12 May.",
        "Permission denied errors on /var/log were fixed with chmod 750.",
        "Error-free deploy of v2.3 on 12 May.",
        "500 error pages were redesigned by Ana.",
        "Fehlerbehebung am Drucker erledigt; Angebot 4.200 EUR.",
        'The agent replied "I can\'t help with that" to the salary question; HR will answer.',
        "The agent said it cannot help with tax questions; the user will ask an accountant.",
        "The booking site was down; the user will try again later.",
        "Sorry state of the build: 3 of 12 jobs red, owner Priya.",
    ],
)
def test_prose_that_merely_mentions_errors_or_refusals_is_accepted(summary: str) -> None:
    assert summary_problem(summary) is None


def test_a_long_structured_summary_may_start_with_a_refusal_quote() -> None:
    body = "\n".join(f"- INT-{2000 + i}: interview {i} booked for 14 January" for i in range(60))
    summary = (
        "## Goal\n- I'm sorry, but I can't help with that\" was the agent's first answer.\n"
        f"## Discoveries\n{body}\n## Current state\n- All booked."
    )
    assert len(summary) > 2000
    assert validate_summary(summary) == summary


@pytest.mark.parametrize(
    "reply",
    [
        "I’m sorry, but I can’t help with that.",  # noqa: RUF001 (the curly apostrophe is the point)
        "I\u2019M SORRY, BUT I CAN\u2019T HELP WITH THAT.",
        "Je suis de\u0301sole\u0301, je ne peux pas.",  # decomposed accents
        "  \n\n**Summary:**\n\n> I'm sorry, I cannot do that.",
    ],
)
def test_quotes_case_and_unicode_are_normalised_first(reply: str) -> None:
    assert summary_problem(reply.strip()) == "a refusal, not a summary"


def test_the_check_is_linear_on_a_megabyte_of_adversarial_text() -> None:
    """Correctness on hostile input (the timings are in benchmarks/summary_checks.py)."""
    size = 1_000_000
    for text in ("sk-" * (size // 3), "\n-" * (size // 2), "#\n" * (size // 2), "<" * size):
        started = time.perf_counter()
        summary_problem(text.strip())
        assert time.perf_counter() - started < 5  # a generous bound: quadratic would be hours
    assert summary_problem("I'm sorry " * (size // 10)) == "a refusal, not a summary"
    assert summary_problem(("\n-" * (size // 2)).strip()) is not None


PREVIOUS = (
    "## Goal\n- Hire a backend engineer.\n## Artifacts (verbatim)\n"
    "- CAND-101 Alice Chen\n- CAND-102 Bob Martins\n- CAND-103 Carol Diaz\n"
    "- INT-2041: Tuesday 14 January 10:00\n- INT-2042: Wednesday 15 January 14:00\n"
    "## Current state\n- Interviews booked; panel of 3; budget 95000 EUR."
)


def test_a_reply_that_drops_the_previous_summary_is_reported_in_figures_only() -> None:
    report = dropped_content(PREVIOUS, "The user is hiring.")
    assert report is not None
    assert f"of the previous summary's {len(PREVIOUS)}" in report
    assert "keeps 0 of the" in report
    assert "Alice" not in report and "CAND" not in report  # figures, never the text


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        (None, "anything at all"),
        ("Short previous summary with CAND-101.", "x y"),
        (PREVIOUS, PREVIOUS + "\n- INT-2043 booked."),
        (PREVIOUS, "CAND-101 CAND-102 CAND-103 INT-2041 INT-2042 14 15 10:00 3"),
    ],
)
def test_a_reply_that_keeps_what_it_carried_is_not_reported(previous: str | None, new: str) -> None:
    assert dropped_content(previous, new) is None


def test_the_summariser_call_warns_when_the_previous_summary_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedChatModel(responses=["The user is hiring engineers."])
    summarizer = HistoryManager(model=model).summarizer
    with caplog.at_level(logging.WARNING, logger="compacting_supervisor"):
        text = call_summarizer(
            summarizer, PREVIOUS, [HumanMessage("ok")], max_tokens=300, timeout=5, replies=[]
        )
    assert text == "The user is hiring engineers."  # reported, not rejected
    assert "may have dropped the previous summary" in caplog.text
    assert "keeps 0 of the" in caplog.text


async def test_the_async_summariser_call_warns_too(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedChatModel(responses=["The user is hiring engineers."])
    summarizer = HistoryManager(model=model).summarizer
    with caplog.at_level(logging.WARNING, logger="compacting_supervisor"):
        text = await acall_summarizer(
            summarizer, PREVIOUS, [HumanMessage("ok")], max_tokens=300, timeout=5, replies=[]
        )
    assert text == "The user is hiring engineers."
    assert "may have dropped the previous summary" in caplog.text


# --- end to end: a bad reply never replaces history, and the breaker counts it -------------

E2E_REPLIES = [
    "I’m sorry, but I can’t help with that.",  # noqa: RUF001 (the issue's example)
    "Error 429: rate limit exceeded",
    "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>",
    "Summary:",
    "-",
    "Lo siento, no puedo ayudar con eso.",
    '{"error": {"type": "overloaded_error", "message": "Overloaded"}}',
]


def _supervisor(saver: Any, reply: str, token_limit: int = 150) -> CompactingSupervisor:
    history = HistoryManager(model=ScriptedChatModel(responses=[reply]), summary_retries=0)
    return CompactingSupervisor(
        chat_graph(saver),
        history,
        token_limit=token_limit,
        max_consecutive_failures=2,
        failure_cooldown_turns=3,
    )


def _check_untouched(messages: list[BaseMessage], turns: int, reply: str) -> None:
    assert len(messages) == 2 * turns  # every question and answer, nothing replaced
    assert not any(is_summary(m) for m in messages)
    assert all(reply not in str(m.content) for m in messages)


def _check_statuses(statuses: list[str | None]) -> None:
    first = statuses.index("failed")
    # Two failures in a row open the breaker: the next turns are skipped.
    assert statuses[first : first + 3] == ["failed", "failed", "skipped"]


@pytest.mark.parametrize("reply", E2E_REPLIES)
def test_a_bad_reply_fails_the_compaction_and_the_breaker_counts_it(saver: Any, reply: str) -> None:
    supervisor = _supervisor(saver, reply)
    statuses: list[str | None] = []
    turns = 8
    for i in range(turns):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}: " + "words " * 20)]}, CONFIG)
        result = supervisor.last_compaction(CONFIG)
        statuses.append(result.status if result else None)
        if result and result.status == "failed":
            assert "The summariser's reply is " in (result.error or "")
    _check_statuses(statuses)
    assert "consecutive failed compactions" in (supervisor.last_compaction(CONFIG).error or "")
    _check_untouched(supervisor.get_state(CONFIG).values["messages"], turns, reply)
    for snapshot in supervisor.get_state_history(CONFIG):
        assert not any(is_summary(m) for m in snapshot.values.get("messages", []))


@pytest.mark.parametrize("reply", E2E_REPLIES)
async def test_a_bad_reply_fails_the_async_compaction_and_the_breaker_counts_it(
    asaver: Any, reply: str
) -> None:
    supervisor = _supervisor(asaver, reply)
    statuses: list[str | None] = []
    turns = 8
    for i in range(turns):
        await supervisor.ainvoke(
            {"messages": [HumanMessage(f"turn {i}: " + "words " * 20)]}, CONFIG
        )
        result = supervisor.last_compaction(CONFIG)
        statuses.append(result.status if result else None)
    _check_statuses(statuses)
    _check_untouched((await supervisor.aget_state(CONFIG)).values["messages"], turns, reply)
    async for snapshot in supervisor.aget_state_history(CONFIG):
        assert not any(is_summary(m) for m in snapshot.values.get("messages", []))


@pytest.mark.parametrize("reply", E2E_REPLIES[:3])
def test_a_manual_compaction_with_a_bad_reply_raises_and_leaves_history(
    saver: Any, reply: str
) -> None:
    supervisor = _supervisor(saver, reply, token_limit=100_000)  # no automatic compaction
    for i in range(3):
        supervisor.invoke({"messages": [HumanMessage(f"turn {i}")]}, CONFIG)
    before = supervisor.get_state(CONFIG).values["messages"]
    with pytest.raises(SummarizationError, match="The summariser's reply is "):
        supervisor.compact(CONFIG)
    assert supervisor.get_state(CONFIG).values["messages"] == before
