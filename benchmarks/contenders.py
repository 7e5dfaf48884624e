"""The four ways of running the scripted agent, each on its own checkpointer.

- ``none``: LangChain's ``create_agent``, no compaction.
- ``compacting``: the same agent wrapped in `CompactingSupervisor`.
- ``compacting-offload``: the same, with ``offload=``: the tool results the agent has
  answered move to a LangGraph ``SqliteStore`` in the same SQLite file after every run.
- ``middleware``: ``create_agent`` with LangChain's ``SummarizationMiddleware`` (keep 20
  messages, its default); ``middleware-ourkeep``: the same at our keep (the newest 150
  tokens, the 5% ``KeepRatio(0.95)`` keeps at the 3,000-token trigger);
  ``middleware-approx``: its shipping defaults, its own approximate token counter
  (``count_tokens_approximately``) included.
- ``langmem``: LangGraph's ``create_react_agent`` with langmem's ``SummarizationNode`` as
  ``pre_model_hook``.

All of them use the same fake models (`AgentModel`, `SummariserModel`), the same tool and
the same token counter (the package's `TokenCounter`, cl100k_base; ``middleware-approx``
triggers on its own count): one instance per contender, so no contender warms another's
cache. A name ending in `SLOW` (``compacting+slow``) runs that contender with a
summariser that takes 0.5-2 s a call.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from benchmarks.conversation import SYSTEM_PROMPT
from benchmarks.fakes import AgentModel, SummariserModel, search_records
from compacting_supervisor import (
    ChatModelSummarizer,
    CompactingSupervisor,
    CompactionMiddleware,
    HistoryManager,
    KeepMessages,
    KeepPolicy,
    KeepRatio,
    KeepTokens,
    OffloadToolResults,
    ResultStore,
    TokenCounter,
    is_summary,
)

__all__ = [
    "CACHED",
    "CONTENDERS",
    "EXTRA",
    "IN_RUN",
    "LABELS",
    "LIMIT",
    "MIDDLEWARE_APPROX",
    "MIDDLEWARE_OUR_KEEP",
    "OFFLOAD",
    "OFFLOAD_POLICY",
    "OFFLOAD_SETTINGS",
    "SETTINGS",
    "SLOW",
    "SLOW_DELAY",
    "CompactingSettings",
    "Contender",
    "build",
]

LIMIT = 3000
"""The token size every contender compacts at."""

MIDDLEWARE_KEEP = 20
"""Messages ``SummarizationMiddleware`` keeps (its default)."""

OUR_KEEP_TOKENS = 150
"""Our keep in the middleware's terms: ``KeepRatio(0.95)`` keeps the newest 5% of the
tokens, 150 at the 3,000-token trigger (the middleware has no keep relative to the
history: its ``("fraction", f)`` is a share of the model's context window)."""

MIDDLEWARE_OUR_KEEP = "middleware-ourkeep"
"""``SummarizationMiddleware`` at our keep (`OUR_KEEP_TOKENS`)."""

MIDDLEWARE_APPROX = "middleware-approx"
"""``SummarizationMiddleware`` as it ships: keep 20 messages, its approximate counter."""

SLOW = "+slow"
"""Suffix of a contender run with a summariser that takes `SLOW_DELAY` seconds a call."""

SLOW_DELAY = (0.5, 2.0)
"""A realistic summariser's latency: each call 0.5, 1.0, 1.5 or 2.0 s, in turn."""

CONTENDERS = ("none", "compacting", "middleware", "langmem")
"""The contenders of the table, in its order."""

EXTRA = "compacting-keep20"
"""An extra CompactingSupervisor run that keeps 20 messages, as the middleware does."""

OFFLOAD = "compacting-offload"
"""CompactingSupervisor that also offloads answered tool results after every run."""

CACHED = "compacting-cached"
"""CompactingSupervisor whose summariser reads the conversation as the agent did: the
agent's system prompt and messages, the request last (``ChatModelSummarizer(
request="conversation")``), so a provider's prompt cache serves its prefix."""

IN_RUN = "compaction-middleware"
"""Our `CompactionMiddleware` in ``create_agent``: the same compaction before each model
call, its summariser reading the cached conversation (the middleware hands it the system
prompt and tools the agent's model was sent)."""

OFFLOAD_MIN_TOKENS = 250
"""Tool results of at least this many tokens are offloaded (the benchmark's are ~450)."""

OFFLOAD_PREVIEW_CHARS = 0
"""Characters of an offloaded result left in the thread as its preview: none.

A result leaves once the agent has answered from it, so its answer holds what it took
from it; what stays is a one-line reference to read it again by.
"""

OFFLOAD_POLICY = (
    f"OffloadToolResults(SqliteStore, min_tokens={OFFLOAD_MIN_TOKENS}, "
    f"preview_chars={OFFLOAD_PREVIEW_CHARS})"
)
"""How ``compacting-offload``'s policy is described in the report."""

LABELS = {
    "none": "no compaction",
    "compacting": "CompactingSupervisor",
    CACHED: "CompactingSupervisor, summariser reads the cached conversation",
    IN_RUN: "CompactionMiddleware (ours, in the run), summariser reads the cached conversation",
    OFFLOAD: "CompactingSupervisor + offload",
    "middleware": "SummarizationMiddleware, keep 20 messages",
    MIDDLEWARE_OUR_KEEP: "SummarizationMiddleware, keep 150 tokens (ours)",
    MIDDLEWARE_APPROX: "SummarizationMiddleware as shipped (approximate counter)",
    "langmem": "langmem SummarizationNode",
    EXTRA: "CompactingSupervisor, KeepMessages(20)",
}


@dataclass(frozen=True)
class CompactingSettings:
    """How `CompactingSupervisor` is set up for the run."""

    token_limit: int = LIMIT
    """Compact after a run that leaves more than this in the thread."""
    keep: str = "ratio:0.8"
    """``ratio:F`` (summarise the oldest F), ``messages:N`` or ``tokens:N`` (keep the newest)."""

    def policy(self) -> KeepPolicy:
        """The keep policy ``keep`` names."""
        kind, _, value = self.keep.partition(":")
        if kind == "ratio":
            return KeepRatio(float(value))
        if kind == "messages":
            return KeepMessages(int(value))
        if kind == "tokens":
            return KeepTokens(int(value))
        msg = f"`keep` must be ratio:F, messages:N or tokens:N, got {self.keep!r}."
        raise ValueError(msg)

    def describe(self) -> str:
        """``token_limit=3000, KeepRatio(0.8)``."""
        return f"token_limit={self.token_limit}, keep={self.policy()!r}"


SETTINGS = CompactingSettings(token_limit=LIMIT, keep="ratio:0.95")
"""The table's setting: compact over 3,000 tokens, summarising all but the newest 5%.

The cut never summarises the latest user message, so this keeps the last turn (and the
tool call it made): the smallest history after a compaction, as langmem leaves, without
its loss. ``python benchmarks/run.py --sweep`` shows the other settings.
"""

OFFLOAD_SETTINGS = CompactingSettings(token_limit=LIMIT, keep="ratio:0.95")
"""With answered results offloaded, at the same 3,000-token limit as every contender.

(Earlier versions lowered it to 1,800 to spend the same 25 summariser calls; the table now
holds every contender to one trigger. ``--sweep`` shows the lower limits.)
"""

KEEP_20 = CompactingSettings(token_limit=LIMIT, keep="messages:20")
"""The middleware's own keep: the newest 20 messages."""


@dataclass
class Contender:
    """One contender: a runnable agent on one thread, and the fakes it calls."""

    name: str
    """``none``, ``compacting``, ``middleware`` or ``langmem``."""
    runner: Any
    """What a turn is invoked on (the graph, or the supervisor wrapping it)."""
    graph: Any
    """The compiled graph."""
    agent_model: AgentModel
    """The agent's fake model."""
    summariser: SummariserModel
    """The fake summariser (never called by ``none``)."""
    thread_id: str = "bench"
    """The one thread the conversation runs on."""
    last_call: list[BaseMessage] = field(default_factory=list)
    """What the agent's model was sent last (kept by the harness)."""
    store: ResultStore | None = None
    """Where offloaded tool results went (``compacting-offload`` only)."""

    @property
    def config(self) -> dict[str, Any]:
        """The thread's config."""
        return {"configurable": {"thread_id": self.thread_id}}

    @property
    def label(self) -> str:
        """The contender's name in the table."""
        return label(self.name)

    def turn(self, text: str) -> None:
        """Run one user turn."""
        self.runner.invoke({"messages": [HumanMessage(text)]}, self.config)

    def streamed_turn(self, text: str) -> float:
        """Run one user turn as a stream; return the seconds until the answer arrived.

        The answer is the turn's final ``AIMessage`` (no tool calls) in LangGraph's
        ``updates`` chunks: what a user streaming the run sees, before any work the run
        does after it.
        """
        started = time.perf_counter()
        answered: float | None = None
        chunks = self.runner.stream(
            {"messages": [HumanMessage(text)]}, self.config, stream_mode="updates"
        )
        for chunk in chunks:
            if answered is None and _holds_answer(chunk):
                answered = time.perf_counter() - started
        return time.perf_counter() - started if answered is None else answered

    def state_messages(self) -> list[BaseMessage]:
        """The messages the thread's checkpoint holds now."""
        values = self.graph.get_state(self.config).values
        return list(values.get("messages") or [])

    def visible_messages(self) -> list[BaseMessage]:
        """The conversation messages the agent still sees verbatim (summaries excluded).

        The thread's messages for the contenders that rewrite it; for langmem, whose
        thread keeps everything, what its model was sent in the last call.
        """
        source = self.last_call if self.name == "langmem" else self.state_messages()
        return [m for m in source if not isinstance(m, SystemMessage) and not is_summary(m)]


def _holds_answer(chunk: Any) -> bool:
    """Whether an ``updates`` chunk carries a final answer (an AIMessage without calls)."""
    if not isinstance(chunk, dict):
        return False
    for update in chunk.values():
        messages = update.get("messages") if isinstance(update, dict) else None
        messages = getattr(messages, "value", messages)  # an Overwrite of the channel
        if isinstance(messages, list) and any(
            isinstance(m, AIMessage) and not m.tool_calls and m.text for m in messages
        ):
            return True
    return False


def label(name: str) -> str:
    """The table's name of contender ``name`` (a slow variant says so)."""
    base = name.removesuffix(SLOW)
    return LABELS[base] + (", summariser 0.5-2 s" if name != base else "")


def build(
    name: str,
    saver: BaseCheckpointSaver[Any],
    *,
    settings: CompactingSettings | None = None,
    store: Any = None,
    delay: tuple[float, float] | None = None,
) -> Contender:
    """Build contender ``name`` on ``saver`` with fresh fake models and counter.

    ``store`` (a LangGraph ``BaseStore``) holds ``compacting-offload``'s tool results;
    ``delay`` makes each summariser call sleep that long (`SLOW_DELAY`).
    """
    agent_model, summariser = AgentModel(), SummariserModel(delay_seconds=delay)
    counter = TokenCounter()
    if name in ("none", "compacting", CACHED):
        graph = _create_agent(agent_model, saver)
        runner: Any = graph
        if name != "none":
            settings = settings or CompactingSettings()
            model: Any = summariser
            if name == CACHED:
                model = ChatModelSummarizer(
                    summariser,
                    request="conversation",
                    agent_system_prompt=SYSTEM_PROMPT,
                    agent_tools=[search_records],
                    token_counter=counter,
                )
            manager = HistoryManager(model=model, token_counter=counter)
            runner = CompactingSupervisor(
                graph, manager, token_limit=settings.token_limit, keep=settings.policy()
            )
        return Contender(name, runner, graph, agent_model, summariser)
    if name == OFFLOAD:
        if store is None:
            msg = f"{OFFLOAD} needs a `store` for the offloaded results."
            raise ValueError(msg)
        settings = settings or CompactingSettings()
        policy = OffloadToolResults(
            store,
            min_tokens=OFFLOAD_MIN_TOKENS,
            preview_chars=OFFLOAD_PREVIEW_CHARS,
            token_counter=counter,
        )
        graph = _create_agent(agent_model, saver, tools=(policy.read_tool(),))
        manager = HistoryManager(model=summariser, token_counter=counter, offload=policy)
        runner = CompactingSupervisor(
            graph,
            manager,
            token_limit=settings.token_limit,
            keep=settings.policy(),
            offload=policy,
        )
        return Contender(name, runner, graph, agent_model, summariser, store=policy.store)
    if name == IN_RUN:
        settings = settings or CompactingSettings()
        summarizer = ChatModelSummarizer(summariser, request="conversation", token_counter=counter)
        ours = CompactionMiddleware(
            history_manager=HistoryManager(model=summarizer, token_counter=counter),
            token_limit=settings.token_limit,
            keep=settings.policy(),
        )
        graph = _create_agent(agent_model, saver, (ours,))
        return Contender(name, graph, graph, agent_model, summariser)
    if name in ("middleware", MIDDLEWARE_OUR_KEEP, MIDDLEWARE_APPROX):
        graph = _middleware_agent(agent_model, summariser, counter, saver, name)
        return Contender(name, graph, graph, agent_model, summariser)
    if name == "langmem":
        graph = _langmem_agent(agent_model, summariser, counter, saver)
        return Contender(name, graph, graph, agent_model, summariser)
    msg = f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}"
    raise ValueError(msg)


def _create_agent(
    model: AgentModel,
    saver: BaseCheckpointSaver[Any],
    middleware: tuple[Any, ...] = (),
    tools: tuple[Any, ...] = (),
) -> Any:
    from langchain.agents import create_agent

    return create_agent(
        model,
        [search_records, *tools],
        system_prompt=SYSTEM_PROMPT,
        middleware=middleware,
        checkpointer=saver,
    )


def _middleware_agent(
    model: AgentModel,
    summariser: SummariserModel,
    counter: TokenCounter,
    saver: BaseCheckpointSaver[Any],
    name: str,
) -> Any:
    from langchain.agents.middleware import SummarizationMiddleware

    keep: tuple[str, int] = ("messages", MIDDLEWARE_KEEP)
    if name == MIDDLEWARE_OUR_KEEP:
        keep = ("tokens", OUR_KEEP_TOKENS)
    options: dict[str, Any] = {} if name == MIDDLEWARE_APPROX else {"token_counter": counter.count}
    middleware = SummarizationMiddleware(
        summariser, trigger=("tokens", LIMIT), keep=keep, **options
    )
    return _create_agent(model, saver, (middleware,))


def _langmem_agent(
    model: AgentModel,
    summariser: SummariserModel,
    counter: TokenCounter,
    saver: BaseCheckpointSaver[Any],
) -> Any:
    from langgraph.prebuilt.chat_agent_executor import AgentState
    from langmem.short_term import SummarizationNode

    class State(AgentState):  # type: ignore[misc]
        """The agent's state plus langmem's running summary."""

        context: dict[str, Any]

    hook = SummarizationNode(
        model=summariser,
        max_tokens=LIMIT,
        token_counter=counter.count,
        output_messages_key="llm_input_messages",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent's move notice
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(
            model,
            [search_records],
            prompt=SYSTEM_PROMPT,
            pre_model_hook=hook,
            state_schema=State,
            checkpointer=saver,
        )
