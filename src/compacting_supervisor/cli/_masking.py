"""What the command line may print of a store's name: never a password, in any form.

A Postgres store is named by a URL (``postgresql://user:PASSWORD@host/db``, or
``?password=PASSWORD`` in its query) or a libpq ``key=value`` string
(``host=db password=PASSWORD``); psycopg's own errors may quote parts of it. Every message
the command line prints about a store goes through `mask_secrets`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "display_name", "mask_secrets"]

_URL_PASSWORD = re.compile(r"(?P<keep>\w[\w+.-]*://[^/?#@\s:]*:)(?P<secret>[^/?#\s]*)@")
"""The password in a URL's user info (``postgresql://user:PASSWORD@host``; up to the last
``@``, so a password holding an unescaped ``@`` is masked whole)."""

_KEY_PASSWORD = re.compile(
    r"(?P<keep>(?:^|[?&;\s])[\w-]*password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^&#;\s]*)",
    re.I,
)
"""A ``password=`` (``sslpassword=`` ...) in a URL's query or a ``key=value`` string, any case,
its value quoted or not."""

MASK = "***"
"""What a password is replaced with."""


def _secrets(db: str) -> list[str]:
    """Every form the passwords in ``db`` may take in a message, longest first."""
    found: set[str] = set()
    for pattern in (_URL_PASSWORD, _KEY_PASSWORD):
        for match in pattern.finditer(db):
            secret = match["secret"]
            bare = (
                secret[1:-1].replace("\\'", "'").replace("\\\\", "\\")
                if (len(secret) >= 2 and secret[0] == secret[-1] == "'")
                else secret
            )
            found.update({secret, bare, unquote(secret), unquote(bare)})
    return sorted((s for s in found if s), key=len, reverse=True)


def mask_secrets(text: str, db: str) -> str:
    """``text`` fit to print: every password ``db`` holds is masked, in every form.

    A Postgres URL's ``user:password@``, a ``?password=`` or ``&password=`` query
    parameter and a ``password=`` in a ``key=value`` connection string (any case, quoted
    or not) are masked where they appear, and the password itself wherever a message
    repeats it (psycopg quotes parts of a connection string it cannot parse).

    Args:
        text: What is about to be printed.
        db: The store as the user named it.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['keep']}{MASK}@", text)
    text = _KEY_PASSWORD.sub(lambda m: f"{m['keep']}{MASK}", text)
    for secret in _secrets(db):
        text = text.replace(secret, MASK)
    return text


def display_name(db: str) -> str:
    """``db`` fit to print: its password masked, whatever form it takes."""
    return mask_secrets(db, db)
