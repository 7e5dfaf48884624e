"""Where offloaded tool results live: the `ResultStore` protocol and two stores.

A result is kept as text under its reference (``tr_`` and 20 hex digits), exactly as the
tool returned it: `DirectoryResultStore` writes one file per result, `LangGraphResultStore`
one item of a LangGraph ``BaseStore``. `is_ref` tells a well-formed reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from langgraph.store.base import BaseStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "REF_PATTERN",
    "DirectoryResultStore",
    "LangGraphResultStore",
    "ResultStore",
    "is_ref",
]

REF_PATTERN = re.compile(r"\btr_[0-9a-f]{20}\b")
"""Matches a stored result's reference (``tr_`` and 20 hex digits) anywhere in a text."""

DEFAULT_NAMESPACE: tuple[str, ...] = ("compacting_supervisor", "tool_results")
"""Where `LangGraphResultStore` puts results unless told otherwise."""

_REF = re.compile(r"tr_[0-9a-f]{20}")


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
