"""Redaction measured on data not written here: recall and false positives per kind.

Corpora (``tests/redaction_corpus.py``): gitleaks' true- and false-positive examples of
its rules (MIT, ``tests/data/gitleaks_examples.json``), generated personal data with valid
and broken checksums, and 2,400 ordinary messages. Prints, for the built-in rules
(``redact_text``; ``personal_data=True`` for the personal-data rows), and for
detect-secrets (an independent oracle, when installed) alone and on top of the built-in
rules:

- ``gitleaks true positives``: the secret is gone (recall);
- ``gitleaks secrets alone``: the same generated secrets with no key around them;
- ``gitleaks false positives`` and ``ordinary messages``: the text changed (false
  positives). gitleaks writes each false-positive example against one rule; some are
  secrets to another rule (an Anthropic admin key is the API-key rule's false positive,
  ``key = <40 random characters>`` the ClickHouse rule's). Three rows: all examples; those
  gitleaks' whole default configuration reports nothing in (its regexes, entropy
  thresholds, keywords, stopwords and allowlists, evaluated by
  ``tests/data/extract_gitleaks.py``); and those no other rule's keywords and regex match
  (entropy and allowlists aside), the goal's row;
- ``personal data <kind>``: the item is gone, and the near misses changed.

With ``--speed``, times ``redact_secrets`` instead, on 1,000 ordinary messages (both shapes
of ``benchmarks/linear_time.py``) and on the agent history ``benchmarks.micro.thread_of(1000)``
(JSON tool results): min / median / max and nanoseconds a character, in CPU time (so other
processes on the machine count less); ``--against REV`` runs the redaction package of a git
revision side by side, interleaved, and checks that both give the same messages.

Usage (from the repository root)::

    python benchmarks/redaction.py              # built-in rules, and detect-secrets if installed
    python benchmarks/redaction.py --misses 5   # also list up to 5 misses per kind
    python benchmarks/redaction.py --speed --against f72d1a8   # this tree against a revision
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compacting_supervisor.redaction import HighEntropyRedactor, redact_text, redact_with
from tests.redaction_corpus import Figures, measure

ROWS = [
    ("gitleaks_tp", "gitleaks true positives (recall)", ">= 95%"),
    ("gitleaks_tp_bare", "gitleaks secrets alone, no key (recall)", "-"),
    ("gitleaks_fp", "gitleaks false positives, all (changed)", "-"),
    ("gitleaks_fp_unflagged", "gitleaks false positives no gitleaks rule reports (changed)", "-"),
    (
        "gitleaks_fp_unclaimed",
        "gitleaks false positives no other rule's regex matches (changed)",
        "< 1%",
    ),
    ("ordinary", "ordinary messages (changed)", "< 1%"),
    ("ordinary_pii", "ordinary messages, personal data on (changed)", "< 1%"),
    ("pii_card", "personal data: cards, Luhn (recall)", "-"),
    ("pii_iban", "personal data: IBANs, mod-97 (recall)", "-"),
    ("pii_email", "personal data: e-mail (recall)", "-"),
    ("pii_phone", "personal data: phones (recall)", "-"),
    ("pii_negatives", "personal data near misses (changed)", "< 1%"),
    ("pii_default", "personal data with the default (redacted)", "0% (off)"),
]


def _hook(*redactors: Any) -> Callable[..., str]:
    from langchain_core.messages import HumanMessage

    hooks = {flag: redact_with(*redactors, personal_data=flag) for flag in (False, True)}

    def redact(text: str, *, personal_data: bool = False) -> str:
        return str(hooks[personal_data](HumanMessage(text)).content)

    return redact


def _engines() -> dict[str, Callable[..., str]]:
    engines: dict[str, Callable[..., str]] = {
        "built-in rules": redact_text,
        "built-in + HighEntropyRedactor": _hook(HighEntropyRedactor()),
    }
    try:
        from compacting_supervisor.redaction.detect_secrets import DetectSecretsRedactor

        oracle = DetectSecretsRedactor()
    except ImportError:
        print("detect-secrets is not installed: its columns are left out.\n")
        return engines

    def alone(text: str, *, personal_data: bool = False) -> str:
        return oracle.redact(text)

    engines["detect-secrets alone"] = alone
    engines["built-in + detect-secrets"] = _hook(oracle)
    return engines


_PACKAGE = "src/compacting_supervisor/redaction"


def _redact_secrets_at(revision: str) -> Callable[[Any], Any]:
    """``redact_secrets`` of the redaction package as it was at ``revision``, imported apart."""
    root = Path(__file__).resolve().parent.parent
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{revision}:{_PACKAGE}"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    folder = Path(tempfile.mkdtemp()) / "baseline_redaction"
    folder.mkdir()
    for name in (n for n in names if n.endswith(".py")):
        source = subprocess.run(
            ["git", "show", f"{revision}:{_PACKAGE}/{name}"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        text = source.replace("compacting_supervisor.redaction.", "baseline_redaction.")
        (folder / name).write_text(text, encoding="utf-8")
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("baseline_redaction").redact_secrets  # type: ignore[no-any-return]


def speed(against: str | None, repeats: int) -> None:
    """Print ``redact_secrets``'s time on the ordinary messages and on the agent history."""
    from benchmarks.linear_time import _conversation
    from benchmarks.micro import thread_of
    from compacting_supervisor import redact_secrets

    engines: dict[str, Callable[[Any], Any]] = {"this tree": redact_secrets}
    if against:
        engines[against] = _redact_secrets_at(against)
    corpora = {
        "1,000 ordinary messages, tool results as tool messages": _conversation(1000, tools=True),
        "1,000 ordinary messages, every text a turn": _conversation(1000, tools=False),
        "agent history, thread_of(1000)": thread_of(1000)[0],
    }
    print("| messages | characters | redaction | min / median / max (ms, CPU) | ns a character |")
    print("|---|---|---|---|---|")
    for label, messages in corpora.items():
        chars = sum(_characters(m.content) + _characters(m.additional_kwargs) for m in messages)
        chars += sum(_characters(getattr(m, "tool_calls", None)) for m in messages)
        outputs = [[engine(m) for m in messages] for engine in engines.values()]
        same = all(output == outputs[0] for output in outputs)
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(repeats):  # interleaved, so a busy machine slows all alike
            for name, engine in engines.items():
                started = time.process_time()
                for message in messages:
                    engine(message)
                times[name].append(time.process_time() - started)
        for name, runs in times.items():
            cells = " / ".join(
                f"{t * 1000:.1f}" for t in (min(runs), statistics.median(runs), max(runs))
            )
            print(f"| {label} | {chars:,} | {name} | {cells} | {min(runs) * 1e9 / chars:.1f} |")
        if against:
            ratio = statistics.median(times[against]) / statistics.median(times["this tree"])
            print(f"| {label} | | speed-up (medians) | {ratio:.2f}x | same output: {same} |")


def _characters(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(map(_characters, value.values()))
    if isinstance(value, list | tuple):
        return sum(map(_characters, value))
    return 0


def main() -> None:
    """Measure every engine on every corpus and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", type=int, default=0, help="list this many misses per kind")
    parser.add_argument("--speed", action="store_true", help="time redact_secrets instead")
    parser.add_argument("--against", help="with --speed: a git revision to time side by side")
    parser.add_argument("--repeats", type=int, default=15, help="with --speed: runs of each")
    args = parser.parse_args()
    if args.speed:
        speed(args.against, args.repeats)
        return
    results: dict[str, Figures] = {}
    seconds: dict[str, float] = {}
    for name, engine in _engines().items():
        started = time.perf_counter()
        results[name] = measure(engine)
        seconds[name] = time.perf_counter() - started
    names = list(results)
    print("| kind | goal | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind, label, goal in ROWS:
        cells = []
        for name in names:
            hits, total = results[name].counts[kind]
            cells.append(f"{hits / total:.1%} ({hits}/{total})")
        print(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    print("| time for all corpora (s) | | " + " | ".join(f"{seconds[n]:.1f}" for n in names) + " |")
    print(
        "\ngitleaks writes each false-positive example against one rule; some are another "
        "rule's secret.\nThe goal's row counts the examples no other gitleaks rule's keywords "
        "and regex match;\nthe row above it, those gitleaks' whole default configuration "
        "(entropy, stopwords, allowlists)\nreports nothing in (tests/data/extract_gitleaks.py "
        "records both per example)."
    )
    if args.misses:
        figures = results["built-in rules"]
        for kind, label, _ in ROWS:
            misses = figures.misses.get(kind, [])
            if misses:
                print(f"\n{label}: {len(misses)} miss(es), first {args.misses}:")
                for text in misses[: args.misses]:
                    print("   ", repr(text[:160]))


if __name__ == "__main__":
    main()
