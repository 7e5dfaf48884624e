"""What the served graphs share: the payment tool, and the scripted models standing in for LLMs.

The models are `ScriptedChatModel`s, so the example runs with no API key and no network. In
a real deployment, put your chat models where `scripted` is called (``"openai:gpt-4o-mini"``
for the agents, a small cheap model for the summariser).

``EXAMPLE_MODEL_LATENCY`` (seconds) makes each scripted answer take as long as a real
model's, to watch runs of several threads overlap.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langgraph.types import interrupt

from compacting_supervisor import is_summary
from compacting_supervisor.testing import ScriptedChatModel

FACT = re.compile(r"\bFACT-[A-Za-z0-9]+-\d+\b")
"""How the facts of the conversation are tagged, so a summary and a recall can list them."""
INVOICE = re.compile(r"\bpay (?:invoice )?(INV-\d+)", re.I)


@tool
def pay_invoice(invoice: str) -> str:
    """Pay an invoice, once the user approves it."""
    answer = interrupt({"question": f"Pay invoice {invoice}?", "invoice": invoice})
    if str(answer).strip().lower() in {"yes", "y", "approve", "approved"}:
        return (
            f"Invoice {invoice} paid. Receipt {invoice}-R: transferred from the operating "
            "account by SEPA credit transfer, value date today, reference quoted on the "
            "remittance advice, booked to the supplier ledger and matched to the purchase "
            "order; the approval is kept with the payment run for the auditors."
        )
    return f"Invoice {invoice} not paid: the user said {answer!r}."


def facts_seen(messages: list[BaseMessage]) -> list[str]:
    """The facts the model can still see (recent messages and the running summary)."""
    return sorted(set(FACT.findall("\n".join(m.text for m in messages))))


def last_request(messages: list[BaseMessage]) -> str:
    """The user's latest message (a summary is a human message too, but not a request)."""
    return next((m.text for m in reversed(messages) if m.type == "human" and not is_summary(m)), "")


def pay_call(invoice: str) -> AIMessage:
    call = {
        "name": "pay_invoice",
        "args": {"invoice": invoice},
        "id": f"call_{uuid.uuid4().hex[:12]}",
    }
    return AIMessage("", tool_calls=[call])


def recall(messages: list[BaseMessage]) -> str:
    """What a model answers when asked to recall: every fact it can still see."""
    summary = " (some from the summary)" if any(is_summary(m) for m in messages) else ""
    return f"I know{summary}: {', '.join(facts_seen(messages)) or 'nothing yet'}."


def noted(request: str) -> str:
    return f"Noted {', '.join(FACT.findall(request)) or 'that'}. I will keep it in mind."


def summary_reply(messages: list[BaseMessage]) -> str:
    """The scripted summariser: every fact of the existing summary and the new messages."""
    request = messages[-1].text
    facts = sorted(set(FACT.findall(request))) or ["no facts yet"]
    invoices = sorted(set(re.findall(r"\bINV-\d+\b", request)))
    lines = ["## Discoveries", *(f"- {fact}" for fact in facts)]
    if invoices:
        lines += ["## Artifacts (verbatim)", *(f"- {invoice}" for invoice in invoices)]
    lines += ["## Current state", "- noting facts for the user"]
    return "\n".join(lines)


def scripted(reply: Callable[[list[BaseMessage]], AIMessage | str]) -> ScriptedChatModel:
    """A scripted chat model answering with ``reply(messages)``."""
    latency = float(os.environ.get("EXAMPLE_MODEL_LATENCY", "0"))
    # record_calls=False: a server runs for long; the recorded calls would pile up.
    return ScriptedChatModel(responses=[reply], record_calls=False, delay=latency)


def summariser_model() -> ScriptedChatModel:
    """The summariser's model (yours: a small, cheap chat model)."""
    return ScriptedChatModel(responses=[summary_reply], record_calls=False)
