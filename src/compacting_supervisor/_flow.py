"""Flows: logic written once, as a generator of I/O steps, run by a sync or an async driver.

A flow yields an `Op` (read a checkpoint, call the summariser, sleep, write ...) and is sent
its answer, or has the op's exception thrown into it. `drive` performs each op with its sync
``run``, `adrive` with its async ``arun``; nothing else differs, so the sync and async forms
of every operation cannot drift apart (httpx's ``Auth.auth_flow`` is the model).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from compacting_supervisor.errors import CompactionError

__all__ = ["Flow", "Op", "Sleep", "adrive", "drive"]

_T = TypeVar("_T")


class Op(Protocol):
    """One I/O step a flow asks its driver to perform."""

    def run(self) -> Any:
        """Perform the step (sync driver)."""
        ...

    async def arun(self) -> Any:
        """Perform the step (async driver)."""
        ...


Flow = Generator[Op, Any, _T]
"""A flow: yields ops, is sent their answers, returns its result."""


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (a retry's back-off)."""

    seconds: float

    def run(self) -> None:
        """Sleep in this thread."""
        time.sleep(self.seconds)

    async def arun(self) -> None:
        """Sleep without blocking the event loop."""
        await asyncio.sleep(self.seconds)


def drive(flow: Flow[_T], *, thread_id: str | None = None) -> _T:
    """Run ``flow`` to its end, performing each op synchronously.

    Args:
        flow: The flow to run.
        thread_id: Recorded on a `CompactionError` the flow raises without one.

    Returns:
        What the flow returns.
    """
    run = _FlowRun(flow, thread_id)
    while run.op is not None:
        try:
            answer = run.op.run()
        except BaseException as exc:  # the flow may close what it opened, then re-raise
            run.throw(exc)
        else:
            run.send(answer)
    return run.result


async def adrive(flow: Flow[_T], *, thread_id: str | None = None) -> _T:
    """Async form of `drive`: each op is awaited."""
    run = _FlowRun(flow, thread_id)
    while run.op is not None:
        try:
            answer = await run.op.arun()
        except BaseException as exc:  # cancelled too: the flow may close what it opened
            run.throw(exc)
        else:
            run.send(answer)
    return run.result


class _FlowRun(Generic[_T]):
    """Steps a flow for a driver: the driver only performs the I/O each step asks for."""

    def __init__(self, flow: Flow[_T], thread_id: str | None) -> None:
        self._flow = flow
        self._thread_id = thread_id
        self.op: Op | None = None
        self.result: _T
        self._advance(lambda: next(flow))

    def send(self, answer: Any) -> None:
        self._advance(lambda: self._flow.send(answer))

    def throw(self, exc: BaseException) -> None:
        self._advance(lambda: self._flow.throw(exc))

    def _advance(self, step: Callable[[], Op]) -> None:
        try:
            self.op = step()
        except StopIteration as stop:
            self.op = None
            self.result = stop.value
        except CompactionError as exc:
            exc.thread_id = exc.thread_id or self._thread_id
            self._flow.close()
            raise
        except BaseException:
            self._flow.close()
            raise
