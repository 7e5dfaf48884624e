"""The archive: every message a thread ever held, across all its compactions.

A compaction never deletes anything: the checkpoint it compacted stays in the thread's
history. `Transcript` puts the pieces back together: for each compaction, the messages it
folded into the summary (read from the checkpoint it compacted) and the summary that
replaced them; then the live part of the thread. Each message appears once, in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage

from compacting_supervisor._cut import split_history
from compacting_supervisor._messages import is_summary, speaker, text_of

__all__ = ["ArchivedSession", "Transcript"]


@dataclass(frozen=True)
class ArchivedSession:
    """The messages one compaction folded into the running summary."""

    checkpoint_id: str
    """The checkpoint the compaction wrote."""
    compacted_checkpoint_id: str
    """The checkpoint it compacted, which still holds these messages verbatim."""
    timestamp: str
    """When the compaction happened (the new checkpoint's ``ts``)."""
    messages: list[BaseMessage]
    """The conversation messages it folded away, in their original order."""
    summary: str
    """The running summary that replaced them ("" for a replacement)."""
    kind: str = "compaction"
    """``"compaction"``, or ``"replacement"`` for a `replace_thread_history` that dropped
    or changed messages (the messages listed are the ones it removed)."""


@dataclass(frozen=True)
class Transcript:
    """A thread's complete history: archived sessions, then the live conversation."""

    thread_id: str
    """The thread."""
    system: list[BaseMessage] = field(default_factory=list)
    """The system messages at the top of the thread."""
    sessions: list[ArchivedSession] = field(default_factory=list)
    """One entry per compaction, oldest first."""
    live: list[BaseMessage] = field(default_factory=list)
    """The conversation as it is now, after the running summary."""

    @property
    def messages(self) -> list[BaseMessage]:
        """Every message the thread ever held, each once, in order (summaries excluded)."""
        archived = [m for session in self.sessions for m in session.messages]
        return [*self.system, *archived, *self.live]

    def to_markdown(self) -> str:
        """Render as Markdown: each archived session with its summary, then the live part."""
        lines = [f"# Transcript of thread `{self.thread_id}`", ""]
        total = len(self.messages)
        lines += [
            f"{total} messages, {len(self.sessions)} compaction(s). Every message the thread "
            "ever held appears once below.",
            "",
        ]
        if self.system:
            lines += ["## System", ""]
            lines += [_render(m) for m in self.system]
        for number, session in enumerate(self.sessions, start=1):
            lines += [
                f"## Archived session {number}",
                "",
                f"*Compacted at {session.timestamp} (checkpoint `{session.checkpoint_id}`, "
                f"the originals are in `{session.compacted_checkpoint_id}`).*",
                "",
            ]
            lines += [_render(m) for m in session.messages]
            if session.kind == "replacement":
                lines += ["*These messages were removed or changed by a history replacement.*", ""]
                continue
            lines += ["### The summary that replaced it", ""]
            lines += [f"> {line}" if line else ">" for line in session.summary.splitlines()]
            lines.append("")
        lines += ["## Live conversation", ""]
        lines += [_render(m) for m in self.live] or ["*(empty)*", ""]
        return "\n".join(lines).rstrip() + "\n"


def _without(messages: list[BaseMessage], kept: list[BaseMessage]) -> list[BaseMessage]:
    """``messages`` without ``kept``, each kept message matched to its latest occurrence."""
    start = len(messages) - len(kept)
    if start >= 0 and all(_same(a, b) for a, b in zip(messages[start:], kept, strict=True)):
        return messages[:start]  # a suffix, as after a run
    rest = list(messages)
    for message in reversed(kept):
        match = next((i for i in reversed(range(len(rest))) if _same(rest[i], message)), None)
        if match is not None:
            rest.pop(match)
    return rest


def _same(a: BaseMessage, b: BaseMessage) -> bool:
    if a.id is not None and b.id is not None:
        return a.id == b.id and a.content == b.content
    return type(a) is type(b) and a.content == b.content


def _text(message: BaseMessage) -> str:
    return text_of(message.content, mark_blocks=True)


def _render(message: BaseMessage) -> str:
    out = [f"**{speaker(message)}:** {_text(message)}".rstrip()]
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            args = json.dumps(call["args"], ensure_ascii=False, default=str)
            out.append(f"- calls `{call['name']}` with `{args}`")
    return "\n".join(out) + "\n"


def build_transcript(
    thread_id: str,
    compactions: list[tuple[str, str, str, list[BaseMessage], list[BaseMessage], str]],
    head: list[BaseMessage],
) -> Transcript:
    """Assemble a transcript from the thread's compactions and its head.

    Args:
        thread_id: The thread.
        compactions: ``(checkpoint_id, compacted_checkpoint_id, ts, messages before,
            messages after, kind)`` for each rewrite, oldest first.
        head: The thread's current messages.
    """
    sessions = []
    for checkpoint_id, compacted_id, ts, before, after, kind in compactions:
        conversation = split_history(before).conversation
        if kind == "compaction":
            # A compaction keeps part of the conversation verbatim (after a run a suffix;
            # inside a run the request and the newest messages): the rest was folded.
            folded = _without(conversation, split_history(after).conversation)
        else:
            # A replacement may change anything: archive what is no longer there.
            remaining = list(after)
            folded = []
            for message in [*split_history(before).system, *conversation]:
                match = next((i for i, m in enumerate(remaining) if _same(m, message)), None)
                if match is None:
                    folded.append(message)
                else:
                    remaining.pop(match)
            if not folded:
                continue
        summary = next((m for m in after if is_summary(m)), None)
        text = _text(summary) if summary is not None else ""
        sessions.append(
            ArchivedSession(
                checkpoint_id=checkpoint_id,
                compacted_checkpoint_id=compacted_id,
                timestamp=ts,
                messages=folded,
                summary=text.split("\n\n", 1)[-1] if summary is not None else "",
                kind=kind,
            )
        )
    parts = split_history(head)
    system, live = parts.system, parts.conversation
    return Transcript(thread_id=thread_id, system=system, sessions=sessions, live=live)
