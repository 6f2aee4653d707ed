"""Every notebook in notebooks/ runs top to bottom, and is committed without outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rmlite._nbstrip import main as nbstrip
from rmlite._nbstrip import strip

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert any(nb.name == "01_quickstart.ipynb" for nb in NOTEBOOKS)


# The quickstart notebook runs in the default set; every other notebook the glob finds runs
# with -m slow (12-50 s each on 2 busy cores: 05_mujoco is the longest).
RUN_NOTEBOOKS = [
    nb if nb.name.startswith("01_") else pytest.param(nb, marks=pytest.mark.slow)
    for nb in NOTEBOOKS
]


@pytest.mark.parametrize("path", RUN_NOTEBOOKS, ids=[nb.name for nb in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    # The 'python3' kernel: jupyter_client starts it with this interpreter (sys.executable).
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files land in a temp folder
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[nb.name for nb in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name}: run `python -m rmlite._nbstrip {path.name}` (or pre-commit)"
            )


def test_nbstrip_strips_outputs_in_place(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    shutil.copy(NOTEBOOKS[0], path)
    notebook = json.loads(path.read_text())
    code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    code["execution_count"] = 7
    path.write_text(json.dumps(notebook))
    assert nbstrip([str(path)]) == 1  # changed: pre-commit stops the commit
    assert nbstrip([str(path)]) == 0  # idempotent
    assert not strip(json.loads(path.read_text()))
