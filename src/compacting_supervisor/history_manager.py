"""`HistoryManager`: the public settings and entry points of a compaction.

The decisions (trigger aside: offload, cut, keep, summary, redaction, checks, retries) are
the core's (`compacting_supervisor._compaction`); writing the outcome back into a thread is
the checkpoint rewrite's (`compacting_supervisor._persist`). This class validates the
settings, builds the core from them, and runs each operation's flow with a sync or an
async driver (`compacting_supervisor._flow`), so ``compact_thread`` and
``acompact_thread`` cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from compacting_supervisor._checkpoint import thread_config
from compacting_supervisor._compaction import Compactor, SummaryPolicy
from compacting_supervisor._flow import Flow, adrive, drive
from compacting_supervisor._messages import SUMMARY_PREFIX
from compacting_supervisor._persist import reads, rewrite
from compacting_supervisor._settings import check_count, check_seconds, check_token_counter
from compacting_supervisor.archive import Transcript
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.redaction import redact_secrets
from compacting_supervisor.results import CompactionResult, MessageCompaction, ThreadStats
from compacting_supervisor.summarizers import (
    ChatModelSummarizer,
    ExtractiveSummarizer,
    Summarizer,
    resolve_chat_model,
)
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_SUMMARY_TOKENS", "SUMMARY_PREFIX", "HistoryManager"]

DEFAULT_MAX_SUMMARY_TOKENS = 1000
"""The summary's cap when neither the manager nor the supervisor sets one."""


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
        redact: Applied to every message, and to a previous summary, before the summariser
            sees them (the messages kept in the thread stay verbatim). Defaults to
            `redact_secrets`: known key formats, and values under secret-bearing keys in
            every text a message carries (content, tool-call arguments, raw
            ``additional_kwargs``, artifacts), decoded first. `redact_personal_data` also
            hides e-mail, card numbers, IBANs and phone numbers; `redact_with(engine)` adds
            another engine (detect-secrets, Presidio). A hook that raises fails the
            compaction with nothing sent. None sends messages as they are.
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
        counter = check_token_counter(token_counter) or TokenCounter()
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
        compaction_ratio: float = 0.8,
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
        flow = self._core().compact(
            list(messages), keep or compaction_ratio, max_summary_tokens=max_summary_tokens
        )
        return drive(flow)

    async def acompact_messages(
        self,
        messages: Sequence[BaseMessage],
        *,
        compaction_ratio: float = 0.8,
        keep: KeepPolicy | None = None,
        max_summary_tokens: int | None = None,
    ) -> MessageCompaction | None:
        """Async form of `compact_messages`."""
        flow = self._core().compact(
            list(messages), keep or compaction_ratio, max_summary_tokens=max_summary_tokens
        )
        return await adrive(flow)

    def replace_thread_history(
        self, config: str | RunnableConfig, messages: Sequence[BaseMessage], *, graph: Any = None
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
        flow, thread_id = self._replace(config, messages, graph)
        return drive(flow, thread_id=thread_id)

    async def areplace_thread_history(
        self, config: str | RunnableConfig, messages: Sequence[BaseMessage], *, graph: Any = None
    ) -> RunnableConfig:
        """Async form of `replace_thread_history`."""
        flow, thread_id = self._replace(config, messages, graph)
        return await adrive(flow, thread_id=thread_id)

    def offload_answered(
        self, config: str | RunnableConfig, policy: OffloadToolResults, *, graph: Any = None
    ) -> list[BaseMessage] | None:
        """Move the thread's answered tool results to ``policy``'s store, rewriting its head.

        What ``CompactingSupervisor(offload=...)`` does after each run: see
        `OffloadToolResults.plan_answered`. The store is written first; only then is the
        head checkpoint rewritten (if it has not moved meanwhile).

        Args:
            config: The thread: its id, or a config naming it.
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
        flow, thread_id = self._offload(config, policy, graph)
        return drive(flow, thread_id=thread_id)

    async def aoffload_answered(
        self, config: str | RunnableConfig, policy: OffloadToolResults, *, graph: Any = None
    ) -> list[BaseMessage] | None:
        """Async form of `offload_answered`."""
        flow, thread_id = self._offload(config, policy, graph)
        return await adrive(flow, thread_id=thread_id)

    def compact_thread(
        self,
        config: str | RunnableConfig,
        *,
        compaction_ratio: float = 0.8,
        keep: KeepPolicy | None = None,
        graph: Any = None,
        trigger: str = "manual",
        max_summary_tokens: int | None = None,
    ) -> CompactionResult | None:
        """Compact a thread now: read it, summarise, rewrite its head checkpoint.

        Args:
            config: The thread: its id, or a config naming it.
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
        flow, thread_id = self._compact(
            config, keep or compaction_ratio, graph, trigger, max_summary_tokens
        )
        return drive(flow, thread_id=thread_id)

    async def acompact_thread(
        self,
        config: str | RunnableConfig,
        *,
        compaction_ratio: float = 0.8,
        keep: KeepPolicy | None = None,
        graph: Any = None,
        trigger: str = "manual",
        max_summary_tokens: int | None = None,
    ) -> CompactionResult | None:
        """Async form of `compact_thread`."""
        flow, thread_id = self._compact(
            config, keep or compaction_ratio, graph, trigger, max_summary_tokens
        )
        return await adrive(flow, thread_id=thread_id)

    def transcript(self, config: str | RunnableConfig, *, graph: Any = None) -> Transcript:
        """Return everything the thread ever held, across all its compactions.

        Args:
            config: The thread: its id, or a config naming it.
            graph: The compiled graph the thread belongs to (supplies the checkpointer
                when the manager has no ``memory_saver``).

        Returns:
            The archived sessions (one per compaction, with the summary that replaced
                them) and the live part; ``.to_markdown()`` exports it.
        """
        thread_id = self._thread_id(config)
        flow = reads.transcript(thread_id, saver=self._saver(graph), messages_key=self.messages_key)
        return drive(flow, thread_id=thread_id)

    async def atranscript(self, config: str | RunnableConfig, *, graph: Any = None) -> Transcript:
        """Async form of `transcript`."""
        thread_id = self._thread_id(config)
        flow = reads.transcript(thread_id, saver=self._saver(graph), messages_key=self.messages_key)
        return await adrive(flow, thread_id=thread_id)

    def thread_stats(self, config: str | RunnableConfig, *, graph: Any = None) -> ThreadStats:
        """Return a thread's size now and the totals of its compactions (any process's).

        Args:
            config: The thread: its id, or a config naming it.
            graph: The compiled graph the thread belongs to (supplies the checkpointer
                when the manager has no ``memory_saver``).
        """
        thread_id = self._thread_id(config)
        return drive(self._stats(thread_id, graph), thread_id=thread_id)

    async def athread_stats(
        self, config: str | RunnableConfig, *, graph: Any = None
    ) -> ThreadStats:
        """Async form of `thread_stats`."""
        thread_id = self._thread_id(config)
        return await adrive(self._stats(thread_id, graph), thread_id=thread_id)

    # ------------------------------------------------------------------ the core and the flows

    def _core(self) -> Compactor:
        """The compaction core, with this manager's settings as they are now."""
        return Compactor(
            summary=SummaryPolicy(
                summarizer=self.summarizer,
                token_counter=self.token_counter,
                redact=self.redact,
                timeout=self.summary_timeout,
                retries=self.summary_retries,
                backoff=self.retry_backoff,
                input_budget=self._input_budget(),
            ),
            token_counter=self.token_counter,
            messages_key=self.messages_key,
            max_summary_tokens=self.max_summary_tokens or DEFAULT_MAX_SUMMARY_TOKENS,
            offload=self.offload,
            offload_policies=tuple(self._offload_policies),
            chosen_summarizer=self._chosen_summarizer,
        )

    @staticmethod
    def _thread_id(config: Any) -> str:
        return str(thread_config(config)["configurable"]["thread_id"])

    def _compact(
        self,
        config: Any,
        keep: KeepPolicy | float,
        graph: Any,
        trigger: str,
        max_summary_tokens: int | None,
    ) -> tuple[Flow[CompactionResult | None], str]:
        thread_id = self._thread_id(config)
        flow = rewrite.compact_thread(
            self._core(),
            thread_id,
            keep,
            graph=graph,
            saver=self._saver(graph),
            trigger=trigger,
            max_summary_tokens=max_summary_tokens,
            trace=cast(RunnableConfig, config) if isinstance(config, dict) else None,
        )
        return flow, thread_id

    def _replace(
        self, config: Any, messages: Sequence[BaseMessage], graph: Any
    ) -> tuple[Flow[RunnableConfig], str]:
        thread_id = self._thread_id(config)
        flow = rewrite.replace_history(
            config, messages, graph=graph, saver=self._saver(graph), messages_key=self.messages_key
        )
        return flow, thread_id

    def _offload(
        self, config: Any, policy: OffloadToolResults, graph: Any
    ) -> tuple[Flow[list[BaseMessage] | None], str]:
        thread_id = self._thread_id(config)
        flow = rewrite.offload_answered(
            thread_id, policy, graph=graph, saver=self._saver(graph), messages_key=self.messages_key
        )
        return flow, thread_id

    def _stats(self, thread_id: str, graph: Any) -> Flow[ThreadStats]:
        return reads.thread_stats(
            thread_id,
            saver=self._saver(graph),
            messages_key=self.messages_key,
            token_counter=self.token_counter,
        )

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

    def _input_budget(self) -> int | None:
        """The most one summariser call reads: never more than its model's input window."""
        profile = getattr(self.model, "profile", None) or {}
        window = profile.get("max_input_tokens") if isinstance(profile, dict) else None
        window = window if isinstance(window, int) and window > 0 else None
        if self.summary_input_tokens is not None:
            return min(self.summary_input_tokens, window or self.summary_input_tokens)
        if self.model is None:
            return None
        return int(window * 0.6) if window else 32_000
