"""How well the check on a summariser's reply holds, and what it costs on hostile input.

Prints, for the corpus in ``tests/data/summary_replies.py``: the bad replies rejected per
kind (refusals, provider errors, markup pages, headings only, near-empty text), the real
summaries wrongly rejected, and the reply check's time (min/median/max) on 1 MB adversarial
replies and at 10 KB, 100 KB and 1 MB, so the growth shows it is linear; then the time of
`dropped_content` on a 1 MB previous summary.

    python benchmarks/summary_checks.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compacting_supervisor._summary_checks import dropped_content, summary_problem
from tests.data.summary_replies import BAD, KINDS, REAL

__all__ = ["ADVERSARIAL", "main"]

ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "'sk-' repeated": lambda n: "sk-" * (n // 3),
    "refusal repeated": lambda n: "I'm sorry " * (n // 10),
    "one letter": lambda n: "a" * n,
    "'<' repeated": lambda n: "<" * n,
    "'{\"error\"' repeated": lambda n: '{"error"' * (n // 8),
    "'-' lines": lambda n: "\n-" * (n // 2),
    "'#' lines": lambda n: "#\n" * (n // 2),
    "bullets 'x'": lambda n: "- x\n" * (n // 4),
    "label colons": lambda n: "Summary:" * (n // 8),
    "CJK refusal repeated": lambda n: "抱歉" * (n // 2),
    "combining accents": lambda n: "e\u0301" * (n // 2),
    "quotes": lambda n: '"' * n,
    "spaces then a word": lambda n: " " * n + "x",
    "structured, long": lambda n: ("## Goal\n- INT-2041 booked for 14 January 10:00.\n" * n)[:n],
}
"""Replies built to make a naive check slow (backtracking, quadratic scans, many lines)."""


def _timings(text: str, rounds: int) -> list[float]:
    stripped = text.strip()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        summary_problem(stripped)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _figures(times: list[float]) -> str:
    return f"{min(times):8.2f} {statistics.median(times):8.2f} {max(times):8.2f}"


def main(argv: list[str] | None = None) -> int:
    """Print the corpus counts and the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timings per input (default 7)")
    rounds = parser.parse_args(argv).rounds

    total = Counter(kind for kind, _, _ in BAD)
    rejected = Counter(kind for kind, _, reply in BAD if summary_problem(reply.strip()))
    print("Bad replies rejected, per kind")
    print(f"  {'kind':16s} {'rejected':>8s} {'total':>6s}")
    for kind in KINDS:
        print(f"  {kind:16s} {rejected[kind]:8d} {total[kind]:6d}")
    print(f"  {'all':16s} {sum(rejected.values()):8d} {len(BAD):6d}")
    missed = [(k, n) for k, n, reply in BAD if not summary_problem(reply.strip())]
    for kind, note in missed:
        print(f"  missed: {kind}: {note}")

    wrong = [(note, problem) for note, text in REAL if (problem := summary_problem(text.strip()))]
    print(f"\nReal summaries wrongly rejected: {len(wrong)} of {len(REAL)}")
    for note, problem in wrong:
        print(f"  {note}: {problem}")

    print(f"\nReply check on 1 MB adversarial replies, ms ({rounds} rounds)")
    print(f"  {'reply':26s} {'min':>8s} {'median':>8s} {'max':>8s}")
    every: list[float] = []
    for name, build in ADVERSARIAL.items():
        times = _timings(build(1_000_000), rounds)
        every += times
        print(f"  {name:26s} {_figures(times)}")
    print(f"  {'all of them':26s} {_figures(every)}")

    print("\nGrowth with size (the slowest kinds), median ms")
    print(f"  {'reply':26s} {'10 KB':>8s} {'100 KB':>8s} {'1 MB':>8s}")
    for name in ("'#' lines", "bullets 'x'", "structured, long", "'sk-' repeated"):
        medians = [
            statistics.median(_timings(ADVERSARIAL[name](size), rounds))
            for size in (10_000, 100_000, 1_000_000)
        ]
        print(f"  {name:26s} " + " ".join(f"{m:8.2f}" for m in medians))

    previous = ("- CAND-101 Alice Chen, INT-2041 on 14 January 10:00\n" * 20_000)[:1_000_000]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        dropped_content(previous, "The user is hiring.")
        times.append((time.perf_counter() - started) * 1000)
    print(f"\ndropped_content, 1 MB previous summary, ms: {_figures(times)} (min/median/max)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
