"""The summariser's whole request against the message JSON of what it summarises.

    python -m benchmarks.prompt_ratio [--sizes 5 20 200] [--json out.json]

For a compaction of N evicted messages, ``ChatModelSummarizer.prompt_messages`` builds
the request (the default prompt, the existing summary and the tagged transcript); this
compares it with the JSON a user would compare it with: LangChain's own serialisation,
``json.dumps(messages_to_dict(messages))`` (``model_dump`` of each message under its
``type``), and the slightly smaller ``json.dumps([m.model_dump() for m in messages])``.
Tokens are the package's ``TokenCounter`` (cl100k_base; the request counted as the
messages it is, per-message overhead included), characters the request's text against
the JSON's.

The evicted messages are windows of the benchmark conversation (``benchmarks.conversation``:
user messages, 80-word replies, every third turn a tool call and its ~1,500-character JSON
result), one window starting at each of the first 30 turns, so every figure is the
min / median / max over 30 windows. Two sources:

- ``bare``: the messages as `benchmarks.conversation.history` builds them (short ids, no
  provider metadata): the smallest JSON, so the strictest comparison;
- ``thread``: the same conversation as a ``create_agent`` thread stores it, run on the
  benchmark's fake models (ids LangChain assigns, still no provider metadata; a real
  provider's ``response_metadata`` and ``usage_metadata`` would make the JSON larger).

``first`` is a first compaction (no summary yet); ``running`` one with a running summary of
the fake summariser's size (~320 tokens) that the JSON side holds as a message too.
The goal (issue 13): the request at most 0.65x the JSON at 5, 20 and 200 messages.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import BaseMessage, HumanMessage, messages_to_dict

from benchmarks.conversation import history, script
from compacting_supervisor import TokenCounter
from compacting_supervisor.summarizers import DEFAULT_SUMMARY_PROMPT, ChatModelSummarizer
from compacting_supervisor.testing import ScriptedChatModel

__all__ = ["GOAL", "SIZES", "measure", "render"]

SIZES = (5, 20, 200)
"""Evicted messages per compaction, as the issue asks."""

GOAL = 0.65
"""The request's tokens at most this share of the message JSON's."""

WINDOWS = 30
"""Windows per size: one starting at each of the first this many turns."""

MAX_SUMMARY_TOKENS = 750
"""The summary's cap the prompt is built for (the default at a 3,000-token trigger)."""

_PREVIOUS = (
    "Summary: "
    + " ".join(f"[H{n:03d}] order PO-{10000 + n} confirmed, invoice noted;" for n in range(1, 41))
    + " open: the revised plan for open orders and the pending invoices."
)
"""A running summary the size of the fake summariser's (about 320 tokens)."""


def _thread_messages(turns: int) -> list[BaseMessage]:
    """The conversation as a ``create_agent`` thread stores it (the benchmark's fakes)."""
    from langgraph.checkpoint.memory import InMemorySaver

    from benchmarks.contenders import build

    contender = build("none", InMemorySaver())
    for turn in script(turns):
        contender.turn(turn.user)
    contender.agent_model.drain()
    return contender.state_messages()


def _windows(messages: Sequence[BaseMessage], size: int) -> list[list[BaseMessage]]:
    """One window of ``size`` messages starting at each of the first `WINDOWS` user messages."""
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)][:WINDOWS]
    return [list(messages[s : s + size]) for s in starts if s + size <= len(messages)]


def _one(
    summarizer: ChatModelSummarizer,
    counter: TokenCounter,
    window: list[BaseMessage],
    previous: str | None,
) -> dict[str, float]:
    request = summarizer.prompt_messages(previous, window, max_tokens=MAX_SUMMARY_TOKENS)
    compared = [HumanMessage(previous), *window] if previous else window
    as_dict = json.dumps(messages_to_dict(compared))
    dumped = json.dumps([m.model_dump() for m in compared])
    request_tokens = counter.count(request)
    request_chars = sum(len(str(m.content)) for m in request)
    return {
        "request_tokens": request_tokens,
        "json_tokens": counter.count_text(as_dict),
        "tokens_ratio": request_tokens / counter.count_text(as_dict),
        "model_dump_ratio": request_tokens / counter.count_text(dumped),
        "without_prompt_ratio": (request_tokens - counter.count(request[:1]))
        / counter.count_text(as_dict),
        "chars_ratio": request_chars / len(as_dict),
    }


def measure(sizes: Sequence[int] = SIZES) -> dict[str, Any]:
    """Ratios per source, size and case, min / median / max over the windows."""
    counter = TokenCounter()
    summarizer = ChatModelSummarizer(ScriptedChatModel(responses=["-"]), token_counter=counter)
    turns = WINDOWS + max(sizes)  # enough turns for the longest windows (>= 2 messages a turn)
    sources = {"bare": history(script(turns)), "thread": _thread_messages(turns)}
    results: dict[str, Any] = {
        "prompt_tokens": counter.count_text(DEFAULT_SUMMARY_PROMPT),
        "prompt_chars": len(DEFAULT_SUMMARY_PROMPT),
        "rows": [],
    }
    for source, messages in sources.items():
        for size in sizes:
            windows = _windows(messages, size)
            for case, previous in (("first", None), ("running", _PREVIOUS)):
                figures = [_one(summarizer, counter, w, previous) for w in windows]
                row: dict[str, Any] = {"source": source, "size": size, "case": case}
                row["windows"] = len(figures)
                for key in figures[0]:
                    values = sorted(f[key] for f in figures)
                    row[key] = [values[0], statistics.median(values), values[-1]]
                results["rows"].append(row)
    return results


def _spread(values: Sequence[float], digits: int = 3) -> str:
    low, mid, high = values
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def render(results: dict[str, Any]) -> str:
    """The ratios as a Markdown table: median (min-max) over the windows."""
    lines = [
        f"Default prompt: {results['prompt_tokens']} tokens, {results['prompt_chars']} "
        f"characters. Goal: request <= {GOAL}x the message JSON (tokens).",
        "",
        "| messages | source | case | request tokens | JSON tokens | request / JSON "
        "(tokens) | against model_dump JSON | request / JSON (chars) | without the system prompt "
        "| goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        worst = row["tokens_ratio"][2]
        lines.append(
            f"| {row['size']} | {row['source']} | {row['case']} | "
            f"{_spread(row['request_tokens'], 0)} | {_spread(row['json_tokens'], 0)} | "
            f"{_spread(row['tokens_ratio'])} | {_spread(row['model_dump_ratio'])} | "
            f"{_spread(row['chars_ratio'])} | {_spread(row['without_prompt_ratio'])} | "
            f"{'met' if worst <= GOAL else f'missed by {worst - GOAL:.3f} (worst window)'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print the table, write the JSON if asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = measure(args.sizes)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
