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

Usage (from the repository root)::

    python benchmarks/compaction_floor.py                   # 1,000 and 10,000 messages
    python benchmarks/compaction_floor.py --sizes 100 1000 --savers sqlite --rounds 20
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import copy_checkpoint
from langgraph.checkpoint.base.id import uuid6

from benchmarks.micro import agent_graph, thread_of
from benchmarks.savers import open_saver
from compacting_supervisor import CompactingSupervisor, HistoryManager, KeepRatio
from compacting_supervisor.testing import ScriptedChatModel

__all__ = ["floor_cell"]

SIZES = (1000, 10000)
SAVERS = ("memory", "sqlite")
SUMMARY = "Summary: the user and the assistant discussed orders, shipments and invoices."


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and process CPU seconds since ``start`` (CPU: other processes' load left out)."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _floor(saver: Any, thread_id: str) -> tuple[float, float]:
    """One ``get_tuple`` of the head plus one ``put`` of the same checkpoint (wall, CPU s)."""
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    started = _clock()
    head = saver.get_tuple(config)
    checkpoint = copy_checkpoint(head.checkpoint)
    checkpoint["id"] = str(uuid6(clock_seq=head.metadata.get("step", 0) + 1))
    version = saver.get_next_version(checkpoint["channel_versions"].get("messages"), None)
    checkpoint["channel_versions"]["messages"] = version
    saver.put(head.config, checkpoint, dict(head.metadata), {"messages": version})
    return _since(started)


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--savers", nargs="+", choices=SAVERS, default=list(SAVERS))
    parser.add_argument("--rounds", type=int, default=15, help="rounds per cell (fewer at 10k)")
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


if __name__ == "__main__":
    main()
