"""The ``compacting-supervisor`` command line, on real SQLite files and the real Postgres.

Threads are built by a real graph wrapped in `CompactingSupervisor`, so the CLI reads what
the package really writes; most tests call ``main([...])`` in-process, a few run the
installed console script.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_from_dict
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    TokenCounter,
)
from compacting_supervisor.cli import main
from compacting_supervisor.locks import locks_for
from compacting_supervisor.testing import echo_graph

from .conftest import POSTGRES_URL
from .helpers import approval_graph
from .openai_server import openai_server

BIN = Path(sys.executable).parent


@dataclass
class Store:
    """A checkpoint store as the CLI names it (``db``), and the test's own saver on it."""

    db: str
    saver: Any
    threads: dict[str, Conversation] = field(default_factory=dict)

    def conversation(self, turns: int, *, token_limit: int = 250) -> Conversation:
        """Run ``turns`` user turns on a new thread, compacting past ``token_limit``."""
        thread_id = f"cli-{uuid.uuid4().hex[:10]}"
        graph = echo_graph(checkpointer=self.saver)
        supervisor = CompactingSupervisor(
            graph, HistoryManager(model=ExtractiveSummarizer()), token_limit=token_limit
        )
        conversation = Conversation(thread_id, graph, supervisor)
        for turn in range(turns):
            conversation.say(f"Turn {turn}: the code word for {thread_id} is word-{turn}.")
        self.threads[thread_id] = conversation
        return conversation


@dataclass
class Conversation:
    thread_id: str
    graph: Any
    supervisor: CompactingSupervisor
    said: list[str] = field(default_factory=list)
    compactions: int = 0

    @property
    def config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": self.thread_id}}

    def say(self, text: str) -> None:
        before = self.supervisor.last_compaction(self.thread_id)
        self.supervisor.invoke({"messages": [HumanMessage(text)]}, self.config)
        after = self.supervisor.last_compaction(self.thread_id)
        if after is not None and after is not before and after.succeeded:
            self.compactions += 1
        self.said.append(text)

    def messages(self) -> list[BaseMessage]:
        return list(self.graph.get_state(self.config).values["messages"])

    def head_id(self) -> str:
        return str(self.graph.get_state(self.config).config["configurable"]["checkpoint_id"])


def _schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def _schema() -> Iterator[str]:
    """A Postgres schema of its own (other tests truncate the shared tables), then dropped."""
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _schema_url(schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One set of checkpoint tables for this module's Postgres tests (thread ids are uuids)."""
    with _schema() as url:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        with PostgresSaver.from_conn_string(url) as saver:
            yield Store(url, saver)
        return
    path = tmp_path / "threads.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield Store(str(path), SqliteSaver(conn))
    finally:
        conn.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    conn = sqlite3.connect(tmp_path / "threads.sqlite", check_same_thread=False)
    try:
        yield Store(str(tmp_path / "threads.sqlite"), SqliteSaver(conn))
    finally:
        conn.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # stdout holds the JSON and nothing else


# --------------------------------------------------------------------------- threads


def test_threads_lists_messages_exact_tokens_and_compactions(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    long = store.conversation(9)
    short = store.conversation(2)
    assert long.compactions >= 3
    assert short.compactions == 0

    listing = run_json(capsys, "threads", store.db)
    rows = {row["thread_id"]: row for row in listing["threads"]}
    counter = TokenCounter()
    for conversation in (long, short):
        row = rows[conversation.thread_id]
        messages = conversation.messages()
        state = conversation.graph.get_state(conversation.config)
        assert row["messages"] == len(messages)
        assert row["tokens"] == counter.count(messages)
        assert row["compactions"] == conversation.compactions
        assert row["checkpoint_id"] == conversation.head_id()
        assert row["updated"] == state.created_at
    order = [row["thread_id"] for row in listing["threads"]]
    assert order.index(short.thread_id) < order.index(long.thread_id)  # newest first

    code, out, err = run(capsys, "threads", store.db)
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["THREAD", "MESSAGES", "TOKENS", "COMPACTIONS", "UPDATED", "(UTC)"]
    line = next(line for line in lines if line.startswith(long.thread_id))
    expected = [str(len(long.messages())), str(counter.count(long.messages()))]
    assert line.split()[1:4] == [*expected, str(long.compactions)]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns


def test_threads_shows_progress_when_asked_and_reads_an_empty_store(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        sqlite_store.conversation(1)
    code, out, err = run(capsys, "threads", sqlite_store.db, "--progress")
    assert code == 0
    assert "reading thread 1/3" in err
    assert "reading" not in out
    code, out, err = run(capsys, "threads", sqlite_store.db, "--limit", "1", "--json")
    assert len(json.loads(out)["threads"]) == 1
    assert err == ""  # stderr is not a terminal: no progress unless asked

    empty = Path(sqlite_store.db).with_name("empty.sqlite")
    with SqliteSaver.from_conn_string(str(empty)) as saver:
        saver.setup()
    assert run(capsys, "threads", str(empty))[:2] == (0, f"No threads in {empty}.\n")
    assert run_json(capsys, "threads", str(empty))["threads"] == []


# --------------------------------------------------------------------------- inspect


def test_inspect_shows_messages_tokens_and_compaction_history(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = store.conversation(8)
    messages = conversation.messages()
    counter = TokenCounter()

    data = run_json(capsys, "inspect", store.db, "--thread", conversation.thread_id)
    assert data["checkpoint_id"] == conversation.head_id()
    assert data["message_count"] == len(messages)
    assert data["tokens"] == counter.count(messages)
    assert [m["tokens"] for m in data["messages"]] == [counter.count_message(m) for m in messages]
    assert [m["id"] for m in data["messages"]] == [m.id for m in messages]
    assert data["messages"][0]["role"] == "summary"
    assert data["messages"][-2]["text"] == conversation.said[-1]
    history = data["history"]
    assert len(history) == conversation.compactions == data["compactions"]
    for record in history:
        assert record["kind"] == "compaction"
        assert record["trigger"] == "token_limit"
        assert record["tokens_after"] < record["tokens_before"]
        assert record["messages_summarized"] >= 1
    ids = [record["checkpoint_id"] for record in history]
    assert ids == sorted(ids)  # oldest first
    assert ids[-1] <= data["checkpoint_id"]

    code, out, _ = run(capsys, "inspect", store.db, "-t", conversation.thread_id)
    assert code == 0
    assert f"Thread       {conversation.thread_id}" in out
    assert f"{len(messages)}, {counter.count(messages)} tokens" in out
    assert "Turn 7: the code word" in out  # the latest user message, previewed
    assert "Compaction history (oldest first):" in out
    assert out.count("token_limit") == conversation.compactions
    for record in history:
        assert f"{record['tokens_before']} -> {record['tokens_after']}" in out
    width = max(len(line) for line in out.splitlines() if "Turn 7" in line)
    assert width <= 100  # previews fit the terminal (80 columns when not a terminal)

    code, out, _ = run(capsys, "inspect", store.db, "-t", conversation.thread_id, "--last", "1")
    assert f"Last 1 of {len(messages)} messages:" in out


# --------------------------------------------------------------------------- compact


def test_compact_shortens_the_thread_and_the_next_turn_runs(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = store.conversation(6, token_limit=100_000)  # never compacted by itself
    before = conversation.messages()
    head = conversation.head_id()

    result = run_json(capsys, "compact", store.db, "--thread", conversation.thread_id)
    after = conversation.messages()
    counter = TokenCounter()
    assert result["status"] == "compacted"
    assert result["previous_checkpoint_id"] == head
    assert result["checkpoint_id"] == conversation.head_id() != head
    assert result["tokens_before"] == counter.count(before)
    assert result["tokens_after"] == counter.count(after) < counter.count(before)
    assert result["messages_after"] == len(after) < len(before)
    assert result["summariser"] == "the offline extractive summariser"
    assert after[0].additional_kwargs["lc_source"] == "summarization"
    assert after[-1] == before[-1]

    conversation.say("One more turn after the compaction.")
    state = conversation.messages()
    assert [m.type for m in state[-2:]] == ["human", "ai"]
    assert state[: len(after)] == after

    code, out, _ = run(capsys, "compact", store.db, "-t", conversation.thread_id, "--ratio", "0.8")
    assert code == 0
    assert out.startswith(f"Compacted thread '{conversation.thread_id}'")
    assert "summarised" in out
    listing = run_json(capsys, "threads", store.db)
    row = next(r for r in listing["threads"] if r["thread_id"] == conversation.thread_id)
    assert row["compactions"] == 2
    transcript = conversation.supervisor.transcript(conversation.config).to_markdown()
    assert all(text in transcript for text in conversation.said)


def test_compact_dry_run_and_nothing_to_compact_write_nothing(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = sqlite_store.conversation(5, token_limit=100_000)
    head = conversation.head_id()
    result = run_json(capsys, "compact", sqlite_store.db, "-t", conversation.thread_id, "--dry-run")
    assert result["status"] == "dry_run"
    assert result["tokens_after"] < result["tokens_before"]
    assert result["checkpoint_id"] is None
    assert conversation.head_id() == head

    single = sqlite_store.conversation(1, token_limit=100_000)
    head = single.head_id()
    code, out, err = run(capsys, "compact", sqlite_store.db, "-t", single.thread_id)
    assert code == 0, err
    assert "nothing to compact" in out
    assert single.head_id() == head
    result = run_json(capsys, "compact", sqlite_store.db, "-t", single.thread_id)
    assert result["status"] == "skipped"
    assert result["checkpoint_id"] is None


def test_compact_refuses_an_interrupted_thread(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = approval_graph(sqlite_store.saver, padding="The request was logged.")
    config = {"configurable": {"thread_id": "waiting"}}
    for turn in range(4):
        graph.invoke({"messages": [HumanMessage(f"Please approve request {turn}.")]}, config)
        graph.invoke(Command(resume="yes"), config)
    graph.invoke({"messages": [HumanMessage("And request 4?")]}, config)  # paused
    state = graph.get_state(config)
    assert state.interrupts

    err = _fails(capsys, 1, "compact", sqlite_store.db, "-t", "waiting")
    assert "Thread 'waiting' is not idle" in err
    assert "resume or finish the run, then compact" in err
    assert "The history is unchanged." in err
    assert graph.get_state(config).config == state.config
    graph.invoke(Command(resume="yes"), config)  # the interrupt still resumes
    assert graph.get_state(config).values["messages"][-1].content.startswith("approved: yes")


def test_compact_with_a_model_on_an_openai_compatible_server(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    conversation = sqlite_store.conversation(6, token_limit=100_000)
    summary = "The user gave six code words, word-0 to word-5, one per turn."
    with openai_server(lambda messages, body: AIMessage(summary)) as server:
        url, requests = server.base_url, server.requests
        result = run_json(
            capsys,
            "compact",
            sqlite_store.db,
            "-t",
            conversation.thread_id,
            "--model",
            "openai:local-model",
            "--base-url",
            url,
        )
    assert result["status"] == "compacted"
    assert result["summary"] == summary
    assert result["summariser"] == f"openai:local-model at {url}"
    assert len(requests) == 1
    assert requests[0]["model"] == "local-model"
    assert "Turn 0: the code word" in json.dumps(requests[0]["messages"])
    assert summary in conversation.messages()[0].content


def test_a_failing_summariser_leaves_the_history_unchanged(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = sqlite_store.conversation(6, token_limit=100_000)
    head, messages = conversation.head_id(), conversation.messages()
    # An empty summary must never replace history.
    with openai_server(lambda messages, body: AIMessage("")) as server:
        url, requests = server.base_url, server.requests
        code, out, err = run(
            capsys,
            *("compact", sqlite_store.db, "-t", conversation.thread_id, "--json"),
            *("--model", "openai:local-model", "--base-url", url, "--retries", "1"),
        )
    assert code == 1
    assert out == ""
    assert err.startswith("compacting-supervisor: error: the summariser (openai:local-model")
    assert "empty or placeholder" in err
    assert "The history is unchanged." in err
    assert "Traceback" not in err
    assert len(requests) == 2  # the call and its retry
    assert conversation.head_id() == head
    assert conversation.messages() == messages


def test_compact_waits_for_the_thread_lock_then_gives_up(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = store.conversation(5, token_limit=100_000)
    head = conversation.head_id()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another run of the thread, in another OS thread
        with locks_for(store.saver).hold(conversation.thread_id):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        code, out, err = run(
            capsys, "compact", store.db, "-t", conversation.thread_id, "--lock-timeout", "0.2"
        )
    finally:
        release.set()
        holder.join()
    assert code == 1
    assert out == ""
    assert f"thread '{conversation.thread_id}' is in use by another run or compaction" in err
    assert "--lock-timeout" in err
    assert conversation.head_id() == head
    assert run_json(capsys, "compact", store.db, "-t", conversation.thread_id)["status"] == (
        "compacted"
    )


# --------------------------------------------------------------------------- export


def test_export_holds_every_message_across_compactions(
    store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conversation = store.conversation(10)
    assert conversation.compactions >= 3

    code, markdown, _ = run(capsys, "export", store.db, "--thread", conversation.thread_id)
    assert code == 0
    assert markdown.startswith(f"# Transcript of thread `{conversation.thread_id}`")
    for text in conversation.said:
        assert markdown.count(f"**user:** {text}") == 1
    assert markdown.count("## Archived session") == conversation.compactions

    data = run_json(capsys, "export", store.db, "-t", conversation.thread_id)
    assert data["compactions"] == conversation.compactions
    archived = [m for s in data["sessions"] for m in messages_from_dict(s["messages"])]
    everything = archived + messages_from_dict(data["live"])
    said = [m.content for m in everything if m.type == "human"]
    assert said == conversation.said
    assert len(everything) == data["message_count"] == 2 * len(conversation.said)

    target = tmp_path / "transcript.md"
    code, out, err = run(
        capsys, "export", store.db, "-t", conversation.thread_id, "-o", str(target)
    )
    assert code == 0
    assert out == ""
    assert target.read_text() == markdown
    assert str(target) in err


# --------------------------------------------------------------------------- errors


def _fails(capsys: pytest.CaptureFixture[str], code: int, *argv: str) -> str:
    got, out, err = run(capsys, *argv)
    assert got == code, err
    assert out == ""
    assert err.startswith("compacting-supervisor: error: ")
    assert "Traceback" not in err
    return err


def test_missing_file_text_file_and_empty_database_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite"
    for command in (
        ["threads"],
        ["inspect", "-t", "x"],
        ["compact", "-t", "x"],
        ["export", "-t", "x"],
    ):
        err = _fails(capsys, 2, command[0], str(missing), *command[1:])
        assert f"{missing}: no such file" in err
    assert not missing.exists()  # never created

    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    err = _fails(capsys, 2, "threads", str(text), "--json")
    assert f"{text} is not a LangGraph checkpoint store" in err

    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    for argv in (["threads", str(empty)], ["compact", str(empty), "-t", "x"]):
        err = _fails(capsys, 2, *argv)
        assert f"{empty} is not a LangGraph checkpoint store" in err
    assert empty.stat().st_size == 0  # no tables were created

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE checkpoints (id INTEGER)")
        conn.execute("CREATE TABLE writes (id INTEGER)")
    assert "is not a LangGraph checkpoint store" in _fails(capsys, 2, "threads", str(other))
    assert "is a directory" in _fails(capsys, 2, "threads", str(tmp_path))


def test_unknown_thread_and_channel_are_named(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = store.conversation(1)
    for command in ("inspect", "compact", "export"):
        err = _fails(capsys, 2, command, store.db, "--thread", "no-such-thread")
        assert "no thread 'no-such-thread'" in err
        assert "compacting-supervisor threads" in err
    err = _fails(capsys, 2, "inspect", store.db, "-t", conversation.thread_id[:-1])
    assert f"'{conversation.thread_id}'" in err.split("Did you mean", 1)[1]
    err = _fails(
        capsys, 2, "inspect", store.db, "-t", conversation.thread_id, "--messages-key", "chat"
    )
    assert "has no 'chat' channel (its channels: messages)" in err
    assert "--messages-key" in err


def test_postgres_without_tables_or_server(capsys: pytest.CaptureFixture[str]) -> None:
    with _schema() as url:
        err = _fails(capsys, 2, "threads", url)
        assert "is not a LangGraph checkpoint store" in err
        with psycopg.connect(url) as conn:  # nothing was created
            assert conn.execute("SELECT to_regclass('checkpoints')").fetchone() == (None,)
    err = _fails(capsys, 1, "threads", "postgres://user:secret@127.0.0.1:1/test")
    assert "cannot connect to postgres://user:***@127.0.0.1:1/test" in err
    assert "secret" not in err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = str(tmp_path / "x.sqlite")
    assert main(["compact", db, "-t", "x", "--ratio", "1.5"]) == 2
    assert "--ratio: must be between 0 and 1" in capsys.readouterr().err
    assert main(["inspect", db]) == 2  # --thread is required
    assert "--thread" in capsys.readouterr().err
    assert main([]) == 2
    capsys.readouterr()
    err = _fails(capsys, 2, "compact", db, "-t", "x", "--base-url", "http://127.0.0.1:1/v1")
    assert "--base-url needs a model" in err
    options = {
        "threads": ["--json", "--messages-key", "--progress", "--limit"],
        "inspect": ["--thread", "--json", "--messages-key", "--last"],
        "compact": [
            *("--thread", "--model", "--base-url", "--ratio", "--max-summary-tokens"),
            *("--timeout", "--retries", "--lock-timeout", "--dry-run", "--json"),
        ],
        "export": ["--thread", "--output", "--json", "--messages-key"],
    }
    for command, flags in options.items():
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert all(flag in text for flag in flags), command


def test_reading_commands_leave_the_database_untouched(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = sqlite_store.conversation(7)
    sqlite_store.saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    digest = hashlib.sha256(Path(sqlite_store.db).read_bytes()).hexdigest()
    for command in ("inspect", "export", "compact"):
        extra = ["--dry-run"] if command == "compact" else []
        assert run(capsys, command, sqlite_store.db, "-t", conversation.thread_id, *extra)[0] == 0
    assert run(capsys, "threads", sqlite_store.db)[0] == 0
    sqlite_store.saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert hashlib.sha256(Path(sqlite_store.db).read_bytes()).hexdigest() == digest


# --------------------------------------------------------------------------- the real entry point


def console(*argv: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (or ``python -m compacting_supervisor``)."""
    script = BIN / "compacting-supervisor"
    assert script.exists(), "install the package first: pip install -e ."
    command = [sys.executable, "-m", "compacting_supervisor"] if module else [str(script)]
    return subprocess.run(
        [*command, *argv],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        timeout=60,
    )


def test_console_script_respects_a_lock_held_by_another_process(sqlite_store: Store) -> None:
    conversation = sqlite_store.conversation(6, token_limit=100_000)
    thread = conversation.thread_id
    with locks_for(sqlite_store.saver).hold(thread):  # this process holds it
        busy = console("compact", sqlite_store.db, "-t", thread, "--lock-timeout", "0.3")
    assert busy.returncode == 1
    assert busy.stdout == ""
    assert "is in use by another run or compaction" in busy.stderr
    assert "Traceback" not in busy.stderr

    done = console("compact", sqlite_store.db, "-t", thread, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checkpoint_id"] == conversation.head_id()

    listing = console("threads", sqlite_store.db, module=True)
    assert listing.returncode == 0, listing.stderr
    assert thread in listing.stdout


# --------------------------------------------------------------------------- issue 18, part 5


def test_compact_refuses_a_thread_paused_before_a_node(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """``interrupt_before`` leaves no pending write: the checkpoint itself says it waits."""
    graph = echo_graph(checkpointer=store.saver).builder.compile(
        checkpointer=store.saver, interrupt_before=["agent"]
    )
    thread = f"paused-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    for turn in range(4):
        graph.invoke({"messages": [HumanMessage(f"Please look at request {turn}.")]}, config)
        graph.invoke(None, config)  # resume: the agent answers
    graph.invoke({"messages": [HumanMessage("And request 4?")]}, config)  # paused
    state = graph.get_state(config)
    assert state.next == ("agent",)

    err = _fails(capsys, 1, "compact", store.db, "-t", thread)
    assert f"Thread {thread!r} is not idle (tasks waiting to run: agent)" in err
    assert "resume or finish the run, then compact" in err
    assert "The history is unchanged." in err
    assert graph.get_state(config).config == state.config
    graph.invoke(None, config)  # it still resumes where it paused
    assert graph.get_state(config).values["messages"][-2].content == "And request 4?"
    result = run_json(capsys, "compact", store.db, "-t", thread)
    assert result["status"] == "compacted"


NOBODY = 65534


@contextmanager
def _read_only_directory(store_path: Path) -> Iterator[Path]:
    """A world-readable directory holding a copy of ``store_path``, then made read-only."""
    directory = Path(tempfile.mkdtemp(prefix="cli-read-only-"))
    try:
        directory.chmod(0o755)
        copy = directory / "threads.sqlite"
        shutil.copy(store_path, copy)
        copy.chmod(0o644)
        directory.chmod(0o555)
        yield copy
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def _main_as_reader(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` as a user who may not write to the directory.

    As that user already, in this process; as root (whom no permission stops), in a
    process running as ``nobody``.
    """
    if os.geteuid() != 0:
        return run(capsys, *argv)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop to nobody")
    code = "import sys; from compacting_supervisor.cli import main; sys.exit(main(sys.argv[1:]))"
    ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    reach = subprocess.run(
        [setpriv, *ids, sys.executable, "-c", "import compacting_supervisor.cli"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if reach.returncode != 0:  # .ci/run makes its environment readable; a private one is not
        pytest.skip(f"nobody cannot import the package from {sys.prefix} (a private directory)")
    cache = Path(tempfile.mkdtemp(prefix="cli-tiktoken-"))  # the offline encoding, readable
    try:
        cache.chmod(0o755)
        for file in Path(os.environ["TIKTOKEN_CACHE_DIR"]).iterdir():
            shutil.copy(file, cache / file.name)
            (cache / file.name).chmod(0o644)
        env = {**os.environ, "COLUMNS": "100", "HOME": "/tmp", "TIKTOKEN_CACHE_DIR": str(cache)}
        done = subprocess.run(
            [setpriv, *ids, sys.executable, "-c", code, *argv],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        shutil.rmtree(cache)
    return done.returncode, done.stdout, done.stderr


def test_a_store_in_a_read_only_directory_is_read(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = sqlite_store.conversation(12)
    assert conversation.compactions
    thread = conversation.thread_id
    sqlite_store.saver.conn.close()  # its write-ahead log is folded into the file
    writable = {
        command: run_json(capsys, command, sqlite_store.db, *extra)
        for command, extra in (("threads", []), ("inspect", ["-t", thread]))
    }
    exported = run_json(capsys, "export", sqlite_store.db, "-t", thread)
    with _read_only_directory(Path(sqlite_store.db)) as db:
        for command, extra in (("threads", []), ("inspect", ["-t", thread])):
            code, out, err = _main_as_reader(capsys, command, str(db), *extra, "--json")
            assert code == 0, err
            got = json.loads(out)
            got.pop("database", None)
            writable[command].pop("database", None)
            assert got == writable[command]
        code, out, err = _main_as_reader(capsys, "export", str(db), "-t", thread, "--json")
        assert code == 0, err
        assert json.loads(out) == exported
        code, out, err = _main_as_reader(capsys, "compact", str(db), "-t", thread, "--dry-run")
        assert code == 0, err
        assert "not a SQLite database" not in err
        assert sorted(p.name for p in db.parent.iterdir()) == ["threads.sqlite"]


def test_compact_in_a_read_only_directory_says_why(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a file that nobody may write in a directory nobody may not")
    thread = sqlite_store.conversation(6, token_limit=100_000).thread_id
    sqlite_store.saver.conn.close()
    with _read_only_directory(Path(sqlite_store.db)) as db:
        db.chmod(0o666)  # the file is writable, its directory is not
        code, out, err = _main_as_reader(capsys, "compact", str(db), "-t", thread)
        assert code == 2, err
        assert out == ""
        assert "not a SQLite database" not in err
        assert "needs write access to the file and to its directory" in err
        assert "--dry-run" in err


SECRET = "Zq9pw-secret"


def test_a_postgres_password_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    for db in (
        f"postgresql://u:{SECRET}@127.0.0.1:1/test",
        f"postgres://u:{SECRET}@127.0.0.1:1/test?sslmode=disable",
        f"postgresql://u@127.0.0.1:1/test?password={SECRET}",
        f"postgresql://u@127.0.0.1:1/test?sslmode=disable&password={SECRET}",
        f"postgresql://u@127.0.0.1:1/test?PASSWORD={SECRET}",
        f"postgresql://u@127.0.0.1:1/test?password={SECRET}&no_such_option=1",
        f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=test",
        f"host=127.0.0.1 port=1 user=u Password = '{SECRET} x' dbname=test",
        f"host=127.0.0.1 port=1 password={SECRET} not-an-option",
        f"postgresql://u:{SECRET.replace('-', '%2D')}@127.0.0.1:1/test",
    ):
        for argv in (["threads", db], ["compact", db, "-t", "x"], ["export", db, "-t", "x"]):
            code, out, err = run(capsys, *argv)
            assert code in (1, 2), err
            assert err.startswith("compacting-supervisor: error: ")
            assert SECRET not in err and SECRET not in out, db
            assert "Zq9pw" not in err, db
            assert "***" in err, db


def test_a_postgres_password_is_masked_by_the_real_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _schema() as url:  # no checkpoint tables: the error names the store
        scheme, rest = url.split("://", 1)
        user, host = rest.split("@", 1)
        for db in (f"{scheme}://{user}:{SECRET}@{host}", f"{url}&password={SECRET}"):
            err = _fails(capsys, 2, "threads", db)
            assert "is not a LangGraph checkpoint store" in err
            assert SECRET not in err


def test_threads_inspect_and_export_follow_the_branch_after_time_travel(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run from an older checkpoint abandons the later compactions: none is counted."""
    conversation = store.conversation(10)
    assert conversation.compactions >= 3
    history = list(conversation.graph.get_state_history(conversation.config))
    compactions = [
        s
        for s in reversed(history)
        if (s.metadata.get("compacting_supervisor") or {}).get("kind") == "compaction"
    ]
    fork = compactions[0]  # the state right after the first compaction
    config = {
        "configurable": {**conversation.config["configurable"], **fork.config["configurable"]}
    }
    conversation.graph.invoke({"messages": [HumanMessage("A new branch.")]}, config)
    thread = conversation.thread_id

    row = next(
        r for r in run_json(capsys, "threads", store.db)["threads"] if r["thread_id"] == thread
    )
    assert row["compactions"] == 1
    assert row["checkpoints"] == len(history) + 3  # every stored checkpoint still counts
    data = run_json(capsys, "inspect", store.db, "-t", thread)
    assert data["compactions"] == 1
    assert [r["checkpoint_id"] for r in data["history"]] == [
        fork.config["configurable"]["checkpoint_id"]
    ]
    exported = run_json(capsys, "export", store.db, "-t", thread)
    assert len(exported["sessions"]) == 1
    parts = [*exported["system"], *exported["sessions"][0]["messages"], *exported["live"]]
    ids = [m["data"]["id"] for m in parts]
    assert len(ids) == len(set(ids)) == exported["message_count"]
    assert messages_from_dict(exported["live"])[-2].content == "A new branch."


def test_compact_on_a_locked_database_says_so_once(
    sqlite_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store refusing the write is a `CheckpointerError`: exit 1, history unchanged."""
    conversation = sqlite_store.conversation(6, token_limit=100_000)
    head = conversation.head_id()
    writer = sqlite3.connect(sqlite_store.db, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process is writing (readers still read)
    try:
        err = _fails(capsys, 1, "compact", sqlite_store.db, "-t", conversation.thread_id)
    finally:
        writer.rollback()
        writer.close()
    assert "the checkpointer failed to write the compacted checkpoint" in err
    assert "database is locked" in err
    assert err.lower().count("the history is unchanged") == 1
    assert conversation.head_id() == head
