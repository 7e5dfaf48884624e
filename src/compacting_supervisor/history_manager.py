"""`HistoryManager`: decides the cut, asks the summariser, rewrites the checkpoint.

Each operation is written once, as a generator that yields the I/O it needs (read the state,
read the head, summarise, put) and receives the answers. A sync driver and an async driver
run the same generator, so ``compact_thread`` and ``acompact_thread`` cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from compacting_supervisor._checkpoint import build_compacted_checkpoint, check_head, head_config
from compacting_supervisor._cut import plan_cut
from compacting_supervisor._messages import (
    METADATA_KEY,
    SUMMARY_MARKER,
    SUMMARY_PREFIX,
    check_messages,
    summary_meta,
    summary_text,
    text_of,
)
from compacting_supervisor._refs_note import for_summariser, listed_refs, refs_note
from compacting_supervisor._settings import check_count, check_seconds
from compacting_supervisor.archive import Transcript, build_transcript
from compacting_supervisor.errors import (
    CompactionError,
    NoReductionError,
    SummarizationError,
    ThreadBusyError,
)
from compacting_supervisor.keep import KeepPolicy, KeepRatio
from compacting_supervisor.offload import (
    OffloadedResult,
    OffloadToolResults,
    offloaded_ref,
    restored,
)
from compacting_supervisor.redaction import redact_secrets
from compacting_supervisor.results import CompactionResult, MessageCompaction, ThreadStats
from compacting_supervisor.summarizers import (
    ChatModelSummarizer,
    ExtractiveSummarizer,
    Summarizer,
    _arun_summarizer,
    _Replies,
    _reported_usage,
    _run_summarizer,
    resolve_chat_model,
)
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["SUMMARY_PREFIX", "HistoryManager"]

DEFAULT_MAX_SUMMARY_TOKENS = 1000

_T = TypeVar("_T")
_warned_offline_default = False


# The I/O a flow asks its driver for.
@dataclass(frozen=True)
class _ReadState:
    thread_id: str
    graph: Any
    saver: BaseCheckpointSaver[Any]


@dataclass(frozen=True)
class _ReadHead:
    thread_id: str
    saver: BaseCheckpointSaver[Any]
    checkpoint_id: str | None = None


@dataclass(frozen=True)
class _ListCompactions:
    thread_id: str
    saver: BaseCheckpointSaver[Any]


@dataclass(frozen=True)
class _Summarize:
    previous: str | None
    messages: list[BaseMessage]
    max_tokens: int
    replies: _Replies  # filled by the call: the usage each model reply reported


@dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True)
class _Put:
    saver: BaseCheckpointSaver[Any]
    config: RunnableConfig
    checkpoint: Any
    metadata: Any
    new_versions: dict[str, Any]


@dataclass(frozen=True)
class _ThreadState:
    messages: list[BaseMessage]
    checkpoint_id: str | None
    busy: str | None


@dataclass(frozen=True)
class _StoreResults:
    policy: OffloadToolResults
    results: list[OffloadedResult]


@dataclass(frozen=True)
class _ReadResults:
    policy: OffloadToolResults
    refs: list[str]


_Op = (
    _ReadState
    | _ReadHead
    | _ListCompactions
    | _Summarize
    | _Sleep
    | _StoreResults
    | _ReadResults
    | _Put
)
_Flow = Generator[_Op, Any, _T]


def _thread_id(config: RunnableConfig | None, parameter: str = "config") -> str:
    thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
    if thread_id is None or thread_id == "":
        msg = (
            f"`{parameter}` has no thread id: pass "
            "config={'configurable': {'thread_id': '<your thread>'}}."
        )
        raise ValueError(msg)
    return str(thread_id)


def _keep_policy(keep: Any) -> KeepPolicy:
    if isinstance(keep, KeepPolicy):
        return keep
    if isinstance(keep, int | float) and not isinstance(keep, bool):
        return KeepRatio(keep)
    msg = (
        "`keep` must be a KeepPolicy (KeepMessages(20), KeepTokens(2000), KeepRatio(0.5)), "
        f"got {type(keep).__name__}."
    )
    raise TypeError(msg)


@dataclass
class _SummarizerUsage:
    """What the summariser was asked during one compaction."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class HistoryManager:
    """Compacts a thread's messages and writes them back into its checkpoint.

    Args:
        memory_saver: The checkpointer holding the threads. Defaults to the checkpointer of
            the graph a `CompactingSupervisor` wraps.
        model: The summariser: a LangChain chat model or a ``"provider:model"`` string
            (``"openai:gpt-4o-mini"``), or any object with ``summarize``/``asummarize``
            (see `compacting_supervisor.summarizers.Summarizer`). With None, the embedded
            `ExtractiveSummarizer` is used: offline and deterministic, but an LLM
            summarises far better (a hint says so once).
        prompt: The summariser's system prompt (``{max_words}`` is filled in). Defaults to
            `compacting_supervisor.summarizers.DEFAULT_SUMMARY_PROMPT`.
        summary_timeout: Seconds to wait for one summariser call; past that the call counts
            as failed. None waits forever.
        summary_retries: How many times a failed summariser call (an exception, a timeout,
            empty, placeholder or refusal text) is retried before the compaction is given up
            for this turn, with the history left as it was.
        retry_backoff: Seconds before the first retry; doubled for each further one.
        max_summary_tokens: Target length of the running summary. None: a quarter of the
            supervisor's ``token_limit`` (1,000 when used on its own).
        summary_input_tokens: The most the summariser reads in one call. Longer input is
            summarised in pieces, each folded into the running summary, so nothing old is
            dropped to make it fit. None: 60% of the chat model's ``max_input_tokens``
            profile, else 32,000; no limit for a summariser that is not a chat model.
        redact: Applied to every message before the summariser sees it (the messages kept
            in the thread stay verbatim). Defaults to `redact_secrets` (API keys, tokens,
            passwords, private keys); None sends messages as they are.
        token_counter: Counts tokens for the results. Defaults to ``TokenCounter()``
            (``cl100k_base``, exact offline). The summariser's tokens are the usage its
            model reports on each reply where it does (what the provider bills); only a
            call whose reply reports none is counted.
        messages_key: The state channel that holds the conversation.
        offload: Moves large tool results into a store at each compaction, leaving a
            reference and a preview (`OffloadToolResults`); None keeps them inline.

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> history = HistoryManager(InMemorySaver())
        >>> history.messages_key
        'messages'
    """

    def __init__(
        self,
        memory_saver: BaseCheckpointSaver[Any] | None = None,
        *,
        model: BaseChatModel | str | Summarizer | None = None,
        prompt: str | None = None,
        summary_timeout: float | None = 120.0,
        summary_retries: int = 2,
        retry_backoff: float = 0.5,
        max_summary_tokens: int | None = None,
        summary_input_tokens: int | None = None,
        redact: Callable[[BaseMessage], BaseMessage] | None = redact_secrets,
        token_counter: TokenCounter | None = None,
        messages_key: str = "messages",
        offload: OffloadToolResults | None = None,
    ) -> None:
        if memory_saver is not None and not isinstance(memory_saver, BaseCheckpointSaver):
            msg = (
                "`memory_saver` must be a LangGraph checkpointer (InMemorySaver, SqliteSaver, "
                f"AsyncSqliteSaver, PostgresSaver ...), got {type(memory_saver).__name__}."
            )
            raise TypeError(msg)
        check_seconds("summary_timeout", summary_timeout, allow_none=True)
        check_count("max_summary_tokens", max_summary_tokens, allow_none=True)
        if not isinstance(messages_key, str) or not messages_key:
            msg = f"`messages_key` must be the name of the messages channel, got {messages_key!r}."
            raise ValueError(msg)
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            msg = "`prompt` must be a non-empty string (the summariser's system prompt) or None."
            raise ValueError(msg)
        self.memory_saver = memory_saver
        self._graph_savers: list[BaseCheckpointSaver[Any]] = []
        self.model: BaseChatModel | None = None
        self.summarizer: Summarizer
        if prompt is not None and not isinstance(model, BaseChatModel | str):
            msg = (
                "`prompt` is the chat-model summariser's system prompt: pass it together with "
                "`model=` (a chat model or 'provider:model' string), or drop it."
            )
            raise ValueError(msg)
        counter = token_counter or TokenCounter()
        if isinstance(model, Summarizer) and not isinstance(model, BaseChatModel):
            self.summarizer = model
            self._chosen_summarizer = True
            if isinstance(model, ChatModelSummarizer):  # its model's window sizes the input
                self.model = model.model
        else:
            self.model = resolve_chat_model(model) if model is not None else None
            self.summarizer = (
                ChatModelSummarizer(self.model, prompt=prompt, token_counter=counter)
                if self.model is not None
                else ExtractiveSummarizer()
            )
            self._chosen_summarizer = self.model is not None
        if redact is not None and not callable(redact):
            msg = "`redact` must be a function from a message to a message, or None."
            raise TypeError(msg)
        self.summary_timeout = summary_timeout
        self.summary_retries: int = check_count("summary_retries", summary_retries, minimum=0)
        self.retry_backoff: float = check_seconds("retry_backoff", retry_backoff, allow_zero=True)
        self.max_summary_tokens = max_summary_tokens
        self.summary_input_tokens: int | None = check_count(
            "summary_input_tokens", summary_input_tokens, minimum=200, allow_none=True
        )
        self.redact = redact
        self.token_counter = counter
        self.messages_key = messages_key
        if offload is not None and not isinstance(offload, OffloadToolResults):
            msg = (
                "`offload` must be an OffloadToolResults(store, ...) or None, got "
                f"{type(offload).__name__}."
            )
            raise TypeError(msg)
        self.offload = offload
        # Every policy whose store may hold a reference found in a thread (read back in turn).
        self._offload_policies: list[OffloadToolResults] = [offload] if offload else []

    # ------------------------------------------------------------------ public API

    def compact_messages(
        self,
        messages: Sequence[BaseMessage],
        *,
        compaction_ratio: float = 0.5,
        keep: KeepPolicy | None = None,
        max_summary_tokens: int | None = None,
    ) -> MessageCompaction | None:
        """Compact a message list in memory: choose the cut and summarise. No saver I/O.

        Args:
            messages: The history to compact.
            compaction_ratio: The fraction of the conversation to summarise, in (0, 1).
            keep: What to keep verbatim instead (`KeepMessages`, `KeepTokens`); overrides
                ``compaction_ratio``.
            max_summary_tokens: Overrides the manager's summary length target.

        Returns:
            The new history and its summary, or None when there is nothing to compact.

        Raises:
            SummarizationError: The summariser failed; nothing should be written.
        """
        flow = self._messages_flow(list(messages), keep or compaction_ratio, max_summary_tokens)
        return self._drive(flow, thread_id=None)

    async def acompact_messages(
        self,
        messages: Sequence[BaseMessage],
        *,
        compaction_ratio: float = 0.5,
        keep: KeepPolicy | None = None,
        max_summary_tokens: int | None = None,
    ) -> MessageCompaction | None:
        """Async form of `compact_messages`."""
        flow = self._messages_flow(list(messages), keep or compaction_ratio, max_summary_tokens)
        return await self._adrive(flow, thread_id=None)

    def replace_thread_history(
        self, config: RunnableConfig, messages: Sequence[BaseMessage], *, graph: Any = None
    ) -> RunnableConfig:
        """Write ``messages`` as the thread's history in a new head checkpoint.

        Only the messages channel changes; every other channel, version and
        ``versions_seen`` stays as it was, and the previous head stays in the history.

        Args:
            config: Names the thread. When it also names a ``checkpoint_id`` (as the
                ``config`` of a `StateSnapshot` does), nothing is written unless that
                checkpoint is still the thread's head: pass the config of the snapshot you
                computed ``messages`` from, so a run that finished meanwhile is never hidden.
            messages: The new messages (a non-empty list of LangChain messages).
            graph: The compiled graph the thread belongs to. With it, the idle check also
                sees tasks waiting to run and interrupts (e.g. ``interrupt_before``), not
                only pending writes; it also supplies the checkpointer when the manager has
                no ``memory_saver``.

        Returns:
            The config of the new checkpoint.

        Raises:
            ValueError: ``messages`` is not a non-empty list of messages.
            ThreadBusyError: The thread is interrupted or mid-step.
            StaleCheckpointError: The thread has no checkpoint, or its head is not the
                checkpoint ``config`` names.
        """
        flow = self._public_replace_flow(config, messages, graph)
        return self._drive(flow, thread_id=_thread_id(config))

    async def areplace_thread_history(
        self, config: RunnableConfig, messages: Sequence[BaseMessage], *, graph: Any = None
    ) -> RunnableConfig:
        """Async form of `replace_thread_history`."""
        flow = self._public_replace_flow(config, messages, graph)
        return await self._adrive(flow, thread_id=_thread_id(config))

    def offload_answered(
        self, config: RunnableConfig, policy: OffloadToolResults, *, graph: Any = None
    ) -> list[BaseMessage] | None:
        """Move the thread's answered tool results to ``policy``'s store, rewriting its head.

        What ``CompactingSupervisor(offload=...)`` does after each run: see
        `OffloadToolResults.plan_answered`. The store is written first; only then is the
        head checkpoint rewritten (if it has not moved meanwhile).

        Args:
            config: Names the thread.
            policy: Which results, and where they go.
            graph: The compiled graph the thread belongs to (for the idle check and its
                checkpointer).

        Returns:
            The new messages, or None when the thread is not idle or nothing is answered
            and large enough.

        Raises:
            OffloadError: A store write failed; the history is unchanged.
            StaleCheckpointError: A run finished meanwhile; nothing was written.
        """
        flow = self._offload_flow(_thread_id(config), graph, policy)
        return self._drive(flow, thread_id=_thread_id(config))

    async def aoffload_answered(
        self, config: RunnableConfig, policy: OffloadToolResults, *, graph: Any = None
    ) -> list[BaseMessage] | None:
        """Async form of `offload_answered`."""
        flow = self._offload_flow(_thread_id(config), graph, policy)
        return await self._adrive(flow, thread_id=_thread_id(config))

    def compact_thread(
        self,
        config: RunnableConfig,
        *,
        compaction_ratio: float = 0.5,
        keep: KeepPolicy | None = None,
        graph: Any = None,
        trigger: str = "manual",
        max_summary_tokens: int | None = None,
    ) -> CompactionResult | None:
        """Compact a thread now: read it, summarise, rewrite its head checkpoint.

        Args:
            config: Names the thread.
            compaction_ratio: The fraction of the conversation to summarise.
            keep: What to keep verbatim instead (`KeepMessages`, `KeepTokens`); overrides
                ``compaction_ratio``.
            graph: The compiled graph the thread belongs to; lets the idle check see tasks
                waiting to run and interrupts, not only pending writes.
            trigger: Recorded in the result (``"manual"``, ``"token_limit"``).
            max_summary_tokens: Overrides the manager's summary length target.

        Returns:
            The result, or None when the history has nothing to compact.

        Raises:
            SummarizationError: The summariser failed; the history is unchanged.
            ThreadBusyError: The thread is interrupted or mid-step; try after a later turn.
            StaleCheckpointError: A run finished meanwhile; nothing was written.
        """
        thread_id = _thread_id(config)
        policy = keep or compaction_ratio
        flow = self._thread_flow(thread_id, graph, policy, trigger, max_summary_tokens)
        return self._drive(flow, thread_id=thread_id)

    async def acompact_thread(
        self,
        config: RunnableConfig,
        *,
        compaction_ratio: float = 0.5,
        keep: KeepPolicy | None = None,
        graph: Any = None,
        trigger: str = "manual",
        max_summary_tokens: int | None = None,
    ) -> CompactionResult | None:
        """Async form of `compact_thread`."""
        thread_id = _thread_id(config)
        policy = keep or compaction_ratio
        flow = self._thread_flow(thread_id, graph, policy, trigger, max_summary_tokens)
        return await self._adrive(flow, thread_id=thread_id)

    def transcript(self, config: RunnableConfig, *, graph: Any = None) -> Transcript:
        """Return everything the thread ever held, across all its compactions.

        Args:
            config: Names the thread.
            graph: The compiled graph the thread belongs to (supplies the checkpointer
                when the manager has no ``memory_saver``).

        Returns:
            The archived sessions (one per compaction, with the summary that replaced
            them) and the live part; ``.to_markdown()`` exports it.
        """
        thread_id = _thread_id(config)
        return self._drive(self._transcript_flow(thread_id, graph), thread_id=thread_id)

    async def atranscript(self, config: RunnableConfig, *, graph: Any = None) -> Transcript:
        """Async form of `transcript`."""
        thread_id = _thread_id(config)
        return await self._adrive(self._transcript_flow(thread_id, graph), thread_id=thread_id)

    def thread_stats(self, config: RunnableConfig, *, graph: Any = None) -> ThreadStats:
        """Return a thread's size now and the totals of its compactions (any process's).

        Args:
            config: Names the thread.
            graph: The compiled graph the thread belongs to (supplies the checkpointer
                when the manager has no ``memory_saver``).
        """
        thread_id = _thread_id(config)
        return self._drive(self._stats_flow(thread_id, graph), thread_id=thread_id)

    async def athread_stats(self, config: RunnableConfig, *, graph: Any = None) -> ThreadStats:
        """Async form of `thread_stats`."""
        thread_id = _thread_id(config)
        return await self._adrive(self._stats_flow(thread_id, graph), thread_id=thread_id)

    # ------------------------------------------------------------------ the flows

    def _stats_flow(self, thread_id: str, graph: Any) -> _Flow[ThreadStats]:
        saver = self._saver(graph)
        updates: list[CheckpointTuple] = yield _ListCompactions(thread_id, saver)
        compactions = [
            (update.checkpoint["ts"], details)
            for update in updates
            if isinstance(details := update.metadata.get(METADATA_KEY), dict)
            and details.get("kind", "compaction") == "compaction"
            and "compacted_checkpoint_id" in details
        ]
        head: CheckpointTuple | None = yield _ReadHead(thread_id, saver)
        messages = list(
            (head.checkpoint["channel_values"] if head else {}).get(self.messages_key) or []
        )

        def total(key: str) -> int:
            return sum(int(d.get(key) or 0) for _, d in compactions)

        return ThreadStats(
            thread_id=thread_id,
            messages=len(messages),
            tokens=self.token_counter.count(messages),
            compactions=len(compactions),
            tokens_saved=total("tokens_before") - total("tokens_after"),
            messages_summarized=total("messages_summarized"),
            summarizer_tokens=total("summarizer_input_tokens") + total("summarizer_output_tokens"),
            last_compaction_at=max((ts for ts, _ in compactions), default=None),
        )

    def _transcript_flow(self, thread_id: str, graph: Any) -> _Flow[Transcript]:
        saver = self._saver(graph)
        key = self.messages_key
        updates: list[CheckpointTuple] = yield _ListCompactions(thread_id, saver)
        compactions = []
        for update in sorted(updates, key=lambda t: t.checkpoint["id"]):
            details = update.metadata.get(METADATA_KEY)
            if not isinstance(details, dict) or "compacted_checkpoint_id" not in details:
                continue  # an ordinary update_state, not a compaction
            parent_id = str(details["compacted_checkpoint_id"])
            parent: CheckpointTuple | None = yield _ReadHead(thread_id, saver, parent_id)
            before = list((parent.checkpoint["channel_values"] if parent else {}).get(key) or [])
            after = list(update.checkpoint["channel_values"].get(key) or [])
            compactions.append(
                (
                    update.checkpoint["id"],
                    parent_id,
                    update.checkpoint["ts"],
                    before,
                    after,
                    str(details.get("kind", "compaction")),
                )
            )
        head: CheckpointTuple | None = yield _ReadHead(thread_id, saver)
        current = list((head.checkpoint["channel_values"] if head else {}).get(key) or [])
        return build_transcript(thread_id, compactions, current)

    def _messages_flow(
        self,
        messages: list[BaseMessage],
        keep: KeepPolicy | float,
        max_summary_tokens: int | None,
        thread_id: str | None = None,
    ) -> _Flow[MessageCompaction | None]:
        keep = _keep_policy(keep)
        check_messages(messages, self.messages_key)
        if self.offload is not None:
            # Large tool results the agent has answered go to the store first (kept ones
            # shrink); only a successful write lets the new messages be used.
            offloaded = self.offload.plan_answered(messages, thread_id=thread_id)
            if offloaded.offloaded:
                yield _StoreResults(self.offload, offloaded.offloaded)
                messages = offloaded.messages
        plan = plan_cut(messages, keep)
        if plan is None:
            logger.debug("Nothing to compact: no safe cut in %d messages.", len(messages))
            return None
        previous = summary_text(plan.parts.summary)
        max_tokens = max_summary_tokens or self.max_summary_tokens or DEFAULT_MAX_SUMMARY_TOKENS
        self._note_offline_default()
        usage = _SummarizerUsage()
        # Stored results stay findable: the newest references (up to 20, in at most half the
        # summary's room) are listed after it, inside its cap; older ones stay in the archive.
        refs = (
            listed_refs(previous, plan.evicted, self.offload.tool_name)
            if self.offload is not None
            else {}
        )
        count = self.token_counter.count_text
        while refs and count(refs_note(refs)) + 2 > max_tokens // 2:
            del refs[next(iter(refs))]  # the list takes at most half of the summary's room
        cap = max_tokens - (count(refs_note(refs)) + 2 if refs else 0)
        # Listed again below: the summariser is sent only the references that will not be.
        told = for_summariser(previous, refs) if refs else previous
        evicted = plan.evicted
        if self._offload_policies and (
            stored := [ref for m in evicted if (ref := offloaded_ref(m)) is not None]
        ):
            # The summariser reads what the agent read: each stored result whole.
            texts: dict[str, str] = {}
            for policy in self._offload_policies:  # each store in turn, for what is missing
                if missing := [ref for ref in stored if ref not in texts]:
                    found = yield _ReadResults(policy, missing)
                    texts |= {ref: text for ref, text in found.items() if text is not None}
            if unread := [ref for ref in dict.fromkeys(stored) if ref not in texts]:
                logger.warning(
                    "Stored tool results %s were not found in %s; the summariser reads "
                    "their previews.",
                    ", ".join(unread),
                    ", ".join(repr(p.store) for p in self._offload_policies),
                )
            evicted = [restored(m, texts) for m in evicted]
        summary: str = yield from self._summarize_flow(told, evicted, cap, usage)
        if unnamed := {ref: tool for ref, tool in refs.items() if ref not in summary}:
            summary = f"{summary}\n\n{refs_note(unnamed)}"
        earlier = summary_meta(plan.parts.summary)
        summary_message = HumanMessage(
            content=SUMMARY_PREFIX + summary,
            id=f"summary-{uuid.uuid4()}",
            additional_kwargs={"lc_source": SUMMARY_MARKER},
            response_metadata={
                METADATA_KEY: {
                    "compactions": int(earlier.get("compactions", 0)) + 1,
                    "messages_summarized": int(earlier.get("messages_summarized", 0))
                    + len(plan.evicted),
                    "compacted_at": time.time(),
                    # Usage reported on these messages describes a longer history.
                    "messages_kept": len(plan.kept),
                }
            },
        )
        return MessageCompaction(
            messages=[*plan.parts.system, summary_message, *plan.kept],
            summary=summary,
            summary_message=summary_message,
            summarized=plan.evicted,
            kept=plan.kept,
            previous_summary=previous,
            summarizer_calls=usage.calls,
            summarizer_input_tokens=usage.input_tokens,
            summarizer_output_tokens=usage.output_tokens,
        )

    def _summarize_flow(
        self,
        previous: str | None,
        evicted: list[BaseMessage],
        max_tokens: int,
        usage: _SummarizerUsage,
    ) -> _Flow[str]:
        """Fold ``evicted`` into the summary: redacted, in pieces that fit, with retries."""
        messages = [self.redact(m) for m in evicted] if self.redact else list(evicted)
        summary = previous
        chunks = self._chunks(messages, previous, max_tokens)
        if len(chunks) > 1:
            logger.info("Summarising %d messages in %d pieces.", len(messages), len(chunks))
        text = ""
        for chunk in chunks:  # never empty: a compaction evicts at least one message
            text = yield from self._attempts(summary, chunk, max_tokens, usage)
            summary = text
        return text

    def _attempts(
        self,
        previous: str | None,
        chunk: list[BaseMessage],
        max_tokens: int,
        usage: _SummarizerUsage,
    ) -> _Flow[str]:
        # Our own count of the prompt: made at most once, and only for a call whose reply
        # reports no usage (the chat-model summariser then hands back the prompt the call
        # built, rather than rendering the transcript again).
        prompt_tokens = functools.cache(
            lambda: self._summarizer_input_tokens(previous, chunk, max_tokens)
        )
        for attempt in range(self.summary_retries + 1):
            replies: _Replies = []
            try:
                text: str = yield _Summarize(previous, chunk, max_tokens, replies)
            except SummarizationError as exc:
                self._add_usage(usage, replies, None, prompt_tokens)
                if attempt == self.summary_retries:
                    raise
                delay = self.retry_backoff * 2**attempt
                logger.info("Summariser failed (%s); retrying in %.2f s.", exc, delay)
                if delay:
                    yield _Sleep(delay)
            else:
                self._add_usage(usage, replies, text, prompt_tokens)
                return text
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _add_usage(
        self,
        usage: _SummarizerUsage,
        replies: _Replies,
        text: str | None,
        prompt_tokens: Callable[[], int],
    ) -> None:
        """Add one summariser call to ``usage``: the provider's figures when it reported them.

        Args:
            usage: The compaction's running totals.
            replies: What each model reply of the call reported (filled by the call).
            text: The summary written, or None when the call failed.
            prompt_tokens: Our own count of the call's prompt, used when the provider
                reported nothing; then the summary written is counted too (a failed call
                adds its prompt only).
        """
        usage.calls += 1
        reported = _reported_usage(replies)
        if reported is not None:
            usage.input_tokens += reported.input_tokens
            usage.output_tokens += reported.output_tokens
            return
        usage.input_tokens += prompt_tokens()
        if text is not None:
            usage.output_tokens += self.token_counter.count_text(text)

    def _summarizer_input_tokens(
        self, previous: str | None, chunk: list[BaseMessage], max_tokens: int
    ) -> int:
        """What one summariser call reads: its exact prompt where it can tell, else the input."""
        prompt_messages = getattr(self.summarizer, "prompt_messages", None)
        if callable(prompt_messages):
            try:
                return self.token_counter.count(
                    prompt_messages(previous, chunk, max_tokens=max_tokens)
                )
            except Exception:  # a custom summariser's helper: fall back to the input
                logger.debug("prompt_messages failed; counting the summariser's input instead.")
        if isinstance(self.summarizer, ExtractiveSummarizer):
            return 0  # no model reads anything
        return self.token_counter.count(chunk) + self.token_counter.count_text(previous or "")

    def _input_budget(self) -> int | None:
        if self.summary_input_tokens is not None:
            return self.summary_input_tokens
        if self.model is None:
            return None
        profile = getattr(self.model, "profile", None) or {}
        window = profile.get("max_input_tokens") if isinstance(profile, dict) else None
        return int(window * 0.6) if isinstance(window, int) and window > 0 else 32_000

    def _chunks(
        self, messages: list[BaseMessage], previous: str | None, max_tokens: int
    ) -> list[list[BaseMessage]]:
        """Split ``messages`` into pieces whose transcript fits the summariser's input."""
        budget = self._input_budget()
        if budget is None:
            return [messages]
        count = self.token_counter.count_message
        # Room for the prompt, the running summary (at most max_tokens) and the answer.
        room = max(budget - max_tokens * 2 - 500, budget // 4, 100)
        chunks: list[list[BaseMessage]] = [[]]
        used = 0
        for message in messages:
            whole = count(message)
            pieces = [message] if whole <= room else _split_message(message, room, whole)
            for piece in pieces:
                size = whole if piece is message else count(piece)
                if chunks[-1] and used + size > room:
                    chunks.append([])
                    used = 0
                chunks[-1].append(piece)
                used += size
        return chunks

    def _public_replace_flow(
        self, config: RunnableConfig, messages: Sequence[BaseMessage], graph: Any
    ) -> _Flow[RunnableConfig]:
        thread_id = _thread_id(config)
        if (
            not isinstance(messages, list | tuple)
            or not messages
            or not all(isinstance(m, BaseMessage) for m in messages)
        ):
            msg = (
                "`messages` must be a non-empty list of LangChain messages (HumanMessage, "
                f"AIMessage ...), got {type(messages).__name__}; convert tuples or dicts with "
                "langchain_core.messages.convert_to_messages first."
            )
            raise ValueError(msg)
        saver = self._saver(graph)
        if graph is not None:
            state: _ThreadState = yield _ReadState(thread_id, graph, saver)
            if state.busy:
                msg = f"Thread {thread_id!r} is not idle ({state.busy}); nothing was written."
                raise ThreadBusyError(msg, thread_id=thread_id, reason=state.busy)
        details = {"kind": "replacement"}
        return (yield from self._replace_flow(config, list(messages), details, saver))

    def _replace_flow(
        self,
        config: RunnableConfig,
        messages: list[BaseMessage],
        details: dict[str, Any],
        saver: BaseCheckpointSaver[Any],
    ) -> _Flow[RunnableConfig]:
        thread_id = _thread_id(config)
        expected = (config.get("configurable") or {}).get("checkpoint_id")
        head: CheckpointTuple | None = yield _ReadHead(thread_id, saver)
        head = check_head(head, thread_id=thread_id, expected_checkpoint_id=expected)
        checkpoint, metadata, versions = build_compacted_checkpoint(
            head,
            saver,
            messages_key=self.messages_key,
            messages=messages,
            details={"messages_before": None, "messages_after": len(messages), **details},
        )
        new_config: RunnableConfig = yield _Put(saver, head.config, checkpoint, metadata, versions)
        logger.debug("Thread %s: wrote checkpoint %s.", thread_id, checkpoint["id"])
        return new_config

    def _offload_flow(
        self, thread_id: str, graph: Any, policy: OffloadToolResults
    ) -> _Flow[list[BaseMessage] | None]:
        saver = self._saver(graph)
        state: _ThreadState = yield _ReadState(thread_id, graph, saver)
        if state.busy:
            logger.debug("Thread %s is not idle (%s): tool results stay.", thread_id, state.busy)
            return None
        check_messages(state.messages, self.messages_key)
        plan = policy.plan_answered(state.messages, thread_id=thread_id)
        if not plan.offloaded:
            return None
        yield _StoreResults(policy, plan.offloaded)
        logger.debug(
            "Thread %s: offloading %d answered tool result(s), %d characters.",
            thread_id,
            len(plan.offloaded),
            plan.chars_offloaded,
        )
        config: RunnableConfig = {
            "configurable": {
                **head_config(thread_id)["configurable"],
                "checkpoint_id": state.checkpoint_id,
            }
        }
        details = {"kind": "replacement", "offloaded_results": len(plan.offloaded)}
        yield from self._replace_flow(config, plan.messages, details, saver)
        return plan.messages

    def _thread_flow(
        self,
        thread_id: str,
        graph: Any,
        keep: KeepPolicy | float,
        trigger: str,
        max_summary_tokens: int | None,
    ) -> _Flow[CompactionResult | None]:
        keep = _keep_policy(keep)
        started = time.perf_counter()
        saver = self._saver(graph)
        state: _ThreadState = yield _ReadState(thread_id, graph, saver)
        if state.busy:
            msg = (
                f"Thread {thread_id!r} is not idle ({state.busy}); "
                "compaction waits for a later turn."
            )
            raise ThreadBusyError(msg, thread_id=thread_id, reason=state.busy)
        compaction = yield from self._messages_flow(
            state.messages, keep, max_summary_tokens, thread_id
        )
        if compaction is None:
            return None
        counter = self.token_counter
        tokens_before = counter.count(state.messages)
        tokens_after = counter.count(compaction.messages)
        if tokens_after >= tokens_before:
            msg = (
                f"Compacting thread {thread_id!r} would not shrink it ({tokens_before} "
                f"-> {tokens_after} tokens): the summary is longer than the "
                f"{len(compaction.summarized)} message(s) it replaces. Nothing was written; "
                "raise `compaction_ratio` or lower `max_summary_tokens`."
            )
            raise NoReductionError(
                msg, thread_id=thread_id, tokens_before=tokens_before, tokens_after=tokens_after
            )
        details = {
            "kind": "compaction",
            "trigger": trigger,
            "messages_before": len(state.messages),
            "messages_after": len(compaction.messages),
            "messages_summarized": len(compaction.summarized),
            "tokens_before": tokens_before,
            "tokens_after": tokens_after,
            "reduction": round(1 - tokens_after / tokens_before, 4),
            "summarizer_calls": compaction.summarizer_calls,
            "summarizer_input_tokens": compaction.summarizer_input_tokens,
            "summarizer_output_tokens": compaction.summarizer_output_tokens,
            "duration": round(time.perf_counter() - started, 4),
        }
        config: RunnableConfig = {
            "configurable": {
                **head_config(thread_id)["configurable"],
                "checkpoint_id": state.checkpoint_id,
            }
        }
        new_config = yield from self._replace_flow(config, compaction.messages, details, saver)
        result = CompactionResult(
            thread_id=thread_id,
            status="compacted",
            trigger=trigger,
            tokens_before=tokens_before,
            tokens_after=tokens_after,
            messages_before=len(state.messages),
            messages_after=len(compaction.messages),
            messages_summarized=len(compaction.summarized),
            previous_checkpoint_id=state.checkpoint_id,
            checkpoint_id=new_config["configurable"]["checkpoint_id"],
            summary=compaction.summary,
            duration=time.perf_counter() - started,
            summarizer_calls=compaction.summarizer_calls,
            summarizer_input_tokens=compaction.summarizer_input_tokens,
            summarizer_output_tokens=compaction.summarizer_output_tokens,
        )
        logger.info(
            "Thread %s compacted (trigger %s): %d -> %d tokens (-%.0f%%), %d messages "
            "summarised; summariser %d call(s), %d in / %d out tokens; %.3f s.",
            thread_id,
            trigger,
            result.tokens_before,
            result.tokens_after,
            result.reduction * 100,
            result.messages_summarized,
            result.summarizer_calls,
            result.summarizer_input_tokens,
            result.summarizer_output_tokens,
            result.duration,
            extra={"compaction": result.to_event() | {"result": None}},
        )
        return result

    # ------------------------------------------------------------------ drivers

    def _bind_offload(self, policy: OffloadToolResults) -> None:
        """Use a supervisor's offload policy (its store is read back at compaction).

        A manager without a policy of its own also offloads with it at compaction.
        """
        if self.offload is None:
            self.offload = policy
        if not any(p is policy for p in self._offload_policies):
            self._offload_policies.append(policy)

    def _bind_graph_saver(self, saver: BaseCheckpointSaver[Any]) -> None:
        """Remember the checkpointer of a graph this manager compacts (no `memory_saver`)."""
        if not any(s is saver for s in self._graph_savers):
            self._graph_savers.append(saver)

    def _saver(self, graph: Any) -> BaseCheckpointSaver[Any]:
        """`memory_saver`, else the checkpointer of the graph the thread belongs to."""
        if self.memory_saver is not None:
            return self.memory_saver
        checkpointer = getattr(graph, "checkpointer", None)
        if isinstance(checkpointer, BaseCheckpointSaver):
            return checkpointer
        if len(self._graph_savers) == 1:
            return self._graph_savers[0]
        if self._graph_savers:
            msg = (
                "This HistoryManager serves several graphs with different checkpointers, so "
                "it cannot tell which one holds the thread: pass `graph=` (the compiled graph) "
                "or use the supervisor's `compact()`."
            )
        else:
            msg = (
                "This HistoryManager has no checkpointer yet: pass "
                "HistoryManager(memory_saver=...), or wrap a graph compiled with a "
                "checkpointer in a CompactingSupervisor first (its checkpointer is then used)."
            )
        raise ValueError(msg)

    def _state_from_snapshot(self, snapshot: Any) -> _ThreadState:
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        busy = None
        if snapshot.next:
            busy = f"tasks waiting to run: {', '.join(snapshot.next)}"
        if getattr(snapshot, "interrupts", ()):
            busy = "interrupted"
        checkpoint_id = (snapshot.config.get("configurable") or {}).get("checkpoint_id")
        return _ThreadState(list(values.get(self.messages_key) or []), checkpoint_id, busy)

    def _state_from_head(self, head: CheckpointTuple | None) -> _ThreadState:
        if head is None:
            return _ThreadState([], None, None)
        values = head.checkpoint["channel_values"]
        busy = "pending writes" if head.pending_writes else None
        return _ThreadState(list(values.get(self.messages_key) or []), head.checkpoint["id"], busy)

    def _perform(self, op: _Op) -> Any:
        if isinstance(op, _ReadState):
            cfg = head_config(op.thread_id)
            if op.graph is not None:
                return self._state_from_snapshot(op.graph.get_state(cfg))
            return self._state_from_head(op.saver.get_tuple(cfg))
        if isinstance(op, _ReadHead):
            return op.saver.get_tuple(_checkpoint_config(op))
        if isinstance(op, _ListCompactions):
            return list(op.saver.list(head_config(op.thread_id), filter={"source": "update"}))
        if isinstance(op, _Sleep):
            time.sleep(op.seconds)
            return None
        if isinstance(op, _StoreResults):
            op.policy.write(op.results)
            return None
        if isinstance(op, _ReadResults):
            return op.policy.read_back(op.refs)
        if isinstance(op, _Summarize):
            return _run_summarizer(
                self.summarizer,
                op.previous,
                op.messages,
                max_tokens=op.max_tokens,
                timeout=self.summary_timeout,
                replies=op.replies,
            )
        return op.saver.put(op.config, op.checkpoint, op.metadata, op.new_versions)

    async def _aperform(self, op: _Op) -> Any:
        if isinstance(op, _ReadState):
            cfg = head_config(op.thread_id)
            if op.graph is not None:
                return self._state_from_snapshot(await op.graph.aget_state(cfg))
            return self._state_from_head(await op.saver.aget_tuple(cfg))
        if isinstance(op, _ReadHead):
            return await op.saver.aget_tuple(_checkpoint_config(op))
        if isinstance(op, _ListCompactions):
            cfg = head_config(op.thread_id)
            return [t async for t in op.saver.alist(cfg, filter={"source": "update"})]
        if isinstance(op, _Sleep):
            await asyncio.sleep(op.seconds)
            return None
        if isinstance(op, _StoreResults):
            await op.policy.awrite(op.results)
            return None
        if isinstance(op, _ReadResults):
            return await op.policy.aread_back(op.refs)
        if isinstance(op, _Summarize):
            return await _arun_summarizer(
                self.summarizer,
                op.previous,
                op.messages,
                max_tokens=op.max_tokens,
                timeout=self.summary_timeout,
                replies=op.replies,
            )
        return await op.saver.aput(op.config, op.checkpoint, op.metadata, op.new_versions)

    def _drive(self, flow: _Flow[_T], *, thread_id: str | None) -> _T:
        run = _FlowRun(flow, thread_id)
        while run.op is not None:
            try:
                answer = self._perform(run.op)
            except Exception as exc:
                run.throw(exc)
            else:
                run.send(answer)
        return run.result

    async def _adrive(self, flow: _Flow[_T], *, thread_id: str | None) -> _T:
        run = _FlowRun(flow, thread_id)
        while run.op is not None:
            try:
                answer = await self._aperform(run.op)
            except Exception as exc:
                run.throw(exc)
            else:
                run.send(answer)
        return run.result

    def _note_offline_default(self) -> None:
        global _warned_offline_default  # noqa: PLW0603 - said once per process
        if not self._chosen_summarizer and not _warned_offline_default:
            _warned_offline_default = True
            logger.warning(
                "compacting-supervisor is summarising with its embedded offline extractive "
                "summariser. It needs no key but only keeps first sentences; pass "
                "HistoryManager(model=...) (a chat model or 'openai:gpt-4o-mini') for real "
                "summaries."
            )


class _FlowRun(Generic[_T]):
    """Steps a flow for a driver: the driver only performs the I/O each step asks for."""

    def __init__(self, flow: _Flow[_T], thread_id: str | None) -> None:
        self._flow = flow
        self._thread_id = thread_id
        self.op: _Op | None = None
        self.result: _T
        self._advance(lambda: next(flow))

    def send(self, answer: Any) -> None:
        self._advance(lambda: self._flow.send(answer))

    def throw(self, exc: Exception) -> None:
        self._advance(lambda: self._flow.throw(exc))

    def _advance(self, step: Callable[[], _Op]) -> None:
        try:
            self.op = step()
        except StopIteration as stop:
            self.op = None
            self.result = stop.value
        except CompactionError as exc:
            exc.thread_id = exc.thread_id or self._thread_id
            self._flow.close()
            raise
        except BaseException:
            self._flow.close()
            raise


def _checkpoint_config(op: _ReadHead) -> RunnableConfig:
    config = head_config(op.thread_id)
    if op.checkpoint_id is not None:
        config["configurable"]["checkpoint_id"] = op.checkpoint_id
    return config


def _split_message(message: BaseMessage, room: int, tokens: int) -> list[BaseMessage]:
    """Cut one message of ``tokens`` tokens, more than ``room``, into readable pieces."""
    text = text_of(message.content)  # content blocks are read as their text
    if not text:
        return [message]
    size = max(200, len(text) * room // max(tokens, 1) - 40)
    parts = [text[i : i + size] for i in range(0, len(text), size)]
    return [
        message.model_copy(
            update={
                "content": f"[part {n} of {len(parts)}] {part}",
                **({"tool_calls": []} if n > 1 and isinstance(message, AIMessage) else {}),
            }
        )
        for n, part in enumerate(parts, start=1)
    ]
