"""Large tool results out of the window: stored outside the thread, read back by a tool.

A tool that returns a whole web page, a CSV export or a log file can fill a model's context
window on its own. `OffloadToolResults` moves every `ToolMessage` above a size into a
`ResultStore` (a directory of files, `DirectoryResultStore`, or any LangGraph ``BaseStore``,
`LangGraphResultStore`) and leaves in the history a copy of the message (same ``id``,
``tool_call_id``, ``name``, ``status`` and ``artifact``) whose content is a short reference
and a preview::

    [tool result stored: ref=tr_3f9a0c1b2d4e5f607182, 48,211 characters, 12,034 tokens. Preview:]
    <the first 1,000 characters>
    [... 47,211 more characters; call read_tool_result(ref="tr_3f9a0c1b2d4e5f607182", offset=1000)]

The agent pages through the original with the tool `OffloadToolResults.read_tool` returns,
so nothing is lost: the store holds the text exactly as the tool returned it.

The logic is written once: `OffloadToolResults.plan` is pure (messages in, replacements and
what to store out); `write` / `awrite` do the store I/O; `apply` / `aapply` do both, and
return the new messages only once every write succeeded. A failed write raises
`OffloadError` and the caller's messages stay as they were.

Where it runs: on a history you hold (`apply`), or as each tool answers, before the model
sees the result (``ToolNode(..., wrap_tool_call=policy.wrap_tool_call,
awrap_tool_call=policy.awrap_tool_call)``, or ``create_agent(...,
middleware=[policy.middleware()])``). `stored_results_note` names the stored results a
summary dropped, so a compaction never loses the way back to them.

Example:
    >>> from langchain_core.messages import ToolMessage
    >>> from langgraph.store.memory import InMemoryStore
    >>> policy = OffloadToolResults(InMemoryStore(), min_chars=1000, preview_chars=10)
    >>> plan = policy.apply([ToolMessage("x" * 3000, tool_call_id="call_1")], thread_id="t1")
    >>> plan.messages[0].content.splitlines()[1]
    'xxxxxxxxxx'
"""

from compacting_supervisor.offload._shared import HEADER_PREFIX as HEADER_PREFIX
from compacting_supervisor.offload._shared import OFFLOAD_KEY as OFFLOAD_KEY
from compacting_supervisor.offload._shared import make_ref, offloaded_ref, restored
from compacting_supervisor.offload.policy import OffloadToolResults, stored_results_note
from compacting_supervisor.offload.read_tool import read_tool_result_tool
from compacting_supervisor.offload.results import OffloadedResult, OffloadError, OffloadPlan
from compacting_supervisor.offload.stores import (
    DEFAULT_NAMESPACE,
    REF_PATTERN,
    DirectoryResultStore,
    LangGraphResultStore,
    ResultStore,
    is_ref,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "REF_PATTERN",
    "DirectoryResultStore",
    "LangGraphResultStore",
    "OffloadError",
    "OffloadPlan",
    "OffloadToolResults",
    "OffloadedResult",
    "ResultStore",
    "is_ref",
    "make_ref",
    "offloaded_ref",
    "read_tool_result_tool",
    "restored",
    "stored_results_note",
]

__test__ = {  # `doctest.testmod` on this package runs the examples of what it re-exports
    "DirectoryResultStore": DirectoryResultStore,
    "LangGraphResultStore": LangGraphResultStore,
    "OffloadError": OffloadError,
    "OffloadPlan": OffloadPlan,
    "OffloadToolResults": OffloadToolResults,
    "OffloadedResult": OffloadedResult,
    "ResultStore": ResultStore,
    "is_ref": is_ref,
    "make_ref": make_ref,
    "offloaded_ref": offloaded_ref,
    "read_tool_result_tool": read_tool_result_tool,
    "restored": restored,
    "stored_results_note": stored_results_note,
}
