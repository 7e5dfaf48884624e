"""What the tokens cost under the providers' prompt-cache rules (issue 20, section 1).

Providers discount the part of a request that repeats the previous request's prefix:

- ``anthropic``: a cached prefix is read at 0.1x the input price and the rest of the
  request written to the cache at 1.25x (a breakpoint at the end of every request, so the
  next one can read it); only prefixes of 1,024 tokens or more are cached, a shorter
  request is billed at 1x.
- ``gpt-4o``: cached input at 0.5x, automatically, in 128-token steps from 1,024 tokens.
- ``gpt-4.1``: the same at 0.25x.

Each request, the agent's and the summariser's alike, is priced against the requests
before it on the same thread: the cached part is the longest run of leading messages it
shares with the agent's last request or the summariser's last request (both are in the
cache), whole messages only (a message that changed, such as a new summary, ends it),
counted with the package's `TokenCounter` like every other figure. A summariser request
that is a re-rendered transcript shares nothing and is billed at the full price; one that
sends the agent's own messages (``ChatModelSummarizer(request="conversation")``) reads
their cached prefix like the agent's next request would, and sets a breakpoint at its end
as the agent's do (agents on Anthropic need their own, e.g.
``AnthropicPromptCachingMiddleware``; on Anthropic ``ChatModelSummarizer`` asks for one):
its rest is written at 1.25x, and only then can a later request read it. Output tokens are
not priced (every contender writes the same answers; the summaries' output is reported
beside). Figures are token-equivalents (tokens times the multiplier), compared as ratios
against no compaction.

``PriceMeter(stable_tokens=3000)`` prices the same requests as a realistic agent's would
be, behind a stable prefix of that many tokens (system prompt and tool schemas, sent
first and unchanged in every request): the prefix counts in every agent request and is
always shared with the previous one; a summariser request has it only when it starts as
the agent's requests do (the agent's system prompt first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from compacting_supervisor import TokenCounter

__all__ = ["PARTS", "RULES", "STABLE_PREFIX_TOKENS", "CacheRule", "PriceMeter"]

STABLE_PREFIX_TOKENS = 3000
"""The stable prefix of the realistic agent priced beside the benchmark's own."""


@dataclass(frozen=True)
class CacheRule:
    """One provider's prompt-cache billing."""

    name: str
    """``anthropic``, ``gpt-4o`` or ``gpt-4.1``."""
    read: float
    """Price of a cached input token, against an uncached one."""
    write: float
    """Price of an input token written to the cache (1.0: writing costs nothing extra)."""
    minimum: int = 1024
    """Shortest prefix that is cached."""
    step: int = 1
    """Cached prefixes are counted in steps of this many tokens."""

    def price(self, total: int, shared: int, *, write: bool = True) -> float:
        """Token-equivalents of a request of ``total`` tokens sharing ``shared`` with the last.

        With ``write=False`` the uncached rest is billed at 1x: a request no later one
        extends (a summariser's) sets no cache breakpoint at its end.
        """
        cached, rest, _ = self.split(total, shared, write=write)
        return cached + rest

    def split(self, total: int, shared: int, *, write: bool = True) -> tuple[float, float, int]:
        """`price` in two: the cached prefix's, the rest's, and the rest's tokens."""
        if total < self.minimum:
            return 0.0, float(total), total
        cached = shared - shared % self.step if shared >= self.minimum else 0
        rest = total - cached
        return self.read * cached, (self.write if write else 1.0) * rest, rest


RULES = (
    CacheRule("anthropic", read=0.1, write=1.25),
    CacheRule("gpt-4o", read=0.5, write=1.0, step=128),
    CacheRule("gpt-4.1", read=0.25, write=1.0, step=128),
)
"""The rules every contender is priced by."""


def _key(message: BaseMessage) -> str:
    calls = getattr(message, "tool_calls", None) or []
    return json.dumps(
        [
            message.type,
            message.content,
            message.name,
            getattr(message, "tool_call_id", None),
            [[c.get("name"), c.get("args"), c.get("id")] for c in calls],
        ],
        sort_keys=True,
        default=str,
    )


PARTS = ("new messages", "cache reads", "sent again uncached", "summariser")
"""Where priced input goes: an agent request's messages never sent before (what any
contender pays, at the write price), its cached prefix, what it sends again outside the
cache (after a compaction: the system prompt, the new summary, the kept messages), and the
summariser's requests."""


@dataclass
class PriceMeter:
    """Prices one thread's agent requests, in order, and its summariser's input."""

    counter: TokenCounter = field(default_factory=TokenCounter)
    stable_tokens: int = 0
    """Tokens of a stable prefix before every request's messages (0: none)."""
    priced: dict[str, float] = field(default_factory=lambda: {r.name: 0.0 for r in RULES})
    """Token-equivalents so far, per rule."""
    cached_tokens: int = 0
    """Agent input tokens a cache could serve (the shared prefixes of 1,024+ tokens)."""
    summariser_priced: dict[str, float] = field(
        default_factory=lambda: {r.name: 0.0 for r in RULES}
    )
    """The summariser's share of `priced`."""
    parts: dict[str, dict[str, float]] = field(
        default_factory=lambda: {r.name: dict.fromkeys(PARTS, 0.0) for r in RULES}
    )
    """`priced` split, per rule, into `PARTS`."""
    _previous: list[str] = field(default_factory=list)
    _previous_summary: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _calls: int = 0

    def _shared(self, keys: list[str]) -> int:
        """Leading messages ``keys`` shares with the agent's or the summariser's last request."""
        best = 0
        for before in (self._previous, self._previous_summary):
            same = 0
            for old, new in zip(before, keys, strict=False):
                if old != new:
                    break
                same += 1
            best = max(best, same)
        return best

    def agent_call(self, messages: Sequence[BaseMessage]) -> None:
        """Price one agent request against the cache the requests before it left."""
        keys = [_key(m) for m in messages]
        same = self._shared(keys)
        self._previous = keys
        total = self.counter.count(messages) + self.stable_tokens
        shared = self.counter.count(messages[:same]) - 3 if same else 0  # less reply priming
        if self._calls:
            shared += self.stable_tokens
        self._calls += 1
        self.cached_tokens += shared if shared >= RULES[0].minimum else 0
        fresh = [
            m for m, key in zip(messages[same:], keys[same:], strict=True) if key not in self._seen
        ]
        new = self.counter.count(fresh) - 3 if fresh else 0
        self._seen.update(keys)
        for rule in RULES:
            cached, rest, tokens = rule.split(total, shared)
            self.priced[rule.name] += cached + rest
            share = min(1.0, new / max(1, tokens))  # the rest is billed at one rate
            part = self.parts[rule.name]
            part["cache reads"] += cached
            part["new messages"] += rest * share
            part["sent again uncached"] += rest * (1 - share)

    def summariser_call(self, messages: Sequence[BaseMessage]) -> None:
        """Price one summariser request against the same cache.

        A request that starts as the agent's do (the conversation request) has the stable
        prefix, reads the cached part and, like the agent's, sets a breakpoint at its end:
        Anthropic writes its rest at 1.25x, and later requests may read it. A transcript
        shares nothing, sets no breakpoint, and is billed at 1x.
        """
        keys = [_key(m) for m in messages]
        same = self._shared(keys)
        if same:
            self._previous_summary = keys
        stable = self.stable_tokens if same and self._calls else 0
        total = self.counter.count(messages) + stable
        shared = self.counter.count(messages[:same]) - 3 + stable if same else 0
        for rule in RULES:
            price = rule.price(total, shared, write=bool(same))
            self.priced[rule.name] += price
            self.summariser_priced[rule.name] += price
            self.parts[rule.name]["summariser"] += price

    def to_json(self) -> dict[str, Any]:
        """The figures, for the results file."""
        return {
            "priced": dict(self.priced),
            "summariser_priced": dict(self.summariser_priced),
            "parts": {rule: dict(part) for rule, part in self.parts.items()},
            "cached_tokens": self.cached_tokens,
        }
