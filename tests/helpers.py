"""Test helpers: scripted conversations and the providers' message rules."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent

from compacting_supervisor.testing import ScriptedChatModel, echo_graph
from compacting_supervisor.triggers import Trigger, TriggerContext

_ids = itertools.count()


def fresh_id(prefix: str = "call") -> str:
    return f"{prefix}_{next(_ids)}"


def chat_graph(checkpointer: Any, model: Any = None) -> Any:
    """A one-node chat graph; the model answers 'Reply N: ...' with some bulk."""
    counter = itertools.count(1)
    model = model or ScriptedChatModel(
        responses=[
            lambda messages: (
                f"Reply {next(counter)}: noted your message "
                f"'{messages[-1].content}'. Here is a fairly long answer with details "
                "so that the thread grows quickly and crosses its token limit."
            )
        ]
    )
    return echo_graph(checkpointer=checkpointer, model=model, node="assistant")


def approval_graph(checkpointer: Any, *, padding: str = "") -> Any:
    """A graph whose only node pauses on ``interrupt("approve?")``, then answers."""
    from langgraph.types import interrupt

    def ask(state: MessagesState) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"messages": [AIMessage(f"approved: {answer}{'. ' + padding if padding else ''}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    return builder.compile(checkpointer=checkpointer)


@tool
def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"The weather in {city} is sunny and 21 degrees with a light breeze from the west."


def tool_agent(checkpointer: Any) -> Any:
    """A create_react_agent that calls `lookup` twice in parallel every turn, then answers."""

    def reply(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage("Both cities are sunny today; pack sunglasses for the trip.")
        return AIMessage(
            "",
            tool_calls=[
                {"name": "lookup", "args": {"city": "Paris"}, "id": fresh_id()},
                {"name": "lookup", "args": {"city": "Rome"}, "id": fresh_id()},
            ],
        )

    model = ScriptedChatModel(responses=[reply])
    return create_react_agent(model, [lookup], checkpointer=checkpointer)


def openai_violations(messages: Sequence[BaseMessage]) -> list[str]:
    """Check OpenAI's chat-completions ordering rules on messages converted by langchain-openai."""
    from langchain_openai.chat_models.base import _convert_message_to_dict

    dicts = [_convert_message_to_dict(m) for m in messages]
    problems = []
    open_calls: set[str] = set()
    for i, d in enumerate(dicts):
        role = d["role"]
        if role == "tool":
            if d["tool_call_id"] not in open_calls:
                problems.append(f"{i}: tool message answers no preceding tool call")
            open_calls.discard(d["tool_call_id"])
            continue
        if open_calls:
            problems.append(f"{i}: {role} message before tool calls {sorted(open_calls)} answered")
            open_calls = set()
        if role == "system" and i > 0 and dicts[i - 1]["role"] != "system":
            problems.append(f"{i}: system message after the conversation started")
        if role == "assistant":
            open_calls = {c["id"] for c in d.get("tool_calls") or []}
    if open_calls:
        problems.append(f"end: tool calls {sorted(open_calls)} never answered")
    return problems


def anthropic_format(messages: Sequence[BaseMessage]) -> tuple[Any, list[dict[str, Any]]]:
    """Format messages the way langchain-anthropic sends them; raises if it refuses."""
    from langchain_anthropic.chat_models import _format_messages

    return _format_messages(list(messages), model="claude-sonnet-4-5")


def anthropic_violations(messages: Sequence[BaseMessage]) -> list[str]:
    """Check Anthropic's rules on langchain-anthropic's formatting of ``messages``."""
    _, formatted = anthropic_format(messages)
    problems = []
    for i, turn in enumerate(formatted):
        if turn["role"] == "system":
            problems.append(f"{i}: system turn inside the conversation")
        if i > 0 and turn["role"] == formatted[i - 1]["role"]:
            problems.append(f"{i}: two consecutive {turn['role']} turns")
        blocks = turn["content"] if isinstance(turn["content"], list) else []
        results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        if results:
            previous = formatted[i - 1]["content"] if i else []
            uses = {
                b["id"] for b in previous if isinstance(b, dict) and b.get("type") == "tool_use"
            }
            if not set(results) <= uses:
                problems.append(f"{i}: tool_result without the tool_use right before it")
    if formatted and formatted[0]["role"] != "user":
        problems.append("the conversation does not start with a user turn")
    return problems


class RecordingTrigger(Trigger):
    """Never fires; keeps the messages and token count it was shown after each run."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[list[BaseMessage], int]] = []

    def check(self, context: TriggerContext) -> str | None:
        self.seen.append((list(context.messages), context.tokens))
        return None
