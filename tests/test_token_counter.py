"""Point 7: exact token counts with tiktoken, cached per message, working offline."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import tiktoken.load
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_openai import ChatOpenAI

from compacting_supervisor import TokenCounter, count_tokens
from compacting_supervisor import token_counter as token_counter_module

MESSAGES = [
    SystemMessage("You are an HR assistant. Be brief."),
    HumanMessage("Show me all candidates, please."),
    AIMessage(
        "",
        name="supervisor",
        tool_calls=[{"name": "transfer_to_candidates_agent", "args": {}, "id": "call_1"}],
    ),
    ToolMessage(
        "Successfully transferred to candidates_agent",
        tool_call_id="call_1",
        name="transfer_to_candidates_agent",
    ),
    AIMessage(
        "Let me look.",
        name="candidates_agent",
        tool_calls=[
            {"name": "list_candidates", "args": {"role": "engineer", "limit": 5}, "id": "c2"},
            {"name": "read_cv", "args": {"name": "Zoë Ångström"}, "id": "c3"},
        ],
    ),
    ToolMessage('[{"name": "Alice", "years": 7}, {"name": "Bob", "years": 3}]', tool_call_id="c2"),
    ToolMessage("Zoë: 10 years of Rust, speaks 日本語.", tool_call_id="c3"),
    AIMessage("Alice (7 years) and Bob (3 years); Zoë knows Rust.", name="candidates_agent"),
    HumanMessage([{"type": "text", "text": "Tell me about Alice."}, "and Bob"]),
]


def test_hello_costs_eight_tokens() -> None:
    # 3 per message + "user" (1) + "Hello" (1) + 3 reply priming.
    assert count_tokens([HumanMessage("Hello")]) == 8


def test_empty_list_costs_nothing() -> None:
    assert count_tokens([]) == 0


@pytest.mark.parametrize("i", range(len(MESSAGES)))
def test_each_message_matches_langchain_openai(i: int) -> None:
    reference = ChatOpenAI(model="gpt-4", api_key="unused")
    message = MESSAGES[i]
    assert count_tokens([message]) == reference.get_num_tokens_from_messages([message])


def test_whole_history_matches_langchain_openai() -> None:
    reference = ChatOpenAI(model="gpt-4", api_key="unused")
    expected = reference.get_num_tokens_from_messages(MESSAGES)
    assert count_tokens(MESSAGES) == expected
    assert count_tokens(MESSAGES, model="gpt-4") == expected
    assert count_tokens(MESSAGES, encoding="cl100k_base") == expected


def test_tool_calls_and_names_are_counted() -> None:
    plain = AIMessage("Let me look.")
    named = AIMessage("Let me look.", name="candidates_agent")
    calling = AIMessage(
        "Let me look.", tool_calls=[{"name": "read_cv", "args": {"n": 1}, "id": "x"}]
    )
    assert count_tokens([named]) > count_tokens([plain])
    assert count_tokens([calling]) > count_tokens([plain])


class _CountingEncoding:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.calls = 0

    def encode(self, text: str, **kwargs: object) -> list[int]:
        self.calls += 1
        return self.inner.encode(text, **kwargs)  # type: ignore[attr-defined, no-any-return]


def _spy(counter: TokenCounter) -> _CountingEncoding:
    spy = _CountingEncoding(counter._ensure_encoding())
    counter._encoding = spy
    return spy


def test_a_turn_costs_only_its_new_messages() -> None:
    counter = TokenCounter()
    spy = _spy(counter)
    thread = [HumanMessage(f"message {i}", id=f"m{i}") for i in range(1000)]
    full = counter.count(thread)
    first_pass = spy.calls
    assert first_pass >= 1000
    thread += [HumanMessage("a new question", id="new1"), AIMessage("an answer", id="new2")]
    assert counter.count(thread) == full + counter.count_message(
        thread[-2]
    ) + counter.count_message(thread[-1])
    # Only the two new messages' contents were encoded, and the assistant role (the first
    # seen; each role is encoded once), none of the 1,000 old messages.
    assert spy.calls - first_pass == 3


def test_edited_message_with_the_same_id_is_recounted() -> None:
    counter = TokenCounter()
    short = counter.count([HumanMessage("hi", id="same")])
    longer = counter.count([HumanMessage("hi there, a much longer message now", id="same")])
    assert longer > short


def test_messages_rebuilt_from_a_checkpoint_hit_the_cache() -> None:
    counter = TokenCounter()
    counter.count([HumanMessage("hello world", id="a")])
    spy = _spy(counter)
    counter.count([HumanMessage("hello world", id="a")])  # a new object, same message
    assert spy.calls == 0


def test_cl100k_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> bytes:
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent-cache-dir")
    monkeypatch.setattr(token_counter_module, "_encodings", {})
    counter = TokenCounter()
    assert counter.exact
    assert counter.count([HumanMessage("Hello")]) == 8


def test_unavailable_encoding_falls_back_to_cl100k_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_network(*args: object, **kwargs: object) -> bytes:
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(token_counter_module, "_encodings", {})
    with caplog.at_level(logging.WARNING, logger="compacting_supervisor.token_counter"):
        counter = TokenCounter(model="gpt-4o")
        assert counter.encoding_name == "o200k_base"
        assert counter.count(MESSAGES) == count_tokens(MESSAGES)
    assert not counter.exact
    assert "o200k_base" in caplog.text
    assert "TIKTOKEN_CACHE_DIR" in caplog.text


def test_no_encoding_at_all_estimates_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tiktoken

    def broken(name: str) -> object:
        raise ConnectionError("nothing loads")

    monkeypatch.setattr(tiktoken, "get_encoding", broken)
    monkeypatch.setattr(token_counter_module, "_encodings", {})
    with caplog.at_level(logging.WARNING):
        counter = TokenCounter()
        tokens = counter.count([HumanMessage("x" * 400)])
    assert not counter.exact
    assert 100 <= tokens <= 120
    assert "estimating 4 characters per token" in caplog.text


def test_model_names_pick_their_encoding() -> None:
    assert TokenCounter(model="gpt-4").encoding_name == "cl100k_base"
    assert TokenCounter(model="openai:gpt-4o-mini").encoding_name == "o200k_base"
    assert TokenCounter().encoding_name == "cl100k_base"


def test_bad_model_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="`model`"):
        TokenCounter(model="")


def test_recounting_a_grown_thread_reuses_the_shared_prefix_and_stays_exact() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    counter = TokenCounter()
    reference = TokenCounter()  # a fresh counter has nothing remembered
    thread = []
    for i in range(30):
        thread.append(HumanMessage(f"question {i} " * (i % 7 + 1), id=f"h{i}"))
        if i % 3 == 0:
            call = {"name": "lookup", "args": {"q": i}, "id": f"c{i}"}
            thread.append(AIMessage("", tool_calls=[call], id=f"a{i}"))
            thread.append(ToolMessage(f"result {i} " * 20, tool_call_id=f"c{i}", id=f"t{i}"))
        thread.append(AIMessage(f"answer {i}", id=f"r{i}"))
        # Each turn the thread comes back as new objects, as from a checkpoint.
        reloaded = [m.model_copy(deep=True) for m in thread]
        assert counter.count(reloaded) == reference.count(reloaded)
        reference = TokenCounter()
    # A message replaced under its id (update_state), reloaded: recounted from there.
    edited = [m.model_copy(deep=True) for m in thread]
    edited[5] = edited[5].model_copy(update={"content": "a much longer replacement " * 9})
    assert counter.count(edited) == TokenCounter().count(edited)
    # A field reassigned on the very objects counted before: noticed too.
    edited[7].content = "changed in place " * 4
    assert counter.count(edited) == TokenCounter().count(edited)
    # Tool calls changed under the same id.
    calls = edited[1].tool_calls
    edited[1] = edited[1].model_copy(update={"tool_calls": [{**calls[0], "args": {"q": "x" * 50}}]})
    assert counter.count(edited) == TokenCounter().count(edited)
    # A compaction puts a summary first: the list no longer shares a prefix.
    compacted = [HumanMessage("summary " * 40, id="summary-1"), *edited[-6:]]
    assert counter.count(compacted) == TokenCounter().count(compacted)
    assert counter.count(thread[:3]) == TokenCounter().count(thread[:3])  # a shorter list


def test_recount_notices_nested_changes_roles_and_takes_any_sequence() -> None:
    """Found in review: in-place edits of content blocks and ChatMessage roles."""
    from collections import deque

    from langchain_core.messages import ChatMessage, HumanMessage

    counter = TokenCounter()
    blocks = HumanMessage([{"type": "text", "text": "hi"}], id="h1")
    thread = [HumanMessage("start", id="h0"), blocks]
    assert counter.count(thread) == TokenCounter().count(thread)
    blocks.content[0]["text"] = "a much longer text than before " * 5  # type: ignore[index]
    assert counter.count(thread) == TokenCounter().count(thread)
    short = ChatMessage("hello", role="user", id="x")
    assert counter.count([short]) == TokenCounter().count([short])
    long_role = ChatMessage("hello", role="a_much_longer_custom_role_name", id="x")
    assert counter.count([long_role]) == TokenCounter().count([long_role])
    assert counter.count(deque(thread)) == TokenCounter().count(thread)
    assert counter.count(iter(thread)) == TokenCounter().count(thread)  # type: ignore[arg-type]


def _reloaded(messages: list[BaseMessage]) -> list[BaseMessage]:
    """New objects with the same fields, as a checkpointer hands a thread back each turn."""
    return [m.model_copy(deep=True) for m in messages]


def _thread() -> list[BaseMessage]:
    return [
        SystemMessage("You are brief.", id="s"),
        HumanMessage("Find order 7.", id="h1"),
        AIMessage("", tool_calls=[{"name": "find", "args": {"n": 7}, "id": "c1"}], id="a1"),
        ToolMessage("order 7: 3 pallets", tool_call_id="c1", id="t1"),
        AIMessage("Order 7 has 3 pallets.", id="a2"),
        HumanMessage([{"type": "text", "text": "And order 8?"}], id="h2"),
        ChatMessage("a note", role="user", id="n1"),
        AIMessage("Checking.", id="a3"),
        HumanMessage("Thanks.", id="h3"),
    ]


def _edit_content(m: list[BaseMessage]) -> None:
    m[4].content = "Order 7 has 3 pallets and 2 crates, due on Friday."


def _edit_block_in_place(m: list[BaseMessage]) -> None:
    m[5].content[0]["text"] = "And what about order 8, 9 and 10?"  # type: ignore[index]


def _append_block_in_place(m: list[BaseMessage]) -> None:
    m[5].content.append({"type": "text", "text": "one more block of text"})  # type: ignore[union-attr]


def _edit_args_in_place(m: list[BaseMessage]) -> None:
    m[2].tool_calls[0]["args"]["n"] = "seven hundred and seventy-seven"  # type: ignore[attr-defined]


def _add_call_in_place(m: list[BaseMessage]) -> None:
    m[4].tool_calls.append({"name": "notify", "args": {"who": "buyer"}, "id": "c2"})  # type: ignore[attr-defined]


def _rename(m: list[BaseMessage]) -> None:
    m[7].name = "orders_agent"


def _drop_tool_call_id(m: list[BaseMessage]) -> None:
    m[3].tool_call_id = ""  # type: ignore[attr-defined]


def _change_role(m: list[BaseMessage]) -> None:
    m[6].role = "a_much_longer_custom_role"  # type: ignore[attr-defined]


def _change_class(m: list[BaseMessage]) -> None:
    m[1] = ToolMessage("Find order 7.", tool_call_id="c0", id="h1")  # same id and content


def _replace_under_same_id(m: list[BaseMessage]) -> None:
    m[8] = HumanMessage("Thanks, that is all for today.", id="h3")


@pytest.mark.parametrize(
    "edit",
    [
        _edit_content,
        _edit_block_in_place,
        _append_block_in_place,
        _edit_args_in_place,
        _add_call_in_place,
        _rename,
        _drop_tool_call_id,
        _change_role,
        _change_class,
        _replace_under_same_id,
    ],
)
@pytest.mark.parametrize("reload", [False, True])
def test_every_counted_field_is_checked_before_a_prefix_is_reused(
    edit: Callable[[list[BaseMessage]], None], reload: bool
) -> None:
    counter = TokenCounter()
    thread = _thread()
    before = counter.count(thread)
    assert counter.count(_reloaded(thread)) == before  # the unchanged list: reused
    edited = _reloaded(thread) if reload else thread
    edit(edited)
    expected = TokenCounter().count(_reloaded(edited))
    assert expected != before  # the edit changes the count
    assert counter.count(edited) == expected
    assert counter.count(_reloaded(edited)) == expected


def test_the_earliest_change_wins_whichever_field_it_is_in() -> None:
    counter = TokenCounter()
    thread = _thread()
    counter.count(thread)
    # A tool call edited early, a content edited later (and the other way round).
    early_call = _reloaded(thread)
    _edit_args_in_place(early_call)
    _replace_under_same_id(early_call)
    assert counter.count(early_call) == TokenCounter().count(early_call)
    counter.count(thread)
    early_content = _reloaded(thread)
    _change_class(early_content)
    _edit_args_in_place(early_content)
    _rename(early_content)
    assert counter.count(early_content) == TokenCounter().count(early_content)


def test_an_unchanged_recount_only_reads_the_messages() -> None:
    counter = TokenCounter()
    thread = [HumanMessage(f"message {i}", id=f"m{i}") for i in range(200)]
    total = counter.count(thread)
    spy = _spy(counter)
    for _ in range(3):
        assert counter.count(_reloaded(thread)) == total
        assert counter.count(tuple(thread)) == total
    assert spy.calls == 0
    thread[150].content = "a different and longer message"
    assert counter.count(thread) == TokenCounter().count(thread)
    assert spy.calls == 1  # only the edited message's content was encoded again


def test_an_empty_iterable_costs_nothing() -> None:
    assert TokenCounter().count(iter([])) == 0  # type: ignore[arg-type]


def test_random_edits_of_reloaded_threads_keep_counts_exact() -> None:
    rng = random.Random(7)
    counter = TokenCounter()
    thread = _thread()
    edits = [_edit_content, _rename, _change_class, _replace_under_same_id, _edit_args_in_place]
    for turn in range(60):
        thread = _reloaded(thread)
        choice = rng.random()
        if choice < 0.4:
            thread.append(HumanMessage(f"question {turn} " * rng.randint(1, 5), id=f"q{turn}"))
            thread.append(AIMessage(f"answer {turn}", id=f"r{turn}"))
        elif choice < 0.7:
            rng.choice(edits)(thread)
        elif choice < 0.8:
            del thread[rng.randrange(len(thread)) :]
            thread = thread or _thread()
        elif choice < 0.9:
            at = rng.randrange(len(thread))
            thread[at] = thread[at].model_copy(update={"content": f"rewritten {turn}"})
        assert counter.count(thread) == TokenCounter().count(thread), turn


def test_threads_counting_at_once_get_exact_counts() -> None:
    base = [HumanMessage(f"message {i} " * (i % 5 + 1), id=f"m{i}") for i in range(300)]
    lists = [_reloaded(base[: 100 + 20 * k]) for k in range(10)]
    lists += [_reloaded(base[:150]) for _ in range(5)]
    for i, messages in enumerate(lists[10:]):
        messages[100 + i].content = f"edited by thread {i} " * (i + 1)
    expected = [TokenCounter().count(m) for m in lists]
    counter = TokenCounter()

    def work(messages: list[BaseMessage]) -> list[int]:
        return [counter.count(messages) for _ in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, lists))
    assert all(set(counts) == {want} for counts, want in zip(results, expected, strict=True))


@pytest.mark.parametrize(
    "text",
    [
        "a" * 50_000,
        "://" * 20_000,
        "<" * 30_000,
        " " * 30_000,
        "start " + "x" * 10_000 + " end",
    ],
    ids=["letters", "symbols", "brackets", "spaces", "word"],
)
def test_a_long_run_of_one_kind_is_counted_in_pieces_close_to_exact(text: str) -> None:
    """BPE is quadratic in one pre-token's length; pieces keep counting linear, nearly exact."""
    counter = TokenCounter()
    exact = len(counter._ensure_encoding().encode(text))
    assert abs(counter.count_text(text) - exact) <= len(text) // 1_024 + 1


def test_ordinary_long_text_is_counted_exactly() -> None:
    counter = TokenCounter()
    text = "Q29kZSBpcyBwb2V0cnk=" * 5_000 + " and the prose around it. " * 2_000
    assert counter.count_text(text) == len(counter._ensure_encoding().encode(text))


# ---------------------------------------------------------------- a prompt counted by pieces


_PIECE_TEXTS = [
    "a\n<b",
    "a  \n<b",
    "a.\n<b",
    "a\n\n<b",
    " \n \n<x",
    "<a>\n</a>\n<",
    "\n<",
    "<\n<\n<",
    "don't\n<'s",
    "1\n<2",
    "a\r\n<b",
    "é\n<é",
    "x" * 3000 + "\n<" + " " * 3000 + "\n<" + "!" * 2500,
    '<user>hi</user>\n<assistant>ok.\n</assistant>\n<call tool="t">\nq: 1\n</call>\n',
]


@pytest.mark.parametrize("text", _PIECE_TEXTS, ids=range(len(_PIECE_TEXTS)))
def test_a_text_counted_by_pieces_is_the_encoders_count(text: str) -> None:
    """Cut after each line break that a tag follows, the pieces add up to the exact count."""
    from compacting_supervisor._compaction.pieces import PieceCounts

    counter = TokenCounter()
    pieces = PieceCounts(counter)
    assert pieces.text(text) == counter.count_text(text)
    assert pieces.text(text) == counter.count_text(text)  # from what it remembered


def test_a_summariser_prompt_counted_by_pieces_is_counted_exactly() -> None:
    """The prompt of every piece of a long history, as the summariser is sent it."""
    from compacting_supervisor._compaction.pieces import PieceCounts
    from compacting_supervisor._render import message_events
    from compacting_supervisor.summarizers import ChatModelSummarizer
    from compacting_supervisor.testing import ScriptedChatModel

    rng = random.Random(7)
    history = [*MESSAGES] * 20
    summarizer = ChatModelSummarizer(ScriptedChatModel(responses=["ok"]))
    counter = TokenCounter()
    pieces = PieceCounts(counter)
    for event in message_events(history):  # what the packing counts first
        pieces.text(event + "\n")
    for _ in range(20):
        start = rng.randrange(len(history))
        chunk = history[start : start + rng.randrange(1, 30)]
        previous = rng.choice([None, "Earlier: <summary> the user asked 'why?'.\n- a fact"])
        prompt = summarizer.prompt_messages(previous, chunk, max_tokens=300)
        assert pieces.messages(prompt) == counter.count(prompt)


def test_an_estimate_is_never_counted_by_pieces(caplog: pytest.LogCaptureFixture) -> None:
    """With no encoding (4 characters a token) pieces would not add up: counted whole."""
    from compacting_supervisor._compaction.pieces import PieceCounts

    counter = TokenCounter()
    counter._encoding, counter._exact = token_counter_module._CharEstimate(), False
    text = "<a>x</a>\n<b>y</b>\n<c>z</c>"
    assert PieceCounts(counter).text(text) == counter.count_text(text) == (len(text) + 3) // 4


def test_each_role_is_encoded_once_and_counted_as_before() -> None:
    counter = TokenCounter()
    messages = [
        HumanMessage("hi"),
        AIMessage("hello"),
        ChatMessage(content="note", role="critic"),
        HumanMessage("again"),
        ChatMessage(content="more", role="critic"),
    ]
    spy = _spy(counter)
    total = counter.count(messages)
    # Five contents, three roles (user, assistant, critic): each role encoded once.
    assert spy.calls == 5 + 3
    encoding = counter._ensure_encoding()
    expected = token_counter_module.REPLY_PRIMING + sum(
        token_counter_module.TOKENS_PER_MESSAGE
        + len(encoding.encode(role))
        + len(encoding.encode(m.text))
        for m, role in zip(messages, ["user", "assistant", "critic", "user", "critic"], strict=True)
    )
    assert total == expected
