"""Reading a thread's compaction history back: its totals and its full transcript.

Every compaction this package writes is a checkpoint with ``source="update"`` whose metadata
names the checkpoint it compacted, so both reads need nothing stored elsewhere. They follow
the branch the thread is on: after time travel (a run from an older ``checkpoint_id``) the
abandoned branch's checkpoints stay in the store, so only the compactions among the head's
ancestors (walked through each checkpoint's parent) count.

The parents come from one SQL query on SqliteSaver's or PostgresSaver's table (or from
InMemorySaver's storage), which deserialises nothing; then the compactions are listed with
``filter={"source": "update"}`` and the few checkpoints whose messages are needed read once
each. Any other saver is listed whole, once. Flows, like the rewrite: the saver I/O are ops.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._cut import split_history
from compacting_supervisor._flow import Flow
from compacting_supervisor._messages import METADATA_KEY, summary_meta
from compacting_supervisor._persist.rewrite import (
    ReadHead,
    asettle_pipeline,
    asqlite_rows,
    settle_pipeline,
    sql_kind,
)
from compacting_supervisor._usage import cache_from_record, cache_usage, combined, since_compaction
from compacting_supervisor.archive import Transcript, build_transcript
from compacting_supervisor.results import ThreadStats
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = [
    "Checkpoint",
    "ListCheckpoints",
    "ListParents",
    "RunWrites",
    "branch",
    "thread_stats",
    "transcript",
]


@dataclass(frozen=True)
class Checkpoint:
    """What the reads need of one checkpoint of the thread."""

    checkpoint_id: str
    parent_id: str | None
    timestamp: str
    details: dict[str, Any] | None
    """The compaction's (or history replacement's) metadata, when this checkpoint is one."""
    messages: list[Any] | None
    """Its messages, kept only for the head, the compactions and the checkpoints they
    compacted (None: not kept)."""


_PARENTS = (
    "SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints "
    "WHERE thread_id = {marker} AND checkpoint_ns = ''"
)


@dataclass(frozen=True)
class ListParents:
    """Each checkpoint of the thread with its parent's id, deserialising nothing.

    Answered by one query on the ``checkpoints`` table of SqliteSaver and PostgresSaver
    (sync or async), or from InMemorySaver's storage; None for any other saver (or a
    table of another shape), which the reads then list whole.
    """

    thread_id: str
    saver: BaseCheckpointSaver[Any]

    def run(self) -> dict[str, str | None] | None:
        """Read them (sync)."""
        try:
            return self._memory() if isinstance(self.saver, InMemorySaver) else self._sql()
        except Exception:  # not the table we know: list the checkpoints instead
            logger.debug("Thread %s: parents not read with SQL.", self.thread_id, exc_info=True)
            settle_pipeline(self.saver)
            return None

    async def arun(self) -> dict[str, str | None] | None:
        """Read them (async)."""
        try:
            return self._memory() if isinstance(self.saver, InMemorySaver) else await self._asql()
        except Exception:  # not the table we know: list the checkpoints instead
            logger.debug("Thread %s: parents not read with SQL.", self.thread_id, exc_info=True)
            await asettle_pipeline(self.saver)
            return None

    def _memory(self) -> dict[str, str | None]:
        assert isinstance(self.saver, InMemorySaver)
        stored = self.saver.storage.get(self.thread_id, {}).get("", {})
        return {str(cid): None if p is None else str(p) for cid, (_, _, p) in stored.items()}

    def _sql(self) -> dict[str, str | None] | None:
        saver: Any = self.saver
        kind = sql_kind(saver)
        if kind == "sqlite" and not hasattr(saver.conn, "__aenter__"):
            with saver.lock:
                rows = saver.conn.execute(_PARENTS.format(marker="?"), (self.thread_id,))
                return _parents(rows.fetchall())
        if kind == "postgres" and not hasattr(saver.conn, "__aenter__"):
            with saver._cursor() as cur:
                cur.execute(_PARENTS.format(marker="%s"), (self.thread_id,))
                return _parents(cur.fetchall())
        return None

    async def _asql(self) -> dict[str, str | None] | None:
        saver: Any = self.saver
        kind = sql_kind(saver)
        if kind == "sqlite" and hasattr(saver.conn, "__aenter__"):
            query = _PARENTS.format(marker="?")
            return _parents(await asqlite_rows(saver, query, (self.thread_id,)))
        if kind == "postgres" and hasattr(saver.conn, "__aenter__"):
            async with saver._cursor() as cur:
                await cur.execute(_PARENTS.format(marker="%s"), (self.thread_id,))
                return _parents(await cur.fetchall())
        return None


def _parents(rows: Iterable[Any]) -> dict[str, str | None]:
    def pair(row: Any) -> tuple[Any, Any]:
        return (row["checkpoint_id"], row["parent_checkpoint_id"]) if isinstance(row, dict) else row

    return {str(cid): None if parent is None else str(parent) for cid, parent in map(pair, rows)}


@dataclass(frozen=True)
class ListCheckpoints:
    """List the thread's checkpoints (root namespace) once, keeping only what the reads use.

    Savers list newest first, so a compaction comes before the checkpoint it compacted:
    that one's messages are kept as it passes, and every other checkpoint's are dropped.
    With ``updates_only``, only the ``source="update"`` ones (compactions among them); with
    ``every_message``, every checkpoint keeps its messages (compactions made inside a run).
    """

    thread_id: str
    saver: BaseCheckpointSaver[Any]
    messages_key: str
    updates_only: bool = False
    every_message: bool = False

    def run(self) -> list[Checkpoint]:
        """List them (sync)."""
        listed = self.saver.list(head_config(self.thread_id), filter=self._filter())
        return _keep(listed, self.messages_key, every_message=self.every_message)

    async def arun(self) -> list[Checkpoint]:
        """List them (async)."""
        cfg = head_config(self.thread_id)
        listed = [t async for t in self.saver.alist(cfg, filter=self._filter())]
        return _keep(listed, self.messages_key, every_message=self.every_message)

    def _filter(self) -> dict[str, Any] | None:
        return {"source": "update"} if self.updates_only else None


def _read_thread(
    thread_id: str, saver: BaseCheckpointSaver[Any], messages_key: str
) -> Flow[list[Checkpoint]]:
    """Every checkpoint of the thread with its parent, compactions with their details."""
    parents: dict[str, str | None] | None = yield ListParents(thread_id, saver)
    if parents is None:
        listed: list[Checkpoint] = yield ListCheckpoints(thread_id, saver, messages_key)
        return listed
    updates: list[Checkpoint] = yield ListCheckpoints(
        thread_id, saver, messages_key, updates_only=True
    )
    known = {c.checkpoint_id for c in updates}
    others = [
        Checkpoint(checkpoint_id, parent, "", None, None)
        for checkpoint_id, parent in parents.items()
        if checkpoint_id not in known
    ]
    return [*updates, *others]


def _keep(
    listed: Iterable[CheckpointTuple], messages_key: str, *, every_message: bool = False
) -> list[Checkpoint]:
    kept: list[Checkpoint] = []
    wanted: set[str] = set()
    for position, item in enumerate(listed):
        checkpoint_id = item.checkpoint["id"]
        details = item.metadata.get(METADATA_KEY)
        if (
            item.metadata.get("source") != "update"
            or not isinstance(details, dict)
            or "compacted_checkpoint_id" not in details
        ):
            details = None  # an ordinary step or update_state, not a compaction
        else:
            wanted.add(str(details["compacted_checkpoint_id"]))
        keep = every_message or position == 0 or details is not None or checkpoint_id in wanted
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        kept.append(
            Checkpoint(
                checkpoint_id=checkpoint_id,
                parent_id=str(parent) if parent is not None else None,
                timestamp=str(item.checkpoint["ts"]),
                details=details,
                messages=_messages_in(item, messages_key) if keep else None,
            )
        )
    return kept


def _messages_in(checkpoint: CheckpointTuple | None, key: str) -> list[Any]:
    return list((checkpoint.checkpoint["channel_values"] if checkpoint else {}).get(key) or [])


def branch(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """The head (the newest checkpoint) and its ancestors, oldest first.

    Args:
        checkpoints: Every checkpoint of the thread, in any order.

    Returns:
        The checkpoints of the branch the thread is on; others (abandoned by time travel)
        are left out.
    """
    by_id = {c.checkpoint_id: c for c in checkpoints}
    chain: list[Checkpoint] = []
    current = by_id.get(max(by_id)) if by_id else None
    while current is not None and len(chain) < len(by_id):  # the bound guards a cycle
        chain.append(current)
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return chain[::-1]


def _messages(
    checkpoint: Checkpoint | None,
    thread_id: str,
    checkpoint_id: str | None,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
) -> Flow[list[Any]]:
    """The messages of a checkpoint, read again only when the listing did not keep them.

    That happens with a saver that does not list newest first, or a checkpoint that is gone.
    """
    if checkpoint is not None and checkpoint.messages is not None:
        return checkpoint.messages
    if checkpoint_id is None:
        return []
    read: CheckpointTuple | None = yield ReadHead(thread_id, saver, checkpoint_id)
    return _messages_in(read, messages_key)


def thread_stats(
    thread_id: str,
    *,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
    token_counter: TokenCounter,
) -> Flow[ThreadStats]:
    """`HistoryManager.thread_stats`: the thread's size now and its branch's compactions.

    Each compaction's metadata holds the prompt cache of the session it closed; the
    head's messages give the current session's.
    """
    chain = branch((yield from _read_thread(thread_id, saver, messages_key)))
    compactions = [
        (c.timestamp, c.details)
        for c in chain
        if c.details is not None and c.details.get("kind", "compaction") == "compaction"
    ]
    head = chain[-1] if chain else None
    head_id = head.checkpoint_id if head else None
    messages = yield from _messages(head, thread_id, head_id, saver, messages_key)
    rewritten = [c.messages or [] for c in chain if c.details is not None]
    if _compacted_in_runs(messages, rewritten, len(compactions)):
        found = yield from _in_run(thread_id, saver, messages_key)
        compactions = sorted(
            [*compactions, *_in_run_details(found, token_counter)], key=lambda c: c[0]
        )
    sessions = (
        *(cache_from_record(d.get("agent_cache")) for _, d in compactions),
        cache_usage(since_compaction(messages)),
    )

    def total(key: str) -> int:
        return sum(int(d.get(key) or 0) for _, d in compactions)

    return ThreadStats(
        thread_id=thread_id,
        messages=len(messages),
        tokens=token_counter.count(messages),
        compactions=len(compactions),
        tokens_saved=total("tokens_before") - total("tokens_after"),
        messages_summarized=total("messages_summarized"),
        summarizer_tokens=total("summarizer_input_tokens") + total("summarizer_output_tokens"),
        last_compaction_at=max((ts for ts, _ in compactions), default=None),
        cache=combined(sessions),
        cache_by_session=sessions,
    )


def transcript(
    thread_id: str, *, saver: BaseCheckpointSaver[Any], messages_key: str
) -> Flow[Transcript]:
    """`HistoryManager.transcript`: every session the thread's branch held, and the live part."""
    listed = yield from _read_thread(thread_id, saver, messages_key)
    by_id = {c.checkpoint_id: c for c in listed}
    chain = branch(listed)
    compactions = []
    for update in chain:
        if update.details is None:
            continue
        parent_id = str(update.details["compacted_checkpoint_id"])
        before = yield from _messages(
            by_id.get(parent_id), thread_id, parent_id, saver, messages_key
        )
        after = yield from _messages(update, thread_id, update.checkpoint_id, saver, messages_key)
        kind = str(update.details.get("kind", "compaction"))
        compactions.append((update.checkpoint_id, parent_id, update.timestamp, before, after, kind))
    head = chain[-1] if chain else None
    head_id = head.checkpoint_id if head else None
    live = yield from _messages(head, thread_id, head_id, saver, messages_key)
    rewrites = sum(1 for c in compactions if c[5] == "compaction")
    if _compacted_in_runs(live, [c[4] for c in compactions], rewrites):
        found = yield from _in_run(thread_id, saver, messages_key)
        compactions = sorted([*compactions, *found], key=lambda c: c[0])
    return build_transcript(thread_id, compactions, live)


def _compacted_in_runs(live: list[Any], rewritten: list[list[Any]], rewrites: int) -> bool:
    """Whether compactions made inside runs (no metadata marks them) may be in the branch.

    Yes when the live summary is none a rewrite wrote, or when it counts more compactions
    (its running total) than the rewrites found: a rewrite followed one made in a run.
    """
    summary = split_history(live).summary
    if summary is None:
        return False
    if str(summary.id) not in {_summary_id(after) for after in rewritten}:
        return True
    return int(summary_meta(summary).get("compactions") or 0) > rewrites


def _in_run(
    thread_id: str, saver: BaseCheckpointSaver[Any], messages_key: str
) -> Flow[list[tuple[str, str, str, list[Any], list[Any], str]]]:
    """The compactions made inside runs (a node, a hook, a middleware) on the branch.

    A step of the run wrote the new history, with no metadata saying so: the steps whose
    history starts with a new summary are those compactions, and only every checkpoint's
    messages tell which.
    """
    every: list[Checkpoint] = yield ListCheckpoints(
        thread_id, saver, messages_key, every_message=True
    )
    found = []
    for parent, child in itertools.pairwise(branch(every)):
        before, after = parent.messages or [], child.messages or []
        summary = _summary_id(after)
        if child.details is None and summary not in (None, _summary_id(before)):
            ids = (child.checkpoint_id, parent.checkpoint_id, child.timestamp)
            found.append((*ids, before, after, "compaction"))
    return found


def _in_run_details(
    found: list[tuple[str, str, str, list[Any], list[Any], str]], counter: TokenCounter
) -> list[tuple[str, dict[str, Any]]]:
    """What `thread_stats` adds up of compactions made inside runs, from their messages.

    Such a step records no metadata: its sizes are counted from the history before and after
    it, and what it summarised is every message before it that is not after it (the
    summariser's tokens and the prompt cache are not known).
    """
    details = []
    for _, _, timestamp, before, after, _ in found:
        kept = {m.id for m in after} | {_summary_id(before)}  # an earlier summary is folded
        summarised = sum(1 for m in before if m.id not in kept)
        details.append(
            (
                timestamp,
                {
                    "tokens_before": counter.count(before),
                    "tokens_after": counter.count(after),
                    "messages_summarized": summarised,
                },
            )
        )
    return details


def _summary_id(messages: list[Any]) -> str | None:
    """The id of the running summary a history starts with (after its system messages)."""
    summary = split_history(messages).summary
    return None if summary is None else str(summary.id)


# ------------------------------------------------------- what runs wrote since a checkpoint

_MAX_LINKS = 256
"""More checkpoints than this since the one counted: count the thread whole instead."""
_RUN_SOURCES = frozenset({"input", "loop"})


@dataclass(frozen=True)
class RunWrites:
    """What was written to a channel since a checkpoint, if only runs wrote since then.

    Answers ``(head id, written values)`` when every checkpoint from ``since`` to the
    thread's head is a run's own (``source`` "input" or "loop", one step after its parent),
    so that the head's channel holds ``since``'s value with exactly these writes applied
    (the writes stored under ``since`` and each later checkpoint but the head, in that
    order of checkpoints). Anything else (an ``update_state``, a compaction, time travel,
    ``durability="exit"``, another saver) answers None, and the caller reads the thread
    whole. Reads InMemorySaver's storage in place, deserialising only the checkpoints'
    metadata and the written values.
    """

    thread_id: str
    saver: BaseCheckpointSaver[Any]
    since: str
    channel: str

    @staticmethod
    def supports(saver: BaseCheckpointSaver[Any]) -> bool:
        """Whether ``saver`` can tell them cheaply: InMemorySaver.

        SqliteSaver could, but its rows hold the checkpoint (every message) before the
        metadata, so reading a checkpoint's ``source`` reads the whole thread: comparing
        the messages themselves costs less there.
        """
        return isinstance(saver, InMemorySaver)

    def run(self) -> tuple[str, list[Any]] | None:
        """Read them (sync)."""
        try:
            if isinstance(self.saver, InMemorySaver):
                return self._memory(self.saver)
        except Exception:  # not the storage we know: the caller reads the thread whole
            logger.debug("Thread %s: writes not read.", self.thread_id, exc_info=True)
        return None

    async def arun(self) -> tuple[str, list[Any]] | None:
        """Read them (async): InMemorySaver's storage is read in place."""
        return self.run()

    def _memory(self, saver: InMemorySaver) -> tuple[str, list[Any]] | None:
        stored = saver.storage.get(self.thread_id, {}).get("", {})
        newer: list[str] = []
        for checkpoint_id in reversed(stored):  # insertion order: the newest last
            newer.append(checkpoint_id)
            if checkpoint_id == self.since:
                break
            if len(newer) > _MAX_LINKS:
                return None
        else:
            return None
        parents = {}
        for checkpoint_id in newer:
            _, metadata, parent = stored[checkpoint_id]
            meta = saver.serde.loads_typed(metadata)
            parents[checkpoint_id] = (parent, meta.get("source"), meta.get("step"))
        chain = self._chain(parents)
        if chain is None:
            return None
        values = []
        for checkpoint_id in chain[:-1]:
            written = saver.writes.get((self.thread_id, "", checkpoint_id), {})
            for _, channel, value, _ in written.values():
                if channel == self.channel:
                    values.append(saver.serde.loads_typed(value))
        return chain[-1], values

    def _chain(self, parents: dict[str, tuple[Any, Any, Any]]) -> list[str] | None:
        """``since`` then each run checkpoint after it, up to the head; None if not a chain."""
        if self.since not in parents:
            return None
        head = max(parents)
        chain = [head]
        while chain[-1] != self.since:
            parent, source, step = parents[chain[-1]]
            parent = None if parent is None else str(parent)
            if parent not in parents or source not in _RUN_SOURCES:
                return None
            if not isinstance(step, int) or parents[parent][2] != step - 1:
                return None
            chain.append(parent)
        return chain[::-1]
