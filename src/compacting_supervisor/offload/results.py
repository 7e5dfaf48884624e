"""What offloading produces: `OffloadPlan`, its `OffloadedResult` items, and `OffloadError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from compacting_supervisor.errors import CompactionError

__all__ = ["OffloadError", "OffloadPlan", "OffloadedResult"]


class OffloadError(CompactionError):
    """A tool result could not be stored; the messages were left unchanged.

    Results stored before the failure stay in the store (storing is idempotent, so a retry
    writes the same references), but no message refers to them.

    Attributes:
        ref: The reference of the result that failed.
        tool_call_id: The tool call the result answered.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        ref: str = "",
        tool_call_id: str = "",
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.ref = ref
        self.tool_call_id = tool_call_id


@dataclass(frozen=True)
class OffloadedResult:
    """One tool result moved out of the history."""

    ref: str
    """Its reference in the store (``tr_`` and 20 hex digits)."""
    index: int
    """Its position in the message list."""
    content: str
    """The text stored: the message's content, or its text blocks joined by newlines."""
    metadata: dict[str, Any]
    """``thread_id``, ``tool_call_id``, ``tool_name``, ``chars`` and ``tokens``."""
    original: ToolMessage
    """The message as it was."""
    replacement: ToolMessage
    """The message that takes its place: same ids, the reference and a preview as content."""


@dataclass(frozen=True)
class OffloadPlan:
    """The history with large tool results replaced, and what must be stored first."""

    messages: list[BaseMessage]
    """The new message list (the input list is never modified)."""
    offloaded: list[OffloadedResult]
    """The results moved out, in message order; empty when nothing was large enough."""

    @property
    def chars_offloaded(self) -> int:
        """Characters moved out of the history."""
        return sum(len(item.content) for item in self.offloaded)
