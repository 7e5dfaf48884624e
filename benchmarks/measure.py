"""Run the scripted conversation through each contender and measure it.

Each contender runs on its own SQLite file. A turn's wall time covers the invoke only, less
the fake models' own time; the tokens the fake models were sent are counted after the
timer stops, with one counter for every contender (the package's `TokenCounter`,
cl100k_base).

Rounds interleave the contenders (the order rotates each round); ratios are taken within
a round against the no-compaction run of the same round, and the table reports their
medians.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.contenders import (
    CACHED,
    EXTRA,
    OFFLOAD,
    SLOW,
    SLOW_DELAY,
    CompactingSettings,
    Contender,
    build,
)
from benchmarks.conversation import all_tags, message_tags, script, tags_in
from benchmarks.pricing import STABLE_PREFIX_TOKENS, PriceMeter
from benchmarks.savers import open_saver, sqlite_bytes
from compacting_supervisor import TokenCounter
from compacting_supervisor.offload import REF_PATTERN, offloaded_ref

__all__ = ["LATE_TURNS", "RunResult", "run_contender", "run_rounds"]

LATE_TURNS = 20
"""Late-turn time is the median over this many last turns."""


@dataclass
class RunResult:
    """What one contender did over the whole conversation, in one round."""

    name: str
    """The contender."""
    round: int
    """The round, from 0."""
    turns: int
    """Turns run."""
    agent_calls: int = 0
    """Calls of the agent's model."""
    agent_input_tokens: int = 0
    """Tokens of every message the agent's model was sent, summed over its calls."""
    summariser_calls: int = 0
    """Calls of the summariser model."""
    summariser_input_tokens: int = 0
    """Tokens it was sent, summed."""
    summariser_output_tokens: int = 0
    """Tokens of the summaries it wrote, summed."""
    messages_total: int = 0
    """Conversation messages the run produced (one tag each)."""
    lost: list[str] = field(default_factory=list)
    """Tags of messages that neither reached the summariser nor are still visible."""
    facts_total: int = 0
    """Tool results the conversation produced (the facts: ``[T012]`` tags)."""
    facts_lost: list[str] = field(default_factory=list)
    """Strictly lost facts: tool results' tags neither in the thread at the end (its
    messages, the summary it holds, an offloaded result it can still read) nor, for
    langmem, in what its model was sent last."""
    state_messages: int = 0
    """Messages in the thread's checkpoint at the end."""
    blind_calls: int = 0
    """Agent calls whose input did not end with the user's message or a tool result."""
    sqlite_bytes: int = 0
    """Size of the SQLite file after the run (WAL folded in)."""
    turn_seconds: list[float] = field(default_factory=list)
    """Wall time of every turn, less the fake models' own time (the framework's time)."""
    wall_seconds: list[float] = field(default_factory=list)
    """Wall time of every turn, the models' time included (what a user waits)."""
    answer_seconds: list[float] = field(default_factory=list)
    """Slow-summariser runs only (streamed): seconds until each turn's answer arrived."""
    compacted_turns: list[bool] = field(default_factory=list)
    """Slow-summariser runs only: whether the summariser ran in each turn."""
    compactions: list[dict[str, Any]] = field(default_factory=list)
    """CompactingSupervisor only: each compaction's figures (turn, duration, sizes)."""
    formats: dict[str, int] = field(default_factory=dict)
    """CompactingSupervisor only: tokens of what it summarised, in several formats."""
    priced: dict[str, float] = field(default_factory=dict)
    """Agent input priced by each provider's cache rules plus the summariser's input at the
    full price, in token-equivalents (`benchmarks.pricing`)."""
    cached_tokens: int = 0
    """Agent input tokens a prompt cache could serve (shared prefixes of 1,024+ tokens)."""
    priced_stable: dict[str, float] = field(default_factory=dict)
    """The same, for the requests behind a stable prefix of `STABLE_PREFIX_TOKENS` tokens
    (a realistic agent's system prompt and tool schemas)."""
    priced_parts: dict[str, dict[str, float]] = field(default_factory=dict)
    """`priced` per rule, split into `benchmarks.pricing.PARTS`."""

    @property
    def summariser_tokens(self) -> int:
        """Input plus output tokens of the summariser."""
        return self.summariser_input_tokens + self.summariser_output_tokens

    @property
    def total_tokens(self) -> int:
        """Agent input plus summariser tokens."""
        return self.agent_input_tokens + self.summariser_tokens

    @property
    def late_turn_seconds(self) -> float:
        """Median wall time of the last `LATE_TURNS` turns."""
        return statistics.median(self.turn_seconds[-LATE_TURNS:])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, derived figures included."""
        data = asdict(self)
        data["turn_seconds"] = [round(t, 6) for t in self.turn_seconds]
        data.update(
            summariser_tokens=self.summariser_tokens,
            total_tokens=self.total_tokens,
            late_turn_seconds=self.late_turn_seconds,
            lost_count=len(self.lost),
            facts_lost_count=len(self.facts_lost),
        )
        return data


class _Meter:
    """Counts what the fake models were sent, between turns."""

    def __init__(self, contender: Contender, result: RunResult) -> None:
        self.contender = contender
        self.result = result
        self.counter = TokenCounter()
        self.reached: set[str] = set()
        self.price = PriceMeter(counter=self.counter)
        self.price_stable = PriceMeter(counter=self.counter, stable_tokens=STABLE_PREFIX_TOKENS)

    def after_turn(self) -> None:
        calls = self.contender.agent_model.drain()
        if calls:
            self.contender.last_call = calls[-1]
        self.result.agent_calls += len(calls)
        self.result.agent_input_tokens += sum(self.counter.count(c) for c in calls)
        summaries = self.contender.summariser.drain_calls()
        for call in summaries:
            self.result.summariser_calls += 1
            self.result.summariser_input_tokens += self.counter.count(call.messages)
            self.result.summariser_output_tokens += self.counter.count_text(call.output)
            self.reached |= call.tags
        # Priced in the order the calls were made: each against the cache the ones before left.
        ordered = sorted(
            [
                *zip(self.contender.agent_model.drained_order, calls, strict=True),
                *zip(self.contender.summariser.drained_order, summaries, strict=True),
            ],
            key=lambda pair: pair[0],
        )
        for _, call in ordered:
            for meter in (self.price, self.price_stable):
                if isinstance(call, list):
                    meter.agent_call(call)
                else:
                    meter.summariser_call(call.messages)


def run_contender(
    name: str,
    *,
    turns: int,
    workdir: Path,
    round_index: int = 0,
    settings: CompactingSettings | None = None,
    formats: bool = False,
) -> RunResult:
    """Run ``turns`` turns of the conversation through contender ``name`` on SQLite.

    ``name`` is a contender of the table or `EXTRA` (CompactingSupervisor keeping 20).
    """
    result = RunResult(name=name, round=round_index, turns=turns)
    base = name.removesuffix(SLOW)
    kind = "compacting" if base == EXTRA else base
    delay = SLOW_DELAY if name != base else None
    with open_saver("sqlite", workdir, f"round{round_index}-{name}") as (saver, handle):
        store = None
        if kind == OFFLOAD:  # the results go to a store in the same file
            from langgraph.store.sqlite import SqliteStore

            store = SqliteStore(handle[0])
            store.setup()
        contender = build(kind, saver, settings=settings, store=store, delay=delay)
        meter = _Meter(contender, result)
        last_compaction: Any = None
        for turn in script(turns):
            models = contender.agent_model.busy_seconds + contender.summariser.busy_seconds
            calls = contender.summariser.busy_seconds
            started = time.perf_counter()
            if delay is None:
                contender.turn(turn.user)
            else:  # streamed, to see when the answer arrives
                result.answer_seconds.append(contender.streamed_turn(turn.user))
            spent = time.perf_counter() - started
            if delay is not None:
                result.compacted_turns.append(contender.summariser.busy_seconds > calls)
            # The fake models' own time (the summariser counts its usage) is not the framework's.
            models = contender.agent_model.busy_seconds + contender.summariser.busy_seconds - models
            result.turn_seconds.append(spent - models)
            result.wall_seconds.append(spent)
            meter.after_turn()
            if kind in ("compacting", CACHED, OFFLOAD):
                last_compaction = _note_compaction(contender, turn.number, last_compaction, result)
        conn, path = handle
        result.sqlite_bytes = sqlite_bytes(conn, path)
        _finish(contender, meter, result)
        if formats and name == "compacting":
            from benchmarks.micro import summariser_formats

            transcript = contender.runner.transcript(contender.config)
            result.formats = summariser_formats([s.messages for s in transcript.sessions])
    return result


def _note_compaction(contender: Contender, turn: int, previous: Any, result: RunResult) -> Any:
    latest = contender.runner.last_compaction(contender.thread_id)
    if latest is not None and latest is not previous:
        result.compactions.append(
            {
                "turn": turn,
                "status": latest.status,
                "seconds": latest.duration,
                "messages_before": latest.messages_before,
                "messages_after": latest.messages_after,
                "tokens_before": latest.tokens_before,
                "tokens_after": latest.tokens_after,
                "error": latest.error,
            }
        )
    return latest


def _finish(contender: Contender, meter: _Meter, result: RunResult) -> None:
    expected = all_tags(result.turns)
    visible: set[str] = set()
    for message in contender.visible_messages():
        if offloaded_ref(message) is None:  # a preview is not the message
            visible |= message_tags(message)
    if contender.store is not None:
        visible |= _readable_results(contender)
    result.messages_total = len(expected)
    lost = expected - meter.reached - visible
    result.lost = sorted(lost, key=lambda t: (t[1:], t[0]))
    facts = {tag for tag in expected if tag.startswith("T")}
    result.facts_total = len(facts)
    result.facts_lost = sorted(facts - _held(contender), key=lambda t: (t[1:], t[0]))
    result.state_messages = len(contender.state_messages())
    result.blind_calls = contender.agent_model.blind_calls
    result.priced = dict(meter.price.priced)
    result.cached_tokens = meter.price.cached_tokens
    result.priced_stable = dict(meter.price_stable.priced)
    result.priced_parts = {rule: dict(part) for rule, part in meter.price.parts.items()}


def _held(contender: Contender) -> set[str]:
    """Every tag the thread holds at the end: its messages and summary, whole results only.

    For langmem, whose thread keeps every message while its model reads a summary and the
    newest ones, what its model was sent last. An offloaded result's preview does not count;
    the result does when the store still holds it under a reference the thread names.
    """
    source = contender.last_call if contender.name == "langmem" else contender.state_messages()
    held: set[str] = set()
    for message in source:
        if offloaded_ref(message) is None:
            held |= message_tags(message)
    if contender.store is not None:
        held |= _readable_results(contender)
    return held


def _readable_results(contender: Contender) -> set[str]:
    """Tags of the offloaded results the agent can read back whole.

    Those whose reference is still named in the thread (a message or the summary) and
    whose text the store holds. A result that is neither readable so nor reached the
    summariser whole is lost: a preview reaching it does not count (`fakes._whole_tags`).
    """
    assert contender.store is not None
    readable: set[str] = set()
    named = set()
    for message in contender.state_messages():
        named.update(REF_PATTERN.findall(message.text))
    for ref in named:
        text = contender.store.get(ref)
        if text is not None:
            readable |= set(tags_in(text))
    return readable


def run_rounds(
    contenders: list[str],
    *,
    turns: int,
    rounds: int,
    workdir: Path,
    settings: dict[str, CompactingSettings],
    progress: Any = None,
) -> list[dict[str, RunResult]]:
    """Run every contender once per round, rotating their order each round."""
    results: list[dict[str, RunResult]] = []
    for index in range(rounds):
        shift = index % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        round_results: dict[str, RunResult] = {}
        for name in order:
            started = time.perf_counter()
            round_results[name] = run_contender(
                name,
                turns=turns,
                workdir=workdir,
                round_index=index,
                settings=settings.get(name),
                formats=index == 0 and name == "compacting",
            )
            if progress:
                seconds = time.perf_counter() - started
                progress(f"round {index + 1}/{rounds}: {name} in {seconds:.1f} s")
        results.append(round_results)
    return results
