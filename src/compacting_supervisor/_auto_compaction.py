"""What the wrapper does after each run: offload, ask the trigger, compact, record.

`AutoCompaction` is the base of `CompactingSupervisor` that holds this step. After a run it
reads the thread's messages (from the run's output when it carries them), moves answered
tool results to the ``offload`` policy's store, asks the trigger, minds the circuit breaker
(`compacting_supervisor._breaker`), and asks the history manager to compact. Whatever goes
wrong is recorded as the thread's last result, never raised: the user's run has already
succeeded. The sync and async forms differ only in the lines that read the state, offload
and compact.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from compacting_supervisor._breaker import CircuitBreaker, NoSafeCutError, unchanged_result
from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._events import output_messages
from compacting_supervisor._messages import check_messages
from compacting_supervisor._usage import context_tokens, summary_details
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.history_manager import DEFAULT_MAX_SUMMARY_TOKENS, HistoryManager
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult
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

__all__ = ["AutoCompaction"]


@dataclasses.dataclass(frozen=True)
class _Compact:
    """The go-ahead for an automatic compaction."""

    reason: str
    started: float


class AutoCompaction:
    """The automatic compaction after a run, and the record of every compaction's result.

    The wrapper sets these attributes in its ``__init__``; a `with_config` copy shares the
    results, first-seen times and breaker with the wrapper it was made from.
    """

    agent: Any
    history_manager: HistoryManager
    trigger: Trigger
    keep: KeepPolicy
    offload: OffloadToolResults | None
    overhead_tokens: int
    _breaker: CircuitBreaker
    _first_seen: dict[str, float]
    _results: dict[str, CompactionResult]

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

    def _trigger_context(
        self, thread_id: str, messages: list[BaseMessage], values: Any
    ) -> TriggerContext:
        details = summary_details(messages)
        compacted_at = details.get("compacted_at")
        values = getattr(values, "value", values)  # GraphOutput with version="v2"
        return TriggerContext(
            thread_id=thread_id,
            messages=messages,
            tokens=self._context_tokens(messages),
            values=values if isinstance(values, dict) else {},
            last_compaction_at=compacted_at if isinstance(compacted_at, int | float) else None,
            first_seen_at=self._first_seen.setdefault(thread_id, time.time()),
        )

    def _context_tokens(self, messages: Sequence[BaseMessage]) -> int:
        counter = self.history_manager.token_counter
        return context_tokens(messages, counter, self.overhead_tokens)

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
        if (paused := self._breaker.pause(thread_id)) is not None:
            return self._record(self._unchanged(thread_id, reason, paused, started, messages))
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
        error = outcome if outcome is not None else NoSafeCutError()
        return self._record(
            self._unchanged(thread_id, decision.reason, error, decision.started, messages)
        )

    def _unchanged(
        self,
        thread_id: str,
        trigger: str,
        exc: BaseException,
        started: float,
        messages: list[BaseMessage] | None,
    ) -> CompactionResult:
        counter = self.history_manager.token_counter
        return unchanged_result(
            thread_id, trigger, exc, started=started, messages=messages, counter=counter
        )

    def _record(self, result: CompactionResult) -> CompactionResult:
        """Count ``result`` on the breaker, flag it if still over the limit, and keep it."""
        self._breaker.count(result)
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

    def _compact_kwargs(self, trigger: str, keep: KeepPolicy | None = None) -> dict[str, Any]:
        return {
            "keep": keep or self.keep,
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
