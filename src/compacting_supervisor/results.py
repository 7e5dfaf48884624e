"""What a compaction produced: `MessageCompaction` (in memory) and `CompactionResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage

__all__ = [
    "CacheUsage",
    "CompactionResult",
    "CompactionStatus",
    "MessageCompaction",
    "ThreadStats",
]

CompactionStatus = Literal["compacted", "failed", "skipped"]


@dataclass(frozen=True)
class CacheUsage:
    """The provider's prompt cache over some model calls, as their replies reported it.

    Read from each reply's ``usage_metadata["input_token_details"]`` (langchain-core's
    ``cache_read`` and ``cache_creation``: Anthropic reports both, OpenAI reads only, as
    ``prompt_tokens_details.cached_tokens``). Only the replies that report a cache figure
    count; where none does, the figures are unknown and the caller holds None, not zeros.
    """

    model_calls: int
    """AIMessages (model replies) that reported a cache figure, each counted once."""
    input_tokens: int
    """Their input tokens, cached ones included (the provider's ``input_tokens``)."""
    cache_read: int | None
    """Input tokens read from the cache, summed (None: no reply reported reads)."""
    cache_creation: int | None
    """Input tokens written to the cache, summed (None: no reply reported writes, as with
    OpenAI, which does not bill them apart)."""
    unreported_calls: int = 0
    """AIMessages in the same span that reported no cache figure, not counted above: a
    model that does not report one, or a message no model wrote (a hand-off)."""

    @property
    def hit_rate(self) -> float | None:
        """``cache_read / input_tokens``: the share of input served from the cache."""
        if self.cache_read is None or not self.input_tokens:
            return None
        return self.cache_read / self.input_tokens


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
    summarizer_cache_read: int | None = None
    """Of ``summarizer_input_tokens``, those the provider read from its prompt cache, as
    its replies reported (None: not reported by every reply)."""
    summarizer_cache_creation: int | None = None
    """Those it wrote to its cache (None: not reported by every reply)."""
    agent_cache: CacheUsage | None = None
    """The agent's prompt cache over the session this compaction closes: the AIMessages
    written since the previous compaction, as their ``usage_metadata`` reported it (None:
    none reported a cache figure)."""


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
        ('compacted', 6, 4)
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
    summarizer_cache_read: int | None = None
    """Of ``summarizer_input_tokens``, those the provider read from its prompt cache
    (``usage_metadata["input_token_details"]["cache_read"]``; None: not reported by every
    reply, as with a model that does not report it)."""
    summarizer_cache_creation: int | None = None
    """Those it wrote to its cache (``cache_creation``; None: not reported, as with OpenAI,
    which bills no writes)."""
    agent_cache: CacheUsage | None = None
    """The agent's prompt cache over the session this compaction closes (the model calls
    since the previous compaction), as their replies reported it: compare its
    ``hit_rate`` with the next session's in `ThreadStats.cache_by_session`. None when no
    reply reported a cache figure."""
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
        event["agent_cache_hit_rate"] = self.agent_cache.hit_rate if self.agent_cache else None
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
    cache: CacheUsage | None = None
    """The agent's prompt cache over the thread's history, as its model's replies (the
    thread's AIMessages, each once) reported it in ``usage_metadata``: the sessions of
    `cache_by_session` that are known, summed. None when none is (a model or provider
    that reports no cache figure)."""
    cache_by_session: tuple[CacheUsage | None, ...] = ()
    """The same per session, oldest first: before the first compaction, between each two,
    and since the last (``compactions + 1`` entries), so the hit rate before and after
    each compaction shows. Each compaction's entry is its `CompactionResult.agent_cache`,
    stored in its checkpoint's metadata; the last is read from the thread's messages now
    (None until the agent answers after a compaction). None also when a session's replies
    reported no cache figure, or its compaction's metadata does not record it (written
    inside a graph run, or by an earlier version)."""
