"""Persisting a compaction: the two ways the core's outcome reaches a thread.

- `rewrite`: a new head checkpoint written with ``saver.put`` (the wrapper, `HistoryManager`,
  ``compact()``, the CLI), plus `reads` of the compaction history it leaves.
- `state_update`: an update of the messages channel that LangGraph stores with the step (a
  node, a ``pre_model_hook``, a middleware).
"""
