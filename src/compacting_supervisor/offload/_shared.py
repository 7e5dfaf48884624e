"""What an offloaded result looks like, and the helpers the policy and the read tool stand on.

The marker an offloaded message carries (`OFFLOAD_KEY`, read by `offloaded_ref`), how its
content opens (`HEADER_PREFIX`), the defaults of the policy and of its read tool, how a
reference is made (`make_ref`), a result's text and its size, putting the text back
(`restored`), and the ``store=`` argument both take (`_as_store`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.store.base import BaseStore

from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor.offload.stores import (
    DirectoryResultStore,
    LangGraphResultStore,
    ResultStore,
    is_ref,
)
from compacting_supervisor.token_counter import TokenCounter

OFFLOAD_KEY = "offloaded"
"""Key under ``response_metadata["compacting_supervisor"]`` marking an offloaded message."""

HEADER_PREFIX = "[tool result stored: ref="
"""How the content of an offloaded message opens."""

DEFAULT_READ_TOOL = "read_tool_result"
DEFAULT_MIN_TOKENS = 2_000
DEFAULT_PREVIEW_CHARS = 1_000
DEFAULT_READ_LIMIT = 4_000
DEFAULT_MAX_READ_LIMIT = 20_000

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def offloaded_ref(message: BaseMessage) -> str | None:
    """Return the reference of an offloaded tool result, or None for any other message."""
    meta = message.response_metadata.get(METADATA_KEY)
    info = meta.get(OFFLOAD_KEY) if isinstance(meta, dict) else None
    if isinstance(info, dict) and is_ref(info.get("ref")):
        return str(info["ref"])
    return None


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
