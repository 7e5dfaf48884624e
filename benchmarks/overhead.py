"""End-to-end cost of a turn that does not compact: the wrapper against the bare graph.

``CompactingSupervisor.invoke`` (or ``ainvoke``) against the wrapped graph's own ``invoke``
(``ainvoke``): same ``create_agent`` graph on the benchmarks' instant fake model, same
checkpointer, same history. Each side has a thread of its own, seeded with the same
history; a pair is the same next two turns run on both, and after `RESEED` turns both
threads are seeded afresh (not timed), so they stay near the cell's size. These are ordinary
turns, each continuing its thread (the wrapper's count after a turn builds on the last
one). The supervisor's trigger never fires (``token_limit=10**9``), so what is measured is
everything a turn pays for the wrapper: the thread's lock, reading the run's output,
counting the thread, asking the trigger.

The machine is shared and noisy, so the two run in pairs (ABAB order, alternating which
side starts; each side's faster turn of the two is kept: `_Pairs`), and what is
reported is the ratio wrapped / bare of each pair: min / median / max over the rounds,
of wall time (what a user waits) and of the process's CPU time (the same work with other
processes' load left out: steadier on a busy machine). The medians of each side's own
wall times (ms) are printed too.

Usage (from the repository root)::

    python benchmarks/overhead.py                      # 10 .. 10,000 messages, all cells
    python benchmarks/overhead.py --sizes 100 1000 --savers memory --modes sync
    python benchmarks/overhead.py --rounds 400         # more pairs per cell
    python benchmarks/overhead.py --counting           # the count after each run only
    python benchmarks/overhead.py --counting --postgres --usage   # Postgres too; usage reported

``--counting`` times what the wrapper does after a run (count the thread, ask the
trigger) over consecutive turns of one growing thread, with its split: the read of the
checkpoints and writes the run added (InMemorySaver, SQLite, Postgres) and the count
itself, and of that, tiktoken's encoding of the turn's new messages (what any exact count
pays); next to it, the recount the counter falls back to (``TokenCounter.count`` of the
thread as a checkpointer hands it back: new objects, the same content). The head's read
before each run (on SQLite and Postgres, from `MARK_FROM` messages) is not in the step.
With ``--usage`` the agent's fake model reports ``usage_metadata`` as real providers do,
and the trigger reads the thread's size from it; ``--postgres`` adds the Postgres server
of ``benchmarks/savers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import HumanMessage

from benchmarks.conversation import script
from benchmarks.fakes import SummariserModel
from benchmarks.micro import agent_graph, thread_of
from benchmarks.savers import open_saver, remove_sqlite
from compacting_supervisor import CompactingSupervisor, HistoryManager

__all__ = ["overhead_cell"]

SIZES = (10, 100, 1000, 10000)
SAVERS = ("memory", "sqlite")
MODES = ("sync", "async")


def _rounds_for(size: int, rounds: int) -> int:
    """Fewer pairs where a turn is long (10,000 messages on SQLite takes ~0.1 s)."""
    return max(30, rounds // max(1, size // 1000))


def _summary(ratios: list[float], bare: list[float], wrapped: list[float]) -> dict[str, Any]:
    return {
        "ratio_min": round(min(ratios), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "bare_ms": round(statistics.median(bare) * 1000, 3),
        "wrapped_ms": round(statistics.median(wrapped) * 1000, 3),
        "pairs": len(ratios),
    }


def _setup(saver: Any, size: int) -> tuple[Any, Any, Any, list[str], dict[str, Any]]:
    """The graph, its model, the wrapper, the next turns' user messages, the seed history."""
    graph, model = agent_graph(saver)
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=SummariserModel()), token_limit=10**9
    )
    messages, next_turn = thread_of(size)
    turns = [turn.user for turn in script(next_turn + RESEED)[next_turn - 1 :]]
    return graph, model, supervisor, turns, {"messages": messages}


class _Pairs:
    """The pairs of one cell: each side's time and their ratio, after the warm-up.

    A pair runs each side twice, taking turns (wrapped, bare, wrapped, bare; the next pair
    starts with bare), and keeps each side's faster turn: a turn another process preempted
    is dropped instead of landing in one side of the ratio. No side runs twice in a row
    (its second turn would find its thread in SQLite's page cache). Both sides run the same two
    turns on threads of the same size, each turn after a full garbage collection (not
    timed), so that no turn pays for the collections its position in the pair triggers.
    """

    WARM = 3

    def __init__(self) -> None:
        self.ratios: list[float] = []
        self.cpu_ratios: list[float] = []
        self.bare: list[float] = []
        self.wrapped: list[float] = []

    @staticmethod
    def order(index: int) -> tuple[str, str, str, str]:
        if index % 2:
            return ("bare", "wrapped", "bare", "wrapped")
        return ("wrapped", "bare", "wrapped", "bare")

    def add(self, index: int, times: dict[str, list[tuple[float, float]]]) -> None:
        """One pair: each side's (wall, process CPU) seconds of its two turns."""
        if index >= self.WARM:
            wrapped, bare = min(times["wrapped"]), min(times["bare"])
            self.ratios.append(wrapped[0] / bare[0])
            cpu = min(t[1] for t in times["wrapped"]) / min(t[1] for t in times["bare"])
            self.cpu_ratios.append(cpu)
            self.bare.append(bare[0])
            self.wrapped.append(wrapped[0])

    def summary(self) -> dict[str, Any]:
        cpu = self.cpu_ratios
        return {
            **_summary(self.ratios, self.bare, self.wrapped),
            "cpu_ratio_min": round(min(cpu), 3),
            "cpu_ratio_median": round(statistics.median(cpu), 3),
            "cpu_ratio_max": round(max(cpu), 3),
        }

    def schedule(self, rounds: int) -> Iterator[tuple[int, bool, list[tuple[str, int]]]]:
        """Each pair: its index, whether to seed both threads afresh, and its four turns.

        A turn is (side, turn number since the seed); the caller times each and passes the
        pair's times to `add`.
        """
        for index in range(rounds + self.WARM):
            first = (index % PAIRS_PER_SEED) * 2  # each side's turn numbers since the seed
            sides = self.order(index)
            turns = {side: iter((first, first + 1)) for side in ("wrapped", "bare")}
            yield index, index % PAIRS_PER_SEED == 0, [(side, next(turns[side])) for side in sides]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """Wall and process CPU seconds since ``start`` (CPU: other processes' load left out)."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


RESEED = 8
"""Turns each side runs on its thread before both are seeded afresh (not timed)."""
PAIRS_PER_SEED = RESEED // 2


def _threads(size: int, index: int) -> dict[str, dict[str, Any]]:
    return {
        which: {"configurable": {"thread_id": f"{which}-{size}-{index}"}}
        for which in ("bare", "wrapped")
    }


def _sync_cell(saver: Any, size: int, rounds: int) -> dict[str, Any]:
    graph, model, supervisor, turns, seed = _setup(saver, size)
    pairs = _Pairs()
    threads: dict[str, dict[str, Any]] = {}
    for index, reseed, plan in pairs.schedule(rounds):
        if reseed:  # both threads back to ``size`` messages
            threads = _threads(size, index)
            for config in threads.values():
                graph.update_state(config, seed, as_node="model")
        times: dict[str, list[tuple[float, float]]] = {"wrapped": [], "bare": []}
        for which, turn in plan:
            runner = graph if which == "bare" else supervisor
            user = {"messages": [HumanMessage(turns[turn])]}
            gc.collect()  # each turn starts on the same heap; the collection is not timed
            started = _clock()
            runner.invoke(user, threads[which])
            times[which].append(_since(started))
            model.drain()
        pairs.add(index, times)
    return pairs.summary()


async def _async_cell(saver: Any, size: int, rounds: int) -> dict[str, Any]:
    graph, model, supervisor, turns, seed = _setup(saver, size)
    pairs = _Pairs()
    threads: dict[str, dict[str, Any]] = {}
    for index, reseed, plan in pairs.schedule(rounds):
        if reseed:
            threads = _threads(size, index)
            for config in threads.values():
                await graph.aupdate_state(config, seed, as_node="model")
        times: dict[str, list[tuple[float, float]]] = {"wrapped": [], "bare": []}
        for which, turn in plan:
            runner = graph if which == "bare" else supervisor
            user = {"messages": [HumanMessage(turns[turn])]}
            gc.collect()
            started = _clock()
            await runner.ainvoke(user, threads[which])
            times[which].append(_since(started))
            model.drain()
        pairs.add(index, times)
    return pairs.summary()


@contextlib.asynccontextmanager
async def _async_saver(kind: str, workdir: Path, name: str) -> AsyncIterator[Any]:
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = workdir / f"{name}.sqlite"
    remove_sqlite(path)
    try:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver
    finally:
        remove_sqlite(path)


def overhead_cell(kind: str, mode: str, size: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """One cell: ``rounds`` interleaved pairs of turns at ``size`` messages."""
    gc.collect()
    name = f"overhead-{mode}-{size}"
    if mode == "sync":
        with open_saver(kind, workdir, name) as (saver, _):
            row = _sync_cell(saver, size, rounds)
    else:

        async def run() -> dict[str, Any]:
            async with _async_saver(kind, workdir, name) as saver:
                return await _async_cell(saver, size, rounds)

        row = asyncio.run(run())
    return {"saver": kind, "mode": mode, "messages": size, **row}


def counting_cell(
    kind: str, size: int, turns: int, workdir: Path, *, usage: bool = False
) -> dict[str, Any]:
    """The step after each of ``turns`` consecutive runs on a ``size``-message thread.

    With ``usage``, the agent's model reports ``usage_metadata`` as real providers do, and
    the trigger reads the thread's size from it.
    """
    from benchmarks.micro import _fresh
    from compacting_supervisor import TokenCounter
    from compacting_supervisor._persist.runs import RunCheckpoints

    with open_saver(kind, workdir, f"counting-{size}") as (saver, _):
        graph, model, supervisor, _turns, seed = _setup(saver, size)
        model.report_usage = usage
        config = {"configurable": {"thread_id": f"counting-{size}"}}
        graph.update_state(config, seed, as_node="model")
        times: dict[str, list[float]] = {
            "after_run": [],
            "writes_read": [],
            "count": [],
            "tokenise": [],
        }

        def timed(name: str, call: Any) -> Any:
            def run(*args: Any) -> Any:
                started = time.perf_counter()
                value = call(*args)
                times[name].append(time.perf_counter() - started)
                return value

            return run

        supervisor._auto_compact = timed("after_run", supervisor._auto_compact)  # type: ignore[method-assign]
        supervisor._count_appended = timed("count", supervisor._count_appended)  # type: ignore[method-assign]
        read = RunCheckpoints.run
        RunCheckpoints.run = timed("writes_read", read)  # type: ignore[method-assign]
        counter = supervisor.history_manager.token_counter
        encode = counter._count_uncached

        def tokenise(message: Any) -> int:  # summed per turn: a turn counts several messages
            started = time.perf_counter()
            value = encode(message)
            times["tokenise"][-1] += time.perf_counter() - started
            return value

        counter._count_uncached = tokenise  # type: ignore[method-assign]
        _, next_turn = thread_of(size)
        try:
            for turn in script(next_turn + turns)[next_turn:]:
                times["tokenise"].append(0.0)
                supervisor.invoke({"messages": [HumanMessage(turn.user)]}, config)
                model.drain()
        finally:
            RunCheckpoints.run = read  # type: ignore[method-assign]
        thread = graph.get_state(config).values["messages"]
        fallback = TokenCounter()
        fallback.count(thread)
        compare = []
        for _ in range(15):
            fresh = _fresh(thread)
            started = time.perf_counter()
            fallback.count(fresh)
            compare.append(time.perf_counter() - started)
    warm = 3  # the first turns load the encoding and count the thread whole

    def ms(values: list[float]) -> str:
        values = values[warm:] or values
        if not values:
            return "-"
        low, mid, high = (min(values), statistics.median(values), max(values))
        return f"{low * 1000:.3f} / **{mid * 1000:.3f}** / {high * 1000:.3f}"

    return {
        "saver": kind,
        "messages": len(thread),
        "after_run": ms(times["after_run"]),
        "writes_read": ms(times["writes_read"]),
        "count": ms(times["count"]),
        "tokenise": ms(times["tokenise"]),
        "compare": ms(compare),
        "turns": turns,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--savers", nargs="+", choices=SAVERS, default=list(SAVERS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--rounds", type=int, default=200, help="pairs per cell (fewer at 10k)")
    parser.add_argument("--counting", action="store_true", help="the count after each run")
    parser.add_argument(
        "--usage",
        action="store_true",
        help="with --counting: the agent's model reports usage_metadata, as real ones do",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="with --counting: Postgres too (the server of benchmarks/savers.py)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("compacting_supervisor").setLevel(logging.ERROR)
    if args.counting:
        print(
            "| saver | messages | after a run, ms (min / median / max) | of which: run's "
            "checkpoints read | count | of which: tiktoken on the new messages "
            "| recounting the thread (fallback) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        kinds = [*args.savers, *(["postgres"] if args.postgres else [])]
        with tempfile.TemporaryDirectory(prefix="bench-counting-") as tmp:
            for kind in kinds:
                for size in args.sizes:
                    row = counting_cell(kind, size, 60, Path(tmp), usage=args.usage)
                    print(
                        f"| {kind} | {row['messages']} | {row['after_run']} | "
                        f"{row['writes_read']} | {row['count']} | {row['tokenise']} | "
                        f"{row['compare']} |",
                        flush=True,
                    )
        return
    print(
        "| saver | mode | messages | wall wrapped/bare min | median | max "
        "| CPU wrapped/bare min | median | max | bare ms | wrapped ms | pairs |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        for kind in args.savers:
            for mode in args.modes:
                for size in args.sizes:
                    row = overhead_cell(kind, mode, size, _rounds_for(size, args.rounds), Path(tmp))
                    print(
                        f"| {kind} | {mode} | {size} | {row['ratio_min']} | "
                        f"**{row['ratio_median']}** | {row['ratio_max']} | "
                        f"{row['cpu_ratio_min']} | **{row['cpu_ratio_median']}** | "
                        f"{row['cpu_ratio_max']} | {row['bare_ms']} | "
                        f"{row['wrapped_ms']} | {row['pairs']} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
