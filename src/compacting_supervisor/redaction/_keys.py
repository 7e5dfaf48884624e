"""Secret-bearing keys: which names hold a secret, and which values are only placeholders.

A key holds a secret when its last word (snake_case, camelCase, kebab-case, dotted, any
case) is a credential noun, or its last two words are one (``api key``, ``private key``):
``password``, ``db_password``, ``dbPassword``, ``X-Api-Key``, ``client_secret``,
``GITHUB_TOKEN``, ``Authorization``, ``Set-Cookie``. A key that ends in another word is
about the secret, not the secret: ``password_reset_url``, ``token_count``, ``secret_name``,
``passwordVariable``. Some credential nouns are also ordinary words in a name
(``pwd``, ``auth``): their value must look like a credential as well. Tokens that are not
credentials keep their value: ``max_tokens``, ``next_token``, ``csrf_token``, ``eos_token``,
``public_key``.

Under such a key any value is a secret, a plain word too, except a placeholder: empty,
a boolean or null, a reference (``$VAR``, ``${VAR}``, ``{{ var }}``, ``<password>``,
``os.environ[...]``, an ``ENV_NAME``), a mask (``****``, ``xxxx``) or one already redacted.
"""

from __future__ import annotations

import functools
import math
import re

__all__ = [
    "PUBLISHED_KEYS",
    "SECRET",
    "KeyKind",
    "high_entropy_tokens",
    "is_fake_token",
    "is_mask",
    "is_placeholder",
    "is_sequence",
    "key_kind",
    "looks_like_credential",
    "redact_key_value",
    "secret_key_at",
    "shannon_entropy",
]

KeyKind = str  # "strong", "weak", "strict" (a plain "key") or "" (not a secret key)

_STRONG_LAST = frozenset(
    {
        "password", "passwd", "passphrase", "passcode", "pass", "secret",
        "token", "apikey", "credential", "credentials", "creds", "authorization",
        "cookie", "cookies", "privatekey", "secretkey", "accesskey", "sessionid",
        "sessiontoken", "authtoken", "accesstoken", "refreshtoken", "clientsecret",
        "bearer", "jwt",
    }
)  # fmt: skip
_WEAK_LAST = frozenset({"pwd", "auth", "key"})
_STRONG_PAIRS = frozenset(
    {
        ("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"),
        ("signing", "key"), ("encryption", "key"), ("master", "key"), ("session", "key"),
        ("auth", "key"), ("account", "key"), ("license", "key"), ("app", "key"),
        ("subscription", "key"), ("shared", "key"), ("storage", "key"), ("service", "key"),
        ("session", "id"), ("connection", "string"),
    }
)  # fmt: skip
# A token or key named for something else than a credential.
_NOT_CREDENTIAL_BEFORE = frozenset(
    {
        "public", "csrf", "xsrf", "page", "next", "prev", "previous", "continuation",
        "pagination", "sync", "max", "min", "num", "total", "input", "output", "prompt",
        "completion", "reasoning", "cached", "eos", "bos", "pad", "unk", "sep", "cls",
        "mask", "special", "start", "end", "stop", "cancellation", "cancel", "device",
        "push", "registration", "verification", "idempotency", "lexer", "parser", "cursor",
        "primary", "foreign", "schema", "sequence", "bucket", "sort", "partition", "cache",
        "hot", "pub", "natural", "index", "idx", "map", "dict", "object", "lookup", "row",
        "column", "composite", "unique", "hash", "group", "routing", "dedup", "dedupe",
        "cluster", "shard", "react", "storage", "translation", "i18n", "foo", "sample",
    }
)  # fmt: skip

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def _words(key: str) -> list[str]:
    # Folded as IGNORECASE folds: the Turkish dotless i and dotted capital I read as i.
    folded = _CAMEL.sub("_", key).casefold().replace("\u0131", "i").replace("i\u0307", "i")
    return [w for w in _SEPARATORS.split(folded) if w]


@functools.lru_cache(maxsize=4096)
def key_kind(key: str) -> KeyKind:
    """How much of a secret ``key`` holds.

    Returns:
        ``"strong"`` (any value is a secret), ``"weak"`` (a credential-like one is),
        ``"strict"`` (a long credential-like one is: a plain ``key``), or ``""``.
    """
    if len(key) > 80:
        return ""
    words = _words(key)
    if not words:
        return ""
    last = words[-1]
    before = words[-2] if len(words) > 1 else ""
    if before in _NOT_CREDENTIAL_BEFORE:
        return ""
    if last in _STRONG_LAST or (before, last) in _STRONG_PAIRS or before + last in _STRONG_LAST:
        return "strong"
    if last == "key":
        return "strict"
    if last in _WEAK_LAST:
        return "weak"
    return ""


_PLACEHOLDER = re.compile(
    r"""(?ix)
    (?: null | none | nil | true | false | undefined | n/?a | redacted | changeme | secret
      | password | \*+ | x+ | \.+ | -+ | \#+ | \?+ )
    | \$\{ .* | \$[A-Z_][A-Z0-9_]* | %\(\w+\)s          # $VAR, ${VAR}, %(name)s
    | \{\{ .* | \{% .*                         # templates
    | < [^<>]* >                               # <password>
    | \[ [^\]]* \] .* | \[REDACTED .*          # [PASSWORD], already [REDACTED:...]
    | \$\( .* | new \s .* | \{ \s* [A-Za-z_][\w.]* \s* \} | \{ .* \( .*   # code
    | pass | test | user | username | pwd | token
    | (?: os\.environ | os\.getenv | getenv | process\.env | System\.getenv | env\( | ENV\[
        | secrets\. | vault: | ssm: ) .*       # read from elsewhere
    """
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_ATTRIBUTE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?")


_MASK_RUN = re.compile(r"([xX*#.\u2022])\1{7}")
_ONE_CHAR = re.compile(r"(.)\1*")


def is_mask(value: str) -> bool:
    """``xxxxxxxx``, ``****``, ``glc_111111111111111111``: a value that hides or fakes one.

    A run of eight ``x``, ``*``, ``#``, ``.`` or ``\u2022``, one character repeated, or one
    character making most of a value of eight or more.
    """
    if _MASK_RUN.search(value) or _ONE_CHAR.fullmatch(value):
        return True
    if len(value) < 8:
        return False
    most = max(value.count(char) for char in set(value[:64]))
    return most * 10 >= len(value) * 6


# Keys published as examples, which gitleaks' rules allowlist by value: the Firebase
# Android SDK's sample Google API keys (gitleaks' gcp-api-key allowlist).
PUBLISHED_KEYS = frozenset(
    {
        "AIzaSyabcdefghijklmnopqrstuvwxyz1234567", "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
        "AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM", "AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
        "AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0", "AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
        "AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c", "AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
        "AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY", "AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
        "AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ", "AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
        "AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU", "AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
        "AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE", "AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
    }
)  # fmt: skip


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``, from its character counts.

    Shannon's entropy, gitleaks' and detect-secrets' measure.
    """
    if not value:
        return 0.0
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in map(value.count, set(value)))


def is_sequence(value: str) -> bool:
    """``abcdef123456``, ``AbCeFG123``, ``1234567890123``: a value made of counting runs.

    Runs of three or more characters that each follow the one before (``a`` ``b`` ``c``,
    any case; ``7`` ``8`` ``9``) cover at least 60% of it; eight characters or more. A
    machine-issued key is random and never is; a typed-in placeholder often is.
    """
    if len(value) < 8:
        return False
    covered = run = 0
    previous = -2
    for code in map(ord, value.lower()):
        if code == previous + 1:
            run += 1
        else:
            covered += run if run >= 3 else 0
            run = 1
        previous = code
    covered += run if run >= 3 else 0
    return covered * 10 >= len(value) * 6


def is_fake_token(value: str) -> bool:
    """Whether a key format's match fakes a key.

    A mask, counting runs, few distinct characters (``sgp_5555555dAAAAA7777777Cccc...``:
    under 3 bits a character over 20 or more; a random key of that length has 3.5 or
    more), or a documentation key: one that says ``EXAMPLE`` (``AKIAIOSFODNN7EXAMPLE``,
    AWS's) or is published as an example. A value under a secret-bearing key is judged by
    its key, not by this: ``AWS_SECRET_ACCESS_KEY=...EXAMPLEKEY`` is still redacted.
    """
    return (
        "example" in value.lower()
        or value in PUBLISHED_KEYS
        or is_mask(value)
        or is_sequence(value)
        or (len(value) >= 20 and shannon_entropy(value) < 3.0)
    )


_CALL = re.compile(r"[A-Za-z_][\w.]*\(.*")


def is_placeholder(value: str, *, quoted: bool = False) -> bool:
    """Whether ``value`` (already unquoted and stripped) names a secret without holding one.

    A run of eight identical characters is a mask (``ghp_xxxxxxxx...``). Outside quotes, an
    attribute or a call without digits (``self.password``, ``get_token()``) and an
    ``ENV_NAME`` are code referring to a secret.
    """
    if len(value) < 3:
        return True
    if len(value) > 300:
        return False
    if _PLACEHOLDER.fullmatch(value) is not None or is_mask(value):
        return True
    if quoted:
        return False
    return (
        _ENV_NAME.fullmatch(value) is not None
        or _CALL.fullmatch(value) is not None
        or (_ATTRIBUTE.fullmatch(value) is not None and not any(c.isdigit() for c in value))
    )


_CREDENTIAL_CHARS = re.compile(r"[0-9_\-+/=!@#$%^&*.~]")


def looks_like_credential(value: str, *, strict: bool = False) -> bool:
    """What a weak key's value must look like to be redacted.

    Six or more characters (sixteen when ``strict``, for a plain ``key``), a digit or a
    symbol in it, no space, and not a path (``pwd=/home/me``) or a URL.
    """
    if strict and (sum(c.isdigit() for c in value) < 2 or "." in value):
        return False
    return (
        len(value) >= (16 if strict else 6)
        and " " not in value
        and not value.startswith(("/", "./", "~", "../"))
        and "://" not in value
        and _CREDENTIAL_CHARS.search(value) is not None
    )


SECRET = "[REDACTED:secret]"
_QUOTES = "\"'`"
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+")


def redact_key_value(key: str, raw: str) -> str:
    """``raw`` (the text after a key and its operator) with the secret in it replaced.

    Quotes around the value stay; an HTTP auth scheme (``Bearer``, ``Basic`` ...) stays
    before it. A key that holds no secret, or a placeholder value, leaves ``raw`` as is.
    """
    kind = key_kind(key)
    if not kind:
        return raw
    lead = raw[: len(raw) - len(raw.lstrip())]
    value = raw.strip().rstrip(",;")
    tail = raw[len(lead) + len(value) :]
    quote = ""
    if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
        quote, value = value[0], value[1:-1]
    elif value[:2] in ('\\"', "\\'") and value.endswith(value[:2]) and len(value) >= 4:
        quote, value = value[:2], value[2:-2]
    scheme = _AUTH_SCHEME.match(value)
    prefix = scheme.group(0) if scheme else ""
    secret = value[len(prefix) :].strip()
    if quote == "`" and " " in secret:
        return raw  # a shell command's output, not a value
    if is_placeholder(secret, quoted=bool(quote)) or (
        kind != "strong" and not looks_like_credential(secret, strict=kind == "strict")
    ):
        return raw
    return f"{lead}{quote}{prefix}{SECRET}{quote}{tail}"


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_RUN = re.compile(r"[\w.\-]*")


def secret_key_at(text: str, start: int) -> bool:
    """Whether the key around ``start`` (a key word that an operator follows) is secret.

    A key rule changes only a value whose key `key_kind` calls secret-bearing, and its key
    is the whole run of word characters, dots and hyphens (after one ``$`` or ``@``)
    around the key word. ``token_count: 12``, ``max_tokens = 500`` and ``secret_name: db``
    need no key rule run.
    """
    first = start
    while first > 0 and start - first < 80 and text[first - 1] in _NAME_CHARS:
        first -= 1
    if first > 0 and text[first - 1] in "$@":
        first -= 1
    run = _KEY_RUN.match(text, start)
    return bool(key_kind(text[first : run.end() if run else start]))


# A run of base64 or URL-safe characters, from its start (possessive: linear).
_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-.~])[A-Za-z0-9+/_\-.~]{20,}+={0,2}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Words that label a hash or an identifier, just before a hex token.
_HASH_WORD = re.compile(
    r"(?i)(?:commit|sha\w*|md5|hash|digest|checksum|etag|trace|span|request|revision|rev"
    r"|oid|object|blob|tree|id|uuid|fingerprint|nonce|build|version|ref|head)\W{0,6}$"
)


# Names of values that are random but not secret (and those of `_NOT_CREDENTIAL_BEFORE`).
_PUBLIC_RANDOM = _NOT_CREDENTIAL_BEFORE | {
    "sig", "signature", "sha", "sha1", "sha256", "sha512", "md5", "digest", "checksum",
    "etag", "nonce", "salt", "id", "uuid", "guid", "version", "commit", "fingerprint",
    "thumbprint", "integrity", "request", "trace", "span", "ref", "rev", "revision", "oid",
    "kid", "iv",
}  # fmt: skip
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$@")


def _names_a_public_value(lead: str) -> bool:
    """Whether ``lead`` (text up to an operator) ends with a key naming a public value."""
    head = lead.rstrip(":=>?").rstrip(" \t").rstrip("\"'`")
    start = len(head)
    while start > 0 and len(head) - start < 80 and head[start - 1] in _KEY_CHARS:
        start -= 1
    return any(word in _PUBLIC_RANDOM for word in _words(head[start:]))


def high_entropy_tokens(
    text: str, *, base64_limit: float, hex_limit: float
) -> list[tuple[int, int]]:
    """Where ``text`` holds a random-looking token with no key: ``(start, end)`` pairs.

    See `HighEntropyRedactor`. Each run is looked at once, with at most 300 characters
    before it (the URL it may be part of, the key or word it may follow).
    """
    spans = []
    for match in _RUN.finditer(text):
        token = match[0].strip(".")
        if len(token) > 1000 or _DIGIT.search(token) is None or _LETTER.search(token) is None:
            continue  # longer: an encoded blob (a key in one has its own rule)
        start = match.start()
        before = text[max(0, start - 300) : start]
        word_start = max(before.rfind(" "), before.rfind("\n"), before.rfind("\t"))
        if "://" in before[word_start + 1 :] or before.endswith(("/", "?", "&", "@", "%")):
            continue  # a URL's path or query: not a credential the rules can tell
        lead = before.rstrip(" \t\"'`")
        if lead.endswith((":", "=", ">")) and _names_a_public_value(lead):
            continue  # public_key = ..., "sha": ..., csrf-token: ...
        if _HEX.fullmatch(token.replace("-", "")):
            if (
                len(token) < 32
                or _UUID.fullmatch(token)
                or not lead.strip()  # a value on its own (a JSON string): a hash, mostly
                or _HASH_WORD.search(lead[-30:])
            ):
                continue
            limit = hex_limit
        else:
            limit = base64_limit
        if len(token) < 20 or shannon_entropy(token) <= limit or is_fake_token(token):
            continue
        spans.append((start, start + len(token)))
    return spans
