"""What each setting costs under the providers' prompt-cache rules (issue 20).

Runs the 200-turn benchmark conversation through CompactingSupervisor with the
summariser's two requests (a compact transcript, the default, and the conversation as the
agent read it, ``ChatModelSummarizer(request="conversation")``), at several triggers and
keeps, and prints each run priced by `benchmarks.pricing` against no compaction: raw tokens
(agent and summariser), Anthropic, gpt-4o and gpt-4.1, the same behind a 3,000-token stable
prefix, summariser calls and facts strictly lost. Token figures are deterministic (fake
models), so one run each.

Usage (from the repository root)::

    python benchmarks/cache_sweep.py                      # triggers 1,500 to 6,000, keep 5%
    python benchmarks/cache_sweep.py --keeps ratio:0.95 ratio:0.8 tokens:600 --limits 3000
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import CACHED, CompactingSettings
from benchmarks.measure import run_contender

__all__ = ["main"]

LIMITS = (1500, 2000, 3000, 4000, 6000)
KEEPS = ("ratio:0.95",)
REQUESTS = {"compacting": "transcript", CACHED: "conversation"}


def _row(name: str, settings: CompactingSettings, base: dict[str, Any], run: Any) -> str:
    data = run.to_json()
    priced = [
        data["priced"][rule] / base["priced"][rule] for rule in ("anthropic", "gpt-4o", "gpt-4.1")
    ]
    stable = [
        data["priced_stable"][rule] / base["priced_stable"][rule]
        for rule in ("anthropic", "gpt-4o")
    ]
    cells = [
        REQUESTS[name],
        f"{settings.token_limit:,}",
        repr(settings.policy()),
        f"{data['total_tokens'] / base['agent_input_tokens']:.3f}x",
        *(f"{value:.3f}x" for value in priced),
        *(f"{value:.3f}x" for value in stable),
        str(data["summariser_calls"]),
        f"{data['facts_lost_count']} of {data['facts_total']}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sweep and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=int, nargs="+", default=list(LIMITS))
    parser.add_argument("--keeps", nargs="+", default=list(KEEPS))
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args(argv)
    logging.getLogger("compacting_supervisor").setLevel(logging.ERROR)
    print(
        "| summariser reads | token_limit | keep | agent + summariser tokens | Anthropic | "
        "gpt-4o | gpt-4.1 | Anthropic, 3,000-token stable prefix | gpt-4o, stable prefix | "
        "summariser calls | facts strictly lost |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="cache-sweep-") as tmp:
        workdir = Path(tmp)
        base = run_contender("none", turns=args.turns, workdir=workdir).to_json()
        index = 0
        for name in REQUESTS:
            for keep in args.keeps:
                for limit in args.limits:
                    index += 1
                    settings = CompactingSettings(token_limit=limit, keep=keep)
                    run = run_contender(
                        name,
                        turns=args.turns,
                        workdir=workdir,
                        settings=settings,
                        round_index=index,
                    )
                    print(_row(name, settings, base, run), flush=True)


if __name__ == "__main__":
    main()
