"""What every module needs to know about messages: their text, hand-offs, the summary.

The lowest module of the package (it imports only `errors`): the summary message's marker,
prefix and metadata key, the text of message content, who said a message, and which tool
calls are supervisor hand-offs. Everything here is pure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from compacting_supervisor.errors import CompactionError

__all__ = [
    "HANDOFF_KEYS",
    "METADATA_KEY",
    "SUMMARY_MARKER",
    "SUMMARY_PREFIX",
    "check_messages",
    "handoff_call_ids",
    "is_handoff",
    "is_summary",
    "new_summary_message",
    "speaker",
    "summary_meta",
    "summary_text",
    "text_of",
]

SUMMARY_MARKER = "summarization"
"""Value of ``additional_kwargs["lc_source"]`` on a summary message (LangChain's own marker)."""

METADATA_KEY = "compacting_supervisor"
"""Key under which the summary message and checkpoints carry this package's metadata."""


def is_summary(message: BaseMessage) -> bool:
    """Return whether ``message`` is a running summary written by a compaction."""
    return (
        isinstance(message, HumanMessage)
        and message.additional_kwargs.get("lc_source") == SUMMARY_MARKER
    )


SUMMARY_PREFIX = "Here is a summary of the conversation to date:\n\n"
"""How the summary message opens (the same words as LangChain's SummarizationMiddleware)."""


def text_of(content: Any, *, mark_blocks: bool = False) -> str:
    """The text of message content; images read ``[image]``, other blocks are skipped.

    With ``mark_blocks``, every other block reads ``[<its type>]`` instead.
    """
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in ("image", "image_url"):
            parts.append("[image]")
        elif isinstance(block, dict) and mark_blocks:
            parts.append(f"[{block.get('type', 'block')}]")
    return "\n".join(p for p in parts if p)


def speaker(message: BaseMessage) -> str:
    """Who said ``message``: ``user``, ``assistant`` (or the agent's name), ``tool result``."""
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, ToolMessage):
        return f"tool result {message.name}" if message.name else "tool result"
    if isinstance(message, AIMessage):
        return message.name or "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ChatMessage):
        return message.role
    if isinstance(message, FunctionMessage):
        return f"function result {message.name}"
    return str(message.type)


# langgraph-supervisor marks its hand-off tool results (and hand-backs) with these keys.
HANDOFF_KEYS = ("__handoff_destination", "__is_handoff_back")


def handoff_call_ids(messages: Sequence[BaseMessage]) -> set[str]:
    """Ids of the tool calls whose results are supervisor hand-offs."""
    return {
        message.tool_call_id
        for message in messages
        if isinstance(message, ToolMessage)
        and any(key in message.response_metadata for key in HANDOFF_KEYS)
    }


def is_handoff(message: BaseMessage, handoff_ids: set[str]) -> bool:
    """A hand-off's call or result: routing between agents, not part of the conversation."""
    if isinstance(message, ToolMessage):
        return message.tool_call_id in handoff_ids
    if isinstance(message, AIMessage) and message.tool_calls:
        if any(key in message.response_metadata for key in HANDOFF_KEYS):
            return True
        only_handoffs = all(call.get("id") in handoff_ids for call in message.tool_calls)
        return only_handoffs and not text_of(message.content).strip()
    return False


def check_messages(messages: Sequence[Any], key: str) -> None:
    """Raise `CompactionError` unless every item of the ``key`` channel is a LangChain message."""
    for index, message in enumerate(messages):
        if not isinstance(message, BaseMessage):
            msg = (
                f"The {key!r} channel holds a {type(message).__name__} at index {index}, not a "
                "LangChain message, so it cannot be compacted safely; nothing was written. "
                "Give the channel the add_messages reducer (e.g. MessagesState) so inputs are "
                "converted to messages."
            )
            raise CompactionError(msg)


def summary_text(message: BaseMessage | None) -> str | None:
    """The running summary's text, without `SUMMARY_PREFIX` (None for no summary)."""
    if message is None:
        return None
    text = text_of(message.content)
    return text.removeprefix(SUMMARY_PREFIX).strip() or None


def summary_meta(message: BaseMessage | None) -> dict[str, Any]:
    """This package's metadata on a summary message (compaction counts), or ``{}``."""
    if message is None:
        return {}
    meta = message.response_metadata.get(METADATA_KEY)
    return meta if isinstance(meta, dict) else {}


def new_summary_message(
    summary: str, *, earlier: Mapping[str, Any], summarized: int, kept: int
) -> HumanMessage:
    """The message that carries a running summary, marked as LangChain marks its own.

    Args:
        summary: The summary text (`SUMMARY_PREFIX` is added).
        earlier: The metadata of the summary it replaces (`summary_meta`), for the totals.
        summarized: Messages folded into it by this compaction.
        kept: Messages kept verbatim after it (usage reported on those messages describes a
            longer history).
    """
    return HumanMessage(
        content=SUMMARY_PREFIX + summary,
        id=f"summary-{uuid.uuid4()}",
        additional_kwargs={"lc_source": SUMMARY_MARKER},
        response_metadata={
            METADATA_KEY: {
                "compactions": int(earlier.get("compactions", 0)) + 1,
                "messages_summarized": int(earlier.get("messages_summarized", 0)) + summarized,
                "compacted_at": time.time(),
                "messages_kept": kept,
            }
        },
    )
