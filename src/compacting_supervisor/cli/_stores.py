"""Open the checkpoint store a command line names: a SQLite file or a Postgres URL.

Opening never creates anything: a missing file is an error, not a new database, and a
database without LangGraph's checkpoint tables is reported as such instead of being set up.
SQLite files are opened read-only (``mode=ro``) unless a command writes, and Postgres
sessions are made read-only the same way.

Besides the saver, a `CheckpointStore` answers the one question the saver API cannot
answer cheaply: which threads exist, with their checkpoint and compaction counts. It reads
only the ``checkpoints`` table's ids and JSON metadata for that, so listing a large store
deserialises nothing; the caller reads each thread's head through the saver.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor.cli._masking import display_name

__all__ = [
    "CheckpointStore",
    "CompactionRecord",
    "StoreError",
    "StoreUnavailableError",
    "ThreadHead",
    "ThreadStats",
    "display_name",
    "is_postgres_url",
    "open_store",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(Exception):
    """The named store cannot be used: a missing file, or not a LangGraph checkpoint store."""


class StoreUnavailableError(Exception):
    """The store could not be reached (the server is down, the file is locked ...)."""


@dataclass(frozen=True)
class ThreadStats:
    """What the ``checkpoints`` table says about one thread, without deserialising it."""

    thread_id: str
    """The thread."""
    checkpoints: int
    """Checkpoints of the thread in the root namespace."""
    compactions: int
    """Checkpoints written by a compaction (metadata ``kind`` ``"compaction"``)."""
    replacements: int
    """Checkpoints written by ``replace_thread_history`` (``kind`` ``"replacement"``)."""
    head_checkpoint_id: str
    """The newest checkpoint: the thread's head."""


@dataclass(frozen=True)
class ThreadHead:
    """A thread's newest checkpoint, as far as the command line needs it."""

    checkpoint_id: str
    """The head checkpoint."""
    timestamp: str
    """When it was written (ISO 8601, UTC)."""
    messages: Any
    """The messages channel's value (a list of messages), or None when it has none."""
    channels: list[str]
    """The state's channels, LangGraph's internal ones left out."""


@dataclass(frozen=True)
class CompactionRecord:
    """One compaction (or history replacement), read from its checkpoint's metadata."""

    checkpoint_id: str
    """The checkpoint the compaction wrote."""
    compacted_checkpoint_id: str
    """The checkpoint it compacted, which still holds the original messages."""
    timestamp: str
    """When it was written (ISO 8601, UTC)."""
    kind: str
    """``"compaction"``, or ``"replacement"`` for a ``replace_thread_history``."""
    trigger: str | None
    """``"token_limit"`` after a run, ``"manual"`` for ``compact()``, when recorded."""
    tokens_before: int | None
    """Tokens of the messages channel before, when recorded."""
    tokens_after: int | None
    """Tokens after, when recorded."""
    messages_before: int | None
    """Messages before, when recorded."""
    messages_after: int | None
    """Messages after, when recorded."""
    messages_summarized: int | None
    """Messages folded into the summary, when recorded."""


_CONNINFO = re.compile(
    r"\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|options)\s*=", re.I
)
"""The start of a libpq ``key=value`` connection string (``host=db user=u password=pw``)."""


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` names a Postgres database (a URL or a ``key=value`` connection string)."""
    if db.lower().startswith(POSTGRES_SCHEMES):
        return True
    return bool(_CONNINFO.match(db)) and not Path(db).exists()


_BRANCH = """
    forked AS (SELECT DISTINCT thread_id FROM checkpoints
               WHERE checkpoint_ns = ''{where} AND parent_checkpoint_id IS NOT NULL
               GROUP BY thread_id, parent_checkpoint_id HAVING COUNT(*) > 1),
    heads AS (SELECT thread_id, MAX(checkpoint_id) AS checkpoint_id FROM checkpoints
              WHERE checkpoint_ns = ''{where}{only_forked} GROUP BY thread_id),
    branch(thread_id, checkpoint_id) AS (
        SELECT thread_id, checkpoint_id FROM heads
        UNION ALL
        SELECT c.thread_id, c.parent_checkpoint_id
        FROM branch AS b
        JOIN checkpoints AS c ON c.thread_id = b.thread_id AND c.checkpoint_ns = ''
                             AND c.checkpoint_id = b.checkpoint_id
        WHERE c.parent_checkpoint_id < c.checkpoint_id)"""
"""Each thread's head and its ancestors (its branch), walked through ``parent_checkpoint_id``
on the primary key; with ``only_forked``, only for the threads whose history forks (time
travel), every checkpoint of the others being on their one branch. Checkpoint ids sort by
time and a parent is older, so the walk ends."""

_ONLY_FORKED = " AND thread_id IN (SELECT thread_id FROM forked)"


class CheckpointStore:
    """An opened checkpoint store: the saver, and thread statistics read with SQL.

    Args:
        saver: The checkpointer on the store.
        name: How to name the store in messages (no password).
        dialect: ``"sqlite"`` or ``"postgres"``.
        connection: The connection the saver uses.
    """

    def __init__(
        self, saver: BaseCheckpointSaver[Any], *, name: str, dialect: str, connection: Any
    ) -> None:
        self.saver = saver
        self.name = name
        self.dialect = dialect
        self._conn = connection

    def thread_stats(self, thread_id: str | None = None) -> list[ThreadStats]:
        """Every thread's statistics, most recently updated first (or one thread's).

        Args:
            thread_id: Only this thread; an empty list when it does not exist.
        """
        marker = "?" if self.dialect == "sqlite" else "%s"
        if self.dialect == "sqlite":
            # instr() first: only the few compaction rows have their JSON parsed.
            meta = (
                f"CASE WHEN instr(CAST(metadata AS TEXT), '{METADATA_KEY}') > 0 "
                "AND json_valid(CAST(metadata AS TEXT)) THEN CAST(metadata AS TEXT) END"
            )
            compacted = f"json_type({meta}, '$.{METADATA_KEY}.compacted_checkpoint_id') IS NOT NULL"
            kind = f"COALESCE(json_extract({meta}, '$.{METADATA_KEY}.kind'), 'compaction')"
        else:
            compacted = f"(metadata -> '{METADATA_KEY}' -> 'compacted_checkpoint_id') IS NOT NULL"
            kind = f"COALESCE(metadata -> '{METADATA_KEY}' ->> 'kind', 'compaction')"
        where = f" AND thread_id = {marker}" if thread_id is not None else ""
        # Compactions count on the branch the thread is on (the head and its ancestors):
        # after time travel the abandoned branch's stay stored but are no longer its history.
        counts = """
                   SUM(CASE WHEN compacted AND kind = 'compaction' THEN 1 ELSE 0 END)
                       AS compactions,
                   SUM(CASE WHEN compacted AND kind = 'replacement' THEN 1 ELSE 0 END)
                       AS replacements"""
        query = f"""
            WITH RECURSIVE {_BRANCH.format(where=where, only_forked=_ONLY_FORKED)}
            SELECT root.thread_id, root.checkpoints,
                   COALESCE(kinds.compactions, root.compactions),
                   COALESCE(kinds.replacements, root.replacements), root.head
            FROM (SELECT thread_id, COUNT(*) AS checkpoints, MAX(checkpoint_id) AS head,
                         {counts}
                  FROM (SELECT thread_id, checkpoint_id, {compacted} AS compacted,
                               {kind} AS kind
                        FROM checkpoints WHERE checkpoint_ns = ''{where}) AS every
                  GROUP BY thread_id) AS root
            LEFT JOIN (
                SELECT thread_id, {counts}
                FROM (SELECT c.thread_id, {compacted} AS compacted, {kind} AS kind
                      FROM branch AS b
                      JOIN checkpoints AS c ON c.thread_id = b.thread_id
                                           AND c.checkpoint_ns = ''
                                           AND c.checkpoint_id = b.checkpoint_id) AS on_branch
                GROUP BY thread_id) AS kinds ON kinds.thread_id = root.thread_id
            ORDER BY root.head DESC"""
        params = () if thread_id is None else (thread_id,) * 3
        rows = self._rows(query, params)
        return [
            ThreadStats(str(row[0]), int(row[1]), int(row[2] or 0), int(row[3] or 0), str(row[4]))
            for row in rows
        ]

    def head(self, thread_id: str, messages_key: str) -> ThreadHead | None:
        """The thread's newest checkpoint in the root namespace, or None if it has none."""
        head = self.saver.get_tuple(head_config(thread_id))
        if head is None:
            return None
        checkpoint = head.checkpoint
        values = checkpoint["channel_values"]
        channels = {*values, *checkpoint["channel_versions"]}
        return ThreadHead(
            checkpoint_id=checkpoint["id"],
            timestamp=str(checkpoint["ts"]),
            messages=values.get(messages_key),
            channels=sorted(c for c in channels if not c.startswith(("__", "branch:"))),
        )

    def compactions(self, thread_id: str) -> list[CompactionRecord]:
        """The compactions and history replacements on the thread's branch, oldest first."""
        marker = "?" if self.dialect == "sqlite" else "%s"
        where = f" AND thread_id = {marker}"
        branch = _BRANCH.format(where=where, only_forked="")
        query = f"WITH RECURSIVE {branch} SELECT checkpoint_id FROM branch"
        on_branch = {str(row[0]) for row in self._rows(query, (thread_id,) * 2)}
        records = []
        for update in self.saver.list(head_config(thread_id), filter={"source": "update"}):
            details = update.metadata.get(METADATA_KEY)
            if not isinstance(details, dict) or "compacted_checkpoint_id" not in details:
                continue  # an ordinary update_state, not a compaction
            if update.checkpoint["id"] not in on_branch:
                continue  # abandoned by a run from an older checkpoint
            records.append(
                CompactionRecord(
                    checkpoint_id=update.checkpoint["id"],
                    compacted_checkpoint_id=str(details["compacted_checkpoint_id"]),
                    timestamp=str(update.checkpoint["ts"]),
                    kind=str(details.get("kind", "compaction")),
                    trigger=details.get("trigger"),
                    tokens_before=details.get("tokens_before"),
                    tokens_after=details.get("tokens_after"),
                    messages_before=details.get("messages_before"),
                    messages_after=details.get("messages_after"),
                    messages_summarized=details.get("messages_summarized"),
                )
            )
        return sorted(records, key=lambda r: r.checkpoint_id)

    def thread_ids(self) -> list[str]:
        """Every thread id in the store."""
        rows = self._rows("SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = ''")
        return [str(row[0]) for row in rows]

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        lock = getattr(self.saver, "lock", None) or contextlib.nullcontext()
        with lock:
            if self.dialect == "sqlite":
                return list(self._conn.execute(query, params).fetchall())
            from psycopg.rows import tuple_row

            with self._conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(query, params)
                return list(cur.fetchall())


@contextlib.contextmanager
def open_store(db: str, *, read_only: bool = True) -> Iterator[CheckpointStore]:
    """Open the checkpoint store ``db`` names, creating nothing.

    Args:
        db: A SQLite file path, or a ``postgresql://`` / ``postgres://`` URL.
        read_only: Open so that nothing can be written (the default).

    Yields:
        The store; its connection closes when the block ends.

    Raises:
        StoreError: The file is missing or unreadable, the database is not a LangGraph
            checkpoint store, or Postgres support is not installed.
        StoreUnavailableError: The Postgres server could not be reached.
    """
    opener = _open_postgres if is_postgres_url(db) else _open_sqlite
    with opener(db, read_only) as store:
        yield store


@contextlib.contextmanager
def _open_sqlite(db: str, read_only: bool) -> Iterator[CheckpointStore]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(db)
    if not path.exists():
        msg = f"{db}: no such file (give the SQLite file your graph's SqliteSaver writes to)."
        raise StoreError(msg)
    if path.is_dir():
        msg = f"{db} is a directory, not a SQLite checkpoint file."
        raise StoreError(msg)
    if not os.access(path, os.R_OK if read_only else os.R_OK | os.W_OK):
        msg = f"{db}: permission denied ({'read' if read_only else 'read and write'} access)."
        raise StoreError(msg)
    conn = _connect_sqlite(path, db, read_only)
    try:
        has_task_path = _check_sqlite_schema(conn, db)
        saver = SqliteSaver(conn)
        # The tables exist: skip setup(), which would run DDL (and set WAL mode).
        saver.is_setup = True
        if not has_task_path:
            saver._has_task_path = False  # what setup() does for a database from before it
        yield CheckpointStore(saver, name=db, dialect="sqlite", connection=conn)
    finally:
        conn.close()


_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _connect_sqlite(path: Path, db: str, read_only: bool) -> sqlite3.Connection:
    """Connect to the file, read-only when asked, and check that SQLite can read it.

    A read-only connection to a database in WAL mode (SqliteSaver's) needs its ``-shm``
    file, which SQLite cannot create in a directory the user may not write to: then the
    file is read as immutable, which is exact as long as no write-ahead log holds changes
    (no ``-wal`` file, or an empty one); otherwise it is refused with the reason.
    """
    # A URI with mode=ro/rw never creates the file; as_uri() escapes '?', '#' and '%'.
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    conn = _connect(uri, db)
    try:
        conn.execute(_TABLES).fetchall()
    except sqlite3.DatabaseError as exc:
        if _error_name(exc) == "SQLITE_NOTADB":
            return conn  # _check_sqlite_schema says what it is
        conn.close()
        if not _needs_a_writable_directory(exc):
            msg = f"cannot read {db}: {exc}."
            raise StoreUnavailableError(msg) from exc
        if not read_only:
            msg = (
                f"{db}: cannot write to it ({exc}): compact writes a new checkpoint, so it "
                "needs write access to the file and to its directory, where SQLite keeps "
                "its -wal and -shm files. Add --dry-run to see the compaction without writing."
            )
            raise StoreError(msg) from exc
        for suffix in ("-wal", "-journal"):
            pending = Path(f"{path}{suffix}")
            if pending.exists() and pending.stat().st_size > 0:
                msg = (
                    f"{db}: cannot read it read-only: {pending.name} holds changes that SQLite "
                    "only reads with write access to the directory (it is read-only). Run as a "
                    "user who may write there, or copy the database with its "
                    f"{suffix} file to a writable directory ({exc})."
                )
                raise StoreError(msg) from exc
        conn = _connect(f"{uri}&immutable=1", db)
    return conn


def _connect(uri: str, db: str) -> sqlite3.Connection:
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        msg = f"{db}: cannot open it as a SQLite database ({exc})."
        raise StoreError(msg) from exc


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def _needs_a_writable_directory(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed for want of creating a file beside the database."""
    name = _error_name(exc)
    return name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN")


def _check_sqlite_schema(conn: sqlite3.Connection, db: str) -> bool:
    """Raise unless ``conn`` holds SqliteSaver's tables; return whether writes has task_path."""
    not_store = f"{db} is not a LangGraph checkpoint store"
    try:
        tables = {row[0] for row in conn.execute(_TABLES)}
    except sqlite3.DatabaseError as exc:
        if _error_name(exc) not in ("SQLITE_NOTADB", ""):
            msg = f"cannot read {db}: {exc}."
            raise StoreUnavailableError(msg) from exc
        msg = f"{not_store}: it is not a SQLite database ({exc})."
        raise StoreError(msg) from exc
    missing = [t for t in ("checkpoints", "writes") if t not in tables]
    if missing:
        msg = (
            f"{not_store}: it has no {' or '.join(repr(t) for t in missing)} table "
            "(a SqliteSaver creates them on first use)."
        )
        raise StoreError(msg)
    try:
        conn.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint, metadata FROM checkpoints LIMIT 0"
        )
        columns = {row[1] for row in conn.execute("PRAGMA table_info(writes)")}
    except sqlite3.DatabaseError as exc:
        msg = f"{not_store}: its 'checkpoints' table has other columns ({exc})."
        raise StoreError(msg) from exc
    return "task_path" in columns


@contextlib.contextmanager
def _open_postgres(db: str, read_only: bool) -> Iterator[CheckpointStore]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:
        msg = (
            "Postgres support is not installed: "
            'pip install "compacting-supervisor[postgres]"'
            f" ({exc})."
        )
        raise StoreError(msg) from exc
    name = display_name(db)
    try:
        # The connection PostgresSaver.from_conn_string would open.
        conn = psycopg.Connection.connect(
            db, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
    except psycopg.ProgrammingError as exc:  # a malformed URL
        msg = f"{name} is not a valid Postgres URL ({' '.join(str(exc).split())})."
        raise StoreError(msg) from exc
    except psycopg.Error as exc:
        msg = f"cannot connect to {name}: {' '.join(str(exc).split())}"
        raise StoreUnavailableError(msg) from exc
    with conn:
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        saver = PostgresSaver(conn)
        _check_postgres_schema(conn, name, len(saver.MIGRATIONS) - 1)
        yield CheckpointStore(saver, name=name, dialect="postgres", connection=conn)


def _check_postgres_schema(conn: Any, name: str, expected_version: int) -> None:
    """Raise unless ``conn``'s search path holds PostgresSaver's tables, fully migrated."""
    tables = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations")
    row = conn.execute(
        "SELECT " + ", ".join(f"to_regclass('{t}') IS NOT NULL AS {t}" for t in tables)
    ).fetchone()
    missing = [t for t in tables if not row[t]]
    if missing:
        msg = (
            f"{name} is not a LangGraph checkpoint store: it has no "
            f"{', '.join(missing)} table{'s' if len(missing) > 1 else ''} "
            "(PostgresSaver.setup() creates them; check the database and search_path)."
        )
        raise StoreError(msg)
    version = conn.execute("SELECT MAX(v) AS v FROM checkpoint_migrations").fetchone()["v"]
    if version is None or version < expected_version:
        msg = (
            f"{name} holds an older LangGraph checkpoint schema (version {version}, this "
            f"langgraph-checkpoint-postgres needs {expected_version}): run "
            "PostgresSaver.setup() once from your application to migrate it."
        )
        raise StoreError(msg)
