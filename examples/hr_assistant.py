"""HR assistant: a langgraph-supervisor team whose thread is compacted as it grows.

Run it with no API key and no network:

    python examples/hr_assistant.py

A supervisor hands each request to one of two agents built with LangChain's ``create_agent``:
a candidates agent (tools: ``list_candidates``, ``read_cv``) and a calendar agent (tools:
``schedule_interview``, ``list_interviews``). The team is compiled by langgraph-supervisor's
``create_supervisor`` with a ``SqliteSaver`` and wrapped, unchanged, in `CompactingSupervisor`.
A recruiter talks to it for twelve turns ("show me all candidates", "tell me about Alice",
"schedule an interview with her" ...). The demo streams every agent's tokens and, whenever
a turn leaves the thread over ``--token-limit`` tokens, shows the compaction: tokens before
and after, how many messages were summarised, and the running summary. The last turn asks
for a recap that the supervisor can only give from what compaction kept.

Offline (the default without OPENAI_API_KEY), the three models are scripted stand-ins that
follow the conversation (they resolve "her" to the last candidate named, even once that name
survives only in the summary) and the summaries come from the package's embedded extractive
summariser. ``--model openai:gpt-4o-mini`` (the default when OPENAI_API_KEY is set) runs the
team and the summariser on a real model; ``--base-url`` points it at any OpenAI-compatible
server (Ollama, vLLM, LM Studio ...).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph_supervisor import create_supervisor

from _shared import (
    SCRIPTED,
    add_demo_options,
    add_model_options,
    indent,
    openai_chat,
    parse_demo_args,
    plural,
    positive_int,
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

# --------------------------------------------------------------------------- the HR data

# What the candidates agent's tools read. The ids, years and dates are the facts a good
# summary must keep: the last turn asks for them back.
CANDIDATES: dict[str, dict[str, str]] = {
    "Alice Chen": {
        "id": "CAND-101",
        "headline": "senior backend engineer, 8 years, Go and PostgreSQL",
        "cv": (
            "Alice Chen (CAND-101), senior backend engineer, 8 years. Led the payments "
            "platform at Finlo (Go, PostgreSQL, Kafka), cut p99 latency from 900 to 120 ms. "
            "Before that 3 years at Shopwise on search. MSc Computer Science, TU Delft. "
            "Notice period 1 month; salary expectation EUR 95k; based in Rotterdam, open to "
            "hybrid."
        ),
    },
    "Bob Martins": {
        "id": "CAND-102",
        "headline": "platform engineer, 6 years, Python and Kubernetes",
        "cv": (
            "Bob Martins (CAND-102), platform engineer, 6 years. Runs 40 Kubernetes clusters "
            "at Cloudnine, wrote their Python deployment tooling, on-call lead. Certified "
            "Kubernetes Administrator. BSc Software Engineering, Porto. Notice period 2 "
            "months; salary expectation EUR 85k; remote from Lisbon."
        ),
    },
    "Carol Diaz": {
        "id": "CAND-103",
        "headline": "data engineer, 5 years, Spark and dbt",
        "cv": (
            "Carol Diaz (CAND-103), data engineer, 5 years. Built the dbt and Spark "
            "warehouse at Mediaflow (2 PB), mentors three juniors, speaker at PyData Madrid. "
            "BSc Mathematics, Madrid. Notice period 3 weeks; salary expectation EUR 80k; "
            "relocating to Amsterdam in March."
        ),
    },
    "Dan Okafor": {
        "id": "CAND-104",
        "headline": "full-stack engineer, 4 years, TypeScript and Go",
        "cv": (
            "Dan Okafor (CAND-104), full-stack engineer, 4 years. Shipped the booking app at "
            "Tripnest (TypeScript, React, Go services), owns their design system. Bootcamp "
            "graduate, previously a civil engineer. Notice period 1 month; salary "
            "expectation EUR 70k; based in Amsterdam."
        ),
    },
}

# The recruiter's twelve turns.
USER_TURNS = [
    "Show me all candidates for the backend engineer role.",
    "Tell me about Alice.",
    "Great, schedule an interview with her on Tuesday 14 January at 10:00.",
    "Now check Bob's CV.",
    "He looks solid too. Book him for Wednesday 15 January at 14:00.",
    "What does Carol's CV say?",
    "And Dan's?",
    "Show me the interview calendar.",
    "Let's also see Carol: Thursday 16 January at 11:30.",
    "Which of them has Kubernetes experience? Check the CVs again.",
    "Move on: book Dan for Friday 17 January at 09:00.",
    "Remind me: whose CVs have we read, and who is booked when?",
]

SUPERVISOR_PROMPT = (
    "You are the supervisor of an HR team. Hand requests about candidates and CVs to "
    "candidates_agent and requests about interviews and the calendar to calendar_agent. "
    "When an agent is done, give the recruiter a one-sentence answer. Answer recap questions "
    "yourself from the conversation."
)
CANDIDATES_PROMPT = (
    "You are the candidates agent of an HR team. Use list_candidates and read_cv, then "
    "answer in at most 60 words, keeping names, candidate ids, years and salaries."
)
CALENDAR_PROMPT = (
    "You are the calendar agent of an HR team. Use schedule_interview to book interviews "
    "and list_interviews to show the calendar. Answer in at most 40 words."
)


@dataclass
class Calendar:
    """The interviews booked in this process (what the calendar agent's tools change)."""

    booked: list[tuple[str, str, str]] = field(default_factory=list)
    """``(booking id, candidate, when)`` in booking order."""


def make_tools(calendar: Calendar) -> tuple[list[BaseTool], list[BaseTool]]:
    """The candidates agent's tools and the calendar agent's tools."""

    @tool
    def list_candidates(role: str) -> str:
        """List the candidates who applied for a role, one line each."""
        return "\n".join(
            f"{name} ({data['id']}): {data['headline']}" for name, data in CANDIDATES.items()
        )

    @tool
    def read_cv(name: str) -> str:
        """Read a candidate's CV by name (first name is enough)."""
        found = find_candidate(name)
        if found is None:
            return f"No candidate called {name!r}. Known: {', '.join(CANDIDATES)}."
        return CANDIDATES[found]["cv"]

    @tool
    def schedule_interview(candidate: str, when: str) -> str:
        """Book a one-hour interview with a candidate, e.g. when='Tuesday 14 January 10:00'."""
        found = find_candidate(candidate) or candidate
        booking = f"INT-{2041 + len(calendar.booked)}"
        calendar.booked.append((booking, found, when))
        return f"Booked {booking}: {found}, {when}, room Tagus, with the hiring panel."

    @tool
    def list_interviews() -> str:
        """List the interviews booked so far."""
        if not calendar.booked:
            return "No interviews booked yet."
        return "\n".join(f"{b}: {name}, {when}" for b, name, when in calendar.booked)

    return [list_candidates, read_cv], [schedule_interview, list_interviews]


def find_candidate(text: str) -> str | None:
    """The candidate whose first or full name appears in ``text``, if any."""
    for name in CANDIDATES:
        if re.search(rf"\b{name.split()[0]}\b", text, re.IGNORECASE):
            return name
    return None


# --------------------------------------------------------------------------- offline models
# Scripted stand-ins for an LLM: each looks at the conversation it is given (only what the
# thread still holds after compactions, plus its own prompt) and answers like a small model.


def _call(name: str, args: dict[str, Any] | None = None) -> AIMessage:
    call = {"name": name, "args": args or {}, "id": f"call_{uuid.uuid4().hex[:12]}"}
    return AIMessage("", tool_calls=[call])


def _from_summary(message: BaseMessage) -> bool:
    # By its text: a model behind an API sees the summary as a plain user message.
    return message.text.startswith(SUMMARY_PREFIX)


def _is_request(message: BaseMessage) -> bool:
    return isinstance(message, HumanMessage) and not _from_summary(message)


def _request(messages: Sequence[BaseMessage]) -> str:
    """The recruiter's latest message."""
    return next(m.text for m in reversed(messages) if _is_request(m))


def _candidate_in(request: str, messages: Sequence[BaseMessage]) -> str | None:
    """Who the request means: a name in it, else ("her", "him") the last candidate named."""
    if found := find_candidate(request):
        return found
    for message in reversed(messages[:-1]):
        if isinstance(message, AIMessage | HumanMessage) and (found := _last_named(message.text)):
            return found
    return None


def _last_named(text: str) -> str | None:
    positions = {
        text.rfind(name.split()[0]): name for name in CANDIDATES if name.split()[0] in text
    }
    return positions[max(positions)] if positions else None


def _when(request: str) -> str:
    found = re.search(r"(\w+day \d+ \w+) at (\d\d:\d\d)", request)
    return f"{found.group(1)} {found.group(2)}" if found else "next Monday 10:00"


def _wants_calendar(request: str) -> bool:
    return bool(re.search(r"\b(schedule|book|calendar|interview calendar)\b", request, re.I)) or (
        bool(re.search(r"\d\d:\d\d", request))
    )


def supervisor_reply(messages: list[BaseMessage]) -> AIMessage:
    """Route the request to an agent; close the turn once the agent is back."""
    last = messages[-1]
    if _is_request(last):
        request = last.text
        if request.lower().startswith("remind me"):
            return AIMessage(recap(messages))
        agent = "calendar_agent" if _wants_calendar(request) else "candidates_agent"
        return _call(f"transfer_to_{agent}")
    answer = next(
        m for m in reversed(messages) if isinstance(m, AIMessage) and m.text and not m.tool_calls
    )
    if "Booked" in answer.text and "so far" not in answer.text:
        return AIMessage("Done: it is in the calendar and the invitations are out. What next?")
    return AIMessage(f"That's the {answer.name or 'team'}'s answer. What next?")


def recap(messages: Sequence[BaseMessage]) -> str:
    """Answer the recap from what the thread still shows, saying where each fact was found."""

    def source(message: BaseMessage) -> str:
        return "summary" if _from_summary(message) else "chat"

    read: dict[str, str] = {}
    booked: dict[str, str] = {}
    for message in messages:
        for match in re.finditer(r"\b(CAND-\d{3})\b", message.text):
            name = next(n for n, d in CANDIDATES.items() if d["id"] == match.group(1))
            read.setdefault(name, source(message))
        for match in re.finditer(
            r"Booked (INT-\d+): ([A-Z]\w+ [A-Z]\w+), ([^,.;\n]+)", message.text
        ):
            booked.setdefault(match.group(2), f"{match.group(3)} ({source(message)})")
    cvs = ", ".join(f"{name} ({where})" for name, where in read.items()) or "none I can see"
    slots = "; ".join(f"{name}: {when}" for name, when in booked.items()) or "nobody I can see"
    return f"CVs we looked at: {cvs}. Interviews: {slots}."


def candidates_reply(messages: list[BaseMessage]) -> AIMessage:
    """List, read one CV, or re-read them all (for a skills question), then answer."""
    last = messages[-1]
    request = _request(messages)
    if isinstance(last, ToolMessage) and last.name == "transfer_to_candidates_agent":
        if re.search(r"\ball candidates\b|\blist\b", request, re.I):
            return _call("list_candidates", {"role": "backend engineer"})
        if re.search(r"kubernetes", request, re.I):
            calls = [
                {"name": "read_cv", "args": {"name": name}, "id": f"call_{uuid.uuid4().hex[:12]}"}
                for name in CANDIDATES
            ]
            return AIMessage("", tool_calls=calls)  # parallel calls
        name = _candidate_in(request, messages) or "Alice"
        return _call("read_cv", {"name": name})
    if isinstance(last, ToolMessage) and last.name == "list_candidates":
        lines = last.text.splitlines()
        return AIMessage(f"{len(lines)} candidates applied: " + "; ".join(lines) + ".")
    if isinstance(last, ToolMessage) and last.name == "read_cv":
        if re.search(r"kubernetes", request, re.I):
            results = [m.text for m in messages if isinstance(m, ToolMessage)][-len(CANDIDATES) :]
            fit = [r.split(" (")[0] for r in results if "Kubernetes" in r]
            return AIMessage(f"Kubernetes experience: {', '.join(fit) or 'nobody'}.")
        first = last.text.split(". ")
        return AIMessage(f"{first[0]}. {first[1]}. {first[-1].rstrip('.')}.")
    return AIMessage("I could not find that, sorry.")


def calendar_reply(messages: list[BaseMessage]) -> AIMessage:
    """Book the interview the request names, or show the calendar."""
    last = messages[-1]
    request = _request(messages)
    if isinstance(last, ToolMessage) and last.name == "transfer_to_calendar_agent":
        if re.search(r"\bcalendar\b", request, re.I):
            return _call("list_interviews")
        who = _candidate_in(request, messages) or "unknown candidate"
        return _call("schedule_interview", {"candidate": who, "when": _when(request)})
    if isinstance(last, ToolMessage) and last.name == "schedule_interview":
        return AIMessage(f"{last.text} Invitations sent.")
    if isinstance(last, ToolMessage) and last.name == "list_interviews":
        return AIMessage("Booked so far: " + "; ".join(last.text.splitlines()) + ".")
    return AIMessage("I could not do that, sorry.")


# --------------------------------------------------------------------------- the team


def build_team(
    models: dict[str, BaseChatModel], calendar: Calendar, checkpointer: SqliteSaver
) -> Any:
    """Your existing multi-agent graph: a supervisor and two agents, with a checkpointer."""
    candidate_tools, calendar_tools = make_tools(calendar)
    candidates_agent = create_agent(
        models["candidates_agent"],
        candidate_tools,
        system_prompt=CANDIDATES_PROMPT,
        name="candidates_agent",
    )
    calendar_agent = create_agent(
        models["calendar_agent"],
        calendar_tools,
        system_prompt=CALENDAR_PROMPT,
        name="calendar_agent",
    )
    team = create_supervisor(
        [candidates_agent, calendar_agent],
        model=models["supervisor"],
        prompt=SUPERVISOR_PROMPT,
        output_mode="full_history",  # the agents' tool calls and results stay in the thread
    )
    return team.compile(checkpointer=checkpointer)


def make_models(
    model: str, base_url: str | None
) -> tuple[dict[str, BaseChatModel], BaseChatModel | str | ExtractiveSummarizer]:
    """The three agents' chat models and the summariser for ``--model``."""
    if model == SCRIPTED:
        replies: dict[str, Callable[[list[BaseMessage]], AIMessage]] = {
            "supervisor": supervisor_reply,
            "candidates_agent": candidates_reply,
            "calendar_agent": calendar_reply,
        }
        # The summariser is chosen explicitly, so the one-time "an LLM summarises better"
        # hint stays quiet.
        return (
            {name: ScriptedChatModel(responses=[reply]) for name, reply in replies.items()},
            ExtractiveSummarizer(),
        )
    chat = openai_chat(model, base_url, temperature=0)
    # HistoryManager also takes a "provider:model" string; a local server needs the client.
    summariser: BaseChatModel | str = model if base_url is None else chat
    # create_supervisor and create_agent bind their own tools to the one chat model.
    models = {"supervisor": chat, "candidates_agent": chat, "calendar_agent": chat}
    return models, summariser


# --------------------------------------------------------------------------- output


def print_compaction(event: dict[str, Any], number: int, previous_summary: str) -> None:
    """Describe one ``"compaction"`` stream event (a summary's carried lines are counted)."""
    if event["status"] != "compacted":
        print(f"  [compaction {event['status']}] history unchanged: {event['error']}")
        return
    saved = event["tokens_before"] - event["tokens_after"]
    print(
        f"  [compaction #{number}] {event['tokens_before']} -> {event['tokens_after']} tokens "
        f"(-{saved}), {plural(event['messages_summarized'], 'message')} summarised, "
        f"{event['messages_before']} -> {event['messages_after']} messages in the thread"
    )
    lines = event["summary"].splitlines()
    carried = len(previous_summary.splitlines()) - 1  # its lines, after the header
    # The extractive summariser appends lines; an LLM rewrites the summary: show it whole.
    extended = event["summary"].startswith(previous_summary.rstrip())
    if carried > 0 and extended and len(lines) > carried + 1:
        print(f"    running summary now: the last one's {carried} lines, then")
        lines = lines[carried + 1 :]
    else:
        print("    running summary now:")
    print(indent("\n".join(lines), width=94))


class TurnPrinter:
    """Prints one turn's stream: each agent's tokens under its name, then compactions."""

    def __init__(self) -> None:
        self.speaker: str | None = None
        self.compactions: list[dict[str, Any]] = []

    def token(self, agent: str, text: str) -> None:
        """Print streamed text, starting a new line when another agent speaks."""
        if agent != self.speaker:
            print(f"\n    {agent}: ", end="")
            self.speaker = agent
        print(text, end="", flush=True)

    def tool_result(self, agent: str, message: ToolMessage) -> None:
        """Show what an agent's tool returned (hand-offs between agents are not shown)."""
        if message.name is None or message.name.startswith("transfer_"):
            return
        text = " ".join(message.text.split())
        print(
            f"\n    {agent} [{message.name}] {text[:77] + '...' if len(text) > 80 else text}",
            end="",
        )
        self.speaker = None

    def compaction(self, event: dict[str, Any]) -> None:
        """Show a compaction event."""
        print()
        self.speaker = None
        previous = self.compactions[-1]["summary"] if self.compactions else ""
        if event["status"] == "compacted":
            self.compactions.append(event)
        print_compaction(event, len(self.compactions), previous)


# --------------------------------------------------------------------------- running it


def run(args: argparse.Namespace, db_path: Path) -> int:
    """Build the team, wrap it, talk through the recruiter's turns and show what was kept."""
    models, summariser = make_models(args.model, args.base_url)
    conn = sqlite3.connect(db_path, check_same_thread=False)
    try:
        graph = build_team(models, Calendar(), SqliteSaver(conn))
        # The one line this package adds: wrap the compiled graph.
        supervisor = CompactingSupervisor(
            graph,
            HistoryManager(model=summariser, max_summary_tokens=args.summary_tokens),
            token_limit=args.token_limit,
            compaction_ratio=args.ratio,
        )
        config = {"configurable": {"thread_id": args.thread}}
        summariser_name = (
            "embedded offline extractive summariser" if args.model == SCRIPTED else args.model
        )
        where = "scripted stand-in models" if args.model == SCRIPTED else args.model
        if args.base_url:
            where += f" at {args.base_url}"
        print(f"team: supervisor + candidates_agent + calendar_agent on {where}")
        print(f"summariser: {summariser_name}")
        kept = "" if args.db else " (temporary: --db FILE keeps it)"
        print(f"checkpoints: {db_path}{kept}   thread: {args.thread}")
        print(f"token limit: {args.token_limit}   compaction ratio: {args.ratio}")
        if earlier := supervisor.get_state(config).values.get("messages"):
            print(f"(continuing thread {args.thread!r}: it already holds {len(earlier)} messages)")

        printer = TurnPrinter()
        for turn, text in enumerate(USER_TURNS, start=1):
            print(f"\n[{turn}] recruiter: {text}", end="")
            printer.speaker = None
            for event in supervisor.stream({"messages": [("user", text)]}, config):
                if event["type"] == "token":
                    printer.token(event["agent"], event["content"])
                elif event["type"] == "message" and isinstance(event["message"], ToolMessage):
                    printer.tool_result(event["agent"], event["message"])
                elif event["type"] == "compaction":
                    printer.compaction(event)
            messages = supervisor.get_state(config).values["messages"]
            tokens = supervisor.history_manager.token_counter.count(messages)
            print(f"\n    ({plural(len(messages), 'message')}, {tokens} tokens in the thread)")

        show_what_was_kept(supervisor, config, printer.compactions)
        if args.model == SCRIPTED:
            print(
                "\nThe offline summariser keeps trimmed first sentences. For summaries written "
                "by an LLM, run with\n--model openai:gpt-4o-mini (needs OPENAI_API_KEY) or "
                "--base-url for a local server."
            )
    finally:
        conn.close()
    return 0


def show_what_was_kept(
    supervisor: CompactingSupervisor, config: dict[str, Any], compactions: list[dict[str, Any]]
) -> None:
    """Show the thread as the agents now see it, and that every original message is stored."""
    messages = supervisor.get_state(config).values["messages"]
    print(f"\nThe thread now holds {plural(len(messages), 'message')}:")
    for message in messages:
        calls = ", ".join(
            f"{c['name']}({', '.join(f'{k}={v!r}' for k, v in c['args'].items())})"
            for c in getattr(message, "tool_calls", [])
        )
        text = " ".join(message.text.removeprefix(SUMMARY_PREFIX).split()) or calls
        label = "summary" if is_summary(message) else message.type
        print(f"  {label:>8}: {text[:84] + '...' if len(text) > 87 else text}")
    transcript = supervisor.transcript(config)
    print(
        f"\nCompactions in this run: {len(compactions)}. Nothing was lost: the transcript "
        f"across them holds {plural(len(transcript.messages), 'message')}\n"
        f"(supervisor.transcript(config).to_markdown() exports it; the earlier checkpoints "
        f"stay in get_state_history)."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Run an HR assistant (a langgraph-supervisor team: a supervisor, a candidates "
            "agent and a calendar agent) through a twelve-turn recruiting conversation, "
            "wrapped in CompactingSupervisor: whenever the thread grows past the token limit "
            "its oldest messages are summarised and the checkpoint rewritten, with every "
            "earlier checkpoint kept. Works offline with no API key by default."
        ),
    )
    add_model_options(
        parser,
        offline="offline scripted agents",
        real="runs the team (it must call tools) and writes the summaries",
    )
    add_demo_options(parser, thread="hr", token_limit=1600)
    parser.add_argument(
        "--summary-tokens",
        type=positive_int,
        default=700,
        metavar="N",
        help="Target length of the running summary in tokens. Default: %(default)s "
        "(the offline summariser folds its middle lines beyond it).",
    )
    return parse_demo_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    """Run the HR assistant demo; return the process exit code."""
    return run_demo(parse_args(argv), run, "hr_assistant.sqlite")


if __name__ == "__main__":
    raise SystemExit(main())
