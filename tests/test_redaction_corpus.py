"""Redaction measured on data not written here (issue 18, part 2): the goals, checked.

The figures come from `tests.redaction_corpus.measure` over gitleaks' rule examples
(``tests/data/gitleaks_examples.json``, MIT), generated personal data and 2,400 ordinary
messages; ``benchmarks/redaction.py`` prints them, with detect-secrets beside them.
"""

from __future__ import annotations

import pytest

from compacting_supervisor import redact_text
from tests.redaction_corpus import Figures, gitleaks_examples, measure, ordinary_messages


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
