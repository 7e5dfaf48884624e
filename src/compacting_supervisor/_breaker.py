"""The wrapper's circuit breaker, and what a compaction that did not happen comes to.

An automatic compaction either changes the thread or leaves it as it was. Left as it was, it
is *skipped* (the thread was busy or moved on, there was no safe cut, nothing shrank, the
breaker is open: it will simply happen later) or *failed* (the summariser or the saver went
wrong). `unchanged_result` makes that result; `CircuitBreaker` counts the failed ones per
thread and, after ``max_consecutive_failures`` in a row, pauses automatic compaction of the
thread for ``failure_cooldown_turns`` turns. A success closes it again.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from langchain_core.messages import BaseMessage

from compacting_supervisor._recent import RecentThreads
from compacting_supervisor.errors import (
    CompactionError,
    NoReductionError,
    StaleCheckpointError,
    ThreadBusyError,
)
from compacting_supervisor.results import CompactionResult
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["CircuitBreaker", "CircuitOpenError", "NoSafeCutError", "unchanged_result"]


class NoSafeCutError(CompactionError):
    """The thread is over its trigger, but nothing before its latest turn may be cut."""

    def __init__(self) -> None:
        super().__init__(
            "over the limit, but there is no safe place to cut: everything before the latest "
            "human message is one tool-calling exchange, or the thread is too short. It "
            "compacts once a later turn adds a safe boundary."
        )


class CircuitOpenError(CompactionError):
    """Automatic compaction of the thread is paused after consecutive failures."""

    def __init__(self, failures: int, turns_left: int) -> None:
        super().__init__(
            f"paused after {failures} consecutive failed compactions; it tries again in "
            f"{turns_left} turn(s) or on a manual compact()"
        )


_SKIPPED = (
    ThreadBusyError,
    StaleCheckpointError,
    NoReductionError,
    NoSafeCutError,
    CircuitOpenError,
)
"""Errors after which a compaction is skipped (it happens later), not failed."""


@dataclasses.dataclass
class Circuit:
    """A thread's circuit breaker: consecutive failures and turns left to wait."""

    failures: int = 0
    turns_to_wait: int = 0


class CircuitBreaker:
    """Pauses a thread's automatic compaction after consecutive failures.

    Args:
        max_consecutive_failures: Failed compactions in a row that open the breaker.
        failure_cooldown_turns: Turns it stays open; then one attempt is made.
    """

    def __init__(self, max_consecutive_failures: int, failure_cooldown_turns: int) -> None:
        self.max_consecutive_failures = max_consecutive_failures
        self.failure_cooldown_turns = failure_cooldown_turns
        self.circuits: dict[str, Circuit] = RecentThreads()

    def pause(self, thread_id: str) -> CircuitOpenError | None:
        """The error to skip this turn's compaction with while the breaker is open, else None.

        Each call while it is open counts one turn of the cool-down.
        """
        circuit = self.circuits.get(thread_id)
        if circuit is None or circuit.turns_to_wait == 0:
            return None
        circuit.turns_to_wait -= 1
        return CircuitOpenError(circuit.failures, circuit.turns_to_wait)

    def count(self, result: CompactionResult) -> None:
        """Count a failure (opening the breaker at the limit), or close it on a success."""
        if result.status == "failed":
            circuit = self.circuits.setdefault(result.thread_id, Circuit())
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
            self.circuits.pop(result.thread_id, None)


def unchanged_result(
    thread_id: str,
    trigger: str,
    exc: BaseException,
    *,
    started: float,
    messages: list[BaseMessage] | None,
    counter: TokenCounter,
) -> CompactionResult:
    """The result of a compaction that left the thread as it was, skipped or failed.

    Args:
        thread_id: The thread.
        trigger: What asked for the compaction (``"manual"``, the trigger's name).
        exc: Why it did not happen.
        started: ``time.perf_counter()`` when it began.
        messages: The thread's messages (their size is reported), or None if unknown.
        counter: Counts them.
    """
    skipped = isinstance(exc, _SKIPPED)
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
        tokens = counter.count(messages) if messages else 0
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
