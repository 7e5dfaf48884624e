"""`CompactionMiddleware`: the same compaction inside a `create_agent` agent's run.

A wrapper compacts after a run ends; a long run with many tool calls still grows the
model's input without bound. This middleware compacts before each model call instead, with
the same core, trigger, keep policy, running summary, redaction, failure rules and circuit
breaker as `CompactingSupervisor`. The compaction is returned as an update of the
``messages`` channel (``RemoveMessage(REMOVE_ALL_MESSAGES)`` plus the new history), so the
agent's checkpointer stores it with the step, and every original stays in the checkpoints
before it.

Needs ``langchain`` (``pip install "compacting-supervisor[agents]"``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.config import get_config
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from compacting_supervisor._arguments import (
    COMPACTION_RATIO,
    TOKEN_LIMIT,
    check_history_manager,
)
from compacting_supervisor._checkpoint import thread_config
from compacting_supervisor._compaction import StoreResults, compaction_result
from compacting_supervisor._decisions import Compact, CompactionDecisions
from compacting_supervisor._flow import Flow, adrive, drive
from compacting_supervisor._messages import check_messages
from compacting_supervisor._persist.state_update import replacing_update
from compacting_supervisor._usage import declared_tokens
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult
from compacting_supervisor.summarizers import Summarizer
from compacting_supervisor.triggers import Trigger

logger = logging.getLogger(__name__)

__all__ = ["CompactionMiddleware"]

_NO_THREAD = "<no thread>"


class CompactionMiddleware(AgentMiddleware, CompactionDecisions):
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
        if isinstance(model, Pregel | StateGraph):
            msg = (
                "`model` is the summariser's chat model, not a graph: put CompactionMiddleware "
                "in create_agent(..., middleware=[...]); to compact a compiled graph from "
                "outside, wrap it in CompactingSupervisor(graph)."
            )
            raise TypeError(msg)
        check_history_manager(history_manager)
        manager = history_manager or HistoryManager(model=model)
        if manager.messages_key != "messages":
            msg = (
                f"`history_manager` has messages_key={manager.messages_key!r}, but "
                "create_agent's model reads the 'messages' channel: use a HistoryManager "
                "with the default messages_key."
            )
            raise ValueError(msg)
        self._configure(
            manager,
            token_limit=token_limit,
            compaction_ratio=compaction_ratio,
            trigger=trigger,
            keep=keep,
            offload=offload,
            system_prompt=system_prompt,
            tools=tools,
            max_consecutive_failures=max_consecutive_failures,
            failure_cooldown_turns=failure_cooldown_turns,
        )
        # Per thread: what its model requests carry (a prompt may differ per user).
        self._requests: dict[str, tuple[tuple[Any, ...], int]] = {}
        # With offload, each large tool result is stored as it is produced (the model never
        # reads it whole) and the agent gets the tool that reads it back.
        self.tools = [offload.read_tool()] if offload is not None else []

    # ------------------------------------------------------------------ the hooks

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Compact the messages the model is about to see, if the trigger fires."""
        return drive(self._before_model(state))

    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async form of `before_model`: the summariser and the store are awaited."""
        return await adrive(self._before_model(state))

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Learn the system prompt and tool schemas the model is sent, then call it."""
        self._learn_overhead(request)
        return handler(request)

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        """Async form of `wrap_model_call`."""
        self._learn_overhead(request)
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

    def last_compaction(self, thread: Any) -> CompactionResult | None:
        """The result of the thread's latest compaction in this process, if any.

        Args:
            thread: A thread id (``"t1"``) or a config naming one.
        """
        config = thread_config(thread, parameter="thread")
        return self._results.get(str(config["configurable"]["thread_id"]))

    # ------------------------------------------------------------------ one step

    def _before_model(self, state: Any) -> Flow[dict[str, Any] | None]:
        """Offload answered results, ask the trigger, compact: the update, or None."""
        thread_id = _run_thread_id()
        if thread_id != _NO_THREAD:
            return (yield from self._step(thread_id, state))
        # A run without a thread shares no breaker or record with other such runs.
        key = f"{_NO_THREAD[:-1]} {uuid.uuid4().hex}>"
        try:
            return (yield from self._step(key, state))
        finally:
            self._results.pop(key, None)
            self._first_seen.pop(key, None)
            self._breaker.circuits.pop(key, None)

    def _step(self, thread_id: str, state: Any) -> Flow[dict[str, Any] | None]:
        messages = self._messages(state)
        replaced: list[BaseMessage] | None = None
        if self.offload is not None:
            plan = self.offload.plan_answered(messages, thread_id=thread_id)
            if plan.offloaded:
                try:
                    yield StoreResults(self.offload, plan.offloaded)
                except Exception as exc:  # the results stay whole; the run goes on
                    logger.warning(
                        "Thread %s: could not offload tool results; they stay whole: %s",
                        thread_id,
                        exc,
                    )
                else:
                    messages = replaced = plan.messages
        decision = self._decide(thread_id, messages, state)
        if isinstance(decision, Compact):
            compacted = yield from self._compact(thread_id, messages, decision)
            replaced = compacted or replaced
        if replaced is None:
            return None
        return replacing_update(replaced, messages_key=self.history_manager.messages_key)

    def _compact(
        self, thread_id: str, messages: list[BaseMessage], decision: Compact
    ) -> Flow[list[BaseMessage] | None]:
        """Run the core; record its result. A failure leaves the messages as they are."""
        settings = self._compact_kwargs(decision.reason)
        core = self.history_manager._core()
        try:
            compaction = yield from core.compact(
                messages,
                settings["keep"],
                max_summary_tokens=settings["max_summary_tokens"],
                thread_id=thread_id,
                pin_request=True,  # one run may be one request and many tool calls
                require_reduction=True,
            )
        except Exception as exc:  # a compaction problem never fails the agent's run
            self._settle(thread_id, decision, messages, exc)
            return None
        if compaction is None:
            self._settle(thread_id, decision, messages, None)
            return None
        self._record(
            compaction_result(
                compaction,
                thread_id=thread_id,
                trigger=decision.reason,
                started=decision.started,
                messages_before=len(messages),
            )
        )
        return compaction.messages

    def _messages(self, state: Any) -> list[BaseMessage]:
        key = self.history_manager.messages_key
        if not isinstance(state, dict) or key not in state:
            msg = (
                f"The agent's state has no {key!r} channel to compact: CompactionMiddleware "
                "works on create_agent's state (AgentState); for another channel name, pass "
                "history_manager=HistoryManager(messages_key=...)."
            )
            raise CompactionError(msg)
        messages = list(state[key] or [])
        check_messages(messages, key)
        return messages

    def _learn_overhead(self, request: Any) -> None:
        """Count the system prompt and tool schemas of a model request, once per change."""
        system = getattr(request, "system_message", None)
        text = system.text if system is not None else None
        tools = list(getattr(request, "tools", None) or [])
        seen = (text, tuple(id(tool) for tool in tools))
        thread_id = _run_thread_id()
        known = self._requests.get(thread_id)
        if known is None or known[0] != seen:
            tokens = declared_tokens(text, tools or None, self.history_manager.token_counter)
            self._requests[thread_id] = (seen, tokens)
            logger.debug(
                "Thread %s: model requests carry %d tokens of prompt and tools.", thread_id, tokens
            )

    def _overhead(self, thread_id: str | None) -> int:
        """What this thread's model requests carry; the declared size until one is seen."""
        known = self._requests.get(thread_id) if thread_id is not None else None
        return known[1] if known is not None else self.overhead_tokens

    def __repr__(self) -> str:
        return f"CompactionMiddleware(trigger={self.trigger!r}, keep={self.keep!r})"


def _run_thread_id() -> str:
    """The thread of the run this hook runs in (a run without a checkpointer has none)."""
    try:
        config = get_config()
    except RuntimeError:  # called outside a run
        return _NO_THREAD
    thread = (config.get("configurable") or {}).get("thread_id")
    return str(thread) if thread not in (None, "") else _NO_THREAD
