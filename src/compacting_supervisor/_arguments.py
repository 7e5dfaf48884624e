"""What `CompactingSupervisor` is given, checked: its settings and the thread a method names.

Every error names the parameter in backticks and says how to fix it. The numeric settings
go through `compacting_supervisor._settings`; this module adds what only the wrapper has:
the compiled graph and the checkpointer it shares with the history manager, the policy
types, the settings that contradict each other, and the two ways a method names a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.checkpoint.base import BaseCheckpointSaver

from compacting_supervisor._checkpoint import thread_config
from compacting_supervisor._settings import check_ratio
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.keep import KeepPolicy, KeepRatio
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.triggers import Trigger

__all__ = [
    "COMPACTION_RATIO",
    "TOKEN_LIMIT",
    "bind_agent",
    "check_history_manager",
    "check_policies",
    "configs_for",
    "keep_for_call",
    "run_thread_id",
    "thread_of",
]


class _DefaultInt(int):
    """An int default told apart from the same number given explicitly (by identity)."""


class _DefaultFloat(float):
    """A float default told apart from the same number given explicitly (by identity)."""


# `token_limit=500` given with `trigger=` contradicts it just as `token_limit=300` does, so
# "given" means "not this very object"; the signature still shows the plain numbers.
TOKEN_LIMIT = _DefaultInt(500)
"""`token_limit`'s default."""
COMPACTION_RATIO = _DefaultFloat(0.8)
"""`compaction_ratio`'s default."""


def bind_agent(agent: Any, history_manager: Any) -> tuple[Any, HistoryManager]:
    """Check the graph and the history manager, and give them one checkpointer.

    Returns:
        The graph to run (a copy on the manager's saver when it was compiled without one)
        and the history manager (``HistoryManager()`` when None was given).
    """
    if not all(hasattr(agent, a) for a in ("invoke", "stream", "get_state", "channels")):
        hint = (
            " It looks like an uncompiled StateGraph: pass graph.compile(checkpointer=...)."
            if hasattr(agent, "compile")
            else ""
        )
        msg = f"`agent` must be a compiled LangGraph graph, got {type(agent).__name__}.{hint}"
        raise TypeError(msg)
    check_history_manager(history_manager)
    manager = history_manager or HistoryManager()
    key = manager.messages_key
    if key not in agent.channels:
        msg = (
            f"`agent`'s state has no {key!r} channel (its channels: "
            f"{', '.join(sorted(c for c in agent.channels if not c.startswith('__')))}). "
            "Add a messages channel (e.g. MessagesState) or pass "
            "HistoryManager(messages_key='<your channel>')."
        )
        raise ValueError(msg)
    checkpointer = getattr(agent, "checkpointer", None)
    if manager.memory_saver is None:
        if not isinstance(checkpointer, BaseCheckpointSaver):
            msg = (
                "`agent` has no checkpointer and the history manager no `memory_saver`: "
                "compile the graph with graph.compile(checkpointer=InMemorySaver()) (or a "
                "SqliteSaver), or pass HistoryManager(memory_saver=...)."
            )
            raise ValueError(msg)
        # Threads are then compacted through the checkpointer of the graph they run on.
        manager._bind_graph_saver(checkpointer)
    elif not isinstance(checkpointer, BaseCheckpointSaver):
        # The graph was compiled without one: run a copy of it on the manager's saver.
        agent = agent.copy(update={"checkpointer": manager.memory_saver})
    elif checkpointer is not manager.memory_saver:
        msg = (
            "`memory_saver` is not the checkpointer `agent` was compiled with, so "
            "compactions would be written where the graph never reads them: pass the same "
            "object, or leave `memory_saver` unset to use the graph's checkpointer."
        )
        raise ValueError(msg)
    return agent, manager


def check_history_manager(history_manager: Any) -> None:
    """Raise unless ``history_manager`` is a `HistoryManager` or None."""
    if history_manager is not None and not isinstance(history_manager, HistoryManager):
        msg = (
            "`history_manager` must be a HistoryManager (or None for the defaults), got "
            f"{type(history_manager).__name__}."
        )
        raise TypeError(msg)


def check_policies(
    *, trigger: Any, keep: Any, offload: Any, token_limit: Any, compaction_ratio: Any
) -> None:
    """Check the policy settings' types, and refuse a pair that says one thing twice.

    ``token_limit`` is short for ``trigger=TokenLimit(token_limit)`` and ``compaction_ratio``
    for ``keep=KeepRatio(compaction_ratio)``: given with the long form (even at their
    default values), one of the two would be silently dropped.
    """
    if trigger is not None and not isinstance(trigger, Trigger):
        msg = (
            "`trigger` must be a Trigger (TokenLimit, ContextFraction, MessageCount, "
            f"TimeSinceCompaction, When, Repetition, AnyOf, AllOf), got {trigger!r}."
        )
        raise TypeError(msg)
    if keep is not None and not isinstance(keep, KeepPolicy):
        msg = f"`keep` must be a KeepPolicy (KeepMessages(20), KeepTokens(2000)), got {keep!r}."
        raise TypeError(msg)
    if offload is not None and not isinstance(offload, OffloadToolResults):
        msg = (
            "`offload` must be an OffloadToolResults policy (OffloadToolResults(store, "
            f"min_tokens=500)), got {offload!r}."
        )
        raise TypeError(msg)
    if trigger is not None and token_limit is not TOKEN_LIMIT:
        msg = (
            f"`token_limit` and `trigger` both say when to compact (token_limit={token_limit} "
            f"means trigger=TokenLimit({token_limit})): pass only one, e.g. "
            f"trigger=TokenLimit({token_limit}) | {trigger!r}."
        )
        raise ValueError(msg)
    if keep is not None and compaction_ratio is not COMPACTION_RATIO:
        msg = (
            "`compaction_ratio` and `keep` both say what a compaction keeps "
            f"(compaction_ratio={compaction_ratio} means keep=KeepRatio({compaction_ratio})): "
            "pass only one."
        )
        raise ValueError(msg)


def keep_for_call(keep: Any) -> KeepPolicy | None:
    """One manual compaction's keep policy: a `KeepPolicy`, a ratio to summarise, or None."""
    if keep is None or isinstance(keep, KeepPolicy):
        return keep
    if isinstance(keep, int | float) and not isinstance(keep, bool):
        return KeepRatio(check_ratio(keep, name="keep"))
    msg = (
        "`keep` must be a KeepPolicy (KeepMessages(5), KeepTokens(2000)) or the fraction to "
        f"summarise, e.g. 0.3; got {type(keep).__name__}."
    )
    raise TypeError(msg)


def thread_of(
    thread: Any, bound: RunnableConfig | None, *, parameter: str
) -> tuple[str, RunnableConfig]:
    """The thread id a method was given, and what to forward to the graph for it.

    Args:
        thread: A thread id (``"t1"``) or a config naming one; None, or a config without
            a thread id, when ``bound`` names the thread.
        bound: The config bound to the graph with ``with_config``, if any.
        parameter: The method's name for ``thread``, named in the errors.

    Returns:
        The thread id, and ``thread`` as a config that names it (a thread id becomes one;
        a config without one gets the bound config's, which the graph's own ``get_state``
        and ``update_state`` do not always look up).

    Raises:
        ValueError: An empty thread id, or no thread id in ``thread`` nor in ``bound``.
        TypeError: ``thread`` is neither a thread id nor a config.
    """
    if isinstance(thread, str):
        config = thread_config(thread, parameter=parameter)
        return thread, config
    if thread is not None and not isinstance(thread, dict):
        thread_config(thread, parameter=parameter)  # raises: neither an id nor a config
    merged = merge_configs(bound, thread)
    thread_id = thread_config(merged, parameter=parameter)["configurable"]["thread_id"]
    given = thread or {}
    configurable = given.get("configurable") or {}
    if configurable.get("thread_id") in (None, ""):  # the bound config names the thread
        given = {**given, "configurable": {**configurable, "thread_id": thread_id}}
    return str(thread_id), cast(RunnableConfig, given)


def run_thread_id(config: Any, bound: RunnableConfig | None) -> str:
    """The thread a run is on: a run takes a config, as ``graph.invoke`` does."""
    if isinstance(config, str):
        msg = (
            "`config` of a run is a config, as graph.invoke takes: pass "
            f"config={{'configurable': {{'thread_id': {config!r}}}}}."
        )
        raise TypeError(msg)
    return thread_of(config, bound, parameter="config")[0]


def configs_for(
    inputs: Sequence[Any], config: RunnableConfig | Sequence[RunnableConfig] | None
) -> list[RunnableConfig | None]:
    """One config per input of a batch: ``config`` repeated, or its list checked."""
    if config is None or isinstance(config, dict):
        return [config] * len(inputs)
    configs: list[RunnableConfig | None] = list(config)
    if len(configs) != len(inputs):
        msg = (
            "`config` must be one config or one per input: "
            f"got {len(configs)} for {len(inputs)} inputs."
        )
        raise ValueError(msg)
    return configs
