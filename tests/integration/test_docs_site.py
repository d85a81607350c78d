"""The documentation site builds strictly (no broken link, anchor or API reference), and its generated
pages cover what they are generated from: every shipped card, config group and notebook (with outputs)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("mkdocs_jupyter")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    problems = [line for line in result.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        problems or [result.stderr[-3000:]]
    )
    return out


def page(site: Path, uri: str) -> str:
    return (site / uri / "index.html").read_text()


@pytest.mark.slow
def test_every_page_of_the_nav_is_built(site):
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nhooks:")[0])
    assert config["strict"] is True
    nav_text = (ROOT / "mkdocs.yml").read_text().split("\nnav:")[1]
    sources = re.findall(r":\s+(\S+\.(?:md|ipynb))", nav_text)
    assert len(sources) > 30
    for source in sources:
        stem = re.sub(r"\.(md|ipynb)$", "", source)
        built = site / re.sub(r"(^|/)index$", "", stem) / "index.html"
        assert built.exists(), f"{source} was not built"


@pytest.mark.slow
def test_generated_pages_cover_the_cards_the_configs_and_the_commands(site):
    import contrast
    from contrast.__main__ import COMMANDS

    models = page(site, "pretrained-models")
    for name, card in contrast.pretrained_models().items():
        assert f'id="{name}"' in models, name
        assert html.escape(card["data"][:60], quote=False) in models, name  # the card's own text
    config = page(site, "reference/config")
    for group in (ROOT / "contrast" / "conf").iterdir():
        if group.is_dir():
            for option in group.glob("*.yaml"):
                assert f'id="{group.name}-{option.stem}"' in config, option
    cli = page(site, "reference/cli")
    for command in COMMANDS:
        assert f"python -m contrast {command}" in cli


@pytest.mark.slow
def test_api_pages_render_the_docstrings(site):
    api = page(site, "api/pretrained")
    assert 'id="contrast.pretrained.loading.load_encoder"' in api
    assert "weights_only" in api
    graph = page(site, "api/graph")
    assert 'id="contrast.graph.convert.structure_to_graph"' in graph


@pytest.mark.slow
def test_notebooks_are_rendered_with_their_figures(site):
    embeddings = page(site, "notebooks/02_embeddings")
    assert embeddings.count("data:image/png;base64") >= 1
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (site / "notebooks" / notebook.stem / "index.html").exists(), notebook.name


@pytest.mark.slow
def test_benchmark_figures_travel_with_the_site(site):
    benchmarks = page(site, "benchmarks")
    for image in re.findall(r'<img[^>]+src="([^"]+)"', benchmarks):
        assert (site / "benchmarks" / image).resolve().exists(), image
