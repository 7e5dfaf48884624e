"""CompactingSupervisor's settings side by side: tokens and summariser calls per setting.

Tokens do not depend on the checkpointer, so the sweep runs on InMemorySaver. It shows
where the table's setting sits: what each token limit and keep policy costs in agent and
summariser tokens, against how often the summariser is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from benchmarks.contenders import CompactingSettings, build
from benchmarks.conversation import script
from compacting_supervisor import TokenCounter

__all__ = ["KEEPS", "LIMITS", "sweep"]

LIMITS = (2000, 3000, 4000)
KEEPS = ("ratio:0.5", "ratio:0.8", "ratio:0.95", "messages:20", "tokens:1000")


def _tokens(settings: CompactingSettings | None, turns: int) -> dict[str, int]:
    contender = build("compacting" if settings else "none", InMemorySaver(), settings=settings)
    counter = TokenCounter()
    agent = summariser = calls = 0
    for turn in script(turns):
        contender.turn(turn.user)
        agent += sum(counter.count(c) for c in contender.agent_model.drain())
        for call in contender.summariser.drain_calls():
            calls += 1
            summariser += counter.count(call.messages) + counter.count_text(call.output)
    return {"agent": agent, "summariser": summariser, "calls": calls}


def sweep(
    *, turns: int, limits: Sequence[int] = LIMITS, keeps: Sequence[str] = KEEPS
) -> list[dict[str, Any]]:
    """Token ratios (against no compaction) and summariser calls for each setting."""
    base = _tokens(None, turns)["agent"]
    rows = []
    for limit in limits:
        for keep in keeps:
            figures = _tokens(CompactingSettings(token_limit=limit, keep=keep), turns)
            rows.append(
                {
                    "token_limit": limit,
                    "keep": keep,
                    "agent_ratio": round(figures["agent"] / base, 4),
                    "total_ratio": round((figures["agent"] + figures["summariser"]) / base, 4),
                    "summariser_calls": figures["calls"],
                }
            )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    """The sweep as a Markdown table."""
    lines = [
        "| token_limit | keep | agent tokens | agent + summariser | summariser calls |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['token_limit']} | {r['keep']} | {r['agent_ratio']:.3f}x | "
        f"{r['total_ratio']:.3f}x | {r['summariser_calls']} |"
        for r in rows
    ]
    return "\n".join(lines)
