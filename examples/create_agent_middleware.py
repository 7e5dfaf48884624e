"""One long `create_agent` run that stays under its token limit: `CompactionMiddleware`.

Run it with no API key and no network:

    python examples/create_agent_middleware.py

An accounts assistant built with LangChain's ``create_agent`` is asked to reconcile 24
invoices in ONE request. It calls ``read_invoice`` once per invoice, so the run makes 25
model calls and, without compaction, the last one would read every invoice so far. With
``CompactionMiddleware`` in ``middleware=[...]`` each model call is checked first: over
``--token-limit`` tokens, the older tool exchanges are summarised (the request itself stays
verbatim) and the shorter history is written as the step's state update, so the agent's
checkpointer (a SQLite file) keeps every original in the checkpoints before it.

Offline (the default without OPENAI_API_KEY) the agent is a `ScriptedChatModel` that reads
the invoices in turn and totals what it can still see (in the summary and the recent
messages); the summaries come from the embedded extractive summariser. With ``--model
openai:gpt-4o-mini`` a real model calls the tool and writes the summaries.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sqlite3
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

from _shared import (
    SCRIPTED,
    add_demo_options,
    add_model_options,
    openai_chat,
    parse_demo_args,
    plural,
    run_demo,
)
from compacting_supervisor import (
    CompactionMiddleware,
    ExtractiveSummarizer,
    HistoryManager,
    KeepTokens,
    TokenCounter,
    is_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

INVOICES = 24
REQUEST = f"Please reconcile invoices INV-1001 to INV-{1000 + INVOICES} and give me the total."
SYSTEM_PROMPT = "You are an accounts assistant. Read every invoice you are asked about."


@tool
def read_invoice(number: int) -> str:
    """Read invoice ``INV-<number>``: supplier, amount and status."""
    amount = 100 + (number * 37) % 900
    return (
        f"INV-{number}: supplier Nordvik Supplies AB, amount EUR {amount}.00, status approved. "
        "Lines: office chairs, desk lamps, cables and delivery; paid by bank transfer within "
        "30 days; cost centre 4410, approved by the facilities manager."
    )


def scripted_agent() -> ScriptedChatModel:
    """Reads the invoices one per model call, then totals the amounts it can still see."""
    steps = itertools.count()

    def step(messages: list[BaseMessage]) -> AIMessage:
        n = next(steps)
        if n < INVOICES:
            call = {"name": "read_invoice", "args": {"number": 1001 + n}, "id": f"inv_{n}"}
            return AIMessage("", tool_calls=[call])
        seen = "\n".join(m.text for m in messages)
        amounts = dict(re.findall(r"(INV-\d+)\D{0,80}?EUR (\d+)", seen))
        total = sum(int(a) for a in amounts.values())
        return AIMessage(
            f"Reconciled {len(amounts)} of {INVOICES} invoices I can still see in full or in "
            f"the summary; their total is EUR {total:,}."
        )

    return ScriptedChatModel(responses=[step])


def make_agent(args: argparse.Namespace, checkpointer: SqliteSaver) -> tuple[Any, Any, Any]:
    """The agent, its model (to read what each call was sent) and the middleware."""
    summariser: BaseChatModel | ExtractiveSummarizer
    if args.model == SCRIPTED:
        model: BaseChatModel = scripted_agent()
        summariser = ExtractiveSummarizer()
    else:
        model = openai_chat(args.model, args.base_url)
        summariser = model
    middleware = CompactionMiddleware(
        history_manager=HistoryManager(model=summariser, max_summary_tokens=400),
        token_limit=args.token_limit,
        keep=KeepTokens(args.token_limit // 3),
    )
    agent = create_agent(
        model,
        tools=[read_invoice],
        system_prompt=SYSTEM_PROMPT,
        middleware=[middleware],
        checkpointer=checkpointer,
    )
    return agent, model, middleware


def run(args: argparse.Namespace, db_path: Path) -> int:
    """Send the one request, then show what each model call read and what was kept."""
    with sqlite3.connect(db_path, check_same_thread=False) as conn:
        agent, model, middleware = make_agent(args, SqliteSaver(conn))
        config = {"configurable": {"thread_id": args.thread}}
        print(f"user: {REQUEST}\n")
        state = agent.invoke({"messages": [("user", REQUEST)]}, config)
        print(f"assistant: {state['messages'][-1].text}")
        if args.model == SCRIPTED:
            print(
                "(offline, the extractive summariser keeps a short gist of each older result;"
                " a chat model's summary keeps every amount: --model openai:gpt-4o-mini)"
            )
        print()
        history = list(agent.get_state_history(config))
        summaries = {  # each compaction wrote one summary message
            snapshot.values["messages"][0].id
            for snapshot in history
            if snapshot.values.get("messages") and is_summary(snapshot.values["messages"][0])
        }
        result = middleware.last_compaction(args.thread)
        if isinstance(model, ScriptedChatModel):
            counter = TokenCounter()
            sizes = [counter.count(call) for call in model.calls]
            print(
                f"{plural(len(sizes), 'model call')} in one run; the largest read "
                f"{max(sizes):,} tokens (limit {args.token_limit:,})."
            )
        if result is not None:
            print(
                f"Last compaction: {result.status}, {result.tokens_before:,} -> "
                f"{result.tokens_after:,} tokens, {plural(result.messages_summarized, 'message')}"
                " summarised."
            )
        originals = {m.text for snapshot in history for m in snapshot.values.get("messages", [])}
        kept = sum(
            1 for n in range(INVOICES) if read_invoice.invoke({"number": 1001 + n}) in originals
        )
        print(
            f"{plural(len(summaries), 'compaction')} during the run; every invoice the tool "
            f"returned is still in the {len(history)} checkpoints: {kept} of {INVOICES}."
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the example; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_options(parser, offline="the scripted agent", real="calls the tool and summarises")
    add_demo_options(parser, thread="invoices", token_limit=1_000)
    return run_demo(parse_demo_args(parser, argv), run, "invoices.sqlite")


if __name__ == "__main__":
    raise SystemExit(main())
