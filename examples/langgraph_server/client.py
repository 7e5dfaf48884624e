"""Drive the served graphs with LangGraph's own client, as an app would.

Start the server in this folder first, then run the client from anywhere:

    cd examples/langgraph_server
    langgraph dev --no-browser          # serves agent.py (and team.py) on port 2024
    python client.py                    # another terminal

One thread gets a fact per run until the conversation is compacted: each run prints how
many messages the thread holds (read back with ``threads.get_state``), and the first run
after a compaction shows the summary the server now stores. Then the agent recalls what it
can still see (the summary and the recent messages), ``threads.get_history`` shows that
every original is still in the thread's checkpoints, and a payment pauses for approval
(``interrupt()``) and resumes with ``Command(resume="yes")``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx
from langgraph_sdk import get_sync_client
from langgraph_sdk.schema import Command

DEFAULT_URL = "http://127.0.0.1:2024"
SUMMARY_PREFIX = "Here is a summary"
"""How the summary message starts (``compacting_supervisor.SUMMARY_PREFIX``)."""


def fact(n: int, tag: str = "A") -> str:
    """The n-th thing the user tells the assistant."""
    return (
        f"Remember FACT-{tag}-{n}: the review of project {n} moved to room {n * 7}, on floor "
        f"{n}, at {n + 8} o'clock, with the whole design team."
    )


def is_summary(message: dict[str, Any]) -> bool:
    return message["type"] == "human" and str(message["content"]).startswith(SUMMARY_PREFIX)


def say(client: Any, thread_id: str, graph: str, text: str) -> Any:
    """One run: the user's message in, wait for the run to end."""
    return client.runs.wait(
        thread_id, graph, input={"messages": [{"role": "user", "content": text}]}
    )


def messages_of(client: Any, thread_id: str) -> list[dict[str, Any]]:
    return list(client.threads.get_state(thread_id)["values"]["messages"])


def last_answer(client: Any, thread_id: str) -> str:
    return str(messages_of(client, thread_id)[-1]["content"])


def server_is_up(url: str) -> bool:
    """Whether a LangGraph Server answers ``GET /ok`` at ``url`` (asked once, no retries)."""
    try:
        return httpx.get(f"{url}/ok", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def run(url: str, graph: str, runs: int) -> int:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    print(f"thread {thread_id} on {url}, graph {graph!r}\n")

    compactions = 0
    summary_id = None
    for n in range(1, runs + 1):
        say(client, thread_id, graph, fact(n))
        messages = messages_of(client, thread_id)
        first = messages[0]
        note = ""
        if is_summary(first) and first.get("id") != summary_id:
            compactions += 1
            summary_id = first.get("id")
            note = f"  <- compacted (#{compactions}): a summary first"
        print(f"[run {n}] the thread holds {len(messages)} messages{note}")
        if note:
            print("    " + "\n    ".join(str(first["content"]).splitlines()))

    say(client, thread_id, graph, "Please recall every fact I told you.")
    print(f"\nrecall: {last_answer(client, thread_id)}")

    history = client.threads.get_history(thread_id, limit=1000)
    said = {
        m["content"]
        for checkpoint in history
        for m in checkpoint["values"].get("messages", [])
        if m["type"] == "human" and not is_summary(m)
    }
    kept = sum(fact(n) in said for n in range(1, runs + 1))
    print(f"history: {len(history)} checkpoints still hold {kept} of the {runs} facts verbatim")

    say(client, thread_id, graph, "Please pay INV-7 now.")
    state = client.threads.get_state(thread_id)
    for pending in state.get("interrupts") or []:
        print(f"\npaused for approval: {pending['value']['question']}")
    client.runs.wait(thread_id, graph, command=Command(resume="yes"))
    print(f"resumed with 'yes': {last_answer(client, thread_id)}")
    messages = messages_of(client, thread_id)
    if is_summary(messages[0]) and messages[0].get("id") != summary_id:
        compactions += 1  # around the payment
    print(f"\n{compactions} compaction(s); the thread now holds {len(messages)} messages.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="the server (default: %(default)s)")
    parser.add_argument(
        "--graph", default="agent", help="a graph of langgraph.json (default: %(default)s)"
    )
    parser.add_argument(
        "--runs", type=int, default=8, help="facts to tell, one per run (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if not server_is_up(args.url):
        print(
            f"error: no LangGraph Server answers at {args.url}. Start one first: "
            "`cd examples/langgraph_server && langgraph dev --no-browser`, or pass --url.",
            file=sys.stderr,
        )
        return 1
    return run(args.url, args.graph, args.runs)


if __name__ == "__main__":
    sys.exit(main())
