"""A compaction's own cost against the floor LangGraph itself sets, side by side.

The floor is what any rewrite of a thread must pay: one ``saver.get_tuple`` of the
thread's head plus one ``saver.put`` of that same checkpoint (under a new id, the messages
channel bumped), measured in the same run on a thread of the same size. A compaction is
``CompactingSupervisor.compact`` on a freshly seeded thread of that size (the benchmarks'
``create_agent`` history, ``compaction_ratio=0.95``), with a summariser model that answers
instantly (a scripted chat model: the prompt is built, rendered, redacted and counted as
for a real one; the model itself costs nothing). Nothing is subtracted by hand: the
compaction's wall time is reported as it is.

Each round seeds one thread (not timed), then times the floor on it and a compaction of
it, in alternating order; the ratio compaction / floor is taken per round, of wall time and
of the process's CPU time (steadier on a busy machine). Prints min / median / max per saver
and size, and the growth exponent between the sizes (1.0 is linear).

Then the split of a compaction at ``--split-size`` messages (1,000 by default), step by
step, beside the floor's own two steps: each of the package's functions that does one step
(reading the thread, the offload and the cut, rendering the transcript, redacting, counting
tokens, the summariser call, writing the new head) is wrapped in a timer for that run
only, and a step's time excludes the steps it calls (the count inside a render is the
count's), so the steps add up to the compaction; Python's garbage collections are a step
of their own (they run inside whichever step allocated), ``other`` is what no step covers.
The timers cost a little: the instrumented total is printed beside a plain compaction's.

Usage (from the repository root)::

    python benchmarks/compaction_floor.py                   # 1,000 and 10,000 messages
    python benchmarks/compaction_floor.py --sizes 100 1000 --savers sqlite --rounds 20
    python benchmarks/compaction_floor.py --sizes --split-size 10000    # the split only
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import copy_checkpoint
from langgraph.checkpoint.base.id import uuid6

from benchmarks.micro import agent_graph, thread_of
from benchmarks.savers import open_saver
from compacting_supervisor import (
    CompactingSupervisor,
    HistoryManager,
    KeepRatio,
    TokenCounter,
    _cut,
    _render,
    redact_secrets,
)
from compacting_supervisor._compaction import Summarize
from compacting_supervisor._compaction.summarise import PieceCounts
from compacting_supervisor._persist import rewrite
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.testing import ScriptedChatModel

__all__ = ["floor_cell", "split_cell"]

SIZES = (1000, 10000)
SAVERS = ("memory", "sqlite")
SUMMARY = "Summary: the user and the assistant discussed orders, shipments and invoices."


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and process CPU seconds since ``start`` (CPU: other processes' load left out)."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _floor_parts(saver: Any, thread_id: str) -> dict[str, tuple[float, float]]:
    """One ``get_tuple`` of the head plus one ``put`` of the same checkpoint (wall, CPU s each).

    The put's part holds the copy and the new version, as a rewrite's does.
    """
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    started = _clock()
    head = saver.get_tuple(config)
    read = _since(started)
    started = _clock()
    checkpoint = copy_checkpoint(head.checkpoint)
    checkpoint["id"] = str(uuid6(clock_seq=head.metadata.get("step", 0) + 1))
    version = saver.get_next_version(checkpoint["channel_versions"].get("messages"), None)
    checkpoint["channel_versions"]["messages"] = version
    saver.put(head.config, checkpoint, dict(head.metadata), {"messages": version})
    return {"get_tuple": read, "put": _since(started)}


def _floor(saver: Any, thread_id: str) -> tuple[float, float]:
    """The floor's wall and CPU seconds."""
    parts = _floor_parts(saver, thread_id).values()
    return sum(wall for wall, _ in parts), sum(cpu for _, cpu in parts)


def floor_cell(kind: str, size: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """``rounds`` rounds of floor and compaction at ``size`` messages on ``kind``."""
    with open_saver(kind, workdir, f"floor-{size}") as (saver, _):
        graph, _ = agent_graph(saver)
        model = ScriptedChatModel(responses=[AIMessage(SUMMARY)], record_calls=False)
        supervisor = CompactingSupervisor(graph, HistoryManager(model=model), keep=KeepRatio(0.95))
        messages, _ = thread_of(size)
        floors, compactions, ratios, cpu_ratios = [], [], [], []
        for index in range(rounds + 1):
            seed_id, thread_id = f"floor-{index}", f"compact-{index}"
            for thread in (seed_id, thread_id):
                graph.update_state(
                    {"configurable": {"thread_id": thread}}, {"messages": messages}, as_node="model"
                )
            gc.collect()
            times: dict[str, tuple[float, float]] = {}
            for which in ("floor", "compact") if index % 2 else ("compact", "floor"):
                if which == "floor":
                    times[which] = _floor(saver, seed_id)
                else:
                    started = _clock()
                    result = supervisor.compact(thread_id)
                    times[which] = _since(started)
                    assert result is not None, thread_id
                    assert result.succeeded, result
            if index:  # the first round warms up
                floors.append(times["floor"][0])
                compactions.append(times["compact"][0])
                ratios.append(times["compact"][0] / times["floor"][0])
                cpu_ratios.append(times["compact"][1] / times["floor"][1])
    return {
        "saver": kind,
        "messages": len(messages),
        "floor_ms": round(statistics.median(floors) * 1000, 2),
        "compaction_ms_min": round(min(compactions) * 1000, 2),
        "compaction_ms": round(statistics.median(compactions) * 1000, 2),
        "compaction_ms_max": round(max(compactions) * 1000, 2),
        "ratio_min": round(min(ratios), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "cpu_ratio_min": round(min(cpu_ratios), 3),
        "cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
        "cpu_ratio_max": round(max(cpu_ratios), 3),
        "rounds": rounds,
    }


# ---------------------------------------------------------------------------- the split

STEPS = (
    "read",
    "offload/cut",
    "render",
    "redact",
    "count",
    "summarise call",
    "write",
    "garbage collector",
    "other",
)


class _Steps:
    """Exclusive wall time per step: a step called inside another is taken out of it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[list[Any]] = []

    def _switch(self, now: float) -> None:
        step, since = self._stack[-1]
        self.totals[step] = self.totals.get(step, 0.0) + now - since

    def enter(self, step: str) -> None:
        now = time.perf_counter()
        if self._stack:
            self._switch(now)
        self._stack.append([step, now])

    def leave(self) -> None:
        now = time.perf_counter()
        self._switch(now)
        self._stack.pop()
        if self._stack:
            self._stack[-1][1] = now

    def timed(self, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.enter(step)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return wrapper


def _step_functions() -> dict[str, list[tuple[Any, str]]]:
    """Where each step is done: (owner, attribute) pairs, per step."""
    return {
        "read": [(rewrite.ReadState, "run")],
        "offload/cut": [(_cut, "plan_cut"), (OffloadToolResults, "plan_answered")],
        "render": [
            (_render, "message_event"),  # packing sizes each evicted message's event
            (_render, "message_events"),
            (_render, "render_messages"),
        ],
        "count": [
            (TokenCounter, "count"),
            (TokenCounter, "count_text"),
            (TokenCounter, "count_message"),
            (PieceCounts, "text"),  # a transcript cut into pieces, each counted once
            (PieceCounts, "messages"),
        ],
        "summarise call": [(Summarize, "run")],
        "write": [
            (rewrite.HeadMark, "run"),
            (rewrite.ReadHead, "run"),
            (rewrite.Put, "run"),
            (rewrite, "build_compacted_checkpoint"),
        ],
    }


@contextmanager
def _instrumented(steps: _Steps) -> Iterator[None]:
    """Every step function timed, under each name it is imported as, for the block only."""
    patched: list[tuple[Any, str, Any]] = []
    for step, places in _step_functions().items():
        for owner, name in places:
            original = getattr(owner, name)
            wrapper = steps.timed(step, original)
            if isinstance(owner, type):
                patched.append((owner, name, original))
                setattr(owner, name, wrapper)
                continue
            for module in list(sys.modules.values()):  # ``from x import f`` copies included
                if (module.__name__ or "").startswith("compacting_supervisor") and (
                    getattr(module, name, None) is original
                ):
                    patched.append((module, name, original))
                    setattr(module, name, wrapper)

    def collecting(phase: str, info: dict[str, Any]) -> None:
        """Python's collections, whichever step allocated when one began: a step of their own."""
        if phase == "start":
            steps.enter("garbage collector")
        else:
            steps.leave()

    gc.callbacks.append(collecting)
    try:
        yield
    finally:
        gc.callbacks.remove(collecting)
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def split_cell(kind: str, size: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """Median ms per step of a compaction at ``size`` messages on ``kind``, and the floor's.

    Wall time (``perf_counter``, 0.06 us a read): a CPU clock costs 1 us a read here, and
    with thousands of timed calls per compaction it would weigh on the steps it times.
    """
    steps = _Steps()
    with open_saver(kind, workdir, f"split-{size}") as (saver, _):
        graph, _ = agent_graph(saver)
        model = ScriptedChatModel(responses=[AIMessage(SUMMARY)], record_calls=False)
        manager = HistoryManager(model=model, redact=steps.timed("redact", redact_secrets))
        supervisor = CompactingSupervisor(graph, manager, keep=KeepRatio(0.95))
        messages, _ = thread_of(size)
        splits: list[dict[str, float]] = []
        floors: list[dict[str, float]] = []
        plain: list[float] = []
        for index in range(rounds + 1):
            threads = [f"split-{index}", f"plain-{index}", f"split-floor-{index}"]
            for thread in threads:
                graph.update_state(
                    {"configurable": {"thread_id": thread}}, {"messages": messages}, as_node="model"
                )
            gc.collect()
            started = time.perf_counter()
            assert supervisor.compact(threads[1]) is not None
            plain_time = time.perf_counter() - started
            gc.collect()
            steps.totals = {}
            with _instrumented(steps):
                steps.enter("other")
                started = time.perf_counter()
                result = supervisor.compact(threads[0])
                total = time.perf_counter() - started
                steps.leave()
            assert result is not None, threads[0]
            assert result.succeeded, result
            gc.collect()
            floor = {part: wall for part, (wall, _) in _floor_parts(saver, threads[2]).items()}
            if index:  # the first round warms up
                splits.append({**steps.totals, "total": total})
                floors.append(floor)
                plain.append(plain_time)

    def ms(samples: list[float]) -> float:
        return round(statistics.median(samples) * 1000, 2)

    return {
        "saver": kind,
        "messages": len(messages),
        "steps_ms": {step: ms([s.get(step, 0.0) for s in splits]) for step in STEPS},
        "instrumented_ms": ms([s["total"] for s in splits]),
        "plain_ms": ms(plain),
        "floor_ms": {part: ms([f[part] for f in floors]) for part in ("get_tuple", "put")},
        "rounds": rounds,
    }


def print_split(row: dict[str, Any]) -> None:
    """The split as a table: each step's median ms and its share of the floor."""
    floor = sum(row["floor_ms"].values())
    print(
        f"\n{row['saver']}, {row['messages']} messages: one compaction, step by step "
        f"(median of {row['rounds']}; ms, and x the floor's {floor:.2f} ms)"
    )
    print("| step | ms | x floor |")
    print("|---|---:|---:|")
    for step, value in row["steps_ms"].items():
        print(f"| {step} | {value} | {value / floor:.2f} |")
    total = row["instrumented_ms"]
    print(f"| **total (instrumented)** | **{total}** | **{total / floor:.2f}** |")
    print(f"| total (plain, same rounds) | {row['plain_ms']} | {row['plain_ms'] / floor:.2f} |")
    parts = ", ".join(f"{part} {value}" for part, value in row["floor_ms"].items())
    print(f"| floor ({parts}) | {floor:.2f} | 1.00 |")
    steps = row["steps_ms"]
    io = steps["read"] + steps["write"]  # what the floor also does: one read, one write
    named = {name: steps[name] / floor for name in ("count", "render", "redact")}
    rest = (total - io) / floor - sum(named.values())
    print(
        f"\nThe gap: the rewrite's own I/O (read + write) is {io / floor:.2f}x the floor; "
        "the rest is work the floor does not do: "
        + ", ".join(f"{name} {share:.2f}x" for name, share in named.items())
        + f", the other steps {rest:.2f}x."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--savers", nargs="+", choices=SAVERS, default=list(SAVERS))
    parser.add_argument("--rounds", type=int, default=15, help="rounds per cell (fewer at 10k)")
    parser.add_argument(
        "--split-size", type=int, default=1000, help="messages in the split (0: no split)"
    )
    parser.add_argument("--split-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger("compacting_supervisor").setLevel(logging.ERROR)
    print(
        "| saver | messages | floor ms | compaction ms min | median | max "
        "| compaction/floor wall min | median | max | CPU min | median | max |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        for kind in args.savers:
            rows = []
            for size in args.sizes:
                rounds = args.rounds if size < 10000 else max(5, args.rounds // 3)
                row = floor_cell(kind, size, rounds, Path(tmp))
                rows.append(row)
                print(
                    f"| {kind} | {row['messages']} | {row['floor_ms']} | "
                    f"{row['compaction_ms_min']} | **{row['compaction_ms']}** | "
                    f"{row['compaction_ms_max']} | {row['ratio_min']} | "
                    f"**{row['ratio_median']}** | {row['ratio_max']} | {row['cpu_ratio_min']} | "
                    f"**{row['cpu_ratio_median']}** | {row['cpu_ratio_max']} |",
                    flush=True,
                )
            for small, large in itertools.pairwise(rows):
                exponent = math.log(large["compaction_ms"] / small["compaction_ms"]) / math.log(
                    large["messages"] / small["messages"]
                )
                print(
                    f"\n{kind}: growth exponent {small['messages']} -> {large['messages']} "
                    f"messages: {exponent:.2f} (1.0 is linear)"
                )
        if args.split_size:
            for kind in args.savers:
                print_split(split_cell(kind, args.split_size, args.split_rounds, Path(tmp)))


if __name__ == "__main__":
    main()
