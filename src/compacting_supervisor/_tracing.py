"""Each compaction is a run in LangChain's callback system, and the summariser's calls its children.

A flow asks for the run to start (`StartRun`, answered with the run) and to end (`EndRun`,
with its outputs or its error). The callbacks come from the config the compaction was given
and from the run it happens in (a graph node's, for the middleware), so LangSmith, or any
`BaseCallbackHandler` in ``config["callbacks"]``, sees a chain run named ``compaction``
(``run_name``, ``tags`` and ``metadata`` of the config apply, as for any runnable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    set_config_context,
)

__all__ = ["EndRun", "StartRun", "ain_run", "in_run"]

_T = TypeVar("_T")

RUN_NAME = "compaction"
"""The run's name unless the config's ``run_name`` says otherwise."""


@dataclass(frozen=True)
class StartRun:
    """Start the compaction's chain run; answered with the run (its child callbacks)."""

    inputs: Mapping[str, Any]
    config: RunnableConfig | None

    def run(self) -> Any:
        """Start it with the sync callback manager."""
        config = ensure_config(self.config)
        manager = get_callback_manager_for_config(config)
        return manager.on_chain_start(
            None, dict(self.inputs), name=config.get("run_name") or RUN_NAME
        )

    async def arun(self) -> Any:
        """Start it with the async callback manager (async handlers are awaited)."""
        config = ensure_config(self.config)
        manager = get_async_callback_manager_for_config(config)
        return await manager.on_chain_start(
            None, dict(self.inputs), name=config.get("run_name") or RUN_NAME
        )


@dataclass(frozen=True)
class EndRun:
    """End the run: with its outputs, or with the error the compaction failed with."""

    handle: Any
    """What `StartRun` answered."""
    outputs: Mapping[str, Any] | None = None
    error: BaseException | None = None

    def run(self) -> None:
        """End it (sync)."""
        if self.error is not None:
            self.handle.on_chain_error(self.error)
        else:
            self.handle.on_chain_end(dict(self.outputs or {}))

    async def arun(self) -> None:
        """End it (async)."""
        if self.error is not None:
            await self.handle.on_chain_error(self.error)
        else:
            await self.handle.on_chain_end(dict(self.outputs or {}))


def in_run(callbacks: Any, call: Callable[[], _T]) -> _T:
    """Run ``call`` as a child of the run whose child ``callbacks`` these are."""
    if callbacks is None:
        return call()
    with set_config_context({"callbacks": callbacks}) as context:
        return context.run(call)


async def ain_run(callbacks: Any, call: Callable[[], Awaitable[_T]]) -> _T:
    """Async form of `in_run`."""
    if callbacks is None:
        return await call()
    with set_config_context({"callbacks": callbacks}) as context:
        return await asyncio.create_task(_awaited(call), context=context)


async def _awaited(call: Callable[[], Awaitable[_T]]) -> _T:
    return await call()
