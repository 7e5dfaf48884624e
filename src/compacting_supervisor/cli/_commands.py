"""The reading commands, ``threads``, ``inspect`` and ``export``, and what every command shares.

That is: finding a thread and its messages in the store (a usage error, with the closest
thread ids, when it is not there), counting their tokens, and how a command ends:
`CliError` and the exit codes. The writing command, ``compact``, is `_compact`.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import shlex
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor.cli._output import (
    _fit_last_column,
    _history_table,
    _message_json,
    _number,
    _print_json,
    _Progress,
    _table,
    _transcript_json,
    _when,
)
from compacting_supervisor.cli._stores import (
    CheckpointStore,
    ThreadHead,
    ThreadStats,
    open_store,
)
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.summarizers import ExtractiveSummarizer
from compacting_supervisor.token_counter import TokenCounter

PROG = "compacting-supervisor"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """Ends the command with ``message`` on stderr and a non-zero exit code.

    Attributes:
        code: The exit code: 2 for usage or input errors, 1 for failures during the work.
    """

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _database_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


# --------------------------------------------------------------------------- commands


def _cmd_threads(args: argparse.Namespace) -> int:
    counter = TokenCounter()
    rows: list[dict[str, Any]] = []
    with open_store(args.db) as store, _Progress(args.progress) as progress:
        stats = store.thread_stats()[: args.limit]
        for number, thread in enumerate(stats, start=1):
            progress.update(f"reading thread {number}/{len(stats)}")
            rows.append(_thread_row(store, thread, args.messages_key, counter))
    if args.json:
        _print_json({"database": store.name, "encoding": counter.encoding_name, "threads": rows})
        return EXIT_OK
    if not rows:
        print(f"No threads in {store.name}.")
        return EXIT_OK
    table = [
        [
            row["thread_id"],
            _number(row["messages"]),
            _number(row["tokens"]),
            _number(row["compactions"]),
            _when(row["updated"]),
        ]
        for row in rows
    ]
    headers = ["THREAD", "MESSAGES", "TOKENS", "COMPACTIONS", "UPDATED (UTC)"]
    print("\n".join(_table(headers, table, right={1, 2, 3})))
    for row in rows:
        if row.get("error"):
            print(f"{PROG}: warning: thread {row['thread_id']!r}: {row['error']}", file=sys.stderr)
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    counter = TokenCounter()
    with open_store(args.db) as store:
        stats, head, messages = _open_thread(store, args.thread, args.messages_key)
        history = store.compactions(args.thread)
    rows = [_message_json(i, m, counter) for i, m in enumerate(messages)]
    tokens = _tokens(messages, counter)
    if args.json:
        _print_json(
            {
                "thread_id": args.thread,
                "checkpoint_id": head.checkpoint_id,
                "updated": head.timestamp,
                "messages_key": args.messages_key,
                "message_count": len(rows),
                "tokens": tokens,
                "encoding": counter.encoding_name,
                "checkpoints": stats.checkpoints,
                "compactions": stats.compactions,
                "replacements": stats.replacements,
                "messages": rows,
                "history": [dataclasses.asdict(record) for record in history],
            }
        )
        return EXIT_OK
    print(f"Thread       {args.thread}")
    print(f"Head         {head.checkpoint_id}  (updated {_when(head.timestamp)} UTC)")
    print(f"Messages     {len(rows):,}, {tokens:,} tokens ({counter.encoding_name})")
    print(f"Compactions  {stats.compactions:,}  ({stats.checkpoints:,} checkpoints)")
    print()
    shown = rows[-args.last :] if args.last else rows
    if len(shown) < len(rows):
        print(f"Last {len(shown)} of {len(rows)} messages:")
    table = [
        [str(m["index"]), m["role"], m["name"] or "", _number(m["tokens"]), m["preview"]]
        for m in shown
    ]
    headers = ["#", "ROLE", "NAME", "TOKENS", "PREVIEW"]
    print("\n".join(_table(headers, _fit_last_column(headers, table), right={0, 3})))
    print()
    print(_history_table(history))
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    with open_store(args.db) as store, _Progress(args.progress) as progress:
        stats, _, _ = _open_thread(store, args.thread, args.messages_key)
        progress.update(
            f"reading the {stats.compactions + stats.replacements} compaction(s) of thread "
            f"{args.thread!r} ...",
            force=True,
        )
        manager = HistoryManager(
            memory_saver=store.saver,
            model=ExtractiveSummarizer(),  # never called: a transcript only reads
            messages_key=args.messages_key,
        )
        transcript = manager.transcript(head_config(args.thread))
    if args.json:
        text = json.dumps(_transcript_json(transcript), indent=2, ensure_ascii=False, default=str)
        text += "\n"
    else:
        text = transcript.to_markdown()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_FAILURE) from exc
    print(
        f"Wrote the transcript of thread {args.thread!r} ({len(transcript.messages)} messages, "
        f"{len(transcript.sessions)} archived session(s)) to {args.output}.",
        file=sys.stderr,
    )
    return EXIT_OK


# --------------------------------------------------------------------------- reading threads


def _open_thread(
    store: CheckpointStore, thread_id: str, key: str
) -> tuple[ThreadStats, ThreadHead, list[Any]]:
    """The thread's statistics, head and messages; a usage error if it or they are missing."""
    found = store.thread_stats(thread_id)
    head = store.head(thread_id, key) if found else None
    if not found or head is None:
        close = difflib.get_close_matches(thread_id, store.thread_ids(), n=3)
        names = [repr(name) for name in close]
        either = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)
        hint = f" Did you mean {either}?" if names else ""
        msg = (
            f"no thread {thread_id!r} in {store.name}.{hint} "
            f"List the threads with: {PROG} threads {shlex.quote(store.name)}"
        )
        raise CliError(msg)
    return found[0], head, _messages(head, thread_id, key)


def _messages(head: ThreadHead, thread_id: str, key: str) -> list[Any]:
    """The head's messages; a usage error when the thread has no such channel."""
    if head.messages is None and head.channels and key not in head.channels:
        msg = (
            f"thread {thread_id!r} has no {key!r} channel (its channels: "
            f"{', '.join(head.channels)}): pass --messages-key CHANNEL."
        )
        raise CliError(msg)
    if head.messages is not None and not isinstance(head.messages, list):
        kind = type(head.messages).__name__
        msg = f"the {key!r} channel of thread {thread_id!r} holds a {kind}, not a list."
        raise CliError(msg)
    return list(head.messages or [])


def _thread_row(
    store: CheckpointStore, thread: ThreadStats, key: str, counter: TokenCounter
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "thread_id": thread.thread_id,
        "messages": None,
        "tokens": None,
        "compactions": thread.compactions,
        "replacements": thread.replacements,
        "checkpoints": thread.checkpoints,
        "checkpoint_id": thread.head_checkpoint_id,
        "updated": None,
    }
    try:
        head = store.head(thread.thread_id, key)
    except _database_errors():
        raise
    except Exception as exc:  # one undecodable thread must not hide the others
        return {**row, "error": f"cannot read its head ({type(exc).__name__}: {exc})"}
    if head is None:  # deleted since it was listed
        return {**row, "error": "it has no checkpoint any more"}
    row.update(checkpoint_id=head.checkpoint_id, updated=head.timestamp)
    try:
        messages = _messages(head, thread.thread_id, key)
    except CliError as exc:  # no such channel (another graph's thread): the row shows "-"
        return row if head.messages is None else {**row, "error": str(exc)}
    return {**row, "messages": len(messages), "tokens": _tokens(messages, counter)}


def _tokens(messages: Sequence[Any], counter: TokenCounter) -> int:
    return counter.count([m for m in messages if isinstance(m, BaseMessage)])
