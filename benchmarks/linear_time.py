"""Linear time on any input: redaction, rendering, counting and cutting, 10 KB to 1 MB.

Times ``redact_text``, ``redact_secrets`` (a tool message holding the text), the opt-in
``HighEntropyRedactor``, ``render_messages``, ``TokenCounter().count`` and
``plan_cut(..., KeepRatio(0.5))`` on adversarial inputs (repeated key prefixes, long
runs, nested JSON, base64) and ordinary ones, at 10 KB, 100 KB and 1 MB. Prints min /
median / max of a few repeats and the ratio of medians per 10x of input: linear is about
10, quadratic about 100. Then the share of a compaction that redaction takes:
``HistoryManager(model=<scripted>).compact_messages`` on 1,000 ordinary messages, with the
default redaction and with ``redact=None``, and of a whole compaction persisted on a SQLite
file (``compact_thread``: read, compact, write); and the same share on the benchmarks' agent
history (``benchmarks.micro.thread_of(1000)``: turns whose tool results are JSON records).

Usage (from the repository root)::

    python benchmarks/linear_time.py            # 10 KB, 100 KB, 1 MB; 3 repeats
    python benchmarks/linear_time.py --quick    # 10 KB and 100 KB; 2 repeats
"""

from __future__ import annotations

import argparse
import base64
import itertools
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph

from benchmarks.micro import thread_of
from compacting_supervisor import HistoryManager, KeepRatio, TokenCounter, redact_secrets
from compacting_supervisor._cut import plan_cut
from compacting_supervisor.context import render_messages
from compacting_supervisor.redaction import HighEntropyRedactor, redact_text
from compacting_supervisor.testing import ScriptedChatModel
from tests.redaction_corpus import ordinary_messages


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def _nested_json(n: int) -> str:
    depth = n // 2
    return "[" * depth + "]" * depth


def _deep_object(n: int) -> str:
    unit = '{"password": '
    depth = n // (len(unit) + 1)
    return unit * depth + '"x"' + "}" * depth


def _base64(n: int) -> str:
    return base64.b64encode(random.Random(1).randbytes(n * 3 // 4 + 3)).decode()[:n]


def _ordinary(n: int) -> str:
    texts = [text for _, text in ordinary_messages(400)]
    out: list[str] = []
    size = 0
    while size < n:
        text = texts[len(out) % len(texts)]
        out.append(text)
        size += len(text) + 1
    return "\n".join(out)[:n]


INPUTS: dict[str, Callable[[int], str]] = {
    '"sk-" * n': _repeat("sk-"),
    '"-----BEGIN " * n': _repeat("-----BEGIN "),
    '"://" * n': _repeat("://"),
    '"password=" * n': _repeat("password="),
    '"a" * n': _repeat("a"),
    '"<" * n': _repeat("<"),
    '"eyJ-" * n': _repeat("eyJ-"),
    '"a: " * n': _repeat("a: "),
    '"token=a&" * n': _repeat("token=a&"),
    '"\\\\u00" * n': _repeat("\\u00"),
    '"curl -u " * n': _repeat("curl -u "),
    '"Authorization: Basic " * n': _repeat("Authorization: Basic "),
    '\'"password": "\' * n': _repeat('"password": "'),
    '"1 " * n (digits)': _repeat("1 "),
    '"a@" * n': _repeat("a@"),
    "nested JSON [[[...]]]": _nested_json,
    'deep {"password": {...}}': _deep_object,
    "base64": _base64,
    "ordinary messages": _ordinary,
}


def _messages(text: str) -> list[BaseMessage]:
    """The text as one conversation: 1 KB per message, human and assistant in turn."""
    chunks = [text[i : i + 1000] for i in range(0, len(text), 1000)] or [""]
    return [
        HumanMessage(chunk) if i % 2 == 0 else AIMessage(chunk) for i, chunk in enumerate(chunks)
    ]


def _tool_message(text: str) -> list[BaseMessage]:
    return [ToolMessage(text, tool_call_id="c1", name="read")]


FUNCTIONS: dict[str, tuple[Callable[[str], Any], Callable[[Any], Any]]] = {
    "redact_text": (lambda text: text, redact_text),
    "redact_secrets": (lambda text: _tool_message(text)[0], redact_secrets),
    "HighEntropyRedactor.redact": (lambda text: text, HighEntropyRedactor().redact),
    "render_messages": (_tool_message, render_messages),
    # A new counter per call: a counter caches each message's count.
    "TokenCounter.count": (_tool_message, lambda messages: TokenCounter().count(messages)),
    "plan_cut (1 KB messages)": (_messages, lambda ms: plan_cut(ms, KeepRatio(0.5))),
}


def _time(call: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f}"


def scaling(sizes: list[int], repeats: int, limit: float) -> None:
    """Print one table per function: input, then min/median/max per size and the ratios."""
    for function, (prepare, run) in FUNCTIONS.items():
        print(f"\n## {function}\n")
        header = " | ".join(f"{size // 1000} KB min / median / max (ms)" for size in sizes)
        print(f"| input | {header} | ratio per 10x |")
        print("|---|" + "---|" * len(sizes) + "---|")
        for name, make in INPUTS.items():
            cells, medians = [], []
            for size in sizes:
                prepared = prepare(make(size))
                try:
                    times = _time(lambda run=run, prepared=prepared: run(prepared), repeats)
                except Exception as exc:  # a finding to report, not a reason to stop
                    cells.append(f"fails: {type(exc).__name__}")
                    cells.extend(["-"] * (len(sizes) - len(cells)))
                    break
                medians.append(statistics.median(times))
                cells.append(
                    f"{_ms(min(times))} / {_ms(statistics.median(times))} / {_ms(max(times))}"
                )
                if medians[-1] > limit:
                    cells.extend(["(stopped: over the time limit)"] * (len(sizes) - len(cells)))
                    break
            ratios = [
                f"{later / earlier:.1f}x"
                for earlier, later in itertools.pairwise(medians)
                if earlier > 0
            ]
            print(f"| {name} | {' | '.join(cells)} | {', '.join(ratios)} |", flush=True)


_TOOL_KINDS = frozenset({"json", "yaml", "log", "identifiers"})


def _conversation(count: int, *, tools: bool) -> list[BaseMessage]:
    """``count`` ordinary messages, as a conversation.

    With ``tools``, the JSON, YAML, logs and identifiers come back as tool results after
    the assistant's call (where such text comes from); without, every text is a user or an
    assistant message in turn.
    """
    messages: list[BaseMessage] = []
    for i, (kind, text) in enumerate(ordinary_messages(count)):
        if len(messages) >= count:
            break
        if tools and kind in _TOOL_KINDS:
            call = {"name": f"get_{kind}", "args": {"page": i}, "id": f"call_{i}"}
            messages.append(AIMessage("", tool_calls=[call]))
            messages.append(ToolMessage(text, tool_call_id=f"call_{i}", name=f"get_{kind}"))
        elif len(messages) % 2 == 0:
            messages.append(HumanMessage(text))
        else:
            messages.append(AIMessage(text))
    return messages[:count]


def redaction_share(count: int, repeats: int) -> None:
    """Redaction's share of ``compact_messages`` on ``count`` ordinary messages."""
    reply = "The user and the assistant went through records, code and logs; nothing pending."
    print(f"\n## Redaction's share of a compaction ({count} ordinary messages)\n")
    print("| conversation | | min (ms) | median (ms) | max (ms) |")
    print("|---|---|---|---|---|")
    shares = []
    for tools in (True, False):
        messages = _conversation(count, tools=tools)
        shape = "tool results as tool messages" if tools else "every text a user/assistant turn"

        def compact(redact: Any, messages: list[BaseMessage] = messages) -> Any:
            manager = HistoryManager(model=ScriptedChatModel(responses=[reply]), redact=redact)
            return manager.compact_messages(messages)

        # Warm up (token encoder, regex compilation); what the default ratio summarises is
        # what redaction reads.
        evicted = list(compact(redact_secrets).summarized)
        with_redaction: list[float] = []
        without: list[float] = []
        redact_only: list[float] = []
        on_sqlite: list[float] = []
        with tempfile.TemporaryDirectory() as folder:
            saver = SqliteSaver(sqlite3.connect(Path(folder) / "t.sqlite", check_same_thread=False))
            graph = _one_node_graph(saver)
            threads = itertools.count()

            for _ in range(repeats):  # interleaved, so a busy machine slows all alike
                with_redaction += _time(lambda: compact(redact_secrets), 1)
                without += _time(lambda: compact(None), 1)
                redact_only += _time(lambda e=evicted: [redact_secrets(m) for m in e], 1)
                on_sqlite.append(_compact_thread(graph, f"t{next(threads)}", messages, reply))
        for name, times in (
            ("compact_messages, default redaction", with_redaction),
            ("compact_messages, redact=None", without),
            ("compact_thread on a SQLite file, default redaction", on_sqlite),
            ("redact_secrets on the summarised messages alone", redact_only),
        ):
            print(
                f"| {shape} | {name} | {_ms(min(times))} | {_ms(statistics.median(times))} "
                f"| {_ms(max(times))} |"
            )
        shares.append(
            (
                shape,
                statistics.median(redact_only) / statistics.median(with_redaction),
                min(redact_only) / min(with_redaction),
                statistics.median(redact_only) / statistics.median(on_sqlite),
                1 - statistics.median(without) / statistics.median(with_redaction),
            )
        )
    print()
    for shape, share, best, persisted, difference in shares:
        print(
            f"{shape}: redaction is {share:.1%} of the core's median time, compact_messages "
            f"({best:.1%} of its fastest run; with minus without: {difference:.1%}), and "
            f"{persisted:.1%} of a whole compaction persisted on SQLite (compact_thread); "
            "goal: under 5%."
        )


def agent_history_share(count: int, repeats: int) -> None:
    """Redaction's share of ``compact_messages`` on the agent history of ``count`` messages.

    ``thread_of(count)``: the turns ``benchmarks/micro.py`` compacts, whose tool results are
    JSON records. The compaction with the default redaction and with ``redact=None``, side
    by side, and ``redact_secrets`` alone on the messages that compaction summarised.
    """
    reply = "Orders, invoices and shipments were discussed; nothing is pending."
    messages, _ = thread_of(count)

    def compact(redact: Any) -> Any:
        manager = HistoryManager(model=ScriptedChatModel(responses=[reply]), redact=redact)
        return manager.compact_messages(messages)

    summarized = compact(redact_secrets).summarized  # also a warm-up
    rows: dict[str, list[float]] = {
        "compact_messages, default redaction": [],
        "compact_messages, redact=None": [],
        "redact_secrets on the summarised messages alone": [],
    }
    runs = [
        lambda: compact(redact_secrets),
        lambda: compact(None),
        lambda: [redact_secrets(m) for m in summarized],
    ]
    for _ in range(repeats):  # interleaved, so a busy machine slows all alike
        for times, run in zip(rows.values(), runs, strict=True):
            times.extend(_time(run, 1))
    chars = sum(len(str(m.content)) + len(str(getattr(m, "tool_calls", ""))) for m in summarized)
    print(
        f"\n## Redaction's share of a compaction (agent history: thread_of({count}), "
        f"{len(messages)} messages, {len(summarized)} summarised)\n"
    )
    print("| | min (ms) | median (ms) | max (ms) |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        print(
            f"| {name} | {_ms(min(times))} | {_ms(statistics.median(times))} | {_ms(max(times))} |"
        )
    with_redaction, without, alone = (statistics.median(t) for t in rows.values())
    difference = (with_redaction - without) / with_redaction
    print(
        f"\nagent history: redaction is {alone / with_redaction:.1%} of the core's median time "
        f"(compact_messages); with minus without: {difference:.1%}; "
        f"redact_secrets {alone * 1e9 / chars:.0f} ns a character of the summarised messages "
        f"({chars:,} characters); goal: under 5%."
    )


def _compact_thread(graph: Any, thread_id: str, messages: list[BaseMessage], reply: str) -> float:
    """One `compact_thread` of a new thread on ``graph``'s saver, timed alone (not the set-up)."""
    config: Any = {"configurable": {"thread_id": thread_id}}
    graph.invoke({"messages": messages}, config)
    manager = HistoryManager(model=ScriptedChatModel(responses=[reply]))
    start = time.perf_counter()
    manager.compact_thread(config, graph=graph)
    return time.perf_counter() - start


def _one_node_graph(saver: Any) -> Any:
    """A graph that only stores the messages it is given, for `compact_thread` to read."""
    builder = StateGraph(MessagesState)
    builder.add_node("store", lambda state: {})
    builder.add_edge(START, "store")
    return builder.compile(checkpointer=saver)


def main() -> None:
    """Run the shares of a compaction, then the scaling tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 KB and 100 KB, 2 repeats")
    parser.add_argument("--limit", type=float, default=20.0, help="stop an input over this (s)")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    repeats = 2 if args.quick else 3
    redaction_share(1000, repeats * 3)
    agent_history_share(1000, repeats * 3)
    scaling(sizes, repeats, args.limit)


if __name__ == "__main__":
    main()
