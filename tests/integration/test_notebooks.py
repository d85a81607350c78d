"""The notebooks run top to bottom (tiny settings are their defaults) and fail the test on any error; each is
committed with the outputs of its current code (``python scripts/run_notebooks.py`` produces them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(path.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()


def _code_hash(notebook) -> str:
    """The hash ``scripts/run_notebooks.py`` records (the same function, loaded from the script)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.code_hash(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_with_the_outputs_of_its_code(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("outputs") or not cell.source.strip() for cell in code[-1:]), (
        f"{path.name} has no outputs: run python scripts/run_notebooks.py {path.relative_to(path.parents[1])}"
    )
    recorded = notebook.metadata.get("contrast", {}).get("code_sha256")
    assert recorded == _code_hash(notebook), (
        f"{path.name}: its code changed since its outputs were produced; run python scripts/run_notebooks.py"
    )
    errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} is committed with an error output"
