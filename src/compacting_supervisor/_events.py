"""The wrapper's stream shapes: its event dicts, and what it reads from native chunks.

`CompactingSupervisor.stream` without ``stream_mode`` runs the graph with
`EVENT_STREAM_MODES` and subgraphs, and `EventMapper` turns each native
``(namespace, mode, payload)`` chunk into an event dict (``"token"``, ``"message"``,
``"interrupt"``); `closing_events` adds the ``"compaction"`` and ``"end"`` events after the
run. With ``stream_mode`` the chunks pass through unchanged, and `native_final_values`
picks the root graph's values out of them for the compaction check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from compacting_supervisor.results import CompactionResult
from compacting_supervisor.summarizers import SUMMARIZER_TAG

__all__ = [
    "EVENT_STREAM_MODES",
    "EventMapper",
    "closing_events",
    "event_kwargs",
    "native_final_values",
    "output_messages",
]

INTERRUPT = "__interrupt__"
EVENT_STREAM_MODES = ["messages", "updates", "values"]
"""The native modes an event stream runs the graph with."""


class EventMapper:
    """Turns native ``(namespace, mode, payload)`` chunks into the wrapper's event dicts.

    It also keeps what the closing events need: the root graph's last values and the
    interrupts the run raised.
    """

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.values: Any = None
        self.interrupts: list[Any] = []

    def feed(self, chunk: tuple[tuple[str, ...], str, Any]) -> dict[str, Any] | None:
        """Return the event for ``chunk``, or None when it makes none."""
        namespace, mode, payload = chunk
        if mode == "values":
            if not namespace:
                self.values = payload
            return None
        if mode == "updates":
            if not namespace and isinstance(payload, dict) and payload.get(INTERRUPT):
                self.interrupts.extend(payload[INTERRUPT])
                return {
                    "type": "interrupt",
                    "thread_id": self.thread_id,
                    "interrupts": list(payload[INTERRUPT]),
                }
            return None
        message, metadata = payload
        if SUMMARIZER_TAG in (metadata.get("tags") or ()):
            return None  # A summariser call nested in a run: never the user's tokens.
        node = metadata.get("langgraph_node")
        # A sub-agent's events come from its subgraph; at the top level an AIMessage may
        # carry the agent's name (langgraph-supervisor tags them), else the node is the agent.
        named = message.name if isinstance(message, AIMessage) else None
        agent = namespace[0].split(":")[0] if namespace else (named or node)
        from_model = isinstance(message, AIMessageChunk) or "ls_provider" in metadata
        if isinstance(message, AIMessage) and from_model:
            text = message.text
            if not text:
                return None
            return {
                "type": "token",
                "content": text,
                "node": node,
                "agent": agent,
                "namespace": namespace,
                "message_id": message.id,
            }
        return {
            "type": "message",
            "message": message,
            "node": node,
            "agent": agent,
            "namespace": namespace,
        }


def event_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The caller's stream arguments, with the modes an event stream needs."""
    passed = {k: v for k, v in kwargs.items() if k not in ("subgraphs", "version")}
    return {**passed, "stream_mode": EVENT_STREAM_MODES, "subgraphs": True}


def closing_events(
    thread_id: str, mapper: EventMapper, result: CompactionResult | None
) -> Iterator[dict[str, Any]]:
    """The ``"compaction"`` event (when one was attempted) and the final ``"end"``."""
    if result is not None:
        yield result.to_event()
    yield {
        "type": "end",
        "thread_id": thread_id,
        "values": mapper.values,
        "interrupts": mapper.interrupts,
    }


def native_final_values(
    chunk: Any, stream_mode: Any, subgraphs: bool, version: Any
) -> tuple[bool, Any]:
    """Return ``(True, values)`` when a native chunk carries the root graph's values."""
    if version == "v2":
        if isinstance(chunk, dict) and chunk.get("type") == "values" and not chunk.get("ns"):
            return True, chunk.get("data")
        return False, None
    single = isinstance(stream_mode, str)
    modes = [stream_mode] if single else list(stream_mode)
    if "values" not in modes:
        return False, None
    if subgraphs:
        namespace, *rest = chunk
        if namespace:
            return False, None
        chunk = rest[0] if single else tuple(rest)
    if single:
        return True, chunk
    mode, payload = chunk
    return (mode == "values"), payload


def output_messages(output: Any, key: str) -> list[BaseMessage] | None:
    """The messages in a run's output, or None when the output does not carry them."""
    value = getattr(output, "value", output)  # GraphOutput with version="v2"
    if isinstance(value, dict):
        messages = value.get(key)
        if isinstance(messages, list) and all(isinstance(m, BaseMessage) for m in messages):
            return messages
    return None
