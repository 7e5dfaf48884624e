"""Scripted chat models and a tiny graph, for tests, examples and offline demos.

`ScriptedChatModel` answers from a script (strings, messages, callables or exceptions),
records every call, supports ``bind_tools`` and streams its answers word by word, so a
LangGraph agent built on it behaves like one built on a real model, with no network.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import Field, PrivateAttr, field_validator

from compacting_supervisor._settings import check_seconds

__all__ = ["ScriptedChatModel", "echo_graph"]

Reply = str | AIMessage | BaseException | Callable[[list[BaseMessage]], "str | AIMessage"]


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script and records what it was asked.

    Each call takes the next entry of ``responses`` (cycling when ``cycle`` is set): a
    string or AIMessage is returned, an exception is raised, a callable is called with the
    messages and its answer returned. ``delay`` seconds pass before each answer.

    Example:
        >>> model = ScriptedChatModel(responses=["Hi there!", "Bye."])
        >>> model.invoke("Hello").content
        'Hi there!'
        >>> len(model.calls)
        1
    """

    responses: list[Any] = Field(default_factory=list)
    """The script."""
    cycle: bool = True
    """Start again from the first entry when the script runs out."""
    delay: float = 0.0
    """Seconds to wait before answering (to exercise timeouts)."""
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    """The messages of every call, in order."""
    record_calls: bool = True
    """Keep ``calls``; turn it off for a long-running server, where they would pile up."""
    _index: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("delay")
    @classmethod
    def _finite_delay(cls, delay: float) -> float:
        return float(check_seconds("delay", delay, allow_zero=True))

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """Accept tools like a real model; the script decides whether to call them."""
        return self

    def _next_reply(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:  # concurrent runs (threads of a server) share the script
            if self.record_calls:
                self.calls.append(list(messages))
            if not self.responses:
                msg = "ScriptedChatModel has an empty script: pass responses=[...]"
                raise ValueError(msg)
            if self._index >= len(self.responses):
                if not self.cycle:
                    msg = f"ScriptedChatModel's script of {len(self.responses)} replies ran out."
                    raise IndexError(msg)
                self._index = 0
            entry = self.responses[self._index]
            self._index += 1
        if self.delay:
            time.sleep(self.delay)
        if isinstance(entry, BaseException):
            raise entry
        if callable(entry) and not isinstance(entry, AIMessage):
            entry = entry(list(messages))
        if isinstance(entry, str):
            return AIMessage(entry)
        return cast(AIMessage, entry.model_copy(deep=True))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next_reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._next_reply(messages)
        text = reply.content if isinstance(reply.content, str) else reply.text
        words = text.split(" ") if text else []
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece, id=reply.id))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        if reply.tool_calls or not words:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    id=reply.id,
                    tool_call_chunks=[
                        {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i}
                        for i, c in enumerate(reply.tool_calls)
                    ],
                )
            )
        if reply.usage_metadata:  # what the model billed, on a last chunk as providers send it
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", id=reply.id, usage_metadata=reply.usage_metadata)
            )

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        if self.delay:
            await asyncio.sleep(self.delay)
            saved, self.delay = self.delay, 0.0
            try:
                return self._generate(messages)
            finally:
                self.delay = saved
        return self._generate(messages)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def echo_graph(
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    model: BaseChatModel | None = None,
    node: str = "agent",
) -> Any:
    """A one-node chat graph (``MessagesState``) compiled with ``checkpointer``.

    With no ``model`` it answers every message with a fixed three-sentence reply. ``node``
    names the node that calls the model.
    """
    chat = model or ScriptedChatModel(
        responses=[
            "Once upon a time a small agent kept a very long diary. "
            "Every page recorded what the user asked and what it answered. "
            "One day the diary grew too long to carry, so it learned to summarise."
        ]
    )

    def respond(state: MessagesState) -> dict[str, Any]:
        return {"messages": [chat.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node(node, respond)
    builder.add_edge(START, node)
    return builder.compile(checkpointer=checkpointer)
