"""Issue 3, point 10: unusual or malformed histories get correct handling or a clear error."""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    ToolMessage,
)
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

from compacting_supervisor import CompactingSupervisor, CompactionError, HistoryManager
from compacting_supervisor._messages import is_summary
from compacting_supervisor.testing import ScriptedChatModel

CONFIG = {"configurable": {"thread_id": "h"}}


class PlainState(TypedDict):
    """A channel without the add_messages reducer: whatever nodes append is stored as is."""

    messages: Annotated[list[Any], operator.add]


class ChatState(TypedDict):
    chat: Annotated[list[AnyMessage], add_messages]
    notes: str


def _plain_graph(saver: Any, reply: Any) -> Any:
    def node(state: PlainState) -> dict[str, Any]:
        return {"messages": [reply]}

    builder = StateGraph(PlainState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    return builder.compile(checkpointer=saver)


def test_messages_without_ids_compact_and_archive(saver: Any) -> None:
    graph = _plain_graph(saver, AIMessage("An answer without an id. " * 5))
    supervisor = CompactingSupervisor(graph, token_limit=100_000)
    for i in range(4):
        supervisor.invoke({"messages": [HumanMessage(f"question {i}")]}, CONFIG)
    messages = supervisor.get_state(CONFIG).values["messages"]
    assert all(m.id is None for m in messages)
    result = supervisor.compact(CONFIG)
    assert result.succeeded
    after = supervisor.get_state(CONFIG).values["messages"]
    assert is_summary(after[0])
    assert after[1:] == messages[-len(after) + 1 :]
    transcript = supervisor.transcript(CONFIG)
    assert [m.content for m in transcript.messages] == [m.content for m in messages]


def test_a_channel_holding_non_messages_is_refused_and_the_run_still_returns(saver: Any) -> None:
    graph = _plain_graph(saver, {"role": "assistant", "content": "a raw dict " * 40})
    supervisor = CompactingSupervisor(graph, token_limit=50)
    out = supervisor.invoke({"messages": [HumanMessage("hi")]}, CONFIG)
    assert out["messages"][-1]["role"] == "assistant"
    result = supervisor.last_compaction(CONFIG)
    assert result.status == "failed"
    assert "not a LangChain message" in result.error
    with pytest.raises(CompactionError, match="index 1"):
        supervisor.compact(CONFIG)
    assert supervisor.get_state(CONFIG).values["messages"] == out["messages"]


def test_content_blocks_unknown_types_and_odd_roles(saver: Any) -> None:
    history = [
        HumanMessage(
            [
                {"type": "text", "text": "Look at this picture."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]
        ),
        AIMessage(
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "describe", "input": {"x": 1}},
            ],
            tool_calls=[{"name": "describe", "args": {"x": 1}, "id": "t1"}],
        ),
        ToolMessage([{"type": "text", "text": "a cat"}], tool_call_id="t1"),
        ChatMessage(role="critic", content="The answer could be shorter."),
        FunctionMessage(name="legacy", content="legacy function output"),
        AIMessage("It is a cat."),
        HumanMessage("Thanks!"),
        AIMessage("You're welcome."),
    ]
    model = ScriptedChatModel(responses=["Summary of the picture talk."])

    def node(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage("ok")]}

    from langgraph.graph import MessagesState

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=saver)
    graph.update_state(CONFIG, {"messages": history}, as_node="node")
    supervisor = CompactingSupervisor(graph, HistoryManager(model=model), token_limit=100_000)
    result = supervisor.compact(CONFIG)
    assert result.succeeded
    request = model.calls[0][-1].content
    assert '<message role="critic">The answer could be shorter.</message>' in request
    assert "[image]" in request
    after = supervisor.get_state(CONFIG).values["messages"]
    assert after[-2:] == supervisor.transcript(CONFIG).messages[-2:]


def test_multi_megabyte_message(saver: Any) -> None:
    from .helpers import chat_graph

    supervisor = CompactingSupervisor(chat_graph(saver), token_limit=10**9)
    huge = "log line with some numbers 12345 and words\n" * 80_000  # ~3.4 MB
    started = time.perf_counter()
    supervisor.invoke({"messages": [HumanMessage(huge)]}, CONFIG)
    supervisor.invoke({"messages": [HumanMessage("and now?")]}, CONFIG)
    result = supervisor.compact(CONFIG)
    assert result.succeeded
    assert result.tokens_before > 500_000
    assert result.tokens_after < 10_000
    assert time.perf_counter() - started < 60
    archived = supervisor.transcript(CONFIG).sessions[0].messages
    assert archived[0].content == huge  # the original is still there, verbatim


def test_custom_messages_channel_name(saver: Any) -> None:
    def node(state: ChatState) -> dict[str, Any]:
        return {"chat": [AIMessage("Answer " + "detail " * 30)], "notes": "kept"}

    builder = StateGraph(ChatState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=saver)
    supervisor = CompactingSupervisor(graph, HistoryManager(messages_key="chat"), token_limit=150)
    for i in range(4):
        supervisor.invoke({"chat": [HumanMessage(f"q{i}")]}, CONFIG)
    state = supervisor.get_state(CONFIG).values
    assert supervisor.last_compaction(CONFIG).succeeded
    assert is_summary(state["chat"][0])
    assert state["notes"] == "kept"
    with pytest.raises(ValueError, match="no 'messages' channel"):
        CompactingSupervisor(graph)


def test_messages_that_are_not_base_messages_in_compact_messages() -> None:
    with pytest.raises(CompactionError, match="str at index 0"):
        HistoryManager().compact_messages(["just text", HumanMessage("hi")])  # type: ignore[list-item]


def test_summary_like_messages_from_users_are_not_mistaken_for_summaries() -> None:
    fake = HumanMessage("Here is a summary of the conversation to date: (typed by the user)")
    parts_plan = HistoryManager().compact_messages(
        [fake, AIMessage("ok"), HumanMessage("next"), AIMessage("sure")], compaction_ratio=0.5
    )
    assert parts_plan is not None
    assert fake in parts_plan.summarized  # a user's words are conversation, not a summary
    assert isinstance(parts_plan.messages[0], BaseMessage)


# ------------------------------------------------------------------ issue 18: hostile text

_ADVERSARIAL = [
    "sk-", "-----BEGIN ", "://", "password=", "a", "<", "eyJ-", "a: ", "token=a&", "\\u00",
    "curl -u ", "Authorization: Basic ", '"password": "', "1 ", "a@", "[", "%4",
]  # fmt: skip


@pytest.mark.parametrize("unit", _ADVERSARIAL)
def test_redaction_of_adversarial_text_finishes_and_leaves_no_secret(unit: str) -> None:
    """Found in review: ``redact_text("sk-" * n)`` was quadratic (3.3 s at 24 KB, an hour
    estimated at 1 MB) while holding the thread's lock. The times are in
    ``benchmarks/linear_time.py``; here, 300 KB of each shape, with a secret at the end."""
    from compacting_supervisor import redact_text

    text = unit * (300_000 // len(unit)) + " then sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e"
    redacted = redact_text(text)
    assert "4f9a8b7c6d5e4f3a2b1c0d9e" not in redacted


def test_deeply_nested_arguments_fail_closed() -> None:
    """A structure deeper than the walk goes is replaced whole: nothing in it is shown."""
    from compacting_supervisor import redact_secrets

    nested: Any = {"password": "Hunter2pass"}
    for _ in range(500):
        nested = {"inner": [nested]}
    call = AIMessage("", tool_calls=[{"name": "deep", "args": nested, "id": "c1"}])
    assert "Hunter2pass" not in str(redact_secrets(call).tool_calls)
    deep_json = "[" * 50_000 + '"password=Hunter2pass"' + "]" * 50_000
    assert "Hunter2pass" not in str(redact_secrets(HumanMessage(deep_json)).content)


def test_a_thread_holding_adversarial_text_compacts_with_its_secrets_redacted(saver: Any) -> None:
    from .helpers import chat_graph

    model = ScriptedChatModel(responses=["The user pasted a large log holding credentials."])
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=model, summary_input_tokens=None), token_limit=10**9
    )
    blob = "sk-" * 50_000 + "\npassword=Hunter2pass\n" + "://" * 50_000
    supervisor.invoke({"messages": [HumanMessage(blob)]}, CONFIG)
    supervisor.invoke({"messages": [HumanMessage("and now?")]}, CONFIG)
    result = supervisor.compact(CONFIG)
    assert result is not None and result.succeeded
    assert "Hunter2pass" not in str(model.calls)


def test_a_json_tool_result_nested_thousands_deep_is_rendered_and_compacted() -> None:
    from compacting_supervisor.context import render_messages

    deep = "[" * 6_000 + "]" * 6_000
    call = {"name": "fetch", "args": {}, "id": "d1"}
    messages = [
        HumanMessage("Fetch it."),
        AIMessage("", tool_calls=[call]),
        ToolMessage(deep, tool_call_id="d1", name="fetch"),
        AIMessage("It is deeply nested."),
        HumanMessage("Thanks."),
    ]
    assert "<fetch_result>" in render_messages(messages)  # no RecursionError
    summariser = ScriptedChatModel(responses=["## Current state\n- a nested result was fetched"])
    compaction = HistoryManager(model=summariser).compact_messages(messages, compaction_ratio=0.8)
    assert compaction is not None
    assert is_summary(compaction.messages[0])


def test_a_redact_hook_that_raises_sends_nothing_and_changes_nothing(saver: Any) -> None:
    from .helpers import chat_graph

    def broken(message: BaseMessage) -> BaseMessage:
        raise RuntimeError("the PII service is down")

    summariser = ScriptedChatModel(responses=["## Current state\n- never written"])
    supervisor = CompactingSupervisor(
        chat_graph(saver), HistoryManager(model=summariser, redact=broken), token_limit=100_000
    )
    for n in range(4):
        supervisor.invoke({"messages": [HumanMessage(f"turn {n}")]}, CONFIG)
    before = supervisor.get_state(CONFIG).values["messages"]
    with pytest.raises(CompactionError, match="`redact` hook raised RuntimeError"):
        supervisor.compact(CONFIG)
    assert supervisor.get_state(CONFIG).values["messages"] == before
    assert summariser.calls == []
    assert supervisor.last_compaction(CONFIG).status == "failed"


@pytest.mark.parametrize("returned", [None, "text"], ids=["none", "str"])
def test_a_redact_hook_that_returns_no_message_is_a_compaction_error(returned: Any) -> None:
    history = HistoryManager(
        model=ScriptedChatModel(responses=["## Goal\n- never"]), redact=lambda m: returned
    )
    messages = [HumanMessage("one"), AIMessage("two"), HumanMessage("three"), AIMessage("four")]
    with pytest.raises(CompactionError, match="must return a message"):
        history.compact_messages(messages, compaction_ratio=0.5)
