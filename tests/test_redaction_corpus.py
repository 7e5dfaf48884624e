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


def test_gitleaks_false_positives_stay_below_their_measured_level(figures: Figures) -> None:
    """A regression bound, not the goal: 50 of 312 (16%) today. Most are well-formed keys
    that one gitleaks rule must not claim (another rule's format, a published example key
    its allowlist names, a key too short for that vendor) but that a redactor is right to
    hide; the rest are listed by ``benchmarks/redaction.py --misses``."""
    assert figures.rate("gitleaks_fp") <= 0.17, len(figures.misses["gitleaks_fp"])


@pytest.mark.xfail(
    strict=True,
    reason="issue 18's goal of < 1% on the scanner's false positives is not met: 16% (see "
    "test_gitleaks_false_positives_stay_below_their_measured_level for why)",
)
def test_gitleaks_false_positives_are_below_1_percent(figures: Figures) -> None:
    assert figures.rate("gitleaks_fp") < 0.01
