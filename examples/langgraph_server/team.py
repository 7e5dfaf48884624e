"""A `create_supervisor` team whose supervisor compacts with `CompactionNode`, served.

``langgraph.json`` names ``team.py:team``. The supervisor hands each request to an agent:
facts to ``notes_agent``, payments to ``payments_agent`` (whose ``pay_invoice`` waits for
the user's approval with ``interrupt()``), and answers a recall itself. Every turn adds the
hand-offs to the team's ``messages``, so the thread grows fast.

`CompactionNode` is the supervisor's ``pre_model_hook``: before each supervisor model call
it compacts the team's ``messages`` once the supervisor would read more than
``TOKEN_LIMIT`` tokens. The supervisor runs as a subgraph, so the node compacts the parent
graph's ``messages`` (a compaction of the subgraph's copy would be merged away by id), and
the server stores it with the step; every original stays in the thread's history. The
agents and the summariser are scripted (``shared.py``).
"""

from __future__ import annotations

import uuid

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage
from langgraph_supervisor import create_supervisor
from shared import (
    INVOICE,
    last_request,
    noted,
    pay_call,
    pay_invoice,
    recall,
    scripted,
    summariser_model,
)

from compacting_supervisor import CompactionNode, HistoryManager, KeepMessages

TOKEN_LIMIT = 700
"""Compact when the supervisor would read more than this (messages and its prompt)."""
SUPERVISOR_PROMPT = (
    "You lead a team: hand facts to notes_agent and payments to payments_agent; "
    "answer a recall yourself."
)


def transfer(agent: str) -> AIMessage:
    call = {"name": f"transfer_to_{agent}", "args": {}, "id": f"handoff_{uuid.uuid4().hex[:12]}"}
    return AIMessage("", tool_calls=[call])


def supervisor_reply(messages: list[BaseMessage]) -> AIMessage:
    """The scripted supervisor: hand the request over, relay the answer, or recall."""
    if messages[-1].type == "tool":  # an agent handed back: relay its answer
        answer = next(
            (m.text for m in reversed(messages) if m.type == "ai" and m.text and not m.tool_calls),
            "",
        )
        return AIMessage(f"Team: {answer}")
    request = last_request(messages)
    if INVOICE.search(request):
        return transfer("payments_agent")
    if "recall" in request.lower():
        return AIMessage(recall(messages))
    return transfer("notes_agent")


def notes_reply(messages: list[BaseMessage]) -> AIMessage:
    return AIMessage(noted(last_request(messages)))


def payments_reply(messages: list[BaseMessage]) -> AIMessage:
    if messages[-1].type == "tool" and messages[-1].name == "pay_invoice":
        return AIMessage(f"Done: {messages[-1].text}")
    invoice = INVOICE.search(last_request(messages))
    return pay_call(invoice.group(1)) if invoice else AIMessage("Which invoice?")


notes_agent = create_agent(scripted(notes_reply), tools=[], name="notes_agent")
payments_agent = create_agent(scripted(payments_reply), tools=[pay_invoice], name="payments_agent")

compaction = CompactionNode(
    history_manager=HistoryManager(model=summariser_model(), max_summary_tokens=300),
    token_limit=TOKEN_LIMIT,
    keep=KeepMessages(4),
    system_prompt=SUPERVISOR_PROMPT,
)

# No checkpointer: the server brings its own, and stores each compaction with its step.
team = create_supervisor(
    [notes_agent, payments_agent],
    model=scripted(supervisor_reply),
    prompt=SUPERVISOR_PROMPT,
    pre_model_hook=compaction,
).compile(name="team")
