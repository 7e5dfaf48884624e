"""What a compaction produced: `MessageCompaction` (in memory) and `CompactionResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage

__all__ = ["CompactionResult", "CompactionStatus", "MessageCompaction", "ThreadStats"]

CompactionStatus = Literal["compacted", "failed", "skipped"]


@dataclass(frozen=True)
class MessageCompaction:
    """A compacted message list, computed without touching any checkpoint."""

    messages: list[BaseMessage]
    """The new history: ``[system messages..., summary, kept messages...]``."""
    summary: str
    """The summary text (without the prefix the summary message adds)."""
    summary_message: BaseMessage
    """The marked message that carries the summary."""
    summarized: list[BaseMessage]
    """The conversation messages folded into the summary by this compaction."""
    kept: list[BaseMessage]
    """The conversation messages kept verbatim."""
    previous_summary: str | None = None
    """The running summary this one extends, if there was one."""
    summarizer_calls: int = 0
    """Summariser calls made (pieces of a long input, retries included)."""
    summarizer_input_tokens: int = 0
    """Tokens the summariser read, over all its calls (0 for the extractive summariser):
    the provider's reported ``usage_metadata`` where the reply has it, else counted."""
    summarizer_output_tokens: int = 0
    """Tokens of the summaries it wrote."""
    tokens_before: int = 0
    """Tokens of the history given, as it was (before any offload)."""
    tokens_after: int = 0
    """Tokens of the new history (``messages``)."""
    offloaded_results: int = 0
    """Tool results moved to the offload store by this compaction (0 without ``offload``)."""


@dataclass(frozen=True)
class CompactionResult:
    """The outcome of one compaction of a thread (or of an attempt that changed nothing).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from compacting_supervisor import CompactingSupervisor
        >>> from compacting_supervisor.testing import echo_graph
        >>> supervisor = CompactingSupervisor(echo_graph(checkpointer=InMemorySaver()))
        >>> config = {"configurable": {"thread_id": "t"}}
        >>> for _ in range(3):
        ...     _ = supervisor.invoke({"messages": [("user", "Hi")]}, config)
        >>> result = supervisor.compact(config)
        >>> result.status, result.messages_before, result.messages_summarized
        ('compacted', 6, 3)
        >>> result.tokens_after < result.tokens_before
        True
    """

    thread_id: str
    """The thread that was compacted."""
    status: CompactionStatus
    """``"compacted"``; ``"failed"`` (summariser error: history unchanged); or ``"skipped"``
    (the thread was busy or moved on: history unchanged, retried after a later turn)."""
    trigger: str
    """Why it ran: the trigger that fired after a run (``"token_limit"``,
    ``"context_fraction"``, ``"message_count"``, ``"time_since_compaction"``, a `When`'s
    name, ``"repetition"``; ``"a+b"`` for `AllOf`), or ``"manual"`` for ``compact()``."""
    tokens_before: int
    """Tokens of the messages channel before the compaction."""
    tokens_after: int
    """Tokens after it (equal to ``tokens_before`` when nothing was written)."""
    messages_before: int
    """Messages in the channel before the compaction."""
    messages_after: int
    """Messages after it."""
    messages_summarized: int
    """Conversation messages folded into the summary by this compaction."""
    previous_checkpoint_id: str | None
    """The checkpoint that was compacted; it stays in ``get_state_history``."""
    checkpoint_id: str | None
    """The new head checkpoint holding the compacted history (None when nothing was written)."""
    summary: str
    """The running summary now at the top of the history ("" when nothing was written)."""
    duration: float
    """Seconds the compaction took, summariser included."""
    error: str | None = None
    """Why nothing was written, for ``"failed"`` and ``"skipped"``."""
    still_over_limit: bool = False
    """The compacted thread's messages are still over the trigger's size (``token_limit``
    by default; a very large message is kept, or the summary target is too high); the next
    turn compacts again."""
    summarizer_calls: int = 0
    """Summariser calls made (pieces of a long input, retries included)."""
    summarizer_input_tokens: int = 0
    """Tokens the summariser read over all its calls (0 for the extractive summariser):
    the provider's reported ``usage_metadata`` where the reply has it, else counted."""
    summarizer_output_tokens: int = 0
    """Tokens of the summaries it wrote."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for details that do not fit the fields above."""

    @property
    def succeeded(self) -> bool:
        """Whether the compacted history was written."""
        return self.status == "compacted"

    @property
    def tokens_saved(self) -> int:
        """How many tokens the compaction removed from the messages channel."""
        return self.tokens_before - self.tokens_after

    @property
    def reduction(self) -> float:
        """The fraction of the thread's tokens the compaction removed (0.0 to 1.0)."""
        return self.tokens_saved / self.tokens_before if self.tokens_before else 0.0

    def to_event(self) -> dict[str, Any]:
        """Return the ``{"type": "compaction", ...}`` stream event for this result."""
        event: dict[str, Any] = {"type": "compaction", **asdict(self)}
        event["reduction"] = self.reduction
        event["tokens_saved"] = self.tokens_saved
        event["result"] = self
        return event


@dataclass(frozen=True)
class ThreadStats:
    """A thread's context use and its compactions, read from its checkpoints.

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from compacting_supervisor import CompactingSupervisor
        >>> from compacting_supervisor.testing import echo_graph
        >>> supervisor = CompactingSupervisor(echo_graph(checkpointer=InMemorySaver()))
        >>> config = {"configurable": {"thread_id": "t"}}
        >>> for _ in range(3):
        ...     _ = supervisor.invoke({"messages": [("user", "Hi")]}, config)
        >>> _ = supervisor.compact(config)
        >>> stats = supervisor.thread_stats("t")
        >>> stats.compactions, stats.tokens_saved > 0
        (1, True)
    """

    thread_id: str
    """The thread."""
    messages: int
    """Messages in the thread now."""
    tokens: int
    """Tokens of those messages (exact count)."""
    compactions: int
    """Compactions written to the thread, by any process."""
    tokens_saved: int
    """Tokens all those compactions removed, summed."""
    messages_summarized: int
    """Messages folded into the running summary, summed."""
    summarizer_tokens: int
    """Tokens the summariser read and wrote, summed (where recorded)."""
    last_compaction_at: str | None = None
    """When the last compaction was written (the checkpoint's ISO timestamp)."""
    token_limit: int | None = None
    """The limit the supervisor compacts at (None when read without a supervisor)."""
    utilisation: float | None = None
    """What the trigger sees over its size: 1.0 is at the limit (None without a
    supervisor, or with a trigger that is not a size)."""
