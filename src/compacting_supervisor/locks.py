"""One writer per thread: runs and compactions of a thread never interleave.

The checkpointer API has no lock and no compare-and-set: two runs on one thread both start
from the same head and one turn is lost, and a compaction written during a run is
overtaken by it. `ThreadLocks` serialises everything that writes a thread:

- within a process, a lock per thread shared by OS threads and asyncio tasks;
- across processes on a SQLite file, ``fcntl`` byte-range locks on a file beside the
  database (``<database>.compacting-locks``), released by the OS if a process dies;
- across processes on Postgres, session advisory locks (``pg_try_advisory_lock``) on a
  connection of their own, released by the server if a process dies.

Other checkpointers (InMemorySaver, custom ones) get the in-process lock only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

logger = logging.getLogger(__name__)

__all__ = ["ThreadLockTimeoutError", "ThreadLocks", "locks_for"]

_SLOTS = 1 << 20  # byte ranges in a lock file; collisions only serialise unrelated threads
_POLL_START = 0.002
_POLL_MAX = 0.05


class ThreadLockTimeoutError(TimeoutError):
    """The thread stayed locked by another run or compaction for longer than allowed.

    Attributes:
        thread_id: The thread that could not be locked.
        timeout: The seconds waited.
    """

    def __init__(self, thread_id: str, timeout: float) -> None:
        super().__init__(
            f"Thread {thread_id!r} is still in use by another run or compaction after "
            f"{timeout} s; try again later or raise `lock_timeout`."
        )
        self.thread_id = thread_id
        self.timeout = timeout


class _Backend(Protocol):
    """The cross-process part of a lock; the in-process part is `ThreadLocks`' own."""

    def slot(self, thread_id: str) -> Any: ...

    def try_acquire(self, slot: Any) -> bool: ...

    def release(self, slot: Any) -> None: ...


class _NoBackend:
    def slot(self, thread_id: str) -> Any:
        return thread_id

    def try_acquire(self, slot: Any) -> bool:
        return True

    def release(self, slot: Any) -> None:
        return None


def _hash(thread_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(thread_id.encode(), digest_size=8).digest(), "big")


class _FileBackend:
    """``fcntl`` byte-range locks on one file beside a SQLite database."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}.compacting-locks"
        # POSIX locks belong to the process and are dropped when *any* descriptor of the
        # file closes, so the descriptor stays open for the life of the process.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def slot(self, thread_id: str) -> int:
        return _hash(thread_id) % _SLOTS

    def try_acquire(self, slot: int) -> bool:
        import fcntl

        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        except OSError:
            return False
        return True

    def release(self, slot: int) -> None:
        import fcntl

        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)


class _PostgresBackend:
    """Session advisory locks on a connection used for nothing else."""

    _NAMESPACE = 0x43535550  # "CSUP": keeps our keys apart from the application's

    def __init__(self, conninfo: str) -> None:
        import psycopg

        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._lock = threading.Lock()

    def slot(self, thread_id: str) -> int:
        return _hash(thread_id) % (1 << 31)

    def try_acquire(self, slot: int) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (self._NAMESPACE, slot)
            ).fetchone()
        return bool(row and row[0])

    def release(self, slot: int) -> None:
        with self._lock:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self._NAMESPACE, slot))


class ThreadLocks:
    """Per-thread locks for one checkpoint store, usable from threads and asyncio tasks.

    Args:
        backend: The cross-process lock, or None for in-process locking only.
    """

    def __init__(self, backend: _Backend | None = None) -> None:
        self.backend: _Backend = backend or _NoBackend()
        self._local: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    def _local_lock(self, slot: Any) -> threading.Lock:
        with self._guard:
            return self._local.setdefault(slot, threading.Lock())

    @contextlib.contextmanager
    def hold(self, thread_id: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the thread's lock for the block (blocking the calling OS thread)."""
        slot = self.backend.slot(thread_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        local = self._local_lock(slot)
        if not local.acquire(timeout=-1 if timeout is None else timeout):
            raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
        try:
            delay = _POLL_START
            while not self.backend.try_acquire(slot):
                if deadline is not None and time.monotonic() >= deadline:
                    raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
                time.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
            try:
                yield
            finally:
                self.backend.release(slot)
        finally:
            local.release()

    @contextlib.asynccontextmanager
    async def ahold(self, thread_id: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold the thread's lock for the block without blocking the event loop."""
        slot = self.backend.slot(thread_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        local = self._local_lock(slot)
        blocking_backend = isinstance(self.backend, _PostgresBackend)
        delay = _POLL_START
        while not local.acquire(blocking=False):
            if deadline is not None and time.monotonic() >= deadline:
                raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        try:
            delay = _POLL_START
            while not (
                await asyncio.to_thread(self.backend.try_acquire, slot)
                if blocking_backend
                else self.backend.try_acquire(slot)
            ):
                if deadline is not None and time.monotonic() >= deadline:
                    raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
            try:
                yield
            finally:
                if blocking_backend:
                    await asyncio.to_thread(self.backend.release, slot)
                else:
                    self.backend.release(slot)
        finally:
            local.release()


_registry: dict[Any, ThreadLocks] = {}
_registry_guard = threading.Lock()


def _shared(key: Any, make: Any) -> ThreadLocks:
    with _registry_guard:
        locks = _registry.get(key)
        if locks is None:
            locks = _registry[key] = ThreadLocks(make())
        return locks


def _sqlite_file(conn: Any) -> str | None:
    rows = conn.execute("PRAGMA database_list").fetchall()
    for _, name, path in rows:
        if name == "main":
            return str(path) or None
    return None


def _postgres_conninfo(conn: Any) -> str:
    from psycopg.conninfo import make_conninfo

    if hasattr(conn, "conninfo"):  # a connection pool
        return str(conn.conninfo)
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    return make_conninfo(**params)


def locks_for(saver: Any) -> ThreadLocks:
    """The process-wide `ThreadLocks` of the store behind ``saver`` (sync savers).

    Every supervisor on the same SQLite file or Postgres database shares them, so runs and
    compactions of one thread are serialised across supervisors, threads and processes.
    """
    kind = type(saver).__name__
    if kind == "SqliteSaver":
        with saver.lock:
            path = _sqlite_file(saver.conn)
        if path:
            real = os.path.realpath(path)
            return _shared(("sqlite", real), lambda: _FileBackend(real))
    elif kind in ("PostgresSaver", "ShallowPostgresSaver"):
        conninfo = _postgres_conninfo(saver.conn)
        return _shared(("postgres", conninfo), lambda: _PostgresBackend(conninfo))
    return _shared(("object", id(saver)), lambda: None)


async def alocks_for(saver: Any) -> ThreadLocks:
    """Async form of `locks_for`, for AsyncSqliteSaver and AsyncPostgresSaver."""
    kind = type(saver).__name__
    if kind == "AsyncSqliteSaver":
        async with saver.lock:
            cursor = await saver.conn.execute("PRAGMA database_list")
            rows = await cursor.fetchall()
        path = next((str(p) for _, name, p in rows if name == "main"), "")
        if path:
            real = os.path.realpath(path)
            return _shared(("sqlite", real), lambda: _FileBackend(real))
        return _shared(("object", id(saver)), lambda: None)
    if kind in ("AsyncPostgresSaver", "AsyncShallowPostgresSaver"):
        conninfo = _postgres_conninfo(saver.conn)
        return _shared(("postgres", conninfo), lambda: _PostgresBackend(conninfo))
    return locks_for(saver)
