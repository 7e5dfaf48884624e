"""Compact, tagged context for a model to read, and prompts built within a token budget.

Message JSON is a costly format for a model to *read*: every message repeats its keys, ids
and metadata, and tool arguments and results are JSON escaped inside JSON. What a model is
shown is ours to decide (the "own your context window" idea), so this module renders a
conversation as one tag per event instead::

    <user>Tell me about Alice.</user>
    <handoff from="supervisor" to="candidates_agent"/>
    <call tool="read_cv" by="candidates_agent">name: Alice</call>
    <read_cv_result>
    name: Alice Chen
    years: 8
    </read_cv_result>
    <assistant name="candidates_agent">Alice Chen has 8 years ...</assistant>

- `render_messages` renders messages that way; the chat-model summariser reads its
  transcript in this form.
- `ContextBuilder` assembles your own prompt from system instructions, the user's input,
  tool results, retrieved documents and conversation history, in the same form, and fits it
  into a token budget, counted exactly, by leaving out the least important parts first.

Text inside messages, documents and tool results is data: anything in it that looks like a
tag (``</new_messages>``, ``<system>``) has its ``<`` written as ``&lt;``, so it can
neither close the block it sits in nor pose as one of ours.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
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
from compacting_supervisor._settings import check_count, check_token_counter
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["BuiltContext", "ContextBuilder", "render_messages"]

# ---------------------------------------------------------------------------- escaping

# A "<" that could open or close a tag: before a letter, "_", "/", "!" or "?" (spaces
# allowed in between). "a < b" and "x<2" stay as they are.
_TAG_START = re.compile(r"<(?=\s*(?:[/!?]|[^\W\d]))")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def _escape(text: str) -> str:
    """Neutralise tag-like text, so data can neither close a block nor forge a tag."""
    return _TAG_START.sub("&lt;", text)


def _attribute(value: Any) -> str:
    text = " ".join(str(value).split())
    return '"' + text.replace("<", "&lt;").replace('"', "&quot;") + '"'


def _tag_name(name: Any, suffix: str, default: str) -> str:
    """``read_cv`` -> ``read_cv_result``; odd characters become ``_``."""
    clean = _NAME_CHARS.sub("_", str(name or "")).strip("_.-")
    if not clean:
        return default
    if not (clean[0].isalpha() or clean[0] == "_"):
        clean = f"tool_{clean}"
    return f"{clean}{suffix}"


def _element(
    tag: str, body: str, attributes: dict[str, Any] | None = None, *, block: bool = False
) -> str:
    """Return ``<tag a="1">body</tag>``; a body of several lines gets lines of its own."""
    head = tag + "".join(
        f" {key}={_attribute(value)}"
        for key, value in (attributes or {}).items()
        if value is not None and value != ""
    )
    if not body:
        return f"<{head}/>"
    if block or "\n" in body:
        return f"<{head}>\n{body}\n</{tag}>"
    return f"<{head}>{body}</{tag}>"


# ---------------------------------------------------------------------------- YAML

_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_RESERVED = frozenset(
    {"", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "=", "<<"}
    | {".inf", "-.inf", "+.inf", ".nan"}
)
_RESERVED_MAX = max(map(len, _RESERVED))  # lowering never shortens a string
# Strings a YAML parser would read as a number, a date or a time (1.1 rules included).
_NUMBER_LIKE = re.compile(r"[-+.]?\d[\d\s:._+\-TtZzEe]*|[-+]?0[xXoObB][\dA-Fa-f_]+")
_NUMBER_START = frozenset("-+.")  # or a digit: the only ways `_NUMBER_LIKE` can start
_LINE_BREAKS = frozenset("\r\x85\u2028\u2029")
_UNSAFE_IN_QUOTES = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
# Short strings (keys above all) repeat across records: their rendering is remembered.
_SCALARS: dict[str, str] = {}
_SCALARS_KEPT = 4096
_SCALAR_CACHED_CHARS = 64


def _quoted(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string
    return _UNSAFE_IN_QUOTES.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _plain_ok(text: str) -> bool:
    if len(text) <= _RESERVED_MAX and text.lower() in _RESERVED:
        return False  # also every empty string
    first = text[0]
    return (
        first not in _INDICATORS
        and not first.isspace()
        and not text[-1].isspace()
        and text.isprintable()
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
        and (
            not (first in _NUMBER_START or first.isdecimal())
            or _NUMBER_LIKE.fullmatch(text) is None
        )
    )


def _text_scalar(text: str) -> str:
    """A string as a YAML scalar: plain when unambiguous, else double-quoted."""
    rendered = _SCALARS.get(text)
    if rendered is None:
        rendered = text if _plain_ok(text) else _quoted(text)
        if len(text) <= _SCALAR_CACHED_CHARS:
            if len(_SCALARS) >= _SCALARS_KEPT:
                _SCALARS.clear()
            _SCALARS[text] = rendered
    return rendered


def _scalar(value: Any) -> str:
    """One YAML scalar: plain when unambiguous, else a double-quoted string."""
    if type(value) is str:
        return _text_scalar(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:  # 1e+16 reads as a string in YAML 1.1
            text = f"{mantissa}.0e{exponent}"
        return text
    return _text_scalar(str(value))


def _literal_ok(text: str) -> bool:
    if "\n" not in text:
        return False
    first = next((line for line in text.split("\n") if line), "")
    return (
        bool(first)
        and not first.startswith((" ", "\t"))
        and not any(ch in _LINE_BREAKS for ch in text)
        and all(ch.isprintable() or ch in "\n\t" for ch in text)
        and "\ufeff" not in text
    )


_FLOW_UNSAFE = frozenset(",[]{}?")
_FLOW_WIDTH = 100


def _flow(items: list[Any]) -> str | None:
    """``[a, b, c]`` for a short list of scalars (fewer tokens than one line each)."""
    if any(
        isinstance(item, dict | list) or (isinstance(item, str) and "\n" in item) for item in items
    ):
        return None
    parts = []
    width = 0  # "[" and "]" take the room of the ", " the first item does without
    for item in items:
        text = _scalar(item)
        if isinstance(item, str) and text == item and any(c in _FLOW_UNSAFE for c in text):
            text = _quoted(item)  # inside [ ] a plain scalar ends at these
        width += len(text) + 2
        if width > _FLOW_WIDTH:
            return None
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def _entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    """Append ``head`` (``key:`` or ``-``) followed by ``value`` to ``out``."""
    kind = type(value)
    if kind is str:  # the common case first; the same rules as below
        if "\n" in value and _literal_ok(value):
            _literal(head, value, indent, out)
        else:
            out.append(f"{head} {_text_scalar(value)}")
        return
    if kind is int or kind is float or value is None:
        out.append(f"{head} {_scalar(value)}")
        return
    if isinstance(value, list) and value and (flow := _flow(value)) is not None:
        out.append(f"{head} {flow}")
    elif isinstance(value, dict | list) and value:
        out.append(head)
        _yaml_lines(value, indent + "  ", out)
    elif isinstance(value, str) and _literal_ok(value):
        _literal(head, value, indent, out)
    elif isinstance(value, dict | list):
        out.append(f"{head} {'{}' if isinstance(value, dict) else '[]'}")
    else:
        out.append(f"{head} {_scalar(value)}")


def _literal(head: str, value: str, indent: str, out: list[str]) -> None:
    """A multi-line string as a literal block (``|``), its trailing line breaks kept."""
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    lines = body.split("\n") + [""] * max(0, trailing - 1)
    out.append(f"{head} |{chomp}")
    out.extend(f"{indent}  {line}" if line else "" for line in lines)


def _yaml_lines(value: dict[Any, Any] | list[Any], indent: str, out: list[str]) -> None:
    """Append a non-empty mapping or sequence in block style, one entry per line."""
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_text_scalar(key) if type(key) is str else _scalar(key)}:"
            kind = type(item)
            if kind is str and "\n" not in item:  # a record's usual field, inline
                out.append(f"{head} {_text_scalar(item)}")
            elif kind is int:
                out.append(f"{head} {item}")
            else:
                _entry(head, item, indent, out)
        return
    for item in value:
        if isinstance(item, list) and item and (flow := _flow(item)) is not None:
            out.append(f"{indent}- {flow}")
        elif isinstance(item, dict | list) and item:
            start = len(out)
            _yaml_lines(item, indent + "  ", out)
            out[start] = f"{indent}- {out[start][len(indent) + 2 :]}"
        else:
            _entry(f"{indent}-", item, indent, out)


def _to_yaml(value: dict[Any, Any] | list[Any]) -> str:
    """Deterministic block YAML for JSON-like data (mappings keep their order)."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    out: list[str] = []
    _yaml_lines(value, "", out)
    return "\n".join(out)


def _structured(content: Any) -> str:
    """A tool result's text; JSON objects and arrays (as text or as data) become YAML."""
    if isinstance(content, dict):
        return _to_yaml(content)
    if isinstance(content, list) and not all(
        isinstance(block, str) or (isinstance(block, dict) and "type" in block) for block in content
    ):
        return _to_yaml(content)  # a list of records, not content blocks
    text = _content_text(content)
    if text[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, dict | list) and value:
            return _to_yaml(value)
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
        return _to_yaml(args) if args else ""
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


class _Events:
    """Renders messages one by one; parallel calls are numbered 1, 2, ... in order."""

    def __init__(self, messages: Sequence[BaseMessage]) -> None:
        self.handoffs = handoff_call_ids(messages)
        self.destinations = {
            message.tool_call_id: str(message.response_metadata["__handoff_destination"])
            for message in messages
            if isinstance(message, ToolMessage)
            and message.response_metadata.get("__handoff_destination")
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
        if is_summary(message):
            text = _content_text(message.content).removeprefix(SUMMARY_PREFIX.strip())
            return _element("summary", _escape(text.strip()))
        if isinstance(message, AIMessage):
            return self._ai(message)
        if isinstance(message, ToolMessage):
            if message.tool_call_id in self.handoffs:
                return ""  # the hand-off's call already reads <handoff .../>
            attributes = {
                "id": self._short(message.tool_call_id),
                "status": "error" if message.status == "error" else None,
            }
            tag = _tag_name(message.name, "_result", "tool_result")
            return _element(tag, _escape(_structured(message.content)), attributes)
        if isinstance(message, FunctionMessage):
            tag = _tag_name(message.name, "_result", "function_result")
            return _element(tag, _escape(_structured(message.content)))
        text = _escape(_content_text(message.content))
        if isinstance(message, HumanMessage):
            return _element("user", text, {"name": message.name}) if text else ""
        if isinstance(message, SystemMessage):
            return _element("system", text) if text else ""
        if isinstance(message, ChatMessage) and message.role in _ROLES:
            return _element(_ROLES[message.role], text, {"name": message.name}) if text else ""
        role = message.role if isinstance(message, ChatMessage) else message.type
        return _element("message", text, {"role": role, "name": message.name}) if text else ""

    def _ai(self, message: AIMessage) -> str:
        handing_off = any(key in message.response_metadata for key in HANDOFF_KEYS)
        events = []
        text = "" if handing_off else _escape(_content_text(message.content))
        if text:
            events.append(_element("assistant", text, {"name": message.name}))
        handoffs = [handing_off or call.get("id") in self.handoffs for call in message.tool_calls]
        parallel = handoffs.count(False) > 1  # ids pair results with calls only then
        for call, handoff in zip(message.tool_calls, handoffs, strict=True):
            if handoff:
                to = _destination(call, self.destinations)
                events.append(_element("handoff", "", {"from": message.name, "to": to}))
                continue
            short = self._short(call.get("id"), new=True) if parallel else None
            attributes = {"tool": call["name"], "id": short, "by": message.name}
            events.append(_element("call", _escape(_args_text(call["args"])), attributes))
        return "\n".join(events)


def _as_messages(messages: Any, parameter: str) -> list[BaseMessage]:
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


def _message_events(messages: Sequence[BaseMessage]) -> list[str]:
    """One rendered string per message ("" for a message that shows nothing)."""
    events = _Events(messages)
    return [events.render(message) for message in messages]


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
    return "\n".join(
        event for event in _message_events(_as_messages(messages, "messages")) if event
    )


# ---------------------------------------------------------------------------- the builder

_MIN_TRIMMED_CHARS = 80
"""A document or tool result cut shorter than this is left out instead."""


@dataclass
class _Part:
    kind: str  # "system", "user", "tool", "documents" or "history"
    items: list[str]  # rendered bodies, escaped (the system text is ours: verbatim)
    labels: list[Any] = field(default_factory=list)  # document sources; the tool's name
    results: list[bool] = field(default_factory=list)  # history: the item is a tool result


@dataclass(frozen=True)
class BuiltContext:
    """A prompt assembled by `ContextBuilder`, within its token budget."""

    text: str
    """Every part in the tagged form as one string, the system instructions first in
    ``<system>``: for a prompt template of your own."""
    messages: list[BaseMessage]
    """``[SystemMessage(instructions), HumanMessage(everything else)]``, ready for a chat
    model (no SystemMessage when there are no instructions)."""
    tokens: int
    """Exact tokens of `messages`, as `TokenCounter.count` counts what a model is sent.
    `text` is within the budget too."""
    omitted: dict[str, int]
    """What was left out to fit, by kind: ``messages``, ``documents``, ``tool_results``,
    and ``truncated`` (documents or tool results cut short). Empty when all fits."""


class ContextBuilder:
    """Build a prompt from instructions, input, tool results, documents and history.

    Add parts in the order they should appear; `build` renders them in the tagged form of
    `render_messages` and fits them into ``token_budget``, counted exactly:

    - conversation history (``messages``) goes first, oldest message first (a tool call's
      results go with it), leaving ``<omitted messages="N"/>``;
    - then documents, from the last one added (add them best first), leaving
      ``<omitted documents="N"/>``;
    - then tool results, oldest first, leaving ``<omitted tool_result="NAME"/>``.

    The document or tool result that would just not fit is cut short at a word boundary
    (``truncated="true"``) rather than left out, when a useful part of it fits. The system
    instructions and the user's input are never cut: when they alone exceed the budget,
    `build` raises.

    Args:
        token_budget: The most tokens the built prompt may take, both as ``messages``
            (counted like any chat request, message overhead included) and as ``text``.
        token_counter: Counts the tokens. Defaults to ``TokenCounter()`` (``cl100k_base``);
            pass ``TokenCounter(model="gpt-4o")`` for your model's encoding.

    Raises:
        ValueError: ``token_budget`` is not a positive integer.
        TypeError: ``token_counter`` is not a `TokenCounter`.

    Example:
        >>> from langchain_core.documents import Document
        >>> cv = Document("Alice Chen: 8 years of Go.", metadata={"source": "cv/alice.md"})
        >>> context = (
        ...     ContextBuilder(token_budget=200)
        ...     .system("Answer from the documents only.")
        ...     .documents([cv])
        ...     .tool_result("calendar", {"free": ["Tue 10:00", "Wed 14:00"]})
        ...     .user("When can we interview Alice?")
        ...     .build()
        ... )
        >>> print(context.messages[1].content)
        <documents>
        <document source="cv/alice.md">Alice Chen: 8 years of Go.</document>
        </documents>
        <calendar_result>free: [Tue 10:00, Wed 14:00]</calendar_result>
        <user>When can we interview Alice?</user>
        >>> context.tokens <= 200, context.omitted
        (True, {})
    """

    def __init__(self, *, token_budget: int, token_counter: TokenCounter | None = None) -> None:
        check_count("token_budget", token_budget, unit=" (the most tokens the prompt may take)")
        check_token_counter(token_counter)
        self.token_budget = token_budget
        self.token_counter = token_counter or TokenCounter()
        self._parts: list[_Part] = []

    # ------------------------------------------------------------------ adding parts

    def system(self, text: str) -> ContextBuilder:
        """Add system instructions (never cut; several calls are joined in order)."""
        self._parts.append(_Part("system", [_text(text, "text").strip()]))
        return self

    def user(self, text: str) -> ContextBuilder:
        """Add the user's input as ``<user>`` (never cut)."""
        self._parts.append(_Part("user", [_escape(_text(text, "text").strip())]))
        return self

    def tool_result(self, name: str, content: Any) -> ContextBuilder:
        """Add a tool's result as ``<NAME_result>``.

        Args:
            name: The tool's name.
            content: Text, or JSON-like data (a dict or list, or a string holding a JSON
                object or array), which is written as YAML.
        """
        if not isinstance(name, str) or not name.strip():
            msg = f"`name` must be the tool's name (a non-empty string), got {name!r}."
            raise ValueError(msg)
        body = _structured(content) if isinstance(content, str | dict | list) else str(content)
        self._parts.append(_Part("tool", [_escape(body)], [name]))
        return self

    def documents(self, docs: Iterable[Document | str]) -> ContextBuilder:
        """Add retrieved documents, best first, each as ``<document source="...">``.

        Args:
            docs: LangChain `Document` objects (``metadata["source"]`` is shown) or strings.
        """
        if isinstance(docs, str | Document):
            docs = [docs]
        items: list[str] = []
        sources: list[Any] = []
        for index, doc in enumerate(docs):
            if isinstance(doc, Document):
                items.append(_escape(doc.page_content.strip()))
                sources.append(doc.metadata.get("source"))
            elif isinstance(doc, str):
                items.append(_escape(doc.strip()))
                sources.append(None)
            else:
                msg = (
                    f"`docs` must hold LangChain Documents or strings; item {index} is a "
                    f"{type(doc).__name__}."
                )
                raise TypeError(msg)
        if items:
            self._parts.append(_Part("documents", items, sources))
        return self

    def messages(self, history: Sequence[BaseMessage]) -> ContextBuilder:
        """Add conversation history, rendered by `render_messages`, as ``<history>``."""
        messages = _as_messages(history, "history")
        results = [isinstance(m, ToolMessage | FunctionMessage) for m in messages]
        if messages:
            self._parts.append(_Part("history", _message_events(messages), [], results))
        return self

    # ------------------------------------------------------------------ building

    def build(self) -> BuiltContext:
        """Render the parts and fit them into the budget.

        Returns:
            The prompt as text and as messages, its exact token count and what was left
            out.

        Raises:
            ValueError: Nothing was added, or the system instructions and the user's input
                alone exceed ``token_budget``.
        """
        if not self._parts:
            msg = "Nothing to build: add parts first (.system(), .user(), .documents() ...)."
            raise ValueError(msg)
        return _Fit(self).run()


def _text(value: Any, parameter: str) -> str:
    if not isinstance(value, str):
        msg = f"`{parameter}` must be a string, got {type(value).__name__}."
        raise TypeError(msg)
    return value


class _Fit:
    """Leaves parts out, least important first, until the rendered prompt fits."""

    def __init__(self, builder: ContextBuilder) -> None:
        self.parts = builder._parts
        self.budget = builder.token_budget
        self.counter = builder.token_counter
        self.dropped: dict[int, int] = {}  # part -> items left out (history: from the front)
        self.cut: dict[tuple[int, int], str] = {}  # (part, item) -> its shortened body
        self.victims = self._victims()
        self.bare = False  # everything removable is gone: no markers or empty wrappers

    def _victims(self) -> list[tuple[int, int]]:
        order: list[tuple[int, int]] = []
        kinds = [part.kind for part in self.parts]
        for i, part in enumerate(self.parts):
            if part.kind == "history":
                order.extend((i, j) for j in range(len(part.items)))
        for i in reversed(range(len(self.parts))):
            if kinds[i] == "documents":
                order.extend((i, j) for j in reversed(range(len(self.parts[i].items))))
        order.extend((i, 0) for i, kind in enumerate(kinds) if kind == "tool")
        return order

    # ------------------------------------------------------------------ rendering

    def _render(self, i: int, part: _Part) -> str:
        dropped = self.dropped.get(i, 0)
        if part.kind == "user":
            return _element("user", part.items[0])
        if part.kind == "tool":
            name = part.labels[0]
            if dropped:
                return _element("omitted", "", {"tool_result": name})
            body = self.cut.get((i, 0), part.items[0])
            truncated = "true" if (i, 0) in self.cut else None
            return _element(
                _tag_name(name, "_result", "tool_result"), body, {"truncated": truncated}
            )
        if part.kind == "documents":
            kept = len(part.items) - dropped
            lines = [
                _element(
                    "document",
                    self.cut.get((i, j), part.items[j]),
                    {"source": part.labels[j], "truncated": "true" if (i, j) in self.cut else None},
                )
                for j in range(kept)
            ]
            if dropped:
                lines.append(_element("omitted", "", {"documents": dropped}))
            return _element("documents", "\n".join(lines), block=True)
        # history
        lines = [_element("omitted", "", {"messages": dropped})] if dropped else []
        lines.extend(event for event in part.items[dropped:] if event)
        return _element("history", "\n".join(lines), block=True)

    def _assemble(self) -> tuple[str, list[BaseMessage]]:
        system = "\n\n".join(p.items[0] for p in self.parts if p.kind == "system" and p.items[0])
        body = "\n".join(
            self._render(i, part)
            for i, part in enumerate(self.parts)
            if part.kind == "user" or (part.kind != "system" and not self.bare)
        )
        head = _element("system", system, block=True) if system else ""
        text = "\n".join(filter(None, [head, body]))
        messages: list[BaseMessage] = [SystemMessage(system)] if system else []
        if body:
            messages.append(HumanMessage(body))
        return text, messages

    def _measure(self) -> tuple[int, str, list[BaseMessage], int]:
        """``(tokens over the budget, text, messages, message tokens)``."""
        text, messages = self._assemble()
        tokens = self.counter.count(messages)
        over = max(tokens, self.counter.count_text(text)) - self.budget
        return over, text, messages, tokens

    # ------------------------------------------------------------------ leaving out

    def _gone(self, victim: tuple[int, int]) -> bool:
        i, j = victim
        part = self.parts[i]
        if part.kind == "history":
            return j < self.dropped.get(i, 0)
        if part.kind == "documents":
            return j >= len(part.items) - self.dropped.get(i, 0)
        return bool(self.dropped.get(i, 0))

    def _drop(self, victim: tuple[int, int]) -> None:
        i, j = victim
        part = self.parts[i]
        self.cut.pop(victim, None)
        if part.kind == "history":
            end = j + 1
            while end < len(part.items) and part.results[end]:
                end += 1  # a call's results go with it
            self.dropped[i] = end
        else:
            self.dropped[i] = self.dropped.get(i, 0) + 1

    def _estimate(self, victim: tuple[int, int]) -> int:
        i, j = victim
        return self.counter.count_text(self.parts[i].items[j]) + 1

    def _shorten(self, victim: tuple[int, int]) -> bool:
        """Keep the longest head of ``victim`` that fits; False when too little would."""
        i, j = victim
        body = self.parts[i].items[j]
        low, high = 0, len(body)  # the longest fitting head is in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            self.cut[victim] = _head(body, middle)
            if self._measure()[0] <= 0:
                low = middle
            else:
                high = middle - 1
        if low >= len(body):  # it fits whole after all
            self.cut.pop(victim, None)
            return True
        head = _head(body, low)
        if len(head) < _MIN_TRIMMED_CHARS:
            self.cut.pop(victim, None)
            return False
        self.cut[victim] = head
        return True

    def run(self) -> BuiltContext:
        while True:
            over, text, messages, tokens = self._measure()
            if over <= 0:
                return BuiltContext(text, messages, tokens, self._omitted())
            self.victims = [v for v in self.victims if not self._gone(v)]
            if not self.victims:
                if not self.bare:  # the omitted markers themselves may be what is over
                    self.bare = True
                    continue
                msg = (
                    f"`token_budget` is {self.budget} tokens, but the system instructions and "
                    f"the user's input take {self.budget + over} with everything else left "
                    "out: raise `token_budget` or shorten them."
                )
                raise ValueError(msg)
            # Leave out whole parts while the estimate says it is not enough; the part that
            # tips it is cut short instead, if a useful head of it fits.
            saved = 0
            for victim in list(self.victims):
                if self._gone(victim):
                    continue
                estimate = self._estimate(victim)
                if saved + estimate >= over:
                    kind = self.parts[victim[0]].kind
                    if kind in ("documents", "tool") and self._shorten(victim):
                        self.victims.remove(victim)
                    else:
                        self._drop(victim)
                    break
                self._drop(victim)
                saved += estimate

    def _omitted(self) -> dict[str, int]:
        omitted: dict[str, int] = {}
        keys = {"history": "messages", "documents": "documents", "tool": "tool_results"}
        for i, part in enumerate(self.parts):
            if self.dropped.get(i) and part.kind in keys:
                omitted[keys[part.kind]] = omitted.get(keys[part.kind], 0) + self.dropped[i]
        if self.cut:
            omitted["truncated"] = len(self.cut)
        return omitted


def _head(body: str, length: int) -> str:
    """The first ``length`` characters of ``body``, cut back to a word boundary."""
    if length >= len(body):
        return body
    head = body[:length]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > length * 0.8:
        head = head[:space]
    return head.rstrip() + " …" if head.strip() else ""
