"""The summariser that reads the conversation as the agent did: its prefix is the agent's own.

``ChatModelSummarizer(request="conversation")`` sends the agent's system prompt and the
thread's messages as the agent last read them, then the request: a provider's prompt cache
already holds that prefix. What a user checks: the summariser's request starts with the
agent's last request, exactly; redaction still applies; anything it cannot send as it
stands goes as a transcript; a failed summary still leaves history unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.prebuilt import create_react_agent

from compacting_supervisor import (
    ChatModelSummarizer,
    CompactingSupervisor,
    HistoryManager,
    KeepMessages,
    SummarizationError,
)
from compacting_supervisor._messages import is_summary
from compacting_supervisor.summarizers import CONVERSATION_REQUEST
from compacting_supervisor.testing import ScriptedChatModel

AGENT_PROMPT = "You are the operations assistant. Answer from the records; be brief."
SECRET = "Zq9xLm2Pw7Rt"
SUMMARY = (
    "## Goal\n- ship order PO-1001\n## Discoveries\n- PO-1001 has 43 pallets\n"
    "## Decisions\n- none\n## Artifacts (verbatim)\n- PO-1001: the order\n"
    "## Open tasks\n- none\n## Current state\n- PO-1001 confirmed for 16 May"
)


def _agent(checkpointer: Any) -> tuple[Any, ScriptedChatModel]:
    counter = itertools.count(1)
    model = ScriptedChatModel(
        responses=[
            lambda messages: (
                f"Reply {next(counter)}: order PO-{1000 + len(messages)} is confirmed; the "
                "invoice and the pallets are on their way, and the carrier has the dates."
            )
        ]
    )
    return create_react_agent(
        model, tools=[], prompt=AGENT_PROMPT, checkpointer=checkpointer
    ), model


def _summariser(**kwargs: Any) -> tuple[ChatModelSummarizer, ScriptedChatModel]:
    model = ScriptedChatModel(responses=[SUMMARY])
    return ChatModelSummarizer(
        model, request="conversation", agent_system_prompt=AGENT_PROMPT, **kwargs
    ), model


def _same(a: list[BaseMessage], b: list[BaseMessage]) -> bool:
    """The same messages, as a provider reads them (type, text, tool calls, ids)."""
    return len(a) == len(b) and all(
        type(x) is type(y)
        and x.content == y.content
        and getattr(x, "tool_calls", None) == getattr(y, "tool_calls", None)
        for x, y in zip(a, b, strict=True)
    )


def _turns(count: int) -> list[str]:
    return [f"Turn {n}: where is order PO-{1000 + n} and its invoice?" for n in range(count)]


def _until_compacted(supervisor: CompactingSupervisor, config: Any, *, turns: int) -> Any:
    """Run user turns until one compacts the thread; the last compaction's result."""
    result = None
    for text in _turns(turns):
        supervisor.invoke({"messages": [HumanMessage(text)]}, config)
        result = supervisor.last_compaction(config)
        if result is not None and result.status == "compacted":
            break
    return result


def test_the_summariser_request_starts_with_the_agents_last_request(saver: Any) -> None:
    graph, agent_model = _agent(saver)
    summarizer, model = _summariser()
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=summarizer), token_limit=400, keep=KeepMessages(2)
    )
    config = {"configurable": {"thread_id": "conv"}}
    result = _until_compacted(supervisor, config, turns=12)
    assert result is not None and result.status == "compacted", result
    request = model.calls[0]
    last = agent_model.calls[-1]
    assert _same(request[: len(last)], last)  # the agent's cached prefix, exactly
    assert isinstance(request[-1], HumanMessage)
    assert request[-1].content.startswith("<summary_request>")
    # The request names where the kept part begins by its words, not by a count of
    # messages (providers merge consecutive messages of one role).
    first_kept = graph.get_state(config).values["messages"][1]
    assert f"the user's message that begins \"{first_kept.content[:20]}" in request[-1].content
    stored = graph.get_state(config).values["messages"]
    assert is_summary(stored[0]) and SUMMARY in stored[0].content
    assert len(stored) == 3  # the summary and the two kept


async def test_async_the_summariser_request_starts_with_the_agents_last_request(
    asaver: Any,
) -> None:
    graph, agent_model = _agent(asaver)
    summarizer, model = _summariser()
    supervisor = CompactingSupervisor(
        graph, HistoryManager(model=summarizer), token_limit=400, keep=KeepMessages(2)
    )
    config = {"configurable": {"thread_id": "aconv"}}
    for text in _turns(12):
        await supervisor.ainvoke({"messages": [HumanMessage(text)]}, config)
        if model.calls:
            break
    assert model.calls, "no compaction ran"
    last = agent_model.calls[-1]
    assert _same(model.calls[0][: len(last)], last)
    result = supervisor.last_compaction("aconv")
    assert result is not None and result.status == "compacted"


def _history(secret_at: int | None = None) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for n in range(6):
        text = f"Question {n} about order PO-{1000 + n}."
        if n == secret_at:
            text += f" The portal login is password={SECRET}."
        messages += [HumanMessage(text, id=f"h{n}"), AIMessage(f"Answer {n}.", id=f"a{n}")]
    return messages


def test_redaction_applies_and_ends_the_shared_prefix_only_where_it_changes() -> None:
    summarizer, model = _summariser()
    manager = HistoryManager(model=summarizer)
    history = _history(secret_at=3)
    result = manager.compact_messages(history, keep=KeepMessages(2))
    assert result is not None
    sent = model.calls[0]
    assert SECRET not in "".join(str(m.content) for m in sent)
    assert isinstance(sent[0], SystemMessage) and sent[0].content == AGENT_PROMPT
    conversation = sent[1:-1]
    assert [m.id for m in conversation] == [m.id for m in history]
    changed = [m.id for m, o in zip(conversation, history, strict=True) if m.content != o.content]
    assert changed == ["h3"]  # every other message goes as stored: the cache still serves them
    assert SECRET not in result.summary


async def test_async_conversation_request_redacts_too() -> None:
    summarizer, model = _summariser()
    result = await HistoryManager(model=summarizer).acompact_messages(
        _history(secret_at=0), keep=KeepMessages(2)
    )
    assert result is not None
    assert SECRET not in "".join(str(m.content) for m in model.calls[0])


def test_over_the_input_budget_it_reads_a_transcript(caplog: pytest.LogCaptureFixture) -> None:
    summarizer, model = _summariser()
    manager = HistoryManager(model=summarizer, summary_input_tokens=600)
    history = _history() * 4
    history = [m.model_copy(update={"id": f"{m.id}-{i}"}) for i, m in enumerate(history)]
    with caplog.at_level(logging.INFO, logger="compacting_supervisor"):
        result = manager.compact_messages(history, keep=KeepMessages(2))
    assert result is not None
    assert all("<new_messages>" in call[-1].content for call in model.calls)
    assert all(len(call) == 2 for call in model.calls)  # the transcript request, every call
    assert "reads a transcript instead" in caplog.text


def test_a_pending_tool_call_or_a_moved_request_goes_as_a_transcript() -> None:
    summarizer, model = _summariser()
    call = {"name": "lookup", "args": {"city": "Oslo"}, "id": "c1"}
    pending = [*_history(), AIMessage("", tool_calls=[call], id="pending")]
    assert HistoryManager(model=summarizer).compact_messages(pending, keep=KeepMessages(2))
    assert "<new_messages>" in model.calls[-1][-1].content
    answered = [*pending, ToolMessage("Sunny.", tool_call_id="c1", id="t1"), AIMessage("Sunny.")]
    assert HistoryManager(model=summarizer).compact_messages(answered, keep=KeepMessages(2))
    assert model.calls[-1][-1].content.startswith("<summary_request>")


@pytest.mark.parametrize(
    "reply", ["I'm sorry, but I can't help with that.", "Error 429: rate limit exceeded", "-"]
)
def test_a_failed_summary_leaves_history_unchanged(reply: str) -> None:
    model = ScriptedChatModel(responses=[reply])
    summarizer = ChatModelSummarizer(model, request="conversation")
    manager = HistoryManager(model=summarizer, summary_retries=0)
    history = _history()
    with pytest.raises(SummarizationError):
        manager.compact_messages(history, keep=KeepMessages(2))
    assert [m.content for m in history] == [m.content for m in _history()]


def test_the_agents_tools_are_bound_as_the_agent_binds_them() -> None:
    bound: list[Any] = []

    class Recording(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            bound.append(list(tools))
            return self

    def lookup(city: str) -> str:
        """Look up the weather in a city."""
        return city

    summarizer = ChatModelSummarizer(
        Recording(responses=[SUMMARY]), request="conversation", agent_tools=[lookup]
    )
    assert HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    assert bound == [[lookup]]


def test_the_request_names_what_stays() -> None:
    summarizer, _ = _summariser()
    everything = summarizer.conversation_messages(_history(), kept=0, max_tokens=500)
    assert "fold every message above into it" in everything[-1].content
    call = {"name": "find_order", "args": {"number": "PO-7"}, "id": "c7"}
    tail = [AIMessage("", tool_calls=[call]), ToolMessage("Shipped today", tool_call_id="c7")]
    asked = summarizer.conversation_messages([*_history(), *tail], kept=2, max_tokens=500)
    assert "up to, not including, your call of the tool find_order" in asked[-1].content
    long = [*_history(), AIMessage("x" * 500 + " and more")]
    asked = summarizer.conversation_messages(long, kept=1, max_tokens=500)
    assert 'your message that begins "' + "x" * 60 + '..."' in asked[-1].content
    with pytest.raises(ValueError, match="`kept`"):
        summarizer.conversation_messages(_history(), kept=13, max_tokens=500)
    assert CONVERSATION_REQUEST.split("{")[0] in everything[-1].content
    assert "about 300 words" in everything[-1].content


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"request": "cached"}, ValueError, "`request`"),
        ({"agent_system_prompt": "You are X."}, ValueError, "`agent_system_prompt`"),
        ({"agent_tools": [print]}, ValueError, "`agent_tools`"),
        ({"request": "conversation", "agent_system_prompt": 3}, TypeError, "agent_system_prompt"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs: dict[str, Any], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        ChatModelSummarizer(ScriptedChatModel(responses=["x"]), **kwargs)


def test_bad_kept_is_refused() -> None:
    summarizer, _ = _summariser()
    for kept in (-1, float("nan"), True):
        with pytest.raises(ValueError, match="`kept`"):
            summarizer.conversation_messages(_history(), kept=kept, max_tokens=500)  # type: ignore[arg-type]


def test_it_is_run_in_an_event_loop_too() -> None:
    summarizer, model = _summariser()

    async def main() -> None:
        text = await summarizer.asummarize_conversation(_history(), kept=2, max_tokens=500)
        assert text == SUMMARY

    asyncio.run(main())
    assert model.calls[0][-1].content.startswith("<summary_request>")


# ---------------------------------------------------------------- on Anthropic's wire format


class _Anthropic(BaseHTTPRequestHandler):
    """Answers ``POST /v1/messages`` as Anthropic does; keeps every request body."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last)
        asking = text.startswith("<summary_request>")
        answer = SUMMARY if asking else f"Reply {len(self.server.bodies)}: PO-1001 is confirmed."
        usage = {
            "input_tokens": 40,
            "output_tokens": 30,
            "cache_read_input_tokens": 1200 if asking else 0,
            "cache_creation_input_tokens": 0 if asking else 900,
        }
        payload = json.dumps(
            {
                "id": f"msg_{len(self.server.bodies)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def anthropic_url() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Anthropic)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_on_anthropic_the_request_is_the_agents_prefix_with_a_breakpoint(
    anthropic_url: Any, tmp_path: Any
) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver

    @tool
    def find_order(number: str) -> str:
        """Find an order by its number."""
        return f"Order {number}: confirmed."

    def claude() -> Any:
        url = f"http://127.0.0.1:{anthropic_url.server_port}"
        return ChatAnthropic(model="claude-sonnet-4-5", api_key="sk-test", base_url=url)

    summarizer = ChatModelSummarizer(
        claude(),
        request="conversation",
        agent_system_prompt=AGENT_PROMPT,
        agent_tools=[find_order],
    )
    with SqliteSaver.from_conn_string(str(tmp_path / "threads.sqlite")) as saver:
        graph = create_react_agent(
            claude(), tools=[find_order], prompt=AGENT_PROMPT, checkpointer=saver
        )
        supervisor = CompactingSupervisor(
            graph, HistoryManager(model=summarizer), token_limit=300, keep=KeepMessages(2)
        )
        config = {"configurable": {"thread_id": "claude"}}
        result = _until_compacted(supervisor, config, turns=10)
    assert result is not None and result.status == "compacted", result
    bodies = anthropic_url.bodies
    asked = next(
        i for i, b in enumerate(bodies) if "<summary_request>" in json.dumps(b["messages"][-1])
    )
    agent, summary = bodies[asked - 1], bodies[asked]
    assert summary["cache_control"] == {"type": "ephemeral"}  # Anthropic reads up to it
    assert "cache_control" not in agent  # the agent's own requests are the user's to tune
    assert summary["system"] == agent["system"]
    assert summary["tools"] == agent["tools"]
    assert summary["messages"][: len(agent["messages"])] == agent["messages"]
    assert result.summarizer_cache_read == 1200  # what the provider said it served
    assert SUMMARY in result.summary


def test_the_middleware_sends_the_system_prompt_and_tools_the_agent_sent(tmp_path: Any) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver

    from compacting_supervisor import CompactionMiddleware, MessageCount

    bound: list[list[Any]] = []

    class Recording(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            bound.append(list(tools))
            return self

    @tool
    def find_order(number: str) -> str:
        """Find an order by its number."""
        return f"Order {number}: confirmed."

    agent_model = ScriptedChatModel(responses=[lambda m: f"Noted {len(m)}: PO-1001 is on its way."])
    summariser = Recording(responses=[SUMMARY])
    middleware = CompactionMiddleware(
        model=ChatModelSummarizer(summariser, request="conversation"),
        trigger=MessageCount(8),
        keep=KeepMessages(2),
    )
    with SqliteSaver.from_conn_string(str(tmp_path / "agent.sqlite")) as saver:
        agent = create_agent(
            agent_model,
            tools=[find_order],
            system_prompt=AGENT_PROMPT,
            middleware=[middleware],
            checkpointer=saver,
        )
        config = {"configurable": {"thread_id": "mw"}}
        for text in _turns(6):
            agent.invoke({"messages": [HumanMessage(text)]}, config)
            if summariser.calls:
                break
    assert summariser.calls, "no compaction ran"
    request = summariser.calls[0]
    before = agent_model.calls[-2]  # the agent's request before the one after the summary
    assert isinstance(request[0], SystemMessage) and request[0].content == AGENT_PROMPT
    assert _same(request[: len(before)], before)
    assert [t.name for t in bound[0]] == ["find_order"]  # the tools the agent's model had
    assert middleware.last_compaction(config).status == "compacted"


def test_a_secret_in_the_agents_system_prompt_never_reaches_the_summariser() -> None:
    model = ScriptedChatModel(responses=[SUMMARY])
    summarizer = ChatModelSummarizer(
        model,
        request="conversation",
        agent_system_prompt=f"You are ops. The warehouse API key is api_key={SECRET}.",
    )
    assert HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    sent = model.calls[0]
    assert isinstance(sent[0], SystemMessage) and "You are ops." in sent[0].content
    assert SECRET not in "".join(str(m.content) for m in sent)


class _OwnConversationSummarizer:
    """A custom summariser that reads the conversation, without `conversation_messages`."""

    reads_conversation = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def summarize(self, previous: Any, messages: Any, *, max_tokens: int) -> str:
        raise AssertionError("the conversation is sent instead")

    async def asummarize(self, previous: Any, messages: Any, *, max_tokens: int) -> str:
        raise AssertionError("the conversation is sent instead")

    def summarize_conversation(
        self, conversation: Any, *, kept: int, max_tokens: int, agent: Any = None
    ) -> str:
        self.seen.append((len(conversation), kept))
        return SUMMARY

    async def asummarize_conversation(
        self, conversation: Any, *, kept: int, max_tokens: int, agent: Any = None
    ) -> str:
        return self.summarize_conversation(conversation, kept=kept, max_tokens=max_tokens)


def test_a_custom_summariser_may_read_the_conversation_too() -> None:
    summarizer = _OwnConversationSummarizer()
    result = HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    assert result is not None and result.summary == SUMMARY
    assert summarizer.seen == [(12, 2)]
    again = asyncio.run(
        HistoryManager(model=summarizer).acompact_messages(_history(), keep=KeepMessages(4))
    )
    assert again is not None and summarizer.seen[-1] == (12, 4)


@pytest.mark.parametrize(
    "first",
    [
        AIMessage("Order PO-1005 ships on Friday; I have told the carrier."),
        AIMessage(
            "I'll look that up.",
            tool_calls=[{"name": "find_order", "args": {"number": "PO-1005"}, "id": "c9"}],
        ),
    ],
    ids=["went on with the conversation", "called a tool"],
)
def test_a_reply_that_is_no_summary_falls_back_to_the_transcript(first: AIMessage) -> None:
    model = ScriptedChatModel(responses=[first, SUMMARY])
    summarizer = ChatModelSummarizer(model, request="conversation")
    result = HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    assert result is not None and result.summary == SUMMARY
    assert model.calls[0][-1].content.startswith("<summary_request>")
    assert "<new_messages>" in model.calls[1][-1].content  # the transcript, second
    assert result.summarizer_calls == 2


async def test_async_a_reply_that_is_no_summary_falls_back_to_the_transcript() -> None:
    model = ScriptedChatModel(responses=["Sure, PO-1005 ships Friday.", SUMMARY])
    summarizer = ChatModelSummarizer(model, request="conversation")
    manager = HistoryManager(model=summarizer)
    result = await manager.acompact_messages(_history(), keep=KeepMessages(2))
    assert result is not None and result.summary == SUMMARY
    assert "<new_messages>" in model.calls[1][-1].content


def _recording_summariser(**kwargs: Any) -> tuple[ChatModelSummarizer, Any, list[Any]]:
    bound: list[Any] = []

    class Recording(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kw: Any) -> Any:
            bound.append(list(tools))
            return self

    model = Recording(responses=[SUMMARY])
    return ChatModelSummarizer(model, request="conversation", **kwargs), model, bound


def test_a_secret_in_a_tool_schema_sends_a_transcript_without_tools() -> None:
    from langchain_core.tools import tool

    token = "sk-proj-" + "Zq9xLm2Pw7RtK3vB8nQ1" * 2

    @tool
    def call_billing(path: str) -> str:
        """Call the billing API with the header Authorization: Bearer PLACEHOLDER."""
        return path

    call_billing.description = call_billing.description.replace("PLACEHOLDER", token)
    summarizer, model, bound = _recording_summariser(agent_tools=[call_billing])
    assert HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    assert bound == []  # no tool was bound: its schema would carry the key
    assert "<new_messages>" in model.calls[0][-1].content
    assert token not in "".join(str(m.content) for m in model.calls[0])


def test_the_input_budget_counts_the_tools_schemas() -> None:
    from langchain_core.tools import tool

    @tool
    def wide(a: str) -> str:
        """Describe the warehouse."""
        return a

    wide.description = "Describe the warehouse. " + "The aisles are numbered. " * 150
    summarizer, model, bound = _recording_summariser(agent_tools=[wide])
    manager = HistoryManager(model=summarizer, summary_input_tokens=900)
    assert manager.compact_messages(_history(), keep=KeepMessages(2))
    assert bound == [] and "<new_messages>" in model.calls[0][-1].content


@pytest.mark.parametrize(
    "history",
    [
        [*_history(), AIMessage("", invalid_tool_calls=[{"name": "x", "args": "{", "id": "i1"}])],
        [*_history()[:4], SystemMessage("Be terse from now on."), *_history()[4:]],
    ],
    ids=["ends with an invalid tool call", "a system message mid-thread"],
)
def test_what_a_provider_would_refuse_goes_as_a_transcript(history: list[BaseMessage]) -> None:
    summarizer, model, _ = _recording_summariser()
    assert HistoryManager(model=summarizer).compact_messages(history, keep=KeepMessages(2))
    assert "<new_messages>" in model.calls[0][-1].content


def test_an_evicted_stored_result_is_read_back_through_the_transcript() -> None:
    from langgraph.store.memory import InMemoryStore

    from compacting_supervisor import OffloadToolResults

    policy = OffloadToolResults(InMemoryStore(), min_tokens=20, preview_chars=0)
    result = "Order PO-1009: 43 pallets, invoice INV-3179, total EUR 75,323. " * 4
    call = {"name": "find_order", "args": {"number": "PO-1009"}, "id": "c1"}
    history = [
        HumanMessage("Find PO-1009.", id="h0"),
        AIMessage("", tool_calls=[call], id="a0"),
        ToolMessage(result, tool_call_id="c1", id="t0"),
        AIMessage("PO-1009 has 43 pallets.", id="a1"),
        *_history()[2:],
    ]
    stored = policy.plan_answered(history, thread_id="t").messages
    policy.write(policy.plan_answered(history, thread_id="t").offloaded)
    summarizer, model, _ = _recording_summariser()
    manager = HistoryManager(model=summarizer, offload=policy)
    assert manager.compact_messages(stored, keep=KeepMessages(2))
    sent = model.calls[0][-1].content
    assert "<new_messages>" in sent and "INV-3179, total EUR 75,323" in sent


def test_a_system_message_with_content_blocks_goes_as_the_agent_sends_it() -> None:
    system = SystemMessage(
        [{"type": "text", "text": AGENT_PROMPT, "cache_control": {"type": "ephemeral"}}]
    )
    summarizer, model, _ = _recording_summariser(agent_system_prompt=system)
    assert HistoryManager(model=summarizer).compact_messages(_history(), keep=KeepMessages(2))
    assert model.calls[0][0].content == system.content
