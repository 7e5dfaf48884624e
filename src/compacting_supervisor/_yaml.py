"""A small YAML writer for tool results the summariser and builder read.

Structured tool results (JSON objects and arrays) read far more cheaply as YAML than as
escaped JSON. Only what a reader needs: block mappings and sequences, short flow lists,
literal blocks for multi-line text, and scalars quoted whenever a YAML parser could read
them as anything but the string they are (numbers, dates, booleans, nulls).

``to_yaml(value, tables=True)`` also writes a list of flat records that share their keys
as a table, the keys named once (`table`): what a model reads, no longer YAML a parser
loads, and still lossless.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["table", "to_yaml"]

_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_RESERVED = frozenset(
    {"", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "=", "<<"}
    | {".inf", "-.inf", "+.inf", ".nan"}
)
_RESERVED_MAX = max(map(len, _RESERVED))  # lowering never shortens a string
# Strings a YAML parser would read as a number, a date or a time (1.1 rules included).
_NUMBER_LIKE = re.compile(r"[-+.]?\d[\d\s:._+\-TtZzEe]*|[-+]?0[xXoObB][\dA-Fa-f_]+")
_NUMBER_START = frozenset("-+.")  # or a digit: the only ways `_NUMBER_LIKE` can start
_LINE_BREAKS = frozenset("\r\x85\u2028\u2029")
_UNSAFE_IN_QUOTES = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
# Short strings (keys above all) repeat across records: their rendering is remembered.
_SCALARS: dict[str, str] = {}
_SCALARS_KEPT = 4096
_SCALAR_CACHED_CHARS = 64


def _quoted(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string
    return _UNSAFE_IN_QUOTES.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _plain_ok(text: str) -> bool:
    if len(text) <= _RESERVED_MAX and text.lower() in _RESERVED:
        return False  # also every empty string
    first = text[0]
    return (
        first not in _INDICATORS
        and not first.isspace()
        and not text[-1].isspace()
        and text.isprintable()
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
        and (
            not (first in _NUMBER_START or first.isdecimal())
            or _NUMBER_LIKE.fullmatch(text) is None
        )
    )


def _text_scalar(text: str) -> str:
    """A string as a YAML scalar: plain when unambiguous, else double-quoted."""
    rendered = _SCALARS.get(text)
    if rendered is None:
        rendered = text if _plain_ok(text) else _quoted(text)
        if len(text) <= _SCALAR_CACHED_CHARS:
            if len(_SCALARS) >= _SCALARS_KEPT:
                _SCALARS.clear()
            _SCALARS[text] = rendered
    return rendered


def _scalar(value: Any) -> str:
    """One YAML scalar: plain when unambiguous, else a double-quoted string."""
    if type(value) is str:
        return _text_scalar(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:  # 1e+16 reads as a string in YAML 1.1
            text = f"{mantissa}.0e{exponent}"
        return text
    return _text_scalar(str(value))


def _literal_ok(text: str) -> bool:
    if "\n" not in text:
        return False
    first = next((line for line in text.split("\n") if line), "")
    return (
        bool(first)
        and not first.startswith((" ", "\t"))
        and not any(ch in _LINE_BREAKS for ch in text)
        and all(ch.isprintable() or ch in "\n\t" for ch in text)
        and "\ufeff" not in text
    )


_FLOW_UNSAFE = frozenset(",[]{}?")
_FLOW_WIDTH = 100


def _flow(items: list[Any]) -> str | None:
    """``[a, b, c]`` for a short list of scalars (fewer tokens than one line each)."""
    if any(
        isinstance(item, dict | list) or (isinstance(item, str) and "\n" in item) for item in items
    ):
        return None
    parts = []
    width = 0  # "[" and "]" take the room of the ", " the first item does without
    for item in items:
        text = _scalar(item)
        if isinstance(item, str) and text == item and any(c in _FLOW_UNSAFE for c in text):
            text = _quoted(item)  # inside [ ] a plain scalar ends at these
        width += len(text) + 2
        if width > _FLOW_WIDTH:
            return None
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def _entry(head: str, value: Any, indent: str, out: list[str], tables: bool = False) -> None:
    """Append ``head`` (``key:`` or ``-``) followed by ``value`` to ``out``."""
    kind = type(value)
    if kind is str:  # the common case first; the same rules as below
        if "\n" in value and _literal_ok(value):
            _literal(head, value, indent, out)
        else:
            out.append(f"{head} {_text_scalar(value)}")
        return
    if kind is int or kind is float or value is None:
        out.append(f"{head} {_scalar(value)}")
        return
    if isinstance(value, list) and value and (flow := _flow(value)) is not None:
        out.append(f"{head} {flow}")
    elif tables and isinstance(value, list) and (rows := table(value)) is not None:
        out.append(f"{head.removesuffix(':')} {rows[0]}:")
        out.extend(f"{indent}  {row}" for row in rows[1:])
    elif isinstance(value, dict | list) and value:
        out.append(head)
        _yaml_lines(value, indent + "  ", out, tables)
    elif isinstance(value, str) and _literal_ok(value):
        _literal(head, value, indent, out)
    elif isinstance(value, dict | list):
        out.append(f"{head} {'{}' if isinstance(value, dict) else '[]'}")
    else:
        out.append(f"{head} {_scalar(value)}")


def _literal(head: str, value: str, indent: str, out: list[str]) -> None:
    """A multi-line string as a literal block (``|``), its trailing line breaks kept."""
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    lines = body.split("\n") + [""] * max(0, trailing - 1)
    out.append(f"{head} |{chomp}")
    out.extend(f"{indent}  {line}" if line else "" for line in lines)


def _yaml_lines(
    value: dict[Any, Any] | list[Any], indent: str, out: list[str], tables: bool = False
) -> None:
    """Append a non-empty mapping or sequence in block style, one entry per line."""
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_text_scalar(key) if type(key) is str else _scalar(key)}:"
            kind = type(item)
            if kind is str and "\n" not in item:  # a record's usual field, inline
                out.append(f"{head} {_text_scalar(item)}")
            elif kind is int:
                out.append(f"{head} {item}")
            else:
                _entry(head, item, indent, out, tables)
        return
    for item in value:
        if isinstance(item, list) and item and (flow := _flow(item)) is not None:
            out.append(f"{indent}- {flow}")
        elif tables and isinstance(item, list) and (rows := table(item)) is not None:
            out.append(f"{indent}- {rows[0]}:")
            out.extend(f"{indent}  {row}" for row in rows[1:])
        elif isinstance(item, dict | list) and item:
            start = len(out)
            _yaml_lines(item, indent + "  ", out, tables)
            out[start] = f"{indent}- {out[start][len(indent) + 2 :]}"
        else:
            _entry(f"{indent}-", item, indent, out, tables)


# ---------------------------------------------------------------------------- tables

_TABLE_MIN_ROWS = 3
_CELL_SCALARS = (str, int, float, bool, type(None))
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_JSON_WORDS = frozenset({"true", "false", "null", "NaN", "Infinity", "-Infinity"})
_CELL_QUOTED_FIRST = frozenset('" (')
_HEADERS: dict[tuple[Any, ...], str] = {}


def _cell(value: Any) -> str:
    """A table cell: a string as it is unless JSON would read it otherwise, else quoted.

    A cell reads back exactly as JSON's rules do: a quoted cell is a JSON string, an
    unquoted one a number, ``true``, ``false`` or ``null`` when it is one, else a string.
    """
    kind = type(value)
    text: str
    if kind is str:  # the common cases first, as below
        text = value
    elif kind is int:
        return str(value)
    elif kind is float and math.isfinite(value):
        return float.__repr__(value)  # what JSON writes
    elif isinstance(value, float):
        return json.dumps(value)  # NaN and Infinity as JSON writes them
    elif value is None or isinstance(value, int):  # null, true, false, digits: as in YAML
        return _scalar(value)
    else:
        text = value if isinstance(value, str) else str(value)
    if (
        not text
        or text[0] in _CELL_QUOTED_FIRST
        or text[0].isspace()
        or text[-1].isspace()
        or "|" in text
        or not text.isprintable()
        or text in _JSON_WORDS
        or ((text[0] == "-" or text[0].isdecimal()) and _JSON_NUMBER.fullmatch(text))
    ):
        return _quoted(text)
    return text


def _column(values: tuple[Any, ...]) -> list[str] | None:
    """One table column's cells (`_cell` of each); None when a value is not a scalar.

    Columns of one plain type, the usual case, are written without a call per cell:
    text cells are looked at only where JSON could read them otherwise.
    """
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind is int:
            return list(map(str, values))
        if kind is float and all(map(math.isfinite, values)):
            return list(map(float.__repr__, values))  # what JSON writes
        if kind is str:
            joined = "".join(values)
            if "|" not in joined and joined.isprintable():  # the only space left is " "
                return [
                    _quoted(text)
                    if not text
                    or text[0] in _CELL_QUOTED_FIRST
                    or text[-1] == " "
                    or text in _JSON_WORDS
                    or ((text[0] == "-" or text[0].isdecimal()) and _JSON_NUMBER.fullmatch(text))
                    else text
                    for text in values
                ]
    if not all(isinstance(v, _CELL_SCALARS) for v in values):
        return None
    return [_cell(v) for v in values]


def table(value: list[Any]) -> list[str] | None:
    """A list of flat records sharing their keys as ``(table: a|b)`` and one row each.

    None unless ``value`` holds at least three non-empty mappings with the same keys in the
    same order and only scalar values. Cells are separated by ``|``; `_cell` says
    when a cell is quoted, so the table is lossless.
    """
    if len(value) < _TABLE_MIN_ROWS or type(value[0]) is not dict or not value[0]:
        return None
    keys = list(value[0])
    for record in value:
        if type(record) is not dict or list(record) != keys:
            return None
    columns = []
    for values in zip(*(record.values() for record in value), strict=True):
        cells = _column(values)
        if cells is None:
            return None
        columns.append(cells)
    return [_header(keys), *map("|".join, zip(*columns, strict=True))]


def _header(keys: list[Any]) -> str:
    """``(table: a|b)``; records of one shape repeat their keys, so it is remembered."""
    if not all(type(key) is str for key in keys):  # 1 and True are one dict key
        return "(table: " + "|".join(_cell(key) for key in keys) + ")"
    shape = tuple(keys)
    found = _HEADERS.get(shape)
    if found is None:
        if len(_HEADERS) >= _SCALARS_KEPT:
            _HEADERS.clear()
        found = _HEADERS[shape] = "(table: " + "|".join(map(_cell, keys)) + ")"
    return found


def to_yaml(value: dict[Any, Any] | list[Any], *, tables: bool = False) -> str:
    """Deterministic block YAML for JSON-like data (mappings keep their order).

    With ``tables=True``, a list of flat records sharing their keys is written as a
    table (`table`): fewer tokens for a model, no longer YAML for a parser.
    """
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    if tables and isinstance(value, list) and (rows := table(value)) is not None:
        return f"{rows[0]}:\n" + "\n".join(rows[1:])
    out: list[str] = []
    _yaml_lines(value, "", out, tables)
    return "\n".join(out)
