"""Data for measuring redaction: gitleaks' examples, personal data, ordinary messages.

- `gitleaks_examples`: the true- and false-positive examples of gitleaks' rules
  (``tests/data/gitleaks_examples.json``, MIT, see ``tests/data/GITLEAKS_LICENSE``).
- `personal_data`: card numbers (Luhn-valid, from the issuers' prefixes), IBANs (valid
  mod-97 checksums, six countries), e-mail addresses and phone numbers (E.164 and national
  forms), each in a sentence; and near misses that are not personal data (a card number
  failing Luhn, an IBAN with a wrong checksum, order numbers, dates, versions).
- `ordinary_messages`: 2,400 messages with no secret and no personal data: prose, code,
  UUIDs, hashes, URLs without credentials, base64 images, JSON and YAML tool results,
  logs, shell commands, and the judgement calls (``token_count: 12``, ``max_tokens=500``,
  ``password_reset_url``, ``secret_santa``).

Everything is generated from fixed seeds, so every run measures the same texts. `measure`
computes the figures `benchmarks/redaction.py` prints and `tests/test_redaction_corpus.py`
checks.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def gitleaks_examples() -> list[dict[str, Any]]:
    """The examples: ``rule``, ``kind`` ("tp" or "fp"), ``text``, and ``secret`` when known.

    A false-positive example also has ``gitleaks_findings`` (the rules of gitleaks' whole
    default configuration that report a finding in it) and ``other_rules_matching`` (the
    other rules whose keywords and regex match it), both from ``extract_gitleaks.py``.
    """
    corpus = json.loads((DATA / "gitleaks_examples.json").read_text(encoding="utf-8"))
    return list(corpus["examples"])


# ---------------------------------------------------------------- personal data


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for index, char in enumerate(reversed(digits)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return digits
    raise AssertionError  # pragma: no cover - one check digit always fits


def _iban(country: str, length: int, rng: random.Random, *, valid: bool = True) -> str:
    bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = check % 97 + 1 if check != 97 else 2
    return f"{country}{check:02d}{bban}"


def _grouped(text: str, size: int = 4) -> str:
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


_SENTENCES = [
    "Please update the record to {v}.",
    "Customer wrote: my details are {v}, thanks",
    "{v}",
    "refund sent to {v} yesterday",
    "- contact: {v}",
]


@dataclass
class PersonalData:
    """Sentences holding one item of personal data each, by kind, and near misses."""

    positives: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """kind -> (text, the item)."""
    negatives: list[str] = field(default_factory=list)


def personal_data(per_kind: int = 120) -> PersonalData:
    """Generated personal data, ``per_kind`` items of each kind."""
    rng = random.Random(2718)
    data = PersonalData()
    cards = []
    for i in range(per_kind):
        prefix, length = rng.choice(
            [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]
        )
        number = _luhn_complete(prefix, length, rng)
        shown = [number, _grouped(number), "-".join(_grouped(number).split())][i % 3]
        cards.append(shown)
    countries = [("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27)]
    ibans = []
    for i in range(per_kind):
        country, length = countries[i % len(countries)]
        iban = _iban(country, length, rng)
        if country in ("GB", "NL"):  # letters in the bank code, as there
            iban = iban[:4] + "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
            iban = _iban_fix(iban + "".join(rng.choice(string.digits) for _ in range(length - 8)))
        ibans.append(_grouped(iban) if i % 2 else iban)
    first = ["alice", "bob", "chen.wei", "maria-jose", "o.connor", "j_smith", "kim+news"]
    domains = ["example.com", "mail.example.org", "uni.example.ac.uk", "ex-ample.de"]
    emails = [f"{rng.choice(first)}{i}@{rng.choice(domains)}" for i in range(per_kind)]
    phones = []
    for i in range(per_kind):
        n = [rng.randint(0, 9) for _ in range(10)]
        d = "".join(map(str, n))
        form = i % 8
        phones.append(
            [
                f"+1 {d[:3]} {d[3:6]} {d[6:]}",
                f"+44 20 {d[:4]} {d[4:8]}",
                f"+4930{d[:8]}",
                f"(415) {d[:3]}-{d[3:7]}",
                f"415-{d[:3]}-{d[3:7]}",
                f"020 {d[:4]} {d[4:8]}",
                f"06 {d[:2]} {d[2:4]} {d[4:6]} {d[6:8]}",
                f"+33 6 {d[:2]} {d[2:4]} {d[4:6]} {d[6:8]}",
            ][form]
        )
    for kind, items in (("card", cards), ("iban", ibans), ("email", emails), ("phone", phones)):
        data.positives[kind] = [
            (_SENTENCES[i % len(_SENTENCES)].format(v=item), item) for i, item in enumerate(items)
        ]
    for i in range(per_kind):
        bad_card = _luhn_complete("4", 16, rng)
        bad_card = bad_card[:-1] + str((int(bad_card[-1]) + 1) % 10)
        country, length = countries[i % len(countries)]
        data.negatives.extend(
            [
                f"card ending {bad_card} was declined (not a valid number)",
                f"IBAN {_iban(country, length, rng, valid=False)} has a typo",
                f"order #{rng.randint(10**9, 10**12)} shipped on 2024-0{i % 9 + 1}-1{i % 10}",
                f"version {i % 7}.{i % 13}.{i % 5} released at 12:{i % 60:02d}:00",
                f"invoice INV-{rng.randint(10**5, 10**7)}, total {rng.randint(1, 9999)}.{i % 100:02d}",
            ]
        )
    return data


def _iban_fix(iban: str) -> str:
    """``iban`` with its check digits recomputed."""
    country, bban = iban[:2], iban[4:]
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


# ---------------------------------------------------------------- ordinary messages

_WORDS = [
    "the",
    "a",
    "report",
    "meeting",
    "customer",
    "order",
    "invoice",
    "deploy",
    "service",
    "cluster",
    "table",
    "query",
    "function",
    "result",
    "error",
    "retry",
    "latency",
    "budget",
    "review",
    "design",
    "schema",
    "migration",
    "index",
    "token",
    "key",
    "secret",
    "password",
    "session",
    "cookie",
    "auth",
    "credential",
    "value",
    "user",
    "team",
    "plan",
    "summary",
    "model",
    "prompt",
    "context",
    "window",
    "cache",
    "build",
    "test",
    "release",
    "branch",
    "merge",
    "after",
    "before",
    "because",
    "while",
    "with",
    "without",
    "about",
    "into",
    "over",
    "under",
    "between",
]
_PROSE = [
    "The API key is stored in the vault, never in the repository.",
    "Rotate the password every ninety days and use a passphrase manager.",
    "Session cookies expire after an hour; the auth service refreshes them.",
    "We count tokens with cl100k_base; max_tokens caps the reply.",
    "Secret Santa this year: budget 20 euros, names drawn on Friday.",
    "The secret to a good summary is keeping the decisions and the numbers.",
    "Bearer tokens go in the Authorization header, as the docs explain.",
    "Use a key of at least 32 bytes for HMAC; see the design document.",
    "Password reset links are valid for 30 minutes.",
    "The token: a unit of text the model reads, about four characters of English.",
]


def _prose(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(_PROSE)
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 40))]
    return " ".join(words).capitalize() + "."


def _code(rng: random.Random) -> str:
    name = rng.choice(["count", "fetch_rows", "build_index", "tokenize", "render", "parse_key"])
    return rng.choice(
        [
            f"def {name}(items):\n    total = 0\n    for item in items:\n        total += len(item)\n"
            f"    return total  # {rng.randint(1, 99)} items",
            f"max_tokens = {rng.randint(100, 4000)}\ntoken_count = len(tokens)\n"
            f"temperature = 0.{rng.randint(0, 9)}",
            f"const {name} = (key, value) => map.set(key, value);",
            f"for (let i = 0; i < {rng.randint(2, 99)}; i++) {{ total += row[i].price; }}",
            "password = getpass.getpass()\nuser = input('user: ')\nclient.login(user, password)",
            "token = request.headers.get('Authorization')\nsession_id = str(uuid.uuid4())",
            f"SELECT id, name FROM users WHERE created_at > '2024-0{rng.randint(1, 9)}-01' LIMIT 10;",
            f"if key in cache:\n    return cache[key]\nsecret_name = 'db-{rng.randint(1, 9)}'",
            f"git commit -m 'fix {name}' && git push origin main",
            f"curl -s https://api.example.com/v1/items?page={rng.randint(1, 20)} | jq '.items[]'",
            "ls -la /var/log && tail -n 50 app.log",
            f"export PATH=$HOME/.local/bin:$PATH\nexport LOG_LEVEL=debug\nexport WORKERS={rng.randint(1, 8)}",
            f'  File "/app/{name}.py", line {rng.randint(1, 400)}, in {name}\n'
            "    raise KeyError(key)\nKeyError: 'user_id'",
        ]
    )


def _identifiers(rng: random.Random) -> str:
    hex_digits = "0123456789abcdef"
    sha = "".join(rng.choice(hex_digits) for _ in range(rng.choice([7, 32, 40, 64])))
    ident = uuid.UUID(int=rng.getrandbits(128), version=4)
    return rng.choice(
        [
            f"Request {ident} failed; trace id {sha}",
            f"commit {sha} (HEAD -> main)",
            f"sha256:{''.join(rng.choice(hex_digits) for _ in range(64))}",
            f"thread_id={ident}",
            f"checkpoint {ident} at step {rng.randint(1, 500)}",
            f"md5 {''.join(rng.choice(hex_digits) for _ in range(32))}  report.pdf",
        ]
    )


def _url(rng: random.Random) -> str:
    host = rng.choice(["example.com", "docs.python.org", "github.com", "api.example.org:8443"])
    path = "/".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))
    query = f"?page={rng.randint(1, 9)}&sort=desc" if rng.random() < 0.5 else ""
    return rng.choice(
        [
            f"See https://{host}/{path}{query} for details.",
            f"postgres://db.internal:5432/{rng.choice(_WORDS)}",
            f"redis://cache:6379/{rng.randint(0, 15)}",
            f"Download from ftp://mirror.example.net/pub/{path}.tar.gz",
            f"password_reset_url: https://{host}/account/reset",
        ]
    )


def _image(rng: random.Random) -> str:
    payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 2000)))
    return "data:image/png;base64," + base64.b64encode(payload).decode()


def _json(rng: random.Random) -> str:
    records = [
        {
            "id": rng.randint(1, 10**6),
            "name": rng.choice(["Alpha", "Beta", "Gamma"]),
            "status": rng.choice(["open", "closed", "pending"]),
            "token_count": rng.randint(1, 5000),
            "updated": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00Z",
            "url": f"https://example.com/items/{rng.randint(1, 999)}",
            "tags": [rng.choice(_WORDS) for _ in range(3)],
            "sha": "".join(rng.choice("0123456789abcdef") for _ in range(40)),
        }
        for _ in range(rng.randint(1, 5))
    ]
    payload: Any = {"results": records, "next_page_token": None, "total": len(records)}
    return json.dumps(payload, indent=2 if rng.random() < 0.5 else None)


def _yaml(rng: random.Random) -> str:
    return rng.choice(
        [
            f"name: worker\nreplicas: {rng.randint(1, 9)}\nauth: true\nsecret_name: api-creds\n"
            f"max_tokens: {rng.randint(100, 9000)}\nkey: {rng.choice(_WORDS)}",
            f"token_count: {rng.randint(1, 99)}\ninput_tokens: {rng.randint(100, 900)}\n"
            f"output_tokens: {rng.randint(10, 90)}",
            "password_policy:\n  min_length: 12\n  require_symbols: true\nsession_timeout: 3600",
            f"secret_santa: {rng.choice(['Ana', 'Ben', 'Cy'])}\nbudget: 20",
            f"api_version: v{rng.randint(1, 3)}\ntoken_endpoint: https://auth.example.com/oauth/token",
        ]
    )


def _log(rng: random.Random) -> str:
    ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return (
        f"2024-05-{rng.randint(10, 28)} 12:{rng.randint(10, 59)}:{rng.randint(10, 59)},"
        f"{rng.randint(100, 999)} INFO {rng.choice(_WORDS)}: GET /v1/{rng.choice(_WORDS)} "
        f"from {ip} status={rng.choice([200, 201, 404, 500])} took={rng.randint(1, 999)}ms"
    )


_KINDS: list[tuple[str, Callable[[random.Random], str]]] = [
    ("prose", _prose),
    ("code", _code),
    ("identifiers", _identifiers),
    ("url", _url),
    ("image", _image),
    ("json", _json),
    ("yaml", _yaml),
    ("log", _log),
]


def ordinary_messages(count: int = 2400) -> list[tuple[str, str]]:
    """``count`` (kind, text) pairs holding no secret and no personal data."""
    rng = random.Random(18)
    return [(kind, make(rng)) for kind, make in (_KINDS[i % len(_KINDS)] for i in range(count))]


# ---------------------------------------------------------------- measuring


@dataclass
class Figures:
    """What one redactor scored: per kind, found / total."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    misses: dict[str, list[str]] = field(default_factory=dict)

    def rate(self, kind: str) -> float:
        hits, total = self.counts[kind]
        return hits / total if total else 0.0


def measure(redact: Callable[..., str]) -> Figures:
    """Recall and false positives of ``redact(text, personal_data=...)`` on every corpus.

    Kinds: ``gitleaks_tp`` (found: the text changed and the secret, where known, is gone),
    ``gitleaks_tp_bare`` (the generated secret alone in a sentence; no key, no context),
    ``gitleaks_fp`` (changed, every false-positive example), ``gitleaks_fp_unflagged``
    (changed, of the examples in which gitleaks' whole default configuration reports
    nothing: an example written against one rule that another rule reports is a secret to
    gitleaks), ``gitleaks_fp_unclaimed`` (changed, of the examples no other gitleaks
    rule's keywords and regex match, entropy and allowlists aside), ``ordinary`` (changed, secrets only), ``ordinary_pii``
    (changed with personal data on), ``pii_<kind>`` (the item gone, personal data on),
    ``pii_negatives`` (changed, personal data on), ``pii_default`` (personal data items
    gone with the default, secrets only).
    """
    figures = Figures()

    def count(kind: str, hit: bool, text: str) -> None:
        hits, total = figures.counts.get(kind, (0, 0))
        figures.counts[kind] = (hits + hit, total + 1)
        wrong_when_hit = kind.startswith("gitleaks_fp") or kind.endswith(("negatives", "_default"))
        if (wrong_when_hit or kind.startswith("ordinary")) == hit:
            figures.misses.setdefault(kind, []).append(text)

    for example in gitleaks_examples():
        text = example["text"]
        out = redact(text)
        if example["kind"] == "tp":
            secret = example.get("secret")
            count("gitleaks_tp", out != text and (secret is None or secret not in out), text)
            if secret:
                bare = f"the value is {secret} ok"
                count("gitleaks_tp_bare", secret not in redact(bare), bare)
        else:
            count("gitleaks_fp", out != text, text)
            if not example["gitleaks_findings"]:
                count("gitleaks_fp_unflagged", out != text, text)
            if not example["other_rules_matching"]:
                count("gitleaks_fp_unclaimed", out != text, text)
    for _, text in ordinary_messages():
        count("ordinary", redact(text) != text, text)
        count("ordinary_pii", redact(text, personal_data=True) != text, text)
    data = personal_data()
    for kind, items in data.positives.items():
        for text, item in items:
            count(f"pii_{kind}", item not in redact(text, personal_data=True), text)
            count("pii_default", item not in redact(text), text)
    for text in data.negatives:
        count("pii_negatives", redact(text, personal_data=True) != text, text)
    return figures
