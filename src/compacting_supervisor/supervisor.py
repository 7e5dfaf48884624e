"""`CompactingSupervisor`: runs a compiled LangGraph graph and compacts its threads.

The graph is not changed. After every run the wrapper checks its trigger against the
thread (by default ``TokenLimit(token_limit)`` on the tokens of the thread's messages, read
from the run's own output when it has them) and, when it fires, asks its `HistoryManager`
to compact the thread. A compaction problem never fails the user's run:
it is logged, reported in the stream, and kept as the thread's last result.

This module holds the public class: its settings, its run and stream paths, manual
compaction and the forwarded graph API. What happens after a run is
`compacting_supervisor._auto_compaction`; the event dicts of a stream are
`compacting_supervisor._events`; the circuit breaker is `compacting_supervisor._breaker`;
the checks of what the class and its methods are given (settings, threads) are
`compacting_supervisor._arguments`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from compacting_supervisor._arguments import (
    COMPACTION_RATIO,
    TOKEN_LIMIT,
    bind_agent,
    configs_for,
    keep_for_call,
    run_thread_id,
    thread_of,
)
from compacting_supervisor._auto_compaction import AutoCompaction, traced_config
from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._events import (
    EventMapper,
    closing_events,
    event_kwargs,
    native_final_values,
)
from compacting_supervisor._settings import check_seconds
from compacting_supervisor.archive import Transcript
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.locks import ThreadLocks, alocks_for, locks_for
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult, ThreadStats
from compacting_supervisor.triggers import Trigger

logger = logging.getLogger(__name__)

__all__ = ["CompactingSupervisor"]


class CompactingSupervisor(AutoCompaction):
    """Wraps a compiled LangGraph graph and keeps its threads under a token limit.

    Use it like the graph: ``invoke`` / ``ainvoke`` return exactly what the graph returns;
    ``stream`` / ``astream`` without ``stream_mode`` yield event dicts (``"token"``,
    ``"message"``, ``"interrupt"``, ``"compaction"``, ``"end"``), and with ``stream_mode``
    pass LangGraph's native chunks through unchanged.

    Args:
        agent: A compiled graph (``graph.compile(checkpointer=...)``, ``create_agent``,
            ``create_react_agent``, ``create_supervisor(...).compile(...)``) whose state has
            a messages channel.
        history_manager: Compacts and rewrites threads. Defaults to ``HistoryManager()``:
            the graph's checkpointer and the embedded offline summariser.
        token_limit: Compact after a run that leaves more tokens than this in the thread;
            also the size the summary is scaled to. Short for
            ``trigger=TokenLimit(token_limit)``, so it cannot be given with ``trigger``.
        compaction_ratio: The fraction of the conversation each compaction summarises, in
            (0, 1): 0.8 (the default) all but the newest fifth, 0.5 the older half. The
            default is measured: each compaction buys many turns of stable prefix for a
            provider's prompt cache, within 0.01x of the cheapest setting on every
            provider's rules (``docs/prompt-cache.md``). Short for
            ``keep=KeepRatio(compaction_ratio)``, so it cannot be given with ``keep``.
        trigger: When to compact instead of ``TokenLimit(token_limit)``: `ContextFraction`,
            `MessageCount`, `TimeSinceCompaction`, `When`, `Repetition`, or a combination
            (``AnyOf``/``|``, ``AllOf``/``&``).
        keep: What each compaction keeps verbatim instead of ``compaction_ratio``:
            `KeepMessages` (the newest N messages) or `KeepTokens` (the newest N tokens).
        system_prompt: The agent's own system prompt (text, or its size in tokens), which
            the state does not hold; counted with the thread's messages.
        tools: The agent's tools (or their schemas' size in tokens); counted likewise.
        offload: An `OffloadToolResults` policy applied after every run: the tool results
            the agent has already answered (those before the thread's newest AIMessage)
            that reach the policy's size move to its store, and the thread keeps each as
            a reference and a preview (same message ids; one checkpoint rewrite, like a
            compaction's). Give the agent ``policy.read_tool()`` so it can read one again.
            Turns then grow by the previews only, so compactions come later and the model
            reads less per call. A history manager without an ``offload`` policy of its own
            takes this one; either way compactions read its store back and summarise the
            stored results whole. None (the default) leaves tool results whole.
        lock_timeout: Seconds a run or compaction waits for its thread while another one
            (in this process or another) is using it; past that it raises
            `ThreadLockTimeoutError`. None waits as long as it takes.
        max_consecutive_failures: After this many failed compactions in a row on a thread
            (each already retried by the history manager), automatic compaction of that
            thread pauses (a circuit breaker).
        failure_cooldown_turns: How many turns the pause lasts; then one attempt is made,
            and a success closes the breaker. A successful manual `compact` closes it too.

    A method that names a thread (`compact`, `transcript`, `thread_stats`,
    `last_compaction`, `get_state`, `update_state` ...) takes a thread id (``"t1"``) or a
    config that names one; a run (`invoke`, `stream` ...) takes a config, as the graph does.
    A config bound with `with_config` supplies the thread id when none is given.

    Raises:
        TypeError: ``agent`` is not a compiled graph, or a setting is of the wrong type.
        ValueError: A setting is out of range (NaN and infinity included), two settings
            contradict each other (``token_limit`` with ``trigger``, even
            ``token_limit=500``; ``compaction_ratio`` with ``keep``), no checkpointer is
            known, or the state has no messages channel.

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from compacting_supervisor.testing import echo_graph
        >>> graph = echo_graph(checkpointer=InMemorySaver())
        >>> supervisor = CompactingSupervisor(graph, token_limit=200)
        >>> config = {"configurable": {"thread_id": "doc"}}
        >>> for _ in range(8):
        ...     _ = supervisor.invoke({"messages": [("user", "Tell me a story.")]}, config)
        >>> supervisor.last_compaction("doc").status
        'compacted'
    """

    def __init__(
        self,
        agent: Any,
        history_manager: HistoryManager | None = None,
        *,
        token_limit: int = TOKEN_LIMIT,
        compaction_ratio: float = COMPACTION_RATIO,
        trigger: Trigger | None = None,
        keep: KeepPolicy | None = None,
        system_prompt: str | int | None = None,
        tools: Sequence[Any] | int | None = None,
        offload: OffloadToolResults | None = None,
        lock_timeout: float | None = None,
        max_consecutive_failures: int = 3,
        failure_cooldown_turns: int = 5,
    ) -> None:
        check_seconds("lock_timeout", lock_timeout, allow_none=True)
        agent, manager = bind_agent(agent, history_manager)
        self.agent = agent
        self._configure(
            manager,
            token_limit=token_limit,
            compaction_ratio=compaction_ratio,
            trigger=trigger,
            keep=keep,
            offload=offload,
            system_prompt=system_prompt,
            tools=tools,
            max_consecutive_failures=max_consecutive_failures,
            failure_cooldown_turns=failure_cooldown_turns,
        )
        self.lock_timeout = lock_timeout
        self._init_counting()
        self._locks: ThreadLocks | None = None
        self._locks_pid = os.getpid()

    # ------------------------------------------------------------------ running the graph

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the graph like ``graph.invoke``, then compact the thread if it is over the limit.

        Returns:
            Exactly what the graph returns.
        """
        thread_id = self._run_thread_id(config)
        with self._hold(thread_id):
            self._mark(thread_id)
            output = self.agent.invoke(input, config, **kwargs)
            self._auto_compact(thread_id, output, config)
        return output

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async form of `invoke`."""
        thread_id = self._run_thread_id(config)
        async with self._ahold(thread_id):
            await self._amark(thread_id)
            output = await self.agent.ainvoke(input, config, **kwargs)
            await self._aauto_compact(thread_id, output, config)
        return output

    def stream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        **kwargs: Any,
    ) -> Generator[Any, None, None]:
        """Stream a run, then compact the thread if it is over the limit.

        Without ``stream_mode`` this yields event dicts: ``{"type": "token", "content",
        "node", "agent", ...}`` for the agents' LLM tokens, ``"message"`` for whole messages
        nodes add (tool results, hand-offs), ``"interrupt"``, one ``"compaction"`` when a
        compaction was attempted, and a final ``"end"`` with the run's values. With
        ``stream_mode`` it yields LangGraph's native chunks unchanged.

        The thread stays locked until the stream ends: close a stream you stop reading
        early (``close()``, or ``contextlib.closing``).
        """
        thread_id = self._run_thread_id(config)
        if stream_mode is not None:
            return self._native_stream(thread_id, input, config, stream_mode, kwargs)
        return self._event_stream(thread_id, input, config, kwargs)

    def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        """Async form of `stream`.

        Close a stream you stop reading early (``await aclose()``, or
        ``contextlib.aclosing``): the thread stays locked until it ends.
        """
        thread_id = self._run_thread_id(config)
        if stream_mode is not None:
            return self._anative_stream(thread_id, input, config, stream_mode, kwargs)
        return self._aevent_stream(thread_id, input, config, kwargs)

    def _event_stream(
        self, thread_id: str, input: Any, config: Any, kwargs: dict[str, Any]
    ) -> Generator[dict[str, Any], None, None]:
        mapper = EventMapper(thread_id)
        with self._hold(thread_id):
            self._mark(thread_id)
            for chunk in self.agent.stream(input, config, **event_kwargs(kwargs)):
                if (event := mapper.feed(chunk)) is not None:
                    yield event
            result = self._auto_compact(thread_id, mapper.values, config)
        yield from closing_events(thread_id, mapper, result)

    async def _aevent_stream(
        self, thread_id: str, input: Any, config: Any, kwargs: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        mapper = EventMapper(thread_id)
        async with self._ahold(thread_id):
            await self._amark(thread_id)
            async for chunk in self.agent.astream(input, config, **event_kwargs(kwargs)):
                if (event := mapper.feed(chunk)) is not None:
                    yield event
            result = await self._aauto_compact(thread_id, mapper.values, config)
        for event in closing_events(thread_id, mapper, result):
            yield event

    def _native_stream(
        self, thread_id: str, input: Any, config: Any, stream_mode: Any, kwargs: dict[str, Any]
    ) -> Generator[Any, None, None]:
        found, values = False, None
        with self._hold(thread_id):
            self._mark(thread_id)
            for chunk in self.agent.stream(input, config, stream_mode=stream_mode, **kwargs):
                is_values, payload = native_final_values(
                    chunk, stream_mode, bool(kwargs.get("subgraphs")), kwargs.get("version")
                )
                if is_values:
                    found, values = True, payload
                yield chunk
            self._auto_compact(thread_id, values if found else None, config)

    async def _anative_stream(
        self, thread_id: str, input: Any, config: Any, stream_mode: Any, kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        found, values = False, None
        async with self._ahold(thread_id):
            await self._amark(thread_id)
            async for chunk in self.agent.astream(input, config, stream_mode=stream_mode, **kwargs):
                is_values, payload = native_final_values(
                    chunk, stream_mode, bool(kwargs.get("subgraphs")), kwargs.get("version")
                )
                if is_values:
                    found, values = True, payload
                yield chunk
            await self._aauto_compact(thread_id, values if found else None, config)

    def batch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run `invoke` for each input (one config per input, or one for all), in order."""
        configs = configs_for(inputs, config)
        return [self.invoke(i, c, **kwargs) for i, c in zip(inputs, configs, strict=True)]

    async def abatch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run `ainvoke` for each input concurrently (runs on one thread run in order)."""
        configs = configs_for(inputs, config)
        by_thread: dict[str, list[int]] = {}
        for index, c in enumerate(configs):
            by_thread.setdefault(self._run_thread_id(c), []).append(index)
        results: list[Any] = [None] * len(inputs)

        async def run_thread(indexes: list[int]) -> None:
            for index in indexes:
                results[index] = await self.ainvoke(inputs[index], configs[index], **kwargs)

        await asyncio.gather(*(run_thread(ix) for ix in by_thread.values()))
        return results

    def stream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Pass ``graph.stream_events`` through, then compact the thread if over the limit."""
        thread_id = self._run_thread_id(config)

        def events() -> Iterator[Any]:
            with self._hold(thread_id):
                self._mark(thread_id)
                yield from self.agent.stream_events(input, config, **kwargs)
                self._auto_compact(thread_id, None, config)

        return events()

    def astream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Pass ``graph.astream_events`` through, then compact the thread if over the limit."""
        thread_id = self._run_thread_id(config)

        async def events() -> AsyncIterator[Any]:
            async with self._ahold(thread_id):
                await self._amark(thread_id)
                async for event in self.agent.astream_events(input, config, **kwargs):
                    yield event
                await self._aauto_compact(thread_id, None, config)

        return events()

    # ------------------------------------------------------------------ compaction

    def compact(
        self, config: str | RunnableConfig, *, keep: KeepPolicy | float | None = None
    ) -> CompactionResult | None:
        """Compact the thread now, whatever its size.

        Args:
            config: A thread id (``"t1"``) or a config naming the thread.
            keep: What this compaction keeps verbatim instead of the wrapper's ``keep``:
                a `KeepPolicy` (``KeepMessages(5)``), or a number in (0, 1), the fraction
                to summarise (the CLI's ``--ratio``).

        Returns:
            The result, or None when there is nothing to compact (too few messages).

        Raises:
            SummarizationError: The summariser failed; the history is unchanged.
            ThreadBusyError: The thread is interrupted or mid-run; compact after it resumes.
            StaleCheckpointError: A run finished meanwhile; nothing was written.
        """
        policy = keep_for_call(keep)
        thread_id = self._thread_id(config)
        with self._hold(thread_id):
            started = time.perf_counter()
            try:
                result = self.history_manager.compact_thread(
                    traced_config(thread_id, config), **self._compact_kwargs("manual", policy)
                )
            except CompactionError as exc:
                try:  # the size it stayed at, for the record; the checkpointer may be down
                    messages = self._read_messages(self.agent.get_state(head_config(thread_id)))
                except Exception:
                    messages = []
                self._record(self._unchanged(thread_id, "manual", exc, started, messages))
                raise
        return self._record(result) if result is not None else None

    async def acompact(
        self, config: str | RunnableConfig, *, keep: KeepPolicy | float | None = None
    ) -> CompactionResult | None:
        """Async form of `compact`."""
        policy = keep_for_call(keep)
        thread_id = self._thread_id(config)
        async with self._ahold(thread_id):
            started = time.perf_counter()
            try:
                result = await self.history_manager.acompact_thread(
                    traced_config(thread_id, config), **self._compact_kwargs("manual", policy)
                )
            except CompactionError as exc:
                try:  # the size it stayed at, for the record; the checkpointer may be down
                    snapshot = await self.agent.aget_state(head_config(thread_id))
                    messages = self._read_messages(snapshot)
                except Exception:
                    messages = []
                self._record(self._unchanged(thread_id, "manual", exc, started, messages))
                raise
        return self._record(result) if result is not None else None

    def transcript(self, config: str | RunnableConfig) -> Transcript:
        """Everything the thread ever held, across all compactions (see `Transcript`).

        Args:
            config: A thread id (``"t1"``) or a config naming the thread.
        """
        thread_id = self._thread_id(config)
        return self.history_manager.transcript(head_config(thread_id), graph=self.agent)

    async def atranscript(self, config: str | RunnableConfig) -> Transcript:
        """Async form of `transcript`."""
        thread_id = self._thread_id(config)
        return await self.history_manager.atranscript(head_config(thread_id), graph=self.agent)

    def thread_stats(self, thread: str | RunnableConfig) -> ThreadStats:
        """Return the thread's size, utilisation of the limit, and compaction totals.

        Read from the checkpoints, so compactions by other processes count too.
        ``utilisation`` uses what the trigger sees (`context_tokens`: usage and the
        declared prompt and tools included); ``tokens`` is the messages' exact count.

        Args:
            thread: A thread id (``"t1"``) or a config naming one.
        """
        thread_id = self._thread_id(thread, "thread")
        stats = self.history_manager.thread_stats(head_config(thread_id), graph=self.agent)
        messages = self._read_messages(self.agent.get_state(head_config(thread_id)))
        return self._with_limit(stats, messages)

    async def athread_stats(self, thread: str | RunnableConfig) -> ThreadStats:
        """Async form of `thread_stats`."""
        thread_id = self._thread_id(thread, "thread")
        stats = await self.history_manager.athread_stats(head_config(thread_id), graph=self.agent)
        snapshot = await self.agent.aget_state(head_config(thread_id))
        return self._with_limit(stats, self._read_messages(snapshot))

    def _with_limit(self, stats: ThreadStats, messages: list[BaseMessage]) -> ThreadStats:
        limit = self._token_threshold()
        if limit is None:  # the trigger is not a size: there is no limit to be near
            return stats
        used = self.context_tokens(messages) if messages else 0
        return dataclasses.replace(stats, token_limit=limit, utilisation=round(used / limit, 4))

    def last_compaction(self, thread: str | RunnableConfig) -> CompactionResult | None:
        """Return the last compaction result of a thread (successful or not) in this process.

        Args:
            thread: A thread id (``"t1"``) or a config naming one.
        """
        return self._results.get(self._thread_id(thread, "thread"))

    def over_limit(self, messages: Sequence[BaseMessage]) -> bool:
        """Whether ``messages`` are over the trigger's size (``token_limit`` by default).

        For a trigger that is not a size (`MessageCount`, `When` ...), ``token_limit``'s
        default (500), since ``token_limit`` is not given with ``trigger``.
        """
        limit = self._token_threshold() or self.token_limit
        return self.context_tokens(messages) > limit

    def context_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """The tokens the model is sent for ``messages``.

        The provider's reported usage on the newest answer, where trustworthy, plus an exact
        count of the messages after it; else an exact count. The declared ``system_prompt``
        and ``tools`` are included.
        """
        return self._context_tokens(messages)

    # ------------------------------------------------------------------ threads and locks

    def _run_thread_id(self, config: Any) -> str:
        """The thread a run is on: a run takes a config (or one bound with `with_config`)."""
        if type(config) is dict:  # the common case, told at once: it names its thread
            configurable = config.get("configurable")
            thread_id = configurable.get("thread_id") if type(configurable) is dict else None
            if type(thread_id) is str and thread_id:
                return thread_id
        return run_thread_id(config, getattr(self.agent, "config", None))

    def _thread(self, thread: Any, parameter: str = "config") -> tuple[str, Any]:
        """The thread id a method was given (``thread``: an id or a config), and its config."""
        return thread_of(thread, getattr(self.agent, "config", None), parameter=parameter)

    def _thread_id(self, thread: Any, parameter: str = "config") -> str:
        return self._thread(thread, parameter)[0]

    def _thread_config(self, thread: Any) -> Any:
        return self._thread(thread)[1]

    def _hold(self, thread_id: str) -> AbstractContextManager[None]:
        """The thread's lock: one run or compaction of a thread at a time, across processes."""
        if self._locks is None or self._locks_pid != os.getpid():  # a forked worker: its own
            self._locks = locks_for(self.history_manager._saver(self.agent))
            self._locks_pid = os.getpid()
        return self._locks.hold(thread_id, timeout=self.lock_timeout)

    @contextlib.asynccontextmanager
    async def _ahold(self, thread_id: str) -> AsyncIterator[None]:
        if self._locks is None or self._locks_pid != os.getpid():
            self._locks = await alocks_for(self.history_manager._saver(self.agent))
            self._locks_pid = os.getpid()
        async with self._locks.ahold(thread_id, timeout=self.lock_timeout):
            yield

    # ------------------------------------------------------------------ graph API
    # Each takes the thread as a thread id ("t1") or as the graph takes it, a config.

    def get_state(self, config: str | RunnableConfig, **kwargs: Any) -> Any:
        """Return the thread's state, as ``graph.get_state`` (``config``: or a thread id)."""
        return self.agent.get_state(self._thread_config(config), **kwargs)

    async def aget_state(self, config: str | RunnableConfig, **kwargs: Any) -> Any:
        """Async form of `get_state`."""
        return await self.agent.aget_state(self._thread_config(config), **kwargs)

    def get_state_history(self, config: str | RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        """Iterate the thread's checkpoints, newest first, as ``graph.get_state_history``."""
        config = self._thread_config(config)
        return self.agent.get_state_history(config, **kwargs)  # type: ignore[no-any-return]

    def aget_state_history(self, config: str | RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        """Async form of `get_state_history`."""
        config = self._thread_config(config)
        return self.agent.aget_state_history(config, **kwargs)  # type: ignore[no-any-return]

    def update_state(
        self, config: str | RunnableConfig, values: Any, **kwargs: Any
    ) -> RunnableConfig:
        """Update the thread's state, as ``graph.update_state`` (holding the thread's lock)."""
        thread_id, config = self._thread(config)
        with self._hold(thread_id):
            return self.agent.update_state(config, values, **kwargs)  # type: ignore[no-any-return]

    async def aupdate_state(
        self, config: str | RunnableConfig, values: Any, **kwargs: Any
    ) -> RunnableConfig:
        """Async form of `update_state`."""
        thread_id, config = self._thread(config)
        async with self._ahold(thread_id):
            return await self.agent.aupdate_state(config, values, **kwargs)  # type: ignore[no-any-return]

    def with_config(
        self, config: RunnableConfig | None = None, **kwargs: Any
    ) -> CompactingSupervisor:
        """Return a wrapper of ``graph.with_config(...)`` sharing settings and results."""
        clone = copy.copy(self)
        clone.agent = self.agent.with_config(config, **kwargs)
        return clone

    def __getattr__(self, name: str) -> Any:
        # Anything else (get_graph, name, checkpointer ...) is the graph's.
        if name.startswith("_") or name == "agent":
            raise AttributeError(name)
        return getattr(self.agent, name)

    def __repr__(self) -> str:
        return (
            f"CompactingSupervisor(agent={getattr(self.agent, 'name', self.agent)!r}, "
            f"trigger={self.trigger!r}, keep={self.keep!r})"
        )
