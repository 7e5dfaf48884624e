"""Large tool results out of the window: the stores, the policy, the read tool, in an agent."""

from __future__ import annotations

import asyncio
import copy
import doctest
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.store.memory import InMemoryStore

import compacting_supervisor.offload as offload_module
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.offload import (
    HEADER_PREFIX,
    REF_PATTERN,
    DirectoryResultStore,
    LangGraphResultStore,
    OffloadError,
    OffloadToolResults,
    ResultStore,
    make_ref,
    offloaded_ref,
    read_tool_result_tool,
    stored_results_note,
)
from compacting_supervisor.offload._shared import _text_tokens
from compacting_supervisor.testing import ScriptedChatModel
from compacting_supervisor.token_counter import TokenCounter
from tests.conftest import POSTGRES_URL
from tests.helpers import openai_violations

REPORT = "".join(
    f"Line {i:05d}: revenue {i * 37 % 1000} EUR, région Île-de-France ✓\n" for i in range(800)
)
"""A large tool result (about 50,000 characters), with non-ASCII text."""


def tool_history(content: Any = REPORT, **extra: Any) -> list[BaseMessage]:
    """A valid history: a question, two parallel calls, their results, an answer, a question."""
    return [
        SystemMessage("You are an analyst."),
        HumanMessage("Fetch the report and the weather.", id="h1"),
        AIMessage(
            "",
            id="a1",
            tool_calls=[
                {"name": "fetch_report", "args": {"year": 2024}, "id": "call_report"},
                {"name": "weather", "args": {"city": "Paris"}, "id": "call_weather"},
            ],
        ),
        ToolMessage(content, tool_call_id="call_report", name="fetch_report", id="t1", **extra),
        ToolMessage("Sunny, 21 degrees.", tool_call_id="call_weather", name="weather", id="t2"),
        AIMessage("The report is in; it is sunny.", id="a2"),
        HumanMessage("Which line mentions revenue 999?", id="h2"),
    ]


# ---------------------------------------------------------------------------------- stores


@pytest.fixture
def directory(tmp_path: Path) -> DirectoryResultStore:
    return DirectoryResultStore(tmp_path / "results")


def _cleanup(store: Any, namespace: tuple[str, ...]) -> None:
    for item in store.search(namespace, limit=1000):
        store.delete(namespace, item.key)


async def _acleanup(store: Any, namespace: tuple[str, ...]) -> None:
    for item in await store.asearch(namespace, limit=1000):
        await store.adelete(namespace, item.key)


@pytest.fixture(params=["directory", "memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultStore]:
    """Every store, used from sync code."""
    namespace = ("cs_test", uuid.uuid4().hex)
    if request.param == "directory":
        yield DirectoryResultStore(tmp_path / "results")
    elif request.param == "memory":
        yield LangGraphResultStore(InMemoryStore(), namespace=namespace)
    elif request.param == "sqlite":
        from langgraph.store.sqlite import SqliteStore

        with SqliteStore.from_conn_string(str(tmp_path / "store.sqlite")) as lg_store:
            lg_store.setup()
            yield LangGraphResultStore(lg_store, namespace=namespace)
    else:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(POSTGRES_URL) as lg_store:
            lg_store.setup()
            yield LangGraphResultStore(lg_store, namespace=namespace)
            _cleanup(lg_store, namespace)


@pytest.fixture(params=["directory", "memory", "aiosqlite", "sqlite-in-thread", "apostgres"])
async def astore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResultStore]:
    """Every store, used from async code (a sync-only SqliteStore through a worker thread)."""
    namespace = ("cs_test", uuid.uuid4().hex)
    if request.param == "directory":
        yield DirectoryResultStore(tmp_path / "results")
    elif request.param == "memory":
        yield LangGraphResultStore(InMemoryStore(), namespace=namespace)
    elif request.param == "aiosqlite":
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        async with AsyncSqliteStore.from_conn_string(str(tmp_path / "store.sqlite")) as lg:
            await lg.setup()
            yield LangGraphResultStore(lg, namespace=namespace)
    elif request.param == "sqlite-in-thread":
        from langgraph.store.sqlite import SqliteStore

        with SqliteStore.from_conn_string(str(tmp_path / "store.sqlite")) as lg_store:
            lg_store.setup()
            yield LangGraphResultStore(lg_store, namespace=namespace)
    else:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        async with AsyncPostgresStore.from_conn_string(POSTGRES_URL) as lg_astore:
            await lg_astore.setup()
            yield LangGraphResultStore(lg_astore, namespace=namespace)
            await _acleanup(lg_astore, namespace)


ODD_TEXTS = [
    REPORT,
    "plain ascii",
    "windows\r\nline endings\r\n and a trailing space ",
    "NUL \x00 inside, tab\t, emoji 🧪, RTL שלום",
    "a lone surrogate \ud800 survives",
    "",
]


def test_stores_round_trip_exactly(store: ResultStore) -> None:
    for i, text in enumerate(ODD_TEXTS):
        ref = make_ref("thread", f"call_{i}", text)
        store.put(ref, text, {"thread_id": "thread", "tool_call_id": f"call_{i}"})
        store.put(ref, text, {"thread_id": "thread", "tool_call_id": f"call_{i}"})  # idempotent
        assert store.get(ref) == text
    assert store.get(make_ref("thread", "never", "stored")) is None
    assert store.get("../../etc/passwd") is None


async def test_stores_round_trip_exactly_async(astore: ResultStore) -> None:
    for i, text in enumerate(ODD_TEXTS):
        ref = make_ref("thread", f"call_{i}", text)
        await astore.aput(ref, text, {"thread_id": "thread"})
        await astore.aput(ref, text, {"thread_id": "thread"})
        assert await astore.aget(ref) == text
    assert await astore.aget(make_ref("thread", "never", "stored")) is None
    assert await astore.aget("tr_../../../etc/passwd") is None


async def test_policy_on_every_store_sync_and_async(astore: ResultStore) -> None:
    policy = OffloadToolResults(astore, min_chars=10_000)
    plan = await policy.aapply(tool_history(), thread_id="t-async")
    (item,) = plan.offloaded
    assert await astore.aget(item.ref) == REPORT
    if not isinstance(astore, LangGraphResultStore) or "Async" not in type(astore.store).__name__:
        sync_plan = policy.apply(tool_history(), thread_id="t-async")
        assert [m.content for m in sync_plan.messages] == [m.content for m in plan.messages]
        assert astore.get(item.ref) == REPORT


def test_directory_store_layout_and_path_safety(tmp_path: Path) -> None:
    root = tmp_path / "results"
    store = DirectoryResultStore(root)
    policy = OffloadToolResults(store, min_chars=100, preview_chars=10)
    weird = ["../../etc/passwd", "/abs/path", "C:\\windows", "thread\x00nul", "日本語 🧵", "."]
    refs = []
    for thread_id in weird:
        for call_id in ["../../etc/passwd", "call/../../x", "ünïcödé", ""]:
            message = ToolMessage("y" * 500, tool_call_id=call_id, id=f"{thread_id}-{call_id}")
            (item,) = policy.apply([message], thread_id=thread_id).offloaded
            refs.append(item.ref)
            assert REF_PATTERN.fullmatch(item.ref)
            assert store.file_for(item.ref).read_text() == "y" * 500
    assert len(set(refs)) == len(refs)  # each thread and call stored apart
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(f"{ref}.txt" for ref in refs)  # nothing outside, no temp file left
    assert all(p.parent == root.resolve() for p in root.iterdir())
    for bad in ["../../etc/passwd", "tr_0123456789abcdef012/", "/etc/passwd", "TR_x", ""]:
        assert store.get(bad) is None
        with pytest.raises(ValueError, match="`ref` must be 'tr_'"):
            store.put(bad, "x", {})
    assert store.get(refs[0].upper()) is None  # references are exact, lowercase hex
    assert oct(store.file_for(refs[0]).stat().st_mode & 0o777) == "0o600"


def test_directory_store_is_idempotent_and_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryResultStore(tmp_path)
    ref = make_ref("t", "c", "content")
    store.put(ref, "content", {})
    before = store.file_for(ref).stat().st_mtime_ns
    store.put(ref, "content", {})
    assert store.file_for(ref).stat().st_mtime_ns == before  # not rewritten

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    other = make_ref("t", "c", "other")
    with pytest.raises(OSError, match="No space left"):
        store.put(other, "other", {})
    assert store.get(other) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{ref}.txt"]  # no temp file left


def test_directory_store_validation(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="`path`"):
        DirectoryResultStore(a_file)
    with pytest.raises(ValueError, match="`path`"):
        DirectoryResultStore(a_file / "below")
    with pytest.raises(TypeError, match="`path` must be a directory path"):
        DirectoryResultStore(42)  # type: ignore[arg-type]
    assert DirectoryResultStore(tmp_path / "a" / "b").path.is_dir()


def test_langgraph_store_items_and_validation() -> None:
    lg_store = InMemoryStore()
    results = LangGraphResultStore(lg_store)
    policy = OffloadToolResults(results, min_chars=1000)
    plan = policy.apply(tool_history(), thread_id="thread-7")
    (found,) = lg_store.search(
        ("compacting_supervisor", "tool_results"), filter={"thread_id": "thread-7"}
    )
    assert found.key == plan.offloaded[0].ref
    assert found.value["tool_call_id"] == "call_report"
    assert found.value["tool_name"] == "fetch_report"
    assert found.value["chars"] == len(REPORT)
    assert found.value["content"] == REPORT
    assert "LangGraphResultStore(InMemoryStore" in repr(results)
    with pytest.raises(TypeError, match="`store` must be a LangGraph BaseStore"):
        LangGraphResultStore({})  # type: ignore[arg-type]
    for namespace in [(), ("a.b",), ("ok", ""), ["list"]]:
        with pytest.raises(ValueError, match="`namespace`"):
            LangGraphResultStore(lg_store, namespace=namespace)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- policy


def test_thresholds_are_exact_in_characters() -> None:
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=100)
    under = policy.plan([ToolMessage("a" * 999, tool_call_id="c")])
    at = policy.plan([ToolMessage("a" * 1000, tool_call_id="c")])
    assert not under.offloaded
    assert len(at.offloaded) == 1


def test_thresholds_are_exact_in_tokens() -> None:
    counter = TokenCounter()
    tokens = _text_tokens(counter, REPORT)
    assert tokens > 10_000
    assert _text_tokens(counter, "hello world") == 2
    at = OffloadToolResults(InMemoryStore(), min_tokens=tokens, token_counter=counter)
    over = OffloadToolResults(InMemoryStore(), min_tokens=tokens + 1, token_counter=counter)
    assert len(at.plan(tool_history()).offloaded) == 1
    assert not over.plan(tool_history()).offloaded
    assert f"{tokens:,} tokens" in at.plan(tool_history()).messages[3].text
    # The default is 2,000 tokens: the 19-character weather report stays.
    default = OffloadToolResults(InMemoryStore())
    assert default.min_tokens == 2000
    assert default.min_chars is None
    assert [item.index for item in default.plan(tool_history()).offloaded] == [3]


def test_replacement_keeps_ids_and_reads_well() -> None:
    artifact = {"rows": 800}
    history = tool_history(status="error", artifact=artifact, additional_kwargs={"k": "v"})
    original = copy.deepcopy(history)
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=200)
    plan = policy.apply(history, thread_id="t1")
    assert history == original  # the input is never modified
    (item,) = plan.offloaded
    new = plan.messages[3]
    assert isinstance(new, ToolMessage)
    assert (new.id, new.tool_call_id, new.name, new.status) == (
        "t1",
        "call_report",
        "fetch_report",
        "error",
    )
    assert new.artifact is artifact
    assert new.additional_kwargs == {"k": "v"}
    assert plan.messages[:3] == history[:3]
    assert plan.messages[4:] == history[4:]
    assert item.replacement is new
    assert item.original is history[3]
    assert offloaded_ref(new) == item.ref
    assert offloaded_ref(history[3]) is None
    assert new.response_metadata["compacting_supervisor"]["offloaded"] == {
        "ref": item.ref,
        "chars": len(REPORT),
        "tokens": item.metadata["tokens"],
        "tool": "read_tool_result",
    }
    lines = str(new.content).split("\n")
    assert lines[0] == (
        f"[tool result stored: ref={item.ref}, {len(REPORT):,} characters, "
        f"{item.metadata['tokens']:,} tokens. Preview:]"
    )
    assert str(new.content).startswith(f"{lines[0]}\n{REPORT[:200]}\n")
    assert lines[-1] == (
        f"[... {len(REPORT) - 200:,} more characters; "
        f'call read_tool_result(ref="{item.ref}", offset=200)]'
    )
    assert REF_PATTERN.findall(str(new.content)) == [item.ref, item.ref]
    assert plan.chars_offloaded == len(REPORT)
    assert openai_violations(plan.messages) == []
    assert TokenCounter().count(plan.messages) < TokenCounter().count(history) // 10


def test_zero_preview() -> None:
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=0)
    (item,) = policy.apply(tool_history()).offloaded
    assert item.replacement.content == (
        f"[tool result stored: ref={item.ref}, {len(REPORT):,} characters, "
        f"{item.metadata['tokens']:,} tokens; read it with read_tool_result.]"
    )
    assert REF_PATTERN.findall(item.replacement.text) == [item.ref]  # named once, on one line


def test_idempotent_and_never_offloaded_twice(tmp_path: Path) -> None:
    store = DirectoryResultStore(tmp_path)
    policy = OffloadToolResults(store, min_chars=1000)
    first = policy.apply(tool_history(), thread_id="t")
    again = policy.apply(tool_history(), thread_id="t")
    assert [i.ref for i in first.offloaded] == [i.ref for i in again.offloaded]
    assert first.messages == again.messages
    assert len(list(tmp_path.iterdir())) == 1
    # The offloaded history is left as it is, even by a stricter policy.
    strict = OffloadToolResults(store, min_chars=10, preview_chars=5)
    assert [m.content for m in strict.plan(first.messages).messages[3:4]] == [
        first.messages[3].content
    ]
    # The header alone also marks a message whose metadata was lost (e.g. re-serialised).
    stripped = first.messages[3].model_copy(update={"response_metadata": {}})
    assert not strict.plan([stripped]).offloaded
    # A duplicated message is stored once.
    duplicated = policy.plan([history := tool_history()[3], history])
    assert len(duplicated.offloaded) == 2
    assert duplicated.offloaded[0].ref == duplicated.offloaded[1].ref


def test_stored_results_note_for_summaries() -> None:
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000)
    history = _two_large_results()
    plan = policy.plan([*history, history[3]])  # a duplicate is named once
    ref_a, ref_b = plan.offloaded[0].ref, plan.offloaded[1].ref
    note = stored_results_note("The user fetched a report.", plan.messages)
    assert note == (
        f"Stored tool results, readable with read_tool_result: {ref_a} (fetch_report, "
        f"{len(REPORT):,} characters); {ref_b} (weather, {len(REPORT):,} characters)."
    )
    assert stored_results_note(f"See {ref_a}.", plan.messages).count("tr_") == 1
    assert stored_results_note(f"See {ref_a} and {ref_b}.", plan.messages) == ""
    assert stored_results_note("", history) == ""


def test_references_differ_by_thread_and_call() -> None:
    assert make_ref("a", "c", "x") == make_ref("a", "c", "x")
    assert len({make_ref("a", "c", "x"), make_ref("b", "c", "x"), make_ref("a", "d", "x")}) == 3
    assert make_ref("ab", "c", "x") != make_ref("a", "bc", "x")  # length-prefixed parts
    assert REF_PATTERN.fullmatch(make_ref(None, "", ""))


def test_what_is_never_offloaded() -> None:
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=900)
    messages: list[BaseMessage] = [
        HumanMessage(REPORT),  # only tool results move
        AIMessage(REPORT),
        ToolMessage(REPORT, tool_call_id="c1", name="read_tool_result"),  # reading would loop
        ToolMessage("z" * 1000, tool_call_id="c2"),  # the reference would not be shorter
        ToolMessage([], tool_call_id="c3"),
        ToolMessage([{"type": "image_url", "image_url": {"url": "data:,"}}], tool_call_id="c4"),
    ]
    plan = policy.plan(messages)
    assert plan.offloaded == []
    assert plan.messages == messages


def test_content_blocks() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}}
    blocks = [
        {"type": "text", "text": REPORT[:30_000]},
        image,
        "plain string block",
        {"type": "text", "text": REPORT[30_000:]},
    ]
    message = ToolMessage(blocks, tool_call_id="call_report", name="fetch_report", id="t1")
    store = InMemoryStore()
    policy = OffloadToolResults(store, min_chars=1000, preview_chars=50)
    (item,) = policy.apply([message], thread_id="t").offloaded
    joined = f"{REPORT[:30_000]}\nplain string block\n{REPORT[30_000:]}"
    assert item.content == joined
    assert LangGraphResultStore(store).get(item.ref) == joined
    content = item.replacement.content
    assert isinstance(content, list)
    assert len(content) == 2
    assert content[0]["type"] == "text"
    assert content[0]["text"].startswith(HEADER_PREFIX + item.ref)
    assert content[1] == image  # images stay for a vision model
    history = tool_history(blocks)
    assert openai_violations(policy.apply(history).messages) == []
    # Small text beside an image is left alone.
    small = ToolMessage([{"type": "text", "text": "caption"}, image], tool_call_id="c")
    assert not policy.plan([small]).offloaded


class FailingStore(LangGraphResultStore):
    """Fails on the second write, as a full disk or a dropped connection would."""

    def __init__(self) -> None:
        super().__init__(InMemoryStore())
        self.writes = 0

    def put(self, ref: str, content: str, metadata: Any) -> None:
        self.writes += 1
        if self.writes == 2:
            raise ConnectionError("the store went away")
        super().put(ref, content, metadata)

    async def aput(self, ref: str, content: str, metadata: Any) -> None:
        self.put(ref, content, metadata)


def _two_large_results() -> list[BaseMessage]:
    history = tool_history()
    history[4] = ToolMessage(REPORT[::-1], tool_call_id="call_weather", name="weather", id="t2")
    return history


def test_failed_write_leaves_messages_untouched() -> None:
    history = _two_large_results()
    original = copy.deepcopy(history)
    store = FailingStore()
    policy = OffloadToolResults(store, min_chars=1000)
    with pytest.raises(OffloadError, match="the store went away") as caught:
        policy.apply(history, thread_id="t-fail")
    assert isinstance(caught.value, CompactionError)
    assert caught.value.tool_call_id == "call_weather"
    assert caught.value.thread_id == "t-fail"
    assert REF_PATTERN.fullmatch(caught.value.ref)
    assert "The messages were left unchanged" in str(caught.value)
    assert history == original
    # A retry stores what failed and writes the first result again under the same reference.
    plan = policy.apply(history, thread_id="t-fail")
    assert [store.get(i.ref) for i in plan.offloaded] == [REPORT, REPORT[::-1]]


async def test_failed_async_write_leaves_messages_untouched() -> None:
    history = _two_large_results()
    original = copy.deepcopy(history)
    policy = OffloadToolResults(FailingStore(), min_chars=1000)
    with pytest.raises(OffloadError, match="ConnectionError"):
        await policy.aapply(history)
    assert history == original


def test_plan_is_pure() -> None:
    lg_store = InMemoryStore()
    policy = OffloadToolResults(lg_store, min_chars=1000)
    plan = policy.plan(tool_history(), thread_id="t")
    assert plan.offloaded
    assert lg_store.search(("compacting_supervisor", "tool_results")) == []
    policy.write(plan.offloaded)
    assert policy.store.get(plan.offloaded[0].ref) == REPORT


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_tokens": 10, "min_chars": 10}, "either `min_tokens` or `min_chars`"),
        ({"min_chars": 0}, "`min_chars` must be a positive integer"),
        ({"min_tokens": -5}, "`min_tokens` must be a positive integer"),
        ({"min_tokens": 2.5}, "`min_tokens`"),
        ({"preview_chars": -1}, "`preview_chars` must be an integer of at least 0"),
        ({"min_chars": 500, "preview_chars": 500}, "`preview_chars` .* smaller than `min_chars`"),
        ({"tool_name": "read result"}, "`tool_name` must be 1-64 letters"),
        ({"tool_name": ""}, "`tool_name`"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OffloadToolResults(InMemoryStore(), **kwargs)


def test_policy_accepts_store_forms(tmp_path: Path) -> None:
    assert isinstance(OffloadToolResults(InMemoryStore()).store, LangGraphResultStore)
    assert isinstance(OffloadToolResults(str(tmp_path)).store, DirectoryResultStore)
    assert isinstance(OffloadToolResults(tmp_path).store, DirectoryResultStore)
    with pytest.raises(TypeError, match="`store` must be a DirectoryResultStore"):
        OffloadToolResults(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="looks like a database URL"):
        OffloadToolResults("postgresql://user@db:5432/app")
    with pytest.raises(TypeError, match="`token_counter`"):
        OffloadToolResults(tmp_path, token_counter="cl100k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`messages` must be a list"):
        OffloadToolResults(tmp_path).plan("hello")  # type: ignore[arg-type]
    assert "min_chars=10" in repr(OffloadToolResults(tmp_path, min_chars=10, preview_chars=5))


def test_module_doctests() -> None:
    failures, tried = doctest.testmod(offload_module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
    assert tried >= 15


# ---------------------------------------------------------------------------------- read tool


def _stored(text: str = REPORT) -> tuple[OffloadToolResults, str]:
    policy = OffloadToolResults(InMemoryStore(), min_chars=100, preview_chars=10)
    (item,) = policy.apply(
        [ToolMessage(text, tool_call_id="c", name="fetch")], thread_id="t"
    ).offloaded
    return policy, item.ref


def test_read_tool_slices() -> None:
    policy, ref = _stored()
    reader = policy.read_tool()
    assert reader.name == "read_tool_result"
    assert set(reader.args) == {"ref", "offset", "limit"}
    first = reader.invoke({"ref": ref})
    assert first == (
        f"{REPORT[:4000]}\n[characters 0-4,000 of {len(REPORT):,}; {len(REPORT) - 4000:,} more: "
        f'call read_tool_result(ref="{ref}", offset=4000)]'
    )
    middle = reader.invoke({"ref": ref, "offset": 1234, "limit": 100})
    assert middle.startswith(REPORT[1234:1334] + "\n[characters 1,234-1,334 of")
    last = reader.invoke({"ref": ref, "offset": len(REPORT) - 5, "limit": 100})
    assert (
        last
        == f"{REPORT[-5:]}\n[characters {len(REPORT) - 5:,}-{len(REPORT):,} of {len(REPORT):,}; this is the end.]"
    )
    capped = reader.invoke({"ref": ref, "limit": 10**9})
    assert capped.startswith(REPORT[:20_000] + "\n[characters 0-20,000 of")
    # The model's sloppy copies of the reference are forgiven.
    for sloppy in [f' "{ref}" ', f"ref={ref}", ref.upper(), f"'{ref}'"]:
        assert reader.invoke({"ref": sloppy, "limit": 5}).startswith(REPORT[:5] + "\n[")
    # Paging through it all gives back the text exactly.
    pieces, offset = [], 0
    while True:
        answer = reader.invoke({"ref": ref, "offset": offset, "limit": 7000})
        body, footer = answer.rsplit("\n", 1)
        pieces.append(body)
        if "this is the end" in footer:
            break
        offset = int(footer.rsplit("offset=", 1)[1].rstrip(")]"))
    assert "".join(pieces) == REPORT


def test_read_tool_errors_are_answers() -> None:
    policy, ref = _stored()
    reader = policy.read_tool()
    unknown = make_ref("t", "other", "never stored")
    for bad in [unknown, "../../etc/passwd", "", "x" * 10_000]:
        answer = reader.invoke({"ref": bad})
        assert answer.startswith("Error: no stored tool result has the ref")
        assert len(answer) < 300
    assert "is past the end" in reader.invoke({"ref": ref, "offset": len(REPORT)})
    assert "offset must be 0 or more" in reader.invoke({"ref": ref, "offset": -1})
    assert "limit 1 or more" in reader.invoke({"ref": ref, "limit": 0})

    class Broken(LangGraphResultStore):
        def get(self, ref: str) -> str | None:
            raise ConnectionError("store down")

        async def aget(self, ref: str) -> str | None:
            raise ConnectionError("store down")

    broken = read_tool_result_tool(Broken(InMemoryStore()))
    assert "could not be read (store down)" in broken.invoke({"ref": ref})
    assert "could not be read (store down)" in asyncio.run(broken.ainvoke({"ref": ref}))


async def test_read_tool_async() -> None:
    policy, ref = _stored()
    reader = policy.read_tool(default_limit=50, max_limit=60)
    answer = await reader.ainvoke({"ref": ref, "offset": 10})
    assert answer.startswith(REPORT[10:60] + "\n[characters 10-60 of")
    assert (await reader.ainvoke({"ref": ref, "offset": 0, "limit": 1000})).startswith(
        REPORT[:60] + "\n"
    )
    assert (await reader.ainvoke({"ref": "nope"})).startswith("Error: no stored tool result")


def test_read_tool_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`name`"):
        read_tool_result_tool(tmp_path, name="bad name")
    with pytest.raises(ValueError, match=r"`default_limit` .* must not exceed `max_limit`"):
        read_tool_result_tool(tmp_path, default_limit=10, max_limit=5)
    with pytest.raises(ValueError, match="`max_limit` must be a positive integer"):
        read_tool_result_tool(tmp_path, max_limit=0)
    custom = OffloadToolResults(tmp_path, tool_name="read_stored", min_chars=100, preview_chars=10)
    assert custom.read_tool().name == "read_stored"
    (item,) = custom.apply([ToolMessage("q" * 200, tool_call_id="c")]).offloaded
    assert 'read_stored(ref="' in str(item.replacement.content)


# ---------------------------------------------------------------------------------- in an agent


@tool
def fetch_report(year: int) -> str:
    """Fetch the yearly revenue report."""
    return REPORT


def _reading_model(offset: int = 1000, limit: int = 500) -> ScriptedChatModel:
    """Calls fetch_report, then reads the stored result at ``offset``, then answers."""

    def reply(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage) and last.name == "read_tool_result":
            return AIMessage(f"Read {len(last.text)} characters.")
        refs = [
            r for m in messages if isinstance(m, ToolMessage) for r in REF_PATTERN.findall(m.text)
        ]
        if refs:
            call = {
                "name": "read_tool_result",
                "args": {"ref": refs[-1], "offset": offset, "limit": limit},
                "id": "call_read",
            }
            return AIMessage("", tool_calls=[call])
        return AIMessage(
            "", tool_calls=[{"name": "fetch_report", "args": {"year": 2024}, "id": "call_fetch"}]
        )

    return ScriptedChatModel(responses=[reply])


def _agent(model: ScriptedChatModel, tool_node: ToolNode, checkpointer: Any = None) -> Any:
    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def acall(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(call, afunc=acall))
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _expected_slice(ref: str, offset: int = 1000, limit: int = 500) -> str:
    end = offset + limit
    return (
        f"{REPORT[offset:end]}\n[characters {offset:,}-{end:,} of {len(REPORT):,}; "
        f'{len(REPORT) - end:,} more: call read_tool_result(ref="{ref}", offset={end})]'
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_agent_reads_an_offloaded_result_back(mode: str, tmp_path: Path) -> None:
    """A history offloaded between runs: the agent finds the reference and reads the slice."""
    policy = OffloadToolResults(DirectoryResultStore(tmp_path), min_chars=1000)
    history = tool_history()
    plan = (
        policy.apply(history, thread_id="t")
        if mode == "sync"
        else await policy.aapply(history, thread_id="t")
    )
    model = _reading_model()
    agent = _agent(model, ToolNode([policy.read_tool()]))
    inputs = {"messages": plan.messages}
    result = agent.invoke(inputs) if mode == "sync" else await agent.ainvoke(inputs)
    assert len(model.calls) == 2
    seen = model.calls[1][-1]
    assert result["messages"][-1].content == f"Read {len(seen.text)} characters."
    assert isinstance(seen, ToolMessage)
    assert seen.tool_call_id == "call_read"
    assert seen.content == _expected_slice(plan.offloaded[0].ref)
    assert REPORT[:1000] not in model.calls[0][3].text  # the model never saw it whole


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_node_offloads_as_results_arrive(mode: str) -> None:
    """wrap_tool_call: the model sees the reference in the very run the tool ran."""
    lg_store = InMemoryStore()
    policy = OffloadToolResults(lg_store, min_tokens=2000)
    model = _reading_model(offset=0, limit=300)
    node = ToolNode(
        [fetch_report, policy.read_tool()],
        wrap_tool_call=policy.wrap_tool_call,
        awrap_tool_call=policy.awrap_tool_call,
    )
    agent = _agent(model, node, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"thread-{mode}"}}
    inputs = {"messages": [HumanMessage("Fetch the report.")]}
    result = agent.invoke(inputs, config) if mode == "sync" else await agent.ainvoke(inputs, config)
    fetched, read = result["messages"][2], result["messages"][4]
    assert fetched.name == "fetch_report"
    ref = offloaded_ref(fetched)
    assert ref is not None
    assert fetched.text.startswith(f"{HEADER_PREFIX}{ref}, ")
    assert model.calls[1][-1].text == fetched.text
    assert read.name == "read_tool_result"
    assert offloaded_ref(read) is None  # the read tool's own answers are never offloaded
    assert read.content.startswith(REPORT[:300] + "\n[characters 0-300 of")
    stored = agent.get_state(config).values["messages"][2]  # read back from the checkpoint
    assert offloaded_ref(stored) == ref
    assert stored.text == fetched.text
    (item,) = lg_store.search(("compacting_supervisor", "tool_results"))
    assert item.value["thread_id"] == f"thread-{mode}"
    assert item.value["content"] == REPORT
    assert openai_violations(result["messages"]) == []


async def test_tool_node_returns_the_result_whole_when_the_store_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FailingStore()
    policy = OffloadToolResults(store, min_chars=1000)
    node = ToolNode(
        [fetch_report], wrap_tool_call=policy.wrap_tool_call, awrap_tool_call=policy.awrap_tool_call
    )

    def reply(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage("done")
        return AIMessage("", tool_calls=[{"name": "fetch_report", "args": {"year": 1}, "id": "c1"}])

    agent = _agent(ScriptedChatModel(responses=[reply]), node)
    inputs = {"messages": [HumanMessage("Fetch it.")]}
    store.writes = 1  # the next write fails
    assert agent.invoke(inputs)["messages"][2].content == REPORT
    assert "The tool result is returned whole" in caplog.text
    store.writes = 1
    assert (await agent.ainvoke(inputs))["messages"][2].content == REPORT


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_create_agent_middleware(mode: str, tmp_path: Path) -> None:
    from langchain.agents import create_agent

    policy = OffloadToolResults(tmp_path, min_chars=5000, preview_chars=300)
    model = _reading_model(offset=300, limit=200)
    agent = create_agent(
        model, [fetch_report], middleware=[policy.middleware()], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "mw"}}
    inputs = {"messages": [HumanMessage("Fetch the report.")]}
    result = agent.invoke(inputs, config) if mode == "sync" else await agent.ainvoke(inputs, config)
    fetched = result["messages"][2]
    ref = offloaded_ref(fetched)
    assert ref is not None
    assert (tmp_path / f"{ref}.txt").read_text() == REPORT
    assert REPORT[:300] in fetched.text
    assert result["messages"][4].content == _expected_slice(ref, offset=300, limit=200)
    assert result["messages"][-1].content == f"Read {len(result['messages'][4].text)} characters."


# ---------------------------------------------------------------- at each compaction


def report_agent(checkpointer: Any) -> Any:
    """Each turn calls ``fetch_report`` (a large result), then answers."""

    @tool
    def fetch_report(day: int) -> str:
        """Fetch the day's report."""
        return f"Report for day {day}. " + "row,value\n" * 400

    def reply(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], HumanMessage):
            day = sum(isinstance(m, HumanMessage) for m in messages)
            call = {"name": "fetch_report", "args": {"day": day}, "id": f"call_{uuid.uuid4().hex}"}
            return AIMessage("", tool_calls=[call])
        return AIMessage("The report is in; totals look normal.")

    model = ScriptedChatModel(responses=[reply])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_node("tools", ToolNode([fetch_report]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def test_history_manager_offloads_at_each_compaction(tmp_path: Path) -> None:
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    store = DirectoryResultStore(tmp_path / "results")
    policy = OffloadToolResults(store, min_tokens=500)
    history = HistoryManager(model=None, offload=policy)
    supervisor = CompactingSupervisor(report_agent(InMemorySaver()), history, token_limit=10**6)
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(4):
        supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    before = supervisor.get_state(config).values["messages"]
    originals = {m.tool_call_id: m.text for m in before if isinstance(m, ToolMessage)}

    result = supervisor.compact(config)
    assert result is not None and result.succeeded
    after = supervisor.get_state(config).values["messages"]
    kept_results = [m for m in after if isinstance(m, ToolMessage)]
    assert kept_results
    for message in kept_results:  # the kept results now hold a reference and a preview
        ref = offloaded_ref(message)
        assert ref is not None
        assert store.get(ref) == originals[message.tool_call_id]  # byte for byte
        assert message.id in {m.id for m in before}
    # The evicted results are stored too, and the summary names every one of them.
    refs = set(REF_PATTERN.findall(after[0].text))
    assert len(refs) == len(originals) - len(kept_results)
    assert all(store.get(ref) in originals.values() for ref in refs)
    assert openai_violations(after) == []
    assert result.tokens_after < result.tokens_before / 2


def test_a_failing_store_leaves_the_history_unchanged(tmp_path: Path) -> None:
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    class BrokenStore(DirectoryResultStore):
        def put(self, ref: str, content: str, metadata: Any) -> None:
            raise OSError("disk full")

    policy = OffloadToolResults(BrokenStore(tmp_path), min_tokens=500)
    supervisor = CompactingSupervisor(
        report_agent(InMemorySaver()), HistoryManager(offload=policy), token_limit=600
    )
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(3):
        out = supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
        assert out["messages"][-1].text == "The report is in; totals look normal."
    result = supervisor.last_compaction("reports")
    assert result.status == "failed"
    assert "disk full" in result.error
    assert supervisor.get_state(config).values["messages"] == out["messages"]
    with pytest.raises(OffloadError, match="disk full"):
        supervisor.compact(config)


def test_every_stored_reference_stays_in_the_thread_across_compactions(tmp_path: Path) -> None:
    """Found in review: an LLM summary that drops references lost the earlier ones."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    store = DirectoryResultStore(tmp_path / "results")
    forgetful = ScriptedChatModel(responses=["The user fetched daily reports; all normal."])
    history = HistoryManager(
        model=forgetful, offload=OffloadToolResults(store, min_tokens=500), retry_backoff=0
    )
    supervisor = CompactingSupervisor(report_agent(InMemorySaver()), history, token_limit=10**6)
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(3):
        for _ in range(2):
            supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
        supervisor.compact(config)
    messages = supervisor.get_state(config).values["messages"]
    visible = "\n".join(m.text for m in messages)
    issued = set(REF_PATTERN.findall(visible)) | {
        ref for m in messages if (ref := offloaded_ref(m)) is not None
    }
    stored = {path.stem for path in (tmp_path / "results").glob("tr_*.txt")}
    assert len(stored) == 6
    assert stored <= issued  # every stored result can still be read back


def _fetch_round(round_: int, fetches: int) -> list[BaseMessage]:
    """``fetches`` turns, each a call of ``fetch`` answered by a 500-character report."""
    messages: list[BaseMessage] = []
    for i in range(fetches):
        call = {"name": "fetch", "args": {"n": i}, "id": f"c{round_}_{i}"}
        messages += [
            HumanMessage(f"Fetch report {round_}.{i}."),
            AIMessage("", tool_calls=[call]),
            ToolMessage(f"report {round_}.{i} " + "x" * 500, tool_call_id=call["id"]),
            AIMessage("Done."),
        ]
    return messages


def test_listed_references_stay_within_the_summary_cap(tmp_path: Path) -> None:
    """Found in review: references appended after the cap made the summary grow forever."""
    from compacting_supervisor import HistoryManager, TokenCounter

    manager = HistoryManager(
        model=ScriptedChatModel(responses=["## Goal\n- research the reports"]),
        max_summary_tokens=200,
        offload=OffloadToolResults(DirectoryResultStore(tmp_path), min_chars=200, preview_chars=10),
        retry_backoff=0,
    )
    messages: list[BaseMessage] = []
    for round_ in range(12):
        messages += _fetch_round(round_, 4)
        compaction = manager.compact_messages(messages, compaction_ratio=0.9)
        assert compaction is not None
        assert TokenCounter().count_text(compaction.summary) <= 200
        messages = compaction.messages
    listed = REF_PATTERN.findall(compaction.summary)
    assert 5 <= len(listed) <= 20  # the newest ones, in half the summary's room


def test_the_summariser_is_not_sent_the_listed_references(tmp_path: Path) -> None:
    """The references listed after a summary are listed again by the next compaction, under
    the policy's own read tool: the summariser neither pays for them nor has to copy them."""
    from compacting_supervisor import HistoryManager

    summariser = ScriptedChatModel(responses=["## Goal\n- research the reports"])
    policy = OffloadToolResults(
        DirectoryResultStore(tmp_path), min_chars=200, preview_chars=10, tool_name="fetch_stored"
    )
    manager = HistoryManager(model=summariser, offload=policy, retry_backoff=0)
    messages: list[BaseMessage] = []
    stored: list[str] = []
    for round_ in range(3):
        messages += _fetch_round(round_, 3)
        compaction = manager.compact_messages(messages, compaction_ratio=0.9)
        assert compaction is not None
        stored += [r for r in REF_PATTERN.findall(compaction.summary) if r not in stored]
        messages = compaction.messages
        head, _, note = compaction.summary.rpartition("\n\n")
        assert head == "## Goal\n- research the reports"
        assert note == f"Stored tool results (read them with fetch_stored): {', '.join(stored)}."
    kept = [ref for m in messages if (ref := offloaded_ref(m)) is not None]
    assert len(stored) == 8 and len(kept) == 1  # the newest turn is kept, its result a stub
    assert len({*stored, *kept}) == 9  # each result named once: listed, or kept
    sent = ["\n".join(m.text for m in call) for call in summariser.calls]
    assert len(sent) == 3
    assert all("research the reports" in text for text in sent[1:])  # the summary itself, yes
    assert not any(REF_PATTERN.search(text) for text in sent)  # the list of references, no
    previous = manager.compact_messages([*messages, *_fetch_round(9, 1)], compaction_ratio=0.9)
    assert previous is not None and previous.previous_summary == compaction.summary  # whole


def test_references_dropped_from_the_list_still_reach_the_summariser(tmp_path: Path) -> None:
    """Found in review: a reference pushed out of the list must still be sent, so a summariser
    that keeps every id it reads keeps it named (32 results, at most 20 listed)."""
    from compacting_supervisor import HistoryManager

    def faithful(messages: list[BaseMessage]) -> str:
        refs = dict.fromkeys(REF_PATTERN.findall("\n".join(m.text for m in messages)))
        return "## Goal\n- read the daily reports\n## Artifacts (verbatim)\n" + "\n".join(
            f"- {ref}" for ref in refs
        )

    summariser = ScriptedChatModel(responses=[faithful])
    policy = OffloadToolResults(DirectoryResultStore(tmp_path), min_chars=200, preview_chars=0)
    manager = HistoryManager(model=summariser, offload=policy, retry_backoff=0)
    messages: list[BaseMessage] = []
    for round_ in range(8):
        messages += _fetch_round(round_, 4)
        compaction = manager.compact_messages(messages, compaction_ratio=0.9)
        assert compaction is not None
        messages = compaction.messages
    named = set(REF_PATTERN.findall("\n".join(m.text for m in messages)))
    assert len(named) == 32 == len(list(tmp_path.glob("tr_*.txt")))
    assert len(REF_PATTERN.findall(compaction.summary.rpartition("\n\n")[2])) <= 20


def test_listed_references_name_the_read_tool_of_their_own_store(tmp_path: Path) -> None:
    """Found in review: results stored by another policy (a supervisor's) were listed under
    the manager's read tool, which cannot read them."""
    from compacting_supervisor import HistoryManager

    theirs = OffloadToolResults(DirectoryResultStore(tmp_path / "b"), min_chars=200)
    ours = OffloadToolResults(DirectoryResultStore(tmp_path / "a"), tool_name="read_a")
    manager = HistoryManager(
        model=ScriptedChatModel(responses=["## Goal\n- reports"]), offload=ours
    )
    plan = theirs.apply(_fetch_round(0, 3), thread_id="t")
    compaction = manager.compact_messages(plan.messages, compaction_ratio=0.9)
    assert compaction is not None
    evicted = [item.ref for item in plan.offloaded][:2]  # the newest turn is kept
    assert compaction.summary.endswith(
        f"\n\nStored tool results (read them with read_tool_result): {', '.join(evicted)}."
    )


def test_only_an_exact_references_note_is_taken_off_a_summary() -> None:
    from compacting_supervisor._refs_note import for_summariser, refs_note, split_note

    a, b = "tr_" + "a" * 20, "tr_" + "b" * 20
    note = refs_note({a: "read_x", b: "read_y"})
    assert note == (
        f"Stored tool results (read them with read_x): {a}. "
        f"Stored tool results (read them with read_y): {b}."
    )
    assert split_note(f"## Goal\n- g\n\n{note}") == ("## Goal\n- g", {a: "read_x", b: "read_y"})
    assert for_summariser(f"## Goal\n- g\n\n{note}", {a: "read_x"}) == (
        f"## Goal\n- g\n\nStored tool results (read them with read_y): {b}."
    )
    for kept in (  # text after a note, a note alone, a note-like line with more in it
        f"## Goal\n- g\n\n{note}\n## Open tasks\n- send it to Ana",
        note,
        f"## Goal\n- g\n\n{note} Ask Ana first.",
    ):
        assert split_note(kept) == (kept, {})
        assert for_summariser(kept, {a: "read_x", b: "read_y"}) == kept


# ------------------------------------------------------------------ after every run


def _answered_supervisor(checkpointer: Any, store: Any, **settings: Any) -> Any:
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    policy = OffloadToolResults(store, min_tokens=500, preview_chars=40)
    settings.setdefault("token_limit", 10**6)
    return CompactingSupervisor(
        report_agent(checkpointer), HistoryManager(), offload=policy, **settings
    )


def _check_answered_offload(
    before: list[BaseMessage], after: list[BaseMessage], store: Any
) -> None:
    """Every answered result is a reference to its exact text; nothing else changed."""
    assert [m.id for m in after] == [m.id for m in before]
    assert isinstance(after[-1], AIMessage)
    for old, new in zip(before, after, strict=True):
        if isinstance(old, ToolMessage) and offloaded_ref(old) is None:
            ref = offloaded_ref(new)
            assert ref is not None, "an answered result stayed whole"
            assert store.get(ref) == old.text  # byte for byte
            assert new.tool_call_id == old.tool_call_id and new.name == old.name
            assert new.text.startswith(HEADER_PREFIX) and old.text[:40] in new.text
            info = new.response_metadata["compacting_supervisor"]["offloaded"]
            assert info["answered_by"] == after[-1].id
        else:
            assert new == old
    assert openai_violations(after) == []


def test_answered_results_are_offloaded_after_every_run(saver: Any, tmp_path: Path) -> None:
    store = DirectoryResultStore(tmp_path / "results")
    supervisor = _answered_supervisor(saver, store)
    config = {"configurable": {"thread_id": "reports"}}
    for turn in range(3):
        out = supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
        # What the run returned is what the graph wrote: whole results, answered.
        whole = out["messages"]
        assert offloaded_ref(whole[-2]) is None and "row,value" * 3 not in whole[-2].text
        after = supervisor.get_state(config).values["messages"]
        _check_answered_offload(whole, after, store)
        assert len(list(store.path.glob("tr_*.txt"))) == turn + 1
    # The run's own checkpoint still holds the whole result, one step back.
    history = list(supervisor.get_state_history(config))
    assert history[0].metadata["source"] == "update"
    assert history[1].values["messages"] == whole
    # The archive keeps every original next to its reference.
    archived = [m.text for m in supervisor.transcript(config).messages]
    assert all(m.text in archived for m in whole if isinstance(m, ToolMessage))


async def test_answered_results_are_offloaded_after_every_run_async(
    asaver: Any, tmp_path: Path
) -> None:
    store = DirectoryResultStore(tmp_path / "results")
    supervisor = _answered_supervisor(asaver, store)
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(2):
        out = await supervisor.ainvoke({"messages": [HumanMessage("Fetch the report.")]}, config)
        after = (await supervisor.aget_state(config)).values["messages"]
        _check_answered_offload(out["messages"], after, store)
    events = [
        event async for event in supervisor.astream({"messages": [HumanMessage("Again.")]}, config)
    ]
    assert events[-1]["type"] == "end"
    after = (await supervisor.aget_state(config)).values["messages"]
    assert sum(offloaded_ref(m) is not None for m in after) == 3


def test_offloading_answered_results_delays_compaction(tmp_path: Path) -> None:
    """The point of it: turns grow by previews only, so the thread stays small for longer."""
    results = {}
    for offload in (False, True):
        supervisor = _answered_supervisor(
            InMemorySaver(), DirectoryResultStore(tmp_path / str(offload)), token_limit=2_000
        )
        if not offload:
            supervisor.offload = None
        config = {"configurable": {"thread_id": "reports"}}
        compactions = 0
        for _ in range(8):
            supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
            result = supervisor.last_compaction("reports")
            compactions += result is not None and result.succeeded
            supervisor._results.clear()
        messages = supervisor.get_state(config).values["messages"]
        results[offload] = (compactions, supervisor.context_tokens(messages))
    assert results[False][0] >= 3  # every turn adds ~800 tokens of report
    assert results[True][0] == 0
    assert results[True][1] < 2_000


def test_an_unanswered_result_is_not_offloaded(tmp_path: Path) -> None:
    """A run stopped after the tools (an interrupt) keeps the result the model has not read."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    graph = report_agent(InMemorySaver())
    paused = graph.copy(update={"interrupt_after_nodes": ["tools"]})
    store = DirectoryResultStore(tmp_path)
    policy = OffloadToolResults(store, min_tokens=500)
    supervisor = CompactingSupervisor(paused, HistoryManager(), offload=policy)
    config = {"configurable": {"thread_id": "paused"}}
    supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    messages = supervisor.get_state(config).values["messages"]
    assert isinstance(messages[-1], ToolMessage) and offloaded_ref(messages[-1]) is None
    supervisor.invoke(None, config)  # resume: the model answers, then the result goes
    messages = supervisor.get_state(config).values["messages"]
    assert offloaded_ref(messages[-2]) is not None
    assert not list(supervisor.get_state(config).next)


def test_a_failing_store_after_a_run_keeps_the_results_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(DirectoryResultStore):
        def put(self, ref: str, content: str, metadata: Any) -> None:
            raise OSError("disk full")

    supervisor = _answered_supervisor(InMemorySaver(), BrokenStore(tmp_path))
    config = {"configurable": {"thread_id": "reports"}}
    with caplog.at_level("WARNING", logger="compacting_supervisor"):
        out = supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    assert out["messages"][-1].text == "The report is in; totals look normal."
    assert supervisor.get_state(config).values["messages"] == out["messages"]
    assert "could not offload" in caplog.text and "disk full" in caplog.text


def test_usage_read_before_an_offload_is_not_trusted(tmp_path: Path) -> None:
    """The answer's usage counted the whole results; after the offload the thread is smaller."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    graph = report_agent(InMemorySaver())
    store = DirectoryResultStore(tmp_path)
    supervisor = CompactingSupervisor(
        graph, HistoryManager(), offload=OffloadToolResults(store, min_tokens=500)
    )
    config = {"configurable": {"thread_id": "usage"}}
    supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    messages = supervisor.get_state(config).values["messages"]
    counter = supervisor.history_manager.token_counter
    exact = counter.count(messages)
    whole = counter.count(list(graph.get_state_history(config))[1].values["messages"])
    usage = {"input_tokens": whole - 20, "output_tokens": 20, "total_tokens": whole}
    stale = [*messages[:-1], messages[-1].model_copy(update={"usage_metadata": usage})]
    assert supervisor.context_tokens(stale) == exact
    # A later answer's usage is trusted again: it read the references.
    later = AIMessage("ok", id="later", usage_metadata={**usage, "input_tokens": exact + 7})
    assert supervisor.context_tokens([*stale, later]) == exact + 7 + 20


def _usage_reporting_report_agent(checkpointer: Any) -> Any:
    """`report_agent` fetching a report every other turn, whose model reports usage as a
    provider does (the exact input, plus 5)."""
    counter = TokenCounter()

    @tool
    def fetch_report(day: int) -> str:
        """Fetch the day's report."""
        return f"Report for day {day}. " + "row,value\n" * 400

    def reply(messages: list[BaseMessage]) -> AIMessage:
        day = sum(isinstance(m, HumanMessage) for m in messages)
        if isinstance(messages[-1], HumanMessage) and day % 2:  # a report every other day
            call = {"name": "fetch_report", "args": {"day": day}, "id": f"call_{uuid.uuid4().hex}"}
            answer = AIMessage("", tool_calls=[call])
        else:
            answer = AIMessage("The report is in; totals look normal.")
        read = counter.count(messages) + 5
        answer.usage_metadata = {"input_tokens": read, "output_tokens": 9, "total_tokens": read + 9}
        return answer

    def route(state: MessagesState) -> str:  # "Just note it." appends the message alone
        return END if state["messages"][-1].text == "Just note it." else "agent"

    model = ScriptedChatModel(responses=[reply], cycle=True)
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_node("tools", ToolNode([fetch_report]))
    builder.add_conditional_edges(START, route, ["agent", END])
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


@pytest.mark.parametrize("offloading", [True, False], ids=["offload", "no-offload"])
def test_the_trigger_sees_the_usage_figure_a_full_look_gives_after_every_run(
    offloading: bool, tmp_path: Path
) -> None:
    """After a run that only appended, the wrapper looks for results offloaded after the
    newest answer among the appended messages only (an offload rewrites the thread): the
    trigger is shown exactly what looking at the whole thread gives, with a model that
    reports usage, whether results are offloaded after each answer or not."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    from .helpers import RecordingTrigger

    recorder = RecordingTrigger()
    offload = OffloadToolResults(DirectoryResultStore(tmp_path), min_tokens=500)
    supervisor = CompactingSupervisor(
        _usage_reporting_report_agent(InMemorySaver()),
        HistoryManager(),
        trigger=recorder,
        offload=offload if offloading else None,
    )
    config = {"configurable": {"thread_id": "usage-after-runs"}}
    counter = supervisor.history_manager.token_counter
    from_usage = 0
    # Two runs in a row that append no answer: on the second, the run only appended, and
    # the newest answer is older than what it appended.
    asks = ["Fetch today's report.", "Just note it.", "Just note it."] * 2
    asks += ["Fetch today's report."] * 4
    for ask in asks:  # a run that only notes appends no answer: the newest is an older one
        supervisor.invoke({"messages": [HumanMessage(ask)]}, config)
        messages, shown = recorder.seen[-1]
        assert shown == supervisor.context_tokens(messages)
        from_usage += shown != counter.count(messages)
    # The answers' usage was read (not only counted), except where an offload followed them:
    # on the turns without a report, it follows the results offloaded in earlier turns.
    assert from_usage >= (2 if offloading else 6)


def test_offload_setting_is_checked() -> None:
    from compacting_supervisor import CompactingSupervisor

    with pytest.raises(TypeError, match="`offload` must be an OffloadToolResults"):
        CompactingSupervisor(report_agent(InMemorySaver()), offload="results/")  # type: ignore[arg-type]


def _summarising_supervisor(tmp_path: Path) -> tuple[Any, DirectoryResultStore, Any]:
    """`report_agent` with answered results offloaded and a recording LLM summariser."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    store = DirectoryResultStore(tmp_path / "results")
    summariser = ScriptedChatModel(responses=["## Goal\n- daily reports"], cycle=True)
    supervisor = CompactingSupervisor(
        report_agent(InMemorySaver()),
        HistoryManager(model=summariser, retry_backoff=0),
        token_limit=10**6,
        offload=OffloadToolResults(store, min_tokens=500, preview_chars=40),
    )
    return supervisor, store, summariser


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_compaction_summarises_stored_results_whole(mode: str, tmp_path: Path) -> None:
    """The summariser reads what the agent read, not the preview left in the thread."""
    supervisor, store, summariser = _summarising_supervisor(tmp_path)
    assert supervisor.history_manager.offload is supervisor.offload
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(3):
        if mode == "sync":
            supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
        else:
            await supervisor.ainvoke({"messages": [HumanMessage("Fetch the report.")]}, config)
    stubs = [m for m in supervisor.get_state(config).values["messages"] if offloaded_ref(m)]
    assert len(stubs) == 3 and all("row,value\n" * 5 not in m.text for m in stubs)
    result = supervisor.compact(config) if mode == "sync" else await supervisor.acompact(config)
    assert result is not None and result.succeeded
    prompt = "\n".join(m.text for m in summariser.calls[-1]).replace("\\n", "\n")
    after = supervisor.get_state(config).values["messages"]
    evicted = [m for m in stubs if m.id not in {a.id for a in after}]
    assert evicted and len(evicted) < len(stubs)
    for message in evicted:  # whole, in what the summariser read; named in the summary
        ref = offloaded_ref(message)
        assert ref is not None and ref in after[0].text
        head, _, rest = store.get(ref).partition("\n")
        assert head in prompt and rest[-200:] in prompt


def test_a_result_missing_from_the_store_is_summarised_from_its_preview(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, _, summariser = _summarising_supervisor(tmp_path)
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(3):
        supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    for path in (tmp_path / "results").glob("tr_*.txt"):
        path.unlink()
    with caplog.at_level("WARNING", logger="compacting_supervisor"):
        result = supervisor.compact(config)
    assert result is not None and result.succeeded
    prompt = "\n".join(m.text for m in summariser.calls[-1])
    assert HEADER_PREFIX in prompt.replace("\\n", "\n") or "tool result stored" in prompt
    assert "were not found" in caplog.text and "the summariser reads their previews" in caplog.text


def test_plan_answered_stops_at_the_newest_answer() -> None:
    policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=10)
    history = tool_history()  # ends with a question after the answer a2
    plan = policy.plan_answered(history, thread_id="t")
    assert [item.index for item in plan.offloaded] == [3]
    assert plan.messages[4:] == history[4:]
    info = plan.messages[3].response_metadata["compacting_supervisor"]["offloaded"]
    assert info["answered_by"] == "a2"
    unanswered = history[:4]  # the run stopped at the result: the model has not read it
    assert policy.plan_answered(unanswered, thread_id="t").offloaded == []
    assert policy.plan_answered([], thread_id="t").messages == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_history_manager_offloads_answered_results_on_its_own(
    mode: str, tmp_path: Path
) -> None:
    from compacting_supervisor import HistoryManager

    graph = report_agent(InMemorySaver())
    config = {"configurable": {"thread_id": "own"}}
    graph.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    before = graph.get_state(config).values["messages"]
    store = DirectoryResultStore(tmp_path)
    policy = OffloadToolResults(store, min_tokens=500)
    manager = HistoryManager()
    run = manager.offload_answered if mode == "sync" else manager.aoffload_answered
    first = run(config, policy, graph=graph)
    first = await first if mode == "async" else first
    assert first == graph.get_state(config).values["messages"]
    _check_answered_offload(before, first, store)
    checkpoints = len(list(graph.get_state_history(config)))
    again = run(config, policy, graph=graph)  # nothing left to offload: nothing written
    assert (await again if mode == "async" else again) is None
    assert len(list(graph.get_state_history(config))) == checkpoints


def test_a_compaction_keeps_an_unanswered_result_whole(tmp_path: Path) -> None:
    """Found in review: a compaction offloaded a return_direct result the model never read."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    @tool(return_direct=True)
    def fetch_report(day: int) -> str:
        """Fetch the day's report."""
        return f"Report for day {day}. " + "row,value\n" * 400

    def reply(messages: list[BaseMessage]) -> AIMessage:
        call = {"name": "fetch_report", "args": {"day": len(messages)}, "id": uuid.uuid4().hex}
        return AIMessage("", tool_calls=[call])

    model = ScriptedChatModel(responses=[reply], cycle=True)
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_node("tools", ToolNode([fetch_report]))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    graph = builder.compile(checkpointer=InMemorySaver())
    policy = OffloadToolResults(DirectoryResultStore(tmp_path), min_tokens=500, preview_chars=40)
    supervisor = CompactingSupervisor(graph, HistoryManager(), offload=policy, token_limit=1500)
    config = {"configurable": {"thread_id": "direct"}}
    compacted = 0
    for turn in range(4):
        supervisor.invoke({"messages": [HumanMessage(f"Report {turn}.")]}, config)
        compacted += supervisor.last_compaction("direct") is not None
        messages = supervisor.get_state(config).values["messages"]
        assert isinstance(messages[-1], ToolMessage) and offloaded_ref(messages[-1]) is None
        assert all(offloaded_ref(m) for m in messages[:-1] if isinstance(m, ToolMessage))
    assert compacted


def test_results_are_read_back_from_the_store_that_holds_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in review: a manager with a policy of its own read back from its store only."""
    from compacting_supervisor import CompactingSupervisor, HistoryManager

    summariser = ScriptedChatModel(responses=["## Goal\n- daily reports"], cycle=True)
    own = OffloadToolResults(DirectoryResultStore(tmp_path / "own"), min_tokens=4000)
    manager = HistoryManager(model=summariser, retry_backoff=0, offload=own)
    supervisor = CompactingSupervisor(
        report_agent(InMemorySaver()),
        manager,
        token_limit=10**6,
        offload=OffloadToolResults(
            DirectoryResultStore(tmp_path / "runs"), min_tokens=500, preview_chars=40
        ),
    )
    assert manager.offload is own
    config = {"configurable": {"thread_id": "reports"}}
    for _ in range(3):
        supervisor.invoke({"messages": [HumanMessage("Fetch today's report.")]}, config)
    with caplog.at_level("WARNING", logger="compacting_supervisor"):
        assert supervisor.compact(config) is not None
    prompt = "\n".join(m.text for m in summariser.calls[-1]).replace("\\n", "\n")
    assert "row,value\n" * 20 in prompt
    assert "were not found" not in caplog.text
