"""The benchmarks' harnesses run and count fairly.

`benchmarks/middleware.py`'s quick mode reports every figure and ours loses no fact; the
side-by-side harness (`benchmarks/measure.py`) runs every contender at the same trigger,
counts a fact as kept only when the thread holds it at the end, and times a slow
summariser's wait.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain.agents")

from benchmarks import middleware


def test_quick_mode_reports_every_contender_and_loses_no_fact(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = middleware.main(["--quick"])
    printed = capsys.readouterr().out

    assert report["turns"] == 20 and report["saver"] == "memory"
    results: dict[str, Any] = report["contenders"]
    assert tuple(results) == middleware.CONTENDERS
    for name, figures in results.items():
        assert figures["label"] in printed, name
        assert figures["agent_calls"] == 30  # 10 lookups (a call and an answer), 10 questions
        assert figures["facts"] == 10 and figures["questions"] == 10
        times = figures["turn_ms"]
        assert len(times["all"]) == 20
        assert 0 < times["min"] <= times["median"] <= times["max"]
        assert times["early_median"] > 0 and times["late_median"] > 0
        assert 0 <= figures["compactions_no_shorter"] <= figures["compactions"]
        assert figures["summaries_capped"] >= 0
        assert figures["sqlite_bytes"] is None  # InMemorySaver: no file
        assert isinstance(times["slope_per_100_turns"], float)
    none = results["none"]
    assert none["compactions"] == none["summariser_calls"] == none["facts_lost"] == 0
    for name in ("ours", "ours-long-summary", "wrapper", "langchain"):
        figures = results[name]
        assert figures["compactions"] > 0 and figures["summariser_calls"] > 0
        assert figures["summariser_input_tokens"] > 0
        assert figures["input_tokens"] < none["input_tokens"]
    for name in ("ours", "ours-long-summary"):
        ours = results[name]
        assert ours["facts_lost"] == 0 and ours["lost"] == []
        assert ours["answered"] == ours["questions"]
        assert ours["failed_compactions"] == []
        assert ours["largest_input"] <= middleware.TRIGGER_TOKENS
        assert ours["compactions_no_shorter"] == 0
        assert ours["turn_ms"]["with_compaction"] is not None
    wrapper = results["wrapper"]
    assert wrapper["facts_lost"] == 0 and wrapper["failed_compactions"] == []
    for title in (
        "model input tokens",
        "summariser calls",
        "facts strictly lost",
        "late / early",
        "slope per 100 turns",
        "SQLite file at the end",
    ):
        assert title in printed


def test_the_sqlite_file_is_measured(tmp_path: Any) -> None:
    results = middleware.run(4, saver="sqlite", workdir=tmp_path)
    for name, figures in results.items():
        assert figures["sqlite_bytes"] > 0, name


def test_the_harness_counts_facts_strictly_and_times_a_slow_summariser(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import measure
    from benchmarks.contenders import MIDDLEWARE_APPROX, MIDDLEWARE_OUR_KEEP, SETTINGS, SLOW

    monkeypatch.setattr(measure, "SLOW_DELAY", (0.2, 0.3))
    turns = 45  # 15 tool results, several compactions at 3,000 tokens
    results = {
        name: measure.run_contender(
            name, turns=turns, workdir=tmp_path, settings=SETTINGS if "compacting" in name else None
        )
        for name in (
            "compacting",
            f"compacting{SLOW}",
            MIDDLEWARE_OUR_KEEP,
            f"{MIDDLEWARE_OUR_KEEP}{SLOW}",
            MIDDLEWARE_APPROX,
        )
    }
    for name, result in results.items():
        assert result.facts_total == 15, name
        assert result.summariser_calls > 0, name
        assert result.facts_lost == [] and result.lost == [], name
        assert len(result.wall_seconds) == len(result.turn_seconds) == turns
        assert all(w >= t for w, t in zip(result.wall_seconds, result.turn_seconds, strict=True))
    slow = results[f"compacting{SLOW}"]
    waited = sum(slow.wall_seconds) - sum(slow.turn_seconds)
    assert waited >= 0.2 * slow.summariser_calls  # the summariser's sleep is in the wall time
    # Streamed, ours hands over the answer before it summarises: the sleep comes after it.
    assert slow.compacted_turns.count(True) == slow.summariser_calls
    for answer, wall, compacted in zip(
        slow.answer_seconds, slow.wall_seconds, slow.compacted_turns, strict=True
    ):
        assert answer <= wall - (0.2 if compacted else 0)
    # LangChain's middleware summarises before the model call: the answer waits for it.
    theirs = results[f"{MIDDLEWARE_OUR_KEEP}{SLOW}"]
    assert theirs.summariser_calls > 0
    for answer, compacted in zip(theirs.answer_seconds, theirs.compacted_turns, strict=True):
        assert answer >= (0.2 if compacted else 0)
    assert slow.summariser_calls == results["compacting"].summariser_calls
    # The approximate counter triggers at other points than the exact one.
    assert (
        results[MIDDLEWARE_APPROX].summariser_calls != results[MIDDLEWARE_OUR_KEEP].summariser_calls
    )


def test_strict_loss_counts_what_langmem_summarised_away(tmp_path: Any) -> None:
    pytest.importorskip("langmem")
    from benchmarks import measure

    result = measure.run_contender("langmem", turns=60, workdir=tmp_path)
    assert result.lost  # messages that never reached its summariser
    assert result.facts_lost  # and facts its model no longer sees
    assert set(result.facts_lost) <= {f"T{n:03d}" for n in range(3, 61, 3)}


def test_requests_are_priced_by_each_providers_cache_rules() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from benchmarks.pricing import RULES, PriceMeter

    anthropic, gpt4o, gpt41 = RULES
    assert anthropic.price(1000, 900) == 1000  # under 1,024 tokens nothing is cached
    assert anthropic.price(2000, 0) == 2000 * 1.25  # all written
    assert anthropic.price(2000, 1500) == 1500 * 0.1 + 500 * 1.25
    assert gpt4o.price(2000, 1500) == 1408 * 0.5 + 592  # 128-token steps
    assert gpt41.price(2000, 1000) == 2000  # a prefix under 1,024 is not cached

    meter = PriceMeter()
    history = [SystemMessage("rules " * 1500), HumanMessage("first question")]
    meter.agent_call(history)
    first = dict(meter.priced)
    assert first["anthropic"] == meter.counter.count(history) * 1.25
    assert first["gpt-4o"] == first["gpt-4.1"] == meter.counter.count(history)
    grown = [*history, AIMessage("an answer"), HumanMessage("second question")]
    meter.agent_call(grown)
    shared = meter.counter.count(history) - 3  # the messages both requests start with
    assert meter.cached_tokens == shared
    # A summary that replaces the history breaks the prefix right after the system prompt.
    meter.agent_call([history[0], HumanMessage("Summary: ..."), HumanMessage("third")])
    assert meter.cached_tokens == shared + meter.counter.count(history[:1]) - 3
    before = dict(meter.priced)
    transcript = [SystemMessage("Summarise."), HumanMessage("<new_messages>... " * 300)]
    meter.summariser_call(transcript)
    tokens = meter.counter.count(transcript)
    assert all(meter.priced[r] == before[r] + tokens for r in before)  # shares nothing: 1x
    # A summariser sent the agent's own last request reads its cached prefix.
    last = [history[0], HumanMessage("Summary: ..."), HumanMessage("third")]
    before = dict(meter.priced)
    asked = [*last, HumanMessage("<summary_request>fold it</summary_request>")]
    meter.summariser_call(asked)
    cached = meter.counter.count(last) - 3
    rest = meter.counter.count(asked) - cached
    # ... and, like the agent's requests, writes its rest at the end (Anthropic: 1.25x).
    expected = cached * 0.1 + rest * 1.25
    assert meter.priced["anthropic"] - before["anthropic"] == pytest.approx(expected)
    assert sum(meter.summariser_priced.values()) > 0
    # The split adds up to the whole, for every rule.
    for rule in RULES:
        assert sum(meter.parts[rule.name].values()) == pytest.approx(meter.priced[rule.name])


def test_a_stable_prefix_is_priced_as_always_shared() -> None:
    from langchain_core.messages import HumanMessage

    from benchmarks.pricing import PriceMeter

    meter = PriceMeter(stable_tokens=3000)
    first = [HumanMessage("a question")]
    meter.agent_call(first)
    total = meter.counter.count(first) + 3000
    assert meter.priced["anthropic"] == total * 1.25  # all written the first time
    meter.agent_call([HumanMessage("Summary: everything changed")])
    assert meter.cached_tokens == 3000  # the prefix stays cached when the messages change


def test_a_summariser_reading_the_cached_conversation_costs_less_and_loses_nothing(
    tmp_path: Any,
) -> None:
    from benchmarks import measure
    from benchmarks.contenders import CACHED, IN_RUN

    runs = {
        name: measure.run_contender(name, turns=60, workdir=tmp_path)
        for name in ("compacting", CACHED, IN_RUN)
    }
    transcript = runs["compacting"]
    assert transcript.summariser_calls > 0
    for name in (CACHED, IN_RUN):
        run = runs[name]
        assert run.summariser_calls > 0, name
        assert run.facts_lost == [] and run.lost == [], name
        # The same requests, but each summariser call reads the agent's cached prefix.
        assert run.priced["anthropic"] < transcript.priced["anthropic"], name
        assert (
            run.priced_parts["anthropic"]["summariser"]
            < (transcript.priced_parts["anthropic"]["summariser"])
        ), name
