"""Persisting by state update: what a node, a hook or a middleware returns to LangGraph.

Inside a graph a compaction is not written with ``saver.put``: it is returned as an update of
the messages channel, which LangGraph stores with the step like any other. The
``add_messages`` reducer reads `REMOVE_ALL_MESSAGES` as "drop everything before", so the
update replaces the whole history with the compacted one; the checkpoints before it keep
every original (``get_state_history``, ``transcript()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES

__all__ = ["replacing_update"]


def replacing_update(
    messages: Sequence[BaseMessage], *, messages_key: str = "messages"
) -> dict[str, list[BaseMessage]]:
    """Return the state update that makes ``messages`` the whole history.

    Args:
        messages: The new history (a compaction's ``messages``).
        messages_key: The messages channel (it must use the ``add_messages`` reducer).

    Returns:
        ``{messages_key: [RemoveMessage(id=REMOVE_ALL_MESSAGES), *messages]}``.
    """
    remove_all: Any = RemoveMessage(id=REMOVE_ALL_MESSAGES)
    return {messages_key: [remove_all, *messages]}
