"""The entry point: parse the arguments, run the command, turn its errors into exit codes.

The argument parser lives here with the checks of its values; the commands live in
`_commands` (reading) and `_compact` (writing), their output in `_output`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from compacting_supervisor.cli._commands import (
    EXIT_FAILURE,
    EXIT_USAGE,
    PROG,
    CliError,
    _cmd_export,
    _cmd_inspect,
    _cmd_threads,
    _database_errors,
)
from compacting_supervisor.cli._compact import _cmd_compact
from compacting_supervisor.cli._masking import mask_secrets
from compacting_supervisor.cli._stores import StoreError, StoreUnavailableError
from compacting_supervisor.history_manager import DEFAULT_MAX_SUMMARY_TOKENS

__all__ = ["main"]


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
    db = str(getattr(args, "db", ""))
    try:
        code: int = args.run(args)
    except CliError as exc:
        return _fail(str(exc), exc.code, db)
    except StoreError as exc:
        return _fail(str(exc), EXIT_USAGE, db)
    except StoreUnavailableError as exc:
        return _fail(str(exc), EXIT_FAILURE, db)
    except _database_errors() as exc:
        return _fail(f"database error: {type(exc).__name__}: {exc}", EXIT_FAILURE, db)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, db)
    except BrokenPipeError:  # `... | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _fail(message: str, code: int, db: str) -> int:
    """Print ``message`` (any password ``db`` holds masked) and return ``code``."""
    print(f"{PROG}: error: {mask_secrets(message, db)}", file=sys.stderr)
    return code


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
        default=0.8,
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
