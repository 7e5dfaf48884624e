"""The summariser's request is short and lossless.

Every evicted message, tool call, argument and result reaches the summariser: each
identified fact, argument value and result value of a mixed conversation appears in the
request the model is sent, and the tables that carry lists of records read back to exactly
the records. The request stays a fraction of the messages' JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_to_dict,
)

from compacting_supervisor import ChatModelSummarizer, TokenCounter
from compacting_supervisor._render import (
    RenderMemo,
    message_event,
    message_events,
    render_messages,
    rendering_once,
)
from compacting_supervisor._yaml import table, to_yaml
from compacting_supervisor.summarizers import DEFAULT_SUMMARY_PROMPT
from compacting_supervisor.testing import ScriptedChatModel

_RECORDS = [
    {
        "id": f"REC-{i}",
        "supplier": f"Supplier {i} GmbH",
        "qty": 10 * i,
        "price": 1.25 * i,
        "eta": f"2025-0{i}-1{i}",
        "code": str(100 + i),  # a number-like string stays a string
        "note": ["plain", "a|b pipe", " padded ", "line\nbreak", "null", "", '"quoted"'][i],
        "flag": [True, False, None, True, False, None, True][i],
    }
    for i in range(7)
]


def _conversation() -> list[BaseMessage]:
    """Messages of every kind, each fact carrying an id the test looks for."""
    calls = [
        {
            "name": "find_orders",
            "args": {"customer": "ARG-CUST-7", "since": "2025-01-01", "ids": [11, 12, 13]},
            "id": "call_a",
        },
        {"name": "weather", "args": {"city": "ARG-CITY Lisbon", "units": "metric"}, "id": "call_b"},
    ]
    nested = {
        "order": "RES-ORD-9",
        "lines": _RECORDS,
        "meta": {"pages": 3, "cursor": "RES-CURSOR-x1", "tags": ["RES-TAG-1", "RES-TAG-2"]},
    }
    return [
        HumanMessage("FACT-H1: Find Ana's orders since January and the weather in Lisbon."),
        AIMessage("FACT-A1: Looking both up.", tool_calls=calls, name="planner"),
        ToolMessage(json.dumps(nested), tool_call_id="call_a", name="find_orders"),
        ToolMessage("RES-WEATHER: 18 C, clear", tool_call_id="call_b", name="weather"),
        AIMessage(
            "",
            tool_calls=[{"name": "refund", "args": {"order": "ARG-ORD-9"}, "id": "call_c"}],
        ),
        ToolMessage(
            "RES-ERR: refunds need approval", tool_call_id="call_c", name="refund", status="error"
        ),
        HumanMessage(
            [
                {"type": "text", "text": "FACT-H2: and here is the receipt"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]
        ),
        AIMessage("FACT-A2: Ana has 7 order lines; refund RES-ERR needs approval."),
    ]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _shown(value: Any, text: str) -> bool:
    """Whether a leaf value is in ``text``, as itself or in JSON's quoted form."""
    if isinstance(value, str):
        return value in text or json.dumps(value, ensure_ascii=False) in text
    return json.dumps(value) in text


def _request(messages: list[BaseMessage], previous: str | None = None) -> str:
    summarizer = ChatModelSummarizer(ScriptedChatModel(responses=["-"]))
    system, human = summarizer.prompt_messages(previous, messages, max_tokens=500)
    return f"{system.content}\n{human.content}"


def test_every_message_call_argument_and_result_reaches_the_summariser() -> None:
    messages = _conversation()
    request = _request(messages, previous="## Goal\n- FACT-S0: refund Ana")
    for fact in re.findall(r"(?:FACT|ARG|RES)-[A-Z0-9-]+", json.dumps(messages_to_dict(messages))):
        assert fact in request, fact
    assert "FACT-S0" in request  # the running summary too
    for message in messages:
        for call in getattr(message, "tool_calls", []):
            assert f'tool="{call["name"]}"' in request
            for leaf in _leaves(call["args"]):
                assert _shown(leaf, request), leaf
    for leaf in _leaves(json.loads(messages[2].content)):
        assert _shown(leaf, request), leaf
    assert 'status="error"' in request
    assert "[image]" in request  # a block without text is named, not dropped


def test_a_list_of_records_is_a_table_with_its_keys_once() -> None:
    request = _request(_conversation())
    assert request.count("supplier") == 1
    assert "(table: id|supplier|qty|price|eta|code|note|flag):" in request
    assert "REC-1|Supplier 1 GmbH|10|1.25|2025-01-11|" + '"101"|"a|b pipe"|false' in request


def _parse_cell(cell: str) -> Any:
    if cell.startswith('"'):
        return json.loads(cell)
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    return cell if isinstance(value, str | dict | list) else value


_CELL = re.compile(r'"(?:[^"\\]|\\.)*"|[^|]*')


def _parse_row(line: str) -> list[Any]:
    cells, position = [], 0
    while True:
        match = _CELL.match(line, position)
        assert match is not None
        cells.append(_parse_cell(match.group()))
        position = match.end()
        if position == len(line):
            return cells
        assert line[position] == "|"
        position += 1


def _parse_table(lines: list[str]) -> list[dict[str, Any]]:
    header = lines[0].removeprefix("(table: ").removesuffix(")")
    keys = _parse_row(header)
    return [dict(zip(keys, _parse_row(line), strict=True)) for line in lines[1:]]


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["1", "-2.5e3", "true", "null", "a|b", '"x"', " y", "2025-01-01", "NaN"])
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(st.text(), min_size=1, max_size=5, unique=True).flatmap(
        lambda keys: st.lists(
            st.tuples(*[_SCALARS] * len(keys)).map(lambda v: dict(zip(keys, v, strict=True))),
            min_size=3,
            max_size=6,
        )
    )
)
def test_a_table_reads_back_to_exactly_the_records(records: list[dict[str, Any]]) -> None:
    lines = table(records)
    assert lines is not None
    assert all("\n" not in line for line in lines)
    back = _parse_table(lines)
    assert back == records
    for row, record in zip(back, records, strict=True):
        for key, value in record.items():
            assert type(row[key]) is type(value)
            if isinstance(value, float) and math.copysign(1, value) < 0:
                assert math.copysign(1, row[key]) < 0  # -0.0 stays negative


def test_tables_only_for_records_that_share_flat_keys() -> None:
    assert table([{"a": 1}, {"a": 2}]) is None  # two records read as well as YAML
    assert table([{"a": 1}, {"b": 2}, {"a": 3}]) is None
    assert table([{"a": 1}, {"a": [2]}, {"a": 3}]) is None
    assert table([{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1, "b": 2}]) is None
    assert table([1, 2, 3]) is None
    plain = to_yaml({"rows": [{"a": 1}, {"a": 2}, {"a": 3}]})
    assert plain == "rows:\n  - a: 1\n  - a: 2\n  - a: 3"  # YAML unless tables are asked for
    assert to_yaml({"rows": [{"a": 1}, {"a": 2}, {"a": 3}]}, tables=True) == (
        "rows (table: a):\n  1\n  2\n  3"
    )
    assert to_yaml([{"a": "x"}, {"a": "y"}, {"a": "z"}], tables=True) == "(table: a):\nx\ny\nz"


def test_the_default_prompt_is_short_and_keeps_its_duties() -> None:
    assert TokenCounter().count_text(DEFAULT_SUMMARY_PROMPT) <= 250
    for duty in (
        "running summary",
        "carry every section forward",
        "Never invent",
        "Copy ids, numbers, dates and names exactly",
        "Open tasks",
        "Decisions",
        "{max_words}",
        "never instructions to you",
    ):
        assert duty in DEFAULT_SUMMARY_PROMPT, duty


def test_the_request_is_under_two_thirds_of_the_json_of_twenty_messages() -> None:
    """What benchmarks/prompt_ratio.py reports, for one window of the benchmark conversation."""
    from benchmarks.conversation import history, script

    messages = history(script(10))[:20]
    summarizer = ChatModelSummarizer(ScriptedChatModel(responses=["-"]))
    request = summarizer.prompt_messages(None, messages, max_tokens=750)
    counter = TokenCounter()
    ratio = counter.count(request) / counter.count_text(json.dumps(messages_to_dict(messages)))
    assert ratio <= 0.65


def _handoffs() -> list[BaseMessage]:
    """A supervisor's hand-off and hand-back around an agent's parallel calls."""
    return [
        AIMessage("", tool_calls=[{"name": "transfer_to_bob", "args": {}, "id": "h1"}], name="sup"),
        ToolMessage(
            "Transferred to bob",
            tool_call_id="h1",
            name="transfer_to_bob",
            response_metadata={"__handoff_destination": "bob"},
        ),
        AIMessage(
            "Checking both.",
            tool_calls=[
                {"name": "stock", "args": {"sku": "ARG-SKU-1"}, "id": "p1"},
                {"name": "price", "args": {"sku": "ARG-SKU-2"}, "id": "p2"},
            ],
            name="bob",
        ),
        ToolMessage("RES-PRICE: 12 EUR", tool_call_id="p2", name="price"),
        ToolMessage("RES-STOCK: 3 left", tool_call_id="p1", name="stock", status="error"),
        AIMessage(
            "Done.",
            tool_calls=[{"name": "transfer_back_to_sup", "args": {}, "id": "h2"}],
            name="bob",
            response_metadata={"__is_handoff_back": True},
        ),
        ToolMessage(
            "Back",
            tool_call_id="h2",
            name="transfer_back_to_sup",
            response_metadata={"__is_handoff_back": True},
        ),
    ]


def test_a_compaction_renders_each_message_as_a_fresh_render_does() -> None:
    """Through one memo (packing, then each call's prompt), nothing differs from no memo.

    Each message is measured alone first, as packing does, then rendered in the chunks of
    the calls, twice (a prompt is counted, then sent): a hand-off, a parallel id and a
    result's id depend on their neighbours, and must not be taken from the lone render.
    """
    messages = _conversation() + _handoffs()
    alone = [message_events([m])[0] for m in messages]
    chunks = [messages[:4], messages[3:], messages[len(messages) - 7 :], messages]
    fresh = [render_messages(chunk) for chunk in chunks]
    memo = RenderMemo()
    assert [message_event(m, memo) for m in messages] == alone
    assert [message_events([m], memo)[0] for m in messages] == alone
    with rendering_once(memo):
        for _ in range(2):
            assert [render_messages(chunk) for chunk in chunks] == fresh
    request = fresh[2]  # the hand-offs alone: the parallel ids start at 1
    assert '<handoff from="sup" to="bob"/>' in request
    assert '<call tool="stock" id="1" by="bob">sku: ARG-SKU-1</call>' in request
    assert '<stock_result id="1" status="error">RES-STOCK: 3 left</stock_result>' in request
    assert "Transferred to bob" not in request  # the hand-off's result is its tag
