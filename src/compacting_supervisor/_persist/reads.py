"""Reading a thread's compaction history back: its totals and its full transcript.

Every compaction this package writes is a checkpoint with ``source="update"`` whose metadata
names the checkpoint it compacted, so both reads need nothing stored elsewhere. They follow
the branch the thread is on: after time travel (a run from an older ``checkpoint_id``) the
abandoned branch's checkpoints stay in the store, so only the compactions among the head's
ancestors (walked through each checkpoint's parent) count. One ``list`` of the thread's
checkpoints gives all of it; flows, like the rewrite: the saver I/O are ops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._flow import Flow
from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor._persist.rewrite import ReadHead
from compacting_supervisor.archive import Transcript, build_transcript
from compacting_supervisor.results import ThreadStats
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["Checkpoint", "ListCheckpoints", "branch", "thread_stats", "transcript"]


@dataclass(frozen=True)
class Checkpoint:
    """What the reads need of one checkpoint of the thread."""

    checkpoint_id: str
    parent_id: str | None
    timestamp: str
    details: dict[str, Any] | None
    """The compaction's (or history replacement's) metadata, when this checkpoint is one."""
    messages: list[Any] | None
    """Its messages, kept only for the head, the compactions and the checkpoints they
    compacted (None: not kept)."""


@dataclass(frozen=True)
class ListCheckpoints:
    """List the thread's checkpoints (root namespace) once, keeping only what the reads use.

    Savers list newest first, so a compaction comes before the checkpoint it compacted:
    that one's messages are kept as it passes, and every other checkpoint's are dropped.
    """

    thread_id: str
    saver: BaseCheckpointSaver[Any]
    messages_key: str

    def run(self) -> list[Checkpoint]:
        """List them (sync)."""
        return _keep(self.saver.list(head_config(self.thread_id)), self.messages_key)

    async def arun(self) -> list[Checkpoint]:
        """List them (async)."""
        listed = [t async for t in self.saver.alist(head_config(self.thread_id))]
        return _keep(listed, self.messages_key)


def _keep(listed: Iterable[CheckpointTuple], messages_key: str) -> list[Checkpoint]:
    kept: list[Checkpoint] = []
    wanted: set[str] = set()
    for position, item in enumerate(listed):
        checkpoint_id = item.checkpoint["id"]
        details = item.metadata.get(METADATA_KEY)
        if (
            item.metadata.get("source") != "update"
            or not isinstance(details, dict)
            or "compacted_checkpoint_id" not in details
        ):
            details = None  # an ordinary step or update_state, not a compaction
        else:
            wanted.add(str(details["compacted_checkpoint_id"]))
        keep = position == 0 or details is not None or checkpoint_id in wanted
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        kept.append(
            Checkpoint(
                checkpoint_id=checkpoint_id,
                parent_id=str(parent) if parent is not None else None,
                timestamp=str(item.checkpoint["ts"]),
                details=details,
                messages=_messages_in(item, messages_key) if keep else None,
            )
        )
    return kept


def _messages_in(checkpoint: CheckpointTuple | None, key: str) -> list[Any]:
    return list((checkpoint.checkpoint["channel_values"] if checkpoint else {}).get(key) or [])


def branch(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """The head (the newest checkpoint) and its ancestors, oldest first.

    Args:
        checkpoints: Every checkpoint of the thread, in any order.

    Returns:
        The checkpoints of the branch the thread is on; others (abandoned by time travel)
        are left out.
    """
    by_id = {c.checkpoint_id: c for c in checkpoints}
    chain: list[Checkpoint] = []
    current = by_id.get(max(by_id)) if by_id else None
    while current is not None and len(chain) < len(by_id):  # the bound guards a cycle
        chain.append(current)
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return chain[::-1]


def _messages(
    checkpoint: Checkpoint | None,
    thread_id: str,
    checkpoint_id: str | None,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
) -> Flow[list[Any]]:
    """The messages of a checkpoint, read again only when the listing did not keep them.

    That happens with a saver that does not list newest first, or a checkpoint that is gone.
    """
    if checkpoint is not None and checkpoint.messages is not None:
        return checkpoint.messages
    if checkpoint_id is None:
        return []
    read: CheckpointTuple | None = yield ReadHead(thread_id, saver, checkpoint_id)
    return _messages_in(read, messages_key)


def thread_stats(
    thread_id: str,
    *,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
    token_counter: TokenCounter,
) -> Flow[ThreadStats]:
    """`HistoryManager.thread_stats`: the thread's size now and its branch's compactions."""
    listed: list[Checkpoint] = yield ListCheckpoints(thread_id, saver, messages_key)
    chain = branch(listed)
    compactions = [
        (c.timestamp, c.details)
        for c in chain
        if c.details is not None and c.details.get("kind", "compaction") == "compaction"
    ]
    head = chain[-1] if chain else None
    head_id = head.checkpoint_id if head else None
    messages = yield from _messages(head, thread_id, head_id, saver, messages_key)

    def total(key: str) -> int:
        return sum(int(d.get(key) or 0) for _, d in compactions)

    return ThreadStats(
        thread_id=thread_id,
        messages=len(messages),
        tokens=token_counter.count(messages),
        compactions=len(compactions),
        tokens_saved=total("tokens_before") - total("tokens_after"),
        messages_summarized=total("messages_summarized"),
        summarizer_tokens=total("summarizer_input_tokens") + total("summarizer_output_tokens"),
        last_compaction_at=max((ts for ts, _ in compactions), default=None),
    )


def transcript(
    thread_id: str, *, saver: BaseCheckpointSaver[Any], messages_key: str
) -> Flow[Transcript]:
    """`HistoryManager.transcript`: every session the thread's branch held, and the live part."""
    listed: list[Checkpoint] = yield ListCheckpoints(thread_id, saver, messages_key)
    by_id = {c.checkpoint_id: c for c in listed}
    chain = branch(listed)
    compactions = []
    for update in chain:
        if update.details is None:
            continue
        parent_id = str(update.details["compacted_checkpoint_id"])
        before = yield from _messages(
            by_id.get(parent_id), thread_id, parent_id, saver, messages_key
        )
        after = yield from _messages(update, thread_id, update.checkpoint_id, saver, messages_key)
        kind = str(update.details.get("kind", "compaction"))
        compactions.append((update.checkpoint_id, parent_id, update.timestamp, before, after, kind))
    head = chain[-1] if chain else None
    head_id = head.checkpoint_id if head else None
    live = yield from _messages(head, thread_id, head_id, saver, messages_key)
    return build_transcript(thread_id, compactions, live)
