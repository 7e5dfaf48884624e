"""Instant, deterministic fake models and the tool, shared by every contender.

- `AgentModel` answers like an agent on the scripted conversation: it reads the turn from
  the latest user message's tag and returns the 80-word reply, or on every third turn
  first a call of ``search_records``. It keeps the messages of every call for the harness
  to count later (`drain`), outside the timed part of a turn.
- `SummariserModel` answers every summary request with a summary of at least 200 words:
  faithful on the facts, it names every tool result's tag (``[T012]``) it was given (in the
  existing summary or the messages), and the newest 40 other tags; it keeps every request's
  tags and size the same way. Like a real provider it reports the tokens it read and wrote
  on its reply (``usage_metadata``, counted exactly with ``cl100k_base``); that counting is
  part of its own time. ``SummariserModel(delay_seconds=(0.5, 2.0))`` also takes a
  realistic 0.5-2 s a call (a fixed cycle of delays in that range, the same for everyone).
- `search_records` is the tool: about 1,500 characters of JSON per call.

Nothing sleeps unless asked: the models cost no time, so the timings are the frameworks'
own (the summariser's usage counting aside: `busy_seconds` holds all of a model's own
time, the delays included).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import Field, PrivateAttr

from benchmarks.conversation import (
    TOOL_NAME,
    message_tags,
    reply_text,
    tags_in,
    tool_call_id,
    tool_query,
    tool_result,
    turn_of,
)
from compacting_supervisor import TokenCounter
from compacting_supervisor.offload import HEADER_PREFIX

__all__ = ["AgentModel", "SummariserModel", "SummaryCall", "search_records"]

SUMMARY_WORDS = 200
"""Length of every summary the fake summariser writes."""

_SUMMARY_TAGS = 40
"""At most this many tags other than tool results' (the newest) are named in a summary."""

_HEADED = (
    "## Goal\n- keep the orders moving\n## Discoveries\n- {body}.\n## Decisions\n- none\n"
    "## Artifacts (verbatim)\n- none\n## Open tasks\n- none\n## Current state\n- carry on"
)
"""A summary in the headings the conversation request asks for (the same words in it)."""

_FILLER_TEXT = (
    "the team agreed the revised plan for open orders and confirmed suppliers dates and "
    "amounts while pending invoices and warehouse moves stay on the list for follow up"
)
_FILLER = tuple(_FILLER_TEXT.split())


@tool(TOOL_NAME)
def search_records(query: str) -> str:
    """Search the company's order, shipment and invoice records."""
    number = turn_of(query)
    if number is None:
        msg = f"query without a turn tag: {query!r}"
        raise ValueError(msg)
    return tool_result(number)


_SEQUENCE = itertools.count()
"""Every model call's place in one order, the agent's and the summariser's together."""


class _RecordingModel(BaseChatModel):
    """A chat model that keeps its calls' messages until the harness drains them."""

    busy_seconds: float = 0.0
    """Wall time spent inside the model's own calls (excluded from compaction costs)."""

    _pending: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _order: list[int] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    drained_order: list[int] = Field(default_factory=list)
    """The call order (`_SEQUENCE`, shared by every model) of the last `drain`'s calls."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _RecordingModel:
        """Accept tools like a real model; the script decides when to call them."""
        return self

    def drain(self) -> list[list[BaseMessage]]:
        """Return the messages of every call since the last drain, and forget them."""
        with self._lock:
            calls, self._pending = self._pending, []
            self.drained_order, self._order = self._order, []
        return calls

    def _record(self, messages: list[BaseMessage]) -> None:
        with self._lock:
            self._pending.append(list(messages))
            self._order.append(next(_SEQUENCE))

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        started = time.perf_counter()
        self._record(messages)
        answer = self._answer(messages)
        self.busy_seconds += time.perf_counter() - started
        return ChatResult(generations=[ChatGeneration(message=answer)])


class AgentModel(_RecordingModel):
    """The agent's model: the scripted reply, or first a tool call on every third turn.

    It answers the latest user message. When that message is not the last one it is sent
    (langmem can summarise it away, leaving its summary last), it answers the newest turn
    it can find a tag of, and counts the call in `blind_calls`.
    """

    blind_calls: int = 0
    """Calls whose input did not end with the user's message or the tool's result."""
    report_usage: bool = False
    """Whether its replies report ``usage_metadata`` as a provider's do (their input counted
    exactly with ``cl100k_base``), so that the wrapper's trigger reads the usage path."""

    _counter: TokenCounter = PrivateAttr(default_factory=TokenCounter)

    @property
    def _llm_type(self) -> str:
        return "benchmark-agent"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        answer = self._scripted(messages)
        if self.report_usage:
            read = self._counter.count(messages)
            written = self._counter.count_message(answer)
            answer.usage_metadata = UsageMetadata(
                input_tokens=read, output_tokens=written, total_tokens=read + written
            )
        return answer

    def _scripted(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        number = turn_of(last.text)
        if isinstance(last, HumanMessage) and number is not None:
            return _agent_reply(number, tool_done=False)
        if isinstance(last, ToolMessage) and number is not None:
            return _agent_reply(number, tool_done=True)
        self.blind_calls += 1
        tags = set(iter_tags(messages))
        number = max((int(t[1:]) for t in tags if t.startswith("H")), default=None)
        if number is None:
            msg = f"the agent's input carries no user tag: {last!r}"
            raise ValueError(msg)
        return _agent_reply(number, tool_done=f"T{number:03d}" in tags)


def _agent_reply(number: int, *, tool_done: bool) -> AIMessage:
    """The tool call of turn ``number`` (every third turn, once), else its reply."""
    if number % 3 == 0 and not tool_done:
        call = {"name": TOOL_NAME, "args": {"query": tool_query(number)}}
        return AIMessage("", tool_calls=[{**call, "id": tool_call_id(number)}])
    return AIMessage(reply_text(number))


@dataclass(frozen=True)
class SummaryCall:
    """One summariser request, as the harness counts it."""

    messages: list[BaseMessage]
    """What the summariser model was sent."""
    tags: set[str] = field(default_factory=set)
    """The tags found in it."""
    output: str = ""
    """The summary it wrote."""


class SummariserModel(_RecordingModel):
    """The summariser: names every tool result's tag it was sent and the newest other tags.

    Its reply reports ``usage_metadata`` as a provider's does: the tokens of the request
    (message overhead and reply priming included) and of the summary. With
    ``delay_seconds=(low, high)`` each call also sleeps, cycling through four delays from
    ``low`` to ``high`` (a real model's latency; part of `busy_seconds`).
    """

    delay_seconds: tuple[float, float] | None = None
    """Each call sleeps between these many seconds (None: no sleep)."""

    _summaries: list[str] = PrivateAttr(default_factory=list)
    _counter: TokenCounter = PrivateAttr(default_factory=TokenCounter)
    _delays: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "benchmark-summariser"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        if self.delay_seconds is not None:
            low, high = self.delay_seconds
            time.sleep(low + (high - low) * (self._delays % 4) / 3)  # low, +1/3, +2/3, high
            self._delays += 1
        tags = sorted(set().union(*(message_tags(m) for m in messages)), key=_tag_order)
        facts = [tag for tag in tags if tag.startswith("T")]
        others = [tag for tag in tags if not tag.startswith("T")][-_SUMMARY_TAGS:]
        named = sorted({*facts, *others}, key=_tag_order)
        filler = (_FILLER[i % len(_FILLER)] for i in range(SUMMARY_WORDS))
        words = [f"[{tag}]" for tag in named]
        words += [next(filler) for _ in range(SUMMARY_WORDS - len(words) - 1)]
        text = "Summary: " + " ".join(words) + "."
        if "<summary_request>" in str(messages[-1].content):  # asked for its headings
            text = _HEADED.format(body=" ".join(words))
        with self._lock:
            self._summaries.append(text)
        read, written = self._counter.count(messages), self._counter.count_text(text)
        usage = UsageMetadata(input_tokens=read, output_tokens=written, total_tokens=read + written)
        return AIMessage(text, usage_metadata=usage)

    def drain_calls(self) -> list[SummaryCall]:
        """Every request since the last drain, with its tags and the summary written."""
        calls = self.drain()
        with self._lock:
            outputs, self._summaries = self._summaries, []
        return [
            SummaryCall(messages, set().union(*(_whole_tags(m) for m in messages)), out)
            for messages, out in zip(calls, outputs, strict=True)
        ]


_STUB = re.compile(
    re.escape(HEADER_PREFIX)
    + r"(?P<ref>tr_[0-9a-f]{20}), [\d,]+ characters, [\d,]+ tokens"
    + r"(?:; read it with [\w-]+\.\]"  # no preview: one line
    + r"|\. Preview:\]\n.*?\n\[\.\.\. [\d,]+ more characters; "
    + r'call [\w-]+\(ref="(?P=ref)", offset=\d+\)\])',  # up to the line naming it again
    re.DOTALL,
)
"""An offloaded result's reference and preview, as it reads in a message or a transcript."""


def _whole_tags(message: BaseMessage) -> set[str]:
    """The tags of ``message``, leaving out those only in an offloaded result's preview.

    A preview reaching the summariser is not the result reaching it.
    """
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    if HEADER_PREFIX not in text:
        return message_tags(message)
    return set(tags_in(_STUB.sub("", text)))


def _tag_order(tag: str) -> tuple[int, str]:
    return int(tag[1:]), tag[0]


def iter_tags(messages: Sequence[BaseMessage]) -> Iterator[str]:
    """Every tag the messages carry."""
    for message in messages:
        yield from message_tags(message)
