"""Reading a thread's compaction history back: its totals and its full transcript.

Every compaction this package writes is a checkpoint with ``source="update"`` whose metadata
names the checkpoint it compacted, so both reads list those checkpoints and need nothing
stored elsewhere. Flows, like the rewrite: the saver I/O are ops.
"""

from __future__ import annotations

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

__all__ = ["ListCompactions", "thread_stats", "transcript"]


@dataclass(frozen=True)
class ListCompactions:
    """List a thread's ``source="update"`` checkpoints (compactions among them)."""

    thread_id: str
    saver: BaseCheckpointSaver[Any]

    def run(self) -> list[CheckpointTuple]:
        """List them (sync)."""
        return list(self.saver.list(head_config(self.thread_id), filter={"source": "update"}))

    async def arun(self) -> list[CheckpointTuple]:
        """List them (async)."""
        cfg = head_config(self.thread_id)
        return [t async for t in self.saver.alist(cfg, filter={"source": "update"})]


def _messages_in(checkpoint: CheckpointTuple | None, key: str) -> list[Any]:
    return list((checkpoint.checkpoint["channel_values"] if checkpoint else {}).get(key) or [])


def thread_stats(
    thread_id: str,
    *,
    saver: BaseCheckpointSaver[Any],
    messages_key: str,
    token_counter: TokenCounter,
) -> Flow[ThreadStats]:
    """`HistoryManager.thread_stats`: the thread's size now and its compactions' totals."""
    updates: list[CheckpointTuple] = yield ListCompactions(thread_id, saver)
    compactions = [
        (update.checkpoint["ts"], details)
        for update in updates
        if isinstance(details := update.metadata.get(METADATA_KEY), dict)
        and details.get("kind", "compaction") == "compaction"
        and "compacted_checkpoint_id" in details
    ]
    head: CheckpointTuple | None = yield ReadHead(thread_id, saver)
    messages = _messages_in(head, messages_key)

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
    """`HistoryManager.transcript`: every session the thread held, and the live part."""
    updates: list[CheckpointTuple] = yield ListCompactions(thread_id, saver)
    compactions = []
    for update in sorted(updates, key=lambda t: t.checkpoint["id"]):
        details = update.metadata.get(METADATA_KEY)
        if not isinstance(details, dict) or "compacted_checkpoint_id" not in details:
            continue  # an ordinary update_state, not a compaction
        parent_id = str(details["compacted_checkpoint_id"])
        parent: CheckpointTuple | None = yield ReadHead(thread_id, saver, parent_id)
        compactions.append(
            (
                update.checkpoint["id"],
                parent_id,
                update.checkpoint["ts"],
                _messages_in(parent, messages_key),
                list(update.checkpoint["channel_values"].get(messages_key) or []),
                str(details.get("kind", "compaction")),
            )
        )
    head: CheckpointTuple | None = yield ReadHead(thread_id, saver)
    return build_transcript(thread_id, compactions, _messages_in(head, messages_key))
