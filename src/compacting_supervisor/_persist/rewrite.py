"""Persisting by checkpoint rewrite: a new head whose only change is the messages channel.

What the wrapper, ``compact()``, `HistoryManager` and the CLI do: read the thread, run the
core (`compacting_supervisor._compaction.Compactor`), and write the outcome with
``saver.put`` following `compacting_supervisor._checkpoint` (the head re-read just before, so
a run that finished meanwhile is never hidden). Each operation is a flow; its saver I/O are
the ops below, performed by a sync or an async driver.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver

from compacting_supervisor._checkpoint import (
    build_compacted_checkpoint,
    check_head,
    head_config,
    thread_config,
)
from compacting_supervisor._compaction import (
    Compactor,
    StoreResults,
    compaction_result,
)
from compacting_supervisor._flow import Flow, Op
from compacting_supervisor._messages import check_messages
from compacting_supervisor._usage import cache_record
from compacting_supervisor.errors import CheckpointerError, CompactionError, ThreadBusyError
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult

logger = logging.getLogger(__name__)

__all__ = [
    "HeadMark",
    "Put",
    "ReadHead",
    "ReadState",
    "ThreadState",
    "asettle_pipeline",
    "asqlite_rows",
    "compact_thread",
    "offload_answered",
    "replace_history",
    "settle_pipeline",
    "sql_kind",
    "waiting_nodes",
]


@dataclass(frozen=True)
class ThreadState:
    """A thread as a compaction reads it."""

    messages: list[BaseMessage]
    checkpoint_id: str | None
    busy: str | None
    """Why the thread is not idle (tasks waiting, an interrupt, pending writes), or None."""
    head: CheckpointTuple | None = None
    """The head checkpoint the messages were read from, when read from the saver: the
    compaction is then built on it, and only its id is checked again before the write."""


@dataclass(frozen=True)
class ReadState:
    """Read a thread's messages and whether it is idle: through the graph when there is one."""

    thread_id: str
    graph: Any
    saver: BaseCheckpointSaver[Any]
    messages_key: str

    def run(self) -> ThreadState:
        """Read it (sync)."""
        cfg = head_config(self.thread_id)
        if self._own_saver():
            state = self._from_head(self.saver.get_tuple(cfg))
            if self.graph is None or self._complete(state):
                return state
        return self._from_snapshot(self.graph.get_state(cfg))

    async def arun(self) -> ThreadState:
        """Read it (async)."""
        cfg = head_config(self.thread_id)
        if self._own_saver():
            state = self._from_head(await self.saver.aget_tuple(cfg))
            if self.graph is None or self._complete(state):
                return state
        return self._from_snapshot(await self.graph.aget_state(cfg))

    def _own_saver(self) -> bool:
        """Whether the thread is read from ``saver``: there is no graph, or it is the graph's."""
        return self.graph is None or getattr(self.graph, "checkpointer", None) is self.saver

    def _complete(self, state: ThreadState) -> bool:
        """Whether the head alone tells the thread's messages (one read, not two).

        It does when the head holds the messages channel's value and no pending write
        (which the graph's state would apply, or which marks an interrupt): the graph's
        ``get_state`` would then read the same value from the same checkpoint. A channel
        that keeps no value in the head (a beta DeltaChannel) is read through the graph.
        """
        head = state.head
        return head is None or (
            isinstance(head.checkpoint["channel_values"].get(self.messages_key), list)
            and not head.pending_writes
        )

    def _from_snapshot(self, snapshot: Any) -> ThreadState:
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        busy = None
        if snapshot.next:
            busy = f"tasks waiting to run: {', '.join(snapshot.next)}"
        if getattr(snapshot, "interrupts", ()):
            busy = "interrupted"
        checkpoint_id = (snapshot.config.get("configurable") or {}).get("checkpoint_id")
        return ThreadState(list(values.get(self.messages_key) or []), checkpoint_id, busy)

    def _from_head(self, head: CheckpointTuple | None) -> ThreadState:
        if head is None:
            return ThreadState([], None, None)
        values = head.checkpoint["channel_values"]
        busy = None
        if waiting := waiting_nodes(head.checkpoint):
            busy = f"tasks waiting to run: {', '.join(waiting)}"
        if head.pending_writes:
            busy = "pending writes"
        messages = list(values.get(self.messages_key) or [])
        return ThreadState(messages, head.checkpoint["id"], busy, head)


_TASKS = "__pregel_tasks"


def waiting_nodes(checkpoint: Checkpoint) -> list[str]:
    """The nodes a checkpoint still has to run (its ``next``), told without the graph.

    LangGraph's own test (``prepare_next_tasks``): a node runs next when one of its trigger
    channels holds a value whose version is newer than the one the node last saw
    (``versions_seen``). A node's triggers are named for it: ``branch:to:<node>``,
    ``join:<sources>:<node>``, ``__start__`` for the input; queued ``Send`` s wait in
    ``__pregel_tasks``. A thread paused by ``interrupt_before`` (or stopped mid-run) has
    some; a finished one has none.

    Args:
        checkpoint: The thread's head checkpoint.

    Returns:
        The waiting nodes' names, sorted; empty when the thread is idle.
    """
    values = checkpoint["channel_values"]
    versions = checkpoint["channel_versions"]
    seen = checkpoint["versions_seen"]
    waiting = {str(getattr(send, "node", send)) for send in values.get(_TASKS) or ()}
    for channel, value in values.items():  # the channels holding a value
        node = _triggered_node(channel)
        if (
            node is not None
            and _newer(versions.get(channel), (seen.get(node) or {}).get(channel))
            and (not channel.startswith("join:") or _join_complete(channel, value))
        ):
            waiting.add(node)
    return sorted(waiting)


def _join_complete(channel: str, value: Any) -> bool:
    """Whether a join's barrier (``join:<a+b>:<node>``) holds every source, so it fires.

    A join keeps its channel after firing, emptied (and its version bumped by emptying it),
    so its version alone does not say the node waits. The barrier's checkpoint is the set
    of sources seen, or ``(seen, finished)`` for a deferred node. A shape not known here
    counts as waiting: the compaction then waits rather than rewrite a busy thread.
    """
    sources = set(channel.removeprefix("join:").rsplit(":", 1)[0].split("+"))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bool):
        seen, finished = value
        return finished and isinstance(seen, set | frozenset) and sources <= set(seen)
    if isinstance(value, set | frozenset):
        return sources <= set(value)
    return True


def _triggered_node(channel: str) -> str | None:
    if channel == "__start__":
        return channel
    if channel.startswith("branch:to:"):
        return channel.removeprefix("branch:to:")
    if channel.startswith("join:"):
        return channel.rsplit(":", 1)[-1]
    return None


def _newer(version: Any, seen: Any) -> bool:
    if version is None:
        return False
    if seen is None:
        return True
    try:
        return bool(version > seen)
    except TypeError:  # versions of another type than the seen ones: count it as new
        return True


@dataclass(frozen=True)
class ReadHead:
    """Read a thread's head checkpoint, or the checkpoint ``checkpoint_id`` names."""

    thread_id: str
    saver: BaseCheckpointSaver[Any]
    checkpoint_id: str | None = None

    def run(self) -> CheckpointTuple | None:
        """Read it (sync)."""
        return self.saver.get_tuple(self._config())

    async def arun(self) -> CheckpointTuple | None:
        """Read it (async)."""
        return await self.saver.aget_tuple(self._config())

    def _config(self) -> RunnableConfig:
        config = head_config(self.thread_id)
        if self.checkpoint_id is not None:
            config["configurable"]["checkpoint_id"] = self.checkpoint_id
        return config


_SQL_SAVERS = {
    "langgraph.checkpoint.sqlite.SqliteSaver": "sqlite",
    "langgraph.checkpoint.sqlite.aio.AsyncSqliteSaver": "sqlite",
    "langgraph.checkpoint.postgres.PostgresSaver": "postgres",
    "langgraph.checkpoint.postgres.aio.AsyncPostgresSaver": "postgres",
}

_HEAD_MARK = (
    "SELECT c.checkpoint_id, EXISTS (SELECT 1 FROM {writes} w WHERE w.thread_id = c.thread_id "
    "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) "
    "FROM checkpoints c WHERE c.thread_id = {marker} AND c.checkpoint_ns = '' "
    "ORDER BY c.checkpoint_id DESC LIMIT 1"
)


def sql_kind(saver: BaseCheckpointSaver[Any]) -> str | None:
    """``"sqlite"`` or ``"postgres"`` for LangGraph's own SQL savers (or subclasses), else None."""
    for cls in type(saver).__mro__:
        if kind := _SQL_SAVERS.get(f"{cls.__module__}.{cls.__qualname__}"):
            return kind
    return None


async def asqlite_rows(
    saver: Any, query: str, parameters: Sequence[Any] | Mapping[str, Any]
) -> list[Any]:
    """The rows of ``query`` on an AsyncSqliteSaver's connection, under the saver's lock.

    One trip to aiosqlite's worker thread (``execute_fetchall``), where a cursor takes
    three (execute, fetch, close): each trip is a hand-over between threads, ~40 us.
    """
    conn = saver.conn
    async with saver.lock:
        if hasattr(conn, "execute_fetchall"):
            return list(await conn.execute_fetchall(query, parameters))
        async with conn.execute(query, parameters) as cur:
            return list(await cur.fetchall())


def settle_pipeline(saver: Any) -> None:
    """After a failed query of ours, resynchronise a PostgresSaver's pipeline, if it has one.

    A failed query aborts a pipeline (``PostgresSaver(conn, pipe=conn.pipeline())``), and the
    saver's next query would fail with it: the user's run, though ours is only a shortcut.
    The sync is made under the saver's lock, as the saver's own are. Another thread's
    writes queued in the same pipeline between our failed query and the sync fail with it,
    as they would after any failed query of the saver's own.
    """
    pipe = getattr(saver, "pipe", None)
    if pipe is not None:
        with saver.lock, contextlib.suppress(Exception):
            pipe.sync()


async def asettle_pipeline(saver: Any) -> None:
    """Async form of `settle_pipeline`."""
    pipe = getattr(saver, "pipe", None)
    if pipe is not None:
        async with saver.lock:
            with contextlib.suppress(Exception):
                await pipe.sync()


HeadMarkValue = tuple[str | None, bool]
"""The head's id (None: no checkpoint) and whether it has pending writes."""


@dataclass(frozen=True)
class HeadMark:
    """The head's id and whether it has pending writes, deserialising nothing.

    One query on SqliteSaver's or PostgresSaver's tables (sync or async), or a look at
    InMemorySaver's storage; None for any other saver (or tables of another shape), whose
    head is then read whole (`ReadHead`).
    """

    thread_id: str
    saver: BaseCheckpointSaver[Any]

    def run(self) -> HeadMarkValue | None:
        """Read it (sync)."""
        saver: Any = self.saver
        try:
            if isinstance(saver, InMemorySaver):
                return self._memory(saver)
            kind = sql_kind(saver)
            if kind == "sqlite" and not hasattr(saver.conn, "__aenter__"):
                saver.setup()  # creates its tables on first use (once)
                with saver.lock:
                    query = _HEAD_MARK.format(marker="?", writes="writes")
                    cur = saver.conn.execute(query, (self.thread_id,))
                    return _mark(cur.fetchone())
            if kind == "postgres" and not hasattr(saver.conn, "__aenter__"):
                with saver._cursor() as cur:
                    query = _HEAD_MARK.format(marker="%s", writes="checkpoint_writes")
                    cur.execute(query, (self.thread_id,))
                    return _mark(cur.fetchone())
        except Exception:  # not the tables we know: the head is read whole instead
            logger.debug("Thread %s: head not marked with SQL.", self.thread_id, exc_info=True)
            settle_pipeline(saver)
        return None

    async def arun(self) -> HeadMarkValue | None:
        """Read it (async)."""
        saver: Any = self.saver
        try:
            if isinstance(saver, InMemorySaver):
                return self._memory(saver)
            kind = sql_kind(saver)
            if kind == "sqlite" and hasattr(saver.conn, "__aenter__"):
                await saver.setup()  # creates its tables on first use (once)
                query = _HEAD_MARK.format(marker="?", writes="writes")
                rows = await asqlite_rows(saver, query, (self.thread_id,))
                return _mark(rows[0] if rows else None)
            if kind == "postgres" and hasattr(saver.conn, "__aenter__"):
                async with saver._cursor() as cur:
                    query = _HEAD_MARK.format(marker="%s", writes="checkpoint_writes")
                    await cur.execute(query, (self.thread_id,))
                    return _mark(await cur.fetchone())
        except Exception:  # not the tables we know: the head is read whole instead
            logger.debug("Thread %s: head not marked with SQL.", self.thread_id, exc_info=True)
            await asettle_pipeline(saver)
        return None

    def _memory(self, saver: InMemorySaver) -> HeadMarkValue:
        stored = saver.storage.get(self.thread_id, {}).get("", {})
        if not stored:
            return None, False
        head_id = max(stored)
        return str(head_id), bool(saver.writes.get((self.thread_id, "", head_id)))


def _mark(row: Any) -> HeadMarkValue:
    if row is None:
        return None, False
    if isinstance(row, dict):  # a Postgres dict row
        row = tuple(row.values())
    return str(row[0]), bool(row[1])


@dataclass(frozen=True)
class Put:
    """Write a checkpoint with ``saver.put``."""

    saver: BaseCheckpointSaver[Any]
    config: RunnableConfig
    checkpoint: Any
    metadata: Any
    new_versions: dict[str, Any]

    def run(self) -> RunnableConfig:
        """Write it (sync)."""
        return self.saver.put(self.config, self.checkpoint, self.metadata, self.new_versions)

    async def arun(self) -> RunnableConfig:
        """Write it (async)."""
        return await self.saver.aput(self.config, self.checkpoint, self.metadata, self.new_versions)


def _saver_io(op: Op, thread_id: str) -> Flow[Any]:
    """Perform ``op`` (a `ReadState`, `ReadHead`, `HeadMark` or `Put`), wrapping a saver's failure.

    The saver's exception becomes a `CheckpointerError` with it chained, so ``compact()``
    raises only `CompactionError` types.
    """
    try:
        return (yield op)
    except CompactionError:
        raise
    except Exception as exc:
        writing = isinstance(op, Put)
        msg = (
            f"Thread {thread_id!r}: the checkpointer failed to "
            f"{'write the compacted checkpoint' if writing else 'read the thread'} "
            f"({type(exc).__name__}: {exc}); the history is unchanged."
        )
        raise CheckpointerError(
            msg, thread_id=thread_id, operation="write" if writing else "read"
        ) from exc


def _at(thread_id: str, checkpoint_id: str | None) -> RunnableConfig:
    return {
        "configurable": {**head_config(thread_id)["configurable"], "checkpoint_id": checkpoint_id}
    }


def write_history(
    config: RunnableConfig,
    messages: list[BaseMessage],
    details: dict[str, Any],
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
    *,
    read: CheckpointTuple | None = None,
) -> Flow[RunnableConfig]:
    """Write ``messages`` as a new head, if the head is still the one ``config`` names.

    ``read`` is the head as the flow read it before (the one ``config`` names, if it names
    one): when the saver can tell its head's id and pending writes without deserialising
    it (`HeadMark`) and they are unchanged, the new checkpoint is built on ``read``;
    otherwise the head is read again whole.
    """
    thread_id = str(config["configurable"]["thread_id"])
    expected = (config.get("configurable") or {}).get("checkpoint_id")
    head: CheckpointTuple | None = None
    if read is not None and expected in (None, read.checkpoint["id"]):
        mark = yield from _saver_io(HeadMark(thread_id, saver), thread_id)
        if mark == (read.checkpoint["id"], False):
            head = read
    if head is None:
        head = yield from _saver_io(ReadHead(thread_id, saver), thread_id)
    head = check_head(head, thread_id=thread_id, expected_checkpoint_id=expected)
    checkpoint, metadata, versions = build_compacted_checkpoint(
        head,
        saver,
        messages_key=messages_key,
        messages=messages,
        details={"messages_before": None, "messages_after": len(messages), **details},
    )
    put = Put(saver, head.config, checkpoint, metadata, versions)
    new_config: RunnableConfig = yield from _saver_io(put, thread_id)
    logger.debug("Thread %s: wrote checkpoint %s.", thread_id, checkpoint["id"])
    return new_config


def replace_history(
    config: RunnableConfig,
    messages: Sequence[BaseMessage],
    *,
    graph: Any,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
) -> Flow[RunnableConfig]:
    """`HistoryManager.replace_thread_history`: check the input and the thread, then write."""
    config = thread_config(config)
    thread_id = str(config["configurable"]["thread_id"])
    if (
        not isinstance(messages, list | tuple)
        or not messages
        or not all(isinstance(m, BaseMessage) for m in messages)
    ):
        msg = (
            "`messages` must be a non-empty list of LangChain messages (HumanMessage, "
            f"AIMessage ...), got {type(messages).__name__}; convert tuples or dicts with "
            "langchain_core.messages.convert_to_messages first."
        )
        raise ValueError(msg)
    head: CheckpointTuple | None = None
    if graph is not None:
        read = ReadState(thread_id, graph, saver, messages_key)
        state: ThreadState = yield from _saver_io(read, thread_id)
        if state.busy:
            msg = f"Thread {thread_id!r} is not idle ({state.busy}); nothing was written."
            raise ThreadBusyError(msg, thread_id=thread_id, reason=state.busy)
        head = state.head  # the write builds on it when the head has not moved since
    details = {"kind": "replacement"}
    return (
        yield from write_history(config, list(messages), details, saver, messages_key, read=head)
    )


def offload_answered(
    thread_id: str,
    policy: OffloadToolResults,
    *,
    graph: Any,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
) -> Flow[list[BaseMessage] | None]:
    """`HistoryManager.offload_answered`: store answered results, then rewrite the head."""
    read = ReadState(thread_id, graph, saver, messages_key)
    state: ThreadState = yield from _saver_io(read, thread_id)
    if state.busy:
        logger.debug("Thread %s is not idle (%s): tool results stay.", thread_id, state.busy)
        return None
    check_messages(state.messages, messages_key)
    plan = policy.plan_answered(state.messages, thread_id=thread_id)
    if not plan.offloaded:
        return None
    yield StoreResults(policy, plan.offloaded)
    logger.debug(
        "Thread %s: offloading %d answered tool result(s), %d characters.",
        thread_id,
        len(plan.offloaded),
        plan.chars_offloaded,
    )
    details = {"kind": "replacement", "offloaded_results": len(plan.offloaded)}
    config = _at(thread_id, state.checkpoint_id)
    yield from write_history(config, plan.messages, details, saver, messages_key, read=state.head)
    return plan.messages


def compact_thread(
    core: Compactor,
    thread_id: str,
    keep: KeepPolicy | float,
    *,
    graph: Any,
    saver: BaseCheckpointSaver[Any],
    trigger: str,
    max_summary_tokens: int | None,
    trace: RunnableConfig | None = None,
) -> Flow[CompactionResult | None]:
    """`HistoryManager.compact_thread`: read the thread, run the core, rewrite the head."""
    started = time.perf_counter()
    read = ReadState(thread_id, graph, saver, core.messages_key)
    state: ThreadState = yield from _saver_io(read, thread_id)
    if state.busy:
        msg = f"Thread {thread_id!r} is not idle ({state.busy}); compaction waits for a later turn."
        raise ThreadBusyError(msg, thread_id=thread_id, reason=state.busy)
    compaction = yield from core.compact(
        state.messages,
        keep,
        max_summary_tokens=max_summary_tokens,
        thread_id=thread_id,
        require_reduction=True,
        trace=trace,
    )
    if compaction is None:
        return None
    tokens_before, tokens_after = compaction.tokens_before, compaction.tokens_after
    details = {
        "kind": "compaction",
        "trigger": trigger,
        "messages_before": len(state.messages),
        "messages_after": len(compaction.messages),
        "messages_summarized": len(compaction.summarized),
        "tokens_before": tokens_before,
        "tokens_after": tokens_after,
        "reduction": round(1 - tokens_after / tokens_before, 4),
        "summarizer_calls": compaction.summarizer_calls,
        "summarizer_input_tokens": compaction.summarizer_input_tokens,
        "summarizer_output_tokens": compaction.summarizer_output_tokens,
        "summarizer_cache_read": compaction.summarizer_cache_read,
        "summarizer_cache_creation": compaction.summarizer_cache_creation,
        "agent_cache": cache_record(compaction.agent_cache),
        "duration": round(time.perf_counter() - started, 4),
    }
    config = _at(thread_id, state.checkpoint_id)
    new_config = yield from write_history(
        config, compaction.messages, details, saver, core.messages_key, read=state.head
    )
    return compaction_result(
        compaction,
        thread_id=thread_id,
        trigger=trigger,
        started=started,
        messages_before=len(state.messages),
        previous_checkpoint_id=state.checkpoint_id,
        checkpoint_id=new_config["configurable"]["checkpoint_id"],
    )
