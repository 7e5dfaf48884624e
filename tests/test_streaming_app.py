"""The streaming web app (examples/streaming_app.py), tested over real HTTP on loopback.

Every test starts the real app with uvicorn on a free loopback port (in a thread of its own,
with its own event loop) on a SQLite file, and talks to it with httpx, parsing the
Server-Sent Events wire format as a browser would.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from starlette.applications import Starlette

from .openai_server import openai_server

APP_PATH = Path(__file__).resolve().parents[1] / "examples" / "streaming_app.py"


def _load_app_module() -> Any:
    if str(APP_PATH.parent) not in sys.path:  # as `python examples/...` does, for _shared.py
        sys.path.insert(0, str(APP_PATH.parent))
    spec = importlib.util.spec_from_file_location("streaming_app", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


streaming_app = _load_app_module()


# --------------------------------------------------------------------------- a live server


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive(), "the server failed to start"
            assert time.monotonic() < deadline, "the server did not start within 15 s"
            time.sleep(0.01)

    def stop(self) -> None:
        """Shut down as on Ctrl+C (lifespan included) and wait for the thread to end."""
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the server did not shut down within 20 s"


@pytest.fixture
def serve() -> Iterator[Callable[[Any], LiveServer]]:
    """Start apps on live servers; stop those still running after the test."""
    servers: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        servers.append(LiveServer(app))
        return servers[-1]

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()


def make_app(tmp_path: Path, *, word_delay: float = 0.0, **kwargs: Any) -> Starlette:
    """The example's app on a SQLite file in ``tmp_path`` (fast offline model by default)."""
    kwargs.setdefault("model", streaming_app.offline_model(word_delay=word_delay))
    app: Starlette = streaming_app.create_app(tmp_path / "threads.sqlite", **kwargs)
    return app


def client(server: LiveServer) -> httpx.AsyncClient:
    # trust_env=False: no proxy from the environment between us and loopback.
    return httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False)


# --------------------------------------------------------------------------- SSE, client side


@dataclass
class Event:
    event: str
    data: Any
    at: float
    """time.monotonic() when the event was complete on the client."""


@dataclass
class Stream:
    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    body: Any = None
    """The JSON body of a response that is not a stream."""

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.event == kind]

    @property
    def kinds(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def text(self) -> str:
        return "".join(e.data["content"] for e in self.of("token"))

    @property
    def end(self) -> dict[str, Any]:
        ends = self.of("end")
        assert len(ends) == 1, self.kinds
        return ends[0].data  # type: ignore[no-any-return]


async def read_sse(response: httpx.Response, stream: Stream, *, stop_after: int = 0) -> None:
    """Parse the SSE wire format into ``stream``; return early after ``stop_after`` events."""
    kind = "message"
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                stream.events.append(Event(kind, json.loads("\n".join(data)), time.monotonic()))
                if stop_after and len(stream.events) >= stop_after:
                    return
            kind, data = "message", []
        elif line.startswith(":"):
            stream.comments.append(line)
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)


async def post(http: httpx.AsyncClient, thread_id: str, message: Any, **kwargs: Any) -> Stream:
    """POST a message and read the whole response (a stream, or a JSON error)."""
    body = kwargs or {"json": {"message": message}}
    async with http.stream("POST", f"/threads/{thread_id}/messages", **body) as response:
        stream = Stream(response.status_code, response.headers)
        if response.status_code != 200:
            await response.aread()
            stream.body = response.json()
            return stream
        await read_sse(response, stream)
    return stream


async def thread_of(http: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    response = await http.get(f"/threads/{thread_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        await asyncio.sleep(0.02)


def expected_reply(*messages: str) -> str:
    """What the offline model answers to a fresh thread holding ``messages``."""
    history: Sequence[BaseMessage] = [HumanMessage(m) for m in messages]
    return streaming_app.scripted_reply(list(history))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the command line


def test_help_explains_every_option() -> None:
    result = subprocess.run(
        [sys.executable, str(APP_PATH), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--db", "--model", "--base-url", "--token-limit"):
        assert option in result.stdout
    assert "--ratio" in result.stdout
    assert "--log-level" in result.stdout
    assert "curl -N -X POST" in result.stdout
    assert "curl -N -X POST" in streaming_app.__doc__


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_command_line_serves_offline_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    log_path = tmp_path / "server.log"
    db = tmp_path / "cli.sqlite"
    args = [sys.executable, str(APP_PATH), "--port", str(port), "--db", str(db)]
    with log_path.open("w") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False
        ) as http:

            async def up() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=60)
            stream = await post(http, "cli", "Hello from the command line")
        assert stream.status == 200
        assert stream.kinds[-1] == "end"
        assert stream.text == stream.end["reply"] == expected_reply("Hello from the command line")
    finally:
        process.send_signal(signal.SIGINT)
        returncode = await asyncio.to_thread(process.wait, 30)
    output = log_path.read_text()
    assert returncode == 0, output
    assert "agent model: scripted" in output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output


# --------------------------------------------------------------------------- streaming


async def test_a_turn_streams_token_by_token_and_lands_in_the_thread(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    delay = 0.02
    server = serve(make_app(tmp_path, word_delay=delay))
    async with client(server) as http:
        stream = await post(http, "first", "Hello, streaming world!")
        thread = await thread_of(http, "first")

    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    tokens = stream.of("token")
    assert len(tokens) > 20
    assert stream.kinds == ["token"] * len(tokens) + ["end"]
    assert {t.data["agent"] for t in tokens} == {"assistant"}
    assert {t.data["node"] for t in tokens} == {"assistant"}
    # The tokens are the reply the thread now holds.
    reply = expected_reply("Hello, streaming world!")
    assert stream.text == reply
    assert stream.end == {
        "thread_id": "first",
        "reply": reply,
        "message_id": tokens[0].data["message_id"],
    }
    assert [(m["type"], m["content"]) for m in thread["messages"]] == [
        ("human", "Hello, streaming world!"),
        ("ai", reply),
    ]
    assert thread["message_count"] == 2
    assert 0 < thread["tokens"] < thread["token_limit"]
    assert thread["last_compaction"] is None
    # Streamed, not buffered: the first word arrives long before the last one.
    spread = tokens[-1].at - tokens[0].at
    assert spread > 0.5 * delay * (len(tokens) - 1), spread
    assert tokens[0].at < stream.of("end")[0].at - 0.25


async def test_a_compaction_event_follows_the_reply_and_the_thread_shrinks(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    # The app's default token limit: the offline demo compacts after a few turns.
    server = serve(make_app(tmp_path))
    async with client(server) as http:
        for turn in range(1, 9):
            before = await thread_of(http, "long") if turn > 1 else {"message_count": 0}
            stream = await post(http, "long", f"Turn {turn}: my name is Ada and I like tea.")
            assert stream.kinds[-1] == "end"
            if stream.of("compaction"):
                break
        else:
            pytest.fail("no compaction in 8 turns")
        assert turn <= 5, "the offline demo should compact after a few turns"
        after = await thread_of(http, "long")
        # The agent now sees the running summary: the next reply says so.
        next_turn = await post(http, "long", "What do you still see?")

    # tokens..., compaction, end: the compaction comes after the whole reply.
    tokens = stream.of("token")
    assert stream.kinds == ["token"] * len(tokens) + ["compaction", "end"]
    compaction = stream.of("compaction")[0].data
    assert "result" not in compaction
    assert compaction["status"] == "compacted"
    assert compaction["trigger"] == "token_limit"
    assert compaction["tokens_after"] < compaction["tokens_before"]
    assert compaction["messages_summarized"] > 0
    assert compaction["messages_before"] == before["message_count"] + 2
    assert "Ada" in compaction["summary"]
    assert compaction["checkpoint_id"] and compaction["previous_checkpoint_id"]
    assert compaction["duration"] >= 0
    assert compaction["error"] is None

    assert after["message_count"] == compaction["messages_after"]
    assert after["message_count"] < compaction["messages_before"]
    assert after["tokens"] == compaction["tokens_after"]
    assert after["messages"][0]["summary"] is True
    assert not any(m["summary"] for m in after["messages"][1:])
    assert after["last_compaction"] == compaction
    # The reply streamed in the compacting turn is kept verbatim.
    assert after["messages"][-1] == {
        "type": "ai",
        "content": stream.text,
        "id": tokens[0].data["message_id"],
        "summary": False,
    }
    assert "and a summary of older ones" in next_turn.text


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_clients_on_different_threads_get_their_own_streams(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    clients = 10
    server = serve(make_app(tmp_path, word_delay=0.02))
    health_latencies: list[float] = []

    async with client(server) as http:

        async def watch_health(done: asyncio.Event) -> None:
            while not done.is_set():
                asked = time.monotonic()
                response = await http.get("/health")
                assert response.status_code == 200
                health_latencies.append(time.monotonic() - asked)
                await asyncio.sleep(0.05)

        done = asyncio.Event()
        watcher = asyncio.create_task(watch_health(done))
        streams = await asyncio.gather(
            *(post(http, f"thread-{i:02d}", f"I am client-{i:02d}.") for i in range(clients))
        )
        done.set()
        await watcher
        threads = [await thread_of(http, f"thread-{i:02d}") for i in range(clients)]

    for i, (stream, thread) in enumerate(zip(streams, threads, strict=True)):
        assert stream.status == 200
        assert stream.kinds[-1] == "end"
        assert stream.text == stream.end["reply"] == expected_reply(f"I am client-{i:02d}.")
        assert f"client-{i:02d}" in stream.text
        others = [f"client-{j:02d}" for j in range(clients) if j != i]
        assert not any(other in stream.text for other in others)
        assert len({t.data["message_id"] for t in stream.of("token")}) == 1
        assert [m["content"] for m in thread["messages"]] == [f"I am client-{i:02d}.", stream.text]
    # They really streamed at the same time: every first token came before any stream ended.
    first_tokens = [s.of("token")[0].at for s in streams]
    ends = [s.of("end")[0].at for s in streams]
    assert max(first_tokens) < min(ends)
    # And the event loop stayed free: /health answered quickly throughout.
    assert health_latencies
    # The event loop stays responsive while ten turns stream: a blocked loop would hold
    # /health for a whole reply (seconds). Generous bounds: the machine may be busy.
    assert statistics.median(health_latencies) < 0.5, health_latencies
    assert max(health_latencies) < 2.0, health_latencies


async def test_two_posts_on_one_thread_are_run_one_after_the_other(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    server = serve(make_app(tmp_path, word_delay=0.01, keepalive=0.05))
    async with client(server) as http:
        first, second = await asyncio.gather(
            post(http, "shared", "First question?"), post(http, "shared", "Second question?")
        )
        thread = await thread_of(http, "shared")

    assert first.kinds[-1] == second.kinds[-1] == "end"
    messages = [(m["type"], m["content"]) for m in thread["messages"]]
    assert [kind for kind, _ in messages] == ["human", "ai", "human", "ai"]
    # Both turns landed, each reply right after its question, in one order or the other ...
    questions = {messages[0][1], messages[2][1]}
    assert questions == {"First question?", "Second question?"}
    assert f'"{messages[0][1]}"' in messages[1][1]
    assert f'"{messages[2][1]}"' in messages[3][1]
    # ... and the second run saw the first one's messages: they did not overlap.
    assert "I can see 0 earlier messages" in messages[1][1]
    assert "I can see 2 earlier messages" in messages[3][1]
    assert {first.text, second.text} == {messages[1][1], messages[3][1]}
    # The request that waited for the thread was kept alive with comment lines.
    assert any(": keep-alive" in s.comments for s in (first, second))


# --------------------------------------------------------------------------- bad input, failures


async def test_invalid_requests_get_a_json_error_naming_the_field(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    server = serve(make_app(tmp_path))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"json": {}}, "message"),
        ({"json": {"text": "hi"}}, "message"),
        ({"json": {"message": ""}}, "message"),
        ({"json": {"message": "  \n "}}, "message"),
        ({"json": {"message": 42}}, "message"),
        ({"json": {"message": None}}, "message"),
        ({"json": {"message": "x" * 40_000}}, "message"),
        ({"json": ["hi"]}, "body"),
        ({"content": b"not json", "headers": {"content-type": "application/json"}}, "body"),
        ({"content": b""}, "body"),
    ]
    async with client(server) as http:
        for request, field_name in cases:
            stream = await post(http, "bad", None, **request)
            assert stream.status == 422, request
            assert stream.headers["content-type"] == "application/json"
            assert stream.body["field"] == field_name, (request, stream.body)
            assert f"`{field_name}`" in stream.body["error"] or field_name == "body"
        long_id = await post(http, "t" * 300, "hi")
        assert long_id.status == 422
        assert long_id.body["field"] == "thread_id"

        # Nothing ran: the thread does not exist.
        missing = await http.get("/threads/bad")
        assert missing.status_code == 404
        assert "not found" in missing.json()["error"]
        assert (await http.get("/nowhere")).json() == {"error": "Not Found"}
        wrong_method = await http.get("/threads/bad/messages")
        assert wrong_method.status_code == 405
        assert wrong_method.json() == {"error": "Method Not Allowed"}
        assert (await http.get("/health")).json() == {"status": "ok", "turns_in_progress": 0}


class BrokenSummarizer:
    """A summariser whose service is down."""

    def summarize(self, previous: str | None, messages: Any, *, max_tokens: int) -> str:
        raise RuntimeError("the summary service is down")

    async def asummarize(self, previous: str | None, messages: Any, *, max_tokens: int) -> str:
        raise RuntimeError("the summary service is down")


async def test_a_failing_summariser_fails_the_compaction_not_the_turn(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    server = serve(make_app(tmp_path, summarizer=BrokenSummarizer(), token_limit=150))
    sent: list[str] = []
    async with client(server) as http:
        for turn in range(1, 7):
            sent.append(f"Turn {turn}, please remember it.")
            stream = await post(http, "fragile", sent[-1])
            assert stream.kinds[-1] == "end"
            if stream.of("compaction"):
                break
        else:
            pytest.fail("no compaction attempt in 6 turns")
        thread = await thread_of(http, "fragile")
        health = (await http.get("/health")).json()

    compaction = stream.of("compaction")[0].data
    assert compaction["status"] == "failed"
    assert "the summary service is down" in compaction["error"]
    assert compaction["tokens_after"] == compaction["tokens_before"]
    assert compaction["checkpoint_id"] is None
    # The turn itself is whole, and the history is untouched: every message, no summary.
    assert stream.text == stream.end["reply"]
    assert thread["message_count"] == 2 * len(sent)
    assert [m["content"] for m in thread["messages"][::2]] == sent
    assert thread["messages"][-1]["content"] == stream.text
    assert not any(m["summary"] for m in thread["messages"])
    assert thread["last_compaction"] == compaction
    assert health == {"status": "ok", "turns_in_progress": 0}


async def test_a_failing_model_sends_an_error_event_and_the_thread_stays_usable(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    def reply(messages: list[BaseMessage]) -> str:
        if "explode" in messages[-1].text:
            raise RuntimeError("the model blew up")
        return streaming_app.scripted_reply(messages)  # type: ignore[no-any-return]

    model = streaming_app.OfflineChatModel(responses=[reply])
    server = serve(make_app(tmp_path, model=model))
    async with client(server) as http:
        ok = await post(http, "bumpy", "Hello!")
        failed = await post(http, "bumpy", "Please explode.")
        health = (await http.get("/health")).json()
        recovered = await post(http, "bumpy", "Are you back?")
        thread = await thread_of(http, "bumpy")

    assert ok.kinds[-1] == "end"
    assert failed.status == 200
    assert failed.kinds == ["error"]
    error = failed.events[-1].data
    assert error["type"] == "RuntimeError"
    assert "see the server log" in error["error"]
    assert "blew up" not in error["error"]  # internals stay in the log
    assert health == {"status": "ok", "turns_in_progress": 0}
    assert recovered.kinds[-1] == "end"
    assert "I can see 3 earlier messages" in recovered.text
    # LangGraph keeps the failed turn's message; the next turn simply continues the thread.
    assert [(m["type"], m["content"]) for m in thread["messages"]] == [
        ("human", "Hello!"),
        ("ai", ok.text),
        ("human", "Please explode."),
        ("human", "Are you back?"),
        ("ai", recovered.text),
    ]


# --------------------------------------------------------------------------- lifecycle


async def test_a_turn_outlives_its_client_and_shutdown_waits_for_it(
    tmp_path: Path, serve: Callable[[Any], LiveServer]
) -> None:
    app = make_app(tmp_path, word_delay=0.03)
    server = serve(app)
    message = "I will hang up right away."
    async with client(server) as http:
        async with http.stream(
            "POST", "/threads/gone/messages", json={"message": message}
        ) as response:
            stream = Stream(response.status_code, response.headers)
            await read_sse(response, stream, stop_after=1)  # one token, then hang up
        assert stream.kinds == ["token"]
        health = (await http.get("/health")).json()
    assert health["turns_in_progress"] == 1

    # Shut down at once: the lifespan lets the turn finish before closing the saver.
    chat = app.state.chat
    await asyncio.to_thread(server.stop)
    assert chat.closed
    assert not chat.turns
    with pytest.raises(ValueError, match="no active connection"):
        await chat.supervisor.agent.checkpointer.conn.execute("SELECT 1")

    # A new server on the same file finds the whole turn.
    restarted = serve(make_app(tmp_path))
    async with client(restarted) as http:
        thread = await thread_of(http, "gone")
    assert [(m["type"], m["content"]) for m in thread["messages"]] == [
        ("human", message),
        ("ai", expected_reply(message)),
    ]


# --------------------------------------------------------------------------- a real model


def real_model_reply(messages: list[BaseMessage], body: dict[str, Any]) -> AIMessage:
    """What the model behind ``--base-url`` answers: a summary, or the nth reply."""
    if "running summary" in messages[0].text:  # the summariser's prompt
        return AIMessage("Bob asked several questions about trains.")
    turn = sum(isinstance(m, HumanMessage) for m in messages)
    return AIMessage(f"Real model reply {turn}: trains leave hourly from the main station.")


async def test_a_real_model_behind_base_url_streams_and_summarises(
    tmp_path: Path, serve: Callable[[Any], LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with openai_server(real_model_reply) as openai:
        await talk_to_a_real_model(tmp_path, serve, openai.base_url, openai.requests)


async def talk_to_a_real_model(
    tmp_path: Path, serve: Callable[[Any], LiveServer], base_url: str, calls: list[dict[str, Any]]
) -> None:
    agent, summariser = streaming_app.make_models("openai:fake-model", base_url)
    assert summariser is agent  # the real model also writes the summaries
    server = serve(make_app(tmp_path, model=agent, summarizer=summariser, token_limit=150))
    async with client(server) as http:
        for turn in range(1, 7):
            stream = await post(http, "real", f"I am Bob. Question {turn}: when do trains leave?")
            assert stream.kinds[-1] == "end"
            if stream.of("compaction"):
                break
        else:
            pytest.fail("no compaction in 6 turns")
        thread = await thread_of(http, "real")

    assert len(stream.of("token")) > 5
    assert stream.text == stream.end["reply"]
    assert stream.text.startswith("Real model reply")
    compaction = stream.of("compaction")[0].data
    assert compaction["status"] == "compacted"
    assert compaction["summary"] == "Bob asked several questions about trains."
    assert thread["messages"][0]["summary"] is True
    assert "Bob asked several questions about trains." in thread["messages"][0]["content"]
    agent_calls = [c for c in calls if c.get("stream")]
    summary_calls = [c for c in calls if not c.get("stream")]
    assert len(agent_calls) == turn
    assert len(summary_calls) == 1
    assert agent_calls[0]["messages"][0]["content"] == streaming_app.SYSTEM_PROMPT
