"""Large tool results out of the window: stored outside the thread, read back by a tool.

A tool that returns a whole web page, a CSV export or a log file can fill a model's context
window on its own. `OffloadToolResults` moves every `ToolMessage` above a size into a
`ResultStore` (a directory of files, `DirectoryResultStore`, or any LangGraph ``BaseStore``,
`LangGraphResultStore`) and leaves in the history a copy of the message (same ``id``,
``tool_call_id``, ``name``, ``status`` and ``artifact``) whose content is a short reference
and a preview::

    [tool result stored: ref=tr_3f9a0c1b2d4e5f607182, 48,211 characters, 12,034 tokens. Preview:]
    <the first 1,000 characters>
    [... 47,211 more characters; call read_tool_result(ref="tr_3f9a0c1b2d4e5f607182", offset=1000)]

The agent pages through the original with the tool `OffloadToolResults.read_tool` returns,
so nothing is lost: the store holds the text exactly as the tool returned it.

The logic is written once: `OffloadToolResults.plan` is pure (messages in, replacements and
what to store out); `write` / `awrite` do the store I/O; `apply` / `aapply` do both, and
return the new messages only once every write succeeded. A failed write raises
`OffloadError` and the caller's messages stay as they were.

Where it runs: on a history you hold (`apply`), or as each tool answers, before the model
sees the result (``ToolNode(..., wrap_tool_call=policy.wrap_tool_call,
awrap_tool_call=policy.awrap_tool_call)``, or ``create_agent(...,
middleware=[policy.middleware()])``). `stored_results_note` names the stored results a
summary dropped, so a compaction never loses the way back to them.

Example:
    >>> from langchain_core.messages import ToolMessage
    >>> from langgraph.store.memory import InMemoryStore
    >>> policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=10)
    >>> plan = policy.apply([ToolMessage("x" * 3000, tool_call_id="call_1")], thread_id="t1")
    >>> plan.messages[0].content.splitlines()[1]
    'xxxxxxxxxx'
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field, create_model

from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor._settings import check_count, check_token_counter
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.token_counter import TokenCounter

if TYPE_CHECKING:
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NAMESPACE",
    "REF_PATTERN",
    "DirectoryResultStore",
    "LangGraphResultStore",
    "OffloadError",
    "OffloadPlan",
    "OffloadToolResults",
    "OffloadedResult",
    "ResultStore",
    "is_ref",
    "make_ref",
    "offloaded_ref",
    "read_tool_result_tool",
    "restored",
    "stored_results_note",
]

REF_PATTERN = re.compile(r"\btr_[0-9a-f]{20}\b")
"""Matches a stored result's reference (``tr_`` and 20 hex digits) anywhere in a text."""

OFFLOAD_KEY = "offloaded"
"""Key under ``response_metadata["compacting_supervisor"]`` marking an offloaded message."""

HEADER_PREFIX = "[tool result stored: ref="
"""How the content of an offloaded message opens."""

DEFAULT_NAMESPACE: tuple[str, ...] = ("compacting_supervisor", "tool_results")
"""Where `LangGraphResultStore` puts results unless told otherwise."""

DEFAULT_READ_TOOL = "read_tool_result"
DEFAULT_MIN_TOKENS = 2_000
DEFAULT_PREVIEW_CHARS = 1_000
DEFAULT_READ_LIMIT = 4_000
DEFAULT_MAX_READ_LIMIT = 20_000

_REF = re.compile(r"tr_[0-9a-f]{20}")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


# ---------------------------------------------------------------------------------- stores


@runtime_checkable
class ResultStore(Protocol):
    """Where offloaded tool results live: text under a reference, sync and async.

    ``put`` must be idempotent (the same reference always carries the same text) and must
    either store the whole text or raise. ``get`` returns None for an unknown reference.
    """

    def put(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Store ``content`` under ``ref``; ``metadata`` describes where it came from."""
        ...

    async def aput(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Async form of `put`."""
        ...

    def get(self, ref: str) -> str | None:
        """Return the text stored under ``ref``, or None."""
        ...

    async def aget(self, ref: str) -> str | None:
        """Async form of `get`."""
        ...


def is_ref(ref: Any) -> bool:
    """Return whether ``ref`` is a well-formed reference (``tr_`` and 20 hex digits)."""
    return isinstance(ref, str) and _REF.fullmatch(ref) is not None


def _check_ref(ref: str) -> str:
    if not is_ref(ref):
        msg = f"`ref` must be 'tr_' followed by 20 lowercase hex digits, got {ref!r:.80}."
        raise ValueError(msg)
    return ref


class DirectoryResultStore:
    """Stores each tool result as a UTF-8 text file ``<path>/<ref>.txt``.

    The file holds the text exactly as the tool returned it, so ``cat``, ``grep`` or an
    agent's file tools read it too. The reference is a hash of the thread id, the tool call
    id and the text, so the file name is safe whatever those ids contain, and storing the
    same result twice writes one file. A write goes to a temporary file in the same
    directory, is flushed to disk, then renamed over the target: a reader never sees half a
    file. Files are created readable by their owner only.

    Args:
        path: The directory (created, with its parents, if missing).

    Raises:
        ValueError: ``path`` exists and is not a directory, or cannot be created.

    Example:
        >>> import tempfile
        >>> store = DirectoryResultStore(tempfile.mkdtemp())
        >>> store.put("tr_0123456789abcdef0123", "hello", {})
        >>> store.get("tr_0123456789abcdef0123")
        'hello'
        >>> store.get("../../etc/passwd") is None
        True
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path):
            msg = f"`path` must be a directory path (str or pathlib.Path), got {path!r}."
            raise TypeError(msg)
        root = Path(path).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"`path` {str(path)!r} cannot be used for tool results ({exc}): pass a "
                "directory that exists or can be created."
            )
            raise ValueError(msg) from exc
        if not root.is_dir():
            msg = f"`path` {str(path)!r} is not a directory: pass a directory for tool results."
            raise ValueError(msg)
        self.path = root.resolve()

    def __repr__(self) -> str:
        return f"DirectoryResultStore({str(self.path)!r})"

    def file_for(self, ref: str) -> Path:
        """Return the file that holds ``ref``.

        Raises:
            ValueError: ``ref`` is not a well-formed reference.
        """
        return self.path / f"{_check_ref(ref)}.txt"

    def put(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Write ``content`` to ``<path>/<ref>.txt`` atomically (``metadata`` is not kept)."""
        target = self.file_for(ref)
        data = content.encode("utf-8", "surrogatepass")
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == len(data):
                return  # already stored: the name is a hash of the text
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{ref}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._sync_directory()

    async def aput(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Async form of `put` (the file I/O runs in a worker thread)."""
        await asyncio.to_thread(self.put, ref, content, metadata)

    def get(self, ref: str) -> str | None:
        """Return the text stored under ``ref``; None when unknown or malformed."""
        if not is_ref(ref):
            return None
        try:
            data = self.file_for(ref).read_bytes()
        except FileNotFoundError:
            return None
        return data.decode("utf-8", "surrogatepass")

    async def aget(self, ref: str) -> str | None:
        """Async form of `get` (the file I/O runs in a worker thread)."""
        return await asyncio.to_thread(self.get, ref)

    def _sync_directory(self) -> None:
        """Make the rename durable where the OS allows it (best effort)."""
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class LangGraphResultStore:
    """Stores tool results in a LangGraph ``BaseStore`` (in memory, SQLite, Postgres ...).

    Each result is one item under ``namespace`` with the reference as its key and the value
    ``{"content": <text>, "thread_id", "tool_call_id", "tool_name", "chars", "tokens"}``, so
    ``store.search(namespace, filter={"thread_id": ...})`` lists a thread's results. Items
    are written with ``index=False``: a store with a vector index does not embed them. Text
    JSON stores cannot hold (NUL characters, lone surrogates) is kept JSON-encoded under
    ``"content_json"`` instead, and read back exactly.

    Args:
        store: Any LangGraph store; the one you compile your graph with (``store=``) works.
        namespace: The namespace of the items (labels without dots).

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> results = LangGraphResultStore(InMemoryStore())
        >>> results.put("tr_0123456789abcdef0123", "hello", {"thread_id": "t1"})
        >>> results.get("tr_0123456789abcdef0123")
        'hello'
    """

    def __init__(self, store: BaseStore, *, namespace: tuple[str, ...] = DEFAULT_NAMESPACE) -> None:
        if not isinstance(store, BaseStore):
            msg = (
                "`store` must be a LangGraph BaseStore (InMemoryStore, SqliteStore, "
                f"PostgresStore ...), got {type(store).__name__}."
            )
            raise TypeError(msg)
        if (
            not isinstance(namespace, tuple)
            or not namespace
            or not all(isinstance(label, str) and label and "." not in label for label in namespace)
        ):
            msg = (
                "`namespace` must be a non-empty tuple of non-empty strings without dots, "
                f"e.g. ('my_app', 'tool_results'), got {namespace!r}."
            )
            raise ValueError(msg)
        self.store = store
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"LangGraphResultStore({type(self.store).__name__}, namespace={self.namespace!r})"

    def put(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Put the result as an item keyed by ``ref``."""
        self.store.put(self.namespace, _check_ref(ref), _item_value(content, metadata), False)

    async def aput(self, ref: str, content: str, metadata: Mapping[str, Any]) -> None:
        """Async form of `put`; a sync-only store (``SqliteStore``) runs in a worker thread."""
        value = _item_value(content, metadata)
        try:
            await self.store.aput(self.namespace, _check_ref(ref), value, False)
        except NotImplementedError:
            await asyncio.to_thread(self.store.put, self.namespace, ref, value, False)

    def get(self, ref: str) -> str | None:
        """Return the text stored under ``ref``; None when unknown or malformed."""
        if not is_ref(ref):
            return None
        item = self.store.get(self.namespace, ref)
        return _item_content(item.value) if item is not None else None

    async def aget(self, ref: str) -> str | None:
        """Async form of `get`; a sync-only store (``SqliteStore``) runs in a worker thread."""
        if not is_ref(ref):
            return None
        try:
            item = await self.store.aget(self.namespace, ref)
        except NotImplementedError:
            item = await asyncio.to_thread(self.store.get, self.namespace, ref)
        return _item_content(item.value) if item is not None else None


def _item_value(content: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    try:
        content.encode("utf-8")
        plain = "\x00" not in content
    except UnicodeEncodeError:  # lone surrogates
        plain = False
    body = {"content": content} if plain else {"content_json": json.dumps(content)}
    return {**metadata, **body}


def _item_content(value: Mapping[str, Any]) -> str | None:
    if isinstance(value.get("content"), str):
        return str(value["content"])
    if isinstance(value.get("content_json"), str):
        return str(json.loads(value["content_json"]))
    return None


def _as_store(store: Any, parameter: str = "store") -> ResultStore:
    """A `ResultStore` from a store, a LangGraph ``BaseStore`` or a directory path."""
    if isinstance(store, BaseStore):  # checked first: it also has put/get/aput/aget
        return LangGraphResultStore(store)
    if isinstance(store, str | os.PathLike):
        if "://" in str(store):
            msg = (
                f"`{parameter}` looks like a database URL ({str(store)[:40]!r}...): open a "
                "LangGraph store on it (PostgresStore.from_conn_string(...)) and pass that."
            )
            raise ValueError(msg)
        return DirectoryResultStore(store)
    if isinstance(store, ResultStore):
        return store
    msg = (
        f"`{parameter}` must be a DirectoryResultStore(path), a LangGraphResultStore(store), "
        "a LangGraph BaseStore, a directory path, or an object with put/aput/get/aget; "
        f"got {type(store).__name__}."
    )
    raise TypeError(msg)


# ---------------------------------------------------------------------------------- policy


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


def offloaded_ref(message: BaseMessage) -> str | None:
    """Return the reference of an offloaded tool result, or None for any other message."""
    meta = message.response_metadata.get(METADATA_KEY)
    info = meta.get(OFFLOAD_KEY) if isinstance(meta, dict) else None
    if isinstance(info, dict) and is_ref(info.get("ref")):
        return str(info["ref"])
    return None


def stored_results_note(summary: str, messages: Sequence[BaseMessage]) -> str:
    """A line naming the offloaded results of ``messages`` whose reference ``summary`` lost.

    For a compaction: append it to the running summary so the agent can still read back
    every stored result folded into it. Empty when the summary kept every reference.

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> from langgraph.store.memory import InMemoryStore
        >>> policy = OffloadToolResults(InMemoryStore(), min_chars=100, preview_chars=10)
        >>> plan = policy.plan([ToolMessage("x" * 500, tool_call_id="c1", name="search")])
        >>> print(stored_results_note("The user searched.", plan.messages))  # doctest: +ELLIPSIS
        Stored tool results, readable with read_tool_result: tr_... (search, 500 characters).
    """
    lost: list[tuple[str, str, str]] = []  # (ref, how it reads, its read tool)
    for message in messages:
        ref = offloaded_ref(message)
        if ref is None or ref in summary or any(ref == seen for seen, _, _ in lost):
            continue
        info = message.response_metadata[METADATA_KEY][OFFLOAD_KEY]
        tool = str(info.get("tool") or DEFAULT_READ_TOOL)
        name = getattr(message, "name", None)
        chars = info.get("chars")
        detail = ", ".join(
            part
            for part in (str(name) if name else "", f"{chars:,} characters" if chars else "")
            if part
        )
        lost.append((ref, f"{ref} ({detail})" if detail else ref, tool))
    if not lost:
        return ""
    tools = sorted({tool for _, _, tool in lost})
    return (
        f"Stored tool results, readable with {' or '.join(tools)}: "
        f"{'; '.join(text for _, text, _ in lost)}."
    )


class OffloadToolResults:
    """Moves tool results above a size into a store, leaving a reference and a preview.

    Each `ToolMessage` whose text reaches the threshold is replaced by a copy with the same
    ``id``, ``tool_call_id``, ``name``, ``status`` and ``artifact`` whose content reads
    ``[tool result stored: ref=tr_..., N characters, T tokens. Preview:]``, the first
    ``preview_chars`` characters, and how to read on with the `read_tool`; with
    ``preview_chars=0``, one line: ``[tool result stored: ref=tr_..., N characters, T
    tokens; read it with read_tool_result.]`` (the ``tool_name``; for results offloaded
    once answered, the agent's answer already holds what it took from them). With list
    content, the text blocks (joined by newlines) are stored and replaced by one text
    block; other blocks (images ...) stay in place, since a vision model still needs them.

    Never offloaded: messages already offloaded, results of the read tool itself (reading
    would loop), and results whose reference would not be shorter than the text.

    Args:
        store: Where results go: a `DirectoryResultStore`, a `LangGraphResultStore`, a
            LangGraph ``BaseStore`` (wrapped in a `LangGraphResultStore`), a directory path
            (a `DirectoryResultStore`) or your own `ResultStore`.
        min_tokens: Offload results of at least this many tokens (default 2,000 when
            ``min_chars`` is not given).
        min_chars: Offload results of at least this many characters, instead of tokens.
        preview_chars: Characters of the result kept in the history as a preview. None:
            1,000, or half of ``min_chars`` when that is smaller.
        token_counter: Counts the tokens (default ``TokenCounter()``, ``cl100k_base``).
        tool_name: The name of the read-back tool, used in the references and by
            `read_tool`.

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> from langgraph.store.memory import InMemoryStore
        >>> policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=19)
        >>> big = ToolMessage("word " * 1000, tool_call_id="call_1", name="search", id="m1")
        >>> plan = policy.apply([big], thread_id="thread-1")
        >>> print(plan.messages[0].content)  # doctest: +ELLIPSIS
        [tool result stored: ref=tr_..., 5,000 characters, 1,001 tokens. Preview:]
        word word word word
        [... 4,981 more characters; call read_tool_result(ref="tr_...", offset=19)]
        >>> plan.messages[0].id, plan.messages[0].tool_call_id
        ('m1', 'call_1')
        >>> reader = policy.read_tool()
        >>> print(reader.invoke({"ref": plan.offloaded[0].ref, "offset": 4985, "limit": 8}))
        ... # doctest: +ELLIPSIS
        word wor
        [characters 4,985-4,993 of 5,000; 7 more: call read_tool_result(ref="tr_...", offset=4993)]
    """

    def __init__(
        self,
        store: ResultStore | BaseStore | str | os.PathLike[str],
        *,
        min_tokens: int | None = None,
        min_chars: int | None = None,
        preview_chars: int | None = None,
        token_counter: TokenCounter | None = None,
        tool_name: str = DEFAULT_READ_TOOL,
    ) -> None:
        self.store: ResultStore = _as_store(store)
        if min_tokens is not None and min_chars is not None:
            msg = (
                "Pass either `min_tokens` or `min_chars` (the size from which a tool result is "
                f"offloaded), not both; got min_tokens={min_tokens!r}, min_chars={min_chars!r}."
            )
            raise ValueError(msg)
        check_count("min_tokens", min_tokens, allow_none=True, unit=" (tokens)")
        check_count("min_chars", min_chars, allow_none=True, unit=" (characters)")
        check_count(
            "preview_chars", preview_chars, minimum=0, allow_none=True, unit=" (characters)"
        )
        if preview_chars is None:
            preview_chars = min(
                DEFAULT_PREVIEW_CHARS, (min_chars or DEFAULT_PREVIEW_CHARS * 2) // 2
            )
        elif min_chars is not None and preview_chars >= min_chars:
            msg = (
                f"`preview_chars` ({preview_chars}) must be smaller than `min_chars` "
                f"({min_chars}), or the preview would be as long as the result it replaces."
            )
            raise ValueError(msg)
        check_token_counter(token_counter)
        if not isinstance(tool_name, str) or not _TOOL_NAME.fullmatch(tool_name):
            msg = (
                "`tool_name` must be 1-64 letters, digits, '_' or '-' (a name every provider "
                f"accepts for a tool), got {tool_name!r}."
            )
            raise ValueError(msg)
        if min_tokens is None and min_chars is None:
            min_tokens = DEFAULT_MIN_TOKENS
        self.min_tokens: int | None = min_tokens
        self.min_chars: int | None = min_chars
        self.preview_chars = preview_chars
        self.token_counter = token_counter or TokenCounter()
        self.tool_name = tool_name

    def __repr__(self) -> str:
        size = f"min_chars={self.min_chars}" if self.min_chars else f"min_tokens={self.min_tokens}"
        return f"OffloadToolResults({self.store!r}, {size}, preview_chars={self.preview_chars})"

    # ------------------------------------------------------------------ the logic (pure)

    def plan(
        self,
        messages: Sequence[BaseMessage],
        *,
        thread_id: str | None = None,
        answered_by: str | None = None,
    ) -> OffloadPlan:
        """Decide which tool results to offload and build their replacements. No I/O.

        Use ``plan.messages`` only after `write` (or `awrite`) stored ``plan.offloaded``;
        `apply` does both in that order.

        Args:
            messages: The history (not modified).
            thread_id: The thread the messages belong to; part of each reference, so equal
                results of different threads are stored apart.
            answered_by: The id of the AIMessage that already read these results whole,
                when they are offloaded after it (recorded, so that the usage it reports,
                which counted the whole results, is no longer trusted as the thread's size).

        Returns:
            The new message list and the results to store.
        """
        if not isinstance(messages, list | tuple):
            msg = f"`messages` must be a list of LangChain messages, got {type(messages)}."
            raise TypeError(msg)
        thread = None if thread_id is None else str(thread_id)
        new = list(messages)
        offloaded = []
        for index, message in enumerate(messages):
            if not isinstance(message, ToolMessage):
                continue
            item = self._plan_one(message, index, thread, answered_by)
            if item is not None:
                new[index] = item.replacement
                offloaded.append(item)
        return OffloadPlan(messages=new, offloaded=offloaded)

    def plan_answered(
        self, messages: Sequence[BaseMessage], *, thread_id: str | None = None
    ) -> OffloadPlan:
        """`plan` for the results the agent has already answered. No I/O.

        Answered: before the newest AIMessage, which read them whole (a history that ends
        at a tool result, e.g. an interrupted run, keeps that result until it is answered).
        Each replacement records that answer's id (``answered_by``).

        Args:
            messages: The history (not modified).
            thread_id: The thread the messages belong to.

        Returns:
            The whole new message list and the results to store.
        """
        answer = next(
            (i for i in range(len(messages) - 1, 0, -1) if isinstance(messages[i], AIMessage)),
            None,
        )
        if answer is None:
            return OffloadPlan(messages=list(messages), offloaded=[])
        plan = self.plan(messages[:answer], thread_id=thread_id, answered_by=messages[answer].id)
        return OffloadPlan([*plan.messages, *messages[answer:]], plan.offloaded)

    def _plan_one(
        self, message: ToolMessage, index: int, thread_id: str | None, answered_by: str | None
    ) -> OffloadedResult | None:
        if message.name == self.tool_name:
            return None
        if offloaded_ref(message) is not None:
            return None
        text, others = _split_content(message.content)
        if not text or text.startswith(HEADER_PREFIX):
            return None
        if self.min_chars is not None and len(text) < self.min_chars:
            return None
        if self.min_tokens is not None and _utf8_len(text) < self.min_tokens:
            return None  # cheap: a token is at least one byte
        tokens = _text_tokens(self.token_counter, text)
        if self.min_tokens is not None and tokens < self.min_tokens:
            return None
        ref = make_ref(thread_id, str(message.tool_call_id), text)
        stub = self._reference_text(ref, text, tokens)
        if len(stub) >= len(text):
            return None
        content: str | list[Any] = (
            stub if isinstance(message.content, str) else [{"type": "text", "text": stub}, *others]
        )
        meta = message.response_metadata.get(METADATA_KEY)
        info: dict[str, Any] = {
            "ref": ref,
            "chars": len(text),
            "tokens": tokens,
            "tool": self.tool_name,
        }
        if answered_by is not None:
            info["answered_by"] = answered_by
        replacement = message.model_copy(
            update={
                "content": content,
                "response_metadata": {
                    **message.response_metadata,
                    METADATA_KEY: {**(meta if isinstance(meta, dict) else {}), OFFLOAD_KEY: info},
                },
            }
        )
        metadata = {
            "thread_id": thread_id,
            "tool_call_id": message.tool_call_id,
            "tool_name": message.name,
            "chars": len(text),
            "tokens": tokens,
        }
        return OffloadedResult(ref, index, text, metadata, message, replacement)

    def _reference_text(self, ref: str, text: str, tokens: int) -> str:
        shown = text[: self.preview_chars]
        head = f"{HEADER_PREFIX}{ref}, {len(text):,} characters, {tokens:,} tokens"
        if not shown:  # the reference is on the same line: no need to repeat it
            return f"{head}; read it with {self.tool_name}.]"
        call = f'{self.tool_name}(ref="{ref}", offset={len(shown)})'
        rest = len(text) - len(shown)
        return f"{head}. Preview:]\n{shown}\n[... {rest:,} more characters; call {call}]"

    # ------------------------------------------------------------------ the I/O

    def write(self, offloaded: Sequence[OffloadedResult]) -> None:
        """Store each result (once per reference).

        Raises:
            OffloadError: A write failed; do not use the plan's messages.
        """
        for item in _unique(offloaded):
            try:
                self.store.put(item.ref, item.content, item.metadata)
            except Exception as exc:
                raise self._failure(item, exc) from exc

    async def awrite(self, offloaded: Sequence[OffloadedResult]) -> None:
        """Async form of `write`."""
        for item in _unique(offloaded):
            try:
                await self.store.aput(item.ref, item.content, item.metadata)
            except Exception as exc:
                raise self._failure(item, exc) from exc

    def apply(
        self, messages: Sequence[BaseMessage], *, thread_id: str | None = None
    ) -> OffloadPlan:
        """Store the large tool results of ``messages`` and return the shortened history.

        Args:
            messages: The history (not modified).
            thread_id: The thread the messages belong to.

        Returns:
            The plan: ``.messages`` is the new history, ``.offloaded`` what was stored.

        Raises:
            OffloadError: A write failed; ``messages`` are untouched and nothing refers to
                what was stored.
        """
        plan = self.plan(messages, thread_id=thread_id)
        self.write(plan.offloaded)
        _log_plan(plan, self.store)
        return plan

    async def aapply(
        self, messages: Sequence[BaseMessage], *, thread_id: str | None = None
    ) -> OffloadPlan:
        """Async form of `apply`."""
        plan = self.plan(messages, thread_id=thread_id)
        await self.awrite(plan.offloaded)
        _log_plan(plan, self.store)
        return plan

    def read_back(self, refs: Sequence[str]) -> dict[str, str | None]:
        """The stored text of each reference (None where the store has none or fails)."""
        texts: dict[str, str | None] = {}
        for ref in dict.fromkeys(refs):
            try:
                texts[ref] = self.store.get(ref)
            except Exception as exc:  # a summary of the preview beats no summary
                logger.warning("Could not read stored result %s back: %s", ref, exc)
                texts[ref] = None
        return texts

    async def aread_back(self, refs: Sequence[str]) -> dict[str, str | None]:
        """Async form of `read_back`."""
        texts: dict[str, str | None] = {}
        for ref in dict.fromkeys(refs):
            try:
                texts[ref] = await self.store.aget(ref)
            except Exception as exc:  # a summary of the preview beats no summary
                logger.warning("Could not read stored result %s back: %s", ref, exc)
                texts[ref] = None
        return texts

    def _failure(self, item: OffloadedResult, exc: Exception) -> OffloadError:
        thread_id = item.metadata.get("thread_id")
        msg = (
            f"Could not store tool result {item.ref} (tool call {item.original.tool_call_id!r}, "
            f"{len(item.content):,} characters) in {self.store!r}: "
            f"{type(exc).__name__}: {exc}. The messages were left unchanged."
        )
        return OffloadError(
            msg,
            thread_id=thread_id,
            ref=item.ref,
            tool_call_id=str(item.original.tool_call_id),
        )

    # ------------------------------------------------------------------ in the agent

    def read_tool(
        self,
        *,
        default_limit: int = DEFAULT_READ_LIMIT,
        max_limit: int = DEFAULT_MAX_READ_LIMIT,
    ) -> BaseTool:
        """The tool that reads stored results back; add it to your agent's tools.

        See `read_tool_result_tool`; it reads this policy's store under its ``tool_name``.
        """
        return read_tool_result_tool(
            self.store, name=self.tool_name, default_limit=default_limit, max_limit=max_limit
        )

    def middleware(self, *, add_read_tool: bool = True) -> Any:
        """A LangChain agent middleware offloading each tool result as it is produced.

        ``create_agent(model, tools, middleware=[policy.middleware()])``: the model sees the
        reference and the preview instead of a large result, and the read tool is added to
        the agent's tools (``add_read_tool=False`` leaves that to you). Needs ``langchain``.
        """
        try:
            from langchain.agents.middleware import AgentMiddleware
        except ImportError as exc:  # pragma: no cover - langchain is installed in the tests
            msg = (
                "`middleware()` needs the `langchain` package (pip install langchain); "
                "with a plain ToolNode pass wrap_tool_call=policy.wrap_tool_call instead."
            )
            raise ImportError(msg) from exc
        policy = self

        class OffloadToolResultsMiddleware(AgentMiddleware):
            """Offloads large tool results to the policy's store."""

            tools = [policy.read_tool()] if add_read_tool else []

            def wrap_tool_call(
                self,
                request: ToolCallRequest,
                handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
            ) -> ToolMessage | Command[Any]:
                return policy.wrap_tool_call(request, handler)

            async def awrap_tool_call(
                self,
                request: ToolCallRequest,
                handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
            ) -> ToolMessage | Command[Any]:
                return await policy.awrap_tool_call(request, handler)

        return OffloadToolResultsMiddleware()

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Offload a tool's result as it is produced, before the model sees it.

        Pass it as ``ToolNode(tools, wrap_tool_call=policy.wrap_tool_call,
        awrap_tool_call=policy.awrap_tool_call)``. A ``Command`` (a hand-off) passes through
        untouched; a store failure is logged and the result is returned whole.
        """
        result = execute(request)
        if not isinstance(result, ToolMessage):
            return result
        try:
            plan = self.apply([result], thread_id=_request_thread(request))
        except OffloadError as exc:
            logger.warning("%s The tool result is returned whole.", exc)
            return result
        return plan.offloaded[0].replacement if plan.offloaded else result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async form of `wrap_tool_call`."""
        result = await execute(request)
        if not isinstance(result, ToolMessage):
            return result
        try:
            plan = await self.aapply([result], thread_id=_request_thread(request))
        except OffloadError as exc:
            logger.warning("%s The tool result is returned whole.", exc)
            return result
        return plan.offloaded[0].replacement if plan.offloaded else result


def restored(message: BaseMessage, texts: Mapping[str, str | None]) -> BaseMessage:
    """``message`` with its stored text back in place of the reference, where ``texts`` has it.

    For a summariser: it should summarise what the agent read, not the preview. Any other
    message, or a result whose text is missing, is returned as it is.
    """
    ref = offloaded_ref(message)
    text = texts.get(ref) if ref is not None else None
    if text is None:
        return message
    content: str | list[Any] = text
    if isinstance(message.content, list):
        _, others = _split_content(message.content)
        content = [{"type": "text", "text": text}, *others]
    return message.model_copy(update={"content": content})


def make_ref(thread_id: str | None, tool_call_id: str, text: str) -> str:
    """The reference of a result: a hash of its thread, its tool call and its text."""
    digest = hashlib.sha256()
    for part in (thread_id or "", tool_call_id):
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big") + raw)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return f"tr_{digest.hexdigest()[:20]}"


def _split_content(content: str | list[Any]) -> tuple[str, list[Any]]:
    """The text of the content (text blocks joined by newlines) and its other blocks."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    others: list[Any] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif (
            isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ):
            texts.append(block["text"])
        else:
            others.append(block)
    return "\n".join(texts), others


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _text_tokens(counter: TokenCounter, text: str) -> int:
    """Tokens of ``text`` alone: a message holding it minus an empty one."""
    return counter.count_message(HumanMessage(text)) - counter.count_message(HumanMessage(""))


def _unique(offloaded: Sequence[OffloadedResult]) -> list[OffloadedResult]:
    seen: set[str] = set()
    unique = []
    for item in offloaded:
        if item.ref not in seen:
            seen.add(item.ref)
            unique.append(item)
    return unique


def _log_plan(plan: OffloadPlan, store: ResultStore) -> None:
    if plan.offloaded:
        logger.info(
            "Offloaded %d tool result(s), %d characters, to %r.",
            len(plan.offloaded),
            plan.chars_offloaded,
            store,
        )


def _request_thread(request: Any) -> str | None:
    config = getattr(getattr(request, "runtime", None), "config", None) or {}
    thread_id = (config.get("configurable") or {}).get("thread_id")
    return None if thread_id is None else str(thread_id)


# ---------------------------------------------------------------------------------- read tool


def read_tool_result_tool(
    store: ResultStore | BaseStore | str | os.PathLike[str],
    *,
    name: str = DEFAULT_READ_TOOL,
    default_limit: int = DEFAULT_READ_LIMIT,
    max_limit: int = DEFAULT_MAX_READ_LIMIT,
) -> BaseTool:
    """Build the tool an agent reads offloaded tool results with.

    The tool takes ``ref`` (from a ``[tool result stored: ref=...]`` line), ``offset`` (the
    character to start at) and ``limit`` (how many characters, capped at ``max_limit``) and
    returns that slice of the stored text, then a line saying which characters it showed
    and the offset to read on from. An unknown reference, a bad offset or a store that
    cannot be read give an ``Error: ...`` answer the model can act on, never an exception
    that stops the graph. It works in sync and async graphs.

    Args:
        store: The store the results were offloaded to (same forms as
            `OffloadToolResults` accepts).
        name: The tool's name (the ``tool_name`` of the policy).
        default_limit: Characters returned when the model gives no ``limit``.
        max_limit: The most characters one call returns.

    Returns:
        A LangChain tool for ``create_agent``, ``create_react_agent`` or a ``ToolNode``.
    """
    results = _as_store(store)
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        msg = f"`name` must be 1-64 letters, digits, '_' or '-', got {name!r}."
        raise ValueError(msg)
    check_count("max_limit", max_limit, unit=" (characters)")
    check_count("default_limit", default_limit, unit=" (characters)")
    if default_limit > max_limit:
        msg = f"`default_limit` ({default_limit}) must not exceed `max_limit` ({max_limit})."
        raise ValueError(msg)

    def read(ref: str, offset: int = 0, limit: int = default_limit) -> str:
        key = _clean_ref(ref)
        if key is None:
            return _unknown(ref)
        try:
            text = results.get(key)
        except Exception as exc:
            logger.warning("Could not read tool result %s from %r: %s", key, results, exc)
            return f"Error: the stored tool result {key} could not be read ({exc}); try later."
        return _slice(text, name=name, ref=key, offset=offset, limit=limit, max_limit=max_limit)

    async def aread(ref: str, offset: int = 0, limit: int = default_limit) -> str:
        key = _clean_ref(ref)
        if key is None:
            return _unknown(ref)
        try:
            text = await results.aget(key)
        except Exception as exc:
            logger.warning("Could not read tool result %s from %r: %s", key, results, exc)
            return f"Error: the stored tool result {key} could not be read ({exc}); try later."
        return _slice(text, name=name, ref=key, offset=offset, limit=limit, max_limit=max_limit)

    schema: type[BaseModel] = create_model(
        "ReadToolResult",
        ref=(str, Field(description="The ref from a '[tool result stored: ref=...]' line.")),
        offset=(int, Field(default=0, description="The character to start at; 0 is the start.")),
        limit=(
            int,
            Field(
                default=default_limit,
                description=f"How many characters to read (at most {max_limit:,}).",
            ),
        ),
    )
    return StructuredTool.from_function(
        func=read,
        coroutine=aread,
        name=name,
        description=(
            "Read a tool result that was too long to keep in the conversation and was stored "
            "instead. Pass the ref from its '[tool result stored: ref=...]' line; offset is "
            f"the character to start at, limit how many to read (default {default_limit:,}, "
            f"at most {max_limit:,}). The answer ends with a line saying which characters it "
            "showed and the offset to read on from."
        ),
        args_schema=schema,
    )


def _clean_ref(ref: Any) -> str | None:
    """The reference a model meant: quotes, spaces, ``ref=`` and case forgiven."""
    if not isinstance(ref, str):
        return None
    key = ref.strip().strip("\"'` ").removeprefix("ref=").strip("\"'` ").lower()
    return key if is_ref(key) else None


def _unknown(ref: Any) -> str:
    return (
        f"Error: no stored tool result has the ref {str(ref)[:80]!r}. Copy the ref exactly "
        "from a '[tool result stored: ref=...]' line: 'tr_' followed by 20 hex digits."
    )


def _slice(
    text: str | None, *, name: str, ref: str, offset: int, limit: int, max_limit: int
) -> str:
    if text is None:
        return _unknown(ref)
    total = len(text)
    if offset < 0 or limit < 1:
        return (
            f"Error: offset must be 0 or more and limit 1 or more (got offset={offset}, "
            f"limit={limit}); {ref} has {total:,} characters."
        )
    if offset >= total and total:
        return (
            f"Error: offset {offset:,} is past the end of {ref}, which has {total:,} "
            f'characters; call {name}(ref="{ref}", offset=0) to read from the start.'
        )
    end = min(total, offset + min(limit, max_limit))
    if end < total:
        footer = (
            f"[characters {offset:,}-{end:,} of {total:,}; {total - end:,} more: "
            f'call {name}(ref="{ref}", offset={end})]'
        )
    else:
        footer = f"[characters {offset:,}-{end:,} of {total:,}; this is the end.]"
    return f"{text[offset:end]}\n{footer}"
