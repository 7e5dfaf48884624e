"""The ``compacting-supervisor`` command: look into and compact a checkpoint store's threads.

::

    compacting-supervisor threads DB                threads, messages, tokens, compactions
    compacting-supervisor inspect DB --thread ID    current messages and compaction history
    compacting-supervisor compact DB --thread ID    compact now (offline, or with --model)
    compacting-supervisor export DB --thread ID     the whole transcript, as Markdown

``DB`` is the SQLite file a ``SqliteSaver`` writes to, or a ``postgresql://`` URL. Nothing is
ever created: ``threads``, ``inspect`` and ``export`` open the store read-only, and
``compact`` writes one new head checkpoint while holding the thread's lock (the same lock
every `CompactingSupervisor` run takes, across processes). ``--json`` prints JSON on stdout
instead of tables. Exit codes: 0 done (or nothing to do), 1 the work failed, 2 bad usage or
input (a missing file, not a checkpoint store, an unknown thread).
"""

from compacting_supervisor.cli._main import main

__all__ = ["main"]
