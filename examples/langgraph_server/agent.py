"""A `create_agent` agent with `CompactionMiddleware`, served by LangGraph Server.

``langgraph.json`` names ``agent.py:agent``: the server imports this module, owns the
checkpointer (in memory under ``langgraph dev``, Postgres in production) and runs the graph
itself. The middleware compacts before each model call once the model would read more than
``TOKEN_LIMIT`` tokens, and returns the shorter history as the step's state update, so the
server stores it with the step; every original stays in the thread's history.

The agent notes the facts it is told, lists what it can still see when asked to recall
(from the recent messages and the running summary), and pays an invoice only after the user
approves: ``pay_invoice`` pauses the run with ``interrupt()`` until a run resumes it with
``Command(resume="yes")``. Its model and summariser are scripted (``shared.py``).
"""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage
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

from compacting_supervisor import CompactionMiddleware, HistoryManager, KeepMessages

TOKEN_LIMIT = 400
"""Compact when the model would read more than this (messages, prompt and tool schemas)."""
SYSTEM_PROMPT = "You are a team assistant. Note every fact you are told; pay only when approved."


def agent_reply(messages: list[BaseMessage]) -> AIMessage:
    """The scripted agent: note a fact, recall the facts, or pay an invoice."""
    if messages[-1].type == "tool":
        return AIMessage(f"Done: {messages[-1].text}")
    request = last_request(messages)
    if invoice := INVOICE.search(request):
        return pay_call(invoice.group(1))
    if "recall" in request.lower():
        return AIMessage(recall(messages))
    return AIMessage(noted(request))


compaction = CompactionMiddleware(
    history_manager=HistoryManager(model=summariser_model(), max_summary_tokens=300),
    token_limit=TOKEN_LIMIT,
    keep=KeepMessages(2),
)

# No checkpointer: the server brings its own, and stores each compaction with its step.
agent = create_agent(
    scripted(agent_reply),
    tools=[pay_invoice],
    system_prompt=SYSTEM_PROMPT,
    middleware=[compaction],
    name="agent",
)
