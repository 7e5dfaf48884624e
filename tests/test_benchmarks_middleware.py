"""`benchmarks/middleware.py`'s quick mode runs, reports every figure, and ours loses no fact."""

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
    none = results["none"]
    assert none["compactions"] == none["summariser_calls"] == none["facts_lost"] == 0
    for name in ("ours", "ours-long-summary", "langchain"):
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
    for title in ("model input tokens", "summariser calls", "facts strictly lost", "late / early"):
        assert title in printed
