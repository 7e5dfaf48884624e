"""Per-thread records that keep only the most recent threads.

A compaction form lives as long as its process (a served graph's worker, a web app) and sees
any number of threads; what it remembers per thread (when it first saw it, its last result,
its circuit breaker, its counted messages) is kept for the `THREADS_KEPT` most recent.
A forgotten thread loses nothing but that memory: its next turn counts it afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TypeVar

__all__ = ["THREADS_KEPT", "RecentThreads"]

THREADS_KEPT = 10_000
"""How many threads a form remembers per record (first seen, last result, breaker...)."""

_V = TypeVar("_V")


class RecentThreads(OrderedDict[str, _V]):
    """A dict of per-thread records holding the `THREADS_KEPT` most recently written.

    Writing a thread's record makes it the most recent; the oldest is dropped past the
    limit. Safe to share between the threads of a sync server.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def __setitem__(self, key: str, value: _V) -> None:
        with self._lock:
            super().__setitem__(key, value)
            self.move_to_end(key)
            while len(self) > max(THREADS_KEPT, 1):
                self.popitem(last=False)

    def setdefault(self, key: str, default: _V) -> _V:
        """The thread's record (now the most recent), written as ``default`` if it has none."""
        with self._lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
            self[key] = default
            return default
