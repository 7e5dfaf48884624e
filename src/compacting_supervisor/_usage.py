"""What the model is really sent: provider-reported usage, guarded, plus declared overhead.

The wrapper sees the state's messages, not the agent's own system prompt or tool schemas;
those can be declared (`declared_tokens`). When the newest AIMessage carries the provider's
``usage_metadata``, its input + output tokens are the exact size of everything up to it,
hidden prompt and tools included; only the messages after it are counted (`context_tokens`).

Usage is only trusted when it belongs to the messages now in the thread: an AIMessage kept
by a compaction reports the size of the longer history it was answering, and some
providers or wrappers report odd values. So usage is ignored for messages older than the
last compaction, on an answer whose tool results were offloaded after it read them whole,
and when it falls outside ``[0.5, 3] x our count + 4,000`` (logged).

The same replies tell what the provider's prompt cache served (`cache_usage`), for the
messages of one session (`since_compaction`: what was written since the last compaction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from compacting_supervisor._messages import METADATA_KEY, is_summary
from compacting_supervisor._summarizer_call import cache_figures
from compacting_supervisor.offload import OFFLOAD_KEY
from compacting_supervisor.results import CacheUsage
from compacting_supervisor.token_counter import TokenCounter

logger = logging.getLogger(__name__)

_LOWEST = 0.5
_HIGHEST = 3.0
_SLACK = 4_000  # an undeclared system prompt and tool schemas


def declared_tokens(
    system_prompt: str | int | None, tools: Sequence[Any] | int | None, counter: TokenCounter
) -> int:
    """Tokens of the agent's own system prompt and tool schemas, as declared by the user.

    Args:
        system_prompt: Its text, or its size in tokens.
        tools: The tools (LangChain tools, functions, or OpenAI tool dicts), or their size
            in tokens. Tools count as their JSON schema's tokens.
        counter: The counter to use.

    Raises:
        ValueError: A value is neither text/tools nor a non-negative number of tokens.
    """
    total = 0
    if isinstance(system_prompt, int) and not isinstance(system_prompt, bool):
        total += _non_negative("system_prompt", system_prompt)
    elif isinstance(system_prompt, str):
        total += counter.count_text(system_prompt) + 4  # a system message's overhead
    elif system_prompt is not None:
        msg = (
            "`system_prompt` must be the agent's system prompt text or its size in tokens, "
            f"got {type(system_prompt).__name__}."
        )
        raise ValueError(msg)
    if isinstance(tools, int) and not isinstance(tools, bool):
        total += _non_negative("tools", tools)
    elif tools is not None:
        if isinstance(tools, str) or not isinstance(tools, Sequence):
            msg = (
                "`tools` must be the agent's tools (a list) or their schemas' size in tokens, "
                f"got {type(tools).__name__}."
            )
            raise ValueError(msg)
        total += sum(counter.count_text(schema) for schema in tool_schemas(tools))
    return total


def tool_schemas(tools: Sequence[Any]) -> list[str]:
    """Each tool's JSON schema as a model is sent it (OpenAI's tool format), as text.

    Raises:
        ValueError: A tool's schema cannot be read.
    """
    schemas = []
    for tool in tools:
        try:
            schema = convert_to_openai_tool(tool)
        except Exception as exc:
            msg = f"`tools`: cannot read the schema of {tool!r} ({exc}); pass a token count."
            raise ValueError(msg) from exc
        schemas.append(json.dumps(schema, ensure_ascii=False))
    return schemas


def _non_negative(name: str, value: int) -> int:
    if value < 0:
        msg = f"`{name}` must be text or a non-negative number of tokens, got {value}."
        raise ValueError(msg)
    return value


def summary_details(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    """The running summary's record of the compactions (empty when never compacted)."""
    return _summary(messages)[1]


def _summary(messages: Sequence[BaseMessage]) -> tuple[int, dict[str, Any]]:
    """The running summary's index and record: it follows the leading system messages."""
    for index, message in enumerate(messages):
        if is_summary(message):
            details = message.response_metadata.get(METADATA_KEY)
            return index, details if isinstance(details, dict) else {}
        if not isinstance(message, SystemMessage):
            break
    return -1, {}


def context_tokens(
    messages: Sequence[BaseMessage],
    counter: TokenCounter,
    overhead: int,
    *,
    counted: int | None = None,
    new_from: int | None = None,
) -> int:
    """The tokens the model is sent for ``messages``: usage-based where trustworthy.

    Args:
        messages: The thread's messages.
        counter: Counts what usage does not cover.
        overhead: Declared tokens of the agent's system prompt and tools.
        counted: ``counter.count(messages)`` when the caller already knows it.
        new_from: Where the messages a run appended start, when the caller knows it only
            appended (nothing before them was rewritten since it last read them).
    """
    counted = (counter.count(messages) if counted is None else counted) + overhead
    index, usage = _latest_usage(messages, new_from)
    if usage is None:
        return counted
    # What the model was sent for that answer: everything before it (one count of the
    # thread; the few messages from the answer on are taken off it).
    from_answer = sum(counter.count_message(m) for m in messages[index:])
    before = counted - from_answer if index else overhead
    reported = usage["input_tokens"]
    if not _LOWEST * before <= reported <= _HIGHEST * before + _SLACK:
        logger.debug(
            "Ignoring usage_metadata of %s: %d input tokens against %d counted.",
            messages[index].id,
            reported,
            before,
        )
        return counted
    after = sum(counter.count_message(m) for m in messages[index + 1 :])
    return int(reported + usage["output_tokens"] + after)


def _boundary(messages: Sequence[BaseMessage]) -> int:
    """The index after which messages were written since the last compaction (-1: never).

    The summary and the messages that compaction kept belong to the sessions before it.
    """
    at, details = _summary(messages)
    kept = details.get("messages_kept")
    return at + kept if at >= 0 and isinstance(kept, int) and kept >= 0 else at


def since_compaction(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages written since the last compaction (all of them when never compacted)."""
    return list(messages[_boundary(messages) + 1 :])


def cache_usage(messages: Iterable[BaseMessage]) -> CacheUsage | None:
    """The prompt cache the AIMessages among ``messages`` report, summed.

    Returns:
        Their figures (see `CacheUsage`), or None when no AIMessage reports a cache figure
        in ``usage_metadata["input_token_details"]``: then nothing is known, not zero.
    """
    calls = inputs = unreported = 0
    reads: list[int] = []
    writes: list[int] = []
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        usage = message.usage_metadata
        read, written = cache_figures(usage)
        given = usage.get("input_tokens") if usage else None
        if (
            not isinstance(given, int)
            or isinstance(given, bool)
            or given <= 0
            or (read is None and written is None)
        ):
            unreported += 1
            continue
        calls += 1
        inputs += given
        if read is not None:
            reads.append(read)
        if written is not None:
            writes.append(written)
    if not calls:
        return None
    return CacheUsage(
        model_calls=calls,
        input_tokens=inputs,
        cache_read=sum(reads) if reads else None,
        cache_creation=sum(writes) if writes else None,
        unreported_calls=unreported,
    )


def combined(caches: Iterable[CacheUsage | None]) -> CacheUsage | None:
    """Several spans' figures summed; None when none of them is known.

    A cache figure stays None only when no span reported it.
    """
    known = [cache for cache in caches if cache is not None]
    if not known:
        return None
    reads = [c.cache_read for c in known if c.cache_read is not None]
    writes = [c.cache_creation for c in known if c.cache_creation is not None]
    return CacheUsage(
        model_calls=sum(c.model_calls for c in known),
        input_tokens=sum(c.input_tokens for c in known),
        cache_read=sum(reads) if reads else None,
        cache_creation=sum(writes) if writes else None,
        unreported_calls=sum(c.unreported_calls for c in known),
    )


def cache_record(cache: CacheUsage | None) -> dict[str, int | None] | None:
    """``cache`` as checkpoint metadata (JSON), read back by `cache_from_record`."""
    return None if cache is None else asdict(cache)


def cache_from_record(record: Any) -> CacheUsage | None:
    """A `cache_record` read back from metadata; None when it is missing or malformed."""
    if not isinstance(record, dict):
        return None
    fields: dict[str, int | None] = {}
    for name, optional in _RECORD_FIELDS.items():
        value = record.get(name)
        if value is None and optional:
            fields[name] = None
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            fields[name] = value
        else:
            return None
    return CacheUsage(**fields)  # type: ignore[arg-type]


_RECORD_FIELDS = {
    "model_calls": False,
    "input_tokens": False,
    "cache_read": True,
    "cache_creation": True,
    "unreported_calls": False,
}
"""`CacheUsage`'s fields in a record, and whether each may be None."""


def _latest_usage(
    messages: Sequence[BaseMessage], new_from: int | None = None
) -> tuple[int, dict[str, int] | None]:
    """The newest AIMessage written since the last compaction, and its usage if sane.

    ``new_from`` (see `context_tokens`) spares the look for results offloaded after that
    answer in what it read: when the answer is among the appended messages, only an
    offload after it could name it, and an offload rewrites the thread (the caller then
    passes None); the appended messages alone are looked at.
    """
    # The summary and the messages the last compaction kept answered a longer history.
    boundary = _boundary(messages)
    for index in range(len(messages) - 1, boundary, -1):
        message = messages[index]
        if not isinstance(message, AIMessage):
            continue
        usage = message.usage_metadata
        if not usage:
            # Only the newest answer describes the whole thread; an older one with usage may
            # be another agent's, which saw a different context.
            return index, None
        inputs, outputs = usage.get("input_tokens"), usage.get("output_tokens")
        if (
            isinstance(inputs, int)
            and isinstance(outputs, int)
            and not isinstance(inputs, bool)
            and inputs > 0
            and outputs >= 0
            and not _offloaded_since(messages, _looked_from(boundary, index, new_from), index)
        ):
            return index, {"input_tokens": inputs, "output_tokens": outputs}
        return index, None  # the newest usage is unusable: count instead
    return -1, None


def _looked_from(boundary: int, index: int, new_from: int | None) -> int:
    """The index after which to look for results offloaded after the answer at ``index``."""
    if new_from is not None and index >= new_from:
        return max(boundary, new_from - 1)
    return boundary


def _offloaded_since(messages: Sequence[BaseMessage], boundary: int, index: int) -> bool:
    """Whether tool results this answer read whole were offloaded after it."""
    answer = messages[index].id
    if answer is None:
        return False
    for message in messages[boundary + 1 : index]:
        if isinstance(message, ToolMessage):
            meta = message.response_metadata.get(METADATA_KEY)
            info = meta.get(OFFLOAD_KEY) if isinstance(meta, dict) else None
            if isinstance(info, dict) and info.get("answered_by") == answer:
                return True
    return False
