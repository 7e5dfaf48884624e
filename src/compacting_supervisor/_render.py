"""The transcript renderer: messages as one tag per event, the form a model reads cheaply.

See `compacting_supervisor.context` for the format. Text inside messages is data: anything
in it that looks like a tag has its ``<`` written as ``&lt;``, so it can neither close the
block it sits in nor pose as one of ours.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)

from compacting_supervisor._messages import (
    HANDOFF_KEYS,
    SUMMARY_PREFIX,
    handoff_call_ids,
    is_summary,
    text_of,
)
from compacting_supervisor._yaml import to_yaml

__all__ = [
    "RenderMemo",
    "as_messages",
    "element",
    "escape",
    "message_event",
    "message_events",
    "plain_text",
    "render_messages",
    "rendering_once",
    "structured",
    "tag_name",
]

# A "<" that could open or close a tag: before a letter, "_", "/", "!" or "?" (spaces
# allowed in between). "a < b" and "x<2" stay as they are.
_TAG_START = re.compile(r"<(?=\s*(?:[/!?]|[^\W\d]))")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def escape(text: str) -> str:
    """Neutralise tag-like text, so data can neither close a block nor forge a tag."""
    return _TAG_START.sub("&lt;", text) if "<" in text else text


def _attribute(value: Any) -> str:
    text = " ".join(str(value).split())
    return '"' + text.replace("<", "&lt;").replace('"', "&quot;") + '"'


def tag_name(name: Any, suffix: str, default: str) -> str:
    """``read_cv`` -> ``read_cv_result``; odd characters become ``_``."""
    clean = _NAME_CHARS.sub("_", str(name or "")).strip("_.-")
    if not clean:
        return default
    if not (clean[0].isalpha() or clean[0] == "_"):
        clean = f"tool_{clean}"
    return f"{clean}{suffix}"


def element(
    tag: str, body: str, attributes: dict[str, Any] | None = None, *, block: bool = False
) -> str:
    """Return ``<tag a="1">body</tag>``; a body of several lines gets lines of its own."""
    head = tag
    if attributes:
        for key, value in attributes.items():
            if value is not None and value != "":
                head = f"{head} {key}={_attribute(value)}"
    if not body:
        return f"<{head}/>"
    if block or "\n" in body:
        return f"<{head}>\n{body}\n</{tag}>"
    return f"<{head}>{body}</{tag}>"


def structured(content: Any) -> str:
    """A tool result's text; JSON objects and arrays (as text or as data) become YAML.

    A structure nested too deeply to walk (thousands of levels) is shown as it came: its
    JSON text, or a note for data that has none.
    """
    try:
        if isinstance(content, dict):
            return to_yaml(content, tables=True)
        if isinstance(content, list) and not all(
            isinstance(block, str) or (isinstance(block, dict) and "type" in block)
            for block in content
        ):
            return to_yaml(content, tables=True)  # a list of records, not content blocks
    except RecursionError:
        return "[a structure nested too deeply to show]"
    text = _content_text(content)
    if text[:1] in ("{", "["):
        try:
            value = json.loads(text)
            if isinstance(value, dict | list) and value:
                return to_yaml(value, tables=True)
        except (ValueError, RecursionError):
            return text
    return text


# ---------------------------------------------------------------------------- messages

# Blocks that carry nothing for a reader of the transcript: tool calls are rendered from
# ``tool_calls``, and hidden reasoning stays hidden.
_SKIPPED_BLOCKS = frozenset(
    {
        "tool_use",
        "tool_call",
        "tool_call_chunk",
        "server_tool_call",
        "reasoning",
        "thinking",
        "redacted_thinking",
    }
)
_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
}


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        content = [
            block
            for block in content
            if not (isinstance(block, dict) and block.get("type") in _SKIPPED_BLOCKS)
        ]
    return text_of(content, mark_blocks=True).strip()


def _args_text(args: Any) -> str:
    if isinstance(args, dict | list):
        return to_yaml(args, tables=True) if args else ""
    return str(args)


def _destination(call: Any, results: dict[str, str]) -> str:
    """Where a hand-off goes: the result's marker, else the tool's name."""
    found = results.get(str(call.get("id")))
    if found:
        return found
    name = str(call.get("name", ""))
    for prefix in ("transfer_back_to_", "transfer_to_"):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


class RenderMemo:
    """What one compaction has rendered of each message: every message rendered once.

    A message's text, its tool calls' arguments and its tool result (JSON as YAML) depend
    on the message alone, and so does its whole event when nothing around it changes it:
    no parallel id and no hand-off (a plain answer, a lone call, a result without an id).
    Events that do depend on the messages rendered with them are keyed by what they depend
    on (a result's short id), or built each time from their remembered parts. The memo
    holds the messages it has seen, so an ``id`` is never reused while it is alive; it
    lives as long as its owner (`compacting_supervisor._compaction.summarise.SummaryPolicy`,
    one per compaction): nothing is cached across compactions, and messages are not changed
    within one.

    Texts are stored as they are, the messages apart (one reference each): no container
    per entry outlives the call that made it, so a large compaction leaves the garbage
    collector no more to walk than the messages themselves.
    """

    def __init__(self) -> None:
        self._parts: dict[tuple[int, Any], str] = {}
        self._held: dict[int, BaseMessage] = {}

    def part(self, message: BaseMessage, slot: Any, render: Callable[[Any], str], arg: Any) -> str:
        """``render(arg)``, the text of ``message``'s ``slot``: rendered the first time only."""
        key = (id(message), slot)
        text = self._parts.get(key)
        if text is None:
            text = self._parts[key] = render(arg)
            self._held[key[0]] = message  # held, so its id names no other message
        return text


_MEMO: contextvars.ContextVar[RenderMemo | None] = contextvars.ContextVar(
    "compacting_supervisor_render_memo", default=None
)


@contextmanager
def rendering_once(memo: RenderMemo) -> Iterator[None]:
    """Within the block, messages render through ``memo`` (`render_messages` included)."""
    token = _MEMO.set(memo)
    try:
        yield
    finally:
        _MEMO.reset(token)


def _part(
    memo: RenderMemo | None, message: BaseMessage, slot: Any, render: Callable[[Any], str], arg: Any
) -> str:
    """``render(arg)``, through ``memo`` when a compaction is rendering."""
    return render(arg) if memo is None else memo.part(message, slot, render, arg)


def _escaped_text(content: Any) -> str:
    """A message's text as the transcript shows it."""
    return escape(_content_text(content))


def _escaped_args(args: Any) -> str:
    """A tool call's arguments as the transcript shows them (YAML)."""
    return escape(_args_text(args))


class _Events:
    """Renders messages one by one; parallel calls are numbered 1, 2, ... in order."""

    def __init__(self, messages: Sequence[BaseMessage], memo: RenderMemo | None = None) -> None:
        self.memo = memo if memo is not None else _MEMO.get()
        # Only a result with metadata can be a hand-off (most carry none).
        marked = [m for m in messages if isinstance(m, ToolMessage) and m.response_metadata]
        self.handoffs = handoff_call_ids(marked) if marked else set()
        self.destinations = {
            message.tool_call_id: str(message.response_metadata["__handoff_destination"])
            for message in marked
            if message.response_metadata.get("__handoff_destination")
        }
        self.ids: dict[str, str] = {}

    def _short(self, call_id: Any, *, new: bool = False) -> str | None:
        """The short id of a parallel call (and of its result); None for a lone call."""
        if not call_id:
            return None
        if new:
            return self.ids.setdefault(str(call_id), str(len(self.ids) + 1))
        return self.ids.get(str(call_id))

    def render(self, message: BaseMessage) -> str:
        """One message's events (several lines for an answer with tool calls), or ""."""
        if isinstance(message, ToolMessage):
            if message.tool_call_id in self.handoffs:
                return ""  # the hand-off's call already reads <handoff .../>
            short = self._short(message.tool_call_id)
            return _part(self.memo, message, ("event", short), self._result, (message, short))
        if (
            isinstance(message, AIMessage)
            and message.tool_calls
            and not _lone_call(message, self.handoffs)
        ):
            return self._ai(message)  # parallel ids or hand-offs: depends on its neighbours
        return _part(self.memo, message, "event", _event, message)

    def _result(self, arg: tuple[ToolMessage, str | None]) -> str:
        message, short = arg
        attributes = {"id": short, "status": "error" if message.status == "error" else None}
        tag = tag_name(message.name, "_result", "tool_result")
        result = _part(self.memo, message, "result", structured, message.content)
        return element(tag, escape(result), attributes)

    def _ai(self, message: AIMessage) -> str:
        handing_off = _hands_off(message)
        events = []
        text = (
            "" if handing_off else _part(self.memo, message, "text", _escaped_text, message.content)
        )
        if text:
            events.append(element("assistant", text, {"name": message.name}))
        handoffs = [handing_off or call.get("id") in self.handoffs for call in message.tool_calls]
        parallel = handoffs.count(False) > 1  # ids pair results with calls only then
        for index, (call, handoff) in enumerate(zip(message.tool_calls, handoffs, strict=True)):
            if handoff:
                to = _destination(call, self.destinations)
                events.append(element("handoff", "", {"from": message.name, "to": to}))
                continue
            short = self._short(call.get("id"), new=True) if parallel else None
            attributes = {"tool": call["name"], "id": short, "by": message.name}
            args = _part(self.memo, message, index, _escaped_args, call["args"])
            events.append(element("call", args, attributes))
        return "\n".join(events)


def _hands_off(message: BaseMessage) -> bool:
    """Whether langgraph-supervisor marked ``message`` as a hand-off (or a hand-back)."""
    return not message.response_metadata.keys().isdisjoint(HANDOFF_KEYS)


def _lone_call(message: AIMessage, handoffs: set[str]) -> bool:
    """Whether an answer's events depend on it alone: one call, and no hand-off."""
    return (
        len(message.tool_calls) == 1
        and message.tool_calls[0].get("id") not in handoffs
        and not _hands_off(message)
    )


def _event(message: BaseMessage) -> str:
    """The events of a message that renders the same whatever surrounds it."""
    if isinstance(message, AIMessage):
        if _hands_off(message):
            return ""  # a hand-off without calls: nothing to show
        text = _escaped_text(message.content)
        events = [element("assistant", text, {"name": message.name})] if text else []
        for call in message.tool_calls:  # one at most (`_lone_call`)
            attributes = {"tool": call["name"], "id": None, "by": message.name}
            events.append(element("call", _escaped_args(call["args"]), attributes))
        return "\n".join(events)
    if isinstance(message, FunctionMessage):
        tag = tag_name(message.name, "_result", "function_result")
        return element(tag, escape(structured(message.content)))
    if is_summary(message):
        text = _content_text(message.content).removeprefix(SUMMARY_PREFIX.strip())
        return element("summary", escape(text.strip()))
    text = _escaped_text(message.content)
    if not text:
        return ""
    if isinstance(message, HumanMessage):
        return element("user", text, {"name": message.name})
    if isinstance(message, SystemMessage):
        return element("system", text)
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return element(_ROLES[message.role], text, {"name": message.name})
    role = message.role if isinstance(message, ChatMessage) else message.type
    return element("message", text, {"role": role, "name": message.name})


def plain_text(message: BaseMessage) -> str:
    """Everything the transcript shows of ``message``, as plain text without tags.

    Its content, and for an answer with tool calls each call's name and arguments: what a
    piece of a message too long for one summariser call must carry, so nothing is lost.
    """
    if isinstance(message, ToolMessage | FunctionMessage):
        return _part(_MEMO.get(), message, "result", structured, message.content)
    text = _content_text(message.content)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [f"{call['name']}:\n{_args_text(call['args'])}" for call in message.tool_calls]
        return "\n".join([text, *calls] if text else calls)
    return text


def as_messages(messages: Any, parameter: str) -> list[BaseMessage]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        msg = (
            f"`{parameter}` must be a list of messages (LangChain messages, or anything "
            f"`convert_to_messages` accepts), got {type(messages).__name__}."
        )
        raise TypeError(msg)
    if all(isinstance(m, BaseMessage) for m in messages):
        return list(messages)
    try:
        return list(convert_to_messages(messages))
    except (ValueError, TypeError, NotImplementedError) as exc:
        msg = (
            f"`{parameter}` holds items that are not messages ({exc}); pass LangChain "
            "messages, (role, text) tuples or role/content dicts."
        )
        raise TypeError(msg) from exc


def message_events(messages: Sequence[BaseMessage], memo: RenderMemo | None = None) -> list[str]:
    """One rendered string per message ("" for a message that shows nothing).

    With ``memo`` (else the one `rendering_once` set, if any), what depends on a message
    alone is rendered once per memo.
    """
    events = _Events(messages, memo)
    return [events.render(message) for message in messages]


def message_event(message: BaseMessage, memo: RenderMemo | None = None) -> str:
    """``message_events([message], memo)[0]``: one message rendered on its own, or "".

    A message whose events depend on it alone (`_event`) skips the per-list bookkeeping:
    what packing calls once per evicted message.
    """
    memo = memo if memo is not None else _MEMO.get()
    if isinstance(message, ToolMessage) or (
        isinstance(message, AIMessage) and message.tool_calls and not _lone_call(message, set())
    ):
        return _Events((message,), memo).render(message)
    return _part(memo, message, "event", _event, message)


def render_messages(messages: Sequence[BaseMessage]) -> str:
    """Render messages compactly for a model to read: one tag per event.

    - ``<user>``, ``<assistant name="...">``, ``<system>``: what was said; content blocks
      read as their text, images as ``[image]``, other blocks as ``[<type>]``, hidden
      reasoning is left out.
    - ``<call tool="..." by="agent">``: a tool call, its arguments as YAML lines.
    - ``<TOOL_result>``: its result (``status="error"`` when it failed); a result that is
      a JSON object or array is rewritten as YAML.
    - ``<handoff from="supervisor" to="agent"/>``: a langgraph-supervisor hand-off, call
      and result in one tag.
    - ``<summary>``: an earlier running summary.

    Parallel calls (several in one message) and their results carry short ids ``id="1"``,
    ``id="2"`` ... to pair them; a lone call's result follows it and needs none. Any text
    inside that looks like a tag has its ``<`` written as ``&lt;``. The output depends on
    the messages only, so the same messages always render the same.

    Args:
        messages: LangChain messages (or ``(role, text)`` tuples, role/content dicts).

    Returns:
        The events, one per line or block, oldest first.

    Raises:
        TypeError: ``messages`` is not a list of messages.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
        >>> print(render_messages([
        ...     HumanMessage("Where is order 42?"),
        ...     AIMessage("", tool_calls=[
        ...         {"name": "order_status", "args": {"order_id": 42}, "id": "call_x7"}]),
        ...     ToolMessage('{"status": "shipped", "eta": "Friday"}',
        ...                 tool_call_id="call_x7", name="order_status"),
        ...     AIMessage("It ships Friday.", name="shop_agent"),
        ... ]))
        <user>Where is order 42?</user>
        <call tool="order_status">order_id: 42</call>
        <order_status_result>
        status: shipped
        eta: Friday
        </order_status_result>
        <assistant name="shop_agent">It ships Friday.</assistant>
    """
    return "\n".join(event for event in message_events(as_messages(messages, "messages")) if event)
