"""What the commands print: tables, JSON, the progress line, message previews, numbers, times.

Plain functions of the data the commands read; nothing here opens a store.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, messages_to_dict

from compacting_supervisor._messages import SUMMARY_PREFIX, is_summary, text_of
from compacting_supervisor.archive import Transcript
from compacting_supervisor.cli._stores import CompactionRecord
from compacting_supervisor.token_counter import TokenCounter


def _compact_report(outcome: dict[str, Any]) -> str:
    thread = outcome["thread_id"]
    if outcome["status"] == "skipped":
        verb = "would not be" if outcome["dry_run"] else "was not"
        return f"Thread {thread!r} {verb} compacted: {outcome['error']}"
    before, after = outcome["tokens_before"], outcome["tokens_after"]
    saved = f"{before - after:,} saved, {100 * (before - after) // max(before, 1)}%"
    lines = [
        f"{'Dry run: would compact' if outcome['dry_run'] else 'Compacted'} thread {thread!r} "
        f"with {outcome['summariser']}.",
        f"  tokens      {before:,} -> {after:,} ({saved})",
        f"  messages    {outcome['messages_before']:,} -> {outcome['messages_after']:,} "
        f"({outcome['messages_summarized']:,} summarised)",
    ]
    summary = " ".join(str(outcome["summary"]).split())
    lines.append(f"  summary     {_shorten(summary, _terminal_width() - 14)}")
    if outcome["dry_run"]:
        lines.append("  Nothing was written.")
    else:
        lines += [
            f"  checkpoint  {outcome['checkpoint_id']} (new head)",
            f"  previous    {outcome['previous_checkpoint_id']} (kept in the history)",
        ]
    return "\n".join(lines)


def _history_table(history: Sequence[CompactionRecord]) -> str:
    if not history:
        return "Compaction history: none yet."
    rows = [
        [
            _when(h.timestamp),
            h.checkpoint_id,
            h.kind,
            f"{_number(h.tokens_before)} -> {_number(h.tokens_after)}",
            f"{_number(h.messages_before)} -> {_number(h.messages_after)}",
            _number(h.messages_summarized),
            h.trigger or "-",
        ]
        for h in history
    ]
    headers = ["WHEN (UTC)", "CHECKPOINT", "KIND", "TOKENS", "MESSAGES", "SUMMARISED", "TRIGGER"]
    return "\n".join(["Compaction history (oldest first):", *_table(headers, rows, right={5})])


class _Progress:
    """One updating status line on stderr, when it is a terminal or ``--progress`` asks."""

    def __init__(self, enabled: bool | None) -> None:
        self._tty = sys.stderr.isatty()
        self.enabled = self._tty if enabled is None else enabled
        self._every = 0.1 if self._tty else 1.0
        self._last = -self._every
        self._shown = False

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._shown and self._tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def update(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self._every):
            return
        self._last = now
        sys.stderr.write(f"\r\033[K{text}" if self._tty else f"{text}\n")
        sys.stderr.flush()
        self._shown = True


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()
) -> list[str]:
    """Aligned plain-text columns, two spaces apart; ``right`` holds right-aligned columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _fit_last_column(headers: Sequence[str], rows: list[list[str]]) -> list[list[str]]:
    """Cut the last column so each line fits the terminal width."""
    if not rows:
        return rows
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    room = max(20, _terminal_width() - sum(widths) - 2 * len(widths))
    return [[*r[:-1], _shorten(r[-1], room)] for r in rows]


def _terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _when(ts: Any) -> str:
    """A checkpoint timestamp as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    try:
        moment = datetime.fromisoformat(str(ts))
    except ValueError:
        return "-" if ts is None else str(ts)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _role(message: Any) -> str:
    if not isinstance(message, BaseMessage):
        return f"({type(message).__name__})"
    if is_summary(message):
        return "summary"
    role = getattr(message, "role", None) if message.type == "chat" else None
    return str(role or {"human": "user", "ai": "assistant"}.get(message.type, message.type))


def _text(message: Any) -> str:
    if not isinstance(message, BaseMessage):
        return repr(message)
    text = text_of(message.content, mark_blocks=True)
    return text.removeprefix(SUMMARY_PREFIX) if is_summary(message) else text


def _preview(message: Any) -> str:
    text = _text(message)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(
            f"{c['name']}({json.dumps(c['args'], ensure_ascii=False, default=str)})"
            for c in message.tool_calls
        )
        text = f"{text} -> {calls}" if text.strip() else f"-> {calls}"
    return " ".join(text.split())


def _message_json(index: int, message: Any, counter: TokenCounter) -> dict[str, Any]:
    is_message = isinstance(message, BaseMessage)
    data: dict[str, Any] = {
        "index": index,
        "id": message.id if is_message else None,
        "type": message.type if is_message else type(message).__name__,
        "role": _role(message),
        "name": message.name if is_message else None,
        "tokens": counter.count_message(message) if is_message else None,
        "text": _text(message),
        "preview": _preview(message),
    }
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [
            {"name": c["name"], "args": c["args"], "id": c["id"]} for c in message.tool_calls
        ]
    return data


def _transcript_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "thread_id": transcript.thread_id,
        "message_count": len(transcript.messages),
        "compactions": len(transcript.sessions),
        "system": messages_to_dict(transcript.system),
        "sessions": [
            {
                "checkpoint_id": s.checkpoint_id,
                "compacted_checkpoint_id": s.compacted_checkpoint_id,
                "timestamp": s.timestamp,
                "kind": s.kind,
                "summary": s.summary,
                "messages": messages_to_dict(s.messages),
            }
            for s in transcript.sessions
        ],
        "live": messages_to_dict(transcript.live),
    }
