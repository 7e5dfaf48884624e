"""The public API as a newcomer meets it: one way to name a thread, no silent settings.

- Every public method of `CompactingSupervisor` that names a thread takes a thread id
  (``"t1"``) or a config, and says which parameter is wrong for anything else; the list of
  those methods is read from the class, so a new one cannot be missed.
- Settings that contradict each other are refused, naming both.
- Every numeric setting of every public class refuses NaN and infinity.
- ``token_counter=`` must be a `TokenCounter`; `count_tokens` takes what ``invoke`` takes.
- ``compact(keep=...)`` compacts with its own keep policy for that call only.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from compacting_supervisor import (
    CompactingSupervisor,
    CompactionMiddleware,
    CompactionNode,
    HistoryManager,
    KeepMessages,
    KeepRatio,
    KeepTokens,
    MessageCount,
    TokenCounter,
    TokenLimit,
    count_tokens,
)
from compacting_supervisor.context import ContextBuilder
from compacting_supervisor.locks import ThreadLocks
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.summarizers import ChatModelSummarizer
from compacting_supervisor.testing import ScriptedChatModel
from compacting_supervisor.triggers import (
    ContextFraction,
    Repetition,
    TimeSinceCompaction,
)

from .helpers import chat_graph

THREAD = "t1"


def by_id(thread: str) -> Any:
    return thread


def by_config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


FORMS = [pytest.param(by_id, id="thread-id"), pytest.param(by_config, id="config")]

# Each method that names a thread: its parameter's name, and how to call it with the thread.
NOTE = {"messages": [HumanMessage("A note added by hand.", id="note")]}
SYNC_CALLS: dict[str, tuple[str, Callable[[CompactingSupervisor, Any], Any]]] = {
    "compact": ("config", lambda s, t: s.compact(t)),
    "transcript": ("config", lambda s, t: s.transcript(t)),
    "thread_stats": ("thread", lambda s, t: s.thread_stats(t)),
    "last_compaction": ("thread", lambda s, t: s.last_compaction(t)),
    "get_state": ("config", lambda s, t: s.get_state(t)),
    "get_state_history": ("config", lambda s, t: list(s.get_state_history(t))),
    "update_state": ("config", lambda s, t: s.update_state(t, NOTE)),
}


async def _alist(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


ASYNC_CALLS: dict[str, tuple[str, Callable[[CompactingSupervisor, Any], Any]]] = {
    "acompact": ("config", lambda s, t: s.acompact(t)),
    "atranscript": ("config", lambda s, t: s.atranscript(t)),
    "athread_stats": ("thread", lambda s, t: s.athread_stats(t)),
    "aget_state": ("config", lambda s, t: s.aget_state(t)),
    "aget_state_history": ("config", lambda s, t: _alist(s.aget_state_history(t))),
    "aupdate_state": ("config", lambda s, t: s.aupdate_state(t, NOTE)),
}

RUNS = {
    "invoke",
    "ainvoke",
    "stream",
    "astream",
    "batch",
    "abatch",
    "stream_events",
    "astream_events",
    "with_config",
}
"""Public methods that take a config but do not name one thread by it (runs, binding)."""


def _turns(supervisor: CompactingSupervisor, thread: str = THREAD, n: int = 4) -> None:
    for i in range(n):
        supervisor.invoke({"messages": [("user", f"message {i}")]}, by_config(thread))


async def _aturns(supervisor: CompactingSupervisor, thread: str = THREAD, n: int = 4) -> None:
    for i in range(n):
        await supervisor.ainvoke({"messages": [("user", f"message {i}")]}, by_config(thread))


def _supervisor(checkpointer: Any, **settings: Any) -> CompactingSupervisor:
    summariser = ScriptedChatModel(responses=["Short summary."])
    settings.setdefault("token_limit", 100_000)  # no automatic compaction
    return CompactingSupervisor(
        chat_graph(checkpointer), HistoryManager(model=summariser), **settings
    )


def _thread_of(name: str, outcome: Any) -> str:
    """The thread an outcome of method ``name`` is about."""
    if name.endswith("get_state_history"):
        return str(outcome[0].config["configurable"]["thread_id"])
    if name.endswith("get_state") or name.endswith("update_state"):
        config = outcome.config if name.endswith("get_state") else outcome
        return str(config["configurable"]["thread_id"])
    return str(outcome.thread_id)


# ---------------------------------------------------------------------------- naming a thread


def test_every_method_that_names_a_thread_is_walked() -> None:
    named = {
        name
        for name, member in inspect.getmembers(CompactingSupervisor, inspect.isfunction)
        if not name.startswith("_")
        and list(inspect.signature(member).parameters)[1:2] in (["config"], ["thread"])
    }
    assert named - RUNS == set(SYNC_CALLS) | set(ASYNC_CALLS)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(SYNC_CALLS))
def test_a_thread_is_named_by_id_or_config(saver: Any, name: str, form: Any) -> None:
    supervisor = _supervisor(saver)
    _turns(supervisor)
    if name == "last_compaction":
        supervisor.compact(by_config(THREAD))
    outcome = SYNC_CALLS[name][1](supervisor, form(THREAD))
    assert _thread_of(name, outcome) == THREAD


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(ASYNC_CALLS))
async def test_a_thread_is_named_by_id_or_config_async(asaver: Any, name: str, form: Any) -> None:
    supervisor = _supervisor(asaver)
    await _aturns(supervisor)
    outcome = await ASYNC_CALLS[name][1](supervisor, form(THREAD))
    assert _thread_of(name, outcome) == THREAD


def test_both_forms_read_the_same_thread(saver: Any) -> None:
    supervisor = _supervisor(saver)
    _turns(supervisor)
    _turns(supervisor, "other", n=1)
    assert supervisor.get_state(THREAD).values == supervisor.get_state(by_config(THREAD)).values
    assert supervisor.thread_stats(THREAD) == supervisor.thread_stats(by_config(THREAD))
    assert supervisor.transcript(THREAD) == supervisor.transcript(by_config(THREAD))
    result = supervisor.compact(THREAD)
    assert result is not None
    assert result.status == "compacted"
    assert supervisor.last_compaction(THREAD) is supervisor.last_compaction(by_config(THREAD))
    assert supervisor.last_compaction("other") is None


BAD_THREADS = [
    pytest.param(None, ValueError, id="none"),
    pytest.param(3, TypeError, id="int"),
    pytest.param("", ValueError, id="empty-id"),
    pytest.param({}, ValueError, id="empty-config"),
    pytest.param({"configurable": {"thread_id": ""}}, ValueError, id="empty-thread-id"),
    pytest.param(["t1"], TypeError, id="list"),
]


@pytest.mark.parametrize(("bad", "error"), BAD_THREADS)
@pytest.mark.parametrize("name", list(SYNC_CALLS))
def test_a_bad_thread_names_the_parameter(name: str, bad: Any, error: type) -> None:
    saver = InMemorySaver()
    supervisor = _supervisor(saver)
    parameter, call = SYNC_CALLS[name]
    with pytest.raises(error, match=f"`{parameter}`"):
        call(supervisor, bad)
    assert list(saver.list(None)) == []  # nothing ran, nothing was written


@pytest.mark.parametrize(("bad", "error"), BAD_THREADS)
@pytest.mark.parametrize("name", list(ASYNC_CALLS))
async def test_a_bad_thread_names_the_parameter_async(name: str, bad: Any, error: type) -> None:
    saver = InMemorySaver()
    supervisor = _supervisor(saver)
    parameter, call = ASYNC_CALLS[name]
    with pytest.raises(error, match=f"`{parameter}`"):
        await call(supervisor, bad)
    assert [c async for c in saver.alist(None)] == []


@pytest.mark.parametrize("name", list(SYNC_CALLS))
def test_a_bound_config_names_the_thread(saver: Any, name: str) -> None:
    supervisor = _supervisor(saver)
    bound = supervisor.with_config(configurable={"thread_id": THREAD})
    _turns(bound)
    if name == "last_compaction":
        bound.compact(None)
    for unnamed in (None, {}, {"configurable": {}}):
        outcome = SYNC_CALLS[name][1](bound, unnamed)
        assert _thread_of(name, outcome) == THREAD
        if name == "compact":
            break  # once is enough; a second one has little left to summarise
    assert supervisor.get_state(THREAD).values["messages"]


@pytest.mark.parametrize("name", list(ASYNC_CALLS))
async def test_a_bound_config_names_the_thread_async(asaver: Any, name: str) -> None:
    supervisor = _supervisor(asaver)
    bound = supervisor.with_config(configurable={"thread_id": THREAD})
    await _aturns(bound)
    outcome = await ASYNC_CALLS[name][1](bound, None)
    assert _thread_of(name, outcome) == THREAD


def test_a_run_takes_a_config_and_says_so_for_a_thread_id() -> None:
    supervisor = _supervisor(InMemorySaver())
    runs = {
        "invoke": lambda: supervisor.invoke({"messages": [("user", "hi")]}, THREAD),
        "stream": lambda: list(supervisor.stream({"messages": [("user", "hi")]}, THREAD)),
        "batch": lambda: supervisor.batch([{"messages": [("user", "hi")]}], [THREAD]),
    }
    for run in runs.values():
        with pytest.raises(TypeError, match=r"`config`.*\{'configurable': \{'thread_id': 't1'"):
            run()


async def test_an_async_run_takes_a_config_and_says_so_for_a_thread_id() -> None:
    supervisor = _supervisor(InMemorySaver())
    with pytest.raises(TypeError, match="`config`"):
        await supervisor.ainvoke({"messages": [("user", "hi")]}, THREAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`config`"):
        supervisor.astream({"messages": [("user", "hi")]}, THREAD)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- contradictions


@pytest.mark.parametrize("token_limit", [300, 500])
def test_token_limit_and_trigger_contradict(token_limit: int) -> None:
    with pytest.raises(ValueError, match="`token_limit` and `trigger`"):
        _supervisor(InMemorySaver(), token_limit=token_limit, trigger=MessageCount(5))


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_compaction_ratio_and_keep_contradict(ratio: float) -> None:
    with pytest.raises(ValueError, match="`compaction_ratio` and `keep`"):
        CompactingSupervisor(
            chat_graph(InMemorySaver()), compaction_ratio=ratio, keep=KeepMessages(5)
        )


def test_each_of_a_pair_alone_is_taken_and_the_defaults_read_as_numbers() -> None:
    graph = chat_graph(InMemorySaver())
    by_trigger = CompactingSupervisor(graph, trigger=MessageCount(5), keep=KeepMessages(4))
    assert isinstance(by_trigger.trigger, MessageCount)
    assert isinstance(by_trigger.keep, KeepMessages)
    plain = CompactingSupervisor(graph)
    assert (plain.token_limit, plain.compaction_ratio) == (500, 0.8)
    assert (type(plain.token_limit), type(plain.compaction_ratio)) == (int, float)
    assert isinstance(plain.trigger, TokenLimit)
    assert plain.trigger.tokens == 500
    assert isinstance(plain.keep, KeepRatio)
    assert plain.keep.compaction_ratio == 0.8
    signature = inspect.signature(CompactingSupervisor)
    assert str(signature.parameters["token_limit"]) == "token_limit: 'int' = 500"
    assert str(signature.parameters["compaction_ratio"]) == "compaction_ratio: 'float' = 0.8"


# ---------------------------------------------------------------------------- NaN and infinity


def _graph() -> Any:
    return chat_graph(InMemorySaver())


def _hold(timeout: float) -> None:
    with ThreadLocks().hold("t", timeout=timeout):
        pass


async def _ahold(timeout: float) -> None:
    async with ThreadLocks().ahold("t", timeout=timeout):
        pass


NUMERIC_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "CompactingSupervisor.token_limit": (
        "token_limit",
        lambda v: CompactingSupervisor(_graph(), token_limit=v),
    ),
    "CompactingSupervisor.compaction_ratio": (
        "compaction_ratio",
        lambda v: CompactingSupervisor(_graph(), compaction_ratio=v),
    ),
    "CompactingSupervisor.system_prompt": (
        "system_prompt",
        lambda v: CompactingSupervisor(_graph(), system_prompt=v),
    ),
    "CompactingSupervisor.tools": ("tools", lambda v: CompactingSupervisor(_graph(), tools=v)),
    "CompactingSupervisor.lock_timeout": (
        "lock_timeout",
        lambda v: CompactingSupervisor(_graph(), lock_timeout=v),
    ),
    "CompactingSupervisor.max_consecutive_failures": (
        "max_consecutive_failures",
        lambda v: CompactingSupervisor(_graph(), max_consecutive_failures=v),
    ),
    "CompactingSupervisor.failure_cooldown_turns": (
        "failure_cooldown_turns",
        lambda v: CompactingSupervisor(_graph(), failure_cooldown_turns=v),
    ),
    "HistoryManager.summary_timeout": (
        "summary_timeout",
        lambda v: HistoryManager(summary_timeout=v),
    ),
    "HistoryManager.summary_retries": (
        "summary_retries",
        lambda v: HistoryManager(summary_retries=v),
    ),
    "HistoryManager.retry_backoff": ("retry_backoff", lambda v: HistoryManager(retry_backoff=v)),
    "HistoryManager.max_summary_tokens": (
        "max_summary_tokens",
        lambda v: HistoryManager(max_summary_tokens=v),
    ),
    "HistoryManager.summary_input_tokens": (
        "summary_input_tokens",
        lambda v: HistoryManager(summary_input_tokens=v),
    ),
    "KeepRatio": ("compaction_ratio", KeepRatio),
    "KeepMessages": ("messages", KeepMessages),
    "KeepTokens": ("tokens", KeepTokens),
    "TokenLimit": ("tokens", TokenLimit),
    "MessageCount": ("messages", MessageCount),
    "TimeSinceCompaction": ("seconds", TimeSinceCompaction),
    "ContextFraction.fraction": ("fraction", lambda v: ContextFraction(v, context_window=1_000)),
    "ContextFraction.context_window": (
        "context_window",
        lambda v: ContextFraction(0.5, context_window=v),
    ),
    "Repetition.replies": ("replies", lambda v: Repetition(replies=v)),
    "Repetition.similarity": ("similarity", lambda v: Repetition(similarity=v)),
    "OffloadToolResults.min_tokens": (
        "min_tokens",
        lambda v: OffloadToolResults(InMemoryStore(), min_tokens=v),
    ),
    "OffloadToolResults.min_chars": (
        "min_chars",
        lambda v: OffloadToolResults(InMemoryStore(), min_chars=v),
    ),
    "OffloadToolResults.preview_chars": (
        "preview_chars",
        lambda v: OffloadToolResults(InMemoryStore(), preview_chars=v),
    ),
    "OffloadToolResults.read_tool.default_limit": (
        "default_limit",
        lambda v: OffloadToolResults(InMemoryStore()).read_tool(default_limit=v),
    ),
    "OffloadToolResults.read_tool.max_limit": (
        "max_limit",
        lambda v: OffloadToolResults(InMemoryStore()).read_tool(max_limit=v),
    ),
    "ContextBuilder.token_budget": ("token_budget", lambda v: ContextBuilder(token_budget=v)),
    "ThreadLocks.hold.timeout": ("timeout", _hold),
    "ScriptedChatModel.delay": ("delay", lambda v: ScriptedChatModel(delay=v)),
    "CompactingSupervisor.compact.keep": (
        "keep",
        lambda v: _supervisor(InMemorySaver()).compact(THREAD, keep=v),
    ),
}
_IN_GRAPH_SETTINGS = (
    "token_limit",
    "compaction_ratio",
    "system_prompt",
    "tools",
    "max_consecutive_failures",
    "failure_cooldown_turns",
)
for _form in (CompactionNode, CompactionMiddleware):  # the forms inside a graph: the same
    for _name in _IN_GRAPH_SETTINGS:
        NUMERIC_SETTINGS[f"{_form.__name__}.{_name}"] = (
            _name,
            lambda v, form=_form, name=_name: form(**{name: v}),
        )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("setting", list(NUMERIC_SETTINGS))
def test_numeric_settings_refuse_nan_and_infinity(setting: str, value: float) -> None:
    parameter, make = NUMERIC_SETTINGS[setting]
    with pytest.raises(ValueError, match=f"`{parameter}`"):
        make(value)


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
async def test_async_lock_timeout_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError, match="`timeout`"):
        await _ahold(value)


def test_an_infinite_wait_is_spelt_none() -> None:
    with pytest.raises(ValueError, match=r"`lock_timeout`.*None means no limit"):
        CompactingSupervisor(_graph(), lock_timeout=math.inf)
    assert CompactingSupervisor(_graph(), lock_timeout=None).lock_timeout is None
    with pytest.raises(ValueError, match="`retry_backoff`"):
        HistoryManager(retry_backoff=math.inf)


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_per_call_max_summary_tokens_refuses_nan_and_infinity(value: float) -> None:
    messages: list[BaseMessage] = [
        HumanMessage(f"question {i} " * 20) if i % 2 == 0 else AIMessage(f"answer {i} " * 20)
        for i in range(8)
    ]
    with pytest.raises(ValueError, match="`max_summary_tokens`"):
        HistoryManager().compact_messages(messages, max_summary_tokens=value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- token_counter=

TOKEN_COUNTER_TAKERS: dict[str, Callable[[Any], Any]] = {
    "HistoryManager": lambda c: HistoryManager(token_counter=c),
    "KeepTokens": lambda c: KeepTokens(100, token_counter=c),
    "OffloadToolResults": lambda c: OffloadToolResults(InMemoryStore(), token_counter=c),
    "ContextBuilder": lambda c: ContextBuilder(token_budget=100, token_counter=c),
    "ChatModelSummarizer": lambda c: ChatModelSummarizer(ScriptedChatModel(), token_counter=c),
}


@pytest.mark.parametrize("counter", ["gpt-4o", True, 3, len], ids=["str", "true", "int", "func"])
@pytest.mark.parametrize("taker", list(TOKEN_COUNTER_TAKERS))
def test_token_counter_must_be_a_token_counter(taker: str, counter: Any) -> None:
    with pytest.raises(TypeError, match="`token_counter` must be a TokenCounter"):
        TOKEN_COUNTER_TAKERS[taker](counter)


@pytest.mark.parametrize("taker", list(TOKEN_COUNTER_TAKERS))
def test_a_token_counter_is_taken(taker: str) -> None:
    TOKEN_COUNTER_TAKERS[taker](TokenCounter("gpt-4"))
    TOKEN_COUNTER_TAKERS[taker](None)


# ---------------------------------------------------------------------------- count_tokens

HI = [HumanMessage("hi"), AIMessage("hello, how can I help?")]


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(HI, id="messages"),
        pytest.param(tuple(HI), id="tuple-of-messages"),
        pytest.param([("user", "hi"), ("ai", "hello, how can I help?")], id="tuples"),
        pytest.param(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello, how can I help?"},
            ],
            id="dicts",
        ),
        pytest.param(["hi", AIMessage("hello, how can I help?")], id="mixed"),
        pytest.param(
            {"messages": [("user", "hi"), ("assistant", "hello, how can I help?")]},
            id="graph-input",
        ),
    ],
)
def test_count_tokens_takes_what_invoke_takes(given: Any) -> None:
    assert count_tokens(given) == count_tokens(HI) == TokenCounter().count(HI)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("hi", id="string"),
        pytest.param(("user", "hi"), id="tuple"),
        pytest.param({"role": "user", "content": "hi"}, id="dict"),
        pytest.param(HumanMessage("hi"), id="message"),
        pytest.param({"messages": "hi"}, id="graph-input"),
    ],
)
def test_count_tokens_takes_one_message_alone(given: Any) -> None:
    assert count_tokens(given) == count_tokens([HumanMessage("hi")])


@pytest.mark.parametrize(
    "bad",
    [None, 3, [3], [{"content": "no role"}], [("wizard", "hi")], object()],
    ids=["none", "int", "list-of-int", "dict-without-role", "unknown-role", "object"],
)
def test_count_tokens_says_what_it_takes(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"`messages` must be .*\('user', 'hi'\) tuples"):
        count_tokens(bad)


# ---------------------------------------------------------------------------- compact(keep=)


def _twins(checkpointer: Any, keep: Any) -> tuple[CompactingSupervisor, CompactingSupervisor]:
    """The wrapper under test, and a reference wrapper whose own ``keep`` is ``keep``."""
    reference_keep = keep if not isinstance(keep, float) else KeepRatio(keep)
    return _supervisor(checkpointer), _supervisor(checkpointer, keep=reference_keep)


@pytest.mark.parametrize(
    "keep", [pytest.param(KeepMessages(4), id="policy"), pytest.param(0.3, id="ratio")]
)
def test_compact_takes_a_keep_policy_for_this_call(saver: Any, keep: Any) -> None:
    supervisor, reference = _twins(saver, keep)
    _turns(supervisor, n=5)
    _turns(reference, "reference", n=5)
    own_keep = supervisor.keep
    result = supervisor.compact(THREAD, keep=keep)
    expected = reference.compact("reference")
    assert result is not None
    assert expected is not None
    assert result.messages_summarized == expected.messages_summarized
    assert result.messages_after == expected.messages_after
    assert supervisor.keep is own_keep  # for this call only
    default = _supervisor(InMemorySaver())
    _turns(default, n=5)
    by_default = default.compact(THREAD)
    assert by_default is not None
    assert by_default.messages_summarized != result.messages_summarized


@pytest.mark.parametrize(
    "keep", [pytest.param(KeepMessages(4), id="policy"), pytest.param(0.3, id="ratio")]
)
async def test_acompact_takes_a_keep_policy_for_this_call(asaver: Any, keep: Any) -> None:
    supervisor, reference = _twins(asaver, keep)
    await _aturns(supervisor, n=5)
    await _aturns(reference, "reference", n=5)
    result = await supervisor.acompact(by_config(THREAD), keep=keep)
    expected = await reference.acompact("reference")
    assert result is not None
    assert expected is not None
    assert result.messages_summarized == expected.messages_summarized
    assert result.messages_after == expected.messages_after


@pytest.mark.parametrize(
    ("bad", "error"),
    [(1.5, ValueError), (0, ValueError), (True, TypeError), ("0.3", TypeError)],
    ids=["over-one", "zero", "bool", "string"],
)
def test_compact_names_a_bad_keep(bad: Any, error: type) -> None:
    supervisor = _supervisor(InMemorySaver())
    _turns(supervisor)
    with pytest.raises(error, match="`keep`"):
        supervisor.compact(THREAD, keep=bad)
    assert supervisor.last_compaction(THREAD) is None  # nothing was attempted
