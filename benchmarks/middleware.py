"""`CompactionMiddleware` next to LangChain's ``SummarizationMiddleware`` inside `create_agent`.

    python -m benchmarks.middleware [--turns 300] [--saver sqlite] [--quick] [--json out.json]

A tool-heavy order desk, 300 turns by default, run through five ``create_agent`` agents
(no compaction; `CompactionMiddleware` with its default summary cap and with the cap at the
trigger; the same agent wrapped in `CompactingSupervisor`; LangChain's
``SummarizationMiddleware``) side by side, turn by turn (their order rotating every turn),
each on its own checkpointer, on instant scripted fakes:

- odd turns: the user asks for an order; the agent calls ``get_order``, whose result is
  1-3 KB of JSON holding the order's tracking number (the fact) among line items, and
  answers without repeating the number;
- even turns: the user asks for the tracking number of an order looked up before (every
  other question a recent order, the rest any earlier one); the agent answers with it when
  it is anywhere in what it is sent (a result, an earlier answer or a summary), else says
  it no longer has it.

The middlewares share the trigger and the keep: compact when the model is about to see more
than 3,000 tokens (ours counts the system prompt and tool schemas too, LangChain's the
messages only), keep the newest 1,500 tokens; the wrapper compacts after a run that leaves
more than 3,000 tokens of messages in the thread, keeping the newest 1,500. Every
summariser is the same fake, a faithful one: it keeps every order's tracking number it is
shown (in the existing summary or the messages) and reports its usage like a provider.
``--quick`` runs 20 turns on InMemorySaver, for tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import PrivateAttr

from benchmarks.savers import open_saver, sqlite_bytes
from compacting_supervisor import (
    CompactingSupervisor,
    CompactionMiddleware,
    HistoryManager,
    KeepTokens,
    TokenCounter,
)

__all__ = ["CONTENDERS", "KEEP_TOKENS", "TRIGGER_TOKENS", "main", "run"]

TRIGGER_TOKENS = 3_000
"""Both middlewares compact when the model is about to see more than this."""

KEEP_TOKENS = 1_500
"""Both keep the newest messages within this many tokens."""

CONTENDERS = ("none", "ours", "ours-long-summary", "wrapper", "langchain")
"""No compaction; ours with its default summary cap (a quarter of the trigger, 750 tokens);
ours with the cap at the trigger (LangChain's summary has no cap); the agent wrapped in
`CompactingSupervisor` (default cap); LangChain's."""
LABELS = {
    "none": "no compaction",
    "ours": "CompactionMiddleware",
    "ours-long-summary": "CompactionMiddleware, summary cap 3,000",
    "wrapper": "CompactingSupervisor",
    "langchain": "SummarizationMiddleware",
}
_OURS = f"token_limit={TRIGGER_TOKENS}, keep=KeepTokens({KEEP_TOKENS})"
SETTINGS = {
    "none": "-",
    "ours": _OURS,
    "ours-long-summary": f"{_OURS}, max_summary_tokens={TRIGGER_TOKENS}",
    "wrapper": _OURS,
    "langchain": f'trigger=("tokens", {TRIGGER_TOKENS}), keep=("tokens", {KEEP_TOKENS})',
}

SYSTEM_PROMPT = (
    "You are the order desk assistant. Look orders up with get_order when the user asks "
    "for one, and answer questions about orders from what you have seen. Copy tracking "
    "numbers exactly; say so when you no longer have an order's record."
)

_FACT = re.compile(r"(ORD-\d{4})\W+(?:[a-z_ ]{1,20}\W+)?(TRK-\d{6})")
"""An order and its tracking number, in JSON, YAML, a summary line or an answer."""
_LOOKUP = re.compile(r"Please pull up order (ORD-\d{4})")
_QUESTION = re.compile(r"What is the tracking number of (ORD-\d{4})\?")
_WORDS = ("pallet", "carton", "crate", "drum", "bag", "roll", "coil", "sheet", "reel", "box")


# ------------------------------------------------------------------ the workload


def order_id(number: int) -> str:
    """``ORD-0013``."""
    return f"ORD-{number:04d}"


def tracking(number: int) -> str:
    """Order ``number``'s tracking number: the fact the user asks about."""
    return f"TRK-{random.Random(f'trk-{number}').randint(100_000, 999_999)}"


def order_record(number: int) -> str:
    """``get_order``'s result: 1-3 KB of JSON, the tracking number among line items."""
    rng = random.Random(f"order-{number}")
    size = rng.randint(1_000, 3_000)
    record: dict[str, Any] = {
        "order": order_id(number),
        "tracking": tracking(number),
        "status": rng.choice(("open", "shipped", "held")),
        "lines": [],
    }
    while len(json.dumps(record)) < size - 120:
        record["lines"].append(
            {
                "sku": f"SKU-{rng.randint(10_000, 99_999)}",
                "qty": rng.randint(1, 400),
                "unit": rng.choice(_WORDS),
                "price": round(rng.uniform(1, 900), 2),
            }
        )
    return json.dumps(record)


def user_text(turn: int) -> str:
    """Odd turns ask for order ``(turn + 1) // 2``; even ones ask about an earlier order."""
    if turn % 2:
        return f"[U{turn:03d}] Please pull up order {order_id((turn + 1) // 2)}."
    seen = turn // 2
    rng = random.Random(f"ask-{turn}")
    asked = max(1, seen - rng.randint(0, 4)) if turn % 4 == 0 else rng.randint(1, seen)
    return f"[U{turn:03d}] What is the tracking number of {order_id(asked)}?"


@tool
def get_order(order_id: str) -> str:
    """Read an order's record: status, tracking number and line items."""
    return order_record(int(order_id.removeprefix("ORD-")))


def facts_in(text: str) -> dict[str, str]:
    """Every order and tracking number ``text`` pairs."""
    return dict(_FACT.findall(text))


# ------------------------------------------------------------------ the fakes


class _Fake(BaseChatModel):
    """Records what it is sent and the time it spends, for the harness."""

    busy_seconds: float = 0.0
    _calls: list[tuple[list[BaseMessage], AIMessage]] = PrivateAttr(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _Fake:
        """Accept tools like a real model; the script decides when to call them."""
        return self

    def drain(self) -> list[tuple[list[BaseMessage], AIMessage]]:
        """The calls since the last drain: what the model was sent, and its answer."""
        calls, self._calls = self._calls, []
        return calls

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        started = time.perf_counter()
        answer = self._answer(messages)
        self._calls.append((list(messages), answer))
        self.busy_seconds += time.perf_counter() - started
        return ChatResult(generations=[ChatGeneration(message=answer)])


class OrderDeskModel(_Fake):
    """The agent: calls ``get_order`` when asked for an order, answers questions from its input."""

    answered: int = 0
    asked: int = 0

    @property
    def _llm_type(self) -> str:
        return "benchmark-order-desk"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            order = json.loads(last.text)["order"]
            return AIMessage(f"I have the record of {order}; ask me anything about it.")
        request = next(
            m.text
            for m in reversed(messages)
            if _LOOKUP.search(m.text or "") or _QUESTION.search(m.text or "")
        )
        if lookup := _LOOKUP.search(request):
            order = lookup.group(1)
            call = {"name": "get_order", "args": {"order_id": order}, "id": f"call_{order}"}
            return AIMessage("", tool_calls=[call])
        order = _QUESTION.search(request).group(1)  # type: ignore[union-attr]
        self.asked += 1
        known = facts_in("\n".join(m.text for m in messages)).get(order)
        if known is None:
            return AIMessage(f"I no longer have the record of {order}.")
        self.answered += known == tracking(int(order[4:]))
        return AIMessage(f"{order} ships under {known}.")


class FaithfulSummariser(_Fake):
    """Keeps every order's tracking number it is shown, in sections; reports its usage."""

    _counter: TokenCounter = PrivateAttr(default_factory=TokenCounter)

    @property
    def _llm_type(self) -> str:
        return "benchmark-faithful-summariser"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        facts = facts_in("\n".join(m.text for m in messages))
        lines = [f"- {order}: {number}" for order, number in sorted(facts.items())]
        text = "\n".join(
            [
                "## Goal",
                "- Look up the user's orders and answer questions about them.",
                "## Artifacts (verbatim)",
                *(lines or ["- none"]),
                "## Current state",
                f"- {len(lines)} orders looked up; answering the user's questions.",
            ]
        )
        read, written = self._counter.count(messages), self._counter.count_text(text)
        usage = UsageMetadata(input_tokens=read, output_tokens=written, total_tokens=read + written)
        return AIMessage(text, usage_metadata=usage)


# ------------------------------------------------------------------ the contenders


class _Counting:
    """Keeps the ``before_model`` calls that replaced the history (the compactions).

    Each is kept as the messages before and the update, for the harness to measure after
    the turn's timer has stopped.
    """

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        update: dict[str, Any] | None = super().before_model(state, runtime)  # type: ignore[misc]
        if update is not None:
            self.__dict__.setdefault("updates", []).append((list(state["messages"]), update))
        return update


class _Ours(_Counting, CompactionMiddleware):
    pass


def _langchain_middleware(summariser: FaithfulSummariser, counter: TokenCounter) -> Any:
    from langchain.agents.middleware import SummarizationMiddleware

    class _Theirs(_Counting, SummarizationMiddleware):  # type: ignore[misc]
        pass

    return _Theirs(
        summariser,
        trigger=("tokens", TRIGGER_TOKENS),
        keep=("tokens", KEEP_TOKENS),
        token_counter=counter.count,
    )


class _CapNotes(logging.Handler):
    """Counts the summaries our cap shortened (`max_summary_tokens`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.capped = 0
        """Summaries our cap shortened (`max_summary_tokens`)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.capped += "over the summary's cap" in record.getMessage()


class _Run:
    """One contender's agent on its own checkpointer, and what it measured."""

    def __init__(self, name: str, saver: Any, handle: Any = None) -> None:
        from langchain.agents import create_agent

        self.name = name
        self.model, self.summariser = OrderDeskModel(), FaithfulSummariser()
        counter = TokenCounter()
        self.middleware: Any = None
        if name.startswith("ours"):
            long_summary = TRIGGER_TOKENS if name == "ours-long-summary" else None
            manager = HistoryManager(model=self.summariser, max_summary_tokens=long_summary)
            self.middleware = _Ours(
                history_manager=manager,
                token_limit=TRIGGER_TOKENS,
                keep=KeepTokens(KEEP_TOKENS),
                system_prompt=SYSTEM_PROMPT,
                tools=[get_order],
            )
        elif name == "langchain":
            self.middleware = _langchain_middleware(self.summariser, counter)
        self.graph = create_agent(
            self.model,
            [get_order],
            system_prompt=SYSTEM_PROMPT,
            middleware=[self.middleware] if self.middleware else [],
            checkpointer=saver,
        )
        self.runner: Any = self.graph
        if name == "wrapper":
            self.runner = CompactingSupervisor(
                self.graph,
                HistoryManager(model=self.summariser),
                token_limit=TRIGGER_TOKENS,
                keep=KeepTokens(KEEP_TOKENS),
            )
        self.handle = handle
        """The SQLite connection and file (None on another saver)."""
        self.config = {"configurable": {"thread_id": f"bench-{name}"}}
        self.counter = TokenCounter()
        self.seconds: list[float] = []
        self.input_tokens = self.largest_input = self.calls = 0
        self.summariser_calls = self.summariser_input = self.summariser_output = 0
        self.failures: list[dict[str, Any]] = []
        self.capped = 0
        """Summaries our cap shortened (`max_summary_tokens`)."""
        self.compactions = self.no_gain = 0
        """Compactions, and those that left the messages no shorter."""
        self.compacted_turns: list[bool] = []
        """Whether each turn compacted."""
        self._last_result: Any = None

    def turn(self, number: int) -> None:
        busy = self.model.busy_seconds + self.summariser.busy_seconds
        started = time.perf_counter()
        self.runner.invoke({"messages": [HumanMessage(user_text(number))]}, self.config)
        spent = time.perf_counter() - started
        busy = self.model.busy_seconds + self.summariser.busy_seconds - busy
        self.seconds.append(spent - busy)  # the fakes' own time is not the framework's
        for call, _ in self.model.drain():  # counted after the timer stopped
            size = self.counter.count(call)
            self.calls += 1
            self.input_tokens += size
            self.largest_input = max(self.largest_input, size)
        for call, answer in self.summariser.drain():
            self.summariser_calls += 1
            self.summariser_input += self.counter.count(call)
            self.summariser_output += self.counter.count_text(answer.text)
        updates = self.middleware.__dict__.pop("updates", []) if self.middleware else []
        self.compacted_turns.append(bool(updates))
        for before, update in updates:
            new = update["messages"]
            new = getattr(new, "value", new)  # ours may write an Overwrite of the channel
            after = [m for m in new if not isinstance(m, RemoveMessage)]
            self.compactions += 1
            self.no_gain += self.counter.count(after) >= self.counter.count(before)
        if self.name.startswith("ours") or self.name == "wrapper":
            owner = self.runner if self.name == "wrapper" else self.middleware
            result = owner.last_compaction(self.config)
            if result is not None and result is not self._last_result:
                self._last_result = result
                if self.name == "wrapper" and result.status == "compacted":
                    self.compacted_turns[-1] = True
                    self.compactions += 1
                    self.no_gain += result.tokens_after >= result.tokens_before
                if result.status != "compacted":
                    reason = (result.error or "").partition(":")[0]
                    self.failures.append({"turn": number, "status": result.status, "why": reason})

    def report(self, turns: int, window: int) -> dict[str, Any]:
        messages = self.graph.get_state(self.config).values["messages"]
        seen = "\n".join([SYSTEM_PROMPT, *(m.text for m in messages)])
        orders = range(1, (turns + 1) // 2 + 1)
        lost = [order_id(n) for n in orders if tracking(n) not in seen]
        ms = [s * 1000 for s in self.seconds]
        turns_ms = list(zip(ms, self.compacted_turns, strict=True))
        early, late = statistics.median(ms[:window]), statistics.median(ms[-window:])
        return {
            "sqlite_bytes": sqlite_bytes(*self.handle) if self.handle else None,
            "label": LABELS[self.name],
            "settings": SETTINGS[self.name],
            "agent_calls": self.calls,
            "input_tokens": self.input_tokens,
            "largest_input": self.largest_input,
            "summariser_calls": self.summariser_calls,
            "summariser_input_tokens": self.summariser_input,
            "summariser_output_tokens": self.summariser_output,
            "compactions": self.compactions,
            "compactions_no_shorter": self.no_gain,
            "failed_compactions": self.failures,
            "summaries_capped": self.capped,
            "facts": len(orders),
            "facts_lost": len(lost),
            "lost": lost,
            "questions": self.model.asked,
            "answered": self.model.answered,
            "state_messages": len(messages),
            "turn_ms": {
                "window": window,
                "early_median": early,
                "late_median": late,
                "late_over_early": late / early if early else None,
                "slope_per_100_turns": _slope(ms) * 100,
                "min": min(ms),
                "median": statistics.median(ms),
                "max": max(ms),
                "with_compaction": _median(t for t, c in turns_ms if c),
                "without": _median(t for t, c in turns_ms if not c),
                "all": [round(t, 3) for t in ms],
            },
        }


def _slope(values: Sequence[float]) -> float:
    """The least-squares slope of ``values`` against their index (per turn)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, statistics.fmean(values)
    spread = sum((x - mean_x) ** 2 for x in range(n))
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / spread


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return statistics.median(found) if found else None


# ------------------------------------------------------------------ the run


def run(
    turns: int, *, saver: str = "sqlite", workdir: Path | None = None, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Run ``turns`` turns through every contender, interleaved; return their figures."""
    from contextlib import ExitStack

    notes = _CapNotes()
    package_log = logging.getLogger("compacting_supervisor")
    package_log.addHandler(notes)
    level, package_log.propagate = package_log.level, False  # our cap's warnings: counted
    package_log.setLevel(logging.WARNING)
    try:
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=workdir)))
            runs = [
                _Run(name, *stack.enter_context(open_saver(saver, folder, f"mw-{name}")))
                for name in CONTENDERS
            ]
            for number in range(1, turns + 1):
                shift = number % len(runs)
                for one in runs[shift:] + runs[:shift]:
                    capped = notes.capped
                    one.turn(number)
                    one.capped += notes.capped - capped
                if progress and number % 50 == 0:
                    print(f"  turn {number}/{turns}", file=sys.stderr, flush=True)
            window = min(50, max(1, turns // 6))
            results = {one.name: one.report(turns, window) for one in runs}
    finally:
        package_log.removeHandler(notes)
        package_log.setLevel(level)
        package_log.propagate = True
    return results


def render(results: dict[str, dict[str, Any]], *, turns: int, saver: str) -> str:
    """The figures as a Markdown table, one column per contender."""
    base = results["none"]["input_tokens"]
    window = results["none"]["turn_ms"]["window"]
    rows: list[tuple[str, Any]] = [
        ("settings", lambda r: r["settings"]),
        ("agent model calls", lambda r: f"{r['agent_calls']:,}"),
        ("model input tokens (sum)", lambda r: f"{r['input_tokens']:,}"),
        ("  against no compaction", lambda r: f"{r['input_tokens'] / base:.2f}x"),
        ("largest model input", lambda r: f"{r['largest_input']:,}"),
        ("compactions", lambda r: r["compactions"]),
        ("  of them no shorter than before", lambda r: r["compactions_no_shorter"]),
        ("summariser calls", lambda r: r["summariser_calls"]),
        ("summariser input tokens", lambda r: f"{r['summariser_input_tokens']:,}"),
        ("summariser output tokens", lambda r: f"{r['summariser_output_tokens']:,}"),
        ("summaries shortened by our cap", lambda r: r["summaries_capped"]),
        ("facts strictly lost", lambda r: f"{r['facts_lost']} of {r['facts']}"),
        ("questions answered", lambda r: f"{r['answered']} of {r['questions']}"),
        ("messages in the thread at the end", lambda r: r["state_messages"]),
        (
            "SQLite file at the end",
            lambda r: "-" if r["sqlite_bytes"] is None else f"{r['sqlite_bytes'] / 1e6:.2f} MB",
        ),
        (f"turn ms, median of turns 1-{window}", lambda r: f"{r['turn_ms']['early_median']:.2f}"),
        (
            f"turn ms, median of turns {turns - window + 1}-{turns}",
            lambda r: f"{r['turn_ms']['late_median']:.2f}",
        ),
        ("  late / early", lambda r: f"{r['turn_ms']['late_over_early']:.2f}x"),
        (
            "turn ms, slope per 100 turns (least squares)",
            lambda r: f"{r['turn_ms']['slope_per_100_turns']:+.2f}",
        ),
        (
            "turn ms, median of turns with / without a compaction",
            lambda r: "{} / {}".format(
                *(_ms(r["turn_ms"][key]) for key in ("with_compaction", "without"))
            ),
        ),
        (
            "turn ms, min / median / max",
            lambda r: "{min:.2f} / {median:.2f} / {max:.2f}".format(**r["turn_ms"]),
        ),
    ]
    names = list(CONTENDERS)
    lines = [
        f"{turns} turns, a get_order call every other turn, on {saver}; "
        f"trigger {TRIGGER_TOKENS:,} tokens, keep {KEEP_TOKENS:,} tokens.",
        "",
        "| | " + " | ".join(LABELS[n] for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    lines += [
        f"| {title} | " + " | ".join(str(value(results[n])) for n in names) + " |"
        for title, value in rows
    ]
    lines.append("")
    for name in names:
        if failed := results[name]["failed_compactions"]:
            kinds = sorted({f"{f['status']} ({f['why']})" for f in failed})
            turns_seen = ", ".join(str(f["turn"]) for f in failed)
            lines.append(
                f"{LABELS[name]}: {len(failed)} compactions not done, {'; '.join(kinds)}, "
                f"in turns {turns_seen}."
            )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run, print the table (and write JSON with ``--json``); return the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=None, help="turns (default 300)")
    parser.add_argument("--quick", action="store_true", help="20 turns on InMemorySaver")
    parser.add_argument("--saver", choices=("memory", "sqlite"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    turns = args.turns or (20 if args.quick else 300)
    if turns < 2:
        parser.error("`--turns` must be at least 2 (a lookup and a question).")
    saver = args.saver or ("memory" if args.quick else "sqlite")
    started = time.perf_counter()
    results = run(turns, saver=saver, progress=not args.quick)
    print(render(results, turns=turns, saver=saver))
    print(f"\nRan in {time.perf_counter() - started:.0f} s.")
    report = {"turns": turns, "saver": saver, "contenders": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
