"""Checks for keyword settings: each error names the parameter and says what it takes.

Every numeric setting of every public class goes through `check_count`, `check_seconds`
or `check_ratio`, so NaN and infinity are refused in one place (an infinite timeout
overflows a lock's wait; an infinite back-off never returns).
"""

from __future__ import annotations

import math
from typing import Any


def _number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool, not NaN, not infinity)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_count(
    name: str, value: Any, *, minimum: int = 1, allow_none: bool = False, unit: str = ""
) -> Any:
    """Return ``value`` if it is an integer of at least ``minimum`` (or None when allowed).

    Raises:
        ValueError: Anything else (a float, NaN and infinity included).
    """
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
    """Return ``value`` if it is a finite positive (or non-negative) number of seconds.

    Raises:
        ValueError: Anything else: a negative number, NaN, infinity (use None for "no
            limit" where the setting takes it), a bool or a non-number.
    """
    if value is None and allow_none:
        return None
    if not _number(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        none = " or None" if allow_none else ""
        hint = ""
        if isinstance(value, float) and math.isinf(value) and allow_none:
            hint = " (None means no limit)"
        msg = f"`{name}` must be a finite {kind} number of seconds{none}{hint}, got {value!r}."
        raise ValueError(msg)
    return value


def check_ratio(ratio: Any, *, name: str = "compaction_ratio") -> float:
    """Return ``ratio`` if it lies strictly between 0 and 1 (so it is never NaN).

    Args:
        ratio: The fraction of the conversation to summarise.
        name: The parameter's name, for the error.

    Raises:
        ValueError: Anything else.
    """
    if not _number(ratio) or not 0 < ratio < 1:
        msg = (
            f"`{name}` must be between 0 and 1 (exclusive), e.g. 0.5 to summarise "
            f"the older half, got {ratio!r}."
        )
        raise ValueError(msg)
    return float(ratio)


def check_token_counter(counter: Any) -> Any:
    """Return ``token_counter`` if it is a `TokenCounter` or None.

    Raises:
        TypeError: Anything else (a model name, a function ...).
    """
    from compacting_supervisor.token_counter import TokenCounter

    if counter is not None and not isinstance(counter, TokenCounter):
        msg = (
            "`token_counter` must be a TokenCounter (e.g. TokenCounter(model='gpt-4o')) "
            f"or None, got {type(counter).__name__}."
        )
        raise TypeError(msg)
    return counter
