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

import functools
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from compacting_supervisor.redaction._structure import Scan, redact_structure

__all__ = ["redact_message"]

_AI_FIELDS = ("tool_calls", "invalid_tool_calls", "tool_call_chunks")


@functools.cache
def _on_class(cls: type, name: str) -> bool:
    return name in getattr(cls, "model_fields", {}) or any(name in vars(k) for k in cls.__mro__)


def _attribute(message: BaseMessage, name: str) -> Any:
    """``getattr(message, name, None)``, without pydantic's failed lookup when it has none.

    An `AIMessage` has no ``tool_call_chunks``: asking pydantic costs an exception.
    """
    if _on_class(type(message), name):
        return getattr(message, name, None)
    if name in message.__dict__:
        return message.__dict__[name]
    extra = message.__pydantic_extra__
    return extra.get(name) if extra else None


def redact_message(message: BaseMessage, scan: Scan) -> BaseMessage:
    """``message`` with every text it carries passed through the structure rules and ``scan``.

    Returns ``message`` itself when nothing was redacted, else a copy.
    """
    update: dict[str, Any] = {}
    values = [("content", message.content), ("additional_kwargs", message.additional_kwargs)]
    if isinstance(message, AIMessage):
        values.extend((name, _attribute(message, name)) for name in _AI_FIELDS)
    if isinstance(message, ToolMessage):
        values.append(("artifact", message.artifact))
    for name, value in values:
        if not value:
            continue
        redacted = redact_structure(value, scan)
        if redacted is not value:
            update[name] = redacted
    return message.model_copy(update=update) if update else message
