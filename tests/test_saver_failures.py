"""Issue 18, part 5: a checkpointer that fails makes a `CompactionError`, never a raw one.

``compact()`` used to re-raise a raw ``sqlite3.OperationalError`` when the write failed,
while the documentation lists only `CompactionError` types. Now a failed read or write is a
`CheckpointerError` (the saver's exception chained, the thread id set), and the history is
exactly as it was: on a real SQLite file made read-only after the thread exists, sync and
async, on Postgres in a read-only session, and on InMemorySaver whose put or read raises.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from compacting_supervisor import (
    CheckpointerError,
    CompactingSupervisor,
    CompactionError,
    HistoryManager,
)

from .conftest import POSTGRES_URL
from .helpers import chat_graph

CONFIG = {"configurable": {"thread_id": "saver-fails"}}


class FlakySaver(InMemorySaver):
    """An InMemorySaver whose put (or reads) raise once the test says so."""

    fail_put = False
    fail_read = False

    def put(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_put:
            raise OSError("No space left on device")
        return super().put(*args, **kwargs)

    def get_tuple(self, config: Any) -> Any:
        if self.fail_read:
            raise ConnectionError("the store went away")
        return super().get_tuple(config)


def _supervisor(saver: Any) -> CompactingSupervisor:
    return CompactingSupervisor(chat_graph(saver), token_limit=100_000)


def _talk(supervisor: CompactingSupervisor, turns: int = 4) -> None:
    for i in range(turns):
        supervisor.invoke({"messages": [HumanMessage(f"question {i} " + "words " * 30)]}, CONFIG)


async def _atalk(supervisor: CompactingSupervisor, turns: int = 4) -> None:
    for i in range(turns):
        message = {"messages": [HumanMessage(f"question {i} " + "words " * 30)]}
        await supervisor.ainvoke(message, CONFIG)


def _history(saver: Any) -> list[tuple[str, int]]:
    return [
        (t.checkpoint["id"], len(t.checkpoint["channel_values"].get("messages") or []))
        for t in saver.list(CONFIG)
    ]


def _check(error: CheckpointerError, cause: type[BaseException], operation: str) -> None:
    assert isinstance(error, CompactionError)
    assert isinstance(error.__cause__, cause)
    assert error.thread_id == "saver-fails"
    assert error.operation == operation
    assert "history is unchanged" in str(error)


def test_a_read_only_sqlite_file_makes_a_compaction_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    supervisor = _supervisor(SqliteSaver(conn))
    _talk(supervisor)
    before = _history(supervisor.agent.checkpointer)
    conn.execute("PRAGMA query_only = ON")  # the file is read-only from now on
    with pytest.raises(CheckpointerError) as caught:
        supervisor.compact(CONFIG)
    _check(caught.value, sqlite3.OperationalError, "write")
    assert "readonly" in str(caught.value)
    conn.close()
    with sqlite3.connect(path, check_same_thread=False) as reopened:
        assert _history(SqliteSaver(reopened)) == before
    assert supervisor.last_compaction(CONFIG).status == "failed"


def test_a_sqlite_file_opened_read_only_makes_a_compaction_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    with sqlite3.connect(path, check_same_thread=False) as conn:
        _talk(_supervisor(SqliteSaver(conn)))
        before = _history(SqliteSaver(conn))
    read_only = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    manager = HistoryManager(memory_saver=SqliteSaver(read_only))
    with pytest.raises(CompactionError) as caught:
        manager.compact_thread(CONFIG)
    assert isinstance(caught.value, CheckpointerError)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert caught.value.thread_id == "saver-fails"
    read_only.close()
    with sqlite3.connect(path, check_same_thread=False) as conn:
        assert _history(SqliteSaver(conn)) == before


async def test_async_a_read_only_sqlite_file_makes_a_compaction_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        supervisor = _supervisor(saver)
        await _atalk(supervisor)
        await saver.conn.execute("PRAGMA query_only = ON")
        with pytest.raises(CheckpointerError) as caught:
            await supervisor.acompact(CONFIG)
        _check(caught.value, sqlite3.OperationalError, "write")
    with sqlite3.connect(path, check_same_thread=False) as conn:
        history = _history(SqliteSaver(conn))
    assert len(history) == 4 * 3  # input, start and reply checkpoints per turn; none added
    assert history[0][1] == 8


def test_a_put_that_raises_on_memory_saver() -> None:
    saver = FlakySaver()
    supervisor = _supervisor(saver)
    _talk(supervisor)
    before = _history(saver)
    saver.fail_put = True
    with pytest.raises(CheckpointerError) as caught:
        supervisor.compact(CONFIG)
    _check(caught.value, OSError, "write")
    assert "No space left on device" in str(caught.value)
    assert _history(saver) == before


async def test_async_a_put_that_raises_on_memory_saver() -> None:
    saver = FlakySaver()
    supervisor = _supervisor(saver)
    await _atalk(supervisor)
    before = _history(saver)
    saver.fail_put = True
    with pytest.raises(CheckpointerError) as caught:
        await supervisor.acompact(CONFIG)
    _check(caught.value, OSError, "write")
    assert _history(saver) == before


def test_a_read_that_raises_is_a_compaction_error() -> None:
    saver = FlakySaver()
    _talk(_supervisor(saver))
    before = _history(saver)
    manager = HistoryManager(memory_saver=saver)
    saver.fail_read = True
    with pytest.raises(CheckpointerError) as caught:
        manager.compact_thread(CONFIG)
    _check(caught.value, ConnectionError, "read")
    with pytest.raises(CheckpointerError):
        manager.replace_thread_history(CONFIG, [HumanMessage("x")])
    saver.fail_read = False
    assert _history(saver) == before


async def test_async_a_read_that_raises_is_a_compaction_error() -> None:
    saver = FlakySaver()
    await _atalk(_supervisor(saver))
    manager = HistoryManager(memory_saver=saver)
    saver.fail_read = True
    with pytest.raises(CheckpointerError) as caught:
        await manager.acompact_thread(CONFIG)
    _check(caught.value, ConnectionError, "read")


def test_postgres_in_a_read_only_session_makes_a_compaction_error() -> None:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(POSTGRES_URL) as saver:
        saver.setup()
        saver.conn.execute("DELETE FROM checkpoints WHERE thread_id = 'saver-fails'")
        supervisor = _supervisor(saver)
        _talk(supervisor)
        before = _history(saver)
        saver.conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(CheckpointerError) as caught:
            supervisor.compact(CONFIG)
        _check(caught.value, psycopg.Error, "write")
        saver.conn.execute("SET default_transaction_read_only = off")
        assert _history(saver) == before


def test_the_wrapper_reports_a_failed_read_as_a_compaction_error() -> None:
    saver = FlakySaver()
    supervisor = _supervisor(saver)
    _talk(supervisor)
    saver.fail_read = True
    with pytest.raises(CheckpointerError):
        supervisor.compact(CONFIG)


def _our_queries_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shortcut query of ours on Postgres fails, as on a saver subclass with other
    tables, without the permission, or past a statement timeout."""
    from compacting_supervisor._persist import reads, rewrite, runs

    failing = "SELECT checkpoint_id FROM no_such_table_{marker}"
    monkeypatch.setitem(runs._SQL, "postgres", {"head": failing, "run": failing})
    monkeypatch.setattr(rewrite, "_HEAD_MARK", failing)
    monkeypatch.setattr(reads, "_PARENTS", failing)


def test_a_failed_shortcut_query_leaves_a_pipelined_postgres_saver_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed query aborts a Postgres pipeline; ours are shortcuts, so after one fails the
    pipeline is resynchronised and the user's runs, the compactions and the reads go on
    (counted whole, read whole)."""
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from compacting_supervisor import TokenCounter

    from .conftest import postgres_saver

    with postgres_saver():  # the tables, empty
        pass
    _our_queries_fail(monkeypatch)
    with (
        psycopg.connect(POSTGRES_URL, autocommit=True, row_factory=dict_row) as conn,
        conn.pipeline() as pipe,
    ):
        saver = PostgresSaver(conn, pipe=pipe)
        graph = chat_graph(saver)
        seen: list[int] = []
        supervisor = CompactingSupervisor(graph, token_limit=120)
        for turn in range(8):
            supervisor.invoke({"messages": [HumanMessage(f"turn {turn} " + "word " * 20)]}, CONFIG)
            stored = graph.get_state(CONFIG).values["messages"]
            seen.append(TokenCounter().count(stored))
        assert supervisor.history_manager.thread_stats(CONFIG).compactions >= 1
        assert max(seen) < 400  # compacted as it grew


async def test_async_a_failed_shortcut_query_leaves_a_pipelined_postgres_saver_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    from .conftest import apostgres_saver

    async with apostgres_saver():  # the tables, empty
        pass
    _our_queries_fail(monkeypatch)
    async with (
        await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, row_factory=dict_row
        ) as conn,
        conn.pipeline() as pipe,
    ):
        saver = AsyncPostgresSaver(conn, pipe=pipe)
        graph = chat_graph(saver)
        supervisor = CompactingSupervisor(graph, token_limit=120)
        for turn in range(8):
            message = HumanMessage(f"turn {turn} " + "word " * 20)
            await supervisor.ainvoke({"messages": [message]}, CONFIG)
        stats = await supervisor.history_manager.athread_stats(CONFIG)
        assert stats.compactions >= 1
