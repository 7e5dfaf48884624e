"""Persisting by state update: what a node, a hook or a middleware returns to LangGraph.

Inside a graph a compaction is not written with ``saver.put``: it is returned as an update of
the messages channel, which LangGraph stores with the step like any other; the checkpoints
before it keep every original (``get_state_history``, ``transcript()``).

The update is LangGraph's `Overwrite` of the channel with the new history: the reducer
(``add_messages``) is bypassed and the channel holds exactly that list, as
``RemoveMessage(REMOVE_ALL_MESSAGES)`` followed by the history would make it. Unlike that
list, an `Overwrite` is not a sequence of messages, so ``stream_mode="messages"`` (which
re-emits every new message a node returns) does not show the summary as if the assistant
had just said it. Like any `Overwrite`, it drops the other writes of the channel in the same
step (a parallel branch's new messages), and a second one in that step fails the run: the
node needs a step of its own (docs/node.md).

Inside a subgraph (``create_supervisor`` runs its supervisor as one) an update of the
subgraph's own channel is merged back into the parent by message id, which keeps every
message; `parent_update` targets the parent graph's channel instead and runs the
subgraph's node again from the compacted history. `shared_parent` says when that is right:
the parent's checkpoint (read when a compaction is about to be written, waiting for it
while LangGraph stores it in the background) holds the messages channel and its messages
open the subgraph's, as when the subgraph is a node of the parent over the same state; a
subgraph called from a node with a state of its own compacts its own copy.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.types import Command, Overwrite

from compacting_supervisor._flow import Flow, Sleep

logger = logging.getLogger(__name__)

__all__ = [
    "ReadParent",
    "parent_namespace",
    "parent_node",
    "parent_update",
    "replacing_update",
    "shared_parent",
    "unreadable_parent",
]

_NS_SEP = "|"  # LangGraph's separator between the levels of a checkpoint namespace
_TASK_SEP = ":"  # ... and between a level's node name and its task id
_CONFIG_KEY_DURABILITY = "__pregel_durability"  # langgraph._internal._constants
_FIRST_WAIT = 0.005

PARENT_WAIT = 5.0
"""How long (seconds) a subgraph's step waits for its parent's checkpoint to be stored."""


def replacing_update(
    messages: Sequence[BaseMessage], *, messages_key: str = "messages"
) -> dict[str, Any]:
    """Return the state update that makes ``messages`` the whole history.

    Args:
        messages: The new history (a compaction's ``messages``); a message without an id
            is given one, as ``add_messages`` would.
        messages_key: The messages channel.

    Returns:
        ``{messages_key: Overwrite([...messages])}``.
    """
    return {messages_key: Overwrite(_with_ids(messages))}


def parent_node(config: Mapping[str, Any]) -> str | None:
    """The parent graph's node this run's subgraph runs as; None at the root graph.

    Args:
        config: The config of a node's run (``get_config()``): its
            ``configurable.checkpoint_ns`` is ``"supervisor:<task>|pre_model_hook:<task>"``
            inside the supervisor subgraph of ``create_supervisor``, one level at the root.
    """
    namespace = str((config.get("configurable") or {}).get("checkpoint_ns") or "")
    levels = [level for level in namespace.split(_NS_SEP) if level]
    if len(levels) < 2:
        return None
    return levels[-2].split(_TASK_SEP, 1)[0]


def parent_namespace(config: Mapping[str, Any]) -> str:
    """The checkpoint namespace of the parent graph this run's subgraph runs in.

    The same for every run of that subgraph's node in the parent (a rerun included); ``""``
    when the parent is the root graph.
    """
    levels = str((config.get("configurable") or {}).get("checkpoint_ns") or "").split(_NS_SEP)
    return _NS_SEP.join(levels[:-2])


def unreadable_parent(config: Mapping[str, Any]) -> bool:
    """Whether this run is a subgraph's whose parent checkpoint cannot be read (no saver)."""
    saver = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    return parent_node(config) is not None and not isinstance(saver, BaseCheckpointSaver)


@dataclass(frozen=True)
class ReadParent:
    """Read the parent graph's checkpoint this step runs from."""

    saver: BaseCheckpointSaver[Any]
    config: RunnableConfig

    def run(self) -> CheckpointTuple | None:
        """Read it (sync)."""
        return self.saver.get_tuple(self.config)

    async def arun(self) -> CheckpointTuple | None:
        """Read it (async)."""
        return await self.saver.aget_tuple(self.config)


def shared_parent(
    config: Mapping[str, Any], messages: Sequence[BaseMessage], *, messages_key: str
) -> Flow[str | None]:
    """The parent's node to compact through, when the parent shares this history.

    Args:
        config: The config of the node's run.
        messages: The subgraph's history, before the compaction.
        messages_key: The messages channel.

    Returns:
        `parent_node`, when the parent's checkpoint has ``messages_key`` and its messages
        are the first of ``messages`` (by id); None otherwise, or at the root graph, or
        without a checkpointer to read the parent from.
    """
    node = parent_node(config)
    configurable = config.get("configurable") or {}
    saver = configurable.get(CONFIG_KEY_CHECKPOINTER)
    if node is None or not isinstance(saver, BaseCheckpointSaver):
        return None
    namespace = parent_namespace(config)
    checkpoint_id = (configurable.get("checkpoint_map") or {}).get(namespace)
    if checkpoint_id is None:
        return None
    read: RunnableConfig = {
        "configurable": {
            "thread_id": configurable.get("thread_id"),
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoint_id,
        }
    }
    saved: CheckpointTuple | None = yield ReadParent(saver, read)
    durability = configurable.get(_CONFIG_KEY_DURABILITY) or "async"
    # With durability="async" (LangGraph's default) the parent's checkpoint is put in the
    # background while its tasks (this subgraph) run: wait for it; "exit" never puts it.
    waited, delay = 0.0, _FIRST_WAIT
    while saved is None and durability != "exit" and waited < PARENT_WAIT:
        yield Sleep(delay)
        waited += delay
        delay = min(delay * 2, PARENT_WAIT - waited, 0.25)
        saved = yield ReadParent(saver, read)
    if saved is None:
        logger.warning(
            "The parent graph's checkpoint %s is not stored (durability=%r%s), so the "
            "subgraph's own copy of the messages is compacted, which its parent merges "
            "back whole. If the subgraph shares the parent's messages (create_supervisor's "
            "supervisor), pass CompactionNode(..., compact_parent=True).",
            checkpoint_id,
            durability,
            "" if durability == "exit" else f", not after {waited:.1f} s",
        )
        return None
    values = saved.checkpoint.get("channel_values", {})
    theirs = values.get(messages_key)
    if not isinstance(theirs, list) or not theirs or len(theirs) > len(messages):
        return None
    ours = [m.id for m in messages[: len(theirs)]]
    return node if ours == [getattr(m, "id", None) for m in theirs] else None


def parent_update(update: dict[str, Any], *, node: str) -> Command[Any]:
    """The command that applies ``update`` to the parent graph and runs ``node`` again.

    Args:
        update: The state update (`replacing_update`).
        node: The parent's node that runs the subgraph (`parent_node`).
    """
    return Command(graph=Command.PARENT, update=update, goto=node)


def _with_ids(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    return [m if m.id else m.model_copy(update={"id": str(uuid.uuid4())}) for m in messages]
