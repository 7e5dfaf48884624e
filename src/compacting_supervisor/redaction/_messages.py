"""Every place a message carries text, redacted: the walk over one LangChain message.

The fields walked: ``content`` (a string, or blocks of any type: text, images and their
URLs, ``tool_use`` inputs, tool results, reasoning), ``additional_kwargs`` (the raw
``tool_calls[].function.arguments`` JSON and ``function_call``), and for an `AIMessage`
its ``tool_calls`` arguments, ``invalid_tool_calls`` and ``tool_call_chunks``; for a
`ToolMessage` its ``artifact``. ``response_metadata`` (what the provider said about the
call) is never shown to the summariser and is left as it is. The message is copied only
when something was redacted, and the original is never changed.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from compacting_supervisor.redaction._structure import Scan, redact_structure

__all__ = ["redact_message"]

_AI_FIELDS = ("tool_calls", "invalid_tool_calls", "tool_call_chunks")


def redact_message(message: BaseMessage, scan: Scan) -> BaseMessage:
    """``message`` with every text it carries passed through the structure rules and ``scan``.

    Returns ``message`` itself when nothing was redacted, else a copy.
    """
    update: dict[str, Any] = {}
    fields = ["content", "additional_kwargs"]
    if isinstance(message, AIMessage):
        fields.extend(name for name in _AI_FIELDS if getattr(message, name, None))
    if isinstance(message, ToolMessage) and message.artifact is not None:
        fields.append("artifact")
    for name in fields:
        value = getattr(message, name)
        if not value:
            continue
        redacted = redact_structure(value, scan)
        if redacted is not value:
            update[name] = redacted
    return message.model_copy(update=update) if update else message
