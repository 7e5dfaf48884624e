"""The compaction core: from messages and settings to a compaction outcome.

`Compactor.compact` is one flow (see `compacting_supervisor._flow`) that every form of the
package runs: the checkpoint rewrite (`HistoryManager`, the wrapper, the CLI) and, through a
state update, the forms that live inside a graph. No saver and no graph in it: its only I/O
is the summariser and the offload store, asked for as ops.

1. Offload: large tool results the agent has answered move to the store (the write is an
   op; only a successful write lets the shortened messages be used).
2. Cut: the oldest part of the conversation, at a boundary no provider rejects
   (`compacting_supervisor._cut.plan_cut`), under the keep policy.
3. Summarise: stored results are read back whole, the evicted messages redacted and folded
   into the running summary in pieces that fit, with retries (`SummaryPolicy.fold`).
4. Outcome: ``[system..., summary message, kept...]`` and what it took
   (`MessageCompaction`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from compacting_supervisor._compaction.summarise import (
    Conversation,
    SummarizerUsage,
    SummaryPolicy,
)
from compacting_supervisor._cut import plan_cut
from compacting_supervisor._flow import Flow
from compacting_supervisor._messages import (
    check_messages,
    new_summary_message,
    summary_meta,
    summary_text,
)
from compacting_supervisor._refs_note import for_summariser, listed_refs, refs_note
from compacting_supervisor._settings import check_count
from compacting_supervisor._summarizer_call import AgentPrefix
from compacting_supervisor._tracing import EndRun, StartRun
from compacting_supervisor._usage import cache_usage, since_compaction
from compacting_supervisor.errors import NoReductionError
from compacting_supervisor.keep import KeepPolicy, as_keep_policy
from compacting_supervisor.offload import (
    OffloadedResult,
    OffloadToolResults,
    offloaded_ref,
    restored,
)
from compacting_supervisor.results import CompactionResult, MessageCompaction
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = [
    "Compactor",
    "ReadResults",
    "StoreResults",
    "compaction_result",
]

_warned_offline_default = False


@dataclass(frozen=True)
class StoreResults:
    """Write offloaded tool results to ``policy``'s store."""

    policy: OffloadToolResults
    results: list[OffloadedResult]

    def run(self) -> None:
        """Write them (sync store API)."""
        self.policy.write(self.results)

    async def arun(self) -> None:
        """Write them (async store API)."""
        await self.policy.awrite(self.results)


@dataclass(frozen=True)
class ReadResults:
    """Read stored tool results back from ``policy``'s store."""

    policy: OffloadToolResults
    refs: list[str]

    def run(self) -> dict[str, str | None]:
        """Read them (sync store API)."""
        return self.policy.read_back(self.refs)

    async def arun(self) -> dict[str, str | None]:
        """Read them (async store API)."""
        return await self.policy.aread_back(self.refs)


@dataclass(frozen=True)
class Compactor:
    """The decisions of one compaction, with the settings they need.

    Built from a `HistoryManager`'s settings for each operation, so a setting changed on
    the manager applies to its next compaction.
    """

    summary: SummaryPolicy
    """How the summariser is called."""
    token_counter: TokenCounter
    """Counts the outcome's tokens and the summary's room."""
    messages_key: str
    """The channel the messages came from (named in errors)."""
    max_summary_tokens: int
    """The summary's cap when a call does not give one."""
    offload: OffloadToolResults | None = None
    """Moves answered tool results to its store before the cut."""
    offload_policies: Sequence[OffloadToolResults] = ()
    """Every policy whose store may hold a reference found in the messages."""
    chosen_summarizer: bool = True
    """False when the summariser is the offline default nobody asked for (a hint says so)."""

    def compact(
        self,
        messages: list[BaseMessage],
        keep: KeepPolicy | float,
        *,
        max_summary_tokens: int | None = None,
        thread_id: str | None = None,
        pin_request: bool = False,
        require_reduction: bool = False,
        trace: RunnableConfig | None = None,
        agent: AgentPrefix | None = None,
    ) -> Flow[MessageCompaction | None]:
        """Compact ``messages``: offload, cut, summarise; None when no safe cut exists.

        The compaction is one chain run in LangChain's callbacks (`compacting_supervisor._tracing`),
        with the summariser's calls as its children.

        Args:
            messages: The history, as stored.
            keep: What stays verbatim: a `KeepPolicy`, or a ratio to summarise.
            max_summary_tokens: This compaction's summary cap.
            thread_id: Names the thread in references to stored results and in errors.
            pin_request: Inside a run: the cut may pass the latest human message, which is
                then kept right after the summary (`compacting_supervisor._cut.plan_cut`).
            require_reduction: Fail (`NoReductionError`) unless the history shrinks, as
                every form that persists the outcome does.
            trace: The config whose callbacks, tags and metadata the run takes; the
                current run's (a graph node's) when None.
            agent: What the agent's model requests carry before the messages, where the
                form saw it: a summariser that reads the conversation sends it too.

        Raises:
            CompactionError: The channel holds something other than messages.
            SummarizationError: The summariser failed; nothing should be written.
            OffloadError: A store write failed; nothing should be written.
            NoReductionError: With ``require_reduction``, the summary is not shorter.
        """
        policy = as_keep_policy(keep)
        check_count("max_summary_tokens", max_summary_tokens, allow_none=True)
        check_messages(messages, self.messages_key)
        inputs: dict[str, Any] = {
            "thread_id": thread_id,
            "messages": len(messages),
            "tokens": self.token_counter.count(messages),
        }
        run = yield StartRun(inputs, trace)
        try:
            compaction = yield from self._compact(
                messages,
                policy,
                max_summary_tokens=max_summary_tokens,
                thread_id=thread_id,
                pin_request=pin_request,
                callbacks=run.get_child(),
                tokens_before=inputs["tokens"],
                agent=agent,
            )
            if compaction is not None and require_reduction:
                check_reduction(compaction, thread_id=thread_id)
        except BaseException as exc:  # a failure, or a cancellation: the run ends with it
            if isinstance(exc, GeneratorExit):
                raise
            yield EndRun(run, error=exc)
            raise
        yield EndRun(run, outputs=_outputs(compaction))
        return compaction

    def _compact(
        self,
        messages: list[BaseMessage],
        policy: KeepPolicy,
        *,
        max_summary_tokens: int | None,
        thread_id: str | None,
        pin_request: bool,
        callbacks: Any,
        tokens_before: int,
        agent: AgentPrefix | None,
    ) -> Flow[MessageCompaction | None]:
        offloaded_results = 0
        seen = messages  # as the agent last read them
        if self.offload is not None:
            # Large tool results the agent has answered go to the store first (kept ones
            # shrink); only a successful write lets the new messages be used.
            offloaded = self.offload.plan_answered(messages, thread_id=thread_id)
            if offloaded.offloaded:
                yield StoreResults(self.offload, offloaded.offloaded)
                messages, offloaded_results = offloaded.messages, len(offloaded.offloaded)
        plan = plan_cut(messages, policy, pin_request=pin_request)
        if plan is None:
            logger.debug("Nothing to compact: no safe cut in %d messages.", len(messages))
            return None
        previous = summary_text(plan.parts.summary)
        max_tokens = max_summary_tokens or self.max_summary_tokens
        self._note_offline_default()
        usage = SummarizerUsage()
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
        # The references the evicted messages hold, found in one walk: read back for the
        # transcript, and they keep the conversation from being sent as it stands.
        stored = [ref for m in plan.evicted if (ref := offloaded_ref(m)) is not None]
        evicted = yield from self._read_back(plan.evicted, stored)
        summary: str = yield from self.summary.fold(
            told,
            evicted,
            cap,
            usage,
            callbacks,
            conversation=None if stored else _as_read(seen, plan.kept, agent),
        )
        if unnamed := {ref: tool for ref, tool in refs.items() if ref not in summary}:
            summary = f"{summary}\n\n{refs_note(unnamed)}"
        summary_message = new_summary_message(
            summary,
            earlier=summary_meta(plan.parts.summary),
            summarized=len(plan.evicted),
            kept=len(plan.kept),
        )
        new_messages = [*plan.parts.system, summary_message, *plan.kept]
        return MessageCompaction(
            messages=new_messages,
            summary=summary,
            summary_message=summary_message,
            summarized=plan.evicted,
            kept=plan.kept,
            previous_summary=previous,
            summarizer_calls=usage.calls,
            summarizer_input_tokens=usage.input_tokens,
            summarizer_output_tokens=usage.output_tokens,
            summarizer_cache_read=usage.cache_read,
            summarizer_cache_creation=usage.cache_creation,
            agent_cache=cache_usage(since_compaction(messages)),
            tokens_before=tokens_before,
            tokens_after=self.token_counter.count(new_messages),
            offloaded_results=offloaded_results,
        )

    def _read_back(self, evicted: list[BaseMessage], stored: list[str]) -> Flow[list[BaseMessage]]:
        """``evicted`` with each stored result whole: the summariser reads what the agent read.

        ``stored`` is the references the evicted messages hold, in order.
        """
        if not self.offload_policies or not stored:
            return evicted
        texts: dict[str, str] = {}
        for policy in self.offload_policies:  # each store in turn, for what is missing
            if missing := [ref for ref in stored if ref not in texts]:
                found = yield ReadResults(policy, missing)
                texts |= {ref: text for ref, text in found.items() if text is not None}
        if unread := [ref for ref in dict.fromkeys(stored) if ref not in texts]:
            logger.warning(
                "Stored tool results %s were not found in %s; the summariser reads their previews.",
                ", ".join(unread),
                ", ".join(repr(p.store) for p in self.offload_policies),
            )
        return [restored(m, texts) for m in evicted]

    def _note_offline_default(self) -> None:
        global _warned_offline_default  # noqa: PLW0603 - said once per process
        if not self.chosen_summarizer and not _warned_offline_default:
            _warned_offline_default = True
            logger.warning(
                "compacting-supervisor is summarising with its embedded offline extractive "
                "summariser. It needs no key but only keeps first sentences; pass "
                "HistoryManager(model=...) (a chat model or 'openai:gpt-4o-mini') for real "
                "summaries."
            )


def _as_read(
    messages: list[BaseMessage],
    kept: list[BaseMessage],
    agent: AgentPrefix | None,
) -> Conversation | None:
    """The conversation as the agent last read it, if a summariser can be sent it whole.

    Not when the kept part is not the conversation's end (the latest request moved after
    the summary); nor when it ends with a tool call the summariser would have to answer,
    valid or not; nor with a system message after the conversation began (providers
    refuse it there). Nor when an evicted message holds a stored result by reference (the
    transcript reads it back whole): the caller, which has found them, does not ask then.
    """
    tail = messages[len(messages) - len(kept) :] if kept else []
    if len(tail) != len(kept) or not all(
        a is b or (a.id is not None and a.id == b.id) for a, b in zip(tail, kept, strict=True)
    ):
        return None
    last = messages[-1] if messages else None
    if last is None or (
        isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls)
    ):
        return None
    begun = next((i for i, m in enumerate(messages) if not isinstance(m, SystemMessage)), 0)
    if any(isinstance(m, SystemMessage) for m in messages[begun:]):
        return None
    return Conversation(messages, len(kept), agent)


def _outputs(compaction: MessageCompaction | None) -> dict[str, Any]:
    """What the compaction's run reports at its end."""
    if compaction is None:
        return {"compacted": False, "reason": "no safe cut"}
    return {
        "compacted": True,
        "messages": len(compaction.messages),
        "tokens": compaction.tokens_after,
        "messages_summarized": len(compaction.summarized),
        "messages_kept": len(compaction.kept),
        "offloaded_results": compaction.offloaded_results,
        "summarizer_calls": compaction.summarizer_calls,
        "summarizer_input_tokens": compaction.summarizer_input_tokens,
        "summarizer_output_tokens": compaction.summarizer_output_tokens,
    }


def check_reduction(compaction: MessageCompaction, *, thread_id: str | None) -> None:
    """Raise unless ``compaction`` made the history shorter in tokens.

    Raises:
        NoReductionError: The summary is longer than the messages it replaces.
    """
    before, after = compaction.tokens_before, compaction.tokens_after
    if after < before:
        return
    msg = (
        f"Compacting thread {thread_id!r} would not shrink it ({before} -> {after} tokens): "
        f"the summary is longer than the {len(compaction.summarized)} message(s) it "
        "replaces. Nothing was written; raise `compaction_ratio` or lower "
        "`max_summary_tokens`."
    )
    raise NoReductionError(msg, thread_id=thread_id, tokens_before=before, tokens_after=after)


def compaction_result(
    compaction: MessageCompaction,
    *,
    thread_id: str,
    trigger: str,
    started: float,
    messages_before: int,
    previous_checkpoint_id: str | None = None,
    checkpoint_id: str | None = None,
) -> CompactionResult:
    """The result of a compaction that was persisted, logged at INFO.

    Args:
        compaction: What the core produced.
        thread_id: The thread compacted.
        trigger: Why it ran.
        started: ``time.perf_counter()`` when it began.
        messages_before: Messages in the channel before it.
        previous_checkpoint_id: The checkpoint compacted (a checkpoint rewrite).
        checkpoint_id: The checkpoint written (a checkpoint rewrite).
    """
    result = CompactionResult(
        thread_id=thread_id,
        status="compacted",
        trigger=trigger,
        tokens_before=compaction.tokens_before,
        tokens_after=compaction.tokens_after,
        messages_before=messages_before,
        messages_after=len(compaction.messages),
        messages_summarized=len(compaction.summarized),
        previous_checkpoint_id=previous_checkpoint_id,
        checkpoint_id=checkpoint_id,
        summary=compaction.summary,
        duration=time.perf_counter() - started,
        summarizer_calls=compaction.summarizer_calls,
        summarizer_input_tokens=compaction.summarizer_input_tokens,
        summarizer_output_tokens=compaction.summarizer_output_tokens,
        summarizer_cache_read=compaction.summarizer_cache_read,
        summarizer_cache_creation=compaction.summarizer_cache_creation,
        agent_cache=compaction.agent_cache,
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
