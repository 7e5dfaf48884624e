"""When to compact, and what a compaction came to: what every automatic form shares.

`CompactionDecisions` is the base of the wrapper (after each run), and of the middleware
and the node (before each model call, through `_in_graph.InGraphCompaction`). It holds
their settings (trigger, keep, breaker, the declared system prompt and tools), checked once
(`_configure`); asks the trigger on the thread's messages; minds the circuit breaker; and
records each compaction's result, flagging one still over the limit. Only where the
messages come from and how the compaction is persisted differ between the forms.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from compacting_supervisor._arguments import check_policies
from compacting_supervisor._breaker import Circuit, CircuitBreaker, NoSafeCutError, unchanged_result
from compacting_supervisor._recent import RecentThreads
from compacting_supervisor._settings import check_count, check_ratio
from compacting_supervisor._usage import context_tokens, declared_tokens, summary_details
from compacting_supervisor.history_manager import DEFAULT_MAX_SUMMARY_TOKENS, HistoryManager
from compacting_supervisor.keep import KeepPolicy, KeepRatio
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

__all__ = ["Compact", "CompactionDecisions", "threshold_of"]


@dataclasses.dataclass(frozen=True)
class Compact:
    """The go-ahead for an automatic compaction."""

    reason: str
    started: float


class CompactionDecisions:
    """The settings and decisions an automatic compaction shares across forms.

    A form calls `_configure` in its ``__init__``; a `with_config` copy of the wrapper shares
    the results, first-seen times and breaker with the wrapper it was made from.
    """

    history_manager: HistoryManager
    trigger: Trigger
    keep: KeepPolicy
    offload: OffloadToolResults | None
    token_limit: int
    compaction_ratio: float
    overhead_tokens: int
    _breaker: CircuitBreaker
    _first_seen: dict[str, float]
    _results: dict[str, CompactionResult]

    def _configure(
        self,
        manager: HistoryManager,
        *,
        token_limit: int,
        compaction_ratio: float,
        trigger: Trigger | None,
        keep: KeepPolicy | None,
        offload: OffloadToolResults | None,
        system_prompt: str | int | None,
        tools: Sequence[Any] | int | None,
        max_consecutive_failures: int,
        failure_cooldown_turns: int,
    ) -> None:
        """Check the settings (each error names its parameter) and keep them."""
        check_count("token_limit", token_limit, unit=" number of tokens")
        check_ratio(compaction_ratio)
        check_count("max_consecutive_failures", max_consecutive_failures)
        check_count("failure_cooldown_turns", failure_cooldown_turns)
        check_policies(
            trigger=trigger,
            keep=keep,
            offload=offload,
            token_limit=token_limit,
            compaction_ratio=compaction_ratio,
        )
        self.history_manager = manager
        self.token_limit = int(token_limit)
        self.compaction_ratio = float(compaction_ratio)
        self.trigger = trigger or TokenLimit(self.token_limit)
        self.keep = keep or KeepRatio(self.compaction_ratio)
        self.offload = offload
        if offload is not None:
            # Compactions then read the stored results back for the summariser and keep
            # their references in the summary.
            manager._bind_offload(offload)
        self.overhead_tokens = declared_tokens(system_prompt, tools, manager.token_counter)
        # A form lives as long as its process and may see any number of threads: what it
        # keeps per thread is kept for the most recent ones (`RecentThreads`).
        self._first_seen = RecentThreads()
        self._breaker = CircuitBreaker(max_consecutive_failures, failure_cooldown_turns)
        self._results = RecentThreads()

    @property
    def max_consecutive_failures(self) -> int:
        """Failed compactions in a row after which a thread's automatic compaction pauses."""
        return self._breaker.max_consecutive_failures

    @property
    def failure_cooldown_turns(self) -> int:
        """How many turns that pause lasts."""
        return self._breaker.failure_cooldown_turns

    @property
    def _circuits(self) -> dict[str, Circuit]:
        return self._breaker.circuits

    def _trigger_context(
        self, thread_id: str, messages: list[BaseMessage], values: Any
    ) -> TriggerContext:
        details = summary_details(messages)
        compacted_at = details.get("compacted_at")
        values = getattr(values, "value", values)  # GraphOutput with version="v2"
        return TriggerContext(
            thread_id=thread_id,
            messages=messages,
            tokens=self._context_tokens(messages, thread_id),
            values=values if isinstance(values, dict) else {},
            last_compaction_at=compacted_at if isinstance(compacted_at, int | float) else None,
            first_seen_at=self._first_seen.setdefault(thread_id, time.time()),
        )

    def _context_tokens(self, messages: Sequence[BaseMessage], thread_id: str | None = None) -> int:
        """The tokens the model is sent for ``messages``, its prompt and tools included."""
        counter = self.history_manager.token_counter
        return context_tokens(messages, counter, self._overhead(thread_id))

    def _overhead(self, thread_id: str | None) -> int:
        """Tokens of the system prompt and tool schemas the model is sent on this thread."""
        return self.overhead_tokens

    def _decide(
        self, thread_id: str, messages: list[BaseMessage], values: Any
    ) -> Compact | CompactionResult | None:
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
        return Compact(reason, started)

    def _settle(
        self,
        thread_id: str,
        decision: Compact,
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
        sent = result.tokens_after + self._overhead(result.thread_id)  # what the trigger sees
        if result.succeeded and threshold is not None and sent > threshold:
            logger.warning(
                "Thread %s is still over the token limit after compaction (%d > %d tokens): "
                "a large message is kept or the summary is long. It will compact again after "
                "the next turn; consider a higher `compaction_ratio` or `token_limit`.",
                result.thread_id,
                sent,
                threshold,
            )
            result = dataclasses.replace(result, still_over_limit=True)
        self._results[result.thread_id] = result
        return result

    def _compact_kwargs(self, trigger: str, keep: KeepPolicy | None = None) -> dict[str, Any]:
        """What a compaction is asked for: its keep policy, trigger name and summary cap."""
        return {
            "keep": keep or self.keep,
            "trigger": trigger,
            "max_summary_tokens": self.history_manager.max_summary_tokens or self._summary_tokens(),
        }

    def _token_threshold(self) -> int | None:
        """The token size the trigger compacts at; None for a trigger that is not a size."""
        return threshold_of(self.trigger)

    def _summary_tokens(self) -> int:
        """The summary's length target: a quarter of the trigger's size, at most 4,000."""
        threshold = self._token_threshold()
        if threshold is None:  # a count, time, event or repetition trigger
            return DEFAULT_MAX_SUMMARY_TOKENS
        return min(4_000, max(32, threshold // 4))


def threshold_of(trigger: Trigger) -> int | None:
    """The smallest token size at which ``trigger`` fires, if it fires on size at all."""
    if isinstance(trigger, TokenLimit):
        return trigger.tokens
    if isinstance(trigger, ContextFraction):
        return trigger.limit
    if isinstance(trigger, AnyOf):  # the first size reached fires
        sizes = [size for t in trigger.triggers if (size := threshold_of(t)) is not None]
        return min(sizes) if sizes else None
    if isinstance(trigger, AllOf):  # a size only when every part is one: the largest
        all_sizes = [threshold_of(t) for t in trigger.triggers]
        if any(size is None for size in all_sizes):
            return None
        return max(size for size in all_sizes if size is not None)
    return None
