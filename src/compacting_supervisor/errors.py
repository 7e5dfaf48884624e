"""Exceptions raised when a compaction cannot be carried out.

Every one of them means the thread's history was left exactly as it was.
"""

from __future__ import annotations

__all__ = [
    "CheckpointerError",
    "CompactionError",
    "NoReductionError",
    "StaleCheckpointError",
    "SummarizationError",
    "ThreadBusyError",
]


class CompactionError(Exception):
    """A compaction did not happen; the thread's history is unchanged.

    Attributes:
        thread_id: The thread that was being compacted, when known.
    """

    def __init__(self, message: str, *, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class SummarizationError(CompactionError):
    """The summariser raised, timed out, or returned empty or placeholder text.

    Attributes:
        text: What the summariser returned, when it returned something unusable.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, text: str | None = None
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.text = text


class CheckpointerError(CompactionError):
    """The checkpointer failed to read the thread or to write the compacted checkpoint.

    The saver's own exception (a ``sqlite3.OperationalError`` for a read-only or locked
    file, a ``psycopg`` error, ...) is chained as ``__cause__``. A failed read writes
    nothing; a failed ``put`` stores no new head, so the history is as it was.

    Attributes:
        operation: ``"read"`` or ``"write"``.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, operation: str = "write"
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.operation = operation


class ThreadBusyError(CompactionError):
    """The thread is not idle (an interrupt, pending writes or tasks still to run).

    Compacting it now would drop the interrupt or re-run finished work, so the compaction
    waits for a later turn.

    Attributes:
        reason: What keeps the thread busy.
    """

    def __init__(self, message: str, *, thread_id: str | None = None, reason: str = "") -> None:
        super().__init__(message, thread_id=thread_id)
        self.reason = reason


class StaleCheckpointError(CompactionError):
    """The thread's head checkpoint moved while the compaction was being prepared.

    A run finished meanwhile; writing the compaction would hide that turn, so nothing was
    written.

    Attributes:
        expected_checkpoint_id: The checkpoint the compaction was computed from.
        head_checkpoint_id: The thread's head when the compaction was about to be written.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        expected_checkpoint_id: str | None = None,
        head_checkpoint_id: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.expected_checkpoint_id = expected_checkpoint_id
        self.head_checkpoint_id = head_checkpoint_id


class NoReductionError(CompactionError):
    """The compacted history would not be smaller than the current one; nothing was written.

    This happens when the summary is longer than the few messages it would replace: raise
    ``compaction_ratio`` or lower ``max_summary_tokens``.

    Attributes:
        tokens_before: Tokens of the current history.
        tokens_after: Tokens the compacted history would have had.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, tokens_before: int, tokens_after: int
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.tokens_before = tokens_before
        self.tokens_after = tokens_after
