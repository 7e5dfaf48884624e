"""`CompactingSupervisor`: runs a compiled LangGraph graph and compacts its threads.

The graph is not changed. After every run the wrapper checks its trigger against the
thread (by default ``TokenLimit(token_limit)`` on the tokens of the thread's messages, read
from the run's own output when it has them) and, when it fires, asks its `HistoryManager`
to compact the thread. A compaction problem never fails the user's run:
it is logged, reported in the stream, and kept as the thread's last result.
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

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.checkpoint.base import BaseCheckpointSaver

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._messages import check_messages
from compacting_supervisor._settings import check_count, check_ratio, check_seconds
from compacting_supervisor._usage import context_tokens, declared_tokens, summary_details
from compacting_supervisor.archive import Transcript
from compacting_supervisor.errors import (
    CompactionError,
    NoReductionError,
    StaleCheckpointError,
    ThreadBusyError,
)
from compacting_supervisor.history_manager import DEFAULT_MAX_SUMMARY_TOKENS, HistoryManager
from compacting_supervisor.keep import KeepPolicy, KeepRatio
from compacting_supervisor.locks import ThreadLocks, alocks_for, locks_for
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult, ThreadStats
from compacting_supervisor.summarizers import SUMMARIZER_TAG
from compacting_supervisor.triggers import (
    AllOf,
    AnyOf,
    ContextFraction,
    TokenLimit,
    Trigger,
    TriggerContext,
    safe_check,
)

logger = logging.getLogger(__name__)

__all__ = ["CompactingSupervisor"]

_INTERRUPT = "__interrupt__"
_EVENT_STREAM_MODES = ["messages", "updates", "values"]


@dataclasses.dataclass(frozen=True)
class _Compact:
    """The go-ahead for an automatic compaction."""

    reason: str
    started: float


class _NoSafeCutError(CompactionError):
    def __init__(self) -> None:
        super().__init__(
            "over the limit, but there is no safe place to cut: everything before the latest "
            "human message is one tool-calling exchange, or the thread is too short. It "
            "compacts once a later turn adds a safe boundary."
        )


class _CircuitOpenError(CompactionError):
    def __init__(self, failures: int, turns_left: int) -> None:
        super().__init__(
            f"paused after {failures} consecutive failed compactions; it tries again in "
            f"{turns_left} turn(s) or on a manual compact()"
        )


@dataclasses.dataclass
class _Circuit:
    """A thread's circuit breaker: consecutive failures and turns left to wait."""

    failures: int = 0
    turns_to_wait: int = 0


class _EventMapper:
    """Turns native ``(namespace, mode, payload)`` chunks into the wrapper's event dicts."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.values: Any = None
        self.interrupts: list[Any] = []

    def feed(self, chunk: tuple[tuple[str, ...], str, Any]) -> dict[str, Any] | None:
        namespace, mode, payload = chunk
        if mode == "values":
            if not namespace:
                self.values = payload
            return None
        if mode == "updates":
            if not namespace and isinstance(payload, dict) and payload.get(_INTERRUPT):
                self.interrupts.extend(payload[_INTERRUPT])
                return {
                    "type": "interrupt",
                    "thread_id": self.thread_id,
                    "interrupts": list(payload[_INTERRUPT]),
                }
            return None
        message, metadata = payload
        if SUMMARIZER_TAG in (metadata.get("tags") or ()):
            return None  # A summariser call nested in a run: never the user's tokens.
        node = metadata.get("langgraph_node")
        # A sub-agent's events come from its subgraph; at the top level an AIMessage may
        # carry the agent's name (langgraph-supervisor tags them), else the node is the agent.
        named = message.name if isinstance(message, AIMessage) else None
        agent = namespace[0].split(":")[0] if namespace else (named or node)
        from_model = isinstance(message, AIMessageChunk) or "ls_provider" in metadata
        if isinstance(message, AIMessage) and from_model:
            text = message.text
            if not text:
                return None
            return {
                "type": "token",
                "content": text,
                "node": node,
                "agent": agent,
                "namespace": namespace,
                "message_id": message.id,
            }
        return {
            "type": "message",
            "message": message,
            "node": node,
            "agent": agent,
            "namespace": namespace,
        }


def _native_final_values(
    chunk: Any, stream_mode: Any, subgraphs: bool, version: Any
) -> tuple[bool, Any]:
    """Return ``(True, values)`` when a native chunk carries the root graph's values."""
    if version == "v2":
        if isinstance(chunk, dict) and chunk.get("type") == "values" and not chunk.get("ns"):
            return True, chunk.get("data")
        return False, None
    single = isinstance(stream_mode, str)
    modes = [stream_mode] if single else list(stream_mode)
    if "values" not in modes:
        return False, None
    if subgraphs:
        namespace, *rest = chunk
        if namespace:
            return False, None
        chunk = rest[0] if single else tuple(rest)
    if single:
        return True, chunk
    mode, payload = chunk
    return (mode == "values"), payload


class CompactingSupervisor:
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
        token_limit: Compact after a run that leaves more tokens than this in the thread
            (unless ``trigger`` says otherwise); also the size the summary is scaled to.
        compaction_ratio: The fraction of the conversation each compaction summarises, in
            (0, 1): 0.5 summarises the older half, 0.8 all but the newest fifth.
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

    Raises:
        TypeError: ``agent`` is not a compiled graph.
        ValueError: A setting is out of range, no checkpointer is known, or the state has
            no messages channel.

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
        token_limit: int = 500,
        compaction_ratio: float = 0.5,
        trigger: Trigger | None = None,
        keep: KeepPolicy | None = None,
        system_prompt: str | int | None = None,
        tools: Sequence[Any] | int | None = None,
        offload: OffloadToolResults | None = None,
        lock_timeout: float | None = None,
        max_consecutive_failures: int = 3,
        failure_cooldown_turns: int = 5,
    ) -> None:
        if not all(hasattr(agent, a) for a in ("invoke", "stream", "get_state", "channels")):
            hint = (
                " It looks like an uncompiled StateGraph: pass graph.compile(checkpointer=...)."
                if hasattr(agent, "compile")
                else ""
            )
            msg = f"`agent` must be a compiled LangGraph graph, got {type(agent).__name__}.{hint}"
            raise TypeError(msg)
        check_count("token_limit", token_limit, unit=" number of tokens")
        check_ratio(compaction_ratio)
        check_seconds("lock_timeout", lock_timeout, allow_none=True)
        if history_manager is not None and not isinstance(history_manager, HistoryManager):
            msg = (
                f"`history_manager` must be a HistoryManager, got {type(history_manager).__name__}."
            )
            raise TypeError(msg)
        manager = history_manager or HistoryManager()
        key = manager.messages_key
        if key not in agent.channels:
            msg = (
                f"`agent`'s state has no {key!r} channel (its channels: "
                f"{', '.join(sorted(c for c in agent.channels if not c.startswith('__')))}). "
                "Add a messages channel (e.g. MessagesState) or pass "
                "HistoryManager(messages_key='<your channel>')."
            )
            raise ValueError(msg)
        checkpointer = getattr(agent, "checkpointer", None)
        if manager.memory_saver is None:
            if not isinstance(checkpointer, BaseCheckpointSaver):
                msg = (
                    "`agent` has no checkpointer and the history manager no `memory_saver`: "
                    "compile the graph with graph.compile(checkpointer=InMemorySaver()) (or a "
                    "SqliteSaver), or pass HistoryManager(memory_saver=...)."
                )
                raise ValueError(msg)
            # Threads are then compacted through the checkpointer of the graph they run on.
            manager._bind_graph_saver(checkpointer)
        elif not isinstance(checkpointer, BaseCheckpointSaver):
            # The graph was compiled without one: run a copy of it on the manager's saver.
            agent = agent.copy(update={"checkpointer": manager.memory_saver})
        elif checkpointer is not manager.memory_saver:
            msg = (
                "`memory_saver` is not the checkpointer `agent` was compiled with, so "
                "compactions would be written where the graph never reads them: pass the same "
                "object, or leave `memory_saver` unset to use the graph's checkpointer."
            )
            raise ValueError(msg)
        if trigger is not None and not isinstance(trigger, Trigger):
            msg = (
                "`trigger` must be a Trigger (TokenLimit, ContextFraction, MessageCount, "
                f"TimeSinceCompaction, When, Repetition, AnyOf, AllOf), got {trigger!r}."
            )
            raise TypeError(msg)
        if keep is not None and not isinstance(keep, KeepPolicy):
            msg = f"`keep` must be a KeepPolicy (KeepMessages(20), KeepTokens(2000)), got {keep!r}."
            raise TypeError(msg)
        if offload is not None and not isinstance(offload, OffloadToolResults):
            msg = (
                "`offload` must be an OffloadToolResults policy (OffloadToolResults(store, "
                f"min_tokens=500)), got {offload!r}."
            )
            raise TypeError(msg)
        self.agent = agent
        self.history_manager = manager
        self.token_limit = token_limit
        self.compaction_ratio = compaction_ratio
        self.trigger: Trigger = trigger or TokenLimit(token_limit)
        self.keep: KeepPolicy = keep or KeepRatio(compaction_ratio)
        self.offload = offload
        if offload is not None:
            # Compactions then read the stored results back for the summariser and keep
            # their references in the summary.
            manager._bind_offload(offload)
        self.overhead_tokens = declared_tokens(system_prompt, tools, manager.token_counter)
        self._first_seen: dict[str, float] = {}
        check_count("max_consecutive_failures", max_consecutive_failures)
        check_count("failure_cooldown_turns", failure_cooldown_turns)
        self.lock_timeout = lock_timeout
        self.max_consecutive_failures = max_consecutive_failures
        self.failure_cooldown_turns = failure_cooldown_turns
        self._circuits: dict[str, _Circuit] = {}
        self._results: dict[str, CompactionResult] = {}
        self._locks: ThreadLocks | None = None
        self._locks_pid = os.getpid()

    # ------------------------------------------------------------------ running the graph

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the graph like ``graph.invoke``, then compact the thread if it is over the limit.

        Returns:
            Exactly what the graph returns.
        """
        thread_id = self._thread_id(config)
        with self._hold(thread_id):
            output = self.agent.invoke(input, config, **kwargs)
            self._auto_compact(thread_id, output)
        return output

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async form of `invoke`."""
        thread_id = self._thread_id(config)
        async with self._ahold(thread_id):
            output = await self.agent.ainvoke(input, config, **kwargs)
            await self._aauto_compact(thread_id, output)
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
        thread_id = self._thread_id(config)
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
        thread_id = self._thread_id(config)
        if stream_mode is not None:
            return self._anative_stream(thread_id, input, config, stream_mode, kwargs)
        return self._aevent_stream(thread_id, input, config, kwargs)

    def _event_stream(
        self, thread_id: str, input: Any, config: Any, kwargs: dict[str, Any]
    ) -> Generator[dict[str, Any], None, None]:
        mapper = _EventMapper(thread_id)
        with self._hold(thread_id):
            for chunk in self.agent.stream(input, config, **self._event_kwargs(kwargs)):
                if (event := mapper.feed(chunk)) is not None:
                    yield event
            result = self._auto_compact(thread_id, mapper.values)
        yield from self._closing_events(thread_id, mapper, result)

    async def _aevent_stream(
        self, thread_id: str, input: Any, config: Any, kwargs: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        mapper = _EventMapper(thread_id)
        async with self._ahold(thread_id):
            async for chunk in self.agent.astream(input, config, **self._event_kwargs(kwargs)):
                if (event := mapper.feed(chunk)) is not None:
                    yield event
            result = await self._aauto_compact(thread_id, mapper.values)
        for event in self._closing_events(thread_id, mapper, result):
            yield event

    def _native_stream(
        self, thread_id: str, input: Any, config: Any, stream_mode: Any, kwargs: dict[str, Any]
    ) -> Generator[Any, None, None]:
        found, values = False, None
        with self._hold(thread_id):
            for chunk in self.agent.stream(input, config, stream_mode=stream_mode, **kwargs):
                is_values, payload = _native_final_values(
                    chunk, stream_mode, bool(kwargs.get("subgraphs")), kwargs.get("version")
                )
                if is_values:
                    found, values = True, payload
                yield chunk
            self._auto_compact(thread_id, values if found else None)

    async def _anative_stream(
        self, thread_id: str, input: Any, config: Any, stream_mode: Any, kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        found, values = False, None
        async with self._ahold(thread_id):
            async for chunk in self.agent.astream(input, config, stream_mode=stream_mode, **kwargs):
                is_values, payload = _native_final_values(
                    chunk, stream_mode, bool(kwargs.get("subgraphs")), kwargs.get("version")
                )
                if is_values:
                    found, values = True, payload
                yield chunk
            await self._aauto_compact(thread_id, values if found else None)

    def batch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run `invoke` for each input (one config per input, or one for all), in order."""
        configs = _configs_for(inputs, config)
        return [self.invoke(i, c, **kwargs) for i, c in zip(inputs, configs, strict=True)]

    async def abatch(
        self,
        inputs: Sequence[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run `ainvoke` for each input concurrently (runs on one thread run in order)."""
        configs = _configs_for(inputs, config)
        by_thread: dict[str, list[int]] = {}
        for index, c in enumerate(configs):
            by_thread.setdefault(self._thread_id(c), []).append(index)
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
        thread_id = self._thread_id(config)

        def events() -> Iterator[Any]:
            with self._hold(thread_id):
                yield from self.agent.stream_events(input, config, **kwargs)
                self._auto_compact(thread_id, None)

        return events()

    def astream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Pass ``graph.astream_events`` through, then compact the thread if over the limit."""
        thread_id = self._thread_id(config)

        async def events() -> AsyncIterator[Any]:
            async with self._ahold(thread_id):
                async for event in self.agent.astream_events(input, config, **kwargs):
                    yield event
                await self._aauto_compact(thread_id, None)

        return events()

    @staticmethod
    def _event_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
        passed = {k: v for k, v in kwargs.items() if k not in ("subgraphs", "version")}
        return {**passed, "stream_mode": _EVENT_STREAM_MODES, "subgraphs": True}

    def _closing_events(
        self, thread_id: str, mapper: _EventMapper, result: CompactionResult | None
    ) -> Iterator[dict[str, Any]]:
        if result is not None:
            yield result.to_event()
        yield {
            "type": "end",
            "thread_id": thread_id,
            "values": mapper.values,
            "interrupts": mapper.interrupts,
        }

    def _values_messages(self, values: Any) -> list[BaseMessage] | None:
        return _messages_of(values, self.history_manager.messages_key)

    # ------------------------------------------------------------------ compaction

    def compact(self, config: RunnableConfig) -> CompactionResult | None:
        """Compact the thread now, whatever its size.

        Returns:
            The result, or None when there is nothing to compact (too few messages).

        Raises:
            SummarizationError: The summariser failed; the history is unchanged.
            ThreadBusyError: The thread is interrupted or mid-run; compact after it resumes.
            StaleCheckpointError: A run finished meanwhile; nothing was written.
        """
        thread_id = self._thread_id(config)
        with self._hold(thread_id):
            started = time.perf_counter()
            try:
                result = self.history_manager.compact_thread(
                    head_config(thread_id), **self._compact_kwargs("manual")
                )
            except CompactionError as exc:
                messages = self._read_messages(self.agent.get_state(head_config(thread_id)))
                self._record(self._unchanged(thread_id, "manual", exc, started, messages))
                raise
        return self._record(result) if result is not None else None

    async def acompact(self, config: RunnableConfig) -> CompactionResult | None:
        """Async form of `compact`."""
        thread_id = self._thread_id(config)
        async with self._ahold(thread_id):
            started = time.perf_counter()
            try:
                result = await self.history_manager.acompact_thread(
                    head_config(thread_id), **self._compact_kwargs("manual")
                )
            except CompactionError as exc:
                snapshot = await self.agent.aget_state(head_config(thread_id))
                messages = self._read_messages(snapshot)
                self._record(self._unchanged(thread_id, "manual", exc, started, messages))
                raise
        return self._record(result) if result is not None else None

    def transcript(self, config: RunnableConfig) -> Transcript:
        """Everything the thread ever held, across all compactions (see `Transcript`)."""
        return self.history_manager.transcript(
            head_config(self._thread_id(config)), graph=self.agent
        )

    async def atranscript(self, config: RunnableConfig) -> Transcript:
        """Async form of `transcript`."""
        thread_id = self._thread_id(config)
        return await self.history_manager.atranscript(head_config(thread_id), graph=self.agent)

    def thread_stats(self, thread: str | RunnableConfig) -> ThreadStats:
        """Return the thread's size, utilisation of the limit, and compaction totals.

        Read from the checkpoints, so compactions by other processes count too.
        ``utilisation`` uses what the trigger sees (`context_tokens`: usage and the
        declared prompt and tools included); ``tokens`` is the messages' exact count.

        Args:
            thread: A thread id or a config naming one.
        """
        thread_id = thread if isinstance(thread, str) else self._thread_id(thread)
        stats = self.history_manager.thread_stats(head_config(thread_id), graph=self.agent)
        messages = self._read_messages(self.agent.get_state(head_config(thread_id)))
        return self._with_limit(stats, messages)

    async def athread_stats(self, thread: str | RunnableConfig) -> ThreadStats:
        """Async form of `thread_stats`."""
        thread_id = thread if isinstance(thread, str) else self._thread_id(thread)
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
            thread: A thread id or a config naming one.
        """
        thread_id = thread if isinstance(thread, str) else self._thread_id(thread)
        return self._results.get(thread_id)

    def over_limit(self, messages: Sequence[BaseMessage]) -> bool:
        """Whether ``messages`` are over the trigger's size (``token_limit`` by default).

        For a trigger that is not a size (`MessageCount`, `When` ...), ``token_limit``.
        """
        limit = self._token_threshold() or self.token_limit
        return self.context_tokens(messages) > limit

    def context_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """The tokens the model is sent for ``messages``.

        The provider's reported usage on the newest answer, where trustworthy, plus an exact
        count of the messages after it; else an exact count. The declared ``system_prompt``
        and ``tools`` are included.
        """
        counter = self.history_manager.token_counter
        return context_tokens(messages, counter, self.overhead_tokens)

    def _trigger_context(
        self, thread_id: str, messages: list[BaseMessage], values: Any
    ) -> TriggerContext:
        details = summary_details(messages)
        compacted_at = details.get("compacted_at")
        values = getattr(values, "value", values)  # GraphOutput with version="v2"
        return TriggerContext(
            thread_id=thread_id,
            messages=messages,
            tokens=self.context_tokens(messages),
            values=values if isinstance(values, dict) else {},
            last_compaction_at=compacted_at if isinstance(compacted_at, int | float) else None,
            first_seen_at=self._first_seen.setdefault(thread_id, time.time()),
        )

    def _auto_compact(self, thread_id: str, values: Any) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return self._auto_compact_unguarded(thread_id, values)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    async def _aauto_compact(self, thread_id: str, values: Any) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return await self._aauto_compact_unguarded(thread_id, values)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    def _auto_compact_unguarded(self, thread_id: str, values: Any) -> CompactionResult | None:
        messages = self._values_messages(values)
        if messages is None:  # the output does not carry the messages: read the state
            values, messages = self._state_of(self.agent.get_state(head_config(thread_id)))
        if self.offload is not None and self._answered_results(self.offload, thread_id, messages):
            try:
                offloaded = self.history_manager.offload_answered(
                    head_config(thread_id), self.offload, graph=self.agent
                )
            except Exception as exc:  # the results stay whole; the run has already succeeded
                _offload_failed(thread_id, exc)
            else:
                messages = offloaded or messages
        decision = self._decide(thread_id, messages, values)
        if not isinstance(decision, _Compact):
            return decision
        try:
            result = self.history_manager.compact_thread(
                head_config(thread_id), **self._compact_kwargs(decision.reason)
            )
        except Exception as exc:  # a compaction problem never fails the user's run
            return self._settle(thread_id, decision, messages, exc)
        return self._settle(thread_id, decision, messages, result)

    async def _aauto_compact_unguarded(
        self, thread_id: str, values: Any
    ) -> CompactionResult | None:
        messages = self._values_messages(values)
        if messages is None:  # the output does not carry the messages: read the state
            values, messages = self._state_of(await self.agent.aget_state(head_config(thread_id)))
        if self.offload is not None and self._answered_results(self.offload, thread_id, messages):
            try:
                offloaded = await self.history_manager.aoffload_answered(
                    head_config(thread_id), self.offload, graph=self.agent
                )
            except Exception as exc:  # the results stay whole; the run has already succeeded
                _offload_failed(thread_id, exc)
            else:
                messages = offloaded or messages
        decision = self._decide(thread_id, messages, values)
        if not isinstance(decision, _Compact):
            return decision
        try:
            result = await self.history_manager.acompact_thread(
                head_config(thread_id), **self._compact_kwargs(decision.reason)
            )
        except Exception as exc:  # a compaction problem never fails the user's run
            return self._settle(thread_id, decision, messages, exc)
        return self._settle(thread_id, decision, messages, result)

    @staticmethod
    def _answered_results(
        policy: OffloadToolResults, thread_id: str, messages: list[BaseMessage]
    ) -> bool:
        """Whether the run left tool results the agent answered for ``policy`` to offload.

        A pure check of the run's output, so a run with none reads and writes nothing more.
        """
        return bool(policy.plan_answered(messages, thread_id=thread_id).offloaded)

    def _state_of(self, snapshot: Any) -> tuple[Any, list[BaseMessage]]:
        """The state values and the checked messages channel of a snapshot."""
        messages = self._read_messages(snapshot)
        check_messages(messages, self.history_manager.messages_key)
        return snapshot.values, messages

    def _decide(
        self, thread_id: str, messages: list[BaseMessage], values: Any
    ) -> _Compact | CompactionResult | None:
        """Whether to compact now, the same decision for the sync and async paths.

        Returns:
            None (the trigger did not fire), a skipped result (the circuit breaker is open),
            or the go-ahead with the trigger's reason.
        """
        reason = safe_check(self.trigger, self._trigger_context(thread_id, messages, values))
        if reason is None:
            return None
        started = time.perf_counter()
        if (paused := self._circuit_paused(thread_id, reason, started, messages)) is not None:
            return self._record(paused)
        return _Compact(reason, started)

    def _settle(
        self,
        thread_id: str,
        decision: _Compact,
        messages: list[BaseMessage],
        outcome: CompactionResult | Exception | None,
    ) -> CompactionResult:
        """Record what a compaction came to (``None``: there was no safe cut)."""
        if isinstance(outcome, CompactionResult):
            return self._record(outcome)
        error = outcome if outcome is not None else _NoSafeCutError()
        return self._record(
            self._unchanged(thread_id, decision.reason, error, decision.started, messages)
        )

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

    def _compact_kwargs(self, trigger: str) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "graph": self.agent,
            "trigger": trigger,
            "max_summary_tokens": self.history_manager.max_summary_tokens or self._summary_tokens(),
        }

    def _token_threshold(self) -> int | None:
        """The token size the trigger compacts at; None for a trigger that is not a size."""
        return _threshold_of(self.trigger)

    def _summary_tokens(self) -> int:
        """The summary's length target: a quarter of the trigger's size, at most 4,000."""
        threshold = self._token_threshold()
        if threshold is None:  # a count, time, event or repetition trigger
            return DEFAULT_MAX_SUMMARY_TOKENS
        return min(4_000, max(32, threshold // 4))

    def _read_messages(self, snapshot: Any) -> list[BaseMessage]:
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        return list(values.get(self.history_manager.messages_key) or [])

    def _unchanged(
        self,
        thread_id: str,
        trigger: str,
        exc: BaseException,
        started: float,
        messages: list[BaseMessage] | None,
    ) -> CompactionResult:
        skipped = isinstance(
            exc,
            ThreadBusyError
            | StaleCheckpointError
            | NoReductionError
            | _NoSafeCutError
            | _CircuitOpenError,
        )
        if skipped:
            logger.info("Compaction of thread %s skipped: %s", thread_id, exc)
        else:
            logger.warning(
                "Compaction of thread %s failed; its history is unchanged: %s",
                thread_id,
                exc,
                exc_info=not isinstance(exc, CompactionError),
            )
        try:
            tokens = self.history_manager.token_counter.count(messages) if messages else 0
        except Exception:  # a channel holding things that are not messages
            tokens = 0
        count = len(messages) if messages is not None else 0
        return CompactionResult(
            thread_id=thread_id,
            status="skipped" if skipped else "failed",
            trigger=trigger,
            tokens_before=tokens,
            tokens_after=tokens,
            messages_before=count,
            messages_after=count,
            messages_summarized=0,
            previous_checkpoint_id=None,
            checkpoint_id=None,
            summary="",
            duration=time.perf_counter() - started,
            error=f"{type(exc).__name__}: {exc}",
        )

    def _circuit_paused(
        self, thread_id: str, trigger: str, started: float, messages: list[BaseMessage]
    ) -> CompactionResult | None:
        """A skipped result while the thread's circuit breaker is open, else None."""
        circuit = self._circuits.get(thread_id)
        if circuit is None or circuit.turns_to_wait == 0:
            return None
        circuit.turns_to_wait -= 1
        error = _CircuitOpenError(circuit.failures, circuit.turns_to_wait)
        return self._unchanged(thread_id, trigger, error, started, messages)

    def _record(self, result: CompactionResult) -> CompactionResult:
        if result.status == "failed":
            circuit = self._circuits.setdefault(result.thread_id, _Circuit())
            circuit.failures += 1
            if circuit.failures >= self.max_consecutive_failures:
                circuit.turns_to_wait = self.failure_cooldown_turns
                logger.warning(
                    "Thread %s: %d compactions failed in a row; not trying again for %d turns "
                    "(or until a manual compact succeeds).",
                    result.thread_id,
                    circuit.failures,
                    self.failure_cooldown_turns,
                )
        elif result.succeeded:
            self._circuits.pop(result.thread_id, None)
        threshold = self._token_threshold()
        if result.succeeded and threshold is not None and result.tokens_after > threshold:
            logger.warning(
                "Thread %s is still over the token limit after compaction (%d > %d tokens): "
                "a large message is kept or the summary is long. It will compact again after "
                "the next turn; consider a higher `compaction_ratio` or `token_limit`.",
                result.thread_id,
                result.tokens_after,
                threshold,
            )
            result = dataclasses.replace(result, still_over_limit=True)
        self._results[result.thread_id] = result
        return result

    # ------------------------------------------------------------------ graph API

    def _thread_id(self, config: RunnableConfig | None) -> str:
        merged = merge_configs(getattr(self.agent, "config", None), config)
        thread_id = (merged.get("configurable") or {}).get("thread_id")
        if thread_id is None or thread_id == "":
            msg = (
                "`config` has no thread id, so there is no thread to keep or compact: pass "
                "config={'configurable': {'thread_id': '<your thread>'}} (or bind one with "
                "with_config)."
            )
            raise ValueError(msg)
        return str(thread_id)

    def get_state(self, config: RunnableConfig, **kwargs: Any) -> Any:
        """Return the thread's state, as ``graph.get_state``."""
        return self.agent.get_state(config, **kwargs)

    async def aget_state(self, config: RunnableConfig, **kwargs: Any) -> Any:
        """Return the thread's state, as ``graph.aget_state``."""
        return await self.agent.aget_state(config, **kwargs)

    def get_state_history(self, config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        """Iterate the thread's checkpoints, newest first, as ``graph.get_state_history``."""
        return self.agent.get_state_history(config, **kwargs)  # type: ignore[no-any-return]

    def aget_state_history(self, config: RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        """Async form of `get_state_history`."""
        return self.agent.aget_state_history(config, **kwargs)  # type: ignore[no-any-return]

    def update_state(self, config: RunnableConfig, values: Any, **kwargs: Any) -> RunnableConfig:
        """Update the thread's state, as ``graph.update_state`` (holding the thread's lock)."""
        with self._hold(self._thread_id(config)):
            return self.agent.update_state(config, values, **kwargs)  # type: ignore[no-any-return]

    async def aupdate_state(
        self, config: RunnableConfig, values: Any, **kwargs: Any
    ) -> RunnableConfig:
        """Async form of `update_state`."""
        async with self._ahold(self._thread_id(config)):
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


def _configs_for(
    inputs: Sequence[Any], config: RunnableConfig | Sequence[RunnableConfig] | None
) -> list[RunnableConfig | None]:
    if config is None or isinstance(config, dict):
        return [config] * len(inputs)
    configs: list[RunnableConfig | None] = list(config)
    if len(configs) != len(inputs):
        msg = (
            "`config` must be one config or one per input: "
            f"got {len(configs)} for {len(inputs)} inputs."
        )
        raise ValueError(msg)
    return configs


def _offload_failed(thread_id: str, exc: Exception) -> None:
    logger.warning(
        "Thread %s: could not offload its answered tool results; they stay whole: %s",
        thread_id,
        exc,
        exc_info=not isinstance(exc, CompactionError),
    )


def _threshold_of(trigger: Trigger) -> int | None:
    """The smallest token size at which ``trigger`` fires, if it fires on size at all."""
    if isinstance(trigger, TokenLimit):
        return trigger.tokens
    if isinstance(trigger, ContextFraction):
        return trigger.limit
    if isinstance(trigger, AnyOf):  # the first size reached fires
        sizes = [size for t in trigger.triggers if (size := _threshold_of(t)) is not None]
        return min(sizes) if sizes else None
    if isinstance(trigger, AllOf):  # a size only when every part is one: the largest
        all_sizes = [_threshold_of(t) for t in trigger.triggers]
        if any(size is None for size in all_sizes):
            return None
        return max(size for size in all_sizes if size is not None)
    return None


def _messages_of(output: Any, key: str) -> list[BaseMessage] | None:
    """The messages in a run's output, or None when the output does not carry them."""
    value = getattr(output, "value", output)  # GraphOutput with version="v2"
    if isinstance(value, dict):
        messages = value.get(key)
        if isinstance(messages, list) and all(isinstance(m, BaseMessage) for m in messages):
            return messages
    return None
