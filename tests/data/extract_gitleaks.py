"""Extract gitleaks' per-rule examples into ``gitleaks_examples.json`` (run by hand, offline).

gitleaks (https://github.com/gitleaks/gitleaks, MIT licence, see ``GITLEAKS_LICENSE``)
validates each rule of its default configuration against true-positive (``tps``) and
false-positive (``fps``) examples written in ``cmd/generate/config/rules/*.go``. This script
reads those files from a git checkout and evaluates the small part of Go they use for the
examples: string literals, ``+``, ``[]string{...}``, ``append``, ``utils.GenerateSampleSecret(s)``
(the same templates, here at most three per call, chosen in turn) and
``secrets.NewSecret(regex)`` (a string generated from the regex with a seeded generator, as
gitleaks generates one). An example whose expression uses anything else is left out.

Each false-positive example also gets gitleaks' verdict on it from the whole default
configuration (``config/gitleaks.toml``, every rule, not only the one it was written for):
``gitleaks_findings``, the rules that report a finding in it (regex, the secret group,
entropy threshold, keywords, global and rule allowlists with their stopwords, as
``detect/detect.go`` decides; no file path, so no path allowlist or path rule applies, and
no decoding pass), and ``other_rules_matching``, the other rules whose keywords and regex alone match
it (entropy and allowlists aside). `Gitleaks` evaluates the configuration with the
``regex`` package (RE2's scoped inline flags); it agrees with gitleaks' own validation on
this corpus: no false-positive example is reported by its own rule, and 682 of the 689
true positives are (the other seven are texts the seeded generator made differently).

Usage::

    python tests/data/extract_gitleaks.py /path/to/gitleaks/git-dir > tests/data/gitleaks_examples.json
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import subprocess
import sys
import tomllib
from typing import Any

RULES_DIR = "cmd/generate/config/rules"
_RANDOM = random.Random(18)

# gitleaks' GenerateSampleSecrets templates ({i} identifier, {I} upper case, {s} secret).
TEMPLATES = [
    '{i}Token="{s}"',
    "{i}Token = {s}",
    '{\n    "{i}_token": "{s}"\n}',
    '{"config.ini": "{I}_TOKEN={s}\\nBACKUP_ENABLED=true"}',
    "<{i}Token>\n    {s}\n</{i}Token>",
    "{i}_token: '{s}'",
    'string {i}Token = "{s}";',
    "{i}Token := `{s}`",
    "{i}Token = '{s}'",
    'System.setProperty("{I}_TOKEN", "{s}")',
    '  "{i}Token" => "{s}"',
    '{i}_TOKEN ?= "{s}"',
]
_TURNS = itertools.count()


class _Sample(str):
    """A template filled in: the text, and the secret it carries."""

    secret: str


def _sample(text: str, secret: str) -> _Sample:
    sample = _Sample(text)
    sample.secret = secret
    return sample


def _samples(identifier: str, secret: str) -> list[str]:
    out = []
    for _ in range(3):
        template = TEMPLATES[next(_TURNS) % len(TEMPLATES)]
        text = (
            template.replace("{i}", identifier)
            .replace("{I}", identifier.upper())
            .replace("{s}", secret)
        )
        out.append(_sample(text, secret))
    return out


# ---------------------------------------------------------------- strings from a regex

_CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: "0123456789",
    sre_constants.CATEGORY_WORD: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    sre_constants.CATEGORY_SPACE: " ",
}
_PRINTABLE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _class(items: list[Any]) -> str:
    chars: list[str] = []
    negate = False
    for op, av in items:
        if op is sre_constants.NEGATE:
            negate = True
        elif op is sre_constants.LITERAL:
            chars.append(chr(av))
        elif op is sre_constants.RANGE:
            chars.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif op is sre_constants.CATEGORY:
            chars.extend(_CATEGORIES.get(av, _PRINTABLE))
    if negate:
        return "".join(c for c in _PRINTABLE if c not in chars)
    return "".join(chars)


def _generate(parsed: Any) -> str:
    out = []
    for op, av in parsed:
        if op is sre_constants.LITERAL:
            out.append(chr(av))
        elif op is sre_constants.IN:
            out.append(_RANDOM.choice(_class(av) or _PRINTABLE))
        elif op is sre_constants.ANY:
            out.append(_RANDOM.choice(_PRINTABLE))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, high, sub = av
            high = low + 8 if high is sre_constants.MAXREPEAT else min(high, low + 8)
            out.extend(_generate(sub) for _ in range(_RANDOM.randint(low, high)))
        elif op is sre_constants.SUBPATTERN:
            out.append(_generate(av[-1]))
        elif op is sre_constants.BRANCH:
            out.append(_generate(_RANDOM.choice(av[1])))
        elif op is sre_constants.CATEGORY:
            out.append(_RANDOM.choice(_CATEGORIES.get(av, _PRINTABLE)))
    return "".join(out)


def new_secret(regex: str) -> str:
    """A string matching ``regex`` (Go syntax, the common subset)."""
    regex = regex.replace("(?i)", "")
    return _generate(sre_parse.parse(regex))


# ---------------------------------------------------------------- a tiny Go evaluator

_TOKEN = re.compile(
    r"""(?P<raw>`[^`]*`)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<comment>//[^\n]*|/\*.*?\*/)"""
    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<num>\d+)|(?P<op>\.\.\.|:=|[-+{}()\[\],=:;])"""
    r"""|(?P<space>\s+)|(?P<other>.)""",
    re.DOTALL,
)


def _go_string(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    return json.loads('"' + re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", body) + '"')


def _tokens(source: str) -> list[tuple[str, str]]:
    out = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        out.append((kind, match.group()))
    return out


class _UnknownError(Exception):
    pass


_SIZES = {
    "utils.Numeric": "[0-9]{%s}",
    "utils.Hex": "[a-f0-9]{%s}",
    "utils.AlphaNumeric": "[a-z0-9]{%s}",
    "utils.AlphaNumericExtendedShort": "[a-z0-9_-]{%s}",
    "utils.AlphaNumericExtended": "[a-z0-9=_\\-]{%s}",
    "utils.AlphaNumericExtendedLong": "[a-z0-9\\/=_\\+\\-]{%s}",
}


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], start: int) -> None:
        self.tokens = tokens
        self.i = start

    def peek(self) -> str:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise _UnknownError(f"expected {expected}, got {token[1]}")
        self.i += 1
        return token

    def skip_expression(self) -> None:
        depth = 0
        while self.i < len(self.tokens):
            value = self.peek()
            if value in "([{":
                depth += 1
            elif value in ")]}":
                if depth == 0:
                    return
                depth -= 1
            elif value == "," and depth == 0:
                return
            self.i += 1

    def expression(self) -> Any:
        value = self.term()
        while self.peek() == "+":
            self.take()
            right = self.term()
            if not (isinstance(value, str) and isinstance(right, str)):
                raise _UnknownError("+ on non-strings")
            value += right
        return value

    def arguments(self) -> list[Any]:
        self.take("(")
        args: list[Any] = []
        while self.peek() != ")":
            start = self.i
            try:
                args.append(self.expression())
            except _UnknownError:
                self.i = start
                self.skip_expression()
                args.append(_UnknownError)
            if self.peek() == "...":
                self.take()
            if self.peek() == ",":
                self.take()
        self.take(")")
        return args

    def term(self) -> Any:
        kind, value = self.take()
        if kind in ("raw", "str"):
            return _go_string(value)
        if kind == "op" and value == "[":
            self.take("]")
            self.take()  # string
            return self.list_literal()
        if kind != "name":
            raise _UnknownError(value)
        if value == "fmt.Sprintf" or self.peek() != "(":
            raise _UnknownError(value)
        args = self.arguments()
        if any(a is _UnknownError for a in args[:2]):
            raise _UnknownError(value)
        if value in _SIZES:
            return _SIZES[value] % args[0]
        if value == "utils.Hex8_4_4_4_12":
            return "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        if value in ("secrets.NewSecret", "newPlausibleSecret"):
            secret = new_secret(args[0])
            while value == "newPlausibleSecret" and not re.search("[1-9]", secret):
                secret = new_secret(args[0])
            return secret
        if value == "utils.GenerateSampleSecrets":
            return _samples(args[0], args[1])
        if value == "utils.GenerateSampleSecret":
            return _sample(f'{args[0]}_api_token = "{args[1]}"', args[1])
        if value == "append":
            head = args[0]
            if not isinstance(head, list):
                raise _UnknownError("append")
            out = list(head)
            for arg in args[1:]:
                if arg is _UnknownError:
                    continue
                out.extend(arg if isinstance(arg, list) else [arg])
            return out
        raise _UnknownError(value)

    def list_literal(self) -> list[str]:
        self.take("{")
        items: list[str] = []
        while self.peek() != "}":
            start = self.i
            try:
                item = self.expression()
                if isinstance(item, str):
                    items.append(item)
            except _UnknownError:
                self.i = start
                self.skip_expression()
            if self.peek() == ",":
                self.take()
        self.take("}")
        return items


def examples(source: str) -> list[tuple[str, str, str]]:
    """(rule id, "tp" or "fp", text) for each example the evaluator can read (a text
    filled in from a template carries its secret as ``.secret``)."""
    tokens = _tokens(source)
    found: list[tuple[str, str, str]] = []
    rule = "?"
    lists: dict[str, list[str]] = {}
    for i, (kind, value) in enumerate(tokens):
        if value == "RuleID" and tokens[i + 1][1] == ":":
            rule = _go_string(tokens[i + 2][1])
            lists = {"tps": [], "fps": []}
        if kind == "name" and value in ("tps", "fps") and i + 1 < len(tokens):
            if tokens[i + 1][1] not in (":=", "="):
                continue
            parser = _Parser(tokens, i + 2)
            try:
                result = parser.expression()
            except (_UnknownError, IndexError, ValueError, re.error):
                continue
            if isinstance(result, list):
                lists[value] = result
                found.extend((rule, value[:2], text) for text in result)
    # An `append` re-states the list it extends: keep each text once per rule and kind.
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


# ---------------------------------------------------------------- gitleaks' verdict


class Gitleaks:
    """gitleaks' default configuration, evaluated on a text as ``detect/detect.go`` does."""

    def __init__(self, toml_text: str) -> None:
        import regex  # only needed to extract; RE2's mid-pattern (?i) is regex's V1

        def compile_(pattern: str) -> Any:
            return regex.compile(pattern.replace(r"\z", r"\Z"), regex.V1)

        def allowlist(spec: dict[str, Any]) -> dict[str, Any]:
            return {
                "target": spec.get("regexTarget", "secret"),
                "and": spec.get("condition") == "AND",
                "elsewhere": bool(spec.get("paths") or spec.get("commits")),
                "regexes": [compile_(x) for x in spec.get("regexes", [])],
                "stopwords": [w.lower() for w in spec.get("stopwords", [])],
            }

        config = tomllib.loads(toml_text)
        self.allowlists = [allowlist(config["allowlist"])] if "allowlist" in config else []
        self.rules = [
            {
                "id": rule["id"],
                "regex": compile_(rule["regex"]),
                "entropy": rule.get("entropy", 0.0),
                "group": rule.get("secretGroup", 0),
                "keywords": [k.lower() for k in rule.get("keywords", [])],
                "allowlists": [allowlist(a) for a in rule.get("allowlists", [])],
            }
            for rule in config["rules"]
            # a path rule needs a file path; a skipped one reports nothing of its own
            if "regex" in rule and "path" not in rule and not rule.get("skipReport")
        ]

    @staticmethod
    def _allowed(spec: dict[str, Any], secret: str, match: str, line: str) -> bool:
        target = {"match": match, "line": line}.get(spec["target"], secret)
        by_regex = bool(target) and any(r.search(target) for r in spec["regexes"])
        by_word = bool(secret) and any(w in secret.lower() for w in spec["stopwords"])
        if not spec["and"]:
            return by_regex or by_word
        checks = [False] if spec["elsewhere"] else []  # no commit, no path here
        checks += [by_regex] if spec["regexes"] else []
        checks += [by_word] if spec["stopwords"] else []
        return bool(checks) and all(checks)

    def _applied(self, text: str) -> list[dict[str, Any]]:
        """The rules gitleaks runs on ``text``: those with a keyword in it, or none."""
        lowered = text.lower()
        return [
            rule
            for rule in self.rules
            if not rule["keywords"] or any(k in lowered for k in rule["keywords"])
        ]

    def matching(self, text: str) -> list[str]:
        """The rules run on ``text`` whose regex matches it (entropy and allowlists aside)."""
        return [rule["id"] for rule in self._applied(text) if rule["regex"].search(text)]

    def findings(self, text: str) -> list[str]:
        """The rules that report a finding in ``text``."""
        found = []
        for rule in self._applied(text):
            for match in rule["regex"].finditer(text):
                whole = match.group(0).strip("\n")
                secret = whole
                groups = rule["regex"].search(whole)
                if groups is not None and groups.re.groups:
                    values = groups.groups()
                    if rule["group"]:
                        secret = values[rule["group"] - 1] or ""
                    else:
                        secret = next((v for v in values if v), whole)
                if rule["entropy"] and _entropy(secret) <= rule["entropy"]:
                    continue
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.start() + len(whole))
                line = text[start : end if end >= 0 else len(text)]
                specs = self.allowlists + rule["allowlists"]
                if not any(self._allowed(s, secret, whole, line) for s in specs):
                    found.append(rule["id"])
                    break
        return found


def _entropy(text: str) -> float:
    """gitleaks' ``shannonEntropy`` (bits per byte's share, over the runes)."""
    size = len(text.encode())
    return -sum(n / size * math.log2(n / size) for n in map(text.count, set(text))) if size else 0


def main(git_dir: str) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True
        ).stdout

    commit = git("rev-parse", "HEAD").strip()
    paths = [p for p in git("ls-tree", "--name-only", f"HEAD:{RULES_DIR}").split() if p]
    gitleaks = Gitleaks(git("show", "HEAD:config/gitleaks.toml"))
    rows = []
    for name in sorted(paths):
        if not name.endswith(".go"):
            continue
        source = git("show", f"HEAD:{RULES_DIR}/{name}")
        for rule, kind, text in examples(source):
            row = {"rule": rule, "kind": kind, "text": str(text), "file": f"{RULES_DIR}/{name}"}
            if isinstance(text, _Sample):
                row["secret"] = text.secret
            if kind == "fp":
                row["gitleaks_findings"] = gitleaks.findings(str(text))
                row["other_rules_matching"] = [r for r in gitleaks.matching(str(text)) if r != rule]
            rows.append(row)
    corpus = {
        "source": {
            "repo": "https://github.com/gitleaks/gitleaks",
            "commit": commit,
            "paths": f"{RULES_DIR}/*.go",
            "licence": "MIT, Copyright (c) 2019 Zachary Rice; full text in GITLEAKS_LICENSE",
            "how": "tests/data/extract_gitleaks.py; generated secrets come from a seeded "
            "generator, so the texts differ from gitleaks' own random ones",
        },
        "examples": rows,
    }
    json.dump(corpus, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
