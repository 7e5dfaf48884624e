"""The examples in the README and in the docstrings run as written."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "compacting_supervisor.token_counter",
    "compacting_supervisor.summarizers",
    "compacting_supervisor.supervisor",
    "compacting_supervisor.history_manager",
    "compacting_supervisor.testing",
    "compacting_supervisor.results",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
    assert tried > 0


def _readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_usage_runs(capsys: pytest.CaptureFixture[str]) -> None:
    usage = next(block for block in _readme_blocks() if "CompactingSupervisor(" in block)
    exec(compile(usage, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"\d+ -> \d+ tokens, \d+ messages summarised", out)
    assert "Once upon a time" in out  # the streamed reply
