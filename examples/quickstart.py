"""Quickstart: wrap an existing LangGraph chat agent so its thread never outgrows a token limit.

Run it with no API key and no network:

    python examples/quickstart.py

A travel-planning agent (a one-node ``StateGraph(MessagesState)`` with a ``SqliteSaver``)
talks through ten user turns. `CompactingSupervisor` streams each answer and, whenever a run
leaves the thread over ``--token-limit`` tokens, summarises the oldest part of the
conversation and writes the shorter history as a new checkpoint. The older checkpoints stay
in the thread's history, so nothing is lost.

Offline (the default without OPENAI_API_KEY), the agent is a `ScriptedChatModel` with
canned answers and the summaries come from the package's embedded extractive summariser.
With ``--model openai:gpt-4o-mini`` (the default when OPENAI_API_KEY is set) a real model
answers and writes the summaries; ``--base-url`` points it at any OpenAI-compatible server.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from _shared import (
    SCRIPTED,
    add_demo_options,
    add_model_options,
    indent,
    openai_chat,
    parse_demo_args,
    plural,
    run_demo,
)
from compacting_supervisor import (
    SUMMARY_PREFIX,
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    is_summary,
)
from compacting_supervisor.testing import ScriptedChatModel

SYSTEM_PROMPT = (
    "You are a friendly travel-planning assistant. Answer in at most 60 words and reuse "
    "the specifics (names, dates, prices) the user gave you."
)

# --------------------------------------------------------------------------- the conversation

# The user's ten turns. The facts in their first sentences (names, dates, the flight, the
# hotel) are what a good summary must keep; the last turn asks for them back.
USER_TURNS = [
    "I'm Maya, off to Lisbon with my partner Sam from 12 to 16 May. Can you help us plan?",
    "Flight TP 1351 lands at 09:40 on 12 May. How do we get from the airport to town?",
    "We're staying at Casa Amora in Principe Real, EUR 142 a night. Is that a good base?",
    "Our budget is EUR 1,800 for the two of us, flights and hotel included. Is that enough?",
    "Sam is vegetarian. Can you suggest two restaurants for dinner?",
    "Is a day trip to Sintra worth it, and which day should we go?",
    "We'd love to hear fado one evening. Where should we go?",
    "Is the Lisboa Card worth buying for us?",
    "Please draft a short day-by-day plan.",
    "Remind me: which flight do we land on, and where are we staying?",
]

# Canned answers for the offline run, keyed by a word of the user's question.
CANNED_REPLIES = {
    "help us plan": (
        "Lisbon from 12 to 16 May is a lovely choice, Maya: warm days and long evenings. "
        "Tell me how you arrive and your budget, and I'll shape a plan."
    ),
    "airport": (
        "From the airport take the red metro line: 20 minutes to Saldanha, EUR 1.85 each. "
        "A taxi is about EUR 15 at that time of the morning."
    ),
    "casa amora": (
        "Casa Amora is a great base, a 10-minute walk from Bairro Alto and Chiado. Check-in "
        "is from 14:00, so leave your bags there first."
    ),
    "budget": (
        "Yes: four nights at EUR 142 come to EUR 568, so after flights you still have about "
        "EUR 150 a day for food, tickets and trips."
    ),
    "vegetarian": (
        "For Sam: Ao 26 Vegan Food Project near Chiado (about EUR 25 each) and the tasting "
        "menu at Prado (about EUR 55 each). Book both ahead."
    ),
    "sintra": (
        "Go to Sintra on Wednesday 14 May, quieter than the weekend. Trains from Rossio take "
        "40 minutes; book Pena Palace for 10:00 (EUR 20 each)."
    ),
    "fado": (
        "Tasca do Chico in Bairro Alto, a 5-minute walk from your hotel, has fado nightly. "
        "Arrive by 20:30 on Tuesday 13 May to get a table."
    ),
    "lisboa card": (
        "Skip the Lisboa Card (EUR 45 each for 72 hours) unless you plan several museums a "
        "day. A Viva Viagem card with EUR 10 covers metro, trams and the Sintra train."
    ),
    "day-by-day": (
        "Mon 12: arrive, Chiado, dinner at Prado. Tue 13: Alfama, tram 28, fado at Tasca do "
        "Chico. Wed 14: Sintra. Thu 15: Belem, dinner at Ao 26. Fri 16: fly home."
    ),
}


def _recall(pattern: str, messages: list[BaseMessage]) -> str:
    """Find ``pattern`` in what the agent still sees and say where it was found."""
    for message in messages:
        if match := re.search(pattern, message.text):
            summary = message.text.startswith(SUMMARY_PREFIX)
            return f"{match.group(0)} ({'from the summary' if summary else 'from our chat'})"
    return "(I no longer have that, sorry)"


def scripted_reply(messages: list[BaseMessage]) -> str:
    """Answer the user's last message offline, as the example's stand-in for an LLM.

    The recap question is answered from what the agent can still see (the running summary
    and the messages kept verbatim), so the run shows what compaction kept.
    """
    question = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
    lowered = question.lower()
    if lowered.startswith("remind me"):
        flight = _recall(r"TP \d{3,4}", messages)
        hotel = _recall(r"Casa Amora", messages)
        return f"You land on flight {flight} and you are staying at {hotel}. Enjoy Lisbon!"
    for keyword, reply in CANNED_REPLIES.items():
        if keyword in lowered:
            return reply
    return "Good question! Let me fold that into your Lisbon plan."


# --------------------------------------------------------------------------- the agent


def build_agent(model: BaseChatModel, checkpointer: SqliteSaver) -> Any:
    """Your existing graph: one "assistant" node calling a chat model, with a checkpointer."""

    def assistant(state: MessagesState) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    builder.add_edge("assistant", END)
    return builder.compile(checkpointer=checkpointer)


def make_models(
    model: str, base_url: str | None, token_limit: int
) -> tuple[BaseChatModel, HistoryManager]:
    """The agent's chat model and the history manager (with its summariser) for ``--model``."""
    if model == SCRIPTED:
        agent_model: BaseChatModel = ScriptedChatModel(responses=[scripted_reply])
        # Chosen explicitly, so the one-time "an LLM summarises better" hint stays quiet.
        summariser: BaseChatModel | str | ExtractiveSummarizer = ExtractiveSummarizer()
    else:
        agent_model = openai_chat(model, base_url)
        # HistoryManager also takes a "provider:model" string; a local server needs the client.
        summariser = model if base_url is None else agent_model
    # The summary's length target. Left out, it is a quarter of the token limit (87 tokens
    # with this demo's tiny limit), which leaves the offline summariser very terse.
    summary_tokens = max(32, token_limit // 3)
    return agent_model, HistoryManager(model=summariser, max_summary_tokens=summary_tokens)


# --------------------------------------------------------------------------- output


def print_compaction(event: dict[str, Any], number: int) -> None:
    """Describe one ``"compaction"`` stream event."""
    if event["status"] != "compacted":
        print(f"  [compaction {event['status']}] history unchanged: {event['error']}")
        return
    print(
        f"  [compaction #{number}] {event['tokens_before']} -> {event['tokens_after']} tokens, "
        f"{plural(event['messages_summarized'], 'message')} summarised "
        f"({event['messages_before']} -> {event['messages_after']} messages in the thread)"
    )
    print("    running summary now:")
    print(indent(event["summary"]))


def preview(text: str, width: int = 80) -> str:
    """The first ``width`` characters of ``text`` on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


# --------------------------------------------------------------------------- running it


def run(args: argparse.Namespace, db_path: Path) -> int:
    """Build the agent, wrap it, talk through the conversation and show what was kept."""
    agent_model, history = make_models(args.model, args.base_url, args.token_limit)
    conn = sqlite3.connect(db_path, check_same_thread=False)
    try:
        graph = build_agent(agent_model, SqliteSaver(conn))
        # The one line this package adds: wrap the compiled graph.
        supervisor = CompactingSupervisor(
            graph, history, token_limit=args.token_limit, compaction_ratio=args.ratio
        )
        config = {"configurable": {"thread_id": args.thread}}

        summariser = (
            "embedded offline extractive summariser" if args.model == SCRIPTED else args.model
        )
        print(f"agent model: {args.model}   summariser: {summariser}")
        print(f"checkpoints: {db_path}   thread: {args.thread}")
        print(f"token limit: {args.token_limit}   compaction ratio: {args.ratio}")
        if earlier := supervisor.get_state(config).values.get("messages"):
            print(f"(continuing thread {args.thread!r}: it already holds {len(earlier)} messages)")

        compactions: list[dict[str, Any]] = []
        for turn, text in enumerate(USER_TURNS, start=1):
            print(f"\n[{turn}] you: {text}")
            print("    assistant: ", end="", flush=True)
            mid_line = True
            for event in supervisor.stream({"messages": [("user", text)]}, config):
                if event["type"] == "token":
                    print(event["content"], end="", flush=True)
                elif event["type"] == "compaction":
                    print()
                    mid_line = False
                    if event["status"] == "compacted":
                        compactions.append(event)
                    print_compaction(event, len(compactions))
            if mid_line:
                print()

        messages = supervisor.get_state(config).values["messages"]
        print(f"\nThe thread now holds {len(messages)} messages:")
        for message in messages:
            if is_summary(message):
                print(f"  summary: {preview(message.text.removeprefix(SUMMARY_PREFIX))}")
            else:
                print(f"  {message.type:>7}: {preview(message.text)}")

        show_nothing_lost(supervisor, config, compactions)
        print(f"\nCompactions in this run: {len(compactions)}")
        if args.model == SCRIPTED:
            print(
                "The offline summariser only keeps trimmed first sentences. For summaries "
                "written by an LLM,\nrun with --model openai:gpt-4o-mini (needs "
                "OPENAI_API_KEY) or --base-url for a local server."
            )
    finally:
        conn.close()
    return 0


def show_nothing_lost(
    supervisor: CompactingSupervisor, config: dict[str, Any], compactions: list[dict[str, Any]]
) -> None:
    """Show that compaction only added checkpoints: every original message is still stored."""
    snapshots = list(supervisor.get_state_history(config))
    rewrites = sum("compacting_supervisor" in (s.metadata or {}) for s in snapshots)
    originals = {m.id for s in snapshots for m in s.values.get("messages", []) if not is_summary(m)}
    print(
        f"\nNothing was lost: get_state_history still lists {len(snapshots)} checkpoints "
        f"({rewrites} written by compactions),\nand between them they hold all "
        f"{len(originals)} original messages verbatim."
    )
    if compactions:
        checkpoint_id = compactions[0]["previous_checkpoint_id"]
        thread_id = config["configurable"]["thread_id"]
        before = {"configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}
        messages = supervisor.get_state(before).values["messages"]
        first, last = preview(messages[0].text, 40), preview(messages[-1].text, 40)
        print(
            f"The checkpoint before compaction #1 ({checkpoint_id}) still has\n"
            f'all {len(messages)} of its messages, from "{first}" to "{last}".'
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Run a small travel-planning LangGraph agent through a ten-turn conversation, "
            "wrapped in CompactingSupervisor: whenever the thread grows past the token limit "
            "its oldest messages are summarised and the checkpoint rewritten, with every "
            "earlier checkpoint kept. Works offline with no API key by default."
        ),
    )
    add_model_options(parser, offline="the offline scripted agent", real="answers and summarises")
    add_demo_options(parser, thread="quickstart", token_limit=350)
    return parse_demo_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart; return the process exit code."""
    return run_demo(parse_args(argv), run, "quickstart.sqlite")


if __name__ == "__main__":
    raise SystemExit(main())
