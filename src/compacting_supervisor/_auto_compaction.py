"""What the wrapper does after each run: offload, ask the trigger, compact, record.

`AutoCompaction` is the base of `CompactingSupervisor` that holds this step. After a run it
reads the thread's messages (from the run's output when it carries them), moves answered
tool results to the ``offload`` policy's store, asks the trigger, minds the circuit breaker
(`compacting_supervisor._breaker`), and asks the history manager to compact. Whatever goes
wrong is recorded as the thread's last result, never raised: the user's run has already
succeeded. The sync and async forms differ only in the lines that read the state, offload
and compact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from compacting_supervisor._checkpoint import head_config
from compacting_supervisor._decisions import Compact, CompactionDecisions
from compacting_supervisor._events import output_messages
from compacting_supervisor._messages import check_messages
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.keep import KeepPolicy
from compacting_supervisor.offload import OffloadToolResults
from compacting_supervisor.results import CompactionResult

logger = logging.getLogger(__name__)

__all__ = ["AutoCompaction", "traced_config"]


class AutoCompaction(CompactionDecisions):
    """The automatic compaction after a run: the wrapper's part of the decisions."""

    agent: Any

    def _auto_compact(
        self, thread_id: str, values: Any, config: Any = None
    ) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return self._auto_compact_unguarded(thread_id, values, config)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    async def _aauto_compact(
        self, thread_id: str, values: Any, config: Any = None
    ) -> CompactionResult | None:
        started = time.perf_counter()
        try:
            return await self._aauto_compact_unguarded(thread_id, values, config)
        except Exception as exc:  # whatever happens, the user's run has already succeeded
            return self._record(self._unchanged(thread_id, self.trigger.name, exc, started, None))

    def _auto_compact_unguarded(
        self, thread_id: str, values: Any, config: Any
    ) -> CompactionResult | None:
        messages = self._values_messages(values)
        if messages is None:  # the output does not carry the messages: read the state
            values, messages = self._state_of(self.agent.get_state(head_config(thread_id)))
        if self.offload is not None and self._answered_results(self.offload, thread_id, messages):
            try:
                offloaded = self.history_manager.offload_answered(
                    head_config(thread_id), self.offload, graph=self.agent
                )
            except Exception as exc:  # the results stay whole; the run has already succeeded
                _offload_failed(thread_id, exc)
            else:
                messages = offloaded or messages
        decision = self._decide(thread_id, messages, values)
        if not isinstance(decision, Compact):
            return decision
        try:
            result = self.history_manager.compact_thread(
                traced_config(thread_id, config), **self._compact_kwargs(decision.reason)
            )
        except Exception as exc:  # a compaction problem never fails the user's run
            return self._settle(thread_id, decision, messages, exc)
        return self._settle(thread_id, decision, messages, result)

    async def _aauto_compact_unguarded(
        self, thread_id: str, values: Any, config: Any
    ) -> CompactionResult | None:
        messages = self._values_messages(values)
        if messages is None:  # the output does not carry the messages: read the state
            values, messages = self._state_of(await self.agent.aget_state(head_config(thread_id)))
        if self.offload is not None and self._answered_results(self.offload, thread_id, messages):
            try:
                offloaded = await self.history_manager.aoffload_answered(
                    head_config(thread_id), self.offload, graph=self.agent
                )
            except Exception as exc:  # the results stay whole; the run has already succeeded
                _offload_failed(thread_id, exc)
            else:
                messages = offloaded or messages
        decision = self._decide(thread_id, messages, values)
        if not isinstance(decision, Compact):
            return decision
        try:
            result = await self.history_manager.acompact_thread(
                traced_config(thread_id, config), **self._compact_kwargs(decision.reason)
            )
        except Exception as exc:  # a compaction problem never fails the user's run
            return self._settle(thread_id, decision, messages, exc)
        return self._settle(thread_id, decision, messages, result)

    @staticmethod
    def _answered_results(
        policy: OffloadToolResults, thread_id: str, messages: list[BaseMessage]
    ) -> bool:
        """Whether the run left tool results the agent answered for ``policy`` to offload.

        A pure check of the run's output, so a run with none reads and writes nothing more.
        """
        return bool(policy.plan_answered(messages, thread_id=thread_id).offloaded)

    def _compact_kwargs(self, trigger: str, keep: KeepPolicy | None = None) -> dict[str, Any]:
        """The shared settings, and the graph: its idle check sees tasks and interrupts."""
        return {**super()._compact_kwargs(trigger, keep), "graph": self.agent}

    def _values_messages(self, values: Any) -> list[BaseMessage] | None:
        return output_messages(values, self.history_manager.messages_key)

    def _state_of(self, snapshot: Any) -> tuple[Any, list[BaseMessage]]:
        """The state values and the checked messages channel of a snapshot."""
        messages = self._read_messages(snapshot)
        check_messages(messages, self.history_manager.messages_key)
        return snapshot.values, messages

    def _read_messages(self, snapshot: Any) -> list[BaseMessage]:
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        return list(values.get(self.history_manager.messages_key) or [])


def traced_config(thread_id: str, config: Any) -> RunnableConfig:
    """The thread's config, with the callbacks, tags and metadata of ``config`` (the run's).

    The compaction's run then reaches the handlers the run had (LangSmith's tracer among
    them), though it starts after the run has ended.
    """
    traced = head_config(thread_id)
    if isinstance(config, dict):
        for key in ("callbacks", "tags", "metadata"):
            if config.get(key):
                traced[key] = config[key]
    return traced


def _offload_failed(thread_id: str, exc: Exception) -> None:
    logger.warning(
        "Thread %s: could not offload its answered tool results; they stay whole: %s",
        thread_id,
        exc,
        exc_info=not isinstance(exc, CompactionError),
    )
