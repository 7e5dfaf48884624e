"""Personal data: e-mail addresses, card numbers, IBANs and phone numbers.

Off by default (`redact_personal_data` or ``redact_with(personal_data=True)`` turn it on):
a summary that forgets who the customer was, or which card a refund went to, is usually
worse for the agent than one that keeps it. Card numbers must pass the Luhn check and
IBANs the ISO 13616 mod-97 check, so order numbers and other long digit runs are left
alone. Phone numbers: E.164 (``+44 20 7946 0958``, ``+14155552671``) and the common
national forms (``(415) 555-2671``, ``415-555-2671``, ``020 7946 0958``,
``06 12 34 56 78``). Every pattern is linear in the text, as in ``_rules``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["scan_personal_data"]


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", match[0])
    if 13 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1:
        return "[REDACTED:card]"
    return match[0]


def _iban(match: re.Match[str]) -> str:
    iban = match[0].replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return match[0]
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return "[REDACTED:iban]" if int(number) % 97 == 1 else match[0]


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        re.compile(
            r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}+@"
            r"(?:[A-Za-z0-9\-]{1,63}+\.){1,8}[A-Za-z]{2,24}+(?![A-Za-z0-9\-])"
        ),
        "[REDACTED:email]",
    ),
    (
        re.compile(
            r"(?<![A-Z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Z0-9])"
        ),
        _iban,
    ),
    (re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){12,18}(?![\w])"), _card),
    (
        re.compile(r"(?<![\w+])\+[1-9](?:[ .\-]?\(?\d\)?){6,14}(?![\d])"),
        "[REDACTED:phone]",
    ),
    (
        re.compile(
            r"(?<![\w\-+(])(?<!\d )(?:\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}|\d{3}[.\-]\d{3}[.\-]\d{4}"
            r"|0\d{2,4}[ \-]\d{3,4}[ \-]?\d{3,4}|0[1-9](?:[ .]\d{2}){4})(?![\w\-]| \d)"
        ),
        "[REDACTED:phone]",
    ),
]  # fmt: skip
_DIGIT = re.compile(r"\d")


def scan_personal_data(text: str) -> str:
    """``text`` with e-mail addresses, card numbers, IBANs and phone numbers replaced."""
    if "@" not in text and _DIGIT.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
