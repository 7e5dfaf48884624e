"""`CompactionMiddleware`: the same compaction inside a `create_agent` agent's run.

A wrapper compacts after a run ends; a long run with many tool calls still grows the
model's input without bound. This middleware compacts before each model call instead, with
the same core, trigger, keep policy, running summary, redaction, failure rules and circuit
breaker as `CompactingSupervisor`. The compaction is returned as an update of the
``messages`` channel (an `Overwrite` with the new history), so the agent's checkpointer
stores it with the step, and every original stays in the checkpoints before it. The step
itself is shared with `CompactionNode` (``_in_graph.py``).

Needs ``langchain`` (``pip install "compacting-supervisor[agents]"``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from compacting_supervisor._arguments import COMPACTION_RATIO, TOKEN_LIMIT
from compacting_supervisor._flow import drive
from compacting_supervisor._in_graph import InGraphCompaction, adrive_off_loop, run_thread_id
from compacting_supervisor._persist.state_update import replacing_update
from compacting_supervisor._summarizer_call import AgentPrefix
from compacting_supervisor._usage import declared_tokens
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.summarizers import Summarizer
from compacting_supervisor.triggers import Trigger

logger = logging.getLogger(__name__)

__all__ = ["CompactionMiddleware"]


class CompactionMiddleware(AgentMiddleware, InGraphCompaction):
    """Compacts a `create_agent` agent's messages before a model call when the trigger fires.

    Args:
        model: The summariser (a chat model, a ``"provider:model"`` string or a
            `Summarizer`); None uses the offline extractive summariser. Ignored when
            ``history_manager`` is given.
        history_manager: The compaction's settings (summariser, redaction, retries, budget,
            counter); defaults to ``HistoryManager(model=model)``. Its checkpointer is not
            used: the agent's checkpointer stores the update.
        token_limit: Compact when the model is about to see more tokens than this (the
            messages, the system prompt and the tool schemas). Give ``trigger`` instead for
            any other rule, not both.
        compaction_ratio: The fraction of the conversation to summarise; or give ``keep``.
        trigger: When to compact (`TokenLimit`, `ContextFraction`, `MessageCount`,
            `Repetition`, `When`, combined with ``|`` and ``&``).
        keep: What stays verbatim (`KeepMessages`, `KeepTokens`, `KeepRatio`).
        offload: Stores each large tool result as the tool returns it, so the model reads a
            reference and a preview (the agent gets the policy's read tool); the summariser
            reads the results back whole.
        system_prompt: The agent's system prompt (text or tokens), counted with the messages
            until the first model call shows it.
        tools: The agent's tools (or their schemas' tokens), likewise.
        max_consecutive_failures: Failed compactions in a row after which the thread's
            compaction pauses for ``failure_cooldown_turns`` model calls.
        failure_cooldown_turns: How long that pause lasts.

    Raises:
        TypeError: ``model`` is a graph, or a setting has the wrong type.
        ValueError: A setting is out of range, or ``token_limit`` comes with ``trigger``
            (``compaction_ratio`` with ``keep``).

    Example:
        >>> from langchain.agents import create_agent
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from compacting_supervisor import CompactionMiddleware, KeepMessages, MessageCount
        >>> from compacting_supervisor.testing import ScriptedChatModel
        >>> agent = create_agent(
        ...     ScriptedChatModel(responses=["Noted."]),
        ...     tools=[],
        ...     middleware=[CompactionMiddleware(trigger=MessageCount(6), keep=KeepMessages(2))],
        ...     checkpointer=InMemorySaver(),
        ... )
        >>> config = {"configurable": {"thread_id": "t"}}
        >>> for n in range(4):
        ...     fact = f"Fact {n}: the review moved to room {n}. " * 5
        ...     state = agent.invoke({"messages": [("user", fact)]}, config)
        >>> [m.type for m in state["messages"]]  # a summary, then the two newest and the answer
        ['human', 'ai', 'human', 'ai']
        >>> stored = agent.get_state(config).values["messages"]
        >>> stored[0].text.startswith("Here is a summary")
        True
    """

    _form = "CompactionMiddleware"

    def __init__(
        self,
        *,
        model: BaseChatModel | str | Summarizer | None = None,
        history_manager: HistoryManager | None = None,
        token_limit: int = TOKEN_LIMIT,
        compaction_ratio: float = COMPACTION_RATIO,
        trigger: Trigger | None = None,
        keep: KeepPolicy | None = None,
        offload: OffloadToolResults | None = None,
        system_prompt: str | int | None = None,
        tools: Sequence[Any] | int | None = None,
        max_consecutive_failures: int = 3,
        failure_cooldown_turns: int = 5,
    ) -> None:
        super().__init__()
        self._setup(
            model=model,
            history_manager=history_manager,
            token_limit=token_limit,
            compaction_ratio=compaction_ratio,
            trigger=trigger,
            keep=keep,
            offload=offload,
            system_prompt=system_prompt,
            tools=tools,
            max_consecutive_failures=max_consecutive_failures,
            failure_cooldown_turns=failure_cooldown_turns,
            fix_for_graph=(
                "put CompactionMiddleware in create_agent(..., middleware=[...]); to compact "
                "a compiled graph from outside, wrap it in CompactingSupervisor(graph)."
            ),
        )
        if self.history_manager.messages_key != "messages":
            msg = (
                f"`history_manager` has messages_key={self.history_manager.messages_key!r}, "
                "but create_agent's model reads the 'messages' channel: use a HistoryManager "
                "with the default messages_key."
            )
            raise ValueError(msg)
        # With offload, each large tool result is stored as it is produced (the model never
        # reads it whole) and the agent gets the tool that reads it back.
        self.tools = [offload.read_tool()] if offload is not None else []

    # ------------------------------------------------------------------ the hooks

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Compact the messages the model is about to see, if the trigger fires."""
        return self._update(drive(self._before_model(state)))

    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async form of `before_model`: the I/O is awaited, the counting runs off the loop."""
        return self._update(await adrive_off_loop(self._before_model(state)))

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Learn the system prompt and tool schemas the model is sent, then call it."""
        if (seen := self._unseen_request(request)) is not None:
            self._learn_overhead(request, seen)
        return handler(request)

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        """Async form of `wrap_model_call` (a new prompt is counted off the event loop)."""
        if (seen := self._unseen_request(request)) is not None:
            await asyncio.to_thread(self._learn_overhead, request, seen)
        return await handler(request)

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """With ``offload``, store a large tool result before the model reads it."""
        if self.offload is None:
            return handler(request)
        return self.offload.wrap_tool_call(request, handler)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        """Async form of `wrap_tool_call`."""
        if self.offload is None:
            return await handler(request)
        return await self.offload.awrap_tool_call(request, handler)

    # ------------------------------------------------------------------ helpers

    def _update(self, messages: list[BaseMessage] | None) -> dict[str, Any] | None:
        if messages is None:
            return None
        return replacing_update(messages, messages_key=self.history_manager.messages_key)

    def _unseen_request(self, request: Any) -> tuple[Any, ...] | None:
        """What identifies a request's prompt and tools, when this thread has not seen it."""
        system = getattr(request, "system_message", None)
        text = system.text if system is not None else None
        tools = tuple(id(tool) for tool in getattr(request, "tools", None) or [])
        seen = (text, tools)
        known = self._requests.get(run_thread_id())
        return None if known is not None and known[0] == seen else seen

    def _learn_overhead(self, request: Any, seen: tuple[Any, ...]) -> None:
        """Count the system prompt and tool schemas of a model request; keep them.

        A summariser that reads the conversation as the agent did sends them too.
        """
        system = getattr(request, "system_message", None)
        text = system.text if system is not None else None
        tools = list(getattr(request, "tools", None) or [])
        tokens = declared_tokens(text, tools or None, self.history_manager.token_counter)
        thread_id = run_thread_id()
        self._requests[thread_id] = (seen, tokens, AgentPrefix(system, tuple(tools)))
        logger.debug(
            "Thread %s: model requests carry %d tokens of prompt and tools.", thread_id, tokens
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: a graph took this middleware for a node or a hook."""
        msg = (
            "CompactionMiddleware is a create_agent middleware, called by the agent's hooks: "
            "pass it as create_agent(model, tools, middleware=[CompactionMiddleware(...)]). "
            "For a pre_model_hook= (create_react_agent, create_supervisor) or a node of a "
            "StateGraph, use CompactionNode(...) with the same settings."
        )
        raise TypeError(msg)

    def __repr__(self) -> str:
        return f"CompactionMiddleware(trigger={self.trigger!r}, keep={self.keep!r})"
