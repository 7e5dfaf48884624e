"""Every docstring example in the package runs as written (doctest).

The modules are taken from the package itself (``pkgutil.walk_packages``), so a new or
moved module cannot be missed; each example is found once, in the module that defines it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import compacting_supervisor
from compacting_supervisor import testing

OPTIONS = doctest.ELLIPSIS


def _modules() -> list[str]:
    found = [compacting_supervisor.__name__]

    def unimportable(name: str) -> None:
        pytest.fail(f"{name} cannot be imported")

    for info in pkgutil.walk_packages(
        compacting_supervisor.__path__,
        prefix=f"{compacting_supervisor.__name__}.",
        onerror=unimportable,
    ):
        found.append(info.name)
    return sorted(found)


MODULES = _modules()


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module, name) if test.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in _examples(name):
        runner.run(test)
    failures, _ = runner.summarize(verbose=False)
    assert failures == 0, f"{name}: {failures} docstring example(s) failed (see the output above)"


def test_the_walk_finds_every_module() -> None:
    assert "compacting_supervisor.redaction" in MODULES
    assert "compacting_supervisor.testing" in MODULES
    assert len(MODULES) >= 20


# Public names of each area of the package that carry a runnable example: found through the
# package, so they hold wherever their module moves.
WITH_EXAMPLES = {
    "token counting": [compacting_supervisor.TokenCounter, compacting_supervisor.count_tokens],
    "summarizers": [compacting_supervisor.ChatModelSummarizer],
    "supervisor": [compacting_supervisor.CompactingSupervisor],
    "history manager": [compacting_supervisor.HistoryManager],
    "testing": [testing.ScriptedChatModel],
    "results": [compacting_supervisor.CompactionResult, compacting_supervisor.ThreadStats],
    "context": [compacting_supervisor.ContextBuilder, compacting_supervisor.render_messages],
    "keep": [compacting_supervisor.KeepMessages, compacting_supervisor.KeepTokens],
    "triggers": [compacting_supervisor.TokenLimit, compacting_supervisor.Repetition],
    "offload": [compacting_supervisor.OffloadToolResults],
    "redaction": [compacting_supervisor.redact_text, compacting_supervisor.redact_secrets],
}


@pytest.mark.parametrize("area", sorted(WITH_EXAMPLES))
def test_public_names_have_examples(area: str) -> None:
    finder = doctest.DocTestFinder()
    for obj in WITH_EXAMPLES[area]:
        examples = [t for t in finder.find(obj, obj.__name__) if t.examples]
        assert examples, f"{obj.__name__} has no docstring example"


def test_the_package_holds_its_examples() -> None:
    tried = sum(len(test.examples) for name in MODULES for test in _examples(name))
    assert tried >= 100
