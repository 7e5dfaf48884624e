"""An OpenAI-compatible chat-completions server on loopback, answering from Python functions.

Tests point real ``ChatOpenAI`` clients (``--base-url`` in the examples) at it, so the wire
format (JSON requests, tool calls, SSE streaming) is the one a real server speaks. Each
request's messages are turned back into LangChain messages and handed to ``reply``, which
returns the assistant's answer as an ``AIMessage`` (text and/or tool calls). Its
``usage_metadata``, when it has one, is reported as OpenAI reports usage (``cache_read``
as ``prompt_tokens_details.cached_tokens``); without one, a fixed small usage.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_openai.chat_models.base import _convert_dict_to_message

Reply = Callable[[list[BaseMessage], dict[str, Any]], AIMessage]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_error(404, "only /chat/completions is served")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        messages = _with_tool_names([_convert_dict_to_message(m) for m in body["messages"]])
        try:
            answer = self.server.reply(messages, body)
        except Exception as exc:  # shown to the client as a server error
            self._json(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
            return
        calls = [
            {
                "id": call["id"] or f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for call in answer.tool_calls
        ]
        finish = "tool_calls" if calls else "stop"
        usage = _wire_usage(answer)
        if body.get("stream"):
            self._stream(body["model"], answer.text, calls, finish, usage)
            return
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
        if calls:
            message["tool_calls"] = calls
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
        )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(
        self,
        model: str,
        text: str,
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        stamp = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "created": int(time.time())}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> None:
            payload = {
                **stamp,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        for word in _words(text):
            chunk({"content": word})
        for index, call in enumerate(calls):
            chunk({"tool_calls": [{"index": index, **call}]})
        chunk({}, finish)
        final = {**stamp, "object": "chat.completion.chunk", "model": model, "choices": []}
        self.wfile.write(f"data: {json.dumps({**final, 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _wire_usage(answer: AIMessage) -> dict[str, Any]:
    """The answer's ``usage_metadata`` in OpenAI's ``usage`` shape (fixed when it has none)."""
    reported = answer.usage_metadata
    if not reported:
        return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    usage: dict[str, Any] = {
        "prompt_tokens": reported["input_tokens"],
        "completion_tokens": reported["output_tokens"],
        "total_tokens": reported["total_tokens"],
    }
    details = reported.get("input_token_details") or {}
    if "cache_read" in details:  # OpenAI reports reads only: it bills no cache writes
        usage["prompt_tokens_details"] = {"cached_tokens": details["cache_read"]}
    return usage


def _with_tool_names(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Tool results carry only their call's id on the wire: name them after the call."""
    names = {
        call["id"]: call["name"]
        for m in messages
        if isinstance(m, AIMessage)
        for call in m.tool_calls
    }
    return [
        m.model_copy(update={"name": names.get(m.tool_call_id)})
        if isinstance(m, ToolMessage) and not m.name
        else m
        for m in messages
    ]


def _words(text: str) -> Iterator[str]:
    """``text`` in word-sized pieces that join back to it exactly."""
    piece = ""
    for char in text:
        piece += char
        if char == " ":
            yield piece
            piece = ""
    if piece:
        yield piece


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reply: Reply) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.requests: list[dict[str, Any]] = []


@contextmanager
def openai_server(reply: Reply) -> Iterator[_Server]:
    """Serve ``reply`` on a free loopback port; ``server.base_url`` is the ``/v1`` URL."""
    server = _Server(reply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
