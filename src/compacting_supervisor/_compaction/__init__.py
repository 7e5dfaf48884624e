"""The compaction core: messages and settings in, a compaction outcome out.

No saver and no graph: the core's only I/O (the summariser, the offload store) is asked for
as ops that a sync or an async driver performs (`compacting_supervisor._flow`). Persisting
the outcome is for `compacting_supervisor._persist`.

- `compactor`: the flow of one compaction (offload, cut, summarise, outcome).
- `summarise`: folding evicted messages into the running summary (redaction, pieces that
  fit, retries, usage).
- `pieces`: exact counts of a prompt by pieces, and messages cut into pieces that fit.
"""

from compacting_supervisor._compaction.compactor import (
    Compactor,
    ReadResults,
    StoreResults,
    compaction_result,
)
from compacting_supervisor._compaction.pieces import split_message
from compacting_supervisor._compaction.summarise import (
    Summarize,
    SummarizerUsage,
    SummaryPolicy,
)

__all__ = [
    "Compactor",
    "ReadResults",
    "StoreResults",
    "Summarize",
    "SummarizerUsage",
    "SummaryPolicy",
    "compaction_result",
    "split_message",
]
