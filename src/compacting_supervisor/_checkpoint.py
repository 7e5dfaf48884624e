"""The checkpoint rewrite: a new head that differs from the old one only in ``messages``.

This follows the recipe measured in ``langgraph-internals.md``: a fresh id sorting after the
head, a new timestamp, only the messages channel version bumped (and listed in
``new_versions`` so every saver stores the new value under a new key), everything else
copied, ``source="update"`` and ``step + 1`` in the metadata, and the compacted checkpoint's
id recorded. Pure functions: the callers do the saver I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.base.id import uuid6

from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor.errors import StaleCheckpointError, ThreadBusyError

_ID_ATTEMPTS = 50


def head_config(thread_id: str, checkpoint_ns: str = "") -> RunnableConfig:
    """Return the config that reads a thread's newest checkpoint."""
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}


def thread_config(thread: Any, *, parameter: str = "config") -> RunnableConfig:
    """Return a config naming ``thread``: a thread id, or a config that names one.

    Every public method that names a thread goes through here, so each takes the same two
    forms: ``"t1"`` or ``{"configurable": {"thread_id": "t1"}}``.

    Args:
        thread: A thread id (a non-empty string) or a `RunnableConfig` whose
            ``configurable`` has a ``thread_id``.
        parameter: The caller's name for ``thread``, used in the error.

    Raises:
        ValueError: An empty thread id, or a config without one.
        TypeError: Neither a string nor a config.
    """
    if isinstance(thread, str):
        if not thread:
            msg = f"`{parameter}` is an empty thread id: pass a thread id such as 't1'."
            raise ValueError(msg)
        return {"configurable": {"thread_id": thread}}
    if not isinstance(thread, dict):
        msg = (
            f"`{parameter}` must be a thread id (a string such as 't1') or a config "
            "{'configurable': {'thread_id': 't1'}}, got "
            f"{type(thread).__name__}."
        )
        raise TypeError(msg)
    configurable = thread.get("configurable")
    thread_id = configurable.get("thread_id") if isinstance(configurable, dict) else None
    if thread_id is None or thread_id == "":
        msg = (
            f"`{parameter}` has no thread id: pass a thread id such as 't1' or "
            "config={'configurable': {'thread_id': '<your thread>'}}."
        )
        raise ValueError(msg)
    return cast(RunnableConfig, thread)


def check_head(
    head: CheckpointTuple | None,
    *,
    thread_id: str,
    expected_checkpoint_id: str | None,
) -> CheckpointTuple:
    """Return ``head`` if a compaction may be written on it, else raise.

    Raises:
        StaleCheckpointError: There is no head, or it is not the expected checkpoint.
        ThreadBusyError: The head has pending writes (an interrupt, or a half-finished step).
    """
    if head is None:
        msg = f"Thread {thread_id!r} has no checkpoint yet: there is no history to replace."
        raise StaleCheckpointError(
            msg, thread_id=thread_id, expected_checkpoint_id=expected_checkpoint_id
        )
    head_id = head.checkpoint["id"]
    if expected_checkpoint_id is not None and head_id != expected_checkpoint_id:
        msg = (
            f"Thread {thread_id!r} moved on while the compaction was prepared "
            f"(head {head_id}, expected {expected_checkpoint_id}); nothing was written."
        )
        raise StaleCheckpointError(
            msg,
            thread_id=thread_id,
            expected_checkpoint_id=expected_checkpoint_id,
            head_checkpoint_id=head_id,
        )
    if head.pending_writes:
        channels = sorted({w[1] for w in head.pending_writes})
        msg = (
            f"Thread {thread_id!r} has pending writes ({', '.join(channels)}): it is "
            "interrupted or mid-step; compaction waits for a later turn."
        )
        raise ThreadBusyError(msg, thread_id=thread_id, reason="pending writes")
    return head


def _new_id_after(head_id: str, step: int) -> str:
    for _ in range(_ID_ATTEMPTS):
        new_id = str(uuid6(clock_seq=step))
        if new_id > head_id:
            return new_id
    msg = (
        f"Could not make a checkpoint id that sorts after the head {head_id} "
        "(is the system clock behind the checkpoint's time?). Nothing was written."
    )
    raise StaleCheckpointError(msg, head_checkpoint_id=head_id)


def build_compacted_checkpoint(
    head: CheckpointTuple,
    saver: BaseCheckpointSaver[Any],
    *,
    messages_key: str,
    messages: list[BaseMessage],
    details: dict[str, Any],
) -> tuple[Checkpoint, CheckpointMetadata, dict[str, Any]]:
    """Build the checkpoint, metadata and ``new_versions`` for ``saver.put``.

    Args:
        head: The thread's current head (already checked with `check_head`).
        saver: The saver that will store it (it picks the next channel version).
        messages_key: The messages channel.
        messages: The compacted messages.
        details: Counts recorded in the metadata under ``"compacting_supervisor"``.

    Returns:
        ``(checkpoint, metadata, new_versions)``.
    """
    old = head.checkpoint
    step = int(head.metadata.get("step", -1)) + 1
    versions = dict(old["channel_versions"])
    current = max(versions.values()) if versions else None
    new_version = saver.get_next_version(current, None)
    versions[messages_key] = new_version
    values = dict(old["channel_values"])
    values[messages_key] = list(messages)
    updated = old.get("updated_channels")
    checkpoint: Checkpoint = {
        **old,
        "id": _new_id_after(old["id"], step),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": values,
        "channel_versions": versions,
        # Two levels hold everything: node -> channel -> version (a string or a number).
        "versions_seen": {node: dict(seen) for node, seen in old["versions_seen"].items()},
        "updated_channels": list(updated) if updated is not None else None,
    }
    metadata: dict[str, Any] = {
        **head.metadata,  # the run's own keys (user ids ...) stay filterable
        "source": "update",
        "step": step,
        "parents": dict(head.metadata.get("parents", {}) or {}),
        METADATA_KEY: {"compacted_checkpoint_id": old["id"], **details},
    }
    return checkpoint, cast(CheckpointMetadata, metadata), {messages_key: new_version}
