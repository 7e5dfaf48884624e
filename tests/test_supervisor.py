"""`CompactingSupervisor` as a user sees it: when it compacts, what it returns and streams.

Every check that touches a checkpointer runs on InMemorySaver and on a SQLite file (sync),
and on InMemorySaver and AsyncSqliteSaver (async). The agent is a one-node chat graph on a
scripted model that streams its replies word by word; the summariser is a scripted model
whose summary carries the unique word ``ZEBRA-SUMMARY``, so its tokens can be looked for.

- Trigger: no compaction (and no summariser call, no extra state read) under
  ``token_limit``; after a run that leaves the thread over it, the thread starts with the
  summary and is smaller, with ``tokens_before`` counted on the run's own messages.
- ``invoke`` returns what the graph returns; ``stream`` yields token / compaction / end
  events, or the graph's native chunks unchanged when ``stream_mode`` is given.
- The summariser's tokens never reach a stream, nested in an outer graph included.
- A failing summariser (error, timeout, empty, placeholder, refusal) never fails the run
  and leaves the history exactly as it was; a working one compacts the next turn.
- Bad settings and configs raise naming the parameter before anything runs.
- ``with_config``, the forwarded graph API, and manual ``compact`` / ``acompact``.
"""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph

from compacting_supervisor import (
    SUMMARY_PREFIX,
    CompactingSupervisor,
    CompactionResult,
    HistoryManager,
    SummarizationError,
    TokenCounter,
    count_tokens,
)
from compacting_supervisor.testing import ScriptedChatModel, echo_graph
from compacting_supervisor.triggers import Trigger, TriggerContext

from .helpers import chat_graph

LIMIT = 70  # one turn (41 tokens) stays under it, two turns (79) go over
MARK = "ZEBRA-SUMMARY"
SUMMARY = f"{MARK} two greetings were exchanged."
THREAD = "t1"


# ---------------------------------------------------------------------------- helpers


def cfg(thread: str = THREAD) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def user(i: int) -> dict[str, Any]:
    return {"messages": [("user", f"message {i}")]}


def agent_model() -> ScriptedChatModel:
    """The agent's model: 'Reply N: ...', long enough that two turns cross LIMIT."""
    counter = itertools.count(1)
    return ScriptedChatModel(
        responses=[
            lambda messages: (
                f"Reply {next(counter)}: noted your message '{messages[-1].text}'. Here is a "
                "fairly long answer with details so that the thread grows quickly."
            )
        ]
    )


def summarizer(text: str = SUMMARY) -> ScriptedChatModel:
    return ScriptedChatModel(responses=[text])


def build(
    checkpointer: Any, *, limit: int = LIMIT, summary_model: Any = None
) -> tuple[Any, CompactingSupervisor, ScriptedChatModel, ScriptedChatModel]:
    """A chat graph on ``checkpointer``, its supervisor, the agent's and summariser's models."""
    model = agent_model()
    summ = summary_model or summarizer()
    graph = chat_graph(checkpointer, model=model)
    supervisor = CompactingSupervisor(graph, HistoryManager(model=summ), token_limit=limit)
    return graph, supervisor, model, summ


def view(messages: list[BaseMessage]) -> list[tuple[str, str, str | None]]:
    return [(type(m).__name__, m.text, m.id) for m in messages]


def contents(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    return [(type(m).__name__, m.text) for m in messages]


def is_summary(message: BaseMessage) -> bool:
    return isinstance(message, HumanMessage) and message.text.startswith(SUMMARY_PREFIX)


def shape(x: Any) -> Any:
    """Structure and message texts of a stream chunk, with ids and other strings blanked."""
    if isinstance(x, BaseMessage):
        return (type(x).__name__, x.text)
    if isinstance(x, dict):
        return (type(x).__name__, {k: shape(v) for k, v in x.items()})
    if isinstance(x, list | tuple):
        return (type(x).__name__, [shape(v) for v in x])
    if isinstance(x, str):
        return "str"
    return type(x).__name__


def spy(monkeypatch: pytest.MonkeyPatch, graph: Any, *names: str) -> list[str]:
    """Record the name of every call of ``graph.<name>`` (on this graph instance only)."""
    calls: list[str] = []

    def wrap(name: str) -> Any:
        original = getattr(graph, name)
        if name.startswith("a"):

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                return await original(*args, **kwargs)

            return awrapper

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        return wrapper

    for name in names:
        monkeypatch.setattr(graph, name, wrap(name))
    return calls


def messages_at(supervisor: CompactingSupervisor, thread: str, checkpoint_id: str) -> list[Any]:
    config = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint_id}}
    return supervisor.get_state(config).values["messages"]


def sources(saver: Any, thread: str = THREAD) -> list[str]:
    return [c.metadata["source"] for c in saver.list(cfg(thread))]


async def asources(saver: Any, thread: str = THREAD) -> list[str]:
    return [c.metadata["source"] async for c in saver.alist(cfg(thread))]


async def acollect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


def check_compacted(
    result: CompactionResult | None, before: list[BaseMessage], after: list[BaseMessage]
) -> None:
    """``before`` (the run's messages) was compacted into ``after`` (the state now)."""
    assert result is not None
    assert result.status == "compacted"
    assert result.thread_id == THREAD
    assert is_summary(after[0])
    assert MARK in after[0].text
    assert result.tokens_before == count_tokens(before) > LIMIT
    assert count_tokens(after) == result.tokens_after < result.tokens_before
    # The kept messages are the newest ones, verbatim.
    kept = after[1:]
    assert kept
    assert view(kept) == view(before[-len(kept) :])


def check_events(
    events: list[dict[str, Any]], supervisor: CompactingSupervisor, *, compacted: bool
) -> list[BaseMessage]:
    """The event stream of one turn; returns the run's final messages (from ``end``)."""
    assert {e["type"] for e in events} <= {"token", "message", "compaction", "end"}
    end = events[-1]
    assert end["type"] == "end"
    assert end["thread_id"] == THREAD
    assert [e for e in events if e["type"] == "end"] == [end]
    final = end["values"]["messages"]
    answer = final[-1]
    assert isinstance(answer, AIMessage)
    tokens = [e for e in events if e["type"] == "token"]
    assert len(tokens) > 5  # word by word
    assert "".join(e["content"] for e in tokens) == answer.text
    for event in tokens:
        assert event["content"]
        assert event["node"] == "assistant"
        assert event["agent"] == "assistant"
    compactions = [e for e in events if e["type"] == "compaction"]
    result = supervisor.last_compaction(THREAD)
    if compacted:
        assert len(compactions) == 1
        event = compactions[0]
        assert events[-2] is event
        assert event["status"] == "compacted"
        assert event["tokens_before"] > event["tokens_after"]
        assert result is not None
        assert event["result"] == result
        for field in ("status", "tokens_before", "tokens_after", "checkpoint_id", "summary"):
            assert event[field] == getattr(result, field)
    else:
        assert compactions == []
        assert result is None
    return final


# ---------------------------------------------------------------------------- 1. trigger


def run_sync(supervisor: CompactingSupervisor, method: str, i: int) -> list[BaseMessage]:
    if method == "invoke":
        return supervisor.invoke(user(i), cfg())["messages"]
    events = list(supervisor.stream(user(i), cfg()))
    return events[-1]["values"]["messages"]


async def run_async(supervisor: CompactingSupervisor, method: str, i: int) -> list[BaseMessage]:
    if method == "ainvoke":
        return (await supervisor.ainvoke(user(i), cfg()))["messages"]
    events = await acollect(supervisor.astream(user(i), cfg()))
    return events[-1]["values"]["messages"]


@pytest.mark.parametrize("method", ["invoke", "stream"])
def test_compacts_only_after_a_run_over_the_limit(
    saver: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, supervisor, model, summ = build(saver)
    reads = spy(monkeypatch, graph, "get_state", "aget_state")
    first = run_sync(supervisor, method, 1)
    assert count_tokens(first) <= LIMIT
    assert summ.calls == []
    assert supervisor.last_compaction(THREAD) is None
    assert reads == []  # the count came from the run's own output
    assert view(supervisor.get_state(cfg()).values["messages"]) == view(first)

    second = run_sync(supervisor, method, 2)
    assert len(model.calls) == 2
    assert len(summ.calls) == 1
    after = supervisor.get_state(cfg()).values["messages"]
    result = supervisor.last_compaction(THREAD)
    check_compacted(result, second, after)
    assert result.trigger == "token_limit"
    assert sources(saver)[0] == "update"


@pytest.mark.parametrize("method", ["ainvoke", "astream"])
async def test_compacts_only_after_a_run_over_the_limit_async(
    asaver: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, supervisor, model, summ = build(asaver)
    reads = spy(monkeypatch, graph, "get_state", "aget_state")
    first = await run_async(supervisor, method, 1)
    assert count_tokens(first) <= LIMIT
    assert summ.calls == []
    assert supervisor.last_compaction(THREAD) is None
    assert reads == []
    assert view((await supervisor.aget_state(cfg())).values["messages"]) == view(first)

    second = await run_async(supervisor, method, 2)
    assert len(model.calls) == 2
    assert len(summ.calls) == 1
    after = (await supervisor.aget_state(cfg())).values["messages"]
    result = supervisor.last_compaction(THREAD)
    check_compacted(result, second, after)
    assert result.trigger == "token_limit"
    assert (await asources(asaver))[0] == "update"


def test_without_values_in_the_output_the_state_is_read(
    saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A native stream with no values chunk: the wrapper reads the state to count."""
    graph, supervisor, _, _ = build(saver)
    reads = spy(monkeypatch, graph, "get_state", "aget_state")
    list(supervisor.stream(user(1), cfg(), stream_mode="updates"))
    assert reads == ["get_state"]
    assert supervisor.last_compaction(THREAD) is None


async def test_without_values_in_the_output_the_state_is_read_async(
    asaver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, supervisor, _, _ = build(asaver)
    reads = spy(monkeypatch, graph, "get_state", "aget_state")
    await acollect(supervisor.astream(user(1), cfg(), stream_mode="updates"))
    assert reads == ["aget_state"]
    assert supervisor.last_compaction(THREAD) is None


# ---------------------------------------------------------------------------- 2. invoke


def test_invoke_returns_what_the_graph_returns(saver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    graph, supervisor, _, _ = build(saver)
    reference = chat_graph(InMemorySaver(), model=agent_model())
    returned: list[Any] = []
    original = graph.invoke

    def recording_invoke(*args: Any, **kwargs: Any) -> Any:
        returned.append(original(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(graph, "invoke", recording_invoke)
    for i in (1, 2):  # the second turn is compacted after it returns
        got = supervisor.invoke(user(i), cfg())
        want = reference.invoke(user(i), cfg("reference"))
        assert got is returned[-1]
        assert type(got) is type(want)
        assert got.keys() == want.keys()
        assert contents(got["messages"]) == contents(want["messages"])
        assert [m.id for m in got["messages"]] != [m.id for m in want["messages"]]
    assert supervisor.last_compaction(THREAD).status == "compacted"

    got = supervisor.invoke(user(3), cfg(), version="v2")
    want = reference.invoke(user(3), cfg("reference"), version="v2")
    assert type(got) is type(want)
    assert got is returned[-1]


async def test_ainvoke_returns_what_the_graph_returns(
    asaver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, supervisor, _, _ = build(asaver)
    reference = chat_graph(InMemorySaver(), model=agent_model())
    returned: list[Any] = []
    original = graph.ainvoke

    async def recording_ainvoke(*args: Any, **kwargs: Any) -> Any:
        returned.append(await original(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(graph, "ainvoke", recording_ainvoke)
    for i in (1, 2):
        got = await supervisor.ainvoke(user(i), cfg())
        want = await reference.ainvoke(user(i), cfg("reference"))
        assert got is returned[-1]
        assert type(got) is type(want)
        assert got.keys() == want.keys()
        assert contents(got["messages"]) == contents(want["messages"])
        assert [m.id for m in got["messages"]] != [m.id for m in want["messages"]]
    assert supervisor.last_compaction(THREAD).status == "compacted"

    got = await supervisor.ainvoke(user(3), cfg(), version="v2")
    want = await reference.ainvoke(user(3), cfg("reference"), version="v2")
    assert type(got) is type(want)
    assert got is returned[-1]


# ---------------------------------------------------------------------------- 3. streams


def test_stream_events(saver: Any) -> None:
    _, supervisor, _, _ = build(saver)
    final = check_events(list(supervisor.stream(user(1), cfg())), supervisor, compacted=False)
    assert view(final) == view(supervisor.get_state(cfg()).values["messages"])
    final = check_events(list(supervisor.stream(user(2), cfg())), supervisor, compacted=True)
    result = supervisor.last_compaction(THREAD)
    assert view(final) == view(messages_at(supervisor, THREAD, result.previous_checkpoint_id))
    check_compacted(result, final, supervisor.get_state(cfg()).values["messages"])


async def test_astream_events(asaver: Any) -> None:
    _, supervisor, _, _ = build(asaver)
    events = await acollect(supervisor.astream(user(1), cfg()))
    final = check_events(events, supervisor, compacted=False)
    assert view(final) == view((await supervisor.aget_state(cfg())).values["messages"])
    events = await acollect(supervisor.astream(user(2), cfg()))
    final = check_events(events, supervisor, compacted=True)
    result = supervisor.last_compaction(THREAD)
    history = [s async for s in supervisor.aget_state_history(cfg())]
    [previous] = [
        s
        for s in history
        if s.config["configurable"]["checkpoint_id"] == result.previous_checkpoint_id
    ]
    assert view(final) == view(previous.values["messages"])
    check_compacted(result, final, history[0].values["messages"])


NATIVE_MODES = [
    pytest.param({"stream_mode": "updates"}, id="updates"),
    pytest.param({"stream_mode": ["values", "messages"]}, id="values+messages"),
    pytest.param({"stream_mode": "values", "subgraphs": True}, id="values-subgraphs"),
    pytest.param({"stream_mode": "values", "version": "v2"}, id="values-v2"),
    pytest.param({"stream_mode": ["updates", "messages"], "version": "v2"}, id="updates-v2"),
]


def check_native_chunks(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    assert [shape(c) for c in got] == [shape(c) for c in want]


@pytest.mark.parametrize("kwargs", NATIVE_MODES)
def test_stream_with_stream_mode_yields_native_chunks(saver: Any, kwargs: dict[str, Any]) -> None:
    _, supervisor, _, _ = build(saver)
    reference = chat_graph(InMemorySaver(), model=agent_model())
    supervisor.invoke(user(1), cfg())
    reference.invoke(user(1), cfg("reference"))
    got = list(supervisor.stream(user(2), cfg(), **kwargs))
    want = list(reference.stream(user(2), cfg("reference"), **kwargs))
    check_native_chunks(got, want)
    result = supervisor.last_compaction(THREAD)
    assert result is not None
    assert result.trigger == "token_limit"
    before = messages_at(supervisor, THREAD, result.previous_checkpoint_id)
    assert contents(before) == contents(reference.get_state(cfg("reference")).values["messages"])
    check_compacted(result, before, supervisor.get_state(cfg()).values["messages"])


@pytest.mark.parametrize("kwargs", NATIVE_MODES)
async def test_astream_with_stream_mode_yields_native_chunks(
    asaver: Any, kwargs: dict[str, Any]
) -> None:
    _, supervisor, _, _ = build(asaver)
    reference = chat_graph(InMemorySaver(), model=agent_model())
    await supervisor.ainvoke(user(1), cfg())
    await reference.ainvoke(user(1), cfg("reference"))
    got = await acollect(supervisor.astream(user(2), cfg(), **kwargs))
    want = await acollect(reference.astream(user(2), cfg("reference"), **kwargs))
    check_native_chunks(got, want)
    result = supervisor.last_compaction(THREAD)
    assert result is not None
    assert result.trigger == "token_limit"
    previous = {
        "configurable": {"thread_id": THREAD, "checkpoint_id": result.previous_checkpoint_id}
    }
    before = (await supervisor.aget_state(previous)).values["messages"]
    assert contents(before) == contents(reference.get_state(cfg("reference")).values["messages"])
    check_compacted(result, before, (await supervisor.aget_state(cfg())).values["messages"])


# ---------------------------------------------------------------------------- 4. clean streams


def texts_of_events(events: list[dict[str, Any]]) -> list[str]:
    """The texts of the token and message events (what a UI would show)."""
    out = []
    for event in events:
        if event["type"] == "token":
            out.append(event["content"])
        elif event["type"] == "message":
            out.append(event["message"].text)
    return out


def test_summarizer_tokens_never_reach_the_stream(saver: Any) -> None:
    _, supervisor, _, summ = build(saver)
    events = [e for i in (1, 2) for e in supervisor.stream(user(i), cfg())]
    chunks = list(supervisor.stream(user(3), cfg(), stream_mode="messages"))
    assert len(summ.calls) == 2
    texts = texts_of_events(events) + [message.text for message, _ in chunks]
    assert texts
    assert not any(MARK in text for text in texts)
    assert MARK in supervisor.get_state(cfg()).values["messages"][0].text


async def test_summarizer_tokens_never_reach_the_astream(asaver: Any) -> None:
    _, supervisor, _, summ = build(asaver)
    events = [e for i in (1, 2) for e in await acollect(supervisor.astream(user(i), cfg()))]
    chunks = await acollect(supervisor.astream(user(3), cfg(), stream_mode="messages"))
    assert len(summ.calls) == 2
    texts = texts_of_events(events) + [message.text for message, _ in chunks]
    assert texts
    assert not any(MARK in text for text in texts)
    assert MARK in (await supervisor.aget_state(cfg())).values["messages"][0].text


def outer_graph(inner: CompactingSupervisor, checkpointer: Any = None) -> Any:
    """A graph whose one node calls the inner supervisor on its own thread."""

    def call(state: MessagesState) -> dict[str, Any]:
        out = inner.invoke({"messages": [("user", state["messages"][-1].text)]}, cfg())
        return {"messages": [out["messages"][-1]]}

    async def acall(state: MessagesState) -> dict[str, Any]:
        out = await inner.ainvoke({"messages": [("user", state["messages"][-1].text)]}, cfg())
        return {"messages": [out["messages"][-1]]}

    builder = StateGraph(MessagesState)
    builder.add_node("outer", RunnableLambda(call, afunc=acall))
    builder.add_edge(START, "outer")
    return builder.compile(checkpointer=checkpointer)


def check_outer_chunks(
    chunks: list[Any], inner: CompactingSupervisor, summ: ScriptedChatModel, subgraphs: bool
) -> None:
    pairs = [c[1] if subgraphs else c for c in chunks]
    assert not any(MARK in message.text for message, _ in pairs)
    inner_tokens = [
        message.text
        for message, meta in pairs
        if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "assistant"
    ]
    if subgraphs:  # LangGraph shows a nested graph's tokens only with subgraphs=True
        assert len(inner_tokens) > 5
        assert "".join(inner_tokens).startswith("Reply 2: noted your message 'message 2'")
    assert len(summ.calls) == 1
    assert inner.last_compaction(THREAD).status == "compacted"


@pytest.mark.parametrize("subgraphs", [True, False])
def test_nested_in_an_outer_graph_the_summarizer_stays_out_of_its_stream(
    saver: Any, subgraphs: bool
) -> None:
    _, inner, _, summ = build(saver)
    outer = outer_graph(inner)
    list(outer.stream(user(1), stream_mode="messages", subgraphs=subgraphs))
    chunks = list(outer.stream(user(2), stream_mode="messages", subgraphs=subgraphs))
    check_outer_chunks(chunks, inner, summ, subgraphs)
    assert MARK in inner.get_state(cfg()).values["messages"][0].text


@pytest.mark.parametrize("subgraphs", [True, False])
async def test_nested_in_an_outer_graph_the_summarizer_stays_out_of_its_astream(
    asaver: Any, subgraphs: bool
) -> None:
    _, inner, _, summ = build(asaver)
    outer = outer_graph(inner)
    await acollect(outer.astream(user(1), stream_mode="messages", subgraphs=subgraphs))
    chunks = await acollect(outer.astream(user(2), stream_mode="messages", subgraphs=subgraphs))
    check_outer_chunks(chunks, inner, summ, subgraphs)
    assert MARK in (await inner.aget_state(cfg())).values["messages"][0].text


def test_nested_supervisors_event_stream_shows_inner_tokens_only(saver: Any) -> None:
    _, inner, _, summ = build(saver)
    outer = CompactingSupervisor(outer_graph(inner, saver), token_limit=10_000)
    list(outer.stream(user(1), cfg("outer")))
    events = list(outer.stream(user(2), cfg("outer")))
    assert len(summ.calls) == 1
    assert inner.last_compaction(THREAD).status == "compacted"
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(e["content"] for e in tokens).startswith("Reply 2: noted")
    assert {e["node"] for e in tokens} == {"assistant"}
    assert not any(MARK in text for text in texts_of_events(events))


async def test_nested_supervisors_event_astream_shows_inner_tokens_only(asaver: Any) -> None:
    _, inner, _, summ = build(asaver)
    outer = CompactingSupervisor(outer_graph(inner, asaver), token_limit=10_000)
    await acollect(outer.astream(user(1), cfg("outer")))
    events = await acollect(outer.astream(user(2), cfg("outer")))
    assert len(summ.calls) == 1
    assert inner.last_compaction(THREAD).status == "compacted"
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(e["content"] for e in tokens).startswith("Reply 2: noted")
    assert {e["node"] for e in tokens} == {"assistant"}
    assert not any(MARK in text for text in texts_of_events(events))


# ---------------------------------------------------------------------------- 5. failures


def raising() -> HistoryManager:
    return HistoryManager(
        model=ScriptedChatModel(responses=[RuntimeError("boom")]), summary_retries=0
    )


def slow() -> HistoryManager:
    return HistoryManager(
        model=ScriptedChatModel(responses=["x"], delay=2), summary_timeout=0.2, summary_retries=0
    )


def answering(text: str) -> Callable[[], HistoryManager]:
    return lambda: HistoryManager(model=ScriptedChatModel(responses=[text]), summary_retries=0)


FAILURES = [
    pytest.param(raising, "boom", id="raises"),
    pytest.param(slow, "did not answer within 0.2 s", id="timeout"),
    pytest.param(answering(""), "empty or placeholder", id="empty"),
    pytest.param(
        answering("Previous conversation was too long to summarize."),
        "placeholder",
        id="placeholder",
    ),
    pytest.param(answering("I'm sorry, I can't help with that."), "refusal", id="refusal"),
]


def check_failed(
    supervisor: CompactingSupervisor, cause: str, trigger: str, messages: list[BaseMessage]
) -> None:
    result = supervisor.last_compaction(THREAD)
    assert result is not None
    assert result.status == "failed"
    assert result.trigger == trigger
    assert result.checkpoint_id is None
    assert cause in result.error
    if trigger == "token_limit":
        assert result.tokens_before == result.tokens_after == count_tokens(messages)


def check_warned(caplog: pytest.LogCaptureFixture, cause: str) -> None:
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()
    ]
    assert warnings
    assert THREAD in warnings[-1].getMessage()
    assert cause in warnings[-1].getMessage()
    caplog.clear()


@pytest.mark.parametrize(("manager", "cause"), FAILURES)
def test_a_failing_summarizer_leaves_the_history_intact(
    saver: Any,
    manager: Callable[[], HistoryManager],
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="compacting_supervisor")
    graph = chat_graph(saver, model=agent_model())
    supervisor = CompactingSupervisor(graph, manager(), token_limit=LIMIT)
    supervisor.invoke(user(1), cfg())

    out = supervisor.invoke(user(2), cfg())
    assert out["messages"][-1].text.startswith("Reply 2: noted your message 'message 2'")
    assert view(supervisor.get_state(cfg()).values["messages"]) == view(out["messages"])
    assert "update" not in sources(saver)
    check_failed(supervisor, cause, "token_limit", out["messages"])
    check_warned(caplog, cause)

    events = list(supervisor.stream(user(3), cfg()))
    final = events[-1]["values"]["messages"]
    assert final[-1].text.startswith("Reply 3: noted")
    [event] = [e for e in events if e["type"] == "compaction"]
    assert event["status"] == "failed"
    assert cause in event["error"]
    assert view(supervisor.get_state(cfg()).values["messages"]) == view(final)
    check_failed(supervisor, cause, "token_limit", final)
    check_warned(caplog, cause)

    with pytest.raises(SummarizationError, match=re.escape(cause)):
        supervisor.compact(cfg())
    assert view(supervisor.get_state(cfg()).values["messages"]) == view(final)
    assert "update" not in sources(saver)
    check_failed(supervisor, cause, "manual", final)

    working = CompactingSupervisor(graph, HistoryManager(model=summarizer()), token_limit=LIMIT)
    out = working.invoke(user(4), cfg())
    after = working.get_state(cfg()).values["messages"]
    check_compacted(working.last_compaction(THREAD), out["messages"], after)
    assert sources(saver)[0] == "update"


@pytest.mark.parametrize(("manager", "cause"), FAILURES)
async def test_a_failing_summarizer_leaves_the_history_intact_async(
    asaver: Any,
    manager: Callable[[], HistoryManager],
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="compacting_supervisor")
    graph = chat_graph(asaver, model=agent_model())
    supervisor = CompactingSupervisor(graph, manager(), token_limit=LIMIT)
    await supervisor.ainvoke(user(1), cfg())

    async def state() -> list[BaseMessage]:
        return (await supervisor.aget_state(cfg())).values["messages"]

    out = await supervisor.ainvoke(user(2), cfg())
    assert out["messages"][-1].text.startswith("Reply 2: noted your message 'message 2'")
    assert view(await state()) == view(out["messages"])
    assert "update" not in await asources(asaver)
    check_failed(supervisor, cause, "token_limit", out["messages"])
    check_warned(caplog, cause)

    events = await acollect(supervisor.astream(user(3), cfg()))
    final = events[-1]["values"]["messages"]
    assert final[-1].text.startswith("Reply 3: noted")
    [event] = [e for e in events if e["type"] == "compaction"]
    assert event["status"] == "failed"
    assert cause in event["error"]
    assert view(await state()) == view(final)
    check_failed(supervisor, cause, "token_limit", final)
    check_warned(caplog, cause)

    with pytest.raises(SummarizationError, match=re.escape(cause)):
        await supervisor.acompact(cfg())
    assert view(await state()) == view(final)
    assert "update" not in await asources(asaver)
    check_failed(supervisor, cause, "manual", final)

    working = CompactingSupervisor(graph, HistoryManager(model=summarizer()), token_limit=LIMIT)
    out = await working.ainvoke(user(4), cfg())
    after = (await working.aget_state(cfg())).values["messages"]
    check_compacted(working.last_compaction(THREAD), out["messages"], after)
    assert (await asources(asaver))[0] == "update"


# ---------------------------------------------------------------------------- 6. bad input


def check_nothing_ran(model: ScriptedChatModel, saver: Any) -> None:
    assert model.calls == []
    assert list(saver.list(None)) == []


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1, True, "0.5"])
def test_bad_compaction_ratio(saver: Any, ratio: Any) -> None:
    model = agent_model()
    with pytest.raises((ValueError, TypeError), match="`compaction_ratio`") as info:
        CompactingSupervisor(chat_graph(saver, model=model), compaction_ratio=ratio)
    assert "between 0 and 1" in str(info.value)
    assert repr(ratio) in str(info.value)
    check_nothing_ran(model, saver)


@pytest.mark.parametrize("limit", [0, -5, 1.5, True])
def test_bad_token_limit(saver: Any, limit: Any) -> None:
    model = agent_model()
    with pytest.raises((ValueError, TypeError), match="`token_limit`") as info:
        CompactingSupervisor(chat_graph(saver, model=model), token_limit=limit)
    assert "positive integer" in str(info.value)
    check_nothing_ran(model, saver)


def test_graph_without_checkpointer_and_no_memory_saver(saver: Any) -> None:
    model = agent_model()
    with pytest.raises(ValueError, match="`agent`") as info:
        CompactingSupervisor(chat_graph(None, model=model))
    assert "compile(checkpointer=" in str(info.value)
    assert "memory_saver" in str(info.value)
    check_nothing_ran(model, saver)


def test_uncompiled_state_graph(saver: Any) -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("assistant", lambda state: {"messages": []})
    builder.add_edge(START, "assistant")
    with pytest.raises(TypeError, match="`agent`") as info:
        CompactingSupervisor(builder, HistoryManager(memory_saver=saver))
    assert "graph.compile(checkpointer=...)" in str(info.value)
    assert list(saver.list(None)) == []


def test_graph_without_messages_channel(saver: Any) -> None:
    class Counter(TypedDict):
        count: int

    builder = StateGraph(Counter)
    builder.add_node("step", lambda state: {"count": state["count"] + 1})
    builder.add_edge(START, "step")
    with pytest.raises(ValueError, match="`agent`") as info:
        CompactingSupervisor(builder.compile(checkpointer=saver))
    assert "'messages'" in str(info.value)
    assert "messages_key" in str(info.value)
    assert list(saver.list(None)) == []


BAD_CONFIGS = [
    pytest.param(None, id="none"),
    pytest.param({}, id="empty"),
    pytest.param({"configurable": {}}, id="no-thread"),
    pytest.param({"configurable": {"thread_id": ""}}, id="empty-thread"),
]


def check_config_error(info: pytest.ExceptionInfo[ValueError]) -> None:
    message = str(info.value)
    assert "`config`" in message
    assert "{'configurable': {'thread_id':" in message


@pytest.mark.parametrize("config", BAD_CONFIGS)
@pytest.mark.parametrize("call", ["invoke", "stream", "native-stream", "compact"])
def test_config_without_thread_id(saver: Any, config: Any, call: str) -> None:
    _, supervisor, model, summ = build(saver)
    calls = {
        "invoke": lambda: supervisor.invoke(user(1), config),
        "stream": lambda: list(supervisor.stream(user(1), config)),
        "native-stream": lambda: list(supervisor.stream(user(1), config, stream_mode="values")),
        "compact": lambda: supervisor.compact(config),
    }
    with pytest.raises(ValueError, match="`config`") as info:
        calls[call]()
    check_config_error(info)
    check_nothing_ran(model, saver)
    assert summ.calls == []


@pytest.mark.parametrize("config", BAD_CONFIGS)
@pytest.mark.parametrize("call", ["ainvoke", "astream", "native-astream", "acompact"])
async def test_config_without_thread_id_async(asaver: Any, config: Any, call: str) -> None:
    _, supervisor, model, summ = build(asaver)
    calls = {
        "ainvoke": lambda: supervisor.ainvoke(user(1), config),
        "astream": lambda: acollect(supervisor.astream(user(1), config)),
        "native-astream": lambda: acollect(
            supervisor.astream(user(1), config, stream_mode="values")
        ),
        "acompact": lambda: supervisor.acompact(config),
    }
    with pytest.raises(ValueError, match="`config`") as info:
        await calls[call]()
    check_config_error(info)
    assert model.calls == []
    assert summ.calls == []
    assert [c async for c in asaver.alist(None)] == []


def test_graph_without_checkpointer_runs_on_memory_saver(saver: Any) -> None:
    model = agent_model()
    graph = chat_graph(None, model=model)
    manager = HistoryManager(memory_saver=saver, model=summarizer())
    supervisor = CompactingSupervisor(graph, manager, token_limit=LIMIT)
    supervisor.invoke(user(1), cfg())
    assert sources(saver)
    out = supervisor.invoke(user(2), cfg())
    after = supervisor.get_state(cfg()).values["messages"]
    check_compacted(supervisor.last_compaction(THREAD), out["messages"], after)
    out = supervisor.invoke(user(3), cfg())  # the next turn continues from the compacted thread
    assert is_summary(out["messages"][0])
    assert graph.checkpointer is None  # the user's graph itself was not changed


async def test_graph_without_checkpointer_runs_on_memory_saver_async(asaver: Any) -> None:
    graph = chat_graph(None, model=agent_model())
    manager = HistoryManager(memory_saver=asaver, model=summarizer())
    supervisor = CompactingSupervisor(graph, manager, token_limit=LIMIT)
    await supervisor.ainvoke(user(1), cfg())
    assert await asources(asaver)
    out = await supervisor.ainvoke(user(2), cfg())
    after = (await supervisor.aget_state(cfg())).values["messages"]
    check_compacted(supervisor.last_compaction(THREAD), out["messages"], after)
    out = await supervisor.ainvoke(user(3), cfg())
    assert is_summary(out["messages"][0])
    assert graph.checkpointer is None


# ---------------------------------------------------------------------------- 7. graph API


def test_with_config_and_graph_api(saver: Any) -> None:
    graph, supervisor, _, _ = build(saver)
    bound = supervisor.with_config(configurable={"thread_id": THREAD})
    bound.invoke(user(1))
    out = bound.invoke(user(2))
    assert supervisor.last_compaction(THREAD) is bound.last_compaction(THREAD)
    after = supervisor.get_state(cfg()).values["messages"]
    check_compacted(supervisor.last_compaction(THREAD), out["messages"], after)
    events = list(bound.stream(user(3)))
    assert events[-1]["thread_id"] == THREAD
    assert supervisor.last_compaction(THREAD) is bound.last_compaction(THREAD)

    assert view(supervisor.get_state(cfg()).values["messages"]) == view(
        graph.get_state(cfg()).values["messages"]
    )
    ours = [s.config["configurable"]["checkpoint_id"] for s in supervisor.get_state_history(cfg())]
    theirs = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg())]
    assert ours == theirs
    assert len(ours) > 5

    note = HumanMessage("A note added by hand.", id="note-1")
    supervisor.update_state(cfg(), {"messages": [note]})
    assert view(graph.get_state(cfg()).values["messages"][-1:]) == view([note])
    assert view(supervisor.get_state(cfg()).values["messages"][-1:]) == view([note])

    assert "assistant" in supervisor.get_graph().nodes


async def test_with_config_and_graph_api_async(asaver: Any) -> None:
    graph, supervisor, _, _ = build(asaver)
    bound = supervisor.with_config(configurable={"thread_id": THREAD})
    await bound.ainvoke(user(1))
    out = await bound.ainvoke(user(2))
    assert supervisor.last_compaction(THREAD) is bound.last_compaction(THREAD)
    after = (await supervisor.aget_state(cfg())).values["messages"]
    check_compacted(supervisor.last_compaction(THREAD), out["messages"], after)
    events = await acollect(bound.astream(user(3)))
    assert events[-1]["thread_id"] == THREAD

    assert view((await supervisor.aget_state(cfg())).values["messages"]) == view(
        (await graph.aget_state(cfg())).values["messages"]
    )
    ours = [
        s.config["configurable"]["checkpoint_id"]
        async for s in supervisor.aget_state_history(cfg())
    ]
    theirs = [
        s.config["configurable"]["checkpoint_id"] async for s in graph.aget_state_history(cfg())
    ]
    assert ours == theirs
    assert len(ours) > 5

    note = HumanMessage("A note added by hand.", id="note-1")
    await supervisor.aupdate_state(cfg(), {"messages": [note]})
    assert view((await graph.aget_state(cfg())).values["messages"][-1:]) == view([note])


def test_results_are_shared_both_ways(saver: Any) -> None:
    _, supervisor, _, _ = build(saver)
    bound = supervisor.with_config(configurable={"thread_id": "elsewhere"})
    for i in (1, 2):
        supervisor.invoke(user(i), cfg())
    assert bound.last_compaction(THREAD) is supervisor.last_compaction(THREAD)
    assert bound.last_compaction(THREAD).status == "compacted"
    assert bound.last_compaction("elsewhere") is None
    assert supervisor.get_state(cfg("elsewhere")).values == {}


async def test_results_are_shared_both_ways_async(asaver: Any) -> None:
    _, supervisor, _, _ = build(asaver)
    bound = supervisor.with_config(configurable={"thread_id": "elsewhere"})
    for i in (1, 2):
        await supervisor.ainvoke(user(i), cfg())
    assert bound.last_compaction(THREAD) is supervisor.last_compaction(THREAD)
    assert bound.last_compaction(THREAD).status == "compacted"
    assert bound.last_compaction("elsewhere") is None
    assert (await supervisor.aget_state(cfg("elsewhere"))).values == {}


# ---------------------------------------------------------------------------- 8. compact


def test_manual_compact(saver: Any) -> None:
    _, supervisor, _, summ = build(saver, limit=10_000)
    assert supervisor.compact(cfg()) is None  # empty thread
    supervisor.update_state(
        cfg("single"), {"messages": [HumanMessage("only one", id="one")]}, as_node="assistant"
    )
    assert supervisor.compact(cfg("single")) is None  # one message
    assert view(supervisor.get_state(cfg("single")).values["messages"]) == [
        ("HumanMessage", "only one", "one")
    ]
    assert supervisor.last_compaction("single") is None
    assert supervisor.last_compaction(THREAD) is None
    assert summ.calls == []

    supervisor.invoke(user(1), cfg())
    out = supervisor.invoke(user(2), cfg())
    assert supervisor.last_compaction(THREAD) is None  # under the limit
    result = supervisor.compact(cfg())
    assert result is supervisor.last_compaction(THREAD)
    assert result.trigger == "manual"
    assert len(summ.calls) == 1
    after = supervisor.get_state(cfg()).values["messages"]
    assert is_summary(after[0])
    assert MARK in after[0].text
    assert result.tokens_before == count_tokens(out["messages"])
    assert count_tokens(after) == result.tokens_after < result.tokens_before
    assert view(after[1:]) == view(out["messages"][-len(after) + 1 :])


async def test_manual_acompact(asaver: Any) -> None:
    _, supervisor, _, summ = build(asaver, limit=10_000)
    assert await supervisor.acompact(cfg()) is None
    await supervisor.aupdate_state(
        cfg("single"), {"messages": [HumanMessage("only one", id="one")]}, as_node="assistant"
    )
    assert await supervisor.acompact(cfg("single")) is None
    assert supervisor.last_compaction("single") is None
    assert supervisor.last_compaction(THREAD) is None
    assert summ.calls == []

    await supervisor.ainvoke(user(1), cfg())
    out = await supervisor.ainvoke(user(2), cfg())
    assert supervisor.last_compaction(THREAD) is None
    result = await supervisor.acompact(cfg())
    assert result is supervisor.last_compaction(THREAD)
    assert result.trigger == "manual"
    assert len(summ.calls) == 1
    after = (await supervisor.aget_state(cfg())).values["messages"]
    assert is_summary(after[0])
    assert result.tokens_before == count_tokens(out["messages"])
    assert count_tokens(after) == result.tokens_after < result.tokens_before
    assert view(after[1:]) == view(out["messages"][-len(after) + 1 :])


def test_one_history_manager_serves_several_graphs(tmp_path: Any) -> None:
    manager = HistoryManager(model=ScriptedChatModel(responses=["Short summary."]))
    conn = sqlite3.connect(tmp_path / "second.sqlite", check_same_thread=False)
    first = CompactingSupervisor(echo_graph(checkpointer=InMemorySaver()), manager, token_limit=150)
    second = CompactingSupervisor(
        echo_graph(checkpointer=SqliteSaver(conn)), manager, token_limit=150
    )
    config = {"configurable": {"thread_id": "t"}}
    for _ in range(4):
        first.invoke({"messages": [("user", "Tell me a story.")]}, config)
        second.invoke({"messages": [("user", "Tell me a story.")]}, config)
    assert first.last_compaction("t").status == "compacted"
    assert second.last_compaction("t").status == "compacted"
    assert manager.memory_saver is None  # the caller's manager is never re-pointed
    conn.close()


def test_tool_results_stream_as_message_events_of_their_node(saver: Any) -> None:
    from langchain_core.messages import ToolMessage

    from .helpers import tool_agent

    supervisor = CompactingSupervisor(tool_agent(saver), token_limit=100_000)
    events = list(supervisor.stream({"messages": [("user", "weather?")]}, cfg()))
    results = [
        e for e in events if e["type"] == "message" and isinstance(e["message"], ToolMessage)
    ]
    assert {e["message"].tool_call_id for e in results} == {
        c["id"] for c in supervisor.get_state(cfg()).values["messages"][1].tool_calls
    }
    assert {(e["node"], e["agent"]) for e in results} == {("tools", "tools")}
    assert "".join(e["content"] for e in events if e["type"] == "token").startswith("Both cities")


def test_a_long_lived_wrapper_remembers_only_its_latest_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A web app's wrapper lives as long as its process and sees every user's thread: what
    it keeps per thread (counts, marks, last result, breaker, first seen) is bounded, and a
    thread it forgot is counted afresh and compacted as before."""
    import compacting_supervisor._recent as recent

    monkeypatch.setattr(recent, "THREADS_KEPT", 20)
    broken = ScriptedChatModel(responses=[RuntimeError("provider down")])
    history = HistoryManager(model=broken, summary_retries=0, retry_backoff=0)
    supervisor = CompactingSupervisor(chat_graph(InMemorySaver()), history, token_limit=60)
    for n in range(100):
        config = {"configurable": {"thread_id": f"t{n}"}}
        for turn in range(2):  # the second turn has an older exchange to summarise
            note = f"Note {n}.{turn}: " + "budget line " * 20
            supervisor.invoke({"messages": [HumanMessage(note)]}, config)
    records = [
        supervisor._results,
        supervisor._first_seen,
        supervisor._breaker.circuits,
        supervisor._counted,
        supervisor._marks,
        supervisor._known,
    ]
    assert all(len(record) <= 20 for record in records), [len(r) for r in records]
    assert supervisor.last_compaction("t99").status == "failed"  # the latest are remembered
    assert supervisor.last_compaction("t0") is None  # the oldest are forgotten
    # A forgotten thread is counted afresh: its next turn is still over the limit and tried.
    supervisor.invoke(
        {"messages": [HumanMessage("one more")]}, {"configurable": {"thread_id": "t0"}}
    )
    assert supervisor.last_compaction("t0").status == "failed"


# ------------------------------------------------------------- counting after each run


class _Seen(Trigger):
    """Never fires; keeps the count it was shown after each run."""

    name = "seen"

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def check(self, context: TriggerContext) -> str | None:
        self.tokens.append(context.tokens)
        return None


class _WholeCounts:
    """Records each whole count (`TokenCounter.count`) the wrapper's counter makes."""

    def __init__(self, supervisor: CompactingSupervisor) -> None:
        self.sizes: list[int] = []
        counter = supervisor.history_manager.token_counter
        original = counter.count

        def count(messages: Any) -> int:
            self.sizes.append(len(messages))
            return original(messages)

        counter.count = count  # type: ignore[method-assign]


def test_a_thread_is_counted_whole_once_then_by_its_new_messages(saver: Any) -> None:
    """After the first run each run counts only what it appended (no message compared or
    counted again), on InMemorySaver, SQLite and Postgres, and every figure is the exact
    count of the stored thread."""
    graph = chat_graph(saver)
    seen = _Seen()
    supervisor = CompactingSupervisor(graph, trigger=seen)
    supervisor._mark_from.clear()  # from the first message on, not from MARK_FROM's lengths
    whole = _WholeCounts(supervisor)
    stored = []
    for turn in range(6):
        supervisor.invoke(user(turn), cfg())
        stored.append(TokenCounter().count(graph.get_state(cfg()).values["messages"]))
    assert whole.sizes == [2]
    assert seen.tokens == stored


async def test_a_thread_is_counted_whole_once_then_by_its_new_messages_async(
    asaver: Any,
) -> None:
    graph = chat_graph(asaver)
    seen = _Seen()
    supervisor = CompactingSupervisor(graph, trigger=seen)
    supervisor._mark_from.clear()
    whole = _WholeCounts(supervisor)
    stored = []
    for turn in range(6):
        await supervisor.ainvoke(user(turn), cfg())
        snapshot = await graph.aget_state(cfg())
        stored.append(TokenCounter().count(snapshot.values["messages"]))
    assert whole.sizes == [2]
    assert seen.tokens == stored


def test_a_short_thread_on_a_sql_saver_is_counted_whole_until_it_is_long(saver: Any) -> None:
    """Reading what a run added costs two queries a turn on SQLite and Postgres: a thread
    shorter than `MARK_FROM`'s length for its saver is counted whole from the run's output,
    with no query; once it is that long, only each run's new messages are counted. Every
    figure is exact either way."""
    from compacting_supervisor._persist.runs import RunCheckpoints

    graph = chat_graph(saver)
    seen = _Seen()
    supervisor = CompactingSupervisor(graph, trigger=seen)
    if isinstance(saver, InMemorySaver):
        assert supervisor._mark_from.get("memory", 0) == 0  # read in place: always
    supervisor._mark_from.update({"sqlite": 6, "postgres": 6})
    whole = _WholeCounts(supervisor)
    reads: list[int] = []
    original = RunCheckpoints.run

    def counted_read(self: Any) -> Any:
        reads.append(1)
        return original(self)

    RunCheckpoints.run = counted_read  # type: ignore[method-assign]
    try:
        stored = []
        for turn in range(6):
            supervisor.invoke(user(turn), cfg())
            stored.append(TokenCounter().count(graph.get_state(cfg()).values["messages"]))
    finally:
        RunCheckpoints.run = original  # type: ignore[method-assign]
    assert seen.tokens == stored
    if isinstance(saver, InMemorySaver):
        assert whole.sizes == [2]
    else:  # whole at 2 and 4 messages; at 6 the head is marked, so whole once more, then new
        assert whole.sizes == [2, 4, 6, 8]
        assert len(reads) == 3


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_another_workers_run_landing_before_the_read_is_not_taken_for_the_runs(
    kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare run by another worker landing between the wrapper's run and its read of what
    the run stored: the wrapper keeps no count tied to that longer head, and every later
    count is still the stored thread's exact count."""
    from compacting_supervisor._persist.runs import RunCheckpoints

    conn = sqlite3.connect(tmp_path / "race.sqlite", check_same_thread=False)
    graph = chat_graph(InMemorySaver() if kind == "memory" else SqliteSaver(conn))
    seen = _Seen()
    supervisor = CompactingSupervisor(graph, trigger=seen)
    supervisor._mark_from.clear()
    original = RunCheckpoints.run

    def another_worker_lands_first(self: Any) -> Any:
        graph.invoke({"messages": [HumanMessage("from another worker")]}, cfg())
        return original(self)

    stored = []
    for turn in range(4):
        if turn in (0, 2):  # the first count (whole) and a later one (from the kept one)
            monkeypatch.setattr(RunCheckpoints, "run", another_worker_lands_first)
        supervisor.invoke(user(turn), cfg())
        monkeypatch.setattr(RunCheckpoints, "run", original)
        messages = graph.get_state(cfg()).values["messages"]
        if turn in (0, 2):
            assert supervisor._counted.get(THREAD) is None  # nothing kept for that head
        else:
            stored.append(TokenCounter().count(messages))
            assert seen.tokens[-1] == stored[-1]
    conn.close()
