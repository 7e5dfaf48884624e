"""Summarise the rounds (medians of within-round ratios), judge the goals, print tables.

Token figures are deterministic (the fake models are), so their rounds agree; times vary,
so every time ratio is taken within a round, against that round's no-compaction run, and
the median over rounds is reported.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.contenders import (
    KEEP_20,
    OFFLOAD,
    OFFLOAD_POLICY,
    OFFLOAD_SETTINGS,
    OUR_KEEP_TOKENS,
    SETTINGS,
    SLOW_DELAY,
    label,
)
from benchmarks.measure import LATE_TURNS, RunResult
from benchmarks.pricing import PARTS, STABLE_PREFIX_TOKENS

__all__ = ["Goal", "judge", "machine", "render", "slow_table", "summarise"]

_PACKAGES = (
    "compacting-supervisor",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langchain",
    "langchain-core",
    "langchain-openai",
    "langmem",
    "tiktoken",
)


def machine(postgres: bool) -> dict[str, Any]:
    """The CPU, memory, Python and package versions (and the Postgres server's)."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "postgres": _postgres_version() if postgres else None,
        "git": _git_revision(),
    }


def _postgres_version() -> str | None:
    try:
        import psycopg

        from benchmarks.savers import POSTGRES_SERVER

        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except Exception:
        return None


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
        ).stdout.strip()
        return done.stdout.strip() + (" (src modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _median_ratio(
    rounds: Sequence[dict[str, RunResult]], name: str, value: Callable[[RunResult], float]
) -> float:
    return statistics.median(value(r[name]) / value(r["none"]) for r in rounds)


def _spread(values: Sequence[float]) -> list[float]:
    """[min, median, max] of ``values``."""
    return [min(values), statistics.median(values), max(values)]


def summarise(rounds: Sequence[dict[str, RunResult]]) -> dict[str, dict[str, Any]]:
    """Per contender: absolute figures (first round) and median within-round ratios."""
    summary: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        first = rounds[0][name]
        summary[name] = {
            "label": label(name),
            "agent_input_tokens": first.agent_input_tokens,
            "total_tokens": first.total_tokens,
            "summariser_tokens": first.summariser_tokens,
            "summariser_output_tokens": first.summariser_output_tokens,
            "summariser_calls": first.summariser_calls,
            "agent_calls": first.agent_calls,
            "lost": len(first.lost),
            "lost_tags": first.lost,
            "facts_total": first.facts_total,
            "facts_lost": len(first.facts_lost),
            "facts_lost_tags": first.facts_lost,
            "tokens_equal_over_rounds": len({r[name].total_tokens for r in rounds}) == 1,
            "messages_total": first.messages_total,
            "blind_calls": first.blind_calls,
            "state_messages": first.state_messages,
            "sqlite_mb": statistics.median(r[name].sqlite_bytes for r in rounds) / 1e6,
            "late_turn_ms": statistics.median(r[name].late_turn_seconds for r in rounds) * 1e3,
            "agent_ratio": _median_ratio(rounds, name, lambda r: r.agent_input_tokens),
            "priced": first.priced,
            "priced_ratio": {
                rule: first.priced[rule] / rounds[0]["none"].priced[rule] for rule in first.priced
            },
            "cached_share": first.cached_tokens / max(1, first.agent_input_tokens),
            "priced_parts": {
                rule: {
                    part: value / rounds[0]["none"].priced[rule] for part, value in parts.items()
                }
                for rule, parts in first.priced_parts.items()
            },
            "priced_stable_ratio": {
                rule: first.priced_stable[rule] / rounds[0]["none"].priced_stable[rule]
                for rule in first.priced_stable
            },
            "total_ratio": _median_ratio(rounds, name, lambda r: r.total_tokens),
            "sqlite_ratio": _median_ratio(rounds, name, lambda r: r.sqlite_bytes),
            "late_ratio": _median_ratio(rounds, name, lambda r: r.late_turn_seconds),
            "late_ratios": [
                round(r[name].late_turn_seconds / r["none"].late_turn_seconds, 3) for r in rounds
            ],
            "late_ratio_spread": _spread(
                [r[name].late_turn_seconds / r["none"].late_turn_seconds for r in rounds]
            ),
            "late_ms_spread": _spread([r[name].late_turn_seconds * 1e3 for r in rounds]),
            "sqlite_ratio_spread": _spread(
                [r[name].sqlite_bytes / r["none"].sqlite_bytes for r in rounds]
            ),
            "sqlite_mb_spread": _spread([r[name].sqlite_bytes / 1e6 for r in rounds]),
            "compactions": len(first.compactions),
            "compaction_ms_median": (
                statistics.median(c["seconds"] for c in first.compactions) * 1e3
                if first.compactions
                else None
            ),
            "formats": first.formats,
        }
    return summary


def _ratio(value: float) -> str:
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def _tokens(value: int) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def _range(values: Sequence[float], cell: Callable[[float], str]) -> str:
    low, mid, high = values
    return f"{cell(mid)} ({cell(low)}-{cell(high)})"


def _cells(name: str, row: dict[str, Any]) -> list[str]:
    base = name == "none"
    lost = row["lost"]
    share = f" ({lost / row['messages_total']:.0%})" if lost else ""
    facts = f"{row['facts_lost']} of {row['facts_total']}"
    if name == "none":
        compacted = f"- ({row['state_messages']} messages)"
    elif row["state_messages"] < row["messages_total"]:
        compacted = f"yes ({row['state_messages']} messages)"
    else:
        compacted = f"no ({row['state_messages']} messages stay)"
    return [
        _tokens(row["agent_input_tokens"]) if base else _ratio(row["agent_ratio"]),
        f"1 ({_tokens(row['total_tokens'])})" if base else _ratio(row["total_ratio"]),
        *(
            f"1 ({_tokens(int(row['priced'][rule]))})"
            if base
            else _ratio(row["priced_ratio"][rule])
            for rule in _PRICED
        ),
        f"{row['cached_share']:.0%}",
        *(
            "1" if base else _ratio(row["priced_stable_ratio"][rule])
            for rule in ("anthropic", "gpt-4o")
        ),
        str(row["summariser_calls"]),
        facts,
        f"{lost} of {row['messages_total']}{share}",
        str(row["blind_calls"]),
        compacted,
        _range(row["sqlite_mb_spread"], lambda v: f"{v:.1f} MB")
        if base
        else _range(row["sqlite_ratio_spread"], _ratio),
        _range(row["late_ms_spread"], lambda v: f"{v:.1f} ms"),
        "1" if base else _range(row["late_ratio_spread"], _ratio),
    ]


_PRICED = {
    "anthropic": "Anthropic (read 0.1x, write 1.25x)",
    "gpt-4o": "OpenAI gpt-4o (cached 0.5x)",
    "gpt-4.1": "OpenAI gpt-4.1 (cached 0.25x)",
}
"""The cache rules of `benchmarks.pricing`, as the table names them."""

_ROWS = (
    "agent input tokens",
    "agent + summariser tokens",
    *(f"priced input, {title}" for title in _PRICED.values()),
    "agent input a prompt cache could serve",
    f"priced, Anthropic, behind a {STABLE_PREFIX_TOKENS:,}-token stable prefix",
    f"priced, gpt-4o, behind a {STABLE_PREFIX_TOKENS:,}-token stable prefix",
    "summariser calls",
    "facts (tool results) strictly lost: not in the thread or its summary at the end",
    "messages never sent to a summariser and not visible",
    "agent calls without the user's message",
    "checkpoint compacted",
    "SQLite file after the run: median (min-max) over rounds",
    f"late-turn time (median of last {LATE_TURNS}): median (min-max) over rounds",
    "  against no compaction, within each round: median (min-max)",
)


def main_table(summary: dict[str, dict[str, Any]]) -> str:
    """The comparison table (Markdown): one column per contender."""
    names = list(summary)
    header = "| | " + " | ".join(summary[n]["label"] for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    columns = {n: _cells(n, summary[n]) for n in names}
    for index, title in enumerate(_ROWS):
        lines.append(f"| {title} | " + " | ".join(columns[n][index] for n in names) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    """One goal of the issue, measured."""

    number: int
    """The goal's number in the issue."""
    what: str
    """What it asks."""
    measured: str
    """What was measured."""
    passed: bool | None
    """Met, missed, or None for a measurement without a target."""


def judge(summary: dict[str, dict[str, Any]], micro: dict[str, Any]) -> list[Goal]:
    """Compare the measurements with the issue's goals."""
    ours = summary["compacting"]
    goals = [
        Goal(
            1,
            "agent + summariser tokens <= 0.06x, <= 25 summariser calls, nothing lost (strictly)",
            "; ".join(
                f"{row['label']}: {_ratio(row['total_ratio'])} (agent alone "
                f"{_ratio(row['agent_ratio'])}), {row['summariser_calls']} calls, "
                f"{row['facts_lost']} facts and {row['lost']} messages lost"
                for row in (summary[n] for n in ("compacting", OFFLOAD) if n in summary)
            ),
            any(
                row["total_ratio"] <= 0.06
                and row["summariser_calls"] <= 25
                and row["lost"] == row["facts_lost"] == 0
                for row in (summary[n] for n in ("compacting", OFFLOAD) if n in summary)
            ),
        ),
        Goal(
            2,
            "SQLite file <= 0.12x of no compaction",
            f"{_ratio(ours['sqlite_ratio'])} ({ours['sqlite_mb']:.1f} MB)",
            ours["sqlite_ratio"] <= 0.12,
        ),
        Goal(
            3,
            "late-turn time <= 0.35x of no compaction",
            f"{_ratio(ours['late_ratio'])} (rounds: {ours['late_ratios']})",
            ours["late_ratio"] <= 0.35,
        ),
    ]
    if overhead := micro.get("overhead"):
        worst = max(overhead, key=lambda r: r["overhead_ab_pct"])
        text = "; ".join(
            f"{r['saver']} {r['messages']} msgs: {r['overhead_ab_pct']:+.1f}% "
            f"(own {r['wrapper_own_ms']:.2f} ms = {r['wrapper_own_pct']:.1f}%)"
            for r in overhead
        )
        goals.append(
            Goal(
                3,
                "wrapper overhead on a non-compacting turn <= 5% at 100 and 1,000 msgs",
                text,
                worst["overhead_ab_pct"] <= 5 and max(r["wrapper_own_pct"] for r in overhead) <= 5,
            )
        )
    if counting := micro.get("counting"):
        goals.append(
            Goal(
                4,
                "exact counts (= tiktoken on every message), <= 0.2 ms per turn at 1,000 msgs",
                f"equal: {counting['equal_to_chatopenai']} "
                f"({counting['per_message_mismatches']} mismatches); per turn "
                f"{counting['per_turn_reloaded_ms']:.2f} ms (reloaded messages), "
                f"{counting['per_turn_same_objects_ms']:.2f} ms (same objects); full count "
                f"ChatOpenAI {counting['chatopenai_full_ms']:.1f} ms, "
                f"ours cold {counting['counter_cold_full_ms']:.1f} ms",
                counting["equal_to_chatopenai"] and counting["per_turn_reloaded_ms"] <= 0.2,
            )
        )
    if cost := micro.get("compaction_cost"):
        at_1000 = next(
            (r for r in cost if r["saver"] == "sqlite" and 900 <= r["messages"] <= 1100), None
        )
        exponents = micro.get("growth_exponents", {})
        linear = all(e <= 1.15 for e in exponents.values())
        goals.append(
            Goal(
                5,
                "compaction's own cost <= 20 ms at 1,000 msgs on SQLite; linear or better",
                (f"{at_1000['compaction_ms']:.1f} ms at 1,000 on SQLite; " if at_1000 else "")
                + "growth exponent "
                + ", ".join(f"{k} {v}" for k, v in sorted(exponents.items())),
                bool(at_1000) and at_1000["compaction_ms"] <= 20 and linear,
            )
        )
    if mem := micro.get("memory"):
        goals.append(
            Goal(
                6,
                f"peak memory flat over {mem['turns']} turns (growth < 20 MB)",
                f"{mem['growth_mb']:+.1f} MB (RSS {mem['rss_first_window_mb']} -> "
                f"{mem['rss_last_window_mb']} MB, process peak "
                f"{mem['peak_after_first_window_mb']} -> {mem['peak_at_end_mb']} MB)",
                mem["growth_mb"] < 20,
            )
        )
    if formats := ours.get("formats"):
        saved = 1 - formats["transcript"] / formats["message_json"]
        goals.append(
            Goal(
                7,
                "summariser input as compact transcript vs message JSON",
                f"{formats['transcript']:,} vs {formats['message_json']:,} tokens: "
                f"{saved:.0%} saved ({formats['messages']} messages, "
                f"{formats['sessions']} compactions)",
                None,
            )
        )
    return goals


def slow_table(rounds: Sequence[dict[str, RunResult]]) -> str:
    """Wall time with a summariser that takes 0.5-2 s a call (the models' time included)."""
    low, high = SLOW_DELAY
    names = list(rounds[0])
    lines = [
        f"With a summariser that takes {low:g}-{high:g} s a call ({len(rounds)} round(s); "
        "wall time, the models' time included: what a user waits):",
        "",
        "| | " + " | ".join(label(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]

    def row(title: str, cell: Callable[[RunResult], str]) -> None:
        lines.append(f"| {title} | " + " | ".join(cell(rounds[0][n]) for n in names) + " |")

    def spread(values: list[float]) -> str:
        ordered = sorted(values)
        return f"{ordered[0]:.2f} / {statistics.median(ordered):.2f} / {ordered[-1]:.2f}"

    row("summariser calls", lambda r: str(r.summariser_calls))
    row("whole conversation", lambda r: f"{sum(r.wall_seconds):.0f} s")
    row("turn s, min / median / max", lambda r: spread(r.wall_seconds))
    row("turns that waited >= 0.5 s", lambda r: str(sum(t >= 0.5 for t in r.wall_seconds)))

    def answered(run: RunResult) -> str:
        waits = [a for a, c in zip(run.answer_seconds, run.compacted_turns, strict=True) if c]
        return spread(waits) if waits else "-"

    row("streamed: s to the answer in turns that summarised, min / median / max", answered)
    row(
        "streamed: answers that waited >= 0.5 s",
        lambda r: str(sum(a >= 0.5 for a in r.answer_seconds)),
    )
    row("framework's own time, whole conversation", lambda r: f"{sum(r.turn_seconds):.1f} s")
    return "\n".join([*lines, ""])


def _goals_table(goals: list[Goal]) -> str:
    lines = ["| goal | target | measured | |", "|---|---|---|---|"]
    for goal in goals:
        verdict = {True: "met", False: "**missed**", None: "-"}[goal.passed]
        lines.append(f"| {goal.number} | {goal.what} | {goal.measured} | {verdict} |")
    return "\n".join(lines)


def _micro_tables(micro: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if overhead := micro.get("overhead"):
        out += [
            "Wrapper overhead on a turn that does not compact (median; own = the wrapper's "
            "time outside the graph's invoke):",
            "",
            "| saver | messages | unwrapped | wrapped | overhead | wrapper's own |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['saver']} | {r['messages']} | {r['bare_ms']:.2f} ms | {r['wrapped_ms']:.2f} ms"
            f" | {r['overhead_ab_pct']:+.1f}% | {r['wrapper_own_ms']:.2f} ms "
            f"({r['wrapper_own_pct']:.1f}%) |"
            for r in overhead
        ]
        out.append("")
    if counting := micro.get("counting"):
        c = counting
        out += [
            f"Exact counts, {c['messages']}-message thread ({c['tokens']:,} tokens):",
            "",
            "| what | time |",
            "|---|---|",
            f"| ChatOpenAI(model='gpt-4').get_num_tokens_from_messages, full | "
            f"{c['chatopenai_full_ms']:.1f} ms |",
            f"| TokenCounter, full count from cold | {c['counter_cold_full_ms']:.1f} ms |",
            f"| TokenCounter, per turn (+{c['new_messages_per_turn']} messages), same objects | "
            f"{c['per_turn_same_objects_ms']:.2f} ms |",
            f"| TokenCounter, per turn, messages reloaded from a checkpoint | "
            f"{c['per_turn_reloaded_ms']:.2f} ms |",
            f"| CompactingSupervisor.context_tokens per turn (what runs after each turn) | "
            f"{c['per_turn_supervisor_ms']:.2f} ms |",
            f"| equal to ChatOpenAI on every message | {c['equal_to_chatopenai']} |",
            "",
        ]
    if cost := micro.get("compaction_cost"):
        sizes = sorted({r["messages"] for r in cost})
        savers = sorted({r["saver"] for r in cost}, key=["memory", "sqlite", "postgres"].index)
        table = {(r["saver"], r["messages"]): r for r in cost}
        out += [
            "A compaction's own cost (`compact()`, the summariser model's time excluded; "
            f"{SETTINGS.describe()}):",
            "",
            "| saver | " + " | ".join(f"{n} msgs" for n in sizes) + " | growth exponent |",
            "|---" * (len(sizes) + 2) + "|",
        ]
        exponents = micro.get("growth_exponents", {})
        for saver in savers:
            cells = [
                f"{table[(saver, n)]['compaction_ms']:.1f} ms" if (saver, n) in table else "-"
                for n in sizes
            ]
            out.append(f"| {saver} | " + " | ".join(cells) + f" | {exponents.get(saver, '-')} |")
        out.append("")
    if profile := micro.get("profile"):
        out += [
            f"Where a compaction of {profile['messages']} messages on SQLite goes "
            f"({profile['summarised']} summarised), each step timed alone:",
            "",
            "| step | time |",
            "|---|---|",
        ]
        out += [f"| {k} | {v:.1f} ms |" for k, v in profile["steps_ms"].items()]
        out.append("")
    if mem := micro.get("memory"):
        out += [
            f"Memory over {mem['turns']} turns (CompactingSupervisor on SQLite, "
            f"{mem['compactions']} compactions, a process of its own): resident "
            f"{mem['rss_first_window_mb']} MB at most in the first {mem['window_turns']} turns, "
            f"{mem['rss_last_window_mb']} MB at most in the last {mem['window_turns']}; the "
            f"process's peak {mem['peak_after_first_window_mb']} MB after the first "
            f"{mem['window_turns']} turns, {mem['peak_at_end_mb']} MB at the end.",
            "",
        ]
    return out


def _token_split(row: dict[str, Any]) -> list[str]:
    """Where CompactingSupervisor's tokens go: agent calls, summariser prompt and summaries."""
    formats = row.get("formats") or {}
    calls = max(1, row["summariser_calls"])
    agent = row["agent_input_tokens"]
    summariser_in = row["summariser_tokens"] - row["summariser_output_tokens"]
    overhead = summariser_in - formats.get("transcript", 0)
    return [
        f"Where CompactingSupervisor's tokens go: the agent's model {agent:,} "
        f"({row['agent_calls']} calls, {agent // max(1, row['agent_calls']):,} per call); the "
        f"summariser read {summariser_in:,} ({formats.get('transcript', 0):,} of them the "
        f"summarised messages as a transcript, {overhead:,} its prompt, the running summary "
        f"and the request: {overhead // calls:,} per call) and wrote "
        f"{row['summariser_output_tokens']:,} ({row['summariser_output_tokens'] // calls:,} "
        "per summary).",
        "",
    ]


def _priced_parts(summary: dict[str, Any]) -> list[str]:
    """Where each contender's priced input goes, on Anthropic's and gpt-4o's rules."""
    rows = {
        name: row for name, row in summary.items() if name != "none" and row.get("priced_parts")
    }
    if not rows:
        return []
    lines = [
        "Where the priced input goes, against no compaction's whole priced input (`new "
        "messages`: each message the first time it is sent, a new summary included; `sent "
        "again uncached`: what a request sends again outside the cache, such as the system "
        "prompt and kept messages after a compaction, and whole requests under the 1,024 "
        "tokens a cache needs):",
        "",
        "| | " + " | ".join(row["label"] for row in rows.values()) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for rule, title in (("anthropic", "Anthropic"), ("gpt-4o", "gpt-4o")):
        for part in PARTS:
            cells = [_ratio(row["priced_parts"][rule][part]) for row in rows.values()]
            lines.append(f"| {title}: {part} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _formats_table(formats: dict[str, int]) -> list[str]:
    if not formats:
        return []
    base = formats["message_json"]
    names = {
        "transcript": "compact transcript (what the package sends)",
        "message_json": "LangChain message JSON (messages_to_dict)",
        "openai_json": "OpenAI chat JSON",
        "chat_messages": "as chat messages (langmem)",
        "buffer_xml": "get_buffer_string xml (SummarizationMiddleware)",
    }
    out = [
        f"What CompactingSupervisor summarised ({formats['messages']} messages in "
        f"{formats['sessions']} compactions), in tokens, by format:",
        "",
        "| format | tokens | vs message JSON |",
        "|---|---|---|",
    ]
    out += [
        f"| {label} | {formats[key]:,} | {formats[key] / base - 1:+.0%} |"
        for key, label in names.items()
    ]
    return [*out, ""]


def render(
    info: dict[str, Any],
    summary: dict[str, dict[str, Any]],
    goals: list[Goal],
    micro: dict[str, Any],
    *,
    turns: int,
    rounds: int,
    command: str,
    offload: str | None = None,
) -> str:
    """The whole printed report (Markdown).

    ``offload`` describes the offload column's settings when they are not
    `OFFLOAD_SETTINGS` (``--offload-limit``).
    """
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        f"## {turns} turns, median of {rounds} interleaved round(s)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, "
        f"{info['os']}; Python {info['python']}; {packages}"
        + (f"; PostgreSQL {info['postgres']}" if info.get("postgres") else "")
        + (f"; git {info['git']}" if info.get("git") else "")
        + ".",
        "",
        f"Command: `{command}`. Every contender triggers at 3,000 tokens. "
        f"CompactingSupervisor: {SETTINGS.describe()}; + offload: "
        f"{offload or OFFLOAD_SETTINGS.describe()}, offload={OFFLOAD_POLICY}; ours at the "
        "middleware's "
        f"keep: {KEEP_20.describe()}; the middleware: trigger=('tokens', 3000), "
        f"keep=('messages', 20), and at our keep keep=('tokens', {OUR_KEEP_TOKENS}) (the "
        "newest 5%), both counting with our counter, and as shipped (keep 20 messages, its "
        "own count_tokens_approximately); langmem: max_tokens=3000. One counter measures "
        "all (the package's TokenCounter, cl100k_base). Token figures are deterministic "
        "(equal in every round); times and file sizes are median (min-max) over rounds, "
        "ratios taken within each round against no compaction.",
        "",
        main_table(summary),
        "",
        *(
            [f"(The goals below are set for 200 turns; this run has {turns}.)", ""]
            if turns != 200
            else []
        ),
        _goals_table(goals),
        "",
        *(_token_split(summary["compacting"]) if "compacting" in summary else []),
        *_priced_parts(summary),
        *_formats_table(summary.get("compacting", {}).get("formats") or {}),
        *_micro_tables(micro),
    ]
    return "\n".join(lines)
