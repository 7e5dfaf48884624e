"""Deployed on LangGraph Server: the served graphs compact, driven by the server's own client.

One ``langgraph dev`` per module (`server_fixture.served`) serves ``examples/langgraph_server/``
(a ``create_agent`` agent with `CompactionMiddleware`, a ``create_supervisor`` team with
`CompactionNode` as the supervisor's hook), plus a test-only agent that offloads large tool
results to a directory, with its blocking-call detector on. The tests talk to it only
through ``langgraph_sdk``, as a deployed app would. Skipped where LangGraph Server
is not installed (failed under ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import convert_to_messages

from compacting_supervisor import SUMMARY_PREFIX
from compacting_supervisor.summarizers import SUMMARIZER_TAG

from .helpers import openai_violations
from .server_fixture import EXAMPLE, Server, free_port, served, skip_or_fail

LATENCY = 0.1
"""Seconds each scripted model answer takes in the served graphs, so runs overlap."""
SUMMARISER_TEXT = "## Discoveries"
"""What every reply of the served graphs' scripted summariser holds."""


@dataclass(frozen=True)
class Graph:
    """A served graph, and how it answers."""

    name: str
    answer_prefix: str
    """What the graph puts before its agent's answer ("Team: " for the supervisor)."""
    paused_at: str
    """The node a payment waits in for approval."""

    def noted(self, tag: str, n: int) -> str:
        return f"{self.answer_prefix}Noted FACT-{tag}-{n}. I will keep it in mind."


AGENT = Graph("agent", answer_prefix="", paused_at="tools")
TEAM = Graph("team", answer_prefix="Team: ", paused_at="payments_agent")
GRAPHS = [pytest.param(AGENT, id="agent"), pytest.param(TEAM, id="team")]


OFFLOAD_GRAPH = """
import os

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from compacting_supervisor import CompactionMiddleware, KeepMessages, OffloadToolResults
from compacting_supervisor.offload import DirectoryResultStore
from compacting_supervisor.testing import ScriptedChatModel


@tool
def read_report(year: int) -> str:
    \"\"\"Read the annual report of a year.\"\"\"
    return "".join(f"Line {i} of the {year} report: revenue grew in region {i}. " for i in range(300))


def step(messages):  # read the report, read the start of the stored result back, answer
    last = messages[-1]
    if last.type == "human":
        call = {"name": "read_report", "args": {"year": 2024}, "id": f"report_{len(messages)}"}
        return AIMessage("", tool_calls=[call])
    if last.name == "read_report":
        ref = last.text.split("ref=")[1].split(",")[0]
        args = {"ref": ref, "offset": 0, "limit": 120}
        return AIMessage("", tool_calls=[{"name": "read_tool_result", "args": args, "id": f"read_{len(messages)}"}])
    return AIMessage(f"Read back: {last.text[:52]}")


offload = OffloadToolResults(
    DirectoryResultStore(os.environ["OFFLOAD_DIR"]), min_chars=2_000, preview_chars=100
)
agent = create_agent(
    ScriptedChatModel(responses=[step], record_calls=False),
    tools=[read_report],
    middleware=[CompactionMiddleware(token_limit=700, keep=KeepMessages(2), offload=offload)],
)
"""
"""A test-only graph served next to the example's: large tool results go to a directory."""


@pytest.fixture(scope="module")
def offload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offloaded-results")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, offload_dir: Path) -> Iterator[Server]:
    config = json.loads((EXAMPLE / "langgraph.json").read_text())
    config["graphs"]["reader"] = "./offload_agent.py:agent"
    files = {"offload_agent.py": OFFLOAD_GRAPH, "langgraph.json": json.dumps(config)}
    env = {"EXAMPLE_MODEL_LATENCY": str(LATENCY), "OFFLOAD_DIR": str(offload_dir)}
    with served(tmp_path_factory.mktemp("langgraph-server"), extra_files=files, env=env) as running:
        yield running


@pytest.fixture(autouse=True)
def server_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Attach what the server logged during the test to its report; fail on a blocking call."""
    if "server" not in request.fixturenames:
        yield
        return
    running: Server = request.getfixturevalue("server")
    start = running.log_size()
    yield
    logged = running.log_since(start)
    request.node.add_report_section("call", "langgraph dev log", logged[-20_000:])
    if "BlockingError" in logged:
        at = logged.index("BlockingError")
        pytest.fail(
            "The server's blocking-call detector tripped during the test:\n"
            + logged[max(0, at - 2000) : at + 4000],
            pytrace=False,
        )


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Any]:
    """The server's own async client (``langgraph_sdk.get_client``)."""
    from langgraph_sdk import get_client

    sdk = get_client(url=server.url)
    try:
        yield sdk
    finally:
        await sdk.aclose()


def fact(tag: str, n: int) -> str:
    return (
        f"Remember FACT-{tag}-{n}: the review of project {n} moved to room {n * 7}, on floor "
        f"{n}, at {n + 8} o'clock, with the whole design team."
    )


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def is_summary(message: dict[str, Any]) -> bool:
    return str(message.get("content", "")).startswith(SUMMARY_PREFIX)


def requests_in(messages: list[dict[str, Any]]) -> list[str]:
    """What the user said, in order (a summary is a human message, but not a request)."""
    return [m["content"] for m in messages if m["type"] == "human" and not is_summary(m)]


def facts_in(text: str) -> set[str]:
    return set(re.findall(r"FACT-[A-Z]+-\d+", text))


async def messages(client: Any, thread_id: str) -> list[dict[str, Any]]:
    state = await client.threads.get_state(thread_id)
    return list(state["values"]["messages"])


async def say(client: Any, thread_id: str, graph: Graph, text: str) -> None:
    await client.runs.wait(thread_id, graph.name, input=user(text), raise_error=True)


async def history(client: Any, thread_id: str) -> list[dict[str, Any]]:
    return list(await client.threads.get_history(thread_id, limit=1000))


# ---------------------------------------------------------------------------- compaction


@pytest.mark.parametrize("graph", GRAPHS)
async def test_many_runs_on_one_thread_compact_it_and_the_history_keeps_every_original(
    client: Any, graph: Graph
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    sizes = []
    for n in range(1, 9):
        await say(client, thread_id, graph, fact("A", n))
        sizes.append(len(await messages(client, thread_id)))

    # The stored thread: compacted, a summary first, shorter than what was said.
    assert any(later < earlier for earlier, later in itertools.pairwise(sizes)), sizes
    stored = await messages(client, thread_id)
    assert is_summary(stored[0]), stored[0]
    assert sum(is_summary(m) for m in stored) == 1
    assert len(stored) < max(sizes)
    assert openai_violations(convert_to_messages(stored)) == []
    # The summary holds what it replaced; the newest request and answer are verbatim.
    assert {"FACT-A-1", "FACT-A-2", "FACT-A-3"} <= facts_in(stored[0]["content"])
    assert requests_in(stored)[-1] == fact("A", 8)
    assert stored[-1]["content"] == graph.noted("A", 8)

    # The next run reads the compacted history: everything told is still known.
    await say(client, thread_id, graph, "Please recall every fact.")
    recall = (await messages(client, thread_id))[-1]["content"]
    assert "(some from the summary)" in recall
    assert facts_in(recall) == {f"FACT-A-{n}" for n in range(1, 9)}

    # Every original is still in the thread's checkpoints, unchanged.
    checkpoints = await history(client, thread_id)
    said = {text for c in checkpoints for text in requests_in(c["values"].get("messages", []))}
    assert {fact("A", n) for n in range(1, 9)} <= said
    first = next(c for c in reversed(checkpoints) if c["values"].get("messages"))
    assert requests_in(first["values"]["messages"]) == [fact("A", 1)]


@pytest.mark.parametrize("graph", GRAPHS)
async def test_streamed_messages_carry_no_summariser_token_and_no_summary_as_the_assistant(
    client: Any, graph: Graph
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    streamed: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for n in range(1, 8):
        async for part in client.runs.stream(
            thread_id,
            graph.name,
            input=user(fact("S", n)),
            stream_mode="messages-tuple",
            stream_subgraphs=True,  # the supervisor's hook and model run in a subgraph
        ):
            assert part.event != "error", part.data
            if part.event.split("|")[0] == "messages":
                message, metadata = part.data
                streamed.append((n, message, metadata))

    # A compaction happened during these streamed runs.
    assert is_summary((await messages(client, thread_id))[0])
    # The models' own tokens stream as usual, word by word.
    tokens: dict[tuple[int, str], str] = {}
    for n, message, metadata in streamed:
        if message["type"] == "AIMessageChunk":
            key = (n, metadata["langgraph_checkpoint_ns"])
            tokens[key] = tokens.get(key, "") + str(message["content"])
    assert graph.noted("S", 7) in {text for (n, _), text in tokens.items() if n == 7}
    # Nothing of the compaction is streamed as something the assistant said.
    for _, message, metadata in streamed:
        assert SUMMARIZER_TAG not in (metadata.get("tags") or []), (message, metadata)
        assert metadata.get("lc_source") != "summarization", (message, metadata)
        if message["type"] in ("ai", "AIMessageChunk"):
            assert SUMMARISER_TEXT not in str(message["content"]), message
            assert not is_summary(message), message
    for text in tokens.values():
        assert SUMMARISER_TEXT not in text
        assert not text.startswith(SUMMARY_PREFIX)
    # The summary the update wrote is not streamed at all (the update is an Overwrite, which
    # the messages stream does not re-emit).
    assert not any(is_summary(m) for _, m, _ in streamed)


@pytest.mark.parametrize(
    ("graph", "facts", "compacted"),
    [
        pytest.param(AGENT, 4, "while paused", id="agent-while-paused"),
        pytest.param(TEAM, 4, "while paused", id="team-while-paused"),
        pytest.param(TEAM, 5, "before the pause", id="team-before-the-pause"),
    ],
)
async def test_an_interrupt_pending_across_a_compaction_resumes(
    client: Any, graph: Graph, facts: int, compacted: str
) -> None:
    """The payment waits for approval; the thread is compacted in the resumed run (the
    receipt tips it over), or in the run that paused (before the hand-off to the payments
    agent, which then pauses inside its subgraph)."""
    from langgraph_sdk.schema import Command

    thread_id = (await client.threads.create())["thread_id"]
    for n in range(1, facts + 1):
        await say(client, thread_id, graph, fact("I", n))
    assert not is_summary((await messages(client, thread_id))[0]), "set-up: not compacted yet"

    await say(client, thread_id, graph, "Please pay INV-7 now.")
    paused = await client.threads.get_state(thread_id)
    assert paused["next"] == [graph.paused_at]
    assert [i["value"]["question"] for i in paused["interrupts"]] == ["Pay invoice INV-7?"]
    assert is_summary(paused["values"]["messages"][0]) == (compacted == "before the pause"), (
        f"set-up: the compaction must come {compacted}"
    )
    calls = [
        c["id"]
        for m in paused["values"]["messages"]
        for c in m.get("tool_calls") or []
        if c["name"] == "pay_invoice"
    ]

    # Approved: the payment goes through on the compacted thread.
    await client.runs.wait(thread_id, graph.name, command=Command(resume="yes"), raise_error=True)
    done = await client.threads.get_state(thread_id)
    assert done["next"] == []
    assert not done["interrupts"]
    final = done["values"]["messages"]
    assert is_summary(final[0])
    assert {"FACT-I-1", "FACT-I-2"} <= facts_in(final[0]["content"])
    assert final[-1]["content"].startswith(f"{graph.answer_prefix}Done: Invoice INV-7 paid.")
    assert openai_violations(convert_to_messages(final)) == []
    # The call that waited is answered in the compacted thread (the agent's own call; the
    # team's is inside its payments agent).
    answered = {m.get("tool_call_id") for m in final if m["type"] == "tool"}
    assert set(calls) <= answered
    assert len(calls) == (1 if graph is AGENT else 0)
    # Every original is still in the history, the pause included.
    checkpoints = await history(client, thread_id)
    assert any(c["next"] == [graph.paused_at] for c in checkpoints)
    said = {text for c in checkpoints for text in requests_in(c["values"].get("messages", []))}
    assert {fact("I", n) for n in range(1, facts + 1)} | {"Please pay INV-7 now."} <= said


@pytest.mark.parametrize("graph", GRAPHS)
async def test_two_threads_run_at_once_and_stay_apart(client: Any, graph: Graph) -> None:
    threads = {tag: (await client.threads.create())["thread_id"] for tag in ("P", "Q")}

    async def conversation(tag: str) -> None:
        for n in range(1, 8):
            await say(client, threads[tag], graph, fact(tag, n))
        await say(client, threads[tag], graph, "Please recall every fact.")

    await asyncio.gather(*(conversation(tag) for tag in threads))

    checkpoints = {tag: await history(client, thread_id) for tag, thread_id in threads.items()}
    for tag, thread_id in threads.items():
        own = {f"FACT-{tag}-{n}" for n in range(1, 8)}
        stored = await messages(client, thread_id)
        assert is_summary(stored[0]), tag
        assert facts_in(stored[0]["content"]) <= own
        assert facts_in(stored[-1]["content"]) == own  # the recall
        other = "Q" if tag == "P" else "P"
        assert f"FACT-{other}-" not in json.dumps([c["values"] for c in checkpoints[tag]])

    # The server ran them at once: a run of one thread wrote a checkpoint while a run of
    # the other was between two of its own.
    def spans(tag: str) -> list[tuple[datetime, datetime]]:
        by_run: dict[str, list[datetime]] = {}
        for c in checkpoints[tag]:
            by_run.setdefault(c["metadata"]["run_id"], []).append(
                datetime.fromisoformat(c["created_at"])
            )
        return [(min(times), max(times)) for times in by_run.values()]

    p_spans, q_spans = spans("P"), spans("Q")
    assert any(
        p_start < q_end and q_start < p_end
        for p_start, p_end in p_spans
        for q_start, q_end in q_spans
    ), (p_spans, q_spans)


# ---------------------------------------------------------------------------- offload


async def test_large_results_are_offloaded_read_back_and_compacted_without_blocking(
    client: Any, offload_dir: Path
) -> None:
    """Offload writes files and compaction reads them back: off the server's event loop."""
    thread_id = (await client.threads.create())["thread_id"]
    for n in range(3):
        await client.runs.wait(
            thread_id, "reader", input=user(f"Read the 2024 report ({n})."), raise_error=True
        )
    stored = await messages(client, thread_id)
    assert is_summary(stored[0])
    assert "[tool result stored" not in stored[0]["content"]  # summarised from the whole text
    assert (
        stored[-1]["content"] == "Read back: Line 0 of the 2024 report: revenue grew in region 0."
    )
    results = list(offload_dir.glob("tr_*.txt"))
    assert len(results) == 3  # one file per result read
    assert all(r.read_text().startswith("Line 0 of the 2024 report") for r in results)
    stubs = [
        m["content"]
        for c in await history(client, thread_id)
        for m in c["values"].get("messages", [])
        if m["type"] == "tool" and m["name"] == "read_report"
    ]
    assert stubs and all(s.startswith("[tool result stored: ref=tr_") for s in stubs)


# ---------------------------------------------------------------------------- the client


def test_the_client_example_drives_the_served_agent(server: Server) -> None:
    shown = subprocess.run(
        [sys.executable, str(EXAMPLE / "client.py"), "--url", server.url, "--runs", "7"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert re.search(r"\[run \d\] the thread holds \d+ messages  <- compacted \(#1\)", out), out
    assert SUMMARISER_TEXT in out
    assert re.search(r"recall: I know \(some from the summary\): FACT-A-1, ", out), out
    assert "still hold 7 of the 7 facts verbatim" in out
    assert "paused for approval: Pay invoice INV-7?" in out
    assert "resumed with 'yes': Done: Invoice INV-7 paid. Receipt INV-7-R" in out


def test_the_client_example_says_when_no_server_runs() -> None:
    if importlib.util.find_spec("langgraph_sdk") is None:
        skip_or_fail("langgraph-sdk is not installed (the `test` extra)")
    shown = subprocess.run(
        [sys.executable, str(EXAMPLE / "client.py"), "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 1
    assert "error: no LangGraph Server answers at http://127.0.0.1:" in shown.stderr
    assert "langgraph dev" in shown.stderr
