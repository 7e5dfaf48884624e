"""Code that runs in child processes for the concurrency and crash tests."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from compacting_supervisor import CompactingSupervisor, ExtractiveSummarizer, HistoryManager

FILLER = " ".join(f"Detail number {i} about the request is recorded here." for i in range(6))


def turn_text(worker: int, turn: int) -> str:
    return f"Marker w{worker}-t{turn}. {FILLER}"


def marker_graph(checkpointer: Any) -> Any:
    """A chat graph whose reply never repeats the user's marker."""

    def assistant(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Noted. {FILLER}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")
    return builder.compile(checkpointer=checkpointer)


@contextmanager
def open_saver(kind: str, where: str) -> Iterator[Any]:
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(where, check_same_thread=False, timeout=60)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    else:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(where) as saver:
            yield saver


def supervisor_on(saver: Any, token_limit: int = 600) -> CompactingSupervisor:
    history = HistoryManager(model=ExtractiveSummarizer(), max_summary_tokens=50_000)
    return CompactingSupervisor(marker_graph(saver), history, token_limit=token_limit)


def send_turns(kind: str, where: str, thread: str, worker: int, turns: int) -> None:
    """A worker process: send ``turns`` turns to one thread, compacting as it goes."""
    with open_saver(kind, where) as saver:
        supervisor = supervisor_on(saver)
        config = {"configurable": {"thread_id": thread}}
        for turn in range(turns):
            supervisor.invoke({"messages": [HumanMessage(turn_text(worker, turn))]}, config)


def churn(kind: str, where: str, thread: str, worker: int) -> None:
    """A crash-test victim: turns and compactions forever, until it is killed."""
    with open_saver(kind, where) as saver:
        supervisor = supervisor_on(saver, token_limit=300)
        config = {"configurable": {"thread_id": thread}}
        turn = 0
        while True:
            supervisor.invoke({"messages": [HumanMessage(turn_text(worker, turn))]}, config)
            print(turn, flush=True)  # the parent knows how far it got
            turn += 1


if __name__ == "__main__":  # python -m tests.workers churn KIND WHERE THREAD WORKER
    churn(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
