"""Streaming web app: a LangGraph chat agent served as Server-Sent Events, compacted as it goes.

Run it with no API key and no network (threads are kept in ``streaming_app.sqlite``):

    python examples/streaming_app.py

and talk to thread ``demo`` from another terminal; the reply streams in word by word:

    curl -N -X POST http://127.0.0.1:8000/threads/demo/messages \\
         -H 'Content-Type: application/json' -d '{"message": "I am Ada, off to Lisbon."}'

    event: token
    data: {"content": "I ", "agent": "assistant", "node": "assistant", "message_id": "..."}

    event: token
    data: {"content": "can ", "agent": "assistant", "node": "assistant", "message_id": "..."}

    ...

    event: end
    data: {"thread_id": "demo", "reply": "I can see 0 earlier messages in this thread. ...", ...}

After a few turns the thread holds more than ``--token-limit`` tokens (300 by default). Its
oldest messages are then replaced by a running summary, and right after the reply the
stream carries one compaction event (figures vary with the messages):

    event: compaction
    data: {"thread_id": "demo", "status": "compacted", "trigger": "token_limit",
           "tokens_before": 349, "tokens_after": 281, "messages_before": 10,
           "messages_after": 6, "messages_summarized": 5, "reduction": 0.19,
           "summary": "Earlier conversation ...", "duration": 0.004, ...}

(``data`` is one line on the wire.) ``curl http://127.0.0.1:8000/threads/demo`` shows what
the agent still sees.

Endpoints:

- ``POST /threads/{thread_id}/messages`` with ``{"message": "..."}``: runs one turn and
  streams it as ``text/event-stream``: ``token`` events, ``message`` events for whole
  messages a node adds (tool results, hand-offs: none with this one-node agent),
  ``interrupt``, at most one ``compaction``, then ``end``; or ``error`` if the turn failed.
  Comment lines (``: keep-alive``) keep idle connections open through proxies.
- ``GET /threads/{thread_id}``: the thread's messages, token count and last compaction.
- ``GET /health``.

How it is built: `create_app` returns a Starlette app whose lifespan opens one
``AsyncSqliteSaver`` and wraps the compiled graph in one `CompactingSupervisor` for all
requests. Each turn runs in a task of its own that feeds the response, so:

- turns on different threads stream concurrently, and two requests on the same thread are
  run one after the other by the supervisor's per-thread lock (both turns land);
- a client that disconnects does not stop its turn: the reply is still saved, as a chat UI
  expects when a tab is closed mid-answer;
- at shutdown the server waits for running turns before it closes the checkpointer.

A failed turn (the model raised) sends ``event: error``; the server and the thread stay
usable, and the thread keeps the user's message as LangGraph saved it. A failed compaction
never fails the turn: its ``compaction`` event says ``"status": "failed"`` and the history
is unchanged.

Offline (the default without OPENAI_API_KEY), the agent is a scripted model that echoes the
message and streams word by word, and summaries come from the package's embedded extractive
summariser. With ``--model openai:gpt-4o-mini`` (the default when OPENAI_API_KEY is set) a
real model answers and writes the summaries; ``--base-url`` points it at any
OpenAI-compatible server. ``--help`` lists every option.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from openai import OpenAIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from _shared import (
    SCRIPTED,
    add_model_options,
    check_model_options,
    openai_chat,
    positive_int,
    ratio,
)
from compacting_supervisor import (
    CompactingSupervisor,
    CompactionResult,
    ExtractiveSummarizer,
    HistoryManager,
    is_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

logger = logging.getLogger("streaming_app")

DEFAULT_DB = "streaming_app.sqlite"
DEFAULT_TOKEN_LIMIT = 300
"""Small, so the offline demo compacts after a few turns; raise it for a real model."""
DEFAULT_RATIO = 0.5
KEEPALIVE_SECONDS = 15.0
"""A comment line is sent when a stream has been silent this long (proxies close idle ones)."""
SHUTDOWN_GRACE_SECONDS = 30.0
"""How long shutdown waits for running turns before it cancels them."""
OFFLINE_WORD_DELAY = 0.03
"""Seconds before each word of the offline model, so its replies visibly stream."""
MAX_MESSAGE_CHARS = 32_000
MAX_THREAD_ID_CHARS = 200

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and some other proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}

SYSTEM_PROMPT = (
    "You are a friendly, concise assistant in a chat app. Answer in at most 80 words and "
    "reuse the specifics (names, dates, numbers) the user gave you."
)

# --------------------------------------------------------------------------- the agent

# What the offline model adds to each reply, in turn.
OFFLINE_TIPS = [
    "I am the offline stand-in for a real model: each word of this reply reaches you as its "
    "own token event, just as a real model's tokens would.",
    "Keep talking: once this thread holds more tokens than the server's limit, its older half "
    "is summarised and a compaction event follows my reply.",
    "GET /threads/<id> shows what the agent still sees: the running summary at the top, then "
    "the newest messages word for word.",
    "Compaction deletes nothing: every earlier checkpoint stays in the SQLite file, so the "
    "whole conversation can still be read back.",
    "Start the server with --model openai:gpt-4o-mini, or with --base-url for a local "
    "OpenAI-compatible server, to talk to a real model instead.",
]


def scripted_reply(messages: list[BaseMessage]) -> str:
    """Answer the latest message offline: say how much of the thread is visible, and echo it.

    The count of earlier messages shows, in the reply itself, what compaction did: it drops
    after a compaction, and "a summary of older ones" appears.
    """
    conversation = [m for m in messages if not isinstance(m, SystemMessage)]
    question = " ".join(conversation[-1].text.split())
    if len(question) > 100:
        question = question[:97] + "..."
    earlier = [m for m in conversation[:-1] if not is_summary(m)]
    summary = " and a summary of older ones" if any(map(is_summary, conversation)) else ""
    count = f"{len(earlier)} earlier message{'' if len(earlier) == 1 else 's'}"
    tip = OFFLINE_TIPS[(len(earlier) // 2) % len(OFFLINE_TIPS)]
    return f'I can see {count} in this thread{summary}. You said: "{question}". {tip}'


class OfflineChatModel(ScriptedChatModel):
    """The offline stand-in for an LLM: a `ScriptedChatModel` streaming word by word.

    ``word_delay`` seconds pass before each word (without blocking the event loop), so
    clients see a reply arrive as they would from a real model.
    """

    word_delay: float = 0.0
    """Seconds before each streamed word."""

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            if self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield chunk


def offline_model(word_delay: float = OFFLINE_WORD_DELAY) -> OfflineChatModel:
    """The scripted model the app uses when no real one is configured."""
    # A server would keep every call's messages: record none.
    return OfflineChatModel(responses=[scripted_reply], word_delay=word_delay, record_calls=False)


def build_agent(model: BaseChatModel, checkpointer: AsyncSqliteSaver) -> Any:
    """Your existing graph: one async "assistant" node calling a chat model.

    Any compiled graph with a messages channel works in its place (``create_agent``,
    ``create_react_agent``, a langgraph-supervisor team ...), compiled with ``checkpointer``.
    """

    async def assistant(state: MessagesState) -> dict[str, Any]:
        reply = await model.ainvoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    builder.add_edge("assistant", END)
    return builder.compile(checkpointer=checkpointer)


def make_models(model: str, base_url: str | None) -> tuple[BaseChatModel, BaseChatModel | None]:
    """The agent's chat model and the summariser for ``--model`` / ``--base-url``.

    Returns:
        ``(agent model, summariser)``; the summariser is None (the embedded offline one)
        for the scripted model, else the same real model.

    Raises:
        OpenAIError: The OpenAI client cannot be made (no API key).
    """
    if model == SCRIPTED:
        return offline_model(), None
    real = openai_chat(model, base_url)
    return real, real


# --------------------------------------------------------------------------- SSE


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event: an ``event:`` line and one ``data:`` line of JSON."""
    payload = json.dumps(data, ensure_ascii=False, default=str)  # one line: no raw newlines
    return f"event: {event}\ndata: {payload}\n\n"


def compaction_data(result: CompactionResult) -> dict[str, Any]:
    """A `CompactionResult` as JSON-ready fields (anything unusual in ``extra`` as text)."""
    event = {k: v for k, v in result.to_event().items() if k not in ("type", "result")}
    fields: dict[str, Any] = json.loads(json.dumps(event, default=str))
    return fields


def event_to_sse(event: dict[str, Any]) -> str | None:
    """The SSE frame for one event of `CompactingSupervisor.astream`, or None to skip it."""
    kind = event["type"]
    if kind == "token":
        fields = ("content", "agent", "node", "message_id")
        return sse("token", {key: event.get(key) for key in fields})
    if kind == "compaction":
        # Every CompactionResult field; "result" is the object itself, not JSON.
        return sse("compaction", {k: v for k, v in event.items() if k not in ("type", "result")})
    if kind == "message":
        message: BaseMessage = event["message"]
        data = {"type": message.type, "content": message.text, "name": message.name}
        return sse("message", {**data, "agent": event.get("agent"), "node": event.get("node")})
    if kind == "interrupt":
        interrupts = [
            {"id": getattr(i, "id", None), "value": getattr(i, "value", i)}
            for i in event["interrupts"]
        ]
        return sse("interrupt", {"interrupts": interrupts})
    if kind == "end":
        values = event.get("values")
        messages = values.get("messages", []) if isinstance(values, dict) else []
        reply = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        return sse(
            "end",
            {
                "thread_id": event.get("thread_id"),
                "reply": reply.text if reply is not None else None,
                "message_id": reply.id if reply is not None else None,
            },
        )
    logger.debug("Not streaming an event of type %r", kind)
    return None


# --------------------------------------------------------------------------- the service


class ChatService:
    """What the app's requests share: the supervisor and the turns running on it.

    Each turn runs in a task of its own and puts SSE frames on a queue that the response
    reads, so a turn outlives a client that disconnects and shutdown can wait for it.

    Args:
        supervisor: The wrapped graph.
        keepalive: Seconds of silence after which a stream gets a comment line.
    """

    def __init__(self, supervisor: CompactingSupervisor, *, keepalive: float) -> None:
        self.supervisor = supervisor
        self.keepalive = keepalive
        self.turns: set[asyncio.Task[None]] = set()
        """The turns still running."""
        self.closed = False
        """Set at shutdown, once every turn has finished or been cancelled."""

    def start_turn(self, thread_id: str, message: str) -> asyncio.Queue[str | None]:
        """Start a turn on ``thread_id``; return the queue its SSE frames arrive on.

        The queue ends with None.
        """
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        task = asyncio.create_task(
            self._run_turn(thread_id, message, queue), name=f"turn on {thread_id}"
        )
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)
        return queue

    async def _run_turn(
        self, thread_id: str, message: str, queue: asyncio.Queue[str | None]
    ) -> None:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        events = self.supervisor.astream({"messages": [HumanMessage(message)]}, config)
        try:
            # Closing the stream releases the thread's lock even if this task is cancelled.
            async with contextlib.aclosing(events):
                async for event in events:
                    if (frame := event_to_sse(event)) is not None:
                        queue.put_nowait(frame)
        except asyncio.CancelledError:
            logger.warning("The turn on thread %r was cancelled by the shutdown.", thread_id)
            queue.put_nowait(sse("error", {"error": "The server shut down during the turn."}))
            raise
        except Exception as exc:
            logger.exception("The turn on thread %r failed.", thread_id)
            error = (
                f"The turn failed ({type(exc).__name__}); see the server log. The thread "
                "keeps your message and stays usable."
            )
            queue.put_nowait(sse("error", {"error": error, "type": type(exc).__name__}))
        finally:
            queue.put_nowait(None)

    async def stream(self, thread_id: str, queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
        """The SSE body of a turn: its frames, with keep-alive comments while it is silent."""
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), self.keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        except asyncio.CancelledError:
            logger.info("A client of thread %r left; its turn goes on and is saved.", thread_id)
            raise

    async def thread(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's messages, token count and last compaction; None if it does not exist."""
        snapshot = await self.supervisor.aget_state({"configurable": {"thread_id": thread_id}})
        if snapshot.created_at is None:
            return None
        messages: list[BaseMessage] = snapshot.values.get("messages", [])
        last = self.supervisor.last_compaction(thread_id)
        return {
            "thread_id": thread_id,
            "messages": [
                {"type": m.type, "content": m.text, "id": m.id, "summary": is_summary(m)}
                for m in messages
            ],
            "message_count": len(messages),
            "tokens": self.supervisor.history_manager.token_counter.count(messages),
            "token_limit": self.supervisor.token_limit,
            # Compactions attempted by this process (the checkpoints keep them all).
            "last_compaction": compaction_data(last) if last is not None else None,
        }

    async def aclose(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running turns, then cancel the rest."""
        if self.turns:
            logger.info("Waiting up to %s s for %d running turn(s).", grace, len(self.turns))
            _, pending = await asyncio.wait(set(self.turns), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.closed = True


# --------------------------------------------------------------------------- the app


def invalid(field: str, message: str) -> JSONResponse:
    """A 422 response naming the offending field."""
    return JSONResponse({"error": message, "field": field}, status_code=422)


def check_thread_id(thread_id: str) -> JSONResponse | None:
    """A 422 response for an unusable thread id, else None."""
    if len(thread_id) > MAX_THREAD_ID_CHARS:
        msg = f"`thread_id` must be at most {MAX_THREAD_ID_CHARS} characters."
        return invalid("thread_id", msg)
    return None


async def post_message(request: Request) -> Response:
    """``POST /threads/{thread_id}/messages``: run one turn, streamed as SSE."""
    thread_id = request.path_params["thread_id"]
    if (error := check_thread_id(thread_id)) is not None:
        return error
    try:
        body = await request.json()
    except ValueError:  # not JSON, or not UTF-8
        return invalid("body", 'The body must be JSON, e.g. {"message": "Hello"}.')
    if not isinstance(body, dict):
        return invalid("body", 'The body must be a JSON object, e.g. {"message": "Hello"}.')
    message = body.get("message")
    if message is None:
        return invalid("message", '`message` is required, e.g. {"message": "Hello"}.')
    if not isinstance(message, str):
        return invalid("message", f"`message` must be a string, got {type(message).__name__}.")
    if not message.strip():
        return invalid("message", "`message` must not be empty.")
    if len(message) > MAX_MESSAGE_CHARS:
        msg = f"`message` must be at most {MAX_MESSAGE_CHARS} characters, got {len(message)}."
        return invalid("message", msg)
    chat: ChatService = request.app.state.chat
    queue = chat.start_turn(thread_id, message)
    return StreamingResponse(
        chat.stream(thread_id, queue), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def get_thread(request: Request) -> Response:
    """``GET /threads/{thread_id}``: the thread as the agent sees it now."""
    thread_id = request.path_params["thread_id"]
    if (error := check_thread_id(thread_id)) is not None:
        return error
    chat: ChatService = request.app.state.chat
    if (thread := await chat.thread(thread_id)) is None:
        return JSONResponse({"error": f"Thread {thread_id!r} not found."}, status_code=404)
    return JSONResponse(thread)


async def health(request: Request) -> Response:
    """``GET /health``: the server is up; how many turns are running."""
    chat: ChatService = request.app.state.chat
    return JSONResponse({"status": "ok", "turns_in_progress": len(chat.turns)})


async def http_error(request: Request, exc: Exception) -> Response:
    """Errors (404, 405 ...) as JSON, like every other answer of the app."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected error as a JSON 500 (the traceback goes to the server log)."""
    return JSONResponse({"error": "Internal server error; see the server log."}, status_code=500)


def create_app(
    db_path: str | Path,
    *,
    model: BaseChatModel | None = None,
    summarizer: Any = None,
    token_limit: int = DEFAULT_TOKEN_LIMIT,
    compaction_ratio: float = DEFAULT_RATIO,
    keepalive: float = KEEPALIVE_SECONDS,
    shutdown_grace: float = SHUTDOWN_GRACE_SECONDS,
) -> Starlette:
    """Build the Starlette app: the agent on an ``AsyncSqliteSaver``, wrapped for compaction.

    The lifespan opens the SQLite file and builds the graph and the `CompactingSupervisor`
    once; at shutdown it waits for running turns and closes the file.

    Args:
        db_path: The SQLite file holding the threads (created if missing).
        model: The agent's chat model. None uses the offline scripted model.
        summarizer: The summariser: a chat model (pass ``model`` to summarise with it), a
            ``"provider:model"`` string or a summariser object, as `HistoryManager` takes.
            None uses the embedded offline extractive summariser.
        token_limit: Compact a thread after a turn that leaves more tokens than this in it.
        compaction_ratio: The fraction of the conversation a compaction summarises, in (0, 1).
        keepalive: Seconds of silence after which a stream gets a ``: keep-alive`` comment.
        shutdown_grace: Seconds shutdown waits for running turns before cancelling them.

    Returns:
        The app; its `ChatService` is ``app.state.chat`` while it runs.

    Raises:
        ValueError: A setting is out of range.

    Example:
        >>> app = create_app("threads.sqlite", token_limit=4000)
        >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    if isinstance(token_limit, bool) or not isinstance(token_limit, int) or token_limit <= 0:
        msg = f"`token_limit` must be a positive number of tokens, got {token_limit!r}."
        raise ValueError(msg)
    if not 0 < compaction_ratio < 1:
        msg = f"`compaction_ratio` must be between 0 and 1 (exclusive), got {compaction_ratio}."
        raise ValueError(msg)
    if keepalive <= 0:
        msg = f"`keepalive` must be a positive number of seconds, got {keepalive}."
        raise ValueError(msg)
    if shutdown_grace < 0:
        msg = f"`shutdown_grace` must be zero or more seconds, got {shutdown_grace}."
        raise ValueError(msg)
    chat_model = model if model is not None else offline_model()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncSqliteSaver.from_conn_string(str(db_path)) as saver:
            await saver.setup()
            history = HistoryManager(
                # Chosen explicitly, so the one-time "an LLM summarises better" hint stays quiet.
                model=summarizer if summarizer is not None else ExtractiveSummarizer(),
                # Left out, it is a quarter of the token limit: very terse with a small limit.
                max_summary_tokens=max(32, token_limit // 3),
            )
            supervisor = CompactingSupervisor(
                build_agent(chat_model, saver),
                history,
                token_limit=token_limit,
                compaction_ratio=compaction_ratio,
            )
            chat = app.state.chat = ChatService(supervisor, keepalive=keepalive)
            logger.info("Serving threads from %s (token limit %d).", db_path, token_limit)
            try:
                yield
            finally:
                await chat.aclose(shutdown_grace)
        logger.info("Closed %s.", db_path)

    return Starlette(
        routes=[
            Route("/threads/{thread_id}/messages", post_message, methods=["POST"]),
            Route("/threads/{thread_id}", get_thread, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Serve a small LangGraph chat agent over HTTP, streaming each reply as "
            "Server-Sent Events. The agent is wrapped in CompactingSupervisor: when a thread "
            "grows past the token limit its oldest messages are summarised (a 'compaction' "
            "event in the stream) and the checkpoint rewritten, every earlier checkpoint kept. "
            "Works offline with no API key by default."
        ),
        epilog=(
            "example: curl -N -X POST http://127.0.0.1:8000/threads/demo/messages "
            "-H 'Content-Type: application/json' -d '{\"message\": \"Hello!\"}'"
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Interface to listen on. Default: %(default)s."
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="Port to listen on. Default: %(default)s."
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="FILE",
        help="SQLite file keeping the threads (created if missing; threads survive restarts). "
        "Default: %(default)s in the current directory.",
    )
    add_model_options(parser, offline="the offline scripted agent", real="answers and summarises")
    parser.add_argument(
        "--token-limit",
        type=positive_int,
        default=DEFAULT_TOKEN_LIMIT,
        metavar="N",
        help="Compact a thread after a turn that leaves more than N tokens in it. "
        "Default: %(default)s (small, so the demo compacts after a few turns).",
    )
    parser.add_argument(
        "--ratio",
        type=ratio,
        default=DEFAULT_RATIO,
        metavar="R",
        help="Fraction of the conversation each compaction summarises, in (0, 1). "
        "Default: %(default)s (the older half).",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="Logging level of the app and of uvicorn. Default: %(default)s.",
    )
    args = parser.parse_args(argv)
    check_model_options(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve the app until interrupted; return the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        agent_model, summariser = make_models(args.model, args.base_url)
    except OpenAIError as exc:  # no API key
        print(
            f"error: cannot use {args.model}: {exc}\n"
            "Set OPENAI_API_KEY / --base-url, or run offline with --model scripted.",
            file=sys.stderr,
        )
        return 1
    app = create_app(
        args.db,
        model=agent_model,
        summarizer=summariser,
        token_limit=args.token_limit,
        compaction_ratio=args.ratio,
    )
    summary = "embedded offline extractive summariser" if summariser is None else args.model
    print(
        f"agent model: {args.model}   summariser: {summary}\n"
        f"threads: {Path(args.db).resolve()}   token limit: {args.token_limit}   "
        f"compaction ratio: {args.ratio}\n"
        f"try: curl -N -X POST http://{args.host}:{args.port}/threads/demo/messages "
        "-H 'Content-Type: application/json' -d '{\"message\": \"Hello!\"}'",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            # Open streams get this long to finish at Ctrl+C; then the turns themselves
            # get SHUTDOWN_GRACE_SECONDS before the checkpointer closes.
            timeout_graceful_shutdown=10,
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C, re-raised after a clean shutdown
        server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
