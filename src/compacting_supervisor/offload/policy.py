"""The offload policy: which tool results leave the history, and what takes their place.

`OffloadToolResults` plans (pure), writes to its store, and applies both in that order;
`stored_results_note` names the stored results a summary dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.store.base import BaseStore

from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor._settings import check_count, check_token_counter
from compacting_supervisor.offload._shared import (
    _TOOL_NAME,
    DEFAULT_MIN_TOKENS,
    DEFAULT_PREVIEW_CHARS,
    DEFAULT_READ_TOOL,
    HEADER_PREFIX,
    OFFLOAD_KEY,
    _as_store,
    _split_content,
    _text_tokens,
    _utf8_len,
    make_ref,
    offloaded_ref,
)
from compacting_supervisor.offload.read_tool import AgentHooks
from compacting_supervisor.offload.results import OffloadedResult, OffloadError, OffloadPlan
from compacting_supervisor.offload.stores import ResultStore
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

__all__ = ["OffloadToolResults", "stored_results_note"]


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


class OffloadToolResults(AgentHooks):
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
