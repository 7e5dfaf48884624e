"""`CompactionNode`: the compaction as a node of any graph, and as an agent's ``pre_model_hook``.

LangGraph Server (and any deployment that runs graphs itself) accepts only a graph, so the
compaction must be part of it. `CompactionNode` is that part: a runnable that reads the
state's ``messages`` before a model call, compacts them when the trigger fires (the same
core, settings and rules as `CompactingSupervisor` and `CompactionMiddleware`) and returns
the new history as a state update, which the graph's checkpointer stores with the step.

Three places take it:

- ``create_react_agent(model, tools, pre_model_hook=CompactionNode(...))``;
- ``create_supervisor(agents, model=..., pre_model_hook=CompactionNode(...))``: the
  supervisor runs as a subgraph, whose messages the parent graph merges back by id (a
  compaction there would shorten nothing), so the node compacts the parent's ``messages``
  (``Command(graph=Command.PARENT)``) and runs the supervisor again from them;
- ``StateGraph(MessagesState).add_node("compact", CompactionNode(...))`` before the node
  that calls the model, on a step of its own: its update (an `Overwrite` of the channel)
  drops messages another node writes in the same step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, NoReturn

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    set_config_context,
    var_child_runnable_config,
)

from compacting_supervisor._arguments import COMPACTION_RATIO, TOKEN_LIMIT
from compacting_supervisor._flow import Flow, drive
from compacting_supervisor._in_graph import (
    NO_THREAD,
    InGraphCompaction,
    adrive_off_loop,
    run_config,
    run_thread_id,
)
from compacting_supervisor._persist.state_update import (
    parent_namespace,
    parent_node,
    parent_update,
    replacing_update,
    shared_parent,
    unreadable_parent,
)
from compacting_supervisor._recent import RecentThreads
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.summarizers import Summarizer
from compacting_supervisor.triggers import Trigger

logger = logging.getLogger(__name__)

__all__ = ["CompactionNode"]

_USE = (
    "CompactionNode is a graph node, not a model or a tool: pass it as "
    "create_react_agent(model, tools, pre_model_hook=CompactionNode(...)) or "
    "create_supervisor(agents, model=..., pre_model_hook=CompactionNode(...)), or add it "
    "with StateGraph.add_node before the node that calls the model."
)


class _MisplacedError(AttributeError, TypeError):
    """The node given where a create_agent middleware goes.

    A TypeError that ``hasattr``, ``dir`` and ``inspect`` still read as a missing attribute.
    """


class _NotAMiddleware:
    """A middleware hook's name on the node: reading it says which form goes there."""

    def __get__(self, instance: Any, owner: Any = None) -> NoReturn:
        msg = (
            "`middleware` got a CompactionNode, which is a graph node: pass "
            "create_agent(model, tools, middleware=[CompactionMiddleware(...)]) with the same "
            "settings. CompactionNode goes in pre_model_hook= (create_react_agent, "
            "create_supervisor) or StateGraph.add_node."
        )
        raise _MisplacedError(msg)


class CompactionNode(Runnable[Any, Any], InGraphCompaction):
    """Compacts a graph's ``messages`` before a model call when the trigger fires.

    Args:
        model: The summariser (a chat model, a ``"provider:model"`` string or a
            `Summarizer`); None uses the offline extractive summariser. Ignored when
            ``history_manager`` is given.
        history_manager: The compaction's settings (summariser, redaction, retries, budget,
            counter, ``messages_key``); defaults to ``HistoryManager(model=model)``. Its
            checkpointer is not used: the graph's checkpointer stores the update.
        token_limit: Compact when the model is about to see more tokens than this (the
            messages, plus ``system_prompt`` and ``tools``). Give ``trigger`` instead for any
            other rule, not both.
        compaction_ratio: The fraction of the conversation to summarise; or give ``keep``.
        trigger: When to compact (`TokenLimit`, `ContextFraction`, `MessageCount`,
            `Repetition`, `When`, combined with ``|`` and ``&``).
        keep: What stays verbatim (`KeepMessages`, `KeepTokens`, `KeepRatio`).
        offload: Stores each large tool result the agent has answered, so the model reads
            a reference and a preview (give the agent ``offload.read_tool()``); the
            summariser reads the results back whole.
        system_prompt: The prompt the model is sent with the messages (text or tokens),
            counted towards the trigger.
        tools: The model's tools (or their schemas' tokens), likewise.
        max_consecutive_failures: Failed compactions in a row after which the thread's
            compaction pauses for ``failure_cooldown_turns`` model calls.
        failure_cooldown_turns: How long that pause lasts.
        compact_parent: Inside a subgraph, whether to compact the parent graph's messages
            and run the subgraph's node again from them. None (the default) does when the
            parent's checkpoint shows it holds the same history (the supervisor of
            ``create_supervisor``), and compacts the subgraph's own copy otherwise (an
            agent called from a node with a state of its own). True always does (a run with
            ``durability="exit"`` stores no checkpoint to read); False never does.

    Raises:
        TypeError: ``model`` is a graph, or a setting has the wrong type.
        ValueError: A setting is out of range, or ``token_limit`` comes with ``trigger``
            (``compaction_ratio`` with ``keep``).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from langgraph.prebuilt import create_react_agent
        >>> from compacting_supervisor import CompactionNode, KeepMessages, MessageCount
        >>> from compacting_supervisor.testing import ScriptedChatModel
        >>> agent = create_react_agent(
        ...     ScriptedChatModel(responses=["Noted."]),
        ...     tools=[],
        ...     pre_model_hook=CompactionNode(trigger=MessageCount(6), keep=KeepMessages(2)),
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

    _form = "CompactionNode"
    wrap_tool_call = _NotAMiddleware()  # what create_agent reads first on a middleware

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
        compact_parent: bool | None = None,
    ) -> None:
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
                "pass CompactionNode(...) as the agent's pre_model_hook= or add it to the "
                "graph with add_node; to compact a compiled graph from outside, wrap it in "
                "CompactingSupervisor(graph)."
            ),
        )
        if compact_parent is not None and not isinstance(compact_parent, bool):
            msg = f"`compact_parent` must be None, True or False, got {compact_parent!r}."
            raise TypeError(msg)
        self.compact_parent = compact_parent
        # Per thread: the history just handed to the parent graph, which runs this node
        # again from it (that run must not compact it again).
        self._handed_up: RecentThreads[list[str | None]] = RecentThreads()
        self._told_unreadable = False  # the warning that compact_parent decides, said once

    # ------------------------------------------------------------------ the node

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Compact the state's messages if the trigger fires: a state update, or None.

        Args:
            input: The graph's state (a dict with the messages channel).
            config: The run's config (LangGraph passes the node's; called by hand, its
                thread and callbacks are used).
            **kwargs: Accepted as any runnable accepts them; not used.
        """
        if config is not None and var_child_runnable_config.get() is None:  # called by hand
            with set_config_context(ensure_config(config)) as context:
                return context.run(self._invoke, input)
        return self._invoke(input)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async form of `invoke`: the I/O is awaited, the counting runs off the loop."""
        if config is not None and var_child_runnable_config.get() is None:  # called by hand
            with set_config_context(ensure_config(config)) as context:
                return await asyncio.create_task(self._ainvoke(input), context=context)
        return await self._ainvoke(input)

    def _invoke(self, state: Any) -> Any:
        _check_state(state)
        if self._handed_back(state):
            return None
        return drive(self._step_update(state))

    async def _ainvoke(self, state: Any) -> Any:
        _check_state(state)
        if self._handed_back(state):
            return None
        return await adrive_off_loop(self._step_update(state))

    def _step_update(self, state: Any) -> Flow[Any]:
        """The step, and the update that persists its history: this graph's, or the parent's."""
        messages = yield from self._before_model(state)
        if messages is None:
            return None
        key = self.history_manager.messages_key
        update = replacing_update(messages, messages_key=key)
        if self.compact_parent is False:
            return update
        config = run_config()
        if self.compact_parent:
            node = parent_node(config)
        else:
            if unreadable_parent(config) and not self._told_unreadable:
                self._told_unreadable = True
                logger.warning(
                    "%s runs in a subgraph of a graph without a checkpointer, so it cannot "
                    "read whether the parent graph holds the same %r: it compacts the "
                    "subgraph's own copy, which a parent sharing them (create_supervisor's "
                    "supervisor) merges back whole, the summary at the end. Pass "
                    "compact_parent=True to compact the parent's, or compact_parent=False "
                    "to keep the copy's compaction and silence this.",
                    self._form,
                    key,
                )
            node = yield from shared_parent(config, self._messages(state), messages_key=key)
        if node is None:
            return update
        thread_id = run_thread_id()
        if thread_id != NO_THREAD:
            self._handed_up[_hand_up_key(thread_id, config)] = [m.id for m in update[key].value]
        logger.debug("Thread %s: the parent graph's %r is compacted.", thread_id, key)
        return parent_update(update, node=node)

    # ------------------------------------------------------------------ misuse

    def bind_tools(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: an agent took this node for its chat model."""
        raise TypeError(f"`model` got a CompactionNode. {_USE}")

    # ------------------------------------------------------------------ helpers

    def _handed_back(self, state: Any) -> bool:
        """Whether the parent runs this node again on the history it just compacted."""
        if not self._handed_up:
            return False
        written = self._handed_up.pop(_hand_up_key(run_thread_id(), run_config()), None)
        if written is None:
            return False
        return [m.id for m in self._messages(state)] == written

    def __repr__(self) -> str:
        return f"CompactionNode(trigger={self.trigger!r}, keep={self.keep!r})"


def _hand_up_key(thread_id: str, config: dict[str, Any]) -> str:
    """A hand-up's key: the thread and the parent graph it went to.

    Subgraphs that share a node on one thread, side by side, each recognise their own rerun.
    """
    return f"{thread_id}\n{parent_namespace(config)}"


def _check_state(state: Any) -> None:
    """Refuse what a chat model is called with (messages, a prompt): a state is a mapping."""
    if isinstance(state, str | list | tuple | PromptValue | BaseMessage):
        msg = f"CompactionNode was called with a {type(state).__name__}, as a chat model is. {_USE}"
        raise TypeError(msg)
