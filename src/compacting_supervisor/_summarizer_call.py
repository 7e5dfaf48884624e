"""Calling a summariser: its protocol, a time-bounded call, and what the provider billed.

`call_summarizer` / `acall_summarizer` run any `Summarizer` within a timeout, turn every
failure into a `SummarizationError`, and check the reply (`validate_summary`: a refusal,
an error report, a markup page or near-empty text is a failed summary); a reply that looks
like it dropped what the previous summary carried is logged as a warning. While a call
runs, a chat-model summariser notes the usage each model reply reports (``usage_metadata``)
in `REPLIES`, so a compaction records what the provider billed rather than an estimate,
and what its prompt cache served (`cache_figures`: langchain-core's ``cache_read`` and
``cache_creation`` input token details).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from langchain_core.messages import BaseMessage

from compacting_supervisor._summary_checks import dropped_content, validate_summary
from compacting_supervisor.errors import SummarizationError

logger = logging.getLogger(__name__)

__all__ = [
    "REPLIES",
    "AgentPrefix",
    "Replies",
    "ReplyUsage",
    "Summarizer",
    "acall_summarizer",
    "arun_summarizer",
    "cache_figures",
    "call_summarizer",
    "checked_reply",
    "note_reply_usage",
    "reads_conversation",
    "reported_usage",
    "run_summarizer",
]


@runtime_checkable
class Summarizer(Protocol):
    """Folds evicted messages into a running summary; sync and async."""

    def summarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        """Return the new running summary."""
        ...

    async def asummarize(
        self, previous: str | None, messages: Sequence[BaseMessage], *, max_tokens: int
    ) -> str:
        """Return the new running summary."""
        ...


@dataclass(frozen=True)
class AgentPrefix:
    """What an agent's model requests carry before the messages, as a form saw them."""

    system: BaseMessage | None = None
    """The system message, as sent (its content blocks and cache markers included)."""
    tools: tuple[Any, ...] = ()
    """The tools bound to the model."""


class ReplyUsage(NamedTuple):
    """The tokens a provider reported for one model reply (its ``usage_metadata``)."""

    input_tokens: int
    output_tokens: int
    cache_read: int | None = None
    """Input tokens read from the provider's prompt cache (None: not reported)."""
    cache_creation: int | None = None
    """Input tokens written to it (None: not reported)."""


Replies = list[ReplyUsage | None]
"""Each model reply of one summariser call: its reported usage, or None (none reported)."""

REPLIES: contextvars.ContextVar[Replies | None] = contextvars.ContextVar(
    "compacting_supervisor_summarizer_replies", default=None
)
"""Where the summariser call running in this context notes its model replies."""


def _token_figure(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cache_figures(usage: Any) -> tuple[int | None, int | None]:
    """The ``cache_read`` and ``cache_creation`` tokens a reply's ``usage_metadata`` reports.

    Each is None when the reply does not report it: a provider without prompt caching, or
    OpenAI, which reports reads only. langchain-openai names them after the service tier
    for priority and flex requests (``"priority_cache_read"``); those count too, and so do
    langchain-anthropic's writes per cache lifetime (``"ephemeral_5m_input_tokens"``).
    """
    details = usage.get("input_token_details") if isinstance(usage, dict) else None
    if not isinstance(details, dict):
        return None, None
    return _detail(details, _named("cache_read")), _detail(details, _cache_write)


def _named(name: str) -> Callable[[str], bool]:
    """Whether a detail's key is ``name``, or ``name`` after a service tier's prefix."""
    return lambda key: key == name or key.endswith(f"_{name}")


def _cache_write(key: str) -> bool:
    """Whether a detail's key counts cache writes.

    ``cache_creation``, or langchain-anthropic's writes per cache lifetime
    (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``), after which it sets
    ``cache_creation`` to 0: they add up.
    """
    return _named("cache_creation")(key) or (
        key.startswith("ephemeral_") and key.endswith("_input_tokens")
    )


def _detail(details: dict[str, Any], matches: Callable[[str], bool]) -> int | None:
    """The sum of the token figures under the keys ``matches`` accepts; None if none."""
    found = [
        figure
        for key, value in details.items()
        if isinstance(key, str)
        and matches(key)
        and (figure := _token_figure(value)) is not None
        and figure >= 0
    ]
    return sum(found) if found else None


def reads_conversation(summarizer: Summarizer) -> bool:
    """Whether ``summarizer`` reads the conversation as the agent did (its cached prefix).

    A summariser opts in with a true ``reads_conversation`` attribute and the methods
    ``summarize_conversation(conversation, *, kept, max_tokens, agent)`` and its async
    twin (`ChatModelSummarizer` with ``request="conversation"``).
    """
    return getattr(summarizer, "reads_conversation", False) is True and callable(
        getattr(summarizer, "summarize_conversation", None)
    )


def note_reply_usage(reply: Any) -> None:
    """Note what ``reply`` reports it cost, for the summariser call running now."""
    replies = REPLIES.get()
    if replies is None:
        return  # not called through the history manager
    usage = getattr(reply, "usage_metadata", None)
    if not isinstance(usage, dict):
        replies.append(None)
        return
    read = _token_figure(usage.get("input_tokens"))
    written = _token_figure(usage.get("output_tokens"))
    # A real prompt is never 0 tokens: zeros are a placeholder, not a report.
    if read is not None and written is not None and read > 0 and written >= 0:
        replies.append(ReplyUsage(read, written, *cache_figures(usage)))
    else:
        replies.append(None)


def reported_usage(replies: Replies) -> ReplyUsage | None:
    """What the provider reported for one summariser call, summed over its model replies.

    None when the call got no reply (it raised or timed out first) or when any of its
    replies reported nothing: the caller then counts the call itself. Each cache figure is
    None unless every reply reported it (a partial sum would understate it).
    """
    reported = [reply for reply in replies if reply is not None]
    if not replies or len(reported) < len(replies):
        return None
    reads = [r.cache_read for r in reported if r.cache_read is not None]
    writes = [r.cache_creation for r in reported if r.cache_creation is not None]
    return ReplyUsage(
        sum(r.input_tokens for r in reported),
        sum(r.output_tokens for r in reported),
        sum(reads) if len(reads) == len(reported) else None,
        sum(writes) if len(writes) == len(reported) else None,
    )


def checked_reply(previous: str | None, text: Any) -> str:
    """``text`` validated as a summary; a warning when it seems to drop ``previous``.

    Raises:
        SummarizationError: ``text`` is no summary (see `validate_summary`).
    """
    summary = validate_summary(text)
    dropped = dropped_content(previous, summary)
    if dropped:
        logger.warning("The summariser's reply may have dropped the previous summary: %s", dropped)
    return summary


def _failure(exc: BaseException, timeout: float | None) -> SummarizationError:
    if isinstance(exc, SummarizationError):
        return exc
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
        return SummarizationError(f"The summariser did not answer within {timeout} s.")
    return SummarizationError(f"The summariser raised {type(exc).__name__}: {exc}")


def run_summarizer(
    summarizer: Summarizer,
    previous: str | None,
    messages: Sequence[BaseMessage],
    *,
    max_tokens: int,
    timeout: float | None,
) -> str:
    """Call ``summarizer`` within ``timeout`` seconds and return its validated summary.

    The call runs in a thread of its own (with the caller's context), so a summariser that
    hangs costs one idle thread, never the caller's run or other summaries.

    Raises:
        SummarizationError: The summariser raised, timed out or returned no usable text.
    """
    return call_summarizer(
        summarizer, previous, messages, max_tokens=max_tokens, timeout=timeout, replies=[]
    )


def call_summarizer(
    summarizer: Summarizer,
    previous: str | None,
    messages: Sequence[BaseMessage],
    *,
    max_tokens: int,
    timeout: float | None,
    replies: Replies,
    kept: int | None = None,
    agent: AgentPrefix | None = None,
) -> str:
    """`run_summarizer`, noting in ``replies`` the usage each model reply reported.

    With ``kept``, ``messages`` is the whole conversation and the summariser (one that
    `reads_conversation`) folds all of it but the last ``kept`` messages, sent after
    ``agent``'s system message and tools when a form saw them.
    """
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    context = contextvars.copy_context()
    context.run(REPLIES.set, replies)  # the copy only: the caller's context is untouched

    def call() -> None:
        try:
            if kept is None:
                text = context.run(summarizer.summarize, previous, messages, max_tokens=max_tokens)
            else:
                text = context.run(
                    summarizer.summarize_conversation,  # type: ignore[attr-defined]
                    messages,
                    kept=kept,
                    max_tokens=max_tokens,
                    agent=agent,
                )
            future.set_result(text)
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=call, name="compacting-supervisor-summary", daemon=True).start()
    try:
        text = future.result(timeout=timeout)
    except Exception as exc:
        raise _failure(exc, timeout) from exc
    return checked_reply(previous, text)


async def arun_summarizer(
    summarizer: Summarizer,
    previous: str | None,
    messages: Sequence[BaseMessage],
    *,
    max_tokens: int,
    timeout: float | None,
) -> str:
    """Async form of `run_summarizer`."""
    return await acall_summarizer(
        summarizer, previous, messages, max_tokens=max_tokens, timeout=timeout, replies=[]
    )


async def acall_summarizer(
    summarizer: Summarizer,
    previous: str | None,
    messages: Sequence[BaseMessage],
    *,
    max_tokens: int,
    timeout: float | None,
    replies: Replies,
    kept: int | None = None,
    agent: AgentPrefix | None = None,
) -> str:
    """Async form of `call_summarizer`."""

    async def call() -> str:
        token = REPLIES.set(replies)
        try:
            if kept is not None:
                return await summarizer.asummarize_conversation(  # type: ignore[attr-defined,no-any-return]
                    messages, kept=kept, max_tokens=max_tokens, agent=agent
                )
            return await summarizer.asummarize(previous, messages, max_tokens=max_tokens)
        finally:
            REPLIES.reset(token)

    try:
        text = await asyncio.wait_for(call(), timeout=timeout)
    except Exception as exc:
        raise _failure(exc, timeout) from exc
    return checked_reply(previous, text)
