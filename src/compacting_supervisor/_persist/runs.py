"""What a run added to a thread, read without loading a checkpoint: the wrapper's counting.

Before a run the wrapper reads the id of the thread's head (`head_before`); after it, the
checkpoints and writes stored since (`RunCheckpoints`). When they are one run's chain that
only appended to the messages channel, the wrapper counts only the new messages instead
of the whole thread. InMemorySaver's storage is read in place; LangGraph's SQLite and
Postgres savers with one indexed query each (sync or async), selecting key columns and the
messages channel's writes, never a checkpoint's blob. Anything else, or any doubt, answers
None: the thread is then counted whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage, convert_to_messages
from langgraph.checkpoint.memory import InMemorySaver

from compacting_supervisor._persist.rewrite import (
    asettle_pipeline,
    asqlite_rows,
    settle_pipeline,
    sql_kind,
)

logger = logging.getLogger(__name__)

__all__ = ["RunCheckpoints", "RunFound", "ahead_before", "appended", "head_before"]


RunFound = tuple[str, int | None] | None
"""The head after a run, and how many messages its writes appended at most (None: unknown)."""

_HEAD_SQL = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = {thread} AND checkpoint_ns = '' "
    "ORDER BY checkpoint_id DESC LIMIT 1"
)
_RUN_SQL = (  # the checkpoints' key columns only (never their blob), and the writes
    "SELECT checkpoint_id, parent_checkpoint_id, NULL AS channel, NULL AS type, "
    "{no_value} AS value FROM checkpoints "
    "WHERE thread_id = {thread} AND checkpoint_ns = '' AND checkpoint_id > {since} "
    "UNION ALL SELECT checkpoint_id, NULL, channel, type, "
    "CASE WHEN channel = {channel} THEN {value} END FROM {writes} "
    "WHERE thread_id = {thread} AND checkpoint_ns = '' AND checkpoint_id >= {since}"
)


def _queries(marker: str, no_value: str, value: str, writes: str) -> dict[str, str]:
    """`_HEAD_SQL` and `_RUN_SQL` for one saver: its named placeholders and tables."""
    names = {name: marker.format(name) for name in ("thread", "since", "channel")}
    return {
        "head": _HEAD_SQL.format(thread=names["thread"]),
        "run": _RUN_SQL.format(no_value=no_value, value=value, writes=writes, **names),
    }


_SQL = {  # each saver's tables and named placeholders: one parameter mapping serves both
    "sqlite": _queries(":{}", "NULL", "value", "writes"),
    "postgres": _queries("%({})s", "NULL::bytea", "blob", "checkpoint_writes"),
}


def _is_async(saver: Any) -> bool:
    return hasattr(saver.conn, "__aenter__")


def _row(row: Any) -> tuple[Any, ...]:
    """A row as a tuple: PostgresSaver's connections return dicts (so columns are named)."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _rows(saver: Any, kind: str, query: str, parameters: dict[str, str]) -> list[Any] | None:
    """The rows of one of `_SQL`'s queries on a sync SQL saver; None when it fails.

    A failure (tables of another shape, a permission, a timeout) is only a shortcut not
    taken: the caller counts the thread whole, and a Postgres pipeline the query aborted
    is resynchronised for the saver's own next query.
    """
    try:
        if kind == "sqlite":
            saver.setup()  # creates its tables on first use (once)
            with saver.lock:
                found = saver.conn.execute(_SQL[kind][query], parameters).fetchall()
        else:
            with saver._cursor() as cur:
                cur.execute(_SQL[kind][query], parameters)
                found = cur.fetchall()
    except Exception:
        logger.debug("Thread %s: %s not read with SQL.", parameters["thread"], query, exc_info=True)
        settle_pipeline(saver)
        return None
    return [_row(row) for row in found]


async def _arows(saver: Any, kind: str, query: str, parameters: dict[str, str]) -> list[Any] | None:
    """Async form of `_rows`."""
    try:
        if kind == "sqlite":
            await saver.setup()  # creates its tables on first use (once)
            found = await asqlite_rows(saver, _SQL[kind][query], parameters)
        else:
            async with saver._cursor() as cur:
                await cur.execute(_SQL[kind][query], parameters)
                found = await cur.fetchall()
    except Exception:
        logger.debug("Thread %s: %s not read with SQL.", parameters["thread"], query, exc_info=True)
        await asettle_pipeline(saver)
        return None
    return [_row(row) for row in found]


def _head(rows: list[Any] | None) -> tuple[str | None] | None:
    return None if rows is None else (rows[0][0] if rows else None,)


def head_before(saver: Any, thread_id: str) -> tuple[str | None] | None:
    """The id of the thread's head (None: no checkpoint) in a 1-tuple; None if not read.

    On InMemorySaver, the checkpoint stored last (ids grow): `RunCheckpoints` checks that
    the run's first checkpoint is its child, so that it is the head the run started from.
    On SqliteSaver and PostgresSaver, one indexed query; any other saver, an async
    connection (`ahead_before`) or a failed query answers None.
    """
    if isinstance(saver, InMemorySaver):
        stored = saver.storage.get(thread_id, {}).get("", {})
        return (next(reversed(stored), None),)
    kind = sql_kind(saver)
    if kind is None or _is_async(saver):
        return None
    return _head(_rows(saver, kind, "head", {"thread": thread_id}))


async def ahead_before(saver: Any, thread_id: str) -> tuple[str | None] | None:
    """Async form of `head_before`."""
    kind = sql_kind(saver)
    if isinstance(saver, InMemorySaver) or kind is None or not _is_async(saver):
        return head_before(saver, thread_id)
    return _head(await _arows(saver, kind, "head", {"thread": thread_id}))


@dataclass(frozen=True)
class RunCheckpoints:
    """After a run, the checkpoints and writes it added after the head it started from.

    `run` answers ``(new head id, most messages appended)`` when the checkpoints after
    ``since`` (the head before the run, `head_before`) are one run's: a single chain of
    parents from the new head back to it (no other checkpoint after it: no fork, no time
    travel), a write stored under each checkpoint between them (an ``update_state``, a
    compaction, a rewrite or another run's end store none) and none under the new head
    (nothing pending: no interrupt). Those writes, and those stored under ``since``, are
    then every write applied to the channel between the two heads; `appended_at_most`
    tells how many messages they can append. Anything else answers None and the caller
    counts the thread whole. Reads only the checkpoints' ids and the writes, never a
    checkpoint: InMemorySaver's storage in place, SQLite and Postgres with one indexed query.
    """

    thread_id: str
    saver: Any
    channel: str
    since: str | None
    """The head before the run (None: the thread had no checkpoint)."""

    @staticmethod
    def supports(saver: Any) -> bool:
        """Whether ``saver`` can tell: InMemorySaver, LangGraph's SQLite and Postgres savers."""
        return isinstance(saver, InMemorySaver) or sql_kind(saver) is not None

    def run(self) -> RunFound:
        """Read what the run added (sync)."""
        saver = self.saver
        if isinstance(saver, InMemorySaver):
            return self._memory(saver)
        kind = sql_kind(saver)
        if kind is None or _is_async(saver):
            return None
        rows = _rows(saver, kind, "run", self._parameters())
        return None if rows is None else self._found(rows)

    async def arun(self) -> RunFound:
        """Read what the run added (async)."""
        saver = self.saver
        kind = sql_kind(saver)
        if isinstance(saver, InMemorySaver) or kind is None or not _is_async(saver):
            return self.run()
        rows = await _arows(saver, kind, "run", self._parameters())
        return None if rows is None else self._found(rows)

    def _parameters(self) -> dict[str, str]:
        return {"thread": self.thread_id, "since": self.since or "", "channel": self.channel}

    def _memory(self, saver: InMemorySaver) -> RunFound:
        stored = saver.storage.get(self.thread_id, {}).get("", {})
        rows: list[tuple[Any, ...]] = []
        for checkpoint_id in reversed(stored):  # insertion order: the newest last
            if checkpoint_id == self.since:
                break
            rows.append((checkpoint_id, stored[checkpoint_id][2], None, None, None))
        else:
            if self.since is not None:
                return None
        writes = saver.writes
        for checkpoint_id in [row[0] for row in rows] + [self.since]:
            for _, channel, (kind, value), _ in writes.get(
                (self.thread_id, "", checkpoint_id), {}
            ).values():
                rows.append((checkpoint_id, None, channel, kind, value))
        return self._found(rows)

    def _found(self, rows: Sequence[Sequence[Any]]) -> RunFound:
        """The head and what was appended, if the rows show one run's chain (see above)."""
        parents: dict[str, str | None] = {}
        written: dict[str, list[tuple[str, Any]]] = {}
        for checkpoint_id, parent, channel, kind, value in rows:
            if channel is None:
                parents[checkpoint_id] = parent
            else:
                written.setdefault(checkpoint_id, []).append(
                    (kind, value) if channel == self.channel else _OTHER
                )
        if not parents:
            return None
        head = max(parents)
        chain = [head]
        while (parent := parents[chain[-1]]) != self.since:
            if parent not in parents:
                return None
            chain.append(parent)
        # No stray checkpoint, at least one step stored (not durability="exit"), a write
        # under each checkpoint between (the run's steps), nothing pending on the head.
        if len(chain) != len(parents) or len(chain) < 2 or head in written:
            return None
        if not all(checkpoint_id in written for checkpoint_id in chain[1:]):
            return None
        typed = [
            write
            for checkpoint_id in [*chain[1:], self.since]
            for write in written.get(checkpoint_id, ())  # type: ignore[arg-type]
            if write is not _OTHER
        ]
        return head, appended_at_most(typed, self.saver.serde)


_OTHER = ("", b"")
"""A write to another channel."""


def appended_at_most(typed: list[tuple[str, Any]], serde: Any) -> int | None:
    """The most messages the serialised writes ``typed`` to a messages channel can append.

    A list of n items appends at most n (``add_messages`` appends, replaces by id or
    removes each), told from the list's msgpack header without deserialising a message.
    Any other value is deserialised: one message (or what converts to one) appends at most
    one; anything else (an ``Overwrite`` ...) answers None, and the count is made whole.
    """
    added = 0
    for kind, value in typed:
        length = _msgpack_list_length(value) if kind == "msgpack" else None
        if length is None:
            one = appended([serde.loads_typed((kind, value))])
            if one is None:
                return None
            length = one
        added += length
    return added


def _msgpack_list_length(data: Any) -> int | None:
    """The length of the msgpack array ``data`` holds, from its header; None if not one."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:  # fixarray
        return first & 0x0F
    if first == 0xDC and len(data) >= 3:  # array 16
        return int.from_bytes(data[1:3], "big")
    if first == 0xDD and len(data) >= 5:  # array 32
        return int.from_bytes(data[1:5], "big")
    return None


def appended(written: list[Any]) -> int | None:
    """The most messages the values ``written`` to a messages channel can append: one each.

    None when a value holds anything but messages (or what converts to one), or removes
    messages (`RemoveMessage`): then the count is made whole. A message replacing another
    by id appends none, so a thread that grew by exactly this many only appended.
    """
    added = 0
    for value in written:
        for item in value if isinstance(value, list) else [value]:
            message = item
            if not isinstance(item, BaseMessage):
                try:
                    converted = convert_to_messages([item])
                except Exception:  # not a message: a reducer's other input (an Overwrite ...)
                    return None
                message = converted[0] if len(converted) == 1 else None
            if message is None or isinstance(message, RemoveMessage):
                return None
            added += 1
    return added
