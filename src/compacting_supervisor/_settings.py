"""Checks for keyword settings: each error names the parameter and says what it takes."""

from __future__ import annotations

from typing import Any


def check_count(
    name: str, value: Any, *, minimum: int = 1, allow_none: bool = False, unit: str = ""
) -> Any:
    """Return ``value`` if it is an integer of at least ``minimum`` (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        msg = f"`{name}` must be {kind}{unit}{' or None' if allow_none else ''}, got {value!r}."
        raise ValueError(msg)
    return value


def check_seconds(
    name: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False
) -> Any:
    """Return ``value`` if it is a positive (or non-negative) number of seconds."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "non-negative" if allow_zero else "positive"
        none = " or None" if allow_none else ""
        msg = f"`{name}` must be a {kind} number of seconds{none}, got {value!r}."
        raise ValueError(msg)
    return value


def check_ratio(ratio: Any) -> float:
    """Return ``compaction_ratio`` if it lies strictly between 0 and 1."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
        msg = (
            "`compaction_ratio` must be between 0 and 1 (exclusive), e.g. 0.5 to summarise "
            f"the older half, got {ratio!r}."
        )
        raise ValueError(msg)
    return float(ratio)


def check_token_counter(counter: Any) -> Any:
    """Return ``token_counter`` if it is a `TokenCounter` or None."""
    from compacting_supervisor.token_counter import TokenCounter

    if counter is not None and not isinstance(counter, TokenCounter):
        msg = (
            "`token_counter` must be a TokenCounter (e.g. TokenCounter(model='gpt-4o')) "
            f"or None, got {type(counter).__name__}."
        )
        raise TypeError(msg)
    return counter
