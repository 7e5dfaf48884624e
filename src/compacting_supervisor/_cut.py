"""Where a history may be cut: the system prefix, the running summary, safe boundaries.

A history is read as ``[system messages..., running summary?, conversation...]``. The
oldest ``ratio`` of the conversation is evicted, with the cut moved to a safe boundary:

- an AIMessage with tool calls never parts from its ToolMessages (parallel calls and
  supervisor hand-off pairs included), in either direction;
- the kept part never starts with a ToolMessage;
- the latest human message always stays in the kept part;
- at least one message is evicted and at least one kept.

Everything here is pure: messages in, a plan out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from compacting_supervisor._messages import is_summary
from compacting_supervisor.keep import KeepPolicy, as_keep_policy


@dataclass(frozen=True)
class HistoryParts:
    """A history split into the parts compaction treats differently."""

    system: list[BaseMessage]
    """Leading system messages, kept first and verbatim."""
    summary: BaseMessage | None
    """The running summary right after them, if a compaction already happened."""
    conversation: list[BaseMessage]
    """Everything after: the part that can be cut."""


def split_history(messages: Sequence[BaseMessage]) -> HistoryParts:
    """Split ``messages`` into system prefix, running summary and conversation."""
    i = 0
    while i < len(messages) and isinstance(messages[i], SystemMessage):
        i += 1
    summary = None
    if i < len(messages) and is_summary(messages[i]):
        summary = messages[i]
        return HistoryParts(list(messages[:i]), summary, list(messages[i + 1 :]))
    return HistoryParts(list(messages[:i]), None, list(messages[i:]))


@dataclass(frozen=True)
class CutPlan:
    """What a compaction evicts and what it keeps."""

    parts: HistoryParts
    """The history the plan was made from."""
    evicted: list[BaseMessage]
    """The oldest conversation messages, to be folded into the summary."""
    kept: list[BaseMessage]
    """The newest conversation messages, kept verbatim."""


def _blocked_cuts(conversation: Sequence[BaseMessage]) -> list[bool]:
    """Mark each cut position ``c`` (evict ``conversation[:c]``) that splits a tool group.

    A tool result belongs to the latest earlier AIMessage that called its id, so models that
    reuse ids across turns (``call_0`` every time) still get one small group per call.
    """
    n = len(conversation)
    open_calls: dict[str, int] = {}
    # A difference array over cut positions: a group spanning [lo, hi] blocks lo < c <= hi.
    delta = [0] * (n + 2)
    for i, message in enumerate(conversation):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id"):
                    open_calls[str(call["id"])] = i
        elif isinstance(message, ToolMessage):
            lo = open_calls.get(str(message.tool_call_id), i)
            if i > lo:
                delta[lo + 1] += 1
                delta[i + 1] -= 1
    blocked = []
    running = 0
    for c in range(n + 1):
        running += delta[c]
        blocked.append(running > 0)
    return blocked


def plan_cut(
    messages: Sequence[BaseMessage], keep: float | KeepPolicy, *, pin_request: bool = False
) -> CutPlan | None:
    """Choose the messages to evict for a compaction.

    The target is what ``keep`` proposes: with a ratio, the oldest
    ``floor(ratio * len(conversation))`` messages (at least one). The cut then moves back,
    summarising less, to the nearest safe boundary; only when no safe boundary exists
    before the target does it move forward.

    Args:
        messages: The thread's messages.
        keep: The fraction of the conversation to evict, in (0, 1), or a `KeepPolicy`.
        pin_request: Inside a run (the middleware), the latest human message is the request
            being worked on and the messages after it may be many: the cut may then pass
            it, and the request is kept verbatim right after the summary (the kept part
            starts with it). Without it, the cut never passes the latest human message.

    Returns:
        The plan, or None when no safe cut exists (too few messages, or everything before
        the latest human message is one tool group).
    """
    parts = split_history(messages)
    conversation = parts.conversation
    n = len(conversation)
    if n < 2:
        return None
    last_human = max(
        (
            i
            for i, m in enumerate(conversation)
            if isinstance(m, HumanMessage) and not is_summary(m)
        ),
        default=None,
    )
    if pin_request and last_human is not None:
        work = [*conversation[:last_human], *conversation[last_human + 1 :]]
        cut = _safe_cut(work, keep, len(work) - 1)
        if cut is None or cut <= last_human:  # the request stays in place
            cut = _safe_cut(conversation, keep, last_human)
            return _plan(parts, conversation, cut)
        request = conversation[last_human]
        return CutPlan(parts=parts, evicted=work[:cut], kept=[request, *work[cut:]])
    upper = last_human if last_human is not None else n - 1
    return _plan(parts, conversation, _safe_cut(conversation, keep, upper))


def _plan(parts: HistoryParts, conversation: list[BaseMessage], cut: int | None) -> CutPlan | None:
    if cut is None:
        return None
    return CutPlan(parts=parts, evicted=conversation[:cut], kept=conversation[cut:])


def _safe_cut(conversation: list[BaseMessage], keep: float | KeepPolicy, upper: int) -> int | None:
    """The cut nearest ``keep``'s target, at most ``upper``, at a safe boundary; or None."""
    if upper < 1:
        return None
    blocked = _blocked_cuts(conversation)

    def safe(c: int) -> bool:
        return not blocked[c] and not isinstance(conversation[c], ToolMessage)

    target = min(as_keep_policy(keep).evict_target(conversation), upper)
    if target < 1:
        return None  # the policy keeps everything
    cut = next((c for c in range(target, 0, -1) if safe(c)), None)
    if cut is None:
        cut = next((c for c in range(target + 1, upper + 1) if safe(c)), None)
    return cut
