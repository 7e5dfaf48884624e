"""The built-in secret rules: known key formats, and values under secret-bearing keys.

Every pattern runs in time linear in the text (checked by ``benchmarks/linear_time.py``):
a token starts only where a run of its characters starts (a negative lookbehind of the
same class), its body is possessive (``{20,}+``) so a failed match gives nothing back,
lookaheads and key-value parts are bounded, and no quantifier is nested in another
unbounded one. Text holding none of the words the patterns need (`may_hold_secret`) is
not scanned at all.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from ahocorasick_rs import AhoCorasick, Implementation, MatchKind

from compacting_supervisor.redaction._keys import (
    is_fake_token,
    is_placeholder,
    redact_key_value,
    secret_key_at,
)

__all__ = [
    "PATTERNS",
    "holds_needle",
    "may_hold_secret",
    "scan_folded",
    "scan_secrets",
]

Replacement = str | Callable[[re.Match[str]], str]
_QUOTES = "\"'`"


def _line_value(match: re.Match[str]) -> str:
    redacted = redact_key_value(match["key"], match["value"])
    if redacted == match["value"]:
        return match[0]
    return match[0][: match.start("value") - match.start()] + redacted


def _inline_value(match: re.Match[str]) -> str:
    op, quoted_key, value = match["op"], match["q"], match["value"]
    text = match.string
    if op in (":", ",") and not quoted_key:
        return match[0]  # "The secret: be kind." is prose; line-start keys are the line rule's
    if op == "," and value[:1] not in _QUOTES:
        return match[0]
    if value[:1] not in _QUOTES and text[match.end() : match.end() + 1] == "(":
        return match[0]  # password=get_password(): code, not a value
    return _line_value(match)


_MASKED_TAIL = re.compile(r"[#*\u2022]{4}|[xX]{6}")


def _token(kind: str, shortest: int = 0) -> Callable[[re.Match[str]], str]:
    """A key format's replacement: ``[REDACTED:<kind>]``, unless the key is a fake.

    A fake: shorter than ``shortest``, a mask, counting runs, too few distinct characters
    (`is_fake_token`), or followed by a mask (``xoxp-5723...-####################``).
    """

    def replace(match: re.Match[str]) -> str:
        token = match[0]
        if (
            len(token) < shortest
            or is_fake_token(token)
            or _MASKED_TAIL.match(match.string, match.end()) is not None
        ):
            return token
        return f"[REDACTED:{kind}]"

    return replace


def _private_key(match: re.Match[str]) -> str:
    """A PEM private key, unless its body is none or a placeholder.

    A body under 64 characters that is empty, a placeholder (``...``, ``<key>``) or a word
    in one case (``anything``) holds no key; a truncated one (``MIIEowIBAAKCAQEA``) is
    still redacted.
    """
    body = match["body"]
    if match["end"]:
        body = body[: len(body) - len(match["end"])]
    body = "".join(body.split())
    if len(body) < 64 and (
        not body or is_placeholder(body) or (body.isalpha() and (body.islower() or body.isupper()))
    ):
        return match[0]
    return "[REDACTED:private-key]"


def _curl_user(match: re.Match[str]) -> str:
    """``-u user:password`` in a curl command, redacted unless a placeholder.

    The command's ``curl`` is at most 600 characters before, on the same line or on lines
    continued with a backslash.
    """
    before = match.string[max(0, match.start() - 600) : match.start()]
    command = before.rfind("curl")
    if command < 0 or "\n" in before[command:].replace("\\\n", "") or is_placeholder(match[3]):
        return match[0]
    return f"{match[1]}[REDACTED:password]"


def _basic_auth(match: re.Match[str]) -> str:
    """``Basic <base64 of user:password>``: redacted when it decodes to a user and password."""
    token = match["b64"]
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return match[0]
    if ":" not in text or not text.isprintable():
        return match[0]
    return f"{match['scheme']} [REDACTED:password]"


# (kind, pattern, replacement), applied in order.
PATTERNS: list[tuple[str, re.Pattern[str], Replacement]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----(?P<body>.*?"
            r"(?P<end>-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----|\Z))",
            re.DOTALL,
        ),
        _private_key,
    ),
    (
        "anthropic-key",
        re.compile(r"(?<![A-Za-z0-9_\-])sk-ant-[A-Za-z0-9_\-]{20,}+"),
        _token("anthropic-key"),
    ),
    (
        "openai-key",
        re.compile(
            r"(?<![A-Za-z0-9_\-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?"
            r"(?=[A-Za-z_\-]{0,200}\d)[A-Za-z0-9_\-]{20,}+"
        ),
        _token("api-key"),
    ),
    (
        "stripe-key",
        re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}+"),
        _token("api-key"),
    ),
    (
        "aws-access-key",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Z])"),
        _token("aws-key"),
    ),
    (
        "github-token",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{40,}+)"
        ),
        _token("github-token"),
    ),
    (
        "slack-token",
        re.compile(
            r"(?<![A-Za-z0-9_\-])(?:xox[abposre]|xapp)-\d{1,15}-"
            r"(?=[A-Za-z\-]{0,200}\d)[A-Za-z0-9\-]{6,}+"
        ),
        _token("slack-token", shortest=24),
    ),
    (
        "google-key",
        re.compile(r"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_])"),
        _token("api-key"),
    ),
    (
        "jwt",
        re.compile(
            r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}+\.ey[A-Za-z0-9_\-/\\]{8,}+"
            r"(?:\.[A-Za-z0-9_\-/\\=]*+)?"
        ),
        _token("jwt"),
    ),
    (
        # Vendors whose keys carry a prefix of their own: Hugging Face, GitLab, npm, PyPI,
        # SendGrid, Vault, Notion, Sourcegraph, Bedrock, Facebook, Azure AD, Shopify,
        # Doppler, Databricks, Grafana, DigitalOcean, Postman, Linear, Pulumi, Twilio ...
        "vendor-key",
        re.compile(
            r"(?<![A-Za-z0-9_\-])(?:hf_(?=[A-Za-z]{0,60}\d)[A-Za-z0-9]{30,}+|glpat-[A-Za-z0-9_\-]{20,}+"
            r"|gl(?:ptt|rt|dt|ft|imt|oas|soat|cbt)-[A-Za-z0-9_\-]{20,}+|npm_[A-Za-z0-9]{36,}+"
            r"|pypi-[A-Za-z0-9_\-]{50,}+|SG\.[A-Za-z0-9_\-]{20,}+\.[A-Za-z0-9_\-]{20,}+"
            r"|hv[sb]\.[A-Za-z0-9_\-]{90,}+|ntn_[A-Za-z0-9]{40,}+"
            r"|sgp_(?:(?:[a-fA-F0-9]{16}|local)_)?[a-fA-F0-9]{40}(?![A-Za-z0-9_])"
            r"|ABSKQmVkcm9ja0FQSUtleS1[A-Za-z0-9+/]{80,}+={0,2}|EAA[A-Za-z0-9]{90,}+"
            r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}+"
            r"|dapi[a-f0-9]{32}(?:-\d)?|gl(?:c|sa)_[A-Za-z0-9+/_=]{32,}+"
            r"|do[opr]_v1_[a-f0-9]{64}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|lin_api_[A-Za-z0-9]{40}"
            r"|pul-[a-f0-9]{40}|rubygems_[a-f0-9]{48}"
            r"|[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-]))"
        ),
        _token("api-key"),
    ),
    (
        "age-key",
        re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
        "[REDACTED:private-key]",
    ),
    (
        # Incoming webhooks: the URL is the credential.
        "webhook",
        re.compile(
            r"(?i)((?:hooks\.slack\.com/(?:services|workflows|triggers)"
            r"|\.webhook\.office\.com/webhookb2|discord(?:app)?\.com/api/webhooks)/)"
            r"[A-Za-z0-9/_\-@]{16,}+"
        ),
        r"\1[REDACTED:webhook]",
    ),
    (
        "basic-auth",
        re.compile(
            r"(?i)(?P<scheme>basic)(?<![\w\-]basic)[ \t]{1,5}+"
            r"(?P<b64>[A-Za-z0-9+/]{8,}+)={0,2}"
        ),
        _basic_auth,
    ),
    (
        "http-auth",
        re.compile(
            r"(?i)(?<![A-Za-z0-9_\-])(bearer|basic|token)[ \t]{1,5}+"
            r"(?=[A-Za-z._~+/=\-]{0,200}\d)[A-Za-z0-9._~+/=\-]{12,}+"
        ),
        r"\1 [REDACTED:token]",
    ),
    (
        # user:password@host, including passwords that contain "@" and an empty user.
        "url-password",
        re.compile(
            r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]{0,30}+://[^\s:/@]{0,200}+:)"
            r"([^\s/]{1,500})(@[^\s@/]{1,255}+)"
        ),
        r"\1[REDACTED:password]\3",
    ),
    (
        # curl -u user:password, curl --user "user:password"
        "curl-user",
        re.compile(
            r"(-(?<=[ \t]-)(?:u|-user)[ \t]{1,5}+([\"']?)"
            r"[^\s\"':<>]{0,100}+:)([^\s\"'<>]{1,200}+)(?=\2)"
        ),
        _curl_user,
    ),
    (
        # password: ..., Authorization: ..., - api_key: ... at the start of a line (YAML,
        # headers, .env, INI): the rest of the line is the value.
        "key-line",
        re.compile(
            r"(?m)^[ \t]{0,40}+(?:-[ \t]{1,8}+)?(?:export[ \t]{1,8}+)?(?P<q>[\"']?)"
            r"(?P<key>[A-Za-z0-9_$@][\w.\-]{0,79}+)(?P=q)[ \t]{0,5}+"
            r"(?P<op>:::=|::=|:=|=>|\?=|:|=)[ \t]{0,20}+(?P<value>[^\n]{1,4000}+)"
        ),
        _line_value,
    ),
    (
        # db_password="...", apiKey = '...', "token": "...", setProperty("X_TOKEN", "...")
        "key-value",
        re.compile(
            r"(?<![\w.\-$@])(?P<q>\\?[\"'`]?)(?P<key>[A-Za-z0-9_$@][\w.\-]{0,79}+)(?P=q)"
            r"[ \t]{0,5}+(?P<op>:::=|::=|:=|=>|\?=|==|=|:|,)[ \t]{0,20}+"
            r"(?P<value>\\\"(?:[^\"\\\n]|\\[^\"\n]){0,2000}+\\\"|\"(?:[^\"\\\n]|\\.){0,2000}+\""
            r"|'[^'\n]{0,2000}+'|`[^`\n]{0,2000}+`|[^\s\"'`,;&()}\]<>{\[][^\s\"'`,;&()}\]<>]{0,1999}+)"
        ),
        _inline_value,
    ),
    (
        # "Authorization: Bearer ...", 'X-Api-Key: ...', "Cookie: a=b; c=d" in quotes (a
        # header at the start of a line is the line rule's; in prose, "cookie:" is a word)
        "header",
        re.compile(
            r"(?i)[\"'](?P<key>authorization|proxy-authorization|cookie|set-cookie"
            r"|x-[a-z0-9\-]{1,40}+)[ \t]{0,5}+:[ \t]{0,5}+(?P<value>[^\n\"']{1,4000}+)"
        ),
        _line_value,
    ),
    (
        # curl -H "apikey: ...", --header 'Token: ...': any header name, inside -H
        "curl-header",
        re.compile(
            r"(?i)-(?<![\w\-]-)(?:h|-header)[ \t]{1,5}+[\"'](?P<key>[A-Za-z][\w.\-]{0,60}+)"
            r"[ \t]{0,5}+:[ \t]{0,5}+(?P<value>[^\n\"']{1,4000}+)"
        ),
        _line_value,
    ),
    (
        # <password>...</password>, <apiToken>\n  ...\n</apiToken>
        "xml-element",
        re.compile(r"<(?P<key>[A-Za-z_][\w.\-]{0,79}+)>(?P<value>[^<]{1,4000}+)</(?P=key)>"),
        lambda m: f"<{m['key']}>{redact_key_value(m['key'], m['value'])}</{m['key']}>",
    ),
]  # fmt: skip


# What each pattern needs in order to match, case-folded: a pattern runs only on text that
# holds one of its needles, and text holding none of them is not scanned at all. Each is a
# substring of every match of its pattern (the key rules: of every secret-bearing key,
# see `_keys`; ``curl -u``: of the text, which its replacement checks).
_KEY_WORDS = (
    "pass", "pwd", "secret", "token", "auth", "key", "cred", "cookie", "session", "bearer",
    "jwt", "connection",
)  # fmt: skip
# A key word split by separators is one too: `key_kind` joins the last two words of a key
# (``to-ken``, ``sec.ret``, ``TO_KEN``); SPLIT stands for a run of ``-``, ``.`` and ``_``.
_SPLIT = "\0"
_SPLIT_KEY_WORDS = tuple(w[:i] + _SPLIT + w[i:] for w in _KEY_WORDS for i in range(1, len(w)))
_NEEDS: dict[str, tuple[str, ...]] = {  # name -> needles
    "private-key": ("-----begin",),
    "anthropic-key": ("sk-ant-",),
    "openai-key": ("sk-",),
    "stripe-key": ("_live_", "_test_"),
    "aws-access-key": ("akia", "asia", "abia", "acca"),
    "github-token": ("github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "slack-token": ("xox", "xapp-"),
    "google-key": ("aiza",),
    "jwt": ("eyj",),
    "vendor-key": (
        "hf_", "glpat-", "glptt-", "glrt-", "gldt-", "glft-", "glimt-", "gloas-", "glsoat-",
        "glcbt-", "glc_", "glsa_", "npm_", "pypi-", "sg.", "hvs.", "hvb.", "ntn_", "sgp_", "absk",
        "eaa", "shpat_", "shpca_", "shppa_", "shpss_", "dp.", "dapi", "_v1_", "pmak-",
        "lin_api_", "pul-", "rubygems_", "q~",
    ),
    "age-key": ("age-secret-key-",),
    "webhook": ("hooks.slack", "webhook", "discord"),
    "basic-auth": ("basic",),
    "http-auth": ("bearer", "basic", "token"),
    "url-password": ("://",),
    "curl-user": ("curl",),
    "key-line": _KEY_WORDS,
    "key-value": _KEY_WORDS,
    "curl-header": ("-h ", "-h\t", "--header"),
    "header": _KEY_WORDS,
    "xml-element": _KEY_WORDS,
}  # fmt: skip
# What a match of a pattern whose needles are common words looks like around them, one
# search cheaper than the pattern (whose match always holds one): the folded text's for
# True, the text's for False (where folding could lengthen what a bound counts).
_SHAPES: dict[str, tuple[re.Pattern[str], bool]] = {
    "http-auth": (re.compile(r"(?:bearer|basic|token)[ \t]{1,5}[a-z0-9._~+/=\-]{12}"), True),
    # "://", a user, ":", a password, "@": each run stops at the next "://" (linear).
    "url-password": (re.compile(r"://[^\s:/@]{0,200}:[^\s/]{0,500}@"), False),
    "header": (re.compile("[\"']"), False),  # a header name in quotes
    "xml-element": (re.compile("</"), False),  # a closing tag
}
# Every needle, the common words first: most texts that hold a needle hold one of them.
_NEEDED = tuple(
    dict.fromkeys(
        [*_KEY_WORDS, *(n for needles in _NEEDS.values() for n in needles), *_SPLIT_KEY_WORDS]
    )
)


# The key rules need more than a key word: the word inside a key, then an operator. On
# the case-folded text, this is one match after each key word, and most prose that says
# "token" or "key" has no key=value in it.
_KEY_OPERATOR = re.compile(r"[\w.\-]{0,80}(?:\\?[\"'`])?[ \t]{0,5}[:=,>?]")

# Each needle found, with the places in PATTERNS of the patterns it may start (a key
# word's are the key rules', decided by `secret_key_at`).
_NAMES = [rule[0] for rule in PATTERNS]
_KEY_PLACES = frozenset(i for i, name in enumerate(_NAMES) if _NEEDS[name] is _KEY_WORDS)
_STARTS: dict[str, frozenset[int]] = {
    found: frozenset(i for i, name in enumerate(_NAMES) if found in _NEEDS[name]) - _KEY_PLACES
    for found in _NEEDED
    if _SPLIT not in found
}

# One Aho-Corasick automaton finds, in one pass, every needle without a separator run
# (overlapping ones too) and, for each key word split by a run, its longer half with the
# separator on its side (``-oken`` for ``t-oken``, ``toke-`` for ``toke-n``); the shorter
# half is then read next to the run. A word's value: (the places of the patterns it
# starts or None when it is only a half, whether it is a key word, the first halves to
# read before its run, the second halves to read after it, whether the half's separator
# is one only a JSON key's words are read apart at, `_LOOSE`: ``to ken``, ``to!ken``).
_SEPARATORS = "-._"
_LOOSE = frozenset(" !#$&'()*+,-./:;<=>?@[]^_`{|}~\x7f")  # what may stand in a JSON key
_Word = tuple[frozenset[int] | None, bool, tuple[str, ...], tuple[str, ...], bool]


def _automaton() -> tuple[AhoCorasick, list[_Word]]:
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    loose: set[str] = set()  # halves next to a separator only a JSON key has
    for word in _SPLIT_KEY_WORDS:
        head, tail = word.split(_SPLIT)
        for separator in (*_SEPARATORS, *sorted(_LOOSE.difference(_SEPARATORS))):
            half = separator + tail if len(tail) >= len(head) else head + separator
            if len(tail) >= len(head):
                before.setdefault(half, []).append(head)
            else:
                after.setdefault(half, []).append(tail)
            if separator not in _SEPARATORS:
                loose.add(half)
    words = list(dict.fromkeys([*_STARTS, *before, *after]))
    values: list[_Word] = [
        (_STARTS.get(w), w in _KEY_WORDS, (*before.get(w, ()),), (*after.get(w, ()),), w in loose)
        for w in words
    ]
    return AhoCorasick(
        words, matchkind=MatchKind.Standard, implementation=Implementation.DFA
    ), values


_AUTOMATON, _WORDS = _automaton()


def _split_words(
    lowered: str, start: int, stop: int, word: _Word, *, json: bool = False
) -> list[tuple[int, int]]:
    """The spans of the split key words whose longer half, ``word``, is at start:stop.

    A run of separators (of `_LOOSE` characters for a half next to one of them, or in text
    that may be JSON, whose keys' words may be apart by any such run: ``to!_ken``) is
    walked from one of its ends (a half starts or ends only there), once for each half
    found at that end: linear in the text.
    """
    _, _, heads, tails, loose = word
    run = _LOOSE if loose or json else _SEPARATORS
    found = []
    if heads:  # a separator, then a second half
        first = start
        while first > 0 and lowered[first - 1] in run:
            first -= 1
        found = [
            (first - len(head), stop)
            for head in heads
            if first >= len(head) and lowered.startswith(head, first - len(head))
        ]
    if tails:  # a first half, then a separator
        last = stop - 1
        while last + 1 < len(lowered) and lowered[last + 1] in run:
            last += 1
        found += [
            (start, last + 1 + len(tail)) for tail in tails if lowered.startswith(tail, last + 1)
        ]
    return found


_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def _searched(lowered: str) -> str:
    """What the automaton reads: each character past ASCII as ``_``, a separator.

    A key's word split by a letter such as ``\u00e9`` (``to\u00e9ken``) is a key word to
    `key_kind`, as it is split by ``_``; no needle holds a character past ASCII.
    """
    return lowered if lowered.isascii() else _NOT_ASCII.sub("_", lowered)


def _needles(lowered: str) -> tuple[set[int], list[tuple[int, int]], list[tuple[int, int]]]:
    """Every needle in case-folded text, in one pass of `_AUTOMATON` over `_searched`.

    Returns the places of the patterns the needles start (the key rules' aside), the span
    of each key word (whole or split), and the span of each needle.
    """
    places: set[int] = set()
    keys: list[tuple[int, int]] = []
    spans: list[tuple[int, int]] = []
    lowered = _searched(lowered)
    for index, start, stop in _AUTOMATON.find_matches_as_indexes(lowered, overlapping=True):
        word = _WORDS[index]
        starts, key, heads, tails, loose = word
        if starts is not None:
            places |= starts
            spans.append((start, stop))
            if key:
                keys.append((start, stop))
        if (heads or tails) and not loose:
            split = _split_words(lowered, start, stop, word)
            keys += split
            spans += split
    return places, keys, spans


def holds_needle(lowered: str, *, json: bool = False) -> bool:
    """Whether case-folded text holds any needle a pattern (or a secret key) needs.

    The same pass as `_needles`; for ``json`` (text that may be JSON, without escapes), a
    key word split by any run of what a JSON key may hold but letters and digits
    (`_LOOSE`) counts too, as `key_kind` reads a JSON key (``to ken``, ``to!ken``,
    ``se/cret``).
    """
    lowered = _searched(lowered)
    for index, start, stop in _AUTOMATON.find_matches_as_indexes(lowered, overlapping=True):
        word = _WORDS[index]
        if word[0] is not None or (
            (json or not word[4]) and _split_words(lowered, start, stop, word, json=json)
        ):
            return True
    return False


def _folded(text: str) -> str:
    if text.isascii():
        return text.lower()
    lowered = text.casefold()
    if "\u0131" in lowered or "\u0307" in lowered:
        # IGNORECASE matches the Turkish dotless i (U+0131) and dotted capital I (U+0130,
        # folded to i + U+0307) as i; casefold() does not, so fold them here.
        lowered = lowered.replace("\u0131", "i").replace("i\u0307", "i")
    return lowered


def _holds(lowered: str, needles: tuple[str, ...]) -> bool:
    return any(map(lowered.__contains__, needles))


def needles_in(lowered: str) -> tuple[str, ...]:
    """Each needle case-folded text holds, once (a split key word as it is written)."""
    return tuple(dict.fromkeys(lowered[start:end] for start, end in _needles(lowered)[2]))


def may_hold_secret(text: str) -> bool:
    """False only for text that none of the patterns could change."""
    return holds_needle(_folded(text))


def _places(text: str, lowered: str, after: int) -> list[int]:
    """The places of the patterns after ``after`` that may change ``text``, in order.

    Those the needles in ``lowered`` start (`_needles`), and the key rules' when a key
    word is followed by an operator (`_KEY_OPERATOR`, at most 87 characters read), in a
    key `secret_key_at` calls secret (any, in text whose case-folding moves positions:
    not ASCII).
    """
    places, keys, _ = _needles(lowered)
    if keys:
        plain = text.isascii()
        operator = _KEY_OPERATOR.match
        for start, end in keys:
            if operator(lowered, end) is not None and (not plain or secret_key_at(text, start)):
                places |= _KEY_PLACES
                break
    if after < 0 or not places:
        return sorted(places)
    return sorted(place for place in places if place > after)


def scan_secrets(text: str) -> str:
    """``text`` with every pattern's secret replaced (``text`` itself when none is).

    The patterns run in order, each only on text holding one of its needles (and of the
    shape in `_SHAPES`, if it has one); after a change the needles are looked up again.
    """
    return scan_folded(text, _folded(text))


def scan_folded(text: str, lowered: str) -> str:
    """`scan_secrets` of ``text``, given ``lowered``, its case-folding (`_folded`)."""
    places = _places(text, lowered, -1)
    index = 0
    while index < len(places):
        place = places[index]
        index += 1
        name, pattern, replacement = PATTERNS[place]
        shape = _SHAPES.get(name)
        if shape is not None and shape[0].search(lowered if shape[1] else text) is None:
            continue
        redacted = pattern.sub(replacement, text)
        if redacted != text:
            text, lowered = redacted, _folded(redacted)
            places, index = _places(text, lowered, place), 0
    return text
