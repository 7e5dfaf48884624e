"""One compaction step inside a graph's run: what `CompactionMiddleware` and `CompactionNode` share.

Before a model call, a form built on `InGraphCompaction` reads the ``messages`` of the
state it is given, offloads answered tool results (with ``offload=``), asks the trigger,
minds the circuit breaker, runs the core and records its result (`_decisions.py`). The step
is one flow (`_flow.py`) returning the new history, or None when nothing changes; each form
turns that history into the update its graph expects (`_persist/state_update.py`).

The async form steps the flow in a worker thread and awaits only its I/O (the summariser,
the stores, the callbacks) on the event loop: token counting (a tokenizer's first load reads
a file), redaction and rendering never block the loop a server runs many threads on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.config import get_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from compacting_supervisor._arguments import check_history_manager
from compacting_supervisor._checkpoint import thread_config
from compacting_supervisor._compaction import StoreResults, compaction_result
from compacting_supervisor._decisions import Compact, CompactionDecisions
from compacting_supervisor._flow import Flow, _FlowRun
from compacting_supervisor._messages import check_messages
from compacting_supervisor._recent import RecentThreads
from compacting_supervisor._summarizer_call import AgentPrefix
from compacting_supervisor.errors import CompactionError
from compacting_supervisor.history_manager import HistoryManager
from compacting_supervisor.results import CompactionResult
from compacting_supervisor.summarizers import Summarizer

logger = logging.getLogger(__name__)

__all__ = [
    "NO_THREAD",
    "InGraphCompaction",
    "adrive_off_loop",
    "run_config",
    "run_thread_id",
]

NO_THREAD = "<no thread>"
"""The thread key of a run without a checkpointer."""


_T = TypeVar("_T")
_MISSING = object()


class InGraphCompaction(CompactionDecisions):
    """The settings and the compaction step of a form that runs inside a graph's run.

    A form calls `_setup` in its ``__init__`` and runs `_before_model` (a flow) with
    `compacting_supervisor._flow.drive` or `adrive_off_loop`.
    """

    _form: str = "CompactionNode"
    """The public name, for error messages."""
    _requests: dict[str, tuple[tuple[Any, ...], int, AgentPrefix]]

    def _setup(
        self,
        *,
        model: BaseChatModel | str | Summarizer | None,
        history_manager: HistoryManager | None,
        fix_for_graph: str,
        **settings: Any,
    ) -> None:
        """Check the settings (each error names its parameter and the fix) and keep them.

        Args:
            model: The summariser, when ``history_manager`` is None.
            history_manager: The compaction's settings.
            fix_for_graph: What to do instead, when ``model`` is a graph.
            **settings: The keyword-only settings `CompactionDecisions._configure` checks.
        """
        if isinstance(model, Pregel | StateGraph):
            msg = f"`model` is the summariser's chat model, not a graph: {fix_for_graph}"
            raise TypeError(msg)
        check_history_manager(history_manager)
        self._configure(history_manager or HistoryManager(model=model), **settings)
        # Per thread: what its model requests carry, where a form can see them (like every
        # per-thread record, kept for the most recent threads only).
        self._requests = RecentThreads()

    def last_compaction(self, thread: Any) -> CompactionResult | None:
        """The result of the thread's latest compaction in this process, if any.

        Args:
            thread: A thread id (``"t1"``) or a config naming one.
        """
        config = thread_config(thread, parameter="thread")
        return self._results.get(str(config["configurable"]["thread_id"]))

    # ------------------------------------------------------------------ one step

    def _before_model(self, state: Any) -> Flow[list[BaseMessage] | None]:
        """Offload answered results, ask the trigger, compact: the new history, or None."""
        thread_id = run_thread_id()
        if thread_id != NO_THREAD:
            return (yield from self._step(thread_id, state))
        # A run without a thread shares no breaker or record with other such runs.
        key = f"{NO_THREAD[:-1]} {uuid.uuid4().hex}>"
        try:
            return (yield from self._step(key, state))
        finally:
            self._results.pop(key, None)
            self._first_seen.pop(key, None)
            self._breaker.circuits.pop(key, None)

    def _step(self, thread_id: str, state: Any) -> Flow[list[BaseMessage] | None]:
        messages = self._messages(state)
        replaced: list[BaseMessage] | None = None
        if self.offload is not None:
            plan = self.offload.plan_answered(messages, thread_id=thread_id)
            if plan.offloaded:
                try:
                    yield StoreResults(self.offload, plan.offloaded)
                except Exception as exc:  # the results stay whole; the run goes on
                    logger.warning(
                        "Thread %s: could not offload tool results; they stay whole: %s",
                        thread_id,
                        exc,
                    )
                else:
                    messages = replaced = plan.messages
        decision = self._decide(thread_id, messages, state)
        if isinstance(decision, Compact):
            compacted = yield from self._compact(thread_id, messages, decision)
            replaced = compacted or replaced
        return replaced

    def _compact(
        self, thread_id: str, messages: list[BaseMessage], decision: Compact
    ) -> Flow[list[BaseMessage] | None]:
        """Run the core; record its result. A failure leaves the messages as they are."""
        settings = self._compact_kwargs(decision.reason)
        core = self.history_manager._core()
        try:
            compaction = yield from core.compact(
                messages,
                settings["keep"],
                max_summary_tokens=settings["max_summary_tokens"],
                thread_id=thread_id,
                pin_request=True,  # one run may be one request and many tool calls
                require_reduction=True,
                trace=_unstreamed(run_config()),
                # Learned under the run's thread id (a run without one: the shared key).
                agent=known[2] if (known := self._requests.get(run_thread_id())) else None,
            )
        except Exception as exc:  # a compaction problem never fails the agent's run
            self._settle(thread_id, decision, messages, exc)
            return None
        if compaction is None:
            self._settle(thread_id, decision, messages, None)
            return None
        self._record(
            compaction_result(
                compaction,
                thread_id=thread_id,
                trigger=decision.reason,
                started=decision.started,
                messages_before=len(messages),
            )
        )
        return compaction.messages

    def _messages(self, state: Any) -> list[BaseMessage]:
        """The state's messages, checked: a missing channel or old format says the fix."""
        key = self.history_manager.messages_key
        if isinstance(state, dict):
            found: Any = state.get(key, _MISSING)
        else:  # a pydantic or dataclass state schema
            found = getattr(state, key, _MISSING)
        if found is _MISSING:
            fields = sorted(state) if isinstance(state, dict) else type(state).__name__
            msg = (
                f"{self._form} was given a state without a {key!r} channel (it has "
                f"{fields}): it compacts the messages a model reads, so put it before a model "
                "call of a graph whose state has messages (MessagesState, or a key annotated "
                "with add_messages); for another channel name, pass "
                "history_manager=HistoryManager(messages_key=...)."
            )
            raise CompactionError(msg)
        messages = list(found or [])
        check_messages(messages, key)
        return messages

    def _overhead(self, thread_id: str | None) -> int:
        """What this thread's model requests carry; the declared size until one is seen."""
        known = self._requests.get(thread_id) if thread_id is not None else None
        return known[1] if known is not None else self.overhead_tokens


def run_config() -> dict[str, Any]:
    """The config of the run this step runs in (``{}`` outside a run)."""
    try:
        return dict(get_config())
    except RuntimeError:  # called outside a run
        return {}


def _unstreamed(config: dict[str, Any]) -> Any:
    """The run's config with the ``nostream`` tag, which the compaction's run passes on.

    Every model call under that run (any summariser's) stays out of
    ``stream_mode="messages"``.
    """
    tags = list(config.get("tags") or [])
    return {**config, "tags": [*tags, TAG_NOSTREAM]} if TAG_NOSTREAM not in tags else config


def run_thread_id() -> str:
    """The thread of the run this step runs in (a run without a checkpointer has none)."""
    thread = (run_config().get("configurable") or {}).get("thread_id")
    return str(thread) if thread not in (None, "") else NO_THREAD


async def adrive_off_loop(flow: Flow[_T]) -> _T:
    """Like `compacting_supervisor._flow.adrive`, with the flow's own work in a worker thread.

    The ops (the summariser, the stores, the callbacks) are awaited on the event loop; the
    code between them (counting, redacting, rendering, a tokenizer's first load) runs in
    ``asyncio.to_thread``, with the caller's context (the run's config) copied along. A
    cancellation that arrives during such a step waits for the step to end, then is thrown
    into the flow, which ends its traced run with it.
    """
    started = _Started(flow)
    pending = await _in_thread(started)
    run = started.run
    if run is None:  # cancelled before the flow started: it holds nothing open
        flow.close()
        raise pending or asyncio.CancelledError
    while run.op is not None:
        step: Callable[[], None]
        if pending is not None:
            step = functools.partial(run.throw, pending)
        else:
            try:
                answer = await run.op.arun()
            except BaseException as exc:  # cancelled too: the flow may close what it opened
                step = functools.partial(run.throw, exc)
            else:
                step = functools.partial(run.send, answer)
        pending = await _in_thread(step)
    if pending is not None:
        raise pending
    return cast(_T, run.result)


class _Started:
    """Starts a flow run (its first step) when called."""

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self.run: _FlowRun[Any] | None = None

    def __call__(self) -> None:
        self.run = _FlowRun(self.flow, None)


async def _in_thread(step: Callable[[], None]) -> asyncio.CancelledError | None:
    """Run ``step`` in a worker thread, to its end even if the caller is cancelled meanwhile.

    Returns:
        The cancellation that arrived during the step, if any (what the step raised is
        raised).
    """
    future = asyncio.ensure_future(asyncio.to_thread(step))
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            if future.done():  # the step itself raised it
                raise
            cancelled = exc  # the caller's: wait for the step, then hand it over
            continue
        return cancelled
