"""One command for the side-by-side benchmark: prints the table and writes JSON.

    python benchmarks/run.py [--turns 200] [--rounds 5] [--quick] [--json out.json]

It runs the scripted, tagged conversation (`benchmarks.conversation`) through every
contender of `benchmarks.contenders` on instant fake models, all triggering at 3,000
tokens: no compaction; `CompactingSupervisor` at its benchmark setting, with offload, and
at the middleware's keep of 20 messages; LangChain's ``SummarizationMiddleware`` at its
keep of 20 messages, at ours and as shipped (its own approximate counter); langmem's
``SummarizationNode``. Each runs on its own SQLite file, in interleaved rounds. Then ours
and the middleware at our keep once more with a summariser that takes 0.5-2 s a call (wall
time, one round unless ``--slow-rounds``); then the micro-benchmarks of `benchmarks.micro` (wrapper
overhead, exact counts, compaction cost from 10 to 10,000 messages on InMemory, SQLite
and Postgres, memory over 1,000 turns, the summariser's input format). ``--quick`` runs
60 turns, one round and smaller micro-benchmarks, in under a minute.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import micro, report, sweep
from benchmarks.contenders import (
    CACHED,
    EXTRA,
    IN_RUN,
    KEEP_20,
    MIDDLEWARE_APPROX,
    MIDDLEWARE_OUR_KEEP,
    OFFLOAD,
    OFFLOAD_POLICY,
    OFFLOAD_SETTINGS,
    SETTINGS,
    SLOW,
    CompactingSettings,
)
from benchmarks.measure import run_rounds
from benchmarks.savers import postgres_available

RESULTS = Path(__file__).resolve().parent / "results.json"
"""Where the JSON goes unless ``--json`` says otherwise (``results-quick.json`` for --quick)."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare CompactingSupervisor with no compaction, SummarizationMiddleware "
        "and langmem's SummarizationNode on a scripted conversation."
    )
    parser.add_argument("--turns", type=int, default=None, help="turns (default 200)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="60 turns, 1 round, small micro")
    parser.add_argument(
        "--json", type=Path, default=None, help="write the results here (default: beside run.py)"
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument("--no-postgres", action="store_true", help="skip Postgres")
    parser.add_argument(
        "--no-extra", action="store_true", help="skip ours at KeepMessages(20) (176 calls)"
    )
    parser.add_argument(
        "--no-slow", action="store_true", help="skip the columns with a 0.5-2 s summariser"
    )
    parser.add_argument(
        "--slow-rounds", type=int, default=1, help="rounds with the slow summariser (default 1)"
    )
    parser.add_argument("--sweep", action="store_true", help="also sweep our settings")
    parser.add_argument(
        "--offload-limit",
        type=int,
        default=None,
        help="token_limit of the offload column (default: 3000, as every contender)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="for the SQLite files")
    args = parser.parse_args(argv)
    args.turns = args.turns or (60 if args.quick else 200)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.json = args.json or RESULTS.with_stem("results-quick" if args.quick else "results")
    return args


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _micro(args: argparse.Namespace, workdir: Path, postgres: bool) -> dict[str, Any]:
    quick = args.quick
    savers = ["memory", "sqlite", *(["postgres"] if postgres else [])]
    results: dict[str, Any] = {}
    steps = {
        "overhead": lambda: micro.wrapper_overhead(workdir, reps=6 if quick else 30),
        "counting": lambda: micro.counting(reps=5 if quick else 20),
        "compaction_cost": lambda: micro.compaction_cost(
            workdir,
            sizes=(10, 100, 1000) if quick else (10, 100, 1000, 10000),
            savers=savers,
            reps=2 if quick else 5,
        ),
        "profile": lambda: micro.compaction_profile(workdir, reps=2 if quick else 5),
        "memory": lambda: micro.memory(turns=150 if quick else 1000, workdir=workdir),
    }
    for name, step in steps.items():
        started = time.perf_counter()
        results[name] = step()
        _progress(f"micro {name} in {time.perf_counter() - started:.1f} s")
    results["growth_exponents"] = micro.growth_exponents(results["compaction_cost"])
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run everything, print the report, write the JSON; return the results."""
    args = _arguments(argv)
    logging.getLogger("compacting_supervisor").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*create_react_agent.*")
    command = shlex.join(
        ["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]
    )
    started = time.perf_counter()
    postgres = not args.no_postgres and postgres_available()
    contenders = [
        "none",
        "compacting",
        CACHED,
        IN_RUN,
        OFFLOAD,
        *([] if args.no_extra else [EXTRA]),
        "middleware",
        MIDDLEWARE_OUR_KEEP,
        MIDDLEWARE_APPROX,
        "langmem",
    ]
    slow = [f"compacting{SLOW}", f"{MIDDLEWARE_OUR_KEEP}{SLOW}"]
    offload = OFFLOAD_SETTINGS
    if args.offload_limit:
        offload = CompactingSettings(token_limit=args.offload_limit, keep=OFFLOAD_SETTINGS.keep)
    settings = {
        "compacting": SETTINGS,
        CACHED: SETTINGS,
        IN_RUN: SETTINGS,
        f"compacting{SLOW}": SETTINGS,
        OFFLOAD: offload,
        EXTRA: KEEP_20,
    }
    with tempfile.TemporaryDirectory(prefix="compacting-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        runs = {"turns": args.turns, "workdir": workdir, "settings": settings}
        rounds = run_rounds(contenders, rounds=args.rounds, progress=_progress, **runs)
        slow_rounds = (
            []
            if args.no_slow
            else run_rounds(slow, rounds=args.slow_rounds, progress=_progress, **runs)
        )
        micro_results = {} if args.no_micro else _micro(args, workdir, postgres)
    summary = report.summarise(rounds)
    goals = report.judge(summary, micro_results)
    info = report.machine(postgres)
    sweep_rows = sweep.sweep(turns=args.turns) if args.sweep else []
    elapsed = time.perf_counter() - started
    text = report.render(
        info,
        summary,
        goals,
        micro_results,
        turns=args.turns,
        rounds=args.rounds,
        command=command,
        offload=offload.describe(),
    )
    print(text)
    if slow_rounds:
        print(report.slow_table(slow_rounds))
    if sweep_rows:
        print("CompactingSupervisor's settings (InMemorySaver; tokens against no compaction):\n")
        print(sweep.render(sweep_rows) + "\n")
    print(f"Ran in {elapsed:.0f} s.")
    results = {
        "command": command,
        "seconds": round(elapsed, 1),
        "turns": args.turns,
        "rounds": args.rounds,
        "machine": info,
        "settings": {
            "compacting": SETTINGS.describe(),
            CACHED: f"{SETTINGS.describe()}, ChatModelSummarizer(request='conversation')",
            IN_RUN: f"CompactionMiddleware({SETTINGS.describe()}), request='conversation'",
            OFFLOAD: f"{offload.describe()}, offload={OFFLOAD_POLICY}",
            EXTRA: KEEP_20.describe(),
        },
        "summary": summary,
        "goals": [goal.__dict__ for goal in goals],
        "micro": micro_results,
        "sweep": sweep_rows,
        "runs": [{name: r.to_json() for name, r in one.items()} for one in rounds],
        "slow_runs": [{name: r.to_json() for name, r in one.items()} for one in slow_rounds],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"Wrote {args.json}.")
    return results


if __name__ == "__main__":
    main()
