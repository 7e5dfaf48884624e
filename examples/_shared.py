"""What the examples share: the model options, argparse types and terminal output helpers.

The examples import it as a sibling module (``python examples/<name>.py`` puts this
directory first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI
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
