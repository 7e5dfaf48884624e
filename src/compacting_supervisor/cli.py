"""The ``compacting-supervisor`` command: look into and compact a checkpoint store's threads.

::

    compacting-supervisor threads DB                threads, messages, tokens, compactions
    compacting-supervisor inspect DB --thread ID    current messages and compaction history
    compacting-supervisor compact DB --thread ID    compact now (offline, or with --model)
    compacting-supervisor export DB --thread ID     the whole transcript, as Markdown

``DB`` is the SQLite file a ``SqliteSaver`` writes to, or a ``postgresql://`` URL. Nothing is
ever created: ``threads``, ``inspect`` and ``export`` open the store read-only, and
``compact`` writes one new head checkpoint while holding the thread's lock (the same lock
every `CompactingSupervisor` run takes, across processes). ``--json`` prints JSON on stdout
instead of tables. Exit codes: 0 done (or nothing to do), 1 the work failed, 2 bad usage or
input (a missing file, not a checkpoint store, an unknown thread).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import shlex
import shutil
import sqlite3
import sys
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_to_dict
from pydantic import SecretStr

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._messages import is_summary, text_of
from compacting_supervisor._stores import (
    CheckpointStore,
    CompactionRecord,
    StoreError,
    StoreUnavailableError,
    ThreadHead,
    ThreadStats,
    open_store,
)
from compacting_supervisor.archive import Transcript
from compacting_supervisor.errors import (
    CompactionError,
    NoReductionError,
    SummarizationError,
    ThreadBusyError,
)
from compacting_supervisor.history_manager import (
    DEFAULT_MAX_SUMMARY_TOKENS,
    SUMMARY_PREFIX,
    HistoryManager,
)
from compacting_supervisor.locks import ThreadLockTimeoutError, locks_for
from compacting_supervisor.summarizers import ExtractiveSummarizer, resolve_chat_model
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["main"]

PROG = "compacting-supervisor"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
OFFLINE = "the offline extractive summariser"


class CliError(Exception):
    """Ends the command with ``message`` on stderr and a non-zero exit code.

    Attributes:
        code: The exit code: 2 for usage or input errors, 1 for failures during the work.
    """

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit code: 0 done, 1 the work failed, 2 bad usage or input.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.run(args)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except StoreError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StoreUnavailableError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except _database_errors() as exc:
        return _fail(f"database error: {type(exc).__name__}: {exc}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `... | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _database_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


# --------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Look into and compact the threads of a LangGraph checkpoint store "
        "(a SQLite file or a Postgres URL).",
        epilog="Exit codes: 0 done (or nothing to do), 1 the work failed, 2 bad usage or "
        "input. Run '%(prog)s COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "db",
        metavar="DB",
        help="the checkpoint store: the SQLite file your SqliteSaver writes to, or a "
        "postgresql:// (or postgres://) URL for a PostgresSaver",
    )
    common.add_argument(
        "--json", action="store_true", help="print JSON on stdout instead of a readable table"
    )
    common.add_argument(
        "--messages-key",
        default="messages",
        metavar="CHANNEL",
        help="the state channel that holds the conversation (default: %(default)s)",
    )
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )
    thread = argparse.ArgumentParser(add_help=False)
    thread.add_argument(
        "--thread", "-t", required=True, metavar="ID", help="the thread id (see: threads DB)"
    )

    def add(name: str, run: Any, summary: str, parents: list[argparse.ArgumentParser]) -> Any:
        sub = commands.add_parser(name, parents=parents, help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    threads = add(
        "threads",
        _cmd_threads,
        "List the threads, most recently updated first: messages and tokens now, "
        "compactions so far, last update (UTC).",
        [common],
    )
    threads.add_argument(
        "--limit", type=_count, metavar="N", help="only the N most recently updated threads"
    )

    inspect = add(
        "inspect",
        _cmd_inspect,
        "Show a thread's current messages with their token counts, and its compaction "
        "history from the checkpoint metadata.",
        [common, thread],
    )
    inspect.add_argument(
        "--last", type=_count, metavar="N", help="list only the last N messages (default: all)"
    )

    compact = add(
        "compact",
        _cmd_compact,
        "Compact a thread now: summarise its oldest messages and write the shorter history "
        "as a new head checkpoint (earlier checkpoints stay, nothing is lost).",
        [common, thread],
    )
    compact.add_argument(
        "--model",
        metavar="PROVIDER:MODEL",
        help="summarise with this chat model, e.g. openai:gpt-4o-mini (needs OPENAI_API_KEY "
        "or --base-url); other providers need langchain and the provider's package "
        "(default: the offline extractive summariser, no key or network)",
    )
    compact.add_argument(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible server for --model (vLLM, Ollama, LM Studio ...); "
        "OPENAI_API_KEY is optional then",
    )
    compact.add_argument(
        "--ratio",
        type=_ratio,
        default=0.5,
        metavar="R",
        help="fraction of the conversation to summarise, between 0 and 1: 0.5 the older "
        "half, 0.8 all but the newest fifth (default: %(default)s)",
    )
    compact.add_argument(
        "--max-summary-tokens",
        type=_count,
        metavar="N",
        help="target length of the running summary (default: a quarter of the thread's "
        f"tokens, at most {DEFAULT_MAX_SUMMARY_TOKENS:,}, and never below the current "
        "summary's size)",
    )
    compact.add_argument(
        "--timeout",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for one summariser call (default: %(default)s)",
    )
    compact.add_argument(
        "--retries",
        type=_count_or_zero,
        default=2,
        metavar="N",
        help="retries of a failed summariser call (default: %(default)s)",
    )
    compact.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds to wait while a run or compaction of the thread (in any process) "
        "holds it (default: %(default)s)",
    )
    compact.add_argument(
        "--dry-run",
        action="store_true",
        help="summarise and report what would change, but write nothing",
    )

    export = add(
        "export",
        _cmd_export,
        "Export everything the thread ever held, across all compactions: each archived "
        "session with the summary that replaced it, then the live conversation (Markdown, "
        "or JSON with --json, whose messages load back with messages_from_dict).",
        [common, thread],
    )
    export.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE instead of stdout ('-': stdout)"
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("compacting-supervisor")
    except PackageNotFoundError:
        return "unknown"


def _count(text: str) -> int:
    return _integer(text, minimum=1)


def _count_or_zero(text: str) -> int:
    return _integer(text, minimum=0)


def _integer(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        kind = "a positive integer" if minimum else "a non-negative integer"
        msg = f"must be {kind}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"must be a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        msg = f"must be between 0 and 1 (exclusive), e.g. 0.5 for the older half, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


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


def _cmd_compact(args: argparse.Namespace) -> int:
    summariser, label = _summariser(args.model, args.base_url)
    counter = TokenCounter()
    with (
        open_store(args.db, read_only=args.dry_run) as store,
        _Progress(args.progress) as progress,
    ):
        _, head, messages = _open_thread(store, args.thread, args.messages_key)
        tokens = _tokens(messages, counter)
        manager = HistoryManager(
            memory_saver=store.saver,
            model=summariser,
            summary_timeout=args.timeout,
            summary_retries=args.retries,
            # Never below the running summary's own size: a manual compact must not
            # squeeze what earlier compactions kept.
            max_summary_tokens=args.max_summary_tokens
            or max(
                min(DEFAULT_MAX_SUMMARY_TOKENS, max(32, tokens // 4)),
                _summary_tokens(messages, counter),
            ),
            token_counter=counter,
            messages_key=args.messages_key,
        )
        progress.update(f"summarising with {label} ...", force=True)
        try:
            if args.dry_run:
                outcome = _dry_run(manager, args.thread, head, messages, args.ratio)
            else:
                with locks_for(store.saver).hold(args.thread, timeout=args.lock_timeout):
                    result = manager.compact_thread(
                        head_config(args.thread), compaction_ratio=args.ratio
                    )
                outcome = dataclasses.asdict(result) if result is not None else None
        except ThreadLockTimeoutError as exc:
            msg = (
                f"thread {args.thread!r} is in use by another run or compaction (waited "
                f"{exc.timeout:g} s); nothing was written. Try again later or raise "
                "--lock-timeout."
            )
            raise CliError(msg, EXIT_FAILURE) from exc
        except NoReductionError as exc:
            reason = (
                f"the summary would not shrink it ({exc.tokens_before:,} -> "
                f"{exc.tokens_after:,} tokens). Raise --ratio or lower --max-summary-tokens."
            )
            outcome = _skipped(args.thread, reason, tokens, len(messages))
        except SummarizationError as exc:
            msg = f"the summariser ({label}) failed: {exc} The history is unchanged."
            raise CliError(msg, EXIT_FAILURE) from exc
        except ThreadBusyError as exc:
            msg = (
                f"{exc} It is paused on an interrupt or stopped mid-step: resume or finish the "
                "run, then compact. The history is unchanged."
            )
            raise CliError(msg, EXIT_FAILURE) from exc
        except CompactionError as exc:  # a run moved the thread on, or it holds non-messages
            raise CliError(f"{exc} The history is unchanged.", EXIT_FAILURE) from exc
    if outcome is None:
        reason = (
            f"nothing to compact: there is no safe place to cut its {len(messages)} "
            "message(s) (the latest user message and what follows it always stay)."
        )
        outcome = _skipped(args.thread, reason, tokens, len(messages))
    outcome.update(dry_run=args.dry_run, summariser=label, database=store.name)
    if args.json:
        _print_json(outcome)
    else:
        print(_compact_report(outcome))
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


# --------------------------------------------------------------------------- compaction


def _summariser(model: str | None, base_url: str | None) -> tuple[Any, str]:
    """The summariser ``--model`` names and how to call it in messages."""
    if model is None:
        if base_url:
            msg = "--base-url needs a model: add --model openai:<model>."
            raise CliError(msg)
        # Chosen explicitly, so the "an LLM summarises better" hint stays quiet.
        return ExtractiveSummarizer(), OFFLINE
    provider, _, name = model.partition(":")
    if not provider or not name:
        msg = f"--model must be PROVIDER:MODEL, e.g. openai:gpt-4o-mini, got {model!r}."
        raise CliError(msg)
    label = f"{model} at {base_url}" if base_url else model
    try:
        chat: BaseChatModel
        if provider == "openai":
            from langchain_openai import ChatOpenAI

            if base_url:  # local servers usually ignore the key, but the client wants one
                key = SecretStr(os.environ.get("OPENAI_API_KEY", "not-needed"))
                chat = ChatOpenAI(model=name, base_url=base_url, api_key=key)
            else:
                chat = ChatOpenAI(model=name)
        elif base_url:
            from langchain.chat_models import init_chat_model

            chat = init_chat_model(model, base_url=base_url)
        else:
            chat = resolve_chat_model(model)
    except Exception as exc:  # a missing key or package: the provider's own message
        hint = " Set OPENAI_API_KEY, or pass --base-url." if provider == "openai" else ""
        msg = f"cannot set up the model {model!r}: {exc}{hint}"
        raise CliError(msg) from exc
    return chat, label


def _summary_tokens(messages: list[BaseMessage], counter: TokenCounter) -> int:
    """Tokens of the running summary at the top of ``messages`` (0 if there is none)."""
    return next((counter.count_text(m.text) for m in messages if is_summary(m)), 0)


def _dry_run(
    manager: HistoryManager, thread_id: str, head: ThreadHead, messages: list[Any], ratio: float
) -> dict[str, Any] | None:
    started = time.perf_counter()
    compaction = manager.compact_messages(messages, compaction_ratio=ratio)
    if compaction is None:
        return None
    before = manager.token_counter.count(messages)
    after = manager.token_counter.count(compaction.messages)
    if after >= before:  # what compact_thread refuses to write
        msg = "The summary would not shrink the thread."
        raise NoReductionError(msg, thread_id=thread_id, tokens_before=before, tokens_after=after)
    return {
        "thread_id": thread_id,
        "status": "dry_run",
        "tokens_before": before,
        "tokens_after": after,
        "messages_before": len(messages),
        "messages_after": len(compaction.messages),
        "messages_summarized": len(compaction.summarized),
        "previous_checkpoint_id": head.checkpoint_id,
        "checkpoint_id": None,
        "summary": compaction.summary,
        "duration": time.perf_counter() - started,
    }


def _skipped(thread_id: str, reason: str, tokens: int, count: int) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "status": "skipped",
        "tokens_before": tokens,
        "tokens_after": tokens,
        "messages_before": count,
        "messages_after": count,
        "messages_summarized": 0,
        "checkpoint_id": None,
        "error": reason,
    }


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


# --------------------------------------------------------------------------- output


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
