"""When to compact: token limits, context-window fractions, counts, time, events, repetition.

A trigger looks at a thread after a run (`TriggerContext`) and says whether to compact it,
and why. Triggers combine: ``AnyOf(a, b)`` (or ``a | b``) fires when one fires,
``AllOf(a, b)`` (or ``a & b``) when all do. `CompactingSupervisor` takes one as
``trigger=``; without it, ``TokenLimit(token_limit)`` is used, as before.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from compacting_supervisor._messages import handoff_call_ids, is_handoff
from compacting_supervisor._settings import check_count, check_seconds

logger = logging.getLogger(__name__)

__all__ = [
    "AllOf",
    "AnyOf",
    "ContextFraction",
    "MessageCount",
    "Repetition",
    "TimeSinceCompaction",
    "TokenLimit",
    "Trigger",
    "TriggerContext",
    "When",
    "context_window_of",
    "safe_check",
]

# Input windows (tokens) of widely used models, for models whose LangChain profile does not
# say. A name matches exactly, or with a date or version suffix ("gpt-4o-2024-08-06",
# "claude-3-5-sonnet-20241022", "gpt-4o-mini-latest"); snapshots whose window differs from
# their family's are listed; anything else is unknown rather than guessed.
KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-3.5-turbo": 16_385,
    "gpt-3.5-turbo-0613": 4_096,
    "gpt-3.5-turbo-0301": 4_096,
    "gpt-4-turbo-preview": 128_000,
    "gpt-4-1106-preview": 128_000,
    "gpt-4-0125-preview": 128_000,
    "o1-preview": 128_000,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
    "claude-3-5-sonnet": 200_000,
    "claude-3-5-haiku": 200_000,
    "claude-3-7-sonnet": 200_000,
    "claude-sonnet-4": 200_000,
    "claude-sonnet-4-5": 200_000,
    "claude-opus-4": 200_000,
    "claude-opus-4-1": 200_000,
    "claude-haiku-4-5": 200_000,
    "gemini-1.5-pro": 2_097_152,
    "gemini-1.5-flash": 1_048_576,
    "gemini-2.0-flash": 1_048_576,
    "gemini-2.5-pro": 1_048_576,
    "gemini-2.5-flash": 1_048_576,
}
_VERSION_PART = re.compile(r"\d[\d.]*|latest")
_PROVIDERS = ("openai", "anthropic", "google_genai", "google_vertexai", "azure_openai")


@dataclass(frozen=True)
class TriggerContext:
    """What a trigger sees of a thread after a run."""

    thread_id: str
    """The thread."""
    messages: Sequence[BaseMessage]
    """The thread's messages now."""
    tokens: int
    """The tokens the model is sent for them: the provider's reported usage where it is
    trustworthy, else an exact count, plus the declared system prompt and tools."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """The run's state values (for `When`)."""
    last_compaction_at: float | None = None
    """When the thread was last compacted (seconds since the epoch), if known."""
    first_seen_at: float | None = None
    """When this process first saw the thread (for a thread never compacted)."""
    now: float = field(default_factory=time.time)
    """The time of the check."""


def safe_check(trigger: Trigger, context: TriggerContext) -> str | None:
    """``trigger.check(context)``, with an exception logged and taken as "not firing".

    A trigger's bug (a predicate reading a missing key) must neither fail the user's run
    nor stop the other triggers of a combination from being checked.
    """
    try:
        return trigger.check(context)
    except Exception:
        logger.warning(
            "Trigger %r raised on thread %s; it counts as not firing.",
            trigger,
            context.thread_id,
            exc_info=True,
        )
        return None


class Trigger(ABC):
    """Decides whether a thread should be compacted after a run."""

    name: str = "trigger"
    """Recorded as the compaction's ``trigger``."""

    @abstractmethod
    def check(self, context: TriggerContext) -> str | None:
        """Return why the thread should be compacted (a trigger name), or None."""

    def __or__(self, other: Trigger) -> AnyOf:
        return AnyOf(self, other)

    def __and__(self, other: Trigger) -> AllOf:
        return AllOf(self, other)


class TokenLimit(Trigger):
    """Fires when the thread holds more than ``tokens`` tokens (``token_limit=``).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> TokenLimit(100).check(TriggerContext("t", [HumanMessage("hi")], tokens=120))
        'token_limit'
    """

    name = "token_limit"

    def __init__(self, tokens: int) -> None:
        self.tokens: int = check_count("tokens", tokens, unit=" number of tokens")

    def check(self, context: TriggerContext) -> str | None:
        """Fire above the limit."""
        return self.name if context.tokens > self.tokens else None

    def __repr__(self) -> str:
        return f"TokenLimit({self.tokens})"


def context_window_of(model: BaseChatModel | str) -> int | None:
    """The input window of ``model`` in tokens: its LangChain profile, else a known table.

    Args:
        model: A chat model, or a model name (``"gpt-4o"``, ``"openai:gpt-4o"``).

    Returns:
        The window, or None when it cannot be known.
    """
    name = model
    if isinstance(model, BaseChatModel):
        profile = getattr(model, "profile", None) or {}
        window = profile.get("max_input_tokens") if isinstance(profile, dict) else None
        if isinstance(window, int) and window > 0:
            return window
        name = str(getattr(model, "model_name", None) or getattr(model, "model", None) or "")
    name = str(name).lower()
    provider, _, rest = name.partition(":")
    if rest and provider in _PROVIDERS:
        name = rest
    while name not in KNOWN_CONTEXT_WINDOWS:  # drop date and version parts, one at a time
        head, dash, tail = name.rpartition("-")
        if not dash or not _VERSION_PART.fullmatch(tail):
            return None
        name = head
    return KNOWN_CONTEXT_WINDOWS[name]


class ContextFraction(Trigger):
    """Fires when the thread fills more than ``fraction`` of the model's context window.

    Proactive compaction: e.g. ``ContextFraction(0.6, model=llm)`` compacts at 60%
    utilisation, well before the provider rejects the request.

    Args:
        fraction: Of the window, in (0, 1].
        model: The agent's chat model or model name; its window comes from its LangChain
            profile (``max_input_tokens``) or a table of known models.
        context_window: The window in tokens, when the model cannot tell.

    Raises:
        ValueError: The window cannot be known: pass ``context_window=``.

    Example:
        >>> ContextFraction(0.6, model="gpt-4o").limit
        76800
    """

    name = "context_fraction"

    def __init__(
        self,
        fraction: float,
        *,
        model: BaseChatModel | str | None = None,
        context_window: int | None = None,
    ) -> None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            msg = f"`fraction` must be a number in (0, 1], e.g. 0.6, got {fraction!r}."
            raise ValueError(msg)
        if not 0 < fraction <= 1:
            msg = f"`fraction` must be in (0, 1], e.g. 0.6 for 60% of the window, got {fraction}."
            raise ValueError(msg)
        check_count("context_window", context_window, allow_none=True, unit=" number of tokens")
        window = context_window or (context_window_of(model) if model is not None else None)
        if window is None:
            what = f"model {model!r}" if model is not None else "no model was given"
            msg = (
                f"The context window cannot be known ({what}): pass "
                "`context_window=` (in tokens), or a chat model whose profile has "
                "max_input_tokens."
            )
            raise ValueError(msg)
        self.fraction = float(fraction)
        self.context_window: int = window
        self.limit = int(window * self.fraction)

    def check(self, context: TriggerContext) -> str | None:
        """Fire above ``fraction`` of the window."""
        return self.name if context.tokens > self.limit else None

    def __repr__(self) -> str:
        return f"ContextFraction({self.fraction}, context_window={self.context_window})"


class MessageCount(Trigger):
    """Fires when the thread holds more than ``messages`` messages.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> MessageCount(2).check(TriggerContext("t", [HumanMessage("hi")] * 3, tokens=0))
        'message_count'
    """

    name = "message_count"

    def __init__(self, messages: int) -> None:
        self.messages: int = check_count("messages", messages, unit=" number of messages")

    def check(self, context: TriggerContext) -> str | None:
        """Fire above the count."""
        return self.name if len(context.messages) > self.messages else None

    def __repr__(self) -> str:
        return f"MessageCount({self.messages})"


class TimeSinceCompaction(Trigger):
    """Fires when the thread's last compaction is more than ``seconds`` old.

    The time comes from the running summary (compactions record it), so it survives
    restarts; a thread never compacted counts from when this process first saw it.

    Example:
        >>> ctx = TriggerContext("t", [], tokens=0, last_compaction_at=0.0, now=7200.0)
        >>> TimeSinceCompaction(3600).check(ctx)
        'time_since_compaction'
    """

    name = "time_since_compaction"

    def __init__(self, seconds: float) -> None:
        self.seconds: float = check_seconds("seconds", seconds)

    def check(self, context: TriggerContext) -> str | None:
        """Fire once the period has passed."""
        since = context.last_compaction_at
        if since is None:
            since = context.first_seen_at
        if since is None:
            return None
        return self.name if context.now - since > self.seconds else None

    def __repr__(self) -> str:
        return f"TimeSinceCompaction({self.seconds})"


class When(Trigger):
    """Fires when ``predicate(state)`` is true: an event of your own (a milestone reached).

    Args:
        predicate: Called with the run's state values (a dict); returns a bool.
        name: Recorded as the compaction's trigger.

    Example:
        >>> done = When(lambda state: state.get("stage") == "done", name="milestone")
        >>> done.check(TriggerContext("t", [], tokens=0, values={"stage": "done"}))
        'milestone'
    """

    def __init__(self, predicate: Callable[[Mapping[str, Any]], bool], *, name: str = "event"):
        if not callable(predicate):
            msg = "`predicate` must be a function of the state values returning a bool."
            raise TypeError(msg)
        if not isinstance(name, str) or not name:
            msg = f"`name` must be a non-empty string (recorded as the trigger), got {name!r}."
            raise ValueError(msg)
        self.predicate = predicate
        self.name = name

    def check(self, context: TriggerContext) -> str | None:
        """Fire when the predicate holds."""
        return self.name if self.predicate(context.values) else None

    def __repr__(self) -> str:
        return f"When({self.predicate!r}, name={self.name!r})"


class Repetition(Trigger):
    """Fires when the agent's last ``replies`` answers repeat themselves.

    Looping agents answer the same way again and again; compacting gives them a fresh,
    shorter context. Replies repeat when they make the same tool calls (name and
    arguments) and their texts reach ``similarity`` (``difflib`` ratio); so calling the same
    tool with the same arguments again is a repetition, and the same words around new
    arguments are not. Hand-offs and replies under 12 characters are left out.

    Args:
        replies: How many of the latest AI replies with text to compare (at least 2).
        similarity: In (0, 1]; 1.0 means identical.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> loop = [AIMessage("Let me check the file again.")] * 3
        >>> Repetition(replies=3).check(TriggerContext("t", loop, tokens=0))
        'repetition'
    """

    name = "repetition"

    def __init__(self, *, replies: int = 3, similarity: float = 0.9) -> None:
        self.replies: int = check_count("replies", replies, minimum=2)
        if isinstance(similarity, bool) or not isinstance(similarity, int | float):
            msg = f"`similarity` must be a number in (0, 1], got {similarity!r}."
            raise ValueError(msg)
        if not 0 < similarity <= 1:
            msg = f"`similarity` must be in (0, 1], e.g. 0.9, got {similarity}."
            raise ValueError(msg)
        self.similarity = float(similarity)

    def check(self, context: TriggerContext) -> str | None:
        """Fire when the latest replies are all alike (their text and their tool calls)."""
        replies: list[tuple[str, str]] = []
        handoffs = handoff_call_ids(context.messages)
        for message in reversed(context.messages):
            if isinstance(message, AIMessage) and (reply := _reply_signature(message, handoffs)):
                replies.append(reply)
                if len(replies) == self.replies:
                    break
        if len(replies) < self.replies:
            return None
        (text, acts) = replies[0]
        alike = all(
            other_acts == acts  # the same calls, with the same arguments
            and difflib.SequenceMatcher(None, text, other_text).ratio() >= self.similarity
            for other_text, other_acts in replies[1:]
        )
        return self.name if alike else None

    def __repr__(self) -> str:
        return f"Repetition(replies={self.replies}, similarity={self.similarity})"


_MIN_REPLY = 12  # "Done." to three different requests is not a loop


def _reply_signature(message: AIMessage, handoffs: set[str]) -> tuple[str, str] | None:
    """What an answer did: its text and its tool calls; None for a hand-off or a tiny reply.

    ``handoffs`` are the ids of the thread's hand-off calls (`handoff_call_ids`).
    """
    if is_handoff(message, handoffs):
        return None
    calls = [c for c in message.tool_calls if c.get("id") not in handoffs]
    text = " ".join(message.text.split()).lower()
    acts = " ".join(f"{c['name']}({json.dumps(c['args'], sort_keys=True)})" for c in calls)
    return (text, acts) if len(text) + len(acts) >= _MIN_REPLY else None


class AnyOf(Trigger):
    """Fires when any of ``triggers`` fires (the first one's name is recorded).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> either = TokenLimit(1000) | MessageCount(2)
        >>> either.check(TriggerContext("t", [HumanMessage("hi")] * 3, tokens=10))
        'message_count'
    """

    def __init__(self, *triggers: Trigger) -> None:
        self.triggers = _check_triggers(triggers, "AnyOf")
        self.name = "any_of"

    def check(self, context: TriggerContext) -> str | None:
        """The first trigger that fires."""
        return next((why for t in self.triggers if (why := safe_check(t, context))), None)

    def __repr__(self) -> str:
        return f"AnyOf({', '.join(map(repr, self.triggers))})"


class AllOf(Trigger):
    """Fires when all of ``triggers`` fire (their names joined with ``+``).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> both = TokenLimit(5) & MessageCount(2)
        >>> both.check(TriggerContext("t", [HumanMessage("hi")] * 3, tokens=10))
        'token_limit+message_count'
    """

    def __init__(self, *triggers: Trigger) -> None:
        self.triggers = _check_triggers(triggers, "AllOf")
        self.name = "all_of"

    def check(self, context: TriggerContext) -> str | None:
        """All names, when every trigger fires."""
        reasons = []
        for trigger in self.triggers:
            why = safe_check(trigger, context)
            if why is None:
                return None
            reasons.append(why)
        return "+".join(reasons)

    def __repr__(self) -> str:
        return f"AllOf({', '.join(map(repr, self.triggers))})"


def _check_triggers(triggers: tuple[Any, ...], who: str) -> tuple[Trigger, ...]:
    if not triggers:
        msg = f"{who}() needs at least one trigger, e.g. {who}(TokenLimit(4000), MessageCount(80))."
        raise ValueError(msg)
    for trigger in triggers:
        if not isinstance(trigger, Trigger):
            msg = (
                f"{who}() takes triggers (TokenLimit, ContextFraction, MessageCount, "
                f"TimeSinceCompaction, When, Repetition), got {type(trigger).__name__}."
            )
            raise TypeError(msg)
    return triggers
