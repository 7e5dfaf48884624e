"""Redaction measured on data not written here (issue 18, part 2): the goals, checked.

The figures come from `tests.redaction_corpus.measure` over gitleaks' rule examples
(``tests/data/gitleaks_examples.json``, MIT), generated personal data and 2,400 ordinary
messages; ``benchmarks/redaction.py`` prints them, with detect-secrets beside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.linear_time import INPUTS
from compacting_supervisor import redact_text
from compacting_supervisor.redaction import _rules as rules
from compacting_supervisor.redaction._keys import secret_key_at
from tests.redaction_corpus import (
    Figures,
    gitleaks_examples,
    measure,
    ordinary_messages,
    personal_data,
)


@pytest.fixture(scope="module")
def figures() -> Figures:
    return measure(redact_text)


def test_the_corpora_are_what_the_benchmark_says() -> None:
    examples = gitleaks_examples()
    assert sum(e["kind"] == "tp" for e in examples) >= 600
    assert sum(e["kind"] == "fp" for e in examples) >= 300
    assert len({e["rule"] for e in examples}) >= 200
    assert len(ordinary_messages()) >= 2000
    fps = [e for e in examples if e["kind"] == "fp"]
    assert sum(not e["gitleaks_findings"] for e in fps) == 300
    assert sum(not e["other_rules_matching"] for e in fps) == 273
    # gitleaks' own validation: no false-positive example is reported by its own rule
    assert not any(e["rule"] in e["gitleaks_findings"] for e in fps)


def test_recall_on_gitleaks_true_positives_is_at_least_95_percent(figures: Figures) -> None:
    assert figures.rate("gitleaks_tp") >= 0.95, figures.misses["gitleaks_tp"]


def test_ordinary_messages_are_left_alone(figures: Figures) -> None:
    assert figures.rate("ordinary") < 0.01, figures.misses.get("ordinary")
    assert figures.rate("ordinary_pii") < 0.01, figures.misses.get("ordinary_pii")


@pytest.mark.parametrize("kind", ["pii_card", "pii_iban", "pii_email", "pii_phone"])
def test_personal_data_is_found_when_asked_for(figures: Figures, kind: str) -> None:
    assert figures.rate(kind) >= 0.95, figures.misses.get(kind)


def test_personal_data_near_misses_and_the_default(figures: Figures) -> None:
    assert figures.rate("pii_negatives") < 0.01, figures.misses.get("pii_negatives")
    assert figures.rate("pii_default") == 0  # off by default


def test_gitleaks_false_positives_no_other_rule_claims_are_below_1_percent(
    figures: Figures,
) -> None:
    """Issue 18's goal, on the false-positive examples that are negatives for every rule.

    gitleaks writes each false-positive example against one rule, and some are another
    rule's secret: ``sk-ant-admin01-...`` is a false positive of the Anthropic API-key rule
    and a true positive of its admin-key rule; ``key = adf4b1dbRdW3...`` (46 random
    characters) is a false positive of the ClickHouse rule and what the generic-api-key
    rule is for. Counted here: the examples no other gitleaks rule's keywords and regex
    match (273 of 312, from ``extract_gitleaks.py`` running gitleaks' default
    configuration). The fakes in a key format among them (``ABSK...EXAMPLE...``, ``xxxx``,
    ``sgp_5555555dAAAAA...``, ``ntn_123456789012...``, counting runs, a PEM body of
    ``anything``, Firebase's published sample keys) and the wrong shapes (a Slack token
    without its digits, a Sourcegraph token with a non-hex character) are left alone. One
    is changed today (1 of 273): ``SUMO_ACCESS_KEY: AbCeFG123``, a value under an access
    key, redacted whatever it looks like.
    """
    assert figures.rate("gitleaks_fp_unclaimed") < 0.01, figures.misses.get("gitleaks_fp_unclaimed")


def test_gitleaks_false_positives_no_gitleaks_rule_reports_stay_at_their_level(
    figures: Figures,
) -> None:
    """The stricter count, a regression bound: 7 of the 300 examples in which gitleaks' whole
    default configuration reports nothing (entropy thresholds and stopwords included).

    All seven are values under a secret-bearing key, which this package redacts whatever
    they look like but a placeholder (issue 18, part 2). Five are random values under a key
    named for a token (``nonMatchingToken := "sh1lv8otsfgs5uuu"``): gitleaks' generic rule
    drops four because their entropy is at or under 3.5 bits a character and one because
    it holds the word ``task``; a real 16-character token falls under 3.5 bits about as
    often, and a password under any threshold. Two are fakes under an access key
    (``aws_access_key: AKIAIOSFODNN7EXAMPLE``, ``SUMO_ACCESS_KEY: AbCeFG123``), which
    gitleaks drops by its allowlist and by the key's length.
    """
    assert figures.rate("gitleaks_fp_unflagged") <= 7 / 300, figures.misses.get(
        "gitleaks_fp_unflagged"
    )


@pytest.mark.xfail(
    strict=True,
    reason="< 1% is not met when the examples gitleaks drops only for its entropy "
    "threshold, stopwords or allowlist count: 7 of 300 (2.3%), values under a secret-bearing "
    "key, which this package redacts by design (see the test above)",
)
def test_gitleaks_false_positives_no_gitleaks_rule_reports_are_below_1_percent(
    figures: Figures,
) -> None:
    assert figures.rate("gitleaks_fp_unflagged") < 0.01


# ------------------------------------------ the one-pass needle search, against a regex

# The search the Aho-Corasick pass replaced, kept as the reference: one regex of every
# needle (shared prefixes factored out, a split key word's separators a run of -._), run
# from each needle found plus one, so every position where a needle starts is found.
_Trie = dict[str, "_Trie"]


def _alternation(needles: Iterable[str]) -> str:
    root: _Trie = {}
    for needle in needles:
        node = root
        for char in needle:
            node = node.setdefault(char, {})
        node[""] = {}

    def branches(node: _Trie) -> str:
        if "" in node:
            return ""
        options = [
            ("[\\-._]+" if char == rules._SPLIT else re.escape(char)) + branches(child)
            for char, child in sorted(node.items())
        ]
        return options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"

    return branches(root)


_ANY_NEEDLE = re.compile(_alternation(rules._NEEDED))
_KEY_WORD = re.compile(_alternation(rules._KEY_WORDS + rules._SPLIT_KEY_WORDS))
_OPERATOR = re.compile(r"[\w.\-]{0,80}(?:\\?[\"'`])?[ \t]{0,5}[:=,>?]")
_SPLIT_WORDS = [
    re.compile(re.escape(word).replace(rules._SPLIT, "[\\-._]+")) for word in rules._SPLIT_KEY_WORDS
]


def _reference(text: str) -> tuple[bool, set[str], list[int]]:
    """Whether ``text`` holds a needle, each needle in it, and the places to run: by regex.

    Searched with each character past ASCII read as ``_`` (a separator: ``to\u00e9ken`` is
    a key word to `key_kind`); the operator after a key word read in the text itself.
    """
    lowered = rules._folded(text)
    searched = re.sub(r"[^\x00-\x7f]", "_", lowered)
    starts = []
    match = _ANY_NEEDLE.search(searched)
    while match is not None:
        starts.append(match.start())
        match = _ANY_NEEDLE.search(searched, match.start() + 1)
    found = {
        lowered[p : p + len(n)] for p in starts for n in rules._STARTS if searched.startswith(n, p)
    }
    found |= {
        lowered[m.start() : m.end()]
        for p in starts
        for word in _SPLIT_WORDS
        if (m := word.match(searched, p))
    }
    places = {
        place
        for place, (name, _, _) in enumerate(rules.PATTERNS)
        if rules._NEEDS[name] is not rules._KEY_WORDS
        and any(needle in searched for needle in rules._NEEDS[name])
    }
    plain = text.isascii()
    if any(
        (word := _KEY_WORD.match(searched, p))
        and _OPERATOR.match(lowered, word.end())
        and (not plain or secret_key_at(text, p))
        for p in starts
    ):
        places |= rules._KEY_PLACES
    return bool(starts), found, sorted(places)


def _assert_as_the_reference(text: str) -> None:
    lowered = rules._folded(text)
    holds, found, places = _reference(text)
    assert rules.holds_needle(lowered) == holds
    assert set(rules.needles_in(lowered)) == found
    assert rules._places(text, lowered, -1) == places


def _corpus_texts() -> list[str]:
    data = personal_data()
    return [
        *(example["text"] for example in gitleaks_examples()),
        *(text for _, text in ordinary_messages()),
        *(text for items in data.positives.values() for text, _ in items),
        *data.negatives,
    ]


def test_the_needle_search_finds_what_the_regex_finds_on_every_corpus() -> None:
    """The one-pass search (Aho-Corasick) against the regex it replaced, on every text of
    the corpora (gitleaks' examples, personal data, ordinary messages): the same needles,
    the same answer to "any needle?", the same patterns to run."""
    texts = _corpus_texts()
    assert len(texts) > 3000
    for text in texts:
        _assert_as_the_reference(text)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_the_needle_search_finds_what_the_regex_finds_on_adversarial_input(name: str) -> None:
    """The same on ``benchmarks/linear_time.py``'s adversarial inputs, cut at each length
    from 0 to 40 (the ends of runs) and 3,000 characters long."""
    make = INPUTS[name]
    for size in [*range(41), 3000]:
        _assert_as_the_reference(make(size))


_FRAGMENTS = st.sampled_from(
    [
        *rules._NEEDED,
        *(
            w.replace(rules._SPLIT, sep)
            for w in rules._SPLIT_KEY_WORDS
            for sep in ("-", ".", "_", "\u00e9", "_\u00df")
        ),
    ]
)
_PIECES = st.sampled_from(
    ["-", ".", "_", "--", "._", " ", "=", ": ", '"', "\n", "K", "\u0130", "\u00e9", "\u00df"]
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.lists(_FRAGMENTS | _FRAGMENTS.map(str.upper) | _PIECES | st.text(max_size=5), max_size=10)
)
def test_the_needle_search_finds_what_the_regex_finds_on_any_text(parts: list[str]) -> None:
    """Needles, their upper case, halves glued by separator runs, and any text, mixed."""
    parts = [part[: len(part) // 2] if i % 3 == 2 else part for i, part in enumerate(parts)]
    _assert_as_the_reference("".join(parts))


def test_every_match_of_a_pattern_in_the_corpora_holds_one_of_its_needles() -> None:
    """A pattern runs only on text holding one of its needles: each is in every match
    (``curl -u``'s in the text before it; the key rules' are the key words, checked by the
    needle search above), so a text with none is one the pattern leaves unchanged."""
    matched = set()
    for text in _corpus_texts():
        lowered = rules._folded(text)
        for name, pattern, _ in rules.PATTERNS:
            needles = rules._NEEDS[name]
            if needles is rules._KEY_WORDS:
                continue
            for match in pattern.finditer(text):
                where = lowered if name == "curl-user" else rules._folded(match[0])
                assert any(needle in where for needle in needles), (name, match[0])
                matched.add(name)
    assert len(matched) >= 17
