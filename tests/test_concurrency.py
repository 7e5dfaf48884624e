"""Issue 3, points 1 and 3: one writer per thread across processes; SIGKILL never corrupts."""

from __future__ import annotations

import multiprocessing
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    ThreadLockTimeoutError,
    TokenCounter,
)
from compacting_supervisor._messages import is_summary
from compacting_supervisor.locks import ThreadLocks, _FileBackend

from .conftest import POSTGRES_URL
from .helpers import RecordingTrigger, approval_graph, openai_violations
from .workers import open_saver, send_turns, supervisor_on, turn_text

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"Marker (w\d+-t\d+)\.")


def _markers(messages: list[Any]) -> list[str]:
    """Every user turn marker in the state: from the summary and the verbatim messages."""
    found: list[str] = []
    for message in messages:
        if is_summary(message) or isinstance(message, HumanMessage):
            found += MARKER.findall(message.content)
    return found


def _assert_valid_history(supervisor: Any, config: Any) -> None:
    for snapshot in supervisor.get_state_history(config):
        messages = snapshot.values.get("messages", [])
        assert openai_violations(messages) == []
        ids = [m.id for m in messages]
        assert len(ids) == len(set(ids))
        assert sum(is_summary(m) for m in messages) <= 1


def _where(kind: str, tmp_path: Path) -> str:
    return str(tmp_path / "shared.sqlite") if kind == "sqlite" else POSTGRES_URL


def _fresh_thread(kind: str) -> str:
    return f"{kind}-{time.time_ns()}"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_worker_processes_never_lose_or_reorder_a_turn(kind: str, tmp_path: Path) -> None:
    workers, turns = 4, 6
    where = _where(kind, tmp_path)
    thread = _fresh_thread(kind)
    with open_saver(kind, where) as saver:  # create the tables once
        saver.setup()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=send_turns, args=(kind, where, thread, w, turns))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
        assert process.exitcode == 0
    with open_saver(kind, where) as saver:
        supervisor = supervisor_on(saver)
        config = {"configurable": {"thread_id": thread}}
        markers = _markers(supervisor.get_state(config).values["messages"])
        # Every turn exactly once ...
        assert sorted(markers) == sorted(f"w{w}-t{t}" for w in range(workers) for t in range(turns))
        # ... and each worker's turns in the order it sent them.
        for w in range(workers):
            mine = [m for m in markers if m.startswith(f"w{w}-")]
            assert mine == [f"w{w}-t{t}" for t in range(turns)]
        compactions = [
            s for s in supervisor.get_state_history(config) if s.metadata.get("source") == "update"
        ]
        assert len(compactions) >= 3
        _assert_valid_history(supervisor, config)


def test_threads_and_tasks_of_one_process_take_turns(saver: Any) -> None:
    supervisor = supervisor_on(saver)
    config = {"configurable": {"thread_id": "shared"}}
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for t in range(5):
                supervisor.invoke({"messages": [HumanMessage(turn_text(w, t))]}, config)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    markers = _markers(supervisor.get_state(config).values["messages"])
    assert sorted(markers) == sorted(f"w{w}-t{t}" for w in range(4) for t in range(5))
    _assert_valid_history(supervisor, config)


async def test_asyncio_tasks_take_turns(asaver: Any) -> None:
    import asyncio

    from compacting_supervisor import CompactingSupervisor, ExtractiveSummarizer, HistoryManager

    from .workers import marker_graph

    history = HistoryManager(model=ExtractiveSummarizer(), max_summary_tokens=50_000)
    supervisor = CompactingSupervisor(marker_graph(asaver), history, token_limit=600)
    config = {"configurable": {"thread_id": "shared"}}

    async def worker(w: int) -> None:
        for t in range(5):
            await supervisor.ainvoke({"messages": [HumanMessage(turn_text(w, t))]}, config)

    await asyncio.gather(*(worker(w) for w in range(4)))
    state = await supervisor.aget_state(config)
    markers = _markers(state.values["messages"])
    assert sorted(markers) == sorted(f"w{w}-t{t}" for w in range(4) for t in range(5))
    for w in range(4):
        assert [m for m in markers if m.startswith(f"w{w}-")] == [f"w{w}-t{t}" for t in range(5)]


def test_lock_timeout_raises_and_names_the_thread(tmp_path: Path) -> None:
    locks = ThreadLocks(_FileBackend(str(tmp_path / "db.sqlite")))
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locks.hold("busy"):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(ThreadLockTimeoutError, match="'busy'"), locks.hold("busy", timeout=0.2):
        pass
    assert 0.15 < time.monotonic() - started < 2
    with locks.hold("another-thread", timeout=0.2):
        pass  # other threads are not blocked
    release.set()
    holder.join()


def test_file_lock_excludes_another_process(tmp_path: Path) -> None:
    database = str(tmp_path / "db.sqlite")
    code = (
        "import sys, time; from compacting_supervisor.locks import ThreadLocks, _FileBackend\n"
        f"locks = ThreadLocks(_FileBackend({database!r}))\n"
        "with locks.hold('t1'):\n    print('held', flush=True); time.sleep(1.0)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    locks = ThreadLocks(_FileBackend(database))
    with pytest.raises(ThreadLockTimeoutError), locks.hold("t1", timeout=0.3):
        pass
    child.kill()  # SIGKILL: the OS drops the dead process's lock
    child.wait()
    with locks.hold("t1", timeout=2):
        pass


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_at_any_moment_leaves_a_readable_resumable_thread(
    kind: str, tmp_path: Path
) -> None:
    kills = 12
    where = _where(kind, tmp_path)
    thread = _fresh_thread(kind)
    with open_saver(kind, where) as saver:
        saver.setup()
    rng = random.Random(20261121)
    progressed = 0
    for kill in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.workers", "churn", kind, where, thread, str(kill)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() != ""  # it completed a first turn (and compactions)
        time.sleep(rng.uniform(0.0, 0.25))  # then dies somewhere in a later turn or compaction
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Every turn the child saw complete (invoke returned) must have survived the kill.
        reported = [0, *(int(line) for line in child.stdout.read().split())]
        progressed += 1
        with open_saver(kind, where) as saver:
            supervisor = supervisor_on(saver, token_limit=300)
            config = {"configurable": {"thread_id": thread}}
            messages = supervisor.get_state(config).values["messages"]
            assert openai_violations(messages) == []
            markers = _markers(messages)
            assert len(markers) == len(set(markers))  # never a mix: no turn twice
            assert {f"w{kill}-t{turn}" for turn in reported} <= set(markers)  # none lost
            _assert_valid_history(supervisor, config)
            # Resumable: a new turn runs and the thread keeps compacting.
            out = supervisor.invoke({"messages": [HumanMessage(turn_text(99, kill))]}, config)
            assert out["messages"][-1].content.startswith("Noted.")
    assert progressed == kills


def test_resuming_from_inside_the_stream_loop_does_not_deadlock(saver: Any) -> None:
    from langgraph.types import Command

    from compacting_supervisor import CompactingSupervisor

    supervisor = CompactingSupervisor(approval_graph(saver), lock_timeout=3)
    config = {"configurable": {"thread_id": "hitl"}}
    resumed = None
    for event in supervisor.stream({"messages": [HumanMessage("deploy?")]}, config):
        if event["type"] == "interrupt":
            supervisor.update_state(config, {"messages": [HumanMessage("note: approved by Ann")]})
            resumed = supervisor.invoke(Command(resume="yes"), config)
    assert resumed is not None
    assert resumed["messages"][-1].content == "approved: yes"


async def test_async_resuming_from_inside_the_stream_loop(asaver: Any) -> None:
    from langgraph.types import Command

    from compacting_supervisor import CompactingSupervisor

    supervisor = CompactingSupervisor(approval_graph(asaver), lock_timeout=3)
    config = {"configurable": {"thread_id": "hitl"}}
    async for event in supervisor.astream({"messages": [HumanMessage("deploy?")]}, config):
        if event["type"] == "interrupt":
            # Re-entering the thread from the consuming task must not deadlock (it would
            # raise ThreadLockTimeoutError after 3 s). Whether a resume sent before the run
            # has saved its interrupt finds it is LangGraph's business, as on the bare graph.
            await supervisor.aupdate_state(config, {"messages": [HumanMessage("noted")]})
    state = await supervisor.aget_state(config)
    if state.interrupts:
        await supervisor.ainvoke(Command(resume="yes"), config)
    final = await supervisor.aget_state(config)
    assert final.values["messages"][-1].content in ("approved: yes", "noted")


async def test_other_tasks_still_wait_for_the_holder(asaver: Any) -> None:
    import asyncio

    locks = ThreadLocks()
    order: list[str] = []

    async def first() -> None:
        async with locks.ahold("t"):
            order.append("first in")
            await asyncio.sleep(0.1)
            order.append("first out")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with locks.ahold("t"):
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]


def _advisory_locks_held() -> int:
    import psycopg

    from compacting_supervisor.locks import _PostgresBackend

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
            (_PostgresBackend._NAMESPACE,),
        ).fetchone()
    return int(row[0])


async def test_cancelled_postgres_acquire_gives_the_lock_back() -> None:
    import asyncio

    from compacting_supervisor.locks import _PostgresBackend

    backend = _PostgresBackend(POSTGRES_URL)
    real = backend.try_acquire

    def slow(slot: int) -> bool:
        time.sleep(0.3)  # the cancel lands while the query is in flight
        return real(slot)

    backend.try_acquire = slow  # type: ignore[method-assign]
    locks = ThreadLocks(backend)

    async def take() -> None:
        async with locks.ahold("cancelled-thread"):
            await asyncio.sleep(10)

    task = asyncio.create_task(take())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.6)
    assert _advisory_locks_held() == 0
    other = ThreadLocks(_PostgresBackend(POSTGRES_URL))
    with other.hold("cancelled-thread", timeout=1):
        pass


async def test_a_task_cancelled_while_releasing_a_postgres_lock_still_releases_it() -> None:
    """The release is a query run in a worker thread: a task cancelled while that thread is
    busy (a client gone mid-request) still gives the lock back, so other workers are not
    locked out of the thread, and the slot is forgotten."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from compacting_supervisor.locks import _PostgresBackend

    locks = ThreadLocks(_PostgresBackend(POSTGRES_URL))
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1)
    loop.set_default_executor(executor)  # the release waits behind `busy`
    busy: list[Any] = []

    async def hold() -> None:
        async with locks.ahold("released-thread"):
            busy.append(loop.run_in_executor(None, time.sleep, 0.3))

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.05)  # the release is queued behind the busy job
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await busy[0]
    await asyncio.sleep(0.3)
    assert _advisory_locks_held() == 0
    assert locks._slots == {}
    other = ThreadLocks(_PostgresBackend(POSTGRES_URL))
    with other.hold("released-thread", timeout=1):
        pass
    executor.shutdown(wait=False)


def test_postgres_lock_connection_reconnects() -> None:
    import psycopg

    from compacting_supervisor.locks import _PostgresBackend

    backend = _PostgresBackend(POSTGRES_URL)
    locks = ThreadLocks(backend)
    with locks.hold("a"):
        pass
    pid = backend._conn.info.backend_pid
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    with locks.hold("a", timeout=2):  # a broken session is replaced, the turn goes on
        assert backend._conn.info.backend_pid != pid


def _child_tries_lock(queue: Any) -> None:
    from compacting_supervisor.locks import locks_for

    with open_saver("postgres", POSTGRES_URL) as saver:
        try:
            with locks_for(saver).hold("forked", timeout=0.5):
                queue.put("acquired")
        except ThreadLockTimeoutError:
            queue.put("excluded")


def test_a_forked_worker_does_not_share_the_parents_lock_session() -> None:
    from compacting_supervisor.locks import locks_for

    with open_saver("postgres", POSTGRES_URL) as saver:
        saver.setup()
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        with locks_for(saver).hold("forked"):
            child = context.Process(target=_child_tries_lock, args=(queue,))
            child.start()
            child.join(30)
        assert queue.get(timeout=5) == "excluded"


def test_a_write_between_the_run_and_the_anchor_read_does_not_skew_later_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker's bare run landing between the wrapper's run and its first read of
    what runs wrote must not leave a count tied to a head holding more messages: every
    count the trigger sees is the exact count of the messages it sees."""

    def assistant(state: MessagesState) -> dict[str, Any]:
        messages = state["messages"]
        if messages[-1].text.startswith("shrink"):  # shortens the big messages, ids kept
            big = [m for m in messages if "BIG" in m.text][:2]
            return {"messages": [m.model_copy(update={"content": "short"}) for m in big]}
        if messages[-1].text.startswith("big"):
            return {"messages": [AIMessage("BIG " + "lorem ipsum dolor " * 300)]}
        return {"messages": [AIMessage("ok")]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    graph = builder.compile(checkpointer=InMemorySaver())
    recorder = RecordingTrigger()
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=ExtractiveSummarizer()), trigger=recorder
    )
    config: Any = {"configurable": {"thread_id": "race"}}
    graph.invoke({"messages": [HumanMessage("big 1")]}, config)
    graph.invoke({"messages": [HumanMessage("big 2")]}, config)

    from compacting_supervisor._persist.runs import RunCheckpoints

    original = RunCheckpoints.run
    landed: list[bool] = []

    def another_worker_lands_first(self: Any) -> Any:
        # The interleaving of a worker running the bare graph on the thread just after the
        # wrapper's run ended, before the wrapper read what runs wrote since its mark.
        if not landed:
            landed.append(True)
            graph.invoke({"messages": [HumanMessage("from another worker")]}, config)
        return original(self)

    monkeypatch.setattr(RunCheckpoints, "run", another_worker_lands_first)
    supervisor.invoke({"messages": [HumanMessage("hello")]}, config)
    monkeypatch.setattr(RunCheckpoints, "run", original)
    assert landed  # the other worker's run did land between the run and the read
    supervisor.invoke({"messages": [HumanMessage("shrink please")]}, config)

    counter = TokenCounter()
    assert [tokens for _, tokens in recorder.seen] == [counter.count(m) for m, _ in recorder.seen]


def test_a_long_lived_process_forgets_the_locks_of_threads_no_one_holds(tmp_path: Path) -> None:
    """A server that serves many threads keeps no lock for a thread once nobody holds or
    waits for it, whatever the way out: a normal exit, a re-entered lock, a timeout, an
    error; and the lock still excludes while it is held or waited for."""
    locks = ThreadLocks(_FileBackend(str(tmp_path / "db.sqlite")))
    for n in range(200):
        with locks.hold(f"thread-{n}"), locks.hold(f"thread-{n}"):  # re-entered
            pass
    with pytest.raises(RuntimeError), locks.hold("failing"):
        raise RuntimeError("the run failed")
    assert locks._slots == {}

    holding, release = threading.Event(), threading.Event()
    inside: list[str] = []

    def holder() -> None:
        with locks.hold("busy"):
            inside.append("holder in")
            holding.set()
            release.wait(5)
            inside.append("holder out")

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(5)
    with pytest.raises(ThreadLockTimeoutError), locks.hold("busy", timeout=0.05):
        pass  # timed out while the holder is in: its slot must stay
    waiter_done = threading.Event()

    def wait_then_enter() -> None:
        with locks.hold("busy", timeout=5):
            inside.append("waiter in")
        waiter_done.set()

    waiter = threading.Thread(target=wait_then_enter)
    waiter.start()
    time.sleep(0.05)
    assert inside == ["holder in"]  # still excluded
    release.set()
    first.join()
    waiter.join()
    assert waiter_done.is_set()
    assert inside == ["holder in", "holder out", "waiter in"]
    assert locks._slots == {}


async def test_async_holders_leave_no_lock_behind_nor_do_cancelled_or_timed_out_waiters() -> None:
    import asyncio

    locks = ThreadLocks()
    for n in range(200):
        async with locks.ahold(f"thread-{n}"):
            pass
    order: list[str] = []

    async def holder() -> None:
        async with locks.ahold("t"):
            order.append("holder in")
            await asyncio.sleep(0.15)
            order.append("holder out")

    async def waiter() -> None:
        async with locks.ahold("t"):
            order.append("waiter in")

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    cancelled = asyncio.create_task(waiter())
    await asyncio.sleep(0.02)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(ThreadLockTimeoutError):
        async with locks.ahold("t", timeout=0.02):
            pass
    await asyncio.gather(task, waiter())
    assert order == ["holder in", "holder out", "waiter in"]
    assert locks._slots == {}
