"""What the examples share: the model options, argparse types and terminal output helpers.

The examples import it as a sibling module (``python examples/<name>.py`` puts this
directory first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI
from openai import OpenAIError
from pydantic import SecretStr

SCRIPTED = "scripted"
DEFAULT_OPENAI_MODEL = "openai:gpt-4o-mini"


def add_model_options(parser: argparse.ArgumentParser, *, offline: str, real: str) -> None:
    """Add ``--model`` and ``--base-url`` to ``parser``.

    Args:
        parser: The example's parser.
        offline: What ``--model scripted`` runs ("the offline scripted agent").
        real: What a real model does ("answers and summarises").
    """
    default_model = DEFAULT_OPENAI_MODEL if os.environ.get("OPENAI_API_KEY") else SCRIPTED
    parser.add_argument(
        "--model",
        default=default_model,
        help=(
            f"'{SCRIPTED}' for {offline} and the embedded extractive summariser, or "
            f"'openai:<model>' (e.g. openai:gpt-4o-mini) for a real model that {real}. "
            "Default: %(default)s (openai:gpt-4o-mini when OPENAI_API_KEY is set, else "
            "scripted)."
        ),
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=(
            "Base URL of an OpenAI-compatible server (e.g. http://localhost:11434/v1 for "
            "Ollama) used by the agent and the summariser; needs --model openai:<model>."
        ),
    )


def check_model_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Normalise ``args.model`` to ``scripted`` or ``openai:<model>``, or exit (usage error)."""
    if args.model != SCRIPTED and ":" not in args.model:
        args.model = f"openai:{args.model}"
    if args.model != SCRIPTED and not args.model.startswith("openai:"):
        parser.error(
            f"--model {args.model!r}: this example runs '{SCRIPTED}' or 'openai:<model>' "
            "(any OpenAI-compatible server with --base-url)."
        )
    if args.base_url and args.model == SCRIPTED:
        parser.error("--base-url needs a real model: add --model openai:<model>.")


def openai_chat(model: str, base_url: str | None, **kwargs: Any) -> ChatOpenAI:
    """A ``ChatOpenAI`` for ``openai:<model>``, on ``base_url`` when one is given."""
    name = model.removeprefix("openai:")
    if base_url is None:
        return ChatOpenAI(model=name, **kwargs)
    # Local OpenAI-compatible servers usually ignore the key, but the client wants one.
    api_key = SecretStr(os.environ.get("OPENAI_API_KEY", "not-needed"))
    return ChatOpenAI(model=name, base_url=base_url, api_key=api_key, **kwargs)


def positive_int(value: str) -> int:
    """An argparse type: an integer above zero."""
    number = int(value)
    if number <= 0:
        msg = f"must be a positive integer, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return number


def ratio(value: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    number = float(value)
    if not 0 < number < 1:
        msg = f"must be between 0 and 1 (exclusive), got {value}"
        raise argparse.ArgumentTypeError(msg)
    return number


@contextmanager
def sqlite_path(db: str | None, name: str) -> Iterator[Path]:
    """``--db`` as a path, or ``name`` in a temporary directory removed afterwards."""
    if db is not None:
        yield Path(db)
        return
    with tempfile.TemporaryDirectory(prefix="compacting-supervisor-") as tmp:
        yield Path(tmp) / name


def indent(text: str, prefix: str = "      ", width: int = 92) -> str:
    """``text`` with every line indented, long lines wrapped for a terminal."""
    lines = []
    for line in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(line, width=width, subsequent_indent="  ") or [""])
    return textwrap.indent("\n".join(lines), prefix)


def plural(count: int, noun: str) -> str:
    """``"1 message"``, ``"2 messages"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def add_demo_options(parser: argparse.ArgumentParser, *, thread: str, token_limit: int) -> None:
    """Add the options of a scripted demo on a SQLite file.

    ``--db``, ``--thread``, ``--token-limit``, ``--ratio`` and ``--verbose``.

    Args:
        parser: The example's parser.
        thread: The prefix of new thread ids (``hr`` gives ``hr-<time>-<random>``).
        token_limit: ``--token-limit``'s default, small so the demo compacts several times.
    """
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=(
            "SQLite file to keep the checkpoints in (created if missing); inspect it "
            "afterwards with `compacting-supervisor threads PATH`. Default: a file in a "
            "temporary directory, deleted when the run ends."
        ),
    )
    parser.add_argument(
        "--thread",
        metavar="ID",
        help=(
            f"Thread id to use. Default: a new one per run ({thread}-<time>-<random>); pass "
            "an earlier run's id with the same --db to continue that thread."
        ),
    )
    parser.add_argument(
        "--token-limit",
        type=positive_int,
        default=token_limit,
        metavar="N",
        help="Compact the thread after a turn that leaves more than N tokens in it. "
        "Default: %(default)s (small, so the demo compacts several times).",
    )
    parser.add_argument(
        "--ratio",
        type=ratio,
        default=0.5,
        metavar="R",
        help="Fraction of the conversation each compaction summarises, in (0, 1). "
        "Default: %(default)s (the older half).",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Log at INFO level (compactions, skipped attempts) instead of WARNING.",
    )
    parser.set_defaults(thread_prefix=thread)


def parse_demo_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse and check a demo's command line; a new thread id when none is given."""
    args = parser.parse_args(argv)
    check_model_options(parser, args)
    if args.thread is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        args.thread = f"{args.thread_prefix}-{stamp}-{uuid.uuid4().hex[:6]}"
    return args


def run_demo(
    args: argparse.Namespace, run: Callable[[argparse.Namespace, Path], int], db_name: str
) -> int:
    """Run ``run(args, db_path)`` with logging set up; a bad file or model is a short error.

    Returns:
        The process exit code: ``run``'s, 2 for an unusable ``--db``, 1 for a model failure.
    """
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        # Replies stream without a newline: start each log record on a line of its own.
        format="\n%(levelname)s %(name)s: %(message)s",
    )
    with sqlite_path(args.db, db_name) as db_path:
        try:
            return run(args, db_path)
        except sqlite3.Error as exc:
            print(
                f"error: cannot use {db_path} as a SQLite checkpoint file ({exc}); pass "
                "--db with a new or existing SQLite file in a writable directory.",
                file=sys.stderr,
            )
            return 2
        except OpenAIError as exc:  # no key, no network, server down ...
            print(
                f"\nerror: the {args.model} model failed: {type(exc).__name__}: {exc}\n"
                "Check OPENAI_API_KEY / --base-url, or run offline with --model scripted.",
                file=sys.stderr,
            )
            return 1
