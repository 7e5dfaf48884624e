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


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """The fields of a message class that carry text, each with whether the class has it."""
    names = ["content", "additional_kwargs"]
    if issubclass(cls, AIMessage):
        names += _AI_FIELDS
    if issubclass(cls, ToolMessage):
        names.append("artifact")
    return tuple((name, _on_class(cls, name)) for name in names)


def _extra(message: BaseMessage, name: str) -> Any:
    """A field the message's class does not declare, without pydantic's failed lookup.

    An `AIMessage` has no ``tool_call_chunks``: asking pydantic costs an exception.
    """
    if name in message.__dict__:
        return message.__dict__[name]
    extra = message.__pydantic_extra__
    return extra.get(name) if extra else None


def redact_message(message: BaseMessage, scan: Scan) -> BaseMessage:
    """``message`` with every text it carries passed through the structure rules and ``scan``.

    Returns ``message`` itself when nothing was redacted, else a copy.
    """
    update: dict[str, Any] = {}
    for name, declared in _fields(type(message)):
        value = getattr(message, name, None) if declared else _extra(message, name)
        if not value:
            continue
        redacted = redact_structure(value, scan)
        if redacted is not value:
            update[name] = redacted
    return message.model_copy(update=update) if update else message
