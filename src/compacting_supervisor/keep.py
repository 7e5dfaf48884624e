"""What a compaction keeps verbatim: a fraction, the newest N messages, or the newest N tokens.

Every policy only proposes how many of the oldest conversation messages to summarise; the
cut then moves to the nearest safe boundary (`compacting_supervisor._cut.plan_cut`), so a
tool call and its results always stay on one side and the latest user message is kept.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from compacting_supervisor._settings import check_count, check_ratio, check_token_counter
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["KeepMessages", "KeepPolicy", "KeepRatio", "KeepTokens"]


class KeepPolicy(ABC):
    """Decides how much of the conversation a compaction summarises."""

    @abstractmethod
    def evict_target(self, conversation: Sequence[BaseMessage]) -> int:
        """Return how many of the oldest ``conversation`` messages to summarise.

        Args:
            conversation: The messages after the system messages and the running summary.

        Returns:
            A number from 0 (nothing to compact) to ``len(conversation)``; the cut then
                moves back to a safe boundary.
        """

    @property
    @abstractmethod
    def description(self) -> str:
        """A short human description, for logs and results."""


class KeepRatio(KeepPolicy):
    """Summarise the oldest ``compaction_ratio`` of the conversation (at least one message).

    This is what ``compaction_ratio=`` means.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> KeepRatio(0.5).evict_target([HumanMessage("hi")] * 10)
        5
    """

    def __init__(self, compaction_ratio: float) -> None:
        self.compaction_ratio = check_ratio(compaction_ratio)

    def evict_target(self, conversation: Sequence[BaseMessage]) -> int:
        """Return ``floor(compaction_ratio * len(conversation))``, at least 1."""
        return max(1, math.floor(self.compaction_ratio * len(conversation) + 1e-9))

    @property
    def description(self) -> str:
        """``"summarise 50%"``."""
        return f"summarise {self.compaction_ratio:.0%}"

    def __repr__(self) -> str:
        return f"KeepRatio({self.compaction_ratio})"


class KeepMessages(KeepPolicy):
    """Keep the newest ``messages`` conversation messages verbatim; summarise the rest.

    The cut moves back to a safe boundary, so a few more may be kept.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> KeepMessages(4).evict_target([HumanMessage("hi")] * 10)
        6
    """

    def __init__(self, messages: int) -> None:
        self.messages: int = check_count("messages", messages, unit=" (messages to keep)")

    def evict_target(self, conversation: Sequence[BaseMessage]) -> int:
        """Return how many messages precede the newest ``messages``."""
        return max(0, len(conversation) - self.messages)

    @property
    def description(self) -> str:
        """``"keep the newest 20 messages"``."""
        return f"keep the newest {self.messages} messages"

    def __repr__(self) -> str:
        return f"KeepMessages({self.messages})"


class KeepTokens(KeepPolicy):
    """Keep the newest messages that fit in ``tokens`` tokens verbatim; summarise the rest.

    The cut moves back to a safe boundary, so slightly more may be kept (a tool call stays
    with its results).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> KeepTokens(30).evict_target([HumanMessage("one two three four five")] * 10)
        7
    """

    def __init__(self, tokens: int, *, token_counter: TokenCounter | None = None) -> None:
        self.tokens: int = check_count("tokens", tokens, unit=" (tokens to keep)")
        self.token_counter = check_token_counter(token_counter) or TokenCounter()

    def evict_target(self, conversation: Sequence[BaseMessage]) -> int:
        """Return the index of the oldest message of the newest run that fits the budget."""
        used = 0
        for index in range(len(conversation) - 1, -1, -1):
            used += self.token_counter.count_message(conversation[index])
            if used > self.tokens:
                return index + 1
        return 0

    @property
    def description(self) -> str:
        """``"keep the newest 2000 tokens"``."""
        return f"keep the newest {self.tokens} tokens"

    def __repr__(self) -> str:
        return f"KeepTokens({self.tokens})"


def as_keep_policy(keep: KeepPolicy | float) -> KeepPolicy:
    """A policy from ``keep=`` (a policy) or a ``compaction_ratio`` number.

    Raises:
        TypeError: ``keep`` is neither.
    """
    if isinstance(keep, KeepPolicy):
        return keep
    if isinstance(keep, int | float) and not isinstance(keep, bool):
        return KeepRatio(keep)
    msg = (
        "`keep` must be a KeepPolicy (KeepMessages(20), KeepTokens(2000), KeepRatio(0.5)), "
        f"got {type(keep).__name__}."
    )
    raise TypeError(msg)
