"""Exact counts of a summariser's prompt by pieces, and messages cut into pieces that fit.

- `PieceCounts`: the tokens of a tagged transcript as the sum of its events' tokens, each
  distinct event counted once, so a call's whole prompt is counted in look-ups.
- `split_message`: a message too long for one summariser call, whatever holds its size,
  cut into marked pieces, nothing lost.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.messages import AIMessage, BaseMessage

from compacting_supervisor._render import plain_text
from compacting_supervisor.errors import SummarizationError
from compacting_supervisor.token_counter import TokenCounter

__all__ = ["PieceCounts", "split_message"]

_PART_OVERHEAD = 40
"""Tokens a piece's tags and ``[part n of N]`` marker take, aimed under at the first cut."""
_MIN_PIECE_CHARS = 16
"""A piece of a message is never cut shorter: past that the budget is too small."""


_SPLIT = "\n<"
"""Where a prompt is cut into pieces counted on their own: after a line break, at a tag."""
_ADDITIVE = frozenset({"cl100k_base", "o200k_base"})
"""Encodings whose pre-tokenizer never joins a line break with the ``<`` that follows it."""


class PieceCounts:
    """Exact token counts of tagged transcripts, each distinct piece counted once.

    A summariser's prompt is the transcript's events, one tag each, joined by line breaks.
    For ``cl100k_base`` and ``o200k_base`` no pre-token spans a line break followed by
    ``<`` (the patterns that take a line break stop at it, and none starts with one and
    goes on), so the tokens of a text are the sum of the tokens of its pieces cut just
    after each such line break. The pieces are remembered: when the packing has counted
    each message's event, the exact count of a call's whole prompt costs a few dictionary
    look-ups instead of a second pass of the encoder over the transcript.

    Args:
        counter: The counter whose encoding counts the pieces.
    """

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self._known: dict[str, int] = {}
        self._additive: bool | None = None

    def text(self, text: str) -> int:
        """The tokens of ``text``: the encoder's exact count."""
        if self._additive is None:
            self._additive = self.counter.exact and self.counter.encoding_name in _ADDITIVE
        if not self._additive or _SPLIT not in text:
            return self._piece(text)
        parts = text.split(_SPLIT)
        last = len(parts) - 1
        total = 0
        for index, part in enumerate(parts):
            piece = part if index == 0 else "<" + part
            total += self._piece(piece + "\n" if index < last else piece)
        return total

    def messages(self, messages: list[BaseMessage]) -> int:
        """The tokens a model is sent for ``messages`` (``TokenCounter.count``'s figure)."""
        if not all(isinstance(m.content, str) for m in messages):
            return self.counter.count(messages)
        # Each message's overhead (role, name, tool calls) as counted with no content,
        # plus its content's tokens.
        frame = self.counter.count([m.model_copy(update={"content": ""}) for m in messages])
        return frame + sum(self.text(str(m.content)) for m in messages)

    def _piece(self, piece: str) -> int:
        tokens = self._known.get(piece)
        if tokens is None:
            tokens = self._known[piece] = self.counter.count_text(piece)
        return tokens


def split_message(
    message: BaseMessage, room: int, size: Callable[[BaseMessage], int]
) -> list[BaseMessage]:
    """Cut ``message``, larger than ``room`` tokens, into pieces of at most ``room`` each.

    Each piece carries a stretch of everything the transcript shows of the message (its text,
    and its tool calls' names and arguments: `plain_text`), marked ``[part n of N]``, so
    nothing is lost whatever holds the message's size.

    Args:
        message: The message to cut.
        room: The most one piece may take in a summariser call's transcript.
        size: Measures a message as the transcript holds it.
    """
    text = plain_text(message)
    if message.name and size(_piece(message, ".")) > room // 2:
        # A name too long to repeat on every piece is carried once, in the text.
        text = f"(name: {message.name})\n{text}"
        message = message.model_copy(update={"name": None})
    if not text:
        return [message]
    chars = max(1, len(text) * max(room - _PART_OVERHEAD, 1) // max(size(message), 1))
    while True:
        parts = _cut(text, chars)
        pieces = [
            _piece(message, f"[part {n} of {len(parts)}] {part}") for n, part in enumerate(parts, 1)
        ]
        largest = max(size(piece) for piece in pieces)
        if largest <= room:
            return pieces
        if chars <= _MIN_PIECE_CHARS:
            msg = (
                f"A {type(message).__name__} cannot be cut into pieces of {room} tokens for "
                "the summariser; raise `summary_input_tokens`."
            )
            raise SummarizationError(msg)
        chars = max(_MIN_PIECE_CHARS, chars * room // largest - 1)


def _cut(text: str, chars: int) -> list[str]:
    """``text`` in parts of at most ``chars`` characters, words kept whole where it can.

    A part ends after the last space or newline in its last fifth, if there is one.
    """
    parts = []
    start = 0
    while start < len(text):
        end = min(start + chars, len(text))
        if end < len(text):
            space = text.rfind(" ", end - chars // 5, end)
            newline = text.rfind("\n", end - chars // 5, end)
            end = max(space, newline) + 1 if max(space, newline) > start else end
        parts.append(text[start:end])
        start = end
    return parts


def _piece(message: BaseMessage, content: str) -> BaseMessage:
    """A copy of ``message`` holding ``content`` only (its tool calls are in the text)."""
    update: dict[str, object] = {"content": content}
    if isinstance(message, AIMessage):
        update |= {"tool_calls": [], "invalid_tool_calls": []}
    return message.model_copy(update=update)
