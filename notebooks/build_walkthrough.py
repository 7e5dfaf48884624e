"""Write ``compaction_walkthrough.ipynb`` from the cells below, execute it and save the outputs.

The notebook's source lives here, so a change to it is an ordinary, reviewable diff; the
``.ipynb`` beside this file is exactly what this script writes. Regenerate it after editing a
cell (or after a change in the package that moves the numbers):

    python notebooks/build_walkthrough.py

It runs offline in a few seconds on the ``python3`` Jupyter kernel of the interpreter running
it (``pip install -e ".[notebook]"`` provides it). ``--check`` rebuilds into memory and exits
with status 1 if the committed notebook differs in any cell source or text output.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().with_name("compaction_walkthrough.ipynb")
KERNEL_NAME = "python3"
TIMEOUT_SECONDS = 120

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}

# --------------------------------------------------------------------------- the cells

INTRO = """\
# Compaction walkthrough: a thread that never outgrows its limit

A long-lived agent's thread only grows. Every turn adds the user's message, the model's \
answer and any tool calls and results, and all of it is sent to the model again on the next \
turn. Sooner or later the thread outgrows the model's context window, and long before that \
it makes every call slower and more expensive.

`CompactingSupervisor` wraps your compiled LangGraph graph and leaves it unchanged. After \
each run it counts the tokens in the thread's `messages` channel; when they exceed \
`token_limit`, it summarises the oldest `compaction_ratio` of the conversation and writes the \
shorter history back into the thread's checkpoint:

```
[system messages, verbatim] [summary] [the newest messages, verbatim]
```

The checkpoint it compacted stays in the thread's history, so nothing is lost.

This notebook

1. builds a small tool-calling agent and wraps it,
2. runs it until the first compaction and compares the messages before and after,
3. streams the next turns and shows the `compaction` event,
4. replays one 48-turn conversation with `compaction_ratio` 0.2, 0.5 and 0.8 and plots the \
tokens per turn.

It runs offline with no API key: the agent's model is the package's `ScriptedChatModel` \
(it answers from a script and streams word by word, like a real chat model) and the \
summaries come from the embedded extractive summariser. Every number below is the same on \
every run.
"""

IMPORTS = """\
import matplotlib.pyplot as plt
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from compacting_supervisor import (
    CompactingSupervisor,
    ExtractiveSummarizer,
    HistoryManager,
    TokenCounter,
    count_tokens,
)
from compacting_supervisor.testing import ScriptedChatModel
"""

AGENT_INTRO = """\
## 1. A small agent

A renovation planner for a two-bedroom flat, with one tool that prices materials. The graph \
is the usual LangGraph loop: an `assistant` node calling the model, a `ToolNode`, and \
`tools_condition` between them. Nothing in it knows about compaction.

First the tool and the user's side of the conversation: 8 questions about each of 6 rooms, \
48 turns.
"""

TOOL_AND_TURNS = """\
AREAS = {"kitchen": 12, "bathroom": 6, "living room": 24, "bedroom": 14, "hallway": 8, "study": 9}
PRICES = {"flooring": 45, "paint": 9}


@tool
def estimate_cost(item: str, room: str) -> str:
    \"\"\"Estimate what an item (flooring or paint) costs for a room.\"\"\"
    area, price = AREAS[room], PRICES[item]
    return f"{item} for the {room}: {area} m2 at EUR {price}/m2 = EUR {area * price}."


QUESTIONS = [
    "We are starting on the {room}. What should we do first?",
    "How much would new flooring for the {room} cost?",
    "Which paint colour would suit the {room}?",
    "Any tips for the lighting in the {room}?",
    "How long will the work on the {room} take?",
    "What can we do ourselves in the {room} to save money?",
    "How much would painting the {room} cost?",
    "Sum up the plan for the {room}, please.",
]
USER_TURNS = [question.format(room=room) for room in AREAS for question in QUESTIONS]
len(USER_TURNS)
"""

MODEL_INTRO = """\
In your application the model is a real chat model. Here `ScriptedChatModel` calls \
`reply(messages)` for each answer: it asks for the tool when the user asks for a price, \
turns a tool result into an answer, and otherwise picks a canned reply of 20 to 70 words.
"""

SCRIPTED_MODEL = """\
COLOURS = {
    "kitchen": "sage green",
    "bathroom": "pale blue",
    "living room": "warm terracotta",
    "bedroom": "soft grey",
    "hallway": "ochre",
    "study": "deep teal",
}
REPLIES = {
    "do first": (
        "Start with the wiring and plumbing of the {room}, before any surface work. Empty the "
        "room, check the walls for damp, and photograph every socket and pipe so the "
        "electrician can quote accurately. Then go top down: ceiling, walls, floor."
    ),
    "colour": (
        "For the {room} I would pick a warm off-white with one {colour} wall. "
        "It keeps the room bright and hides marks."
    ),
    "lighting": (
        "Layer it: a dimmable ceiling light, task lights where you work, and a warm 2700 K "
        "lamp for the evening. Ask the electrician for a second circuit in the {room} while "
        "the walls are open anyway. LED strips under shelves are cheap and make a big difference."
    ),
    "how long": (
        "Allow about two weeks for the {room}: three days for the electrics, four for plaster "
        "and paint, and the rest for the floor and snagging."
    ),
    "ourselves": (
        "Stripping wallpaper, filling cracks, sanding and the first coat of paint in the {room} "
        "are easy to do yourselves. Leave electrics, plumbing and tiling to the trades: mistakes "
        "there cost more than the labour you save. Buying the materials yourselves also saves "
        "the contractor's mark-up of 10 to 15 percent."
    ),
    "sum up": (
        "Plan for the {room}: services first, then ceiling and walls, then the floor. Off-white "
        "with a {colour} wall, two lighting circuits, and you do the preparation yourselves."
    ),
}


def reply(messages):
    \"\"\"The scripted model's answer to the conversation so far.\"\"\"
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(f"Here is the estimate: {last.content} Add 10 percent for waste.")
    room = next(room for room in AREAS if room in last.text)
    for word, item in (("flooring", "flooring"), ("painting", "paint")):
        if word in last.text:
            call = {"name": "estimate_cost", "args": {"item": item, "room": room}}
            return AIMessage("", tool_calls=[{**call, "id": f"call_{len(messages)}"}])
    template = next(text for key, text in REPLIES.items() if key in last.text.lower())
    return AIMessage(template.format(room=room, colour=COLOURS[room]))
"""

GRAPH = """\
SYSTEM_PROMPT = "You plan the renovation of a two-bedroom flat. Be concrete: rooms, materials, EUR."


def build_agent():
    \"\"\"A compiled tool-calling graph with its own in-memory checkpointer.\"\"\"
    model = ScriptedChatModel(responses=[reply]).bind_tools([estimate_cost])

    def assistant(state: MessagesState):
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("assistant", assistant)
    builder.add_node("tools", ToolNode([estimate_cost]))
    builder.add_edge(START, "assistant")
    builder.add_conditional_edges("assistant", tools_condition)
    builder.add_edge("tools", "assistant")
    return builder.compile(checkpointer=InMemorySaver())


def user_input(turn, text):
    \"\"\"The input of one turn; the first also puts the system prompt into the thread.\"\"\"
    messages = [HumanMessage(text)]
    if turn == 1:
        messages.insert(0, SystemMessage(SYSTEM_PROMPT))
    return {"messages": messages}
"""

WRAP_INTRO = """\
## 2. Wrap it

The one line this package adds. The limit is tiny so that compactions come quickly; in \
production you would set it to a good part of your model's context window.

`ExtractiveSummarizer()` is the offline default, chosen explicitly (which also silences its \
one-time hint that an LLM summarises better). It keeps the first sentence of each message it \
folds away.
"""

WRAP = """\
TOKEN_LIMIT = 1000


def make_supervisor(ratio):
    \"\"\"A fresh agent, wrapped: compact after a turn that leaves over TOKEN_LIMIT tokens.\"\"\"
    history = HistoryManager(model=ExtractiveSummarizer())
    return CompactingSupervisor(
        build_agent(), history, token_limit=TOKEN_LIMIT, compaction_ratio=ratio
    )


supervisor = make_supervisor(ratio=0.5)
config = {"configurable": {"thread_id": "walkthrough"}}
"""

RUN_INTRO = """\
## 3. Run until the first compaction

`supervisor.invoke` returns exactly what the graph returns: the state at the end of the run, \
*before* any compaction. `count_tokens` counts its messages exactly, offline (OpenAI's chat \
format, `cl100k_base`), the same way the supervisor does. `last_compaction` is `None` until \
the supervisor has tried to compact the thread.
"""

RUN = """\
turns = iter(enumerate(USER_TURNS, start=1))
for turn, text in turns:
    output = supervisor.invoke(user_input(turn, text), config)
    print(f"turn {turn:2}: {count_tokens(output['messages']):4} tokens")
    result = supervisor.last_compaction(config)
    if result is not None:
        break

print(f"compacted: {result.tokens_before} -> {result.tokens_after} tokens")
"""

RESULT_INTRO = """\
The `CompactionResult` says what happened. (It also holds the ids of the checkpoint that was \
compacted and of the new one, and how long the compaction took; they change on every run, \
so they are left out here.)
"""

RESULT = """\
for field in [
    "status",
    "trigger",
    "tokens_before",
    "tokens_after",
    "tokens_saved",
    "messages_before",
    "messages_after",
    "messages_summarized",
    "still_over_limit",
]:
    print(f"{field:>19}: {getattr(result, field)}")
print()
print(result.summary)
"""

TABLES_INTRO = """\
## 4. The messages before and after

The compaction wrote a new head checkpoint; the one it compacted is still in \
`get_state_history`, with every message. A small helper prints a thread as a table: role, \
tokens, the first 70 characters, and for the old checkpoint whether each message was kept \
or folded into the summary.
"""

TABLE_HELPER = """\
counter = TokenCounter()


def role(message):
    \"\"\"The message's type, or "summary" for the running summary.\"\"\"
    if message.additional_kwargs.get("lc_source") == "summarization":
        return "summary"
    return message.type


def preview(message, width=70):
    \"\"\"The first ``width`` characters of the message's text (or of its tool calls).\"\"\"
    text = " ".join(message.text.split())
    if not text and getattr(message, "tool_calls", None):
        text = ", ".join(f"calls {call['name']}({call['args']})" for call in message.tool_calls)
    return text if len(text) <= width else text[: width - 3] + "..."


def show_messages(messages, kept_ids=None):
    \"\"\"Print one row per message; with ``kept_ids``, also whether it was kept.\"\"\"
    fates = kept_ids is not None
    print("  #  role    tokens  " + ("fate       " if fates else "") + "text")
    for number, message in enumerate(messages, start=1):
        row = f"{number:>3}  {role(message):<8}{counter.count_message(message):>6}  "
        if fates:
            row += f"{'kept' if message.id in kept_ids else 'summarised':<11}"
        print(row + preview(message))
    print(f"{len(messages)} messages, {count_tokens(messages)} tokens")
"""

BEFORE = """\
before = next(
    snapshot
    for snapshot in supervisor.get_state_history(config)
    if snapshot.config["configurable"]["checkpoint_id"] == result.previous_checkpoint_id
)
after = supervisor.get_state(config)
kept_ids = {message.id for message in after.values["messages"]}

show_messages(before.values["messages"], kept_ids)
"""

AFTER_INTRO = """\
And the thread now: the system prompt, verbatim; the summary (a `HumanMessage` marked \
`additional_kwargs={"lc_source": "summarization"}`); then the newest half of the \
conversation, verbatim. The cut never separates a tool call from its result.
"""

AFTER = """\
show_messages(after.values["messages"])
"""

STREAM_INTRO = """\
## 5. Streaming

Without `stream_mode`, `supervisor.stream` yields event dicts: `"token"` for the agent's \
LLM tokens, `"message"` for whole messages a node adds (here the tool results), one \
`"compaction"` when a compaction was attempted after the run (every `CompactionResult` field), \
and a final `"end"` with the run's values. The summariser's own tokens never reach the \
stream. We stream the next turns until the next compaction:
"""

STREAM = """\
for turn, text in turns:
    print(f"[turn {turn}] you: {text}")
    print("assistant: ", end="")
    compaction = None
    for event in supervisor.stream(user_input(turn, text), config):
        if event["type"] == "token":
            print(event["content"], end="")
        elif event["type"] == "message":
            print(f"(tool result: {event['message'].content})", end=" ")
        elif event["type"] == "compaction":
            compaction = event
    print("\\n")
    if compaction is not None:
        break

print(
    f"compaction event: status={compaction['status']}, {compaction['tokens_before']} -> "
    f"{compaction['tokens_after']} tokens, {compaction['messages_summarized']} messages summarised"
)
"""

EXPERIMENT_INTRO = """\
## 6. How `compaction_ratio` shapes the saw-tooth

`compaction_ratio` is the fraction of the conversation (counted in messages, after the system \
messages and the summary) that one compaction folds into the summary. To see what it does, we \
replay the same 48 turns on a fresh agent for each of three ratios, with the same \
`token_limit`, and record the tokens in the messages channel after every turn: the value the \
run left (the peak) and, on a turn that compacted, the value after the compaction. Plotting \
both at the same turn draws the drop as a vertical line.

A ratio this small can leave a thread still over the limit: the summary grows by a line for \
each message it folds in, which eats most of what a small cut saves. The package then logs a \
warning (shown below) and compacts again after the next turn.
"""

EXPERIMENT = """\
RATIOS = [0.2, 0.5, 0.8]


def run_conversation(ratio):
    \"\"\"Replay USER_TURNS; return [(turn, tokens the run left, tokens after compaction)].\"\"\"
    supervisor = make_supervisor(ratio)
    config = {"configurable": {"thread_id": f"ratio-{ratio}"}}
    points = []
    for turn, text in enumerate(USER_TURNS, start=1):
        output = supervisor.invoke(user_input(turn, text), config)
        peak = count_tokens(output["messages"])
        now = count_tokens(supervisor.get_state(config).values["messages"])
        points.append((turn, peak, now))
    return points


runs = {ratio: run_conversation(ratio) for ratio in RATIOS}
"""

PLOT = """\
fig, ax = plt.subplots(figsize=(10, 5))
for ratio, points in runs.items():
    turns = [turn for turn, _, _ in points for _ in range(2)]
    tokens = [value for _, peak, now in points for value in (peak, now)]
    compactions = sum(now < peak for _, peak, now in points)
    ax.plot(turns, tokens, label=f"compaction_ratio={ratio} ({compactions} compactions)")
ax.axhline(TOKEN_LIMIT, color="black", linestyle="--", linewidth=1, label="token_limit")
ax.set(
    xlabel="turn",
    ylabel="tokens in the messages channel",
    title=f"Tokens per turn, {len(USER_TURNS)} turns, token_limit={TOKEN_LIMIT}",
    ylim=(0, TOKEN_LIMIT * 1.2),
    xlim=(0, len(USER_TURNS) + 1),
)
ax.legend(loc="lower right")
ax.grid(alpha=0.3)
plt.show()
"""

TABLE_INTRO = """\
The same runs in numbers. *Mean* is the average over the 48 turns of what the thread holds \
when the next turn starts (after any compaction): roughly what every model call is sent. \
Each compaction is one summariser call.
"""

TABLE = """\
print(f"{'ratio':>5}  {'compactions':>11}  {'peak tokens':>11}  {'mean tokens':>11}  {'lowest':>6}")
for ratio, points in runs.items():
    compactions = sum(now < peak for _, peak, now in points)
    peak = max(peak for _, peak, _ in points)
    mean = sum(now for _, _, now in points) / len(points)
    lowest = min(now for _, peak, now in points if now < peak)
    print(f"{ratio:>5}  {compactions:>11}  {peak:>11}  {mean:>11.0f}  {lowest:>6}")
"""

BASELINE_INTRO = """\
For comparison, the same 48 turns on the bare graph, not wrapped:
"""

BASELINE = """\
graph = build_agent()
bare_config = {"configurable": {"thread_id": "no-compaction"}}
for turn, text in enumerate(USER_TURNS, start=1):
    output = graph.invoke(user_input(turn, text), bare_config)
print(f"without compaction: {count_tokens(output['messages'])} tokens after turn {turn}")
"""

READING = """\
## 7. Reading the plot

All three runs are the same thread until it first crosses the limit. From then on each stays \
near `token_limit` however long the conversation gets, while the bare graph's thread keeps \
growing with every turn. (The peaks can be a little over the limit: the supervisor compacts \
after a run, so a turn can leave the thread over it before the compaction brings it down.)

- **Small ratio (0.2): frequent, shallow compactions.** Each one folds only a few messages, \
so the thread stays just under the limit and the model keeps the most conversation verbatim. \
The price is a summariser call about every other turn, and a cut can be too small to get \
back under the limit at all: that is the warning above, and the next turn compacts again.
- **Large ratio (0.8): rare, deep drops.** Each compaction folds most of the conversation, \
so the thread falls far below the limit and takes several turns to climb back. The mean is \
the lowest and the summariser runs least often, but right after a drop the model sees only \
the last few messages verbatim and relies on the summary for the rest.
- **0.5 (the default)** sits in between.

Each compaction is a summariser call: with an LLM summariser that is latency and cost after \
the turn, so a small ratio buys more verbatim context with more calls. The drops here are \
shallower than an LLM would give: the extractive summary keeps a line per message and soon \
reaches its cap, a quarter of `token_limit` (`max_summary_tokens`), as the summary row in \
section 4 shows.
"""

NEXT_STEPS = """\
## Next steps

- **A real summariser.** `HistoryManager(model="openai:gpt-4o-mini")` (or any LangChain \
chat model, or your own object with `summarize` / `asummarize`) writes the summary with an \
LLM; see [Parameters](../docs/parameters.md) in the docs.
- **Your graph.** Any compiled graph with a messages channel works the same way: \
`create_agent`, `create_react_agent`, a `langgraph-supervisor` team. See \
[Usage](../docs/getting-started.md#usage).
- **Durable threads and several workers.** Compile with a `SqliteSaver` or a \
`PostgresSaver`; runs and compactions of a thread are then serialised across processes. \
See [Several workers: SQLite and Postgres](../docs/workers.md).
- **Everything is still there.** `supervisor.transcript(config)` puts the whole \
conversation back together from the checkpoints; see [The archive](../docs/archive.md).
- **A terminal demo.** `python examples/quickstart.py` streams a conversation with the same \
machinery, and with `OPENAI_API_KEY` set it uses a real model.
"""

CELLS: list[tuple[str, str]] = [
    ("markdown", INTRO),
    ("code", IMPORTS),
    ("markdown", AGENT_INTRO),
    ("code", TOOL_AND_TURNS),
    ("markdown", MODEL_INTRO),
    ("code", SCRIPTED_MODEL),
    ("code", GRAPH),
    ("markdown", WRAP_INTRO),
    ("code", WRAP),
    ("markdown", RUN_INTRO),
    ("code", RUN),
    ("markdown", RESULT_INTRO),
    ("code", RESULT),
    ("markdown", TABLES_INTRO),
    ("code", TABLE_HELPER),
    ("code", BEFORE),
    ("markdown", AFTER_INTRO),
    ("code", AFTER),
    ("markdown", STREAM_INTRO),
    ("code", STREAM),
    ("markdown", EXPERIMENT_INTRO),
    ("code", EXPERIMENT),
    ("code", PLOT),
    ("markdown", TABLE_INTRO),
    ("code", TABLE),
    ("markdown", BASELINE_INTRO),
    ("code", BASELINE),
    ("markdown", READING),
    ("markdown", NEXT_STEPS),
]
"""The notebook: ``(cell type, source)`` in order."""

# --------------------------------------------------------------------------- building


def build_notebook() -> nbformat.NotebookNode:
    """Return the notebook's cells, unexecuted, with stable cell ids and metadata."""
    notebook = nbformat.v4.new_notebook()
    for number, (kind, source) in enumerate(CELLS, start=1):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(source.rstrip("\n"), id=f"cell-{number:02d}"))
    notebook.metadata = {"kernelspec": dict(KERNELSPEC)}
    return notebook


def execute(notebook: nbformat.NotebookNode, workdir: Path | None = None) -> nbformat.NotebookNode:
    """Execute ``notebook`` on the ``python3`` kernel in ``workdir`` (a fresh temp dir if None).

    Returns a new notebook with the outputs and a ``language_info`` that names the Python
    version as ``major.minor`` only, so patch releases do not change the file.
    """
    executed = copy.deepcopy(notebook)
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as tmp:
        client = NotebookClient(
            executed,
            kernel_name=KERNEL_NAME,
            timeout=TIMEOUT_SECONDS,
            record_timing=False,
            resources={"metadata": {"path": str(workdir or tmp)}},
        )
        client.execute()
    for cell in executed.cells:  # the kernel splits a stream at arbitrary points: join it
        if cell.cell_type == "code":
            cell.outputs = merged_streams(cell.get("outputs", []))
    info = executed.metadata.get("language_info", {})
    if "version" in info:
        info["version"] = ".".join(info["version"].split(".")[:2])
    executed.metadata["kernelspec"] = dict(KERNELSPEC)
    return executed


def merged_streams(outputs: list[Any]) -> list[Any]:
    """``outputs`` with each run of consecutive same-stream outputs joined into one."""
    merged: list[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def text_outputs(notebook: nbformat.NotebookNode) -> list[list[str]]:
    """Per code cell, every output's text (streams, text/plain) and the kinds of its images."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for output in merged_streams(copy.deepcopy(cell.get("outputs", []))):
            if output.output_type == "stream":
                texts.append(f"{output.name}: {output.text}")
            elif output.output_type in ("display_data", "execute_result"):
                texts.append(output.data.get("text/plain", ""))
                texts.extend(kind for kind in output.data if kind.startswith("image/"))
            elif output.output_type == "error":
                texts.append(f"error: {output.ename}: {output.evalue}")
        cells.append(texts)
    return cells


def sources(notebook: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    """``(id, type, source)`` of every cell."""
    return [(cell.get("id", ""), cell.cell_type, cell.source) for cell in notebook.cells]


def main(argv: list[str] | None = None) -> int:
    """Build and execute the notebook; write it, or with ``--check`` compare it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="Do not write: exit 1 if the committed notebook's sources or outputs are stale.",
    )
    args = parser.parse_args(argv)
    executed = execute(build_notebook())
    if args.check:
        committed = nbformat.read(NOTEBOOK, as_version=4)
        same_sources = sources(committed) == sources(executed)
        same = same_sources and text_outputs(committed) == text_outputs(executed)
        print(f"{NOTEBOOK.name}: {'up to date' if same else 'STALE: run this script'}")
        return 0 if same else 1
    nbformat.validate(executed)
    nbformat.write(executed, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
