"""Execute every notebook in ``notebooks/`` and commit-ready save it with its outputs and figures.

    python scripts/run_notebooks.py [notebooks/02_embeddings.ipynb ...]

Each notebook runs top to bottom in a fresh kernel, in a temporary folder (its files, runs and caches stay out
of the repository), with one torch thread. The saved notebook records a hash of its code cells
(``metadata.contrast.code_sha256``): the tests fail when a committed notebook's code changed without its
outputs being produced again by this script. Needs the dev extra (nbclient, ipykernel).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_hash(notebook) -> str:
    """sha256 of the notebook's code cells, in order (what its outputs were produced from)."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode())
            digest.update(b"\0")
    return digest.hexdigest()


def run(path: Path, timeout: int = 900) -> float:
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["CONTRAST_CACHE"] = str(Path(folder) / "cache")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        client = nbclient.NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        client.execute()
    for cell in notebook.cells:  # no timestamps or run counters that change on every run
        cell.get("metadata", {}).pop("execution", None)
    notebook.metadata["contrast"] = {"code_sha256": code_hash(notebook)}
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        seconds = run(path)
        print(f"{path.name}: executed and saved with outputs in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
