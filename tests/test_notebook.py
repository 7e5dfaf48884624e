"""notebooks/compaction_walkthrough.ipynb runs offline, and its saved outputs are current.

The notebook is written by notebooks/build_walkthrough.py. These tests check that the
committed file holds exactly that script's cells, then execute a copy of it on the venv's
``python3`` kernel and compare every text output with the saved one, so a change in the
package that moves a number fails here until the notebook is rebuilt.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compaction_walkthrough.ipynb"
BUILD_SCRIPT = ROOT / "notebooks" / "build_walkthrough.py"
REBUILD = "rebuild it: python notebooks/build_walkthrough.py"


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_walkthrough", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build_module()


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _cell_with(notebook: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.cell_type == "code" and code in c.source)


@pytest.fixture(scope="module")
def committed() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    """A copy of the committed notebook, executed in a temp dir, plus a cell naming the kernel."""
    workdir = tmp_path_factory.mktemp("notebook")
    copy = workdir / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    notebook = nbformat.read(copy, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.cells.append(
        nbformat.v4.new_code_cell("import sys\nprint(sys.executable)\nprint(sys.prefix)")
    )
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=60,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError if a cell fails
    return notebook


def test_committed_notebook_is_what_the_build_script_writes(
    committed: nbformat.NotebookNode,
) -> None:
    nbformat.validate(committed)
    assert build.sources(committed) == build.sources(build.build_notebook()), REBUILD
    assert committed.metadata.kernelspec == build.KERNELSPEC
    assert committed.metadata.language_info.name == "python"
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))
    plot = _cell_with(committed, "ax.axhline(TOKEN_LIMIT")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs), "saved without outputs"


def test_kernel_is_this_interpreter(executed: nbformat.NotebookNode) -> None:
    kernel_executable, kernel_prefix = _stdout(executed.cells[-1]).split()
    assert kernel_executable == sys.executable
    assert kernel_prefix == sys.prefix


def test_no_cell_errored(executed: nbformat.NotebookNode) -> None:
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in errors if o.output_type == "error"]


def test_plot_is_an_inline_png(executed: nbformat.NotebookNode) -> None:
    plot = _cell_with(executed, "ax.axhline(TOKEN_LIMIT")
    images = [o for o in plot.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    assert len(images[0].data["image/png"]) > 10_000  # base64 of a real figure


def test_outputs_show_compactions(executed: nbformat.NotebookNode) -> None:
    first = re.search(
        r"compacted: (\d+) -> (\d+) tokens", _stdout(_cell_with(executed, "turns = iter("))
    )
    assert first is not None
    before, after = map(int, first.groups())
    assert after < before

    streamed = _stdout(_cell_with(executed, "supervisor.stream("))
    event = re.search(r"compaction event: status=compacted, (\d+) -> (\d+) tokens", streamed)
    assert event is not None
    assert int(event[2]) < int(event[1])

    table = _stdout(_cell_with(executed, "mean = sum("))
    rows = re.findall(r"^\s*(0\.\d)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", table, flags=re.MULTILINE)
    assert [ratio for ratio, *_ in rows] == ["0.2", "0.5", "0.8"]
    compactions = [int(row[1]) for row in rows]
    means = [int(row[3]) for row in rows]
    assert compactions[0] > compactions[1] > compactions[2] >= 3
    assert means[0] > means[1] > means[2]


def test_saved_outputs_match_a_fresh_run(
    committed: nbformat.NotebookNode, executed: nbformat.NotebookNode
) -> None:
    fresh = build.text_outputs(executed)[:-1]  # without the kernel check cell
    saved = build.text_outputs(committed)
    assert len(fresh) == len(saved)
    for number, (fresh_cell, saved_cell) in enumerate(zip(fresh, saved, strict=True), start=1):
        assert fresh_cell == saved_cell, f"code cell {number}: saved outputs are stale; {REBUILD}"
