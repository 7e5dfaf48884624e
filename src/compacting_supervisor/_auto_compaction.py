"""What the wrapper does after each run: offload, ask the trigger, compact, record.

`AutoCompaction` is the base of `CompactingSupervisor` that holds this step. After a run it
reads the thread's messages (from the run's output when it carries them), moves answered
tool results to the ``offload`` policy's store, asks the trigger, minds the circuit breaker
(`compacting_supervisor._breaker`), and asks the history manager to compact. Whatever goes
wrong is recorded as the thread's last result, never raised: the user's run has already
succeeded. It is written once, as a flow (`compacting_supervisor._flow`): reading what runs
wrote, the state, offloading and compacting are its ops, run by the sync or async driver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._decisions import Compact, CompactionDecisions
from compacting_supervisor._events import output_messages
from compacting_supervisor._flow import Flow, adrive, drive
from compacting_supervisor._messages import check_messages
from compacting_supervisor._persist.rewrite import sql_kind
from compacting_supervisor._recent import RecentThreads
from compacting_supervisor._usage import context_tokens
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult
from compacting_supervisor.token_counter import REPLY_PRIMING

logger = logging.getLogger(__name__)

__all__ = ["AutoCompaction", "traced_config"]


@dataclass(frozen=True)
class _Call:
    """An op of the step after a run: one call, in its sync and its async form."""

    sync: Callable[[], Any]
    async_: Callable[[], Awaitable[Any]]

    def run(self) -> Any:
        """Make the sync call."""
        return self.sync()

    async def arun(self) -> Any:
        """Await the async call."""
        return await self.async_()


@dataclass(frozen=True)
class _Counted:
    """A thread's messages as last counted: at which checkpoint, how many, how many tokens."""

    checkpoint_id: str
    length: int
    tokens: int
    """``TokenCounter.count`` of those messages (reply priming included)."""


class AutoCompaction(CompactionDecisions):
    """The automatic compaction after a run: the wrapper's part of the decisions.

    Counting a thread after each run costs only its new messages: the count of the
    messages at the checkpoint counted last is kept per thread. Before a run (under the
    thread's lock) the head is marked; after it, when the run started from that checkpoint,
    the checkpoints since are the run's own and every message it wrote was appended
    (`RunCheckpoints`, `appended`), the old messages are those counted and only the new
    ones are counted. No message is compared or deserialised again. Anything else (an
    ``update_state``, another worker's run, a compaction, time travel, a saver that cannot
    tell) counts the thread whole, exactly as before, and keeps that count when the
    head holds what the run returned.
    """

    agent: Any
    _counted: dict[str, _Counted]
    _marks: dict[str, RunCheckpoints]
    _known: dict[str, tuple[Sequence[BaseMessage], int]]

    def _init_counting(self) -> None:
        """Start with no thread counted (a `with_config` copy shares these)."""
        self._counted = RecentThreads()
        self._marks = RecentThreads()
        self._known = RecentThreads()
        self._mark_saver: tuple[Any, Any, Any] | None = None

    def _auto_compact(
        self, thread_id: str, values: Any, config: Any = None
    ) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return self._auto_compact_unguarded(thread_id, values, config)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    async def _aauto_compact(
        self, thread_id: str, values: Any, config: Any = None
    ) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return await self._aauto_compact_unguarded(thread_id, values, config)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    def _auto_compact_unguarded(
        self, thread_id: str, values: Any, config: Any
    ) -> CompactionResult | None:
        return drive(self._after_run(thread_id, values, config), thread_id=thread_id)

    async def _aauto_compact_unguarded(
        self, thread_id: str, values: Any, config: Any
    ) -> CompactionResult | None:
        return await adrive(self._after_run(thread_id, values, config), thread_id=thread_id)

    def _after_run(self, thread_id: str, values: Any, config: Any) -> Flow[CompactionResult | None]:
        """What follows a run, written once: its I/O are ops the sync or async driver runs."""
        manager, head = self.history_manager, head_config(thread_id)
        raw = self._raw_messages(values)
        op = self._run_marks().pop(thread_id, None)
        found = (yield op) if op is not None and raw is not None else None
        tokens = self._count_appended(thread_id, raw, op, found)
        messages = raw if tokens is not None else self._values_messages(values)
        if messages is None:  # the output does not carry the messages: read the state
            snapshot = yield _Call(
                lambda: self.agent.get_state(head), lambda: self.agent.aget_state(head)
            )
            values, messages = self._state_of(snapshot)
        offload = self.offload
        if offload is not None and self._answered_results(offload, thread_id, messages):
            try:
                offloaded = yield _Call(
                    lambda: manager.offload_answered(head, offload, graph=self.agent),
                    lambda: manager.aoffload_answered(head, offload, graph=self.agent),
                )
            except Exception as exc:  # the results stay whole; the run has already succeeded
                _offload_failed(thread_id, exc)
            else:
                if offloaded:
                    messages, tokens = offloaded, None
        if tokens is None:  # kept only for the run's own messages, as the head holds them
            tokens = self._count_whole(thread_id, messages, found if messages is raw else None)
        decision = self._decide_counted(thread_id, messages, values, tokens)
        if not isinstance(decision, Compact):
            return decision
        traced, settings = traced_config(thread_id, config), self._compact_kwargs(decision.reason)
        try:
            result = yield _Call(
                lambda: manager.compact_thread(traced, **settings),
                lambda: manager.acompact_thread(traced, **settings),
            )
        except Exception as exc:  # a compaction problem never fails the user's run
            return self._settle(thread_id, decision, messages, exc)
        return self._settle(thread_id, decision, messages, result)

    # ------------------------------------------------------------ counting after a run

    def _mark(self, thread_id: str) -> None:
        """Before a run, under the thread's lock: note the head the run starts from."""
        try:
            if (saver := self._before_run(thread_id)) is not None:
                self._marked(thread_id, saver, head_before(saver, thread_id))
        except Exception:  # the count is then made whole, as without the mark
            logger.debug("Thread %s: head not marked before the run.", thread_id, exc_info=True)

    async def _amark(self, thread_id: str) -> None:
        """Async form of `_mark`."""
        try:
            if (saver := self._before_run(thread_id)) is not None:
                self._marked(thread_id, saver, await ahead_before(saver, thread_id))
        except Exception:  # the count is then made whole, as without the mark
            logger.debug("Thread %s: head not marked before the run.", thread_id, exc_info=True)

    def _before_run(self, thread_id: str) -> Any:
        """The saver whose head to mark before a run, if it can tell what the run added."""
        self._run_marks().pop(thread_id, None)
        agent, manager = self.agent, self.history_manager
        known = self._mark_saver
        if known is None or known[0] is not agent or known[1] is not manager:
            saver = manager._saver(agent) if self._appends() else None
            known = (agent, manager, saver if RunCheckpoints.supports(saver) else None)
            self._mark_saver = known
        return known[2]

    def _marked(self, thread_id: str, saver: Any, head: tuple[str | None] | None) -> None:
        """Keep the head read before the run, as the read of what the run added after it."""
        if head is not None:
            channel = self.history_manager.messages_key
            self._run_marks()[thread_id] = RunCheckpoints(thread_id, saver, channel, head[0])

    def _count_appended(
        self, thread_id: str, raw: list[Any] | None, op: RunCheckpoints | None, found: RunFound
    ) -> int | None:
        """The count of ``raw`` from the last one, when the run only appended to it; else None.

        Exact: the run started from the checkpoint counted last (the head before it is the
        count's checkpoint), the checkpoints since are the run's own and hold every write it
        applied (`RunCheckpoints`), and ``raw`` grew by one message per message
        written (a message replacing another by id, a removal or anything but a message
        would not), so ``raw``'s first messages are those counted.
        """
        counts = self._counts()
        counted = counts.pop(thread_id, None)
        if counted is None or raw is None or op is None or found is None:
            return None
        if op.since != counted.checkpoint_id:
            return None
        added = found[1]
        tail = raw[counted.length :]
        if added is None or len(raw) != counted.length + added:
            return None
        if not all(isinstance(m, BaseMessage) for m in tail):
            return None
        counter = self.history_manager.token_counter
        tokens = counted.tokens or (REPLY_PRIMING if tail else 0)
        tokens += sum(counter.count_message(m) for m in tail)
        counts[thread_id] = _Counted(found[0], len(raw), tokens)
        return tokens

    def _count_whole(self, thread_id: str, messages: list[BaseMessage], found: RunFound) -> int:
        """Count ``messages`` whole; keep the count when they are the head's (``found``)."""
        counts = self._counts()
        counts.pop(thread_id, None)
        tokens = self.history_manager.token_counter.count(messages)
        if found is not None:
            counts[thread_id] = _Counted(found[0], len(messages), tokens)
        return tokens

    def _decide_counted(
        self, thread_id: str, messages: list[BaseMessage], values: Any, tokens: int
    ) -> Compact | CompactionResult | None:
        """`_decide`, with the thread's count already made."""
        known = self._known_counts()
        known[thread_id] = (messages, tokens)
        try:
            return self._decide(thread_id, messages, values)
        finally:
            known.pop(thread_id, None)

    def _context_tokens(self, messages: Sequence[BaseMessage], thread_id: str | None = None) -> int:
        known = self._known_counts().get(thread_id) if thread_id is not None else None
        if known is None or known[0] is not messages:
            return super()._context_tokens(messages, thread_id)
        counter = self.history_manager.token_counter
        return context_tokens(messages, counter, self._overhead(thread_id), counted=known[1])

    def _appends(self) -> bool:
        """Whether the graph's messages channel appends (``add_messages``), as runs are read."""
        from langgraph.graph.message import add_messages

        channels = getattr(self.agent, "channels", None)
        channel = (
            channels.get(self.history_manager.messages_key) if isinstance(channels, dict) else None
        )
        return getattr(channel, "operator", None) is add_messages

    def _counts(self) -> dict[str, _Counted]:
        return self._counted

    def _run_marks(self) -> dict[str, RunCheckpoints]:
        return self._marks

    def _known_counts(self) -> dict[str, tuple[Sequence[BaseMessage], int]]:
        return self._known

    def _raw_messages(self, values: Any) -> list[Any] | None:
        """The run's output messages as a list, unchecked (the checks follow)."""
        values = getattr(values, "value", values)  # GraphOutput with version="v2"
        raw = values.get(self.history_manager.messages_key) if isinstance(values, dict) else None
        return raw if isinstance(raw, list) else None

    @staticmethod
    def _answered_results(
        policy: OffloadToolResults, thread_id: str, messages: list[BaseMessage]
    ) -> bool:
        """Whether the run left tool results the agent answered for ``policy`` to offload.

        A pure check of the run's output, so a run with none reads and writes nothing more.
        """
        return bool(policy.plan_answered(messages, thread_id=thread_id).offloaded)

    def _compact_kwargs(self, trigger: str, keep: KeepPolicy | None = None) -> dict[str, Any]:
        """The shared settings, and the graph: its idle check sees tasks and interrupts."""
        return {**super()._compact_kwargs(trigger, keep), "graph": self.agent}

    def _values_messages(self, values: Any) -> list[BaseMessage] | None:
        return output_messages(values, self.history_manager.messages_key)

    def _state_of(self, snapshot: Any) -> tuple[Any, list[BaseMessage]]:
        """The state values and the checked messages channel of a snapshot."""
        messages = self._read_messages(snapshot)
        check_messages(messages, self.history_manager.messages_key)
        return snapshot.values, messages

    def _read_messages(self, snapshot: Any) -> list[BaseMessage]:
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        return list(values.get(self.history_manager.messages_key) or [])


RunFound = tuple[str, int | None] | None
"""The head after a run, and how many messages its writes appended at most (None: unknown)."""

_HEAD_SQL = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
    "ORDER BY checkpoint_id DESC LIMIT 1"
)
_RUN_SQL = (  # the checkpoints' key columns only (never their blob), and the writes
    "SELECT checkpoint_id, parent_checkpoint_id, NULL, NULL, NULL FROM checkpoints "
    "WHERE thread_id = ?1 AND checkpoint_ns = '' AND checkpoint_id > ?2 "
    "UNION ALL SELECT checkpoint_id, NULL, channel, type, "
    "CASE WHEN channel = ?3 THEN value END FROM writes "
    "WHERE thread_id = ?1 AND checkpoint_ns = '' AND checkpoint_id >= ?2"
)


def head_before(saver: Any, thread_id: str) -> tuple[str | None] | None:
    """The id of the thread's head (None: no checkpoint) in a 1-tuple; None if not read.

    On InMemorySaver, the checkpoint stored last (ids grow): `RunCheckpoints` checks that
    the run's first checkpoint is its child, so that it is the head the run started from.
    """
    if isinstance(saver, InMemorySaver):
        stored = saver.storage.get(thread_id, {}).get("", {})
        return (next(reversed(stored), None),)
    if hasattr(saver.conn, "__aenter__"):
        return None  # an async connection: `ahead_before`
    saver.setup()  # creates its tables on first use (once)
    with saver.lock:
        row = saver.conn.execute(_HEAD_SQL, (thread_id,)).fetchone()
    return (row[0] if row else None,)


async def ahead_before(saver: Any, thread_id: str) -> tuple[str | None] | None:
    """Async form of `head_before`."""
    if isinstance(saver, InMemorySaver) or not hasattr(saver.conn, "__aenter__"):
        return head_before(saver, thread_id)
    await saver.setup()  # creates its tables on first use (once)
    async with saver.lock, saver.conn.execute(_HEAD_SQL, (thread_id,)) as cur:
        row = await cur.fetchone()
    return (row[0] if row else None,)


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
    checkpoint: InMemorySaver's storage in place, SQLite with one indexed query.
    """

    thread_id: str
    saver: Any
    channel: str
    since: str | None
    """The head before the run (None: the thread had no checkpoint)."""

    @staticmethod
    def supports(saver: Any) -> bool:
        """Whether ``saver`` can tell: InMemorySaver, SqliteSaver, AsyncSqliteSaver."""
        return isinstance(saver, InMemorySaver) or sql_kind(saver) == "sqlite"

    def run(self) -> RunFound:
        """Read what the run added (sync)."""
        saver = self.saver
        if isinstance(saver, InMemorySaver):
            return self._memory(saver)
        if hasattr(saver.conn, "__aenter__"):
            return None
        with saver.lock:
            rows = saver.conn.execute(_RUN_SQL, self._arguments()).fetchall()
        return self._found(rows)

    async def arun(self) -> RunFound:
        """Read what the run added (async)."""
        saver = self.saver
        if isinstance(saver, InMemorySaver) or not hasattr(saver.conn, "__aenter__"):
            return self.run()
        async with saver.lock, saver.conn.execute(_RUN_SQL, self._arguments()) as cur:
            rows = await cur.fetchall()
        return self._found(rows)

    def _arguments(self) -> tuple[str, str, str]:
        return self.thread_id, self.since or "", self.channel

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


def traced_config(thread_id: str, config: Any) -> RunnableConfig:
    """The thread's config, with the callbacks, tags and metadata of ``config`` (the run's).

    The compaction's run then reaches the handlers the run had (LangSmith's tracer among
    them), though it starts after the run has ended.
    """
    traced = head_config(thread_id)
    if isinstance(config, dict):
        for key in ("callbacks", "tags", "metadata"):
            if config.get(key):
                traced[key] = config[key]
    return traced


def _offload_failed(thread_id: str, exc: Exception) -> None:
    logger.warning(
        "Thread %s: could not offload its answered tool results; they stay whole: %s",
        thread_id,
        exc,
        exc_info=not isinstance(exc, CompactionError),
    )
