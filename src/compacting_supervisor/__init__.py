"""Keep long-lived LangGraph agents forever young.

`CompactingSupervisor` wraps any compiled LangGraph graph; after each run over its token
limit, `HistoryManager` summarises the oldest part of the thread's messages and rewrites
the thread's checkpoint, leaving every other channel and every earlier checkpoint intact.
"""

from typing import TYPE_CHECKING

from compacting_supervisor._messages import is_summary
from compacting_supervisor.archive import ArchivedSession, Transcript
from compacting_supervisor.context import BuiltContext, ContextBuilder, render_messages
from compacting_supervisor.errors import (
    CheckpointerError,
    CompactionError,
    NoReductionError,
    StaleCheckpointError,
    SummarizationError,
    ThreadBusyError,
)
from compacting_supervisor.history_manager import SUMMARY_PREFIX, HistoryManager
from compacting_supervisor.keep import KeepMessages, KeepPolicy, KeepRatio, KeepTokens
from compacting_supervisor.locks import ThreadLockTimeoutError
from compacting_supervisor.node import CompactionNode
from compacting_supervisor.offload import (
    DirectoryResultStore,
    LangGraphResultStore,
    OffloadError,
    OffloadToolResults,
    ResultStore,
    read_tool_result_tool,
)
from compacting_supervisor.redaction import (
    Redactor,
    redact_personal_data,
    redact_secrets,
    redact_text,
    redact_with,
)
from compacting_supervisor.results import (
    CacheUsage,
    CompactionResult,
    MessageCompaction,
    ThreadStats,
)
from compacting_supervisor.summarizers import (
    DEFAULT_SUMMARY_PROMPT,
    ChatModelSummarizer,
    ExtractiveSummarizer,
    render_transcript,
)
from compacting_supervisor.supervisor import CompactingSupervisor
from compacting_supervisor.token_counter import TokenCounter, count_tokens
from compacting_supervisor.triggers import (
    AllOf,
    AnyOf,
    ContextFraction,
    MessageCount,
    Repetition,
    TimeSinceCompaction,
    TokenLimit,
    Trigger,
    TriggerContext,
    When,
    context_window_of,
)

__all__ = [
    "DEFAULT_SUMMARY_PROMPT",
    "SUMMARY_PREFIX",
    "AllOf",
    "AnyOf",
    "ArchivedSession",
    "BuiltContext",
    "CacheUsage",
    "ChatModelSummarizer",
    "CheckpointerError",
    "CompactingSupervisor",
    "CompactionError",
    "CompactionMiddleware",
    "CompactionNode",
    "CompactionResult",
    "ContextBuilder",
    "ContextFraction",
    "DirectoryResultStore",
    "ExtractiveSummarizer",
    "HistoryManager",
    "KeepMessages",
    "KeepPolicy",
    "KeepRatio",
    "KeepTokens",
    "LangGraphResultStore",
    "MessageCompaction",
    "MessageCount",
    "NoReductionError",
    "OffloadError",
    "OffloadToolResults",
    "Redactor",
    "Repetition",
    "ResultStore",
    "StaleCheckpointError",
    "SummarizationError",
    "ThreadBusyError",
    "ThreadLockTimeoutError",
    "ThreadStats",
    "TimeSinceCompaction",
    "TokenCounter",
    "TokenLimit",
    "Transcript",
    "Trigger",
    "TriggerContext",
    "When",
    "context_window_of",
    "count_tokens",
    "is_summary",
    "read_tool_result_tool",
    "redact_personal_data",
    "redact_secrets",
    "redact_text",
    "redact_with",
    "render_messages",
    "render_transcript",
]


if TYPE_CHECKING:  # imported on first use (below): it needs langchain
    from compacting_supervisor.middleware import CompactionMiddleware


def __getattr__(name: str) -> object:
    # `CompactionMiddleware` needs langchain (the "agents" extra): imported on first use, so
    # the package imports without it and the name then says what to install.
    if name == "CompactionMiddleware":
        try:
            from compacting_supervisor.middleware import CompactionMiddleware
        except ImportError as exc:
            if not (exc.name or "").startswith("langchain"):
                raise
            from compacting_supervisor._extras import missing_extra

            return missing_extra(name, "agents", exc)
        return CompactionMiddleware
    msg = f"module 'compacting_supervisor' has no attribute {name!r}"
    raise AttributeError(msg)
