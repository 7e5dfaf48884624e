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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import (
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from compacting_supervisor._render import (
    as_messages,
    element,
    escape,
    message_events,
    render_messages,
    structured,
    tag_name,
)
from compacting_supervisor._settings import check_count, check_token_counter
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["BuiltContext", "ContextBuilder", "render_messages"]

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
        self._parts.append(_Part("user", [escape(_text(text, "text").strip())]))
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
        body = structured(content) if isinstance(content, str | dict | list) else str(content)
        self._parts.append(_Part("tool", [escape(body)], [name]))
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
                items.append(escape(doc.page_content.strip()))
                sources.append(doc.metadata.get("source"))
            elif isinstance(doc, str):
                items.append(escape(doc.strip()))
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
        messages = as_messages(history, "history")
        results = [isinstance(m, ToolMessage | FunctionMessage) for m in messages]
        if messages:
            self._parts.append(_Part("history", message_events(messages), [], results))
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
            return element("user", part.items[0])
        if part.kind == "tool":
            name = part.labels[0]
            if dropped:
                return element("omitted", "", {"tool_result": name})
            body = self.cut.get((i, 0), part.items[0])
            truncated = "true" if (i, 0) in self.cut else None
            return element(tag_name(name, "_result", "tool_result"), body, {"truncated": truncated})
        if part.kind == "documents":
            kept = len(part.items) - dropped
            lines = [
                element(
                    "document",
                    self.cut.get((i, j), part.items[j]),
                    {"source": part.labels[j], "truncated": "true" if (i, j) in self.cut else None},
                )
                for j in range(kept)
            ]
            if dropped:
                lines.append(element("omitted", "", {"documents": dropped}))
            return element("documents", "\n".join(lines), block=True)
        # history
        lines = [element("omitted", "", {"messages": dropped})] if dropped else []
        lines.extend(event for event in part.items[dropped:] if event)
        return element("history", "\n".join(lines), block=True)

    def _assemble(self) -> tuple[str, list[BaseMessage]]:
        system = "\n\n".join(p.items[0] for p in self.parts if p.kind == "system" and p.items[0])
        body = "\n".join(
            self._render(i, part)
            for i, part in enumerate(self.parts)
            if part.kind == "user" or (part.kind != "system" and not self.bare)
        )
        head = element("system", system, block=True) if system else ""
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
