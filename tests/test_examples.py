"""The quickstart runs offline with no API key and shows compactions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = importlib.util.spec_from_file_location("quickstart", QUICKSTART)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--db", str(tmp_path / "demo.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "[compaction #2]" in out
    assert "Nothing was lost" in out
    assert "TP 1351" in out
