"""Persisting by state update: what a node, a hook or a middleware returns to LangGraph.

Inside a graph a compaction is not written with ``saver.put``: it is returned as an update of
the messages channel, which LangGraph stores with the step like any other; the checkpoints
before it keep every original (``get_state_history``, ``transcript()``).

The update is LangGraph's `Overwrite` of the channel with the new history: the reducer
(``add_messages``) is bypassed and the channel holds exactly that list, as
``RemoveMessage(REMOVE_ALL_MESSAGES)`` followed by the history would make it. Unlike that
list, an `Overwrite` is not a sequence of messages, so ``stream_mode="messages"`` (which
re-emits every new message a node returns) does not show the summary as if the assistant
had just said it.

Inside a subgraph (``create_supervisor`` runs its supervisor as one) an update of the
subgraph's own channel is merged back into the parent by message id, which keeps every
message; `parent_update` targets the parent graph's channel instead and runs the
subgraph's node again from the compacted history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import Command, Overwrite

__all__ = ["parent_node", "parent_update", "replacing_update"]

_NS_SEP = "|"  # LangGraph's separator between the levels of a checkpoint namespace
_TASK_SEP = ":"  # ... and between a level's node name and its task id


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


def parent_update(update: dict[str, Any], *, node: str) -> Command[Any]:
    """The command that applies ``update`` to the parent graph and runs ``node`` again.

    Args:
        update: The state update (`replacing_update`).
        node: The parent's node that runs the subgraph (`parent_node`).
    """
    return Command(graph=Command.PARENT, update=update, goto=node)


def _with_ids(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    return [m if m.id else m.model_copy(update={"id": str(uuid.uuid4())}) for m in messages]
