r"""Secrets found by where they sit: values under secret keys, JSON in text, encoded text.

`redact_string` is what every string of a message goes through. A string that is JSON
(an object or an array) is parsed and its decoded values redacted one by one, the values
under a secret-bearing key (`compacting_supervisor.redaction._keys`) whatever they are;
it is written back as JSON only when something was redacted. Any other string is scanned
as it is and, when it holds escapes (``\/``, ``\"``, ``\uXXXX``, ``%XX``), decoded as
the renderer and the summariser would read it and scanned again: what is found there is
returned decoded and redacted.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from compacting_supervisor.redaction._keys import (
    SECRET,
    is_placeholder,
    key_kind,
    looks_like_credential,
)
from compacting_supervisor.redaction._rules import (
    PATTERNS,
    _folded,
    _holds,
    holds_needle,
    needles_in,
    scan_folded,
    scan_secrets,
)

__all__ = ["TOO_DEEP", "Scan", "decode", "redact_string", "redact_structure"]

Scan = Callable[[str], str]
"""Text in, text out: the text rules (built-in patterns, personal data, a plug-in)."""

_MAX_DEPTH = 100  # deeper structures are replaced whole (JSON text: scanned as text)
TOO_DEEP = "[REDACTED:nested-too-deep]"
_ESCAPE = re.compile(
    r"\\u(d[89abAB][0-9a-fA-F]{2})\\u(d[c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\([/\"nrt])"
)
_MEDIA = re.compile(r"data:(?:image|audio|video)/[\w.+\-]{1,40};base64,")
_JSON_START = re.compile(r"\s*[\[{]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SIMPLE = {"/": "/", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_PRIVATE_KEY = PATTERNS[0][1]
_KEY_REDACTED = "[REDACTED:private-key]"


def _unescape(match: re.Match[str]) -> str:
    high, low, single, simple = match.groups()
    if high:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if single:
        code = int(single, 16)
        return match[0] if 0xD800 <= code <= 0xDFFF else chr(code)
    return _SIMPLE[simple]


def decode(text: str) -> str:
    """``text`` as a reader of it sees it: JSON escapes and percent-encoding decoded."""
    if "\\" in text:
        text = _ESCAPE.sub(_unescape, text)
    if "%" in text and _PERCENT.search(text):
        text = unquote(text)
    return text


def _secret_value(value: Any, kind: str, scan: Scan, depth: int) -> Any:
    """A value under a secret key: replaced, unless it is only a placeholder."""
    if depth > _MAX_DEPTH:
        return SECRET
    if isinstance(value, str):
        if is_placeholder(value.strip(), quoted=True):
            return redact_string(value, scan, depth + 1)
        if kind != "strong" and not looks_like_credential(value, strict=kind == "strict"):
            return redact_string(value, scan, depth + 1)
        return SECRET
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return SECRET if kind == "strong" and abs(value) >= 100 else value
    if isinstance(value, Mapping):
        return {k: _secret_value(v, kind, scan, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_secret_value(v, kind, scan, depth + 1) for v in value)
    return value


_SCALARS = frozenset({int, float, bool, type(None)})  # left as they are, unless under a key
_CONTAINERS = frozenset({dict, list, tuple})
_ONE_LOOK_ITEMS = 64  # a structure told quiet in one look: at most this many items
_ONE_LOOK_CHARS = 16_384  # and characters


def _quiet(text: str, lowered: str) -> bool:
    """Whether text without escapes, ``lowered`` case-folded, has nothing to redact.

    It holds no needle; if it may be JSON (it starts and ends as an object or an array
    does, as `_as_json` reads only those), no key word split by any run of what a key may
    hold either: `key_kind` joins a key's last two words whatever stands between them
    (``{"to ken": ...}``, ``{"to!_ken": ...}``).
    """
    json = _JSON_START.match(text) is not None and text.rstrip()[-1:] in ("}", "]")
    return not holds_needle(lowered, json=json)


def _unchanged(text: str, scan: Scan) -> bool:
    r"""Whether ``scan`` is the built-in one and has nothing in ``text`` to look at.

    Nothing to decode (no ``\``, no ``%``), no word any rule (or secret key) needs and,
    if it is JSON, no key word split by any run (`_quiet`): as JSON, decoded or as it is,
    the text comes back unchanged.
    """
    return (
        scan is scan_secrets
        and "\\" not in text
        and "%" not in text
        and _quiet(text, _folded(text))
    )


def redact_structure(value: Any, scan: Scan, depth: int = 0) -> Any:
    """``value`` (a string, or dicts, lists and tuples of them) with its secrets replaced.

    Returns ``value`` itself when nothing in it changed, so callers can tell by identity.
    """
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is str or isinstance(value, str):
        if isinstance(scan, _Narrowed) and scan.skip(value):
            return value
        return redact_string(value, scan, depth)
    if depth > _MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        return TOO_DEEP  # not walked any further, so not shown either: fail closed
    if depth == 0 and scan is scan_secrets and cls in _CONTAINERS and _quiet_structure(value):
        return value  # the walk below would change nothing: told in one look
    if cls is dict or (cls is not list and isinstance(value, Mapping)):
        changed = False
        out: dict[Any, Any] = {}
        skip = scan.skip if isinstance(scan, _Narrowed) else None
        for key, item in value.items():
            kind = key_kind(key) if type(key) is str or isinstance(key, str) else ""
            if kind:
                new = _secret_value(item, kind, scan, depth)
            elif type(item) in _SCALARS or (
                type(item) is str and (skip(item) if skip else _unchanged(item, scan))
            ):
                new = item
            else:
                new = redact_structure(item, scan, depth + 1)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and key_kind(value[0]):
            # a (name, value) pair: headers as httpx and requests list them
            secret = _secret_value(value[1], key_kind(value[0]), scan, depth)
            if secret is value[1]:
                return value
            return (value[0], secret) if isinstance(value, tuple) else [value[0], secret]
        if any(type(item) is str and "-----BEGIN" in item for item in value):
            items = _key_lines(value, scan, depth)
        else:
            items = [redact_structure(item, scan, depth + 1) for item in value]
        if len(items) != len(value) or any(map(operator.is_not, items, value)):
            return type(value)(items)
        return value
    return value


def _opens_key(item: Any) -> bool:
    """Whether ``item`` is a string whose last private key header has no end in it."""
    if type(item) is not str or "-----BEGIN" not in item:
        return False
    matches = list(_PRIVATE_KEY.finditer(item))  # the first without an end runs to the last
    return bool(matches) and not matches[-1]["end"]


def _key_lines(value: list[Any] | tuple[Any, ...], scan: Scan, depth: int) -> list[Any]:
    """The items of ``value`` redacted, a private key cut across strings as one text.

    A key read as a list of lines (``["-----BEGIN RSA PRIVATE KEY-----", "MIIE...", ...,
    "-----END RSA PRIVATE KEY-----"]``) is not a key in any one string. From a string that
    opens one, the strings up to the one ending it (or the next header, or the last
    string) are joined with newlines and redacted as the text they form: when that finds
    the key, they become that one redacted string. Each string is joined once at most.
    """
    items: list[Any] = []
    index, size = 0, len(value)
    while index < size:
        item = value[index]
        if _opens_key(item):
            end = index + 1
            while end < size and type(value[end]) is str and "-----BEGIN" not in value[end]:
                end += 1
                if "-----END" in value[end - 1]:
                    break
            joined = "\n".join(value[index:end])
            redacted = redact_structure(joined, scan, depth + 1)
            if redacted.count(_KEY_REDACTED) > joined.count(_KEY_REDACTED):
                items.append(redacted)
                index = end
                continue
        items.append(redact_structure(item, scan, depth + 1))
        index += 1
    return items


class _Narrowed:
    """The built-in scan, skipping strings that hold none of the needles ``text`` holds.

    ``text`` is JSON without escapes, so each of its strings appears in it verbatim: a
    string holding none of the needles found in the whole (each of them, found in one
    pass) holds none at all.
    """

    def __init__(self, text: str) -> None:
        self.present = needles_in(_folded(text))

    def skip(self, leaf: str) -> bool:
        return not _holds(_folded(leaf), self.present)

    def __call__(self, leaf: str) -> str:
        return leaf if self.skip(leaf) else scan_secrets(leaf)


def _gathered(
    value: Any, *, deepest: int | None = None, most: int | None = None
) -> list[str] | None:
    """The strings of ``value`` (dicts, lists, tuples, scalars), its keys left out.

    None when a key is secret-bearing or a list of two opens with such a name (a
    ``(name, value)`` pair), when something is nested deeper than ``deepest``, when its
    dicts, lists and tuples hold more than ``most`` items in all (told before their keys
    are asked about), or when anything else is in it (a mapping that is not a dict, any
    other object): those are the walk's to redact.
    """
    strings: list[str] = []
    asked: set[Any] = set()  # records repeat their keys
    level: list[Any] = [value]
    depth = 0
    while level:
        if deepest is not None and depth > deepest:
            return None
        below: list[Any] = []
        for node in level:
            cls = type(node)
            if most is not None and (cls is dict or cls is list or cls is tuple):
                most -= len(node)  # items, strings or not: the look stays small
                if most < 0:
                    return None
            if cls is dict:
                if not asked.issuperset(node):
                    for key in node:
                        if key in asked:
                            continue
                        if type(key) is str:
                            if key_kind(key):
                                return None
                        elif type(key) not in _SCALARS:
                            return None
                        asked.add(key)
                items: Any = node.values()
            elif cls is list or cls is tuple:
                if len(node) == 2 and type(node[0]) is str and key_kind(node[0]):
                    return None
                items = node
            else:
                return None
            for item in items:
                kind = type(item)
                if kind is str:
                    strings.append(item)
                elif kind not in _SCALARS:
                    below.append(item)
        level = below
        depth += 1
    return strings


def _nothing_to_redact(value: Any) -> bool:
    """Whether the built-in walk of ``value`` (parsed from JSON without escapes) changes nothing.

    No key is secret-bearing, no list of two opens with such a name (a ``(name, value)``
    pair), and no string changes under `scan_secrets`.

    The strings are scanned in one text, a line each: a string a pattern changes on its
    own is changed on its line too (no pattern reads across a line but the PEM and XML
    ones, whose longer matches still change the text; strings holding a PEM header are
    left to the walk, as a body cut short alone may read as a placeholder once the next
    line follows), so an unchanged whole means every string is unchanged. Without
    escapes, no string needs decoding or holds JSON with keys.
    """
    strings = _gathered(value)
    if strings is None:
        return False
    joined = "\n".join(strings)
    return "-----BEGIN" not in joined and scan_secrets(joined) == joined


def _quiet_structure(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """Whether the built-in walk of ``value`` (dicts, lists, tuples, scalars) changes nothing.

    Tool-call arguments and content blocks are mostly such small structures: one look at
    their strings, gathered in one text a line each, instead of one look a string. They
    hold no needle (nor, as JSON might, a key word split by any run), no escape and no
    ``%``, so no string is changed, decoded or read as JSON (`_unchanged` of each), and
    `_gathered` found no secret-bearing key, nothing nested deeper than the walk goes and
    nothing else. Joining only adds needles (a key word split across two lines), never
    hides one. A larger structure is walked at once: when it holds a needle, the one look
    would only be work done twice.
    """
    strings = _gathered(value, deepest=_MAX_DEPTH, most=_ONE_LOOK_ITEMS)
    if strings is None or sum(map(len, strings)) > _ONE_LOOK_CHARS:
        return False
    joined = "\n".join(strings)
    if "\\" in joined or "%" in joined:
        return False
    # Only a string opening with a bracket may be read as JSON (`_quiet`).
    return not holds_needle(_folded(joined), json="{" in joined or "[" in joined)


def _narrowed(text: str, scan: Scan) -> Scan:
    if scan is not scan_secrets or "\\" in text or "%" in text:
        return scan
    return _Narrowed(text)


def _as_json(text: str, scan: Scan, depth: int) -> str | None:
    """``text`` redacted as the JSON it is; None when it is not a JSON object or array."""
    if depth > _MAX_DEPTH or not _JSON_START.match(text):
        return None
    stripped = text.strip()
    if stripped[-1:] not in ("}", "]"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict | list):
        return None
    plain = scan is scan_secrets and "\\" not in stripped and "%" not in stripped
    if plain and _nothing_to_redact(value):
        return text
    scan = _narrowed(stripped, scan)
    redacted = redact_structure(value, scan, depth + 1)
    if redacted is value:
        return text
    indent = 2 if "\n" in stripped else None
    return json.dumps(redacted, ensure_ascii=False, indent=indent)


def redact_string(text: str, scan: Scan, depth: int = 0) -> str:
    """``text`` with its secrets replaced: as JSON when it is JSON, else as text, decoded too.

    Returns ``text`` itself when nothing was found.
    """
    if not text or (text.startswith("data:") and _MEDIA.match(text)):
        return text  # an image, audio or video, read as [image] and the like
    if scan is scan_secrets and "\\" not in text and "%" not in text:
        lowered = _folded(text)
        if not _JSON_START.match(text):
            return scan_folded(text, lowered)  # nothing to decode: scanned as it is
        if _quiet(text, lowered):
            return text  # nothing to decode, and no word any rule (or secret key) needs
    as_json = _as_json(text, scan, depth)
    if as_json is not None:
        return as_json
    decoded = decode(text)
    if decoded != text:
        redacted = scan(decoded)
        if redacted != decoded:
            return redacted
    redacted = scan(text)
    return text if redacted == text else redacted
