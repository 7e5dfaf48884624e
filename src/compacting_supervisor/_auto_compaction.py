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

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._decisions import Compact, CompactionDecisions
from compacting_supervisor._events import output_messages
from compacting_supervisor._flow import Flow, adrive, drive
from compacting_supervisor._messages import check_messages
from compacting_supervisor._persist.rewrite import sql_kind
from compacting_supervisor._persist.runs import (
    RunCheckpoints,
    RunFound,
    ahead_before,
    head_before,
)
from compacting_supervisor._recent import RecentThreads
from compacting_supervisor._usage import context_tokens
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult
from compacting_supervisor.token_counter import REPLY_PRIMING

logger = logging.getLogger(__name__)

__all__ = ["MARK_FROM", "AutoCompaction", "traced_config"]


MARK_FROM = {"sqlite": 300, "postgres": 1_000}
"""From how many messages a thread is counted from what a run added, by saver kind.

Reading what a run added costs two queries a turn (the head before the run, what it
wrote after it): about 0.3 ms on SQLite and 0.9 ms on a local Postgres (a round trip
each, more to a remote one), where counting a thread whole from the run's output costs
about 1.2 us a message (`benchmarks/overhead.py --counting --postgres`). Below these
lengths the whole count is the cheaper exact one; InMemorySaver is read in place.
"""


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
    _known: dict[str, tuple[Sequence[BaseMessage], int, int | None]]

    def _init_counting(self) -> None:
        """Start with no thread counted (a `with_config` copy shares these)."""
        self._counted = RecentThreads()
        self._marks = RecentThreads()
        self._known = RecentThreads()
        self._lengths: dict[str, int] = RecentThreads()
        self._mark_saver: tuple[Any, Any, Any, int] | None = None
        self._mark_from = dict(MARK_FROM)

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
        counted = self._counts().get(thread_id)
        tokens = self._count_appended(thread_id, raw, op, found)
        # Where the run's own messages start, when it only appended to those counted.
        new_from = counted.length if tokens is not None and counted is not None else None
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
                    messages, tokens, new_from = offloaded, None, None
        if tokens is None:  # kept only for the run's own messages, as the head holds them
            tokens = self._count_whole(thread_id, messages, found if messages is raw else None)
        self._lengths[thread_id] = len(messages)
        decision = self._decide_counted(thread_id, messages, values, tokens, new_from)
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
            saver = saver if RunCheckpoints.supports(saver) else None
            least = self._mark_from.get(sql_kind(saver) or "", 0) if saver is not None else 0
            known = (agent, manager, saver, least)
            self._mark_saver = known
        if known[3] and self._lengths.get(thread_id, 0) < known[3]:
            return None  # a short thread: counting it whole costs less than two queries
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
        self,
        thread_id: str,
        messages: list[BaseMessage],
        values: Any,
        tokens: int,
        new_from: int | None = None,
    ) -> Compact | CompactionResult | None:
        """`_decide`, with the thread's count already made.

        ``new_from``: where the messages the run appended start, when it only appended.
        """
        known = self._known_counts()
        known[thread_id] = (messages, tokens, new_from)
        try:
            return self._decide(thread_id, messages, values)
        finally:
            known.pop(thread_id, None)

    def _context_tokens(self, messages: Sequence[BaseMessage], thread_id: str | None = None) -> int:
        known = self._known_counts().get(thread_id) if thread_id is not None else None
        if known is None or known[0] is not messages:
            return super()._context_tokens(messages, thread_id)
        counter = self.history_manager.token_counter
        overhead = self._overhead(thread_id)
        return context_tokens(messages, counter, overhead, counted=known[1], new_from=known[2])

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

    def _known_counts(self) -> dict[str, tuple[Sequence[BaseMessage], int, int | None]]:
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
