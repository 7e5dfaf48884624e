"""The scripted conversation every contender runs: deterministic, tagged, offline.

Turn ``t`` (1-based) is a user message of 10-40 words and an 80-word reply; every third
turn the agent first calls the ``search_records`` tool, which returns about 1,500
characters of JSON. Every message carries one tag naming what it is and its turn:
``[H012]`` the user's message, ``[C012]`` the agent's tool call, ``[T012]`` the tool's
result, ``[R012]`` the reply. Tags let the harness tell, for every message, whether it
reached a summariser or is still verbatim in what the agent sees.

Two hundred turns hold 532 messages: 200 user messages, 200 replies, and 66 tool calls
with their 66 results.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

__all__ = [
    "SYSTEM_PROMPT",
    "TAG",
    "TOOL_NAME",
    "Turn",
    "all_tags",
    "history",
    "message_tags",
    "reply_text",
    "script",
    "tags_in",
    "tool_call_id",
    "tool_query",
    "tool_result",
    "turn_of",
    "user_text",
]

TOOL_NAME = "search_records"

SYSTEM_PROMPT = (
    "You are the operations assistant of a mid-sized distribution company. You help the "
    "planning team with orders, shipments, suppliers, invoices and warehouse capacity. "
    "Answer precisely and keep every identifier, amount and date exactly as the records "
    "give them. When a question needs data you have not seen in this conversation, call "
    "the search_records tool with a short query and base your answer on what it returns. "
    "Say so when the records do not answer the question, and never invent numbers. Keep "
    "answers short and structured; the team reads them between meetings. When the user "
    "changes a plan, restate the new plan in one sentence so everyone agrees on it."
)

TAG = re.compile(r"\[([HCTR])(\d{3,4})\]")
"""A message's tag: kind (H user, C tool call, T tool result, R reply) and turn."""

_VOCABULARY = (
    "order shipment supplier invoice warehouse pallet container route carrier customs "
    "forecast budget quarter region contract delivery schedule inventory stock backlog "
    "priority discount margin freight dock capacity transfer receipt audit ledger tariff "
    "port vessel truck driver depot northern southern eastern western central coastal "
    "planning review approve confirm delay expedite cancel reorder allocate reserve split "
    "merge track update verify compare estimate reduce increase move hold release check "
    "the a of to for with on by from and but this that next last first new current weekly "
    "monthly urgent pending late early partial full total average expected agreed revised "
    "team manager buyer client account product line batch lot sample return claim refund"
)
_WORDS = tuple(_VOCABULARY.split())

_FIRST_NAMES = ("Alice", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hugo", "Ines")
_CITIES = ("Rotterdam", "Lyon", "Gdansk", "Porto", "Leipzig", "Turin", "Ghent", "Malmo")


@dataclass(frozen=True)
class Turn:
    """One scripted turn."""

    number: int
    """The turn, from 1."""
    user: str
    """The user's message (10-40 words, tag included)."""
    calls_tool: bool
    """Whether the agent first calls the tool (every third turn)."""


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def user_text(number: int) -> str:
    """The user's message of turn ``number``: 10-40 words, its tag among them."""
    rng = random.Random(f"user-{number}")
    total = rng.randint(10, 40)
    name, city = rng.choice(_FIRST_NAMES), rng.choice(_CITIES)
    fixed = f"[H{number:03d}] {name} asks about order PO-{10000 + number} in {city}:"
    return f"{fixed} {_words(rng, total - len(fixed.split()))}?"


def reply_text(number: int) -> str:
    """The agent's final answer of turn ``number``: exactly 80 words, tag included."""
    rng = random.Random(f"reply-{number}")
    fixed = (
        f"[R{number:03d}] Order PO-{10000 + number} is confirmed for "
        f"{rng.randint(2, 28)} {rng.choice(('March', 'April', 'May', 'June'))} with "
        f"{rng.randint(3, 60)} pallets; invoice INV-{rng.randint(1000, 9999)} totals "
        f"EUR {rng.randint(1000, 90000)}."
    )
    return f"{fixed} {_words(rng, 80 - len(fixed.split()))}."


def tool_query(number: int) -> str:
    """The query the agent passes to the tool on turn ``number`` (tag included)."""
    rng = random.Random(f"query-{number}")
    return f"[C{number:03d}] PO-{10000 + number} {_words(rng, 5)}"


def tool_call_id(number: int) -> str:
    """The tool call id of turn ``number`` (the same for every contender)."""
    return f"call_{number:04d}"


def tool_result(number: int) -> str:
    """What ``search_records`` returns on turn ``number``: about 1,500 characters of JSON."""
    rng = random.Random(f"result-{number}")
    record: dict[str, object] = {
        "tag": f"[T{number:03d}]",
        "order": f"PO-{10000 + number}",
        "status": rng.choice(("open", "shipped", "held", "partial")),
        "records": [],
    }
    records: list[dict[str, object]] = []
    record["records"] = records
    index = 0
    while len(json.dumps(record)) < 1400:
        records.append(
            {
                "id": f"REC-{number:03d}-{index}",
                "supplier": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_CITIES)} GmbH",
                "quantity": rng.randint(1, 500),
                "unit_price": round(rng.uniform(1, 400), 2),
                "eta": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "note": _words(rng, 8),
            }
        )
        index += 1
    return json.dumps(record)


def script(turns: int) -> list[Turn]:
    """The first ``turns`` turns of the conversation."""
    return [Turn(n, user_text(n), n % 3 == 0) for n in range(1, turns + 1)]


def turn_of(text: str) -> int | None:
    """The turn number in the first tag of ``text``, if any."""
    match = TAG.search(text)
    return int(match.group(2)) if match else None


def tags_in(text: str) -> Iterator[str]:
    """Every tag in ``text``, as ``"H012"``."""
    for match in TAG.finditer(text):
        yield f"{match.group(1)}{int(match.group(2)):03d}"


def message_tags(message: BaseMessage) -> set[str]:
    """The tags a message carries: in its text and in its tool calls' arguments."""
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    found = set(tags_in(text))
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            found.update(tags_in(json.dumps(call["args"])))
    return found


def all_tags(turns: int) -> set[str]:
    """The tags of every message of ``turns`` turns (one per message)."""
    tags: set[str] = set()
    for turn in script(turns):
        tags.update((f"H{turn.number:03d}", f"R{turn.number:03d}"))
        if turn.calls_tool:
            tags.update((f"C{turn.number:03d}", f"T{turn.number:03d}"))
    return tags


def history(turns: Iterable[Turn]) -> list[BaseMessage]:
    """The messages those turns leave in a thread, as the agent would have produced them."""
    messages: list[BaseMessage] = []
    for turn in turns:
        n = turn.number
        messages.append(HumanMessage(turn.user, id=f"h-{n}"))
        if turn.calls_tool:
            call = {"name": TOOL_NAME, "args": {"query": tool_query(n)}, "id": tool_call_id(n)}
            messages.append(AIMessage("", tool_calls=[call], id=f"c-{n}"))
            messages.append(
                ToolMessage(
                    tool_result(n), tool_call_id=tool_call_id(n), name=TOOL_NAME, id=f"t-{n}"
                )
            )
        messages.append(AIMessage(reply_text(n), id=f"r-{n}"))
    return messages
