"""The note after a summary that names the stored tool results folded into it.

When a compaction summarises offloaded tool results, the agent still needs their
references to read them back. The newest ones (up to `MAX_LISTED`) are listed in one
paragraph after the summary, each under the read tool of the policy that stored it::

    Stored tool results (read them with read_tool_result): tr_..., tr_....

The next compaction lists them again, so the summariser is sent the previous summary with
only the references that will not be listed again (`for_summariser`): it neither pays for
the list nor has to copy it, and a reference dropped from the list still reaches it.

Everything here is pure: text and messages in, text and references out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from langchain_core.messages import BaseMessage

from compacting_supervisor._messages import METADATA_KEY
from compacting_supervisor.offload import OFFLOAD_KEY, REF_PATTERN, offloaded_ref

__all__ = ["MAX_LISTED", "for_summariser", "listed_refs", "refs_note", "split_note"]

MAX_LISTED = 20
"""At most this many references (the newest) are listed after a summary."""

_TOOL = r"[A-Za-z0-9_-]{1,64}"  # a read tool's name, as OffloadToolResults accepts it
_SENTENCE = (
    rf"Stored tool results \(read them with ({_TOOL})\): "
    r"(tr_[0-9a-f]{20}(?:, tr_[0-9a-f]{20})*)\."
)
_ONE = re.compile(_SENTENCE)
_NOTE = re.compile(rf"{_SENTENCE}(?: {_SENTENCE})*")


def refs_note(refs: Mapping[str, str]) -> str:
    """The paragraph naming ``refs`` (reference -> read tool), one sentence per tool.

    Example:
        >>> refs_note({"tr_" + "0" * 20: "read_tool_result"})
        'Stored tool results (read them with read_tool_result): tr_00000000000000000000.'
    """
    by_tool: dict[str, list[str]] = {}
    for ref, tool in refs.items():
        by_tool.setdefault(tool, []).append(ref)
    return " ".join(
        f"Stored tool results (read them with {tool}): {', '.join(listed)}."
        for tool, listed in by_tool.items()
    )


def split_note(summary: str | None) -> tuple[str | None, dict[str, str]]:
    """``summary`` without its trailing note, and the note's references with their tools.

    Only a last paragraph that is exactly a note counts; any other text stays.
    """
    head, _, last = (summary or "").rpartition("\n\n")
    if not head or not _NOTE.fullmatch(last):
        return summary, {}
    noted: dict[str, str] = {}
    for sentence in _ONE.finditer(last):
        for ref in sentence.group(2).split(", "):
            noted.setdefault(ref, sentence.group(1))
    return head, noted


def listed_refs(
    previous: str | None, evicted: Sequence[BaseMessage], default_tool: str
) -> dict[str, str]:
    """The newest references the new summary must name, oldest first, with their read tools.

    They are every reference in ``previous`` (under the tool its note names, else
    ``default_tool``) and those of the offloaded results in ``evicted`` (under the tool
    each recorded), the newest `MAX_LISTED` of them.
    """
    _, noted = split_note(previous)
    refs: dict[str, str] = {}
    for ref in REF_PATTERN.findall(previous or ""):  # in order, each once
        refs.setdefault(ref, noted.get(ref, default_tool))
    for message in evicted:
        if (ref := offloaded_ref(message)) is not None:
            refs.setdefault(ref, _read_tool(message) or default_tool)
    return dict(list(refs.items())[-MAX_LISTED:])


def for_summariser(previous: str | None, listed: Mapping[str, str]) -> str | None:
    """``previous`` as the summariser reads it: its note names only what is not ``listed``."""
    text, noted = split_note(previous)
    if not noted:
        return previous
    rest = {ref: tool for ref, tool in noted.items() if ref not in listed}
    return f"{text}\n\n{refs_note(rest)}" if rest else text


def _read_tool(message: BaseMessage) -> str | None:
    info = message.response_metadata[METADATA_KEY][OFFLOAD_KEY]  # offloaded_ref checked it
    tool = info.get("tool")
    return tool if isinstance(tool, str) and re.fullmatch(_TOOL, tool) else None
