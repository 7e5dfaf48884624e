"""Reading offloaded results back, and the policy's hooks into an agent.

`read_tool_result_tool` builds the tool an agent pages through a stored result with.
`AgentHooks` gives `OffloadToolResults` its ``read_tool``, ``middleware``,
``wrap_tool_call`` and ``awrap_tool_call``: offloading each result as a tool answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.store.base import BaseStore
from pydantic import BaseModel, Field, create_model

from compacting_supervisor._settings import check_count
from compacting_supervisor.offload._shared import (
    _TOOL_NAME,
    DEFAULT_MAX_READ_LIMIT,
    DEFAULT_READ_LIMIT,
    DEFAULT_READ_TOOL,
    _as_store,
)
from compacting_supervisor.offload.results import OffloadError, OffloadPlan
from compacting_supervisor.offload.stores import ResultStore, is_ref

if TYPE_CHECKING:
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command

logger = logging.getLogger(__name__)

__all__ = ["AgentHooks", "read_tool_result_tool"]


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


class AgentHooks:
    """How an `OffloadToolResults` policy works inside an agent, as each tool answers.

    `OffloadToolResults` inherits these methods; they use its ``store``, ``tool_name``,
    ``apply`` and ``aapply``.
    """

    store: ResultStore
    tool_name: str

    if TYPE_CHECKING:

        def apply(
            self, messages: Sequence[BaseMessage], *, thread_id: str | None = None
        ) -> OffloadPlan:
            """Store the large tool results of ``messages`` (`OffloadToolResults.apply`)."""

        async def aapply(
            self, messages: Sequence[BaseMessage], *, thread_id: str | None = None
        ) -> OffloadPlan:
            """Async form of `apply` (`OffloadToolResults.aapply`)."""

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


def _request_thread(request: Any) -> str | None:
    config = getattr(getattr(request, "runtime", None), "config", None) or {}
    thread_id = (config.get("configurable") or {}).get("thread_id")
    return None if thread_id is None else str(thread_id)
