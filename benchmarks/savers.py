"""Checkpointers for the benchmarks: InMemory, a SQLite file, a Postgres schema of our own.

The SQLite size is what the database holds after a run: the write-ahead log is folded into
the file first (``PRAGMA wal_checkpoint(TRUNCATE)``), and whatever is left of it counted.
Postgres runs in a schema created for the benchmark and dropped afterwards, so it never
shares tables with the test suite (``COMPACTING_SUPERVISOR_BENCH_POSTGRES`` names another
server).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["POSTGRES_SERVER", "SAVERS", "open_saver", "postgres_available", "sqlite_bytes"]

POSTGRES_SERVER = os.environ.get(
    "COMPACTING_SUPERVISOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The Postgres server the compaction-cost benchmark uses."""

SAVERS = ("memory", "sqlite", "postgres")

_SERDE = JsonPlusSerializer(
    # langmem keeps its RunningSummary dataclass in the state.
    allowed_msgpack_modules=[("langmem.short_term.summarization", "RunningSummary")]
)


def sqlite_bytes(conn: sqlite3.Connection, path: Path) -> int:
    """The size of a SQLite database after folding its write-ahead log into the file."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal")
        if os.path.exists(f"{path}{suffix}")
    )


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite file, its WAL and shared memory, and the package's lock file."""
    for suffix in ("", "-wal", "-shm", ".compacting-locks"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


def postgres_available() -> bool:
    """Whether the Postgres server answers."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def open_saver(
    kind: str, workdir: Path, name: str
) -> Iterator[tuple[BaseCheckpointSaver[Any], Any]]:
    """Yield ``(saver, handle)`` for ``kind``; the handle is the SQLite connection and path.

    Everything the saver wrote is removed when the block ends.
    """
    if kind == "memory":
        yield InMemorySaver(serde=_SERDE), None
    elif kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = workdir / f"{name}.sqlite"
        remove_sqlite(path)
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            yield SqliteSaver(conn, serde=_SERDE), (conn, path)
        finally:
            conn.close()
            remove_sqlite(path)
    elif kind == "postgres":
        with _postgres_saver() as saver:
            yield saver, None
    else:
        msg = f"unknown saver {kind!r}; choose from {', '.join(SAVERS)}"
        raise ValueError(msg)


@contextlib.contextmanager
def _postgres_saver() -> Iterator[BaseCheckpointSaver[Any]]:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    schema = f"compacting_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in POSTGRES_SERVER else "?"
    url = f"{POSTGRES_SERVER}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
