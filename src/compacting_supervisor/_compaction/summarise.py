"""Folding evicted messages into the running summary: redacted, in pieces that fit, retried.

`SummaryPolicy.fold` is a flow (see `compacting_supervisor._flow`): it yields one `Summarize`
op per summariser call and a `Sleep` before each retry, and returns the new summary. Each
call's cost is added to a `SummarizerUsage`: the provider's reported usage where every reply
has it, else our own exact count of the prompt and the reply.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from compacting_supervisor._compaction.pieces import PieceCounts, split_message
from compacting_supervisor._flow import Flow, Sleep
from compacting_supervisor._messages import text_of
from compacting_supervisor._render import RenderMemo, message_event, rendering_once
from compacting_supervisor._summarizer_call import (
    AgentPrefix,
    Replies,
    ReplyUsage,
    Summarizer,
    acall_summarizer,
    call_summarizer,
    reads_conversation,
    reported_usage,
)
from compacting_supervisor._tracing import ain_run, in_run
from compacting_supervisor._usage import tool_schemas
from compacting_supervisor.errors import CompactionError, SummarizationError
from compacting_supervisor.summarizers import ExtractiveSummarizer
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = [
    "Conversation",
    "Summarize",
    "SummarizerUsage",
    "SummaryPolicy",
]

_SLACK = 16
"""Tokens kept free in each call: message separators and rounding, counted per message."""
_MIN_TOKENS = 64
"""The least a summary or a piece of a message may take: below it, the budget is too small."""
_MAX_BACKOFF = 300.0
"""Seconds: the longest wait before a retry, however large ``retry_backoff`` grows."""


@dataclass(frozen=True)
class Summarize:
    """One summariser call: fold ``messages`` into ``previous`` within ``timeout``."""

    summarizer: Summarizer
    previous: str | None
    messages: list[BaseMessage]
    max_tokens: int
    timeout: float | None
    replies: Replies
    """Filled by the call: the usage each model reply reported."""
    callbacks: Any = None
    """The compaction run's child callbacks: the call is a child run of it."""
    kept: int | None = None
    """Set when ``messages`` is the whole conversation: the newest ``kept`` stay verbatim."""
    agent: AgentPrefix | None = None
    """With ``kept``: what the agent sent before the conversation, where a form saw it."""

    def run(self) -> str:
        """Call the summariser in a thread of its own, bounded by ``timeout``."""
        return in_run(
            self.callbacks,
            lambda: call_summarizer(
                self.summarizer,
                self.previous,
                self.messages,
                max_tokens=self.max_tokens,
                timeout=self.timeout,
                replies=self.replies,
                kept=self.kept,
                agent=self.agent,
            ),
        )

    async def arun(self) -> str:
        """Await the summariser, bounded by ``timeout``."""
        return await ain_run(
            self.callbacks,
            lambda: acall_summarizer(
                self.summarizer,
                self.previous,
                self.messages,
                max_tokens=self.max_tokens,
                timeout=self.timeout,
                replies=self.replies,
                kept=self.kept,
                agent=self.agent,
            ),
        )


@dataclass(frozen=True)
class Conversation:
    """The thread's messages as the agent last read them, for a summariser that reads them."""

    messages: list[BaseMessage]
    """Every message, as stored (the summary message and system messages included)."""
    kept: int
    """How many of the newest stay verbatim after the summary."""
    agent: AgentPrefix | None = None
    """What the agent sent before them, where a form saw it."""


@dataclass
class SummarizerUsage:
    """What the summariser was asked during one compaction."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int | None = None
    """Input tokens the provider read from its prompt cache (None: a call did not say)."""
    cache_creation: int | None = None
    """Input tokens it wrote to its cache (None: a call did not say)."""

    def add_cache(self, reported: ReplyUsage | None) -> None:
        """Add one call's cache figures, once ``calls`` counts it.

        A call that reported none makes them unknown (None), never a partial sum.
        """
        read = None if reported is None else reported.cache_read
        written = None if reported is None else reported.cache_creation
        first = self.calls == 1
        self.cache_read = read if first else _plus(self.cache_read, read)
        self.cache_creation = written if first else _plus(self.cache_creation, written)


def _plus(total: int | None, figure: int | None) -> int | None:
    return None if total is None or figure is None else total + figure


@dataclass(frozen=True)
class SummaryPolicy:
    """How the summariser is called: who, with what redaction, budget, timeout and retries."""

    summarizer: Summarizer
    token_counter: TokenCounter
    redact: Callable[[BaseMessage], BaseMessage] | None
    timeout: float | None
    retries: int
    backoff: float
    input_budget: int | None
    """The most one call reads, in tokens; None for no limit."""
    counts: PieceCounts = field(init=False, compare=False, repr=False)
    """This compaction's pieces counted so far (a policy serves one compaction)."""
    rendered: RenderMemo = field(init=False, compare=False, repr=False)
    """This compaction's messages rendered so far: packing measures each message's event,
    and the prompt that holds it reuses its text and YAML instead of rendering it again."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", PieceCounts(self.token_counter))
        object.__setattr__(self, "rendered", RenderMemo())

    def fold(
        self,
        previous: str | None,
        evicted: list[BaseMessage],
        max_tokens: int,
        usage: SummarizerUsage,
        callbacks: Any = None,
        *,
        conversation: Conversation | None = None,
    ) -> Flow[str]:
        """Fold ``evicted`` into the summary: redacted, in calls that fit, with retries.

        With an input budget, no call reads more than it, prompt included: messages are
        packed into as few calls as fit, and a message too long for one call, whatever holds
        its size (text, tool-call arguments, a tool result), is cut into pieces that do.
        A summariser that `reads_conversation` is sent ``conversation`` instead (redacted,
        in one call) when it fits the budget.

        Raises:
            SummarizationError: A call failed after its retries, or the budget cannot hold
                the summariser's own prompt and a summary.
        """
        summary = self._redact_all([previous])[0] if previous else previous
        if conversation is not None and reads_conversation(self.summarizer):
            request = self._conversation_request(conversation, max_tokens)
            if request is not None:
                asked, asked_tokens = request
                try:  # one try: a failure goes to the transcript, which is retried
                    return (
                        yield from self._attempts(
                            summary,
                            asked.messages,
                            max_tokens,
                            usage,
                            callbacks,
                            counted=asked_tokens,
                            kept=asked.kept,
                            agent=asked.agent,
                            retries=0,
                        )
                    )
                except SummarizationError as exc:
                    logger.warning(
                        "The summariser failed on the conversation (%s); it reads a "
                        "transcript instead.",
                        exc,
                    )
        messages = self._redact_all(evicted)
        if self.input_budget is None:
            return (yield from self._attempts(summary, messages, max_tokens, usage, callbacks))
        cap, room = self._limits(summary, max_tokens, self.input_budget)
        # Likely to fit in one call (the messages' own count, cached since the trigger
        # counted them, is under the budget): the exact prompt decides, and when it fits
        # there are no pieces to measure.
        if self.token_counter.count(evicted) <= self.input_budget:
            whole = self._prompt_tokens(summary, messages, cap)
            if whole <= self.input_budget:
                return (
                    yield from self._attempts(
                        summary, messages, cap, usage, callbacks, counted=whole
                    )
                )
        queue = deque(self._pieces(messages, room))
        calls = 0
        while queue:
            chunk, prompt = self._take(queue, summary, cap, self.input_budget)
            calls += 1
            summary = yield from self._attempts(
                summary, chunk, cap, usage, callbacks, counted=prompt
            )
        if calls > 1:
            logger.info("Summarised %d messages in %d calls.", len(messages), calls)
        return summary or ""

    def _redact_all(self, items: Sequence[Any]) -> list[Any]:
        """``items`` redacted: messages as messages, a summary's text as text.

        The previous summary is redacted too: one this package did not write may hold
        anything.

        Raises:
            CompactionError: The hook raised or returned no message: nothing is sent.
        """
        if self.redact is None:
            return list(items)
        try:
            done: list[Any] = []
            for item in items:
                if isinstance(item, str):
                    done.append(text_of(self.redact(HumanMessage(item)).content))
                    continue
                redacted = self.redact(item)
                if not isinstance(redacted, BaseMessage):
                    msg = "the `redact` hook must return a message for each message it is given"
                    raise TypeError(msg)
                done.append(redacted)
        except CompactionError:
            raise
        except Exception as exc:  # never send what could not be redacted
            msg = (
                f"The `redact` hook raised {type(exc).__name__}: {exc}. Nothing was sent to "
                "the summariser and the history is unchanged."
            )
            raise CompactionError(msg) from exc
        return done

    def _conversation_request(
        self, conversation: Conversation, max_tokens: int
    ) -> tuple[Conversation, int] | None:
        """The conversation redacted, and its request's tokens; None when over the budget.

        The agent's system message is redacted too (the summariser's own, when no form saw
        the agent's: `ChatModelSummarizer.agent_prefix`). Counted with the token counter's
        per-message cache (the trigger counted most of these messages already).
        """
        resolve = getattr(self.summarizer, "agent_prefix", None)
        agent = resolve(conversation.agent) if callable(resolve) else conversation.agent
        tools_tokens = 0
        if agent is not None and agent.system is not None:
            agent = AgentPrefix(self._redact_all([agent.system])[0], agent.tools)
        if agent is not None and agent.tools:
            try:
                schemas = tool_schemas(agent.tools)
            except ValueError:  # a tool whose schema cannot be read cannot be checked either
                logger.info(
                    "An agent tool's schema cannot be read: the summariser reads a transcript."
                )
                return None
            if self._redact_all(schemas) != schemas:
                logger.info(
                    "A tool schema of the agent holds what redaction removes: the summariser "
                    "reads a transcript instead of the conversation."
                )
                return None
            tools_tokens = sum(self.token_counter.count_text(schema) for schema in schemas)
        redacted = Conversation(self._redact_all(conversation.messages), conversation.kept, agent)
        build = getattr(self.summarizer, "conversation_messages", None)
        tokens: int | None = None
        if callable(build):
            try:
                prompt = build(
                    redacted.messages, kept=redacted.kept, max_tokens=max_tokens, agent=agent
                )
                tokens = self.token_counter.count(prompt)
            except Exception:  # a custom summariser's helper: count its input instead
                logger.debug("conversation_messages failed; counting the conversation instead.")
        if tokens is None:
            tokens = self.token_counter.count(redacted.messages)
        tokens += tools_tokens  # the tools' schemas are read too
        if self.input_budget is not None and tokens > self.input_budget:
            logger.info(
                "The conversation (%d tokens) is over summary_input_tokens (%d): the "
                "summariser reads a transcript instead.",
                tokens,
                self.input_budget,
            )
            return None
        return redacted, tokens

    def _limits(self, previous: str | None, max_tokens: int, budget: int) -> tuple[int, int]:
        """The summary's cap and the most one piece of a message may take, within ``budget``.

        The running summary gets at most half of what the prompt leaves; a piece gets what
        the prompt and the longest summary (the cap, or a longer previous one) leave.
        """
        base = self._prompt_tokens(None, [], max_tokens)
        half = (budget - base) // 2
        cap = min(max_tokens, half)
        room = budget - base - max(cap, self.token_counter.count_text(previous or "")) - _SLACK
        if half < _MIN_TOKENS or room < _MIN_TOKENS:
            msg = (
                f"`summary_input_tokens` ({budget}) is too small for this summariser: its "
                f"prompt alone takes {base} tokens and the running summary "
                f"{self.token_counter.count_text(previous or '')}, leaving no room for the "
                f"messages. Raise `summary_input_tokens` (at least {base + 4 * _MIN_TOKENS} "
                "with a short summary) or use a summariser model with a larger window."
            )
            raise SummarizationError(msg)
        return cap, room

    def _size(self, message: BaseMessage) -> int:
        """Tokens ``message`` adds to a summariser call's transcript."""
        event = message_event(message, self.rendered)
        # With its line break, as the transcript holds it: the piece the exact count of
        # the call's prompt will find already counted.
        return self.counts.text(event + "\n") if event else 0

    def _pieces(self, messages: list[BaseMessage], room: int) -> list[tuple[BaseMessage, int]]:
        """``messages`` with their sizes, each one larger than ``room`` cut into pieces."""
        pieces: list[tuple[BaseMessage, int]] = []
        for message in messages:
            size = self._size(message)
            if size <= room:
                pieces.append((message, size))
                continue
            with rendering_once(self.rendered):  # its text, as the transcript shows it
                cut = split_message(message, room, self._size)
            pieces.extend((piece, self._size(piece)) for piece in cut)
        return pieces

    def _take(
        self,
        queue: deque[tuple[BaseMessage, int]],
        previous: str | None,
        cap: int,
        budget: int,
    ) -> tuple[list[BaseMessage], int]:
        """The next call's messages: as many from ``queue`` as fit ``budget`` with the prompt.

        Returns:
            The messages, and the exact tokens of the call's prompt (counted once: the
            call's usage reuses it).
        """
        used = self._prompt_tokens(previous, [], cap) + _SLACK
        taken: list[tuple[BaseMessage, int]] = []
        while queue and (not taken or used + queue[0][1] <= budget):
            taken.append(queue.popleft())
            used += taken[-1][1]
        # Counted per message the total is an estimate: the exact prompt decides.
        while (prompt := self._prompt_tokens(previous, [m for m, _ in taken], cap)) > budget:
            if len(taken) > 1:
                queue.appendleft(taken.pop())
                continue
            # One piece alone is over: cut it smaller (a running summary whose tags are
            # escaped in the prompt can take more than it counts as text).
            (piece, size), taken = taken[0], []
            smaller = split_message(piece, max(size // 2, _MIN_TOKENS), self._size)
            if len(smaller) < 2:
                msg = (
                    f"`summary_input_tokens` ({budget}) cannot hold the summariser's prompt, "
                    "the running summary and any piece of the messages: raise it."
                )
                raise SummarizationError(msg)
            queue.extendleft(reversed([(part, self._size(part)) for part in smaller]))
            taken.append(queue.popleft())
        return [message for message, _ in taken], prompt

    def _attempts(
        self,
        previous: str | None,
        chunk: list[BaseMessage],
        max_tokens: int,
        usage: SummarizerUsage,
        callbacks: Any,
        *,
        counted: int | None = None,
        kept: int | None = None,
        agent: AgentPrefix | None = None,
        retries: int | None = None,
    ) -> Flow[str]:
        # Our own count of the prompt: the one the budget check made (``counted``), else
        # made at most once, and only for a call whose reply reports no usage (the
        # chat-model summariser then hands back the prompt the call built, rather than
        # rendering the transcript again).
        prompt_tokens = functools.cache(
            lambda: (
                counted if counted is not None else self._prompt_tokens(previous, chunk, max_tokens)
            )
        )
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            replies: Replies = []
            try:
                text: str = yield Summarize(
                    self.summarizer,
                    previous,
                    chunk,
                    max_tokens,
                    self.timeout,
                    replies,
                    callbacks,
                    kept,
                    agent,
                )
            except SummarizationError as exc:
                self._add_usage(usage, replies, None, prompt_tokens)
                if attempt == retries:
                    raise
                delay = min(self.backoff * 2.0 ** min(attempt, 30), _MAX_BACKOFF)
                logger.info("Summariser failed (%s); retrying in %.2f s.", exc, delay)
                if delay:
                    yield Sleep(delay)
            else:
                self._add_usage(usage, replies, text, prompt_tokens)
                return text
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _add_usage(
        self,
        usage: SummarizerUsage,
        replies: Replies,
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
        reported = reported_usage(replies)
        usage.add_cache(reported)
        if reported is not None:
            usage.input_tokens += reported.input_tokens
            usage.output_tokens += reported.output_tokens
            return
        usage.input_tokens += prompt_tokens()
        if text is not None:
            usage.output_tokens += self.token_counter.count_text(text)

    def _prompt_tokens(
        self, previous: str | None, chunk: list[BaseMessage], max_tokens: int
    ) -> int:
        """What one summariser call reads: its exact prompt where it can tell, else the input."""
        prompt_messages = getattr(self.summarizer, "prompt_messages", None)
        if callable(prompt_messages):
            try:
                with rendering_once(self.rendered):
                    prompt = prompt_messages(previous, chunk, max_tokens=max_tokens)
                return self.counts.messages(prompt)
            except Exception:  # a custom summariser's helper: fall back to the input
                logger.debug("prompt_messages failed; counting the summariser's input instead.")
        if isinstance(self.summarizer, ExtractiveSummarizer):
            return 0  # no model reads anything
        return self.token_counter.count(chunk) + self.token_counter.count_text(previous or "")
