"""Folding evicted messages into the running summary: redacted, in pieces that fit, retried.

`SummaryPolicy.fold` is a flow (see `compacting_supervisor._flow`): it yields one `Summarize`
op per summariser call and a `Sleep` before each retry, and returns the new summary. Each
call's cost is added to a `SummarizerUsage`: the provider's reported usage where every reply
has it, else our own exact count of the prompt and the reply.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage

from compacting_supervisor._flow import Flow, Sleep
from compacting_supervisor._messages import text_of
from compacting_supervisor._summarizer_call import (
    Replies,
    Summarizer,
    acall_summarizer,
    call_summarizer,
    reported_usage,
)
from compacting_supervisor.errors import SummarizationError
from compacting_supervisor.summarizers import ExtractiveSummarizer
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["Summarize", "SummarizerUsage", "SummaryPolicy", "split_message"]


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

    def run(self) -> str:
        """Call the summariser in a thread of its own, bounded by ``timeout``."""
        return call_summarizer(
            self.summarizer,
            self.previous,
            self.messages,
            max_tokens=self.max_tokens,
            timeout=self.timeout,
            replies=self.replies,
        )

    async def arun(self) -> str:
        """Await the summariser, bounded by ``timeout``."""
        return await acall_summarizer(
            self.summarizer,
            self.previous,
            self.messages,
            max_tokens=self.max_tokens,
            timeout=self.timeout,
            replies=self.replies,
        )


@dataclass
class SummarizerUsage:
    """What the summariser was asked during one compaction."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


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

    def fold(
        self,
        previous: str | None,
        evicted: list[BaseMessage],
        max_tokens: int,
        usage: SummarizerUsage,
    ) -> Flow[str]:
        """Fold ``evicted`` into the summary: redacted, in pieces that fit, with retries."""
        messages = [self.redact(m) for m in evicted] if self.redact else list(evicted)
        summary = previous
        chunks = self._chunks(messages, max_tokens)
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
        usage: SummarizerUsage,
    ) -> Flow[str]:
        # Our own count of the prompt: made at most once, and only for a call whose reply
        # reports no usage (the chat-model summariser then hands back the prompt the call
        # built, rather than rendering the transcript again).
        prompt_tokens = functools.cache(lambda: self._prompt_tokens(previous, chunk, max_tokens))
        for attempt in range(self.retries + 1):
            replies: Replies = []
            try:
                text: str = yield Summarize(
                    self.summarizer, previous, chunk, max_tokens, self.timeout, replies
                )
            except SummarizationError as exc:
                self._add_usage(usage, replies, None, prompt_tokens)
                if attempt == self.retries:
                    raise
                delay = self.backoff * 2**attempt
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
                return self.token_counter.count(
                    prompt_messages(previous, chunk, max_tokens=max_tokens)
                )
            except Exception:  # a custom summariser's helper: fall back to the input
                logger.debug("prompt_messages failed; counting the summariser's input instead.")
        if isinstance(self.summarizer, ExtractiveSummarizer):
            return 0  # no model reads anything
        return self.token_counter.count(chunk) + self.token_counter.count_text(previous or "")

    def _chunks(self, messages: list[BaseMessage], max_tokens: int) -> list[list[BaseMessage]]:
        """Split ``messages`` into pieces whose transcript fits the summariser's input."""
        budget = self.input_budget
        if budget is None:
            return [messages]
        count = self.token_counter.count_message
        # Room for the prompt, the running summary (at most max_tokens) and the answer.
        room = max(budget - max_tokens * 2 - 500, budget // 4, 100)
        chunks: list[list[BaseMessage]] = [[]]
        used = 0
        for message in messages:
            whole = count(message)
            pieces = [message] if whole <= room else split_message(message, room, whole)
            for piece in pieces:
                size = whole if piece is message else count(piece)
                if chunks[-1] and used + size > room:
                    chunks.append([])
                    used = 0
                chunks[-1].append(piece)
                used += size
        return chunks


def split_message(message: BaseMessage, room: int, tokens: int) -> list[BaseMessage]:
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
