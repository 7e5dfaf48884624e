"""Keep long-lived LangGraph agents forever young.

`CompactingSupervisor` wraps any compiled LangGraph graph; after each run over its token
limit, `HistoryManager` summarises the oldest part of the thread's messages and rewrites
the thread's checkpoint, leaving every other channel and every earlier checkpoint intact.
"""

from compacting_supervisor.archive import ArchivedSession, Transcript
from compacting_supervisor.errors import (
    CompactionError,
    NoReductionError,
    StaleCheckpointError,
    SummarizationError,
    ThreadBusyError,
)
from compacting_supervisor.history_manager import SUMMARY_PREFIX, HistoryManager
from compacting_supervisor.locks import ThreadLockTimeoutError
from compacting_supervisor.redaction import redact_secrets, redact_text
from compacting_supervisor.results import CompactionResult, MessageCompaction
from compacting_supervisor.summarizers import (
    ChatModelSummarizer,
    ExtractiveSummarizer,
    render_transcript,
)
from compacting_supervisor.supervisor import CompactingSupervisor
from compacting_supervisor.token_counter import TokenCounter, count_tokens

__all__ = [
    "SUMMARY_PREFIX",
    "ArchivedSession",
    "ChatModelSummarizer",
    "CompactingSupervisor",
    "CompactionError",
    "CompactionResult",
    "ExtractiveSummarizer",
    "HistoryManager",
    "MessageCompaction",
    "NoReductionError",
    "StaleCheckpointError",
    "SummarizationError",
    "ThreadBusyError",
    "ThreadLockTimeoutError",
    "TokenCounter",
    "Transcript",
    "count_tokens",
    "redact_secrets",
    "redact_text",
    "render_transcript",
]
