"""The examples run offline with no API key, and on a real OpenAI client over loopback."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from compacting_supervisor import SUMMARY_PREFIX, HistoryManager
from compacting_supervisor.summarizers import DEFAULT_SUMMARY_PROMPT

from .helpers import openai_violations
from .openai_server import openai_server

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:  # as `python examples/<name>.py` does, for _shared.py
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert load("quickstart").main(["--db", str(tmp_path / "demo.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "[compaction #2]" in out
    assert "Nothing was lost" in out
    assert "TP 1351" in out


def test_create_agent_middleware_runs_offline_and_bounds_every_model_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    example = load("create_agent_middleware")
    assert example.main(["--db", str(tmp_path / "invoices.sqlite")]) == 0
    out = capsys.readouterr().out
    calls, largest, limit = re.search(
        r"(\d+) model calls in one run; the largest read ([\d,]+) tokens \(limit ([\d,]+)\)", out
    ).groups()
    assert int(calls) == example.INVOICES + 1
    assert int(largest.replace(",", "")) <= int(limit.replace(",", ""))
    assert re.search(r"[2-9] compactions during the run", out)
    assert f"{example.INVOICES} of {example.INVOICES}." in out  # every original kept


# ---------------------------------------------------------------------------- the HR demo


def thread_messages(db: Path, thread_id: str) -> list[BaseMessage]:
    with sqlite3.connect(db) as conn:
        state = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread_id}})
    assert state is not None
    return list(state.checkpoint["channel_values"]["messages"])


def recap_line(out: str) -> str:
    return next(line for line in out.splitlines() if "CVs we looked at" in line)


def test_hr_assistant_runs_offline_and_compacts_several_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    hr = load("hr_assistant")
    db = tmp_path / "hr.sqlite"
    assert hr.main(["--db", str(db), "--thread", "recruiting"]) == 0
    out = capsys.readouterr().out

    # Every turn ran, each agent's tokens streamed under its name, tools were called.
    for turn, text in enumerate(hr.USER_TURNS, start=1):
        assert f"[{turn}] recruiter: {text}" in out
    assert "candidates_agent [read_cv] Alice Chen (CAND-101), senior backend engineer" in out
    assert "calendar_agent [schedule_interview] Booked INT-2041: Alice Chen, Tuesday" in out
    assert "calendar_agent: Booked INT-2041: Alice Chen, Tuesday 14 January 10:00" in out

    # Several compactions, each shown with its figures and the summary.
    shown = re.findall(r"\[compaction #(\d+)\] (\d+) -> (\d+) tokens \(-\d+\), (\d+) messages", out)
    assert len(shown) >= 3
    assert all(int(after) < int(before) for _, before, after, _ in shown)
    assert "running summary now" in out
    assert "Earlier conversation (extractive summary" in out

    # "her" in turn 3 and the recap were answered from what compaction kept: every CV and
    # every booking is found, the oldest ones only in the summary.
    recap = recap_line(out)
    for name in hr.CANDIDATES:
        assert name in recap
    assert "Alice Chen: Tuesday 14 January 10:00 (summary)" in recap
    assert "Bob Martins: Wednesday 15 January 14:00 (summary)" in recap
    assert "Dan Okafor: Friday 17 January 09:00 (chat)" in recap

    # The thread on disk: summary on top, a valid history, shorter than what was said.
    messages = thread_messages(db, "recruiting")
    assert messages[0].text.startswith(SUMMARY_PREFIX)
    assert sum(m.text.startswith(SUMMARY_PREFIX) for m in messages) == 1
    assert openai_violations(messages) == []
    with sqlite3.connect(db) as conn:
        transcript = HistoryManager(SqliteSaver(conn)).transcript(
            {"configurable": {"thread_id": "recruiting"}}
        )
    said = [m.text for m in transcript.messages if isinstance(m, HumanMessage)]
    assert said == hr.USER_TURNS  # nothing lost across the compactions
    assert len(messages) < len(transcript.messages) / 3


def test_hr_assistant_continues_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    hr = load("hr_assistant")
    db = str(tmp_path / "hr.sqlite")
    assert hr.main(["--db", db, "--thread", "t"]) == 0
    capsys.readouterr()
    assert hr.main(["--db", db, "--thread", "t"]) == 0
    assert "(continuing thread 't': it already holds" in capsys.readouterr().out


def summariser_reply(messages: list[BaseMessage]) -> AIMessage:
    """What an LLM summariser would keep: every id-bearing fact of the transcript."""
    transcript = "\n".join(m.text for m in messages[1:])
    facts = dict.fromkeys(
        re.findall(r"[A-Z]\w+ [A-Z]\w+ \(CAND-\d{3}\)|Booked INT-\d+: [^,]+, [^,]+", transcript)
    )
    return AIMessage("Recruiting for the backend role. " + ". ".join(facts) + ".")


def test_hr_assistant_on_an_openai_compatible_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model openai:... --base-url``: real ChatOpenAI clients, tool calls and streaming
    over HTTP; the summaries come from the model too."""
    hr = load("hr_assistant")
    by_prompt = {
        hr.SUPERVISOR_PROMPT: hr.supervisor_reply,
        hr.CANDIDATES_PROMPT: hr.candidates_reply,
        hr.CALENDAR_PROMPT: hr.calendar_reply,
    }
    summary_prompt = DEFAULT_SUMMARY_PROMPT.split("{")[0]

    def reply(messages: list[BaseMessage], body: dict[str, Any]) -> AIMessage:
        system = messages[0].text
        if system.startswith(summary_prompt):
            return summariser_reply(messages)
        return by_prompt[system](messages)

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with openai_server(reply) as server:
        code = hr.main(
            ["--model", "openai:team-model", "--base-url", server.base_url, "--thread", "w"]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert "summariser: openai:team-model" in out
    assert len(re.findall(r"\[compaction #\d+\]", out)) >= 2
    assert "Recruiting for the backend role." in out  # the model's summary, shown
    recap = recap_line(out)
    assert "Alice Chen: Tuesday 14 January 10:00 (summary)" in recap
    assert "Dan Okafor: Friday 17 January 09:00 (chat)" in recap
    bodies = server.requests
    assert any(body.get("stream") for body in bodies)  # the team's tokens were streamed
    assert any(body.get("tools") for body in bodies)  # with the agents' tools bound
    summaries = [b for b in bodies if b["messages"][0]["content"].startswith(summary_prompt)]
    assert len(summaries) >= 2


def test_hr_assistant_reports_an_unreachable_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    hr = load("hr_assistant")
    # A port nothing listens on (a just-closed server's).
    with openai_server(lambda m, b: AIMessage("unused")) as server:
        url = server.base_url
    code = hr.main(["--model", "openai:m", "--base-url", url, "--thread", "x"])
    assert code == 1
    assert "error: the openai:m model failed" in capsys.readouterr().err


def test_hr_assistant_help_and_bad_options() -> None:
    script = str(EXAMPLES / "hr_assistant.py")
    shown = subprocess.run(
        [sys.executable, script, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--model", "--base-url", "--db", "--thread", "--token-limit", "--ratio"):
        assert option in shown
    bad = subprocess.run(
        [sys.executable, script, "--ratio", "1.5"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "--ratio: must be between 0 and 1" in bad.stderr
