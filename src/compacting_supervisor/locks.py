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

from compacting_supervisor._settings import check_seconds

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
    """Session advisory locks on a connection used for nothing else.

    The connection is reopened when it breaks (a server restart, an idle timeout); the
    locks it held are then gone, which the server also does for a dead process.
    """

    _NAMESPACE = 0x43535550  # "CSUP": keeps our keys apart from the application's

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._conn: Any = None

    def _execute(self, query: str, params: tuple[int, int]) -> Any:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                try:
                    return self._conn.execute(query, params).fetchone()
                except psycopg.OperationalError:
                    self._conn = None
                    if attempt == 2:
                        raise
                    logger.warning("The Postgres lock connection broke; reconnecting.")
            return None  # pragma: no cover - the loop returns or raises

    def slot(self, thread_id: str) -> int:
        return _hash(thread_id) % (1 << 31)

    def try_acquire(self, slot: int) -> bool:
        row = self._execute("SELECT pg_try_advisory_lock(%s, %s)", (self._NAMESPACE, slot))
        return bool(row and row[0])

    def release(self, slot: int) -> None:
        try:
            self._execute("SELECT pg_advisory_unlock(%s, %s)", (self._NAMESPACE, slot))
        except Exception as exc:  # the session is gone, and its locks with it
            logger.warning("Could not release a Postgres advisory lock (%s); it is gone.", exc)


def _owner() -> tuple[str, int]:
    """Who holds a lock: the current asyncio task, else the current OS thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is not None:
        return ("task", id(task))
    return ("thread", threading.get_ident())


class _Slot:
    """An in-process lock that its owner (OS thread or asyncio task) can re-enter."""

    def __init__(self) -> None:
        self.owner: tuple[str, int] | None = None
        self.depth = 0
        self.cross_process = False  # whether the backend lock is held for this slot
        self.changed = threading.Condition()
        self.users = 0  # holders and waiters; counted under `ThreadLocks._guard`

    def try_enter(self, owner: tuple[str, int]) -> bool:
        with self.changed:
            if self.owner is None or self.owner == owner:
                self.owner = owner
                self.depth += 1
                return True
            return False

    def enter(self, owner: tuple[str, int], timeout: float | None) -> bool:
        with self.changed:
            if not self.changed.wait_for(
                lambda: self.owner is None or self.owner == owner, timeout=timeout
            ):
                return False
            self.owner = owner
            self.depth += 1
            return True

    def leave(self) -> bool:
        """Step out once; True when the owner has left entirely."""
        with self.changed:
            self.depth -= 1
            if self.depth:
                return False
            self.owner = None
            self.changed.notify_all()
            return True


class ThreadLocks:
    """Per-thread locks for one checkpoint store, usable from threads and asyncio tasks.

    The holder (an OS thread, or an asyncio task) may take the lock again while it holds
    it: calling ``update_state`` or ``invoke(Command(resume=...))`` while consuming a
    stream of the same thread works as it does on the bare graph.

    Args:
        backend: The cross-process lock, or None for in-process locking only.
    """

    def __init__(self, backend: _Backend | None = None) -> None:
        self.backend: _Backend = backend or _NoBackend()
        self._slots: dict[Any, _Slot] = {}  # only threads held or waited for
        self._guard = threading.Lock()

    def _slot(self, key: Any) -> _Slot:
        """The thread's slot, counted as used until `_done_with` gives it back."""
        with self._guard:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            slot.users += 1
            return slot

    def _done_with(self, key: Any, slot: _Slot) -> None:
        """Give a slot back: its last user forgets it.

        A long-lived process keeps no slot for every thread it ever locked.
        """
        with self._guard:
            slot.users -= 1
            if not slot.users and self._slots.get(key) is slot:
                del self._slots[key]

    @contextlib.contextmanager
    def hold(self, thread_id: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the thread's lock for the block (blocking the calling OS thread).

        Args:
            thread_id: The thread.
            timeout: The most seconds to wait for it (finite); None waits as long as it
                takes.

        Raises:
            ThreadLockTimeoutError: Another holder kept it past ``timeout``.
            ValueError: ``timeout`` is negative, NaN or infinite.
        """
        check_seconds("timeout", timeout, allow_zero=True, allow_none=True)
        key = self.backend.slot(thread_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        slot = self._slot(key)
        if not slot.enter(_owner(), timeout):
            self._done_with(key, slot)
            raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
        try:
            if not slot.cross_process:
                delay = _POLL_START
                while not self.backend.try_acquire(key):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
                    time.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                slot.cross_process = True
            yield
        finally:
            self._leave_for_good(slot, key)

    def _leave(self, slot: _Slot, key: Any) -> None:
        with slot.changed:
            last = slot.depth == 1
            if last and slot.cross_process:
                slot.cross_process = False
                self.backend.release(key)
        slot.leave()

    @contextlib.asynccontextmanager
    async def ahold(self, thread_id: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        """Async form of `hold`: waits without blocking the event loop."""
        check_seconds("timeout", timeout, allow_zero=True, allow_none=True)
        key = self.backend.slot(thread_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        slot = self._slot(key)
        owner = _owner()
        delay = _POLL_START
        try:
            while not slot.try_enter(owner):
                if deadline is not None and time.monotonic() >= deadline:
                    raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
        except BaseException:  # a timeout, or cancelled while waiting
            self._done_with(key, slot)
            raise
        try:
            if not slot.cross_process:
                delay = _POLL_START
                while not await self._atry_backend(key):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise ThreadLockTimeoutError(thread_id, timeout or 0.0)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                slot.cross_process = True
            yield
        finally:
            if isinstance(self.backend, _PostgresBackend) and slot.depth == 1:
                # The release is a query: run in a worker thread, and shielded, so that a
                # task cancelled while it waits for that thread still gives the lock back.
                leaving = asyncio.ensure_future(asyncio.to_thread(self._leave_for_good, slot, key))
                await asyncio.shield(leaving)
            else:
                self._leave_for_good(slot, key)

    def _leave_for_good(self, slot: _Slot, key: Any) -> None:
        """Step out of the slot, then give it back.

        The backend lock is released by the holder's last step out.
        """
        try:
            self._leave(slot, key)
        finally:
            self._done_with(key, slot)

    async def _atry_backend(self, key: Any) -> bool:
        if not isinstance(self.backend, _PostgresBackend):
            return self.backend.try_acquire(key)  # a non-blocking local call
        attempt = asyncio.ensure_future(asyncio.to_thread(self.backend.try_acquire, key))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The query still runs in its worker thread: if it gets the lock, give it back.
            backend = self.backend

            def give_back(done: asyncio.Future[bool]) -> None:
                if not done.cancelled() and done.exception() is None and done.result():
                    threading.Thread(target=backend.release, args=(key,), daemon=True).start()

            attempt.add_done_callback(give_back)
            raise


_registry: dict[Any, ThreadLocks] = {}
_registry_guard = threading.Lock()


def _forget_parent_locks() -> None:
    # A forked child must not share the parent's lock file handle or Postgres session:
    # its locks would be the parent's (both re-enter the same session's advisory locks).
    global _registry_guard  # noqa: PLW0603 - a fresh guard: the parent's may be held
    _registry.clear()
    _registry_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_parent_locks)


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
