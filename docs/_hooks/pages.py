"""MkDocs hook: the pages generated from the package itself, so that they cannot drift from it.

- ``pretrained-models.md``: one section per card of ``contrast.pretrained_models()`` (recipe, data, notes and
  the probe suite's table);
- ``reference/cli.md``: the commands of ``python -m contrast`` and the options of each command's config;
- ``reference/config.md``: every config group of ``contrast/conf/`` with its options, their YAML and comments;
- ``benchmarks.md``: ``BENCHMARKS.md`` (its figures copied under ``assets/benchmarks/``);
- in the API pages, docstrings' Sphinx roles (``:func:`x```) are shown as the code span alone.

The notebooks come in through ``docs/notebooks``, a link to ``notebooks/`` (rendered by mkdocs-jupyter).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "contrast" / "conf"


def on_files(files: Files, config) -> Files:
    generated = {
        "pretrained-models.md": pretrained_models_page(),
        "reference/cli.md": cli_page(),
        "reference/config.md": config_page(),
        "benchmarks.md": benchmarks_page(files, config),
    }
    for uri, content in generated.items():
        files.append(File.generated(config, uri, content=content))
    return files


def _demote(markdown: str, levels: int) -> str:
    """Push every heading of ``markdown`` down by ``levels``."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def pretrained_models_page() -> str:
    import contrast

    cards = contrast.pretrained_models()
    lines = [
        "# Pretrained models",
        "",
        "Encoders whose weights ship inside the package: `contrast.load_encoder(name)` loads one offline "
        "(weights only, no code from the file is run), and every command takes the name where it takes a "
        "checkpoint (`checkpoint=NAME`, `task.checkpoint=NAME`). This page is generated from the cards that "
        "`contrast.pretrained_models()` returns.",
        "",
        "```python",
        "import contrast",
        "",
        "contrast.pretrained_models()                           # {name: card}",
        'encoder = contrast.load_encoder("painn-mp-cpu-2400")  # eval mode, CPU',
        "```",
        "",
        "| name | encoder | width x layers | cutoff (Å) | readout | date |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for name, card in cards.items():
        encoder = card.get("encoder", {})
        lines.append(
            f"| [`{name}`](#{_anchor(name)}) | `{encoder.get('_target_', '?').rsplit('.', 1)[-1]}` | "
            f"{encoder.get('hidden_dim', '?')} x {encoder.get('num_layers', '?')} | "
            f"{encoder.get('cutoff', '?')} | "
            f"{encoder.get('pooling', 'mean')}, layers {encoder.get('readout_layers', 'last')} | "
            f"{card.get('date', '')} |"
        )
    lines += [
        "",
        'Foundation models are encoders too, behind optional extras: `load_encoder("chgnet")` '
        '(`pip install "contrast[chgnet]"`) and `load_encoder("sevennet")` '
        '(`pip install "contrast[sevennet]"`); '
        "their weights ship inside those packages (see [Evaluate any encoder](how-to/evaluate.md)).",
        "",
    ]
    for name, card in cards.items():
        lines += [f"## {name}", ""]
        for key, title in (("data", "Data"), ("recipe", "Recipe"), ("notes", "Notes")):
            if card.get(key):
                text = card[key]
                if key == "recipe":
                    text = f"\n```bash\n{text}\n```\n"
                lines += [f"**{title}.** {text}", ""]
        encoder = card.get("encoder", {})
        lines += ["**Encoder.**", "", "```yaml"]
        lines += [f"{k}: {v}" for k, v in encoder.items()]
        lines += ["```", ""]
        evaluation = card.get("evaluation") or {}
        if evaluation.get("table"):
            lines += [
                "**Probe suite** (test parts, looked at once after choosing the recipe on validation parts):",
                "",
                f"```bash\n{evaluation.get('command', '')}\n```",
                "",
                _demote(evaluation["table"], 2),
                "",
            ]
    return "\n".join(lines) + "\n"


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "", name.lower().replace(" ", "-"))


def _yaml_block(path: Path) -> str:
    return f"```yaml\n{path.read_text().rstrip()}\n```"


def _first_comment(path: Path) -> str:
    """The first comment line of a config file (after a ``# @package`` line), else ''."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("# @package"):
            continue
        if text.startswith("#"):
            return text.lstrip("#").strip().replace("|", "\\|")
        if text:
            break
    return ""


def cli_page() -> str:
    from contrast.__main__ import COMMANDS

    lines = [
        "# Command line",
        "",
        "Every command is a Hydra application: options are `key=value` overrides of its config (below), "
        "config groups are chosen with `group=option` ([Configuration](config.md)), `--cfg job` prints the "
        "composed config and `-m` sweeps over comma-separated values. `python -m contrast --help` lists the "
        "commands.",
        "",
        "| command | module | console script | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for command, (module, purpose, script) in COMMANDS.items():
        lines.append(f"| `python -m contrast {command}` | `python -m {module}` | `{script}` | {purpose} |")
    lines.append("")
    for command, config in (("train", "train.yaml"), ("evaluate", "evaluate.yaml"), ("embed", "embed.yaml"),
                            ("map", "map.yaml")):  # fmt: skip
        path = CONF / config
        if path.exists():
            lines += [f"## `{command}`: `{config}`", "", _yaml_block(path), ""]
    return "\n".join(lines) + "\n"


def config_page() -> str:
    lines = [
        "# Configuration",
        "",
        "The configs ship inside the package (`contrast/conf/`; `conf/` at the top of a checkout links to "
        "it). "
        "A group is chosen on the command line with `group=option` (`encoder=schnet`), an option inside it "
        "with `group.key=value` (`encoder.hidden_dim=128`), and an experiment preset with "
        "`experiment=NAME`. Generated from the files themselves.",
        "",
    ]
    groups = sorted(p for p in CONF.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    lines += ["| group | options |", "| --- | --- |"]
    for group in groups:
        options = ", ".join(
            f"[`{p.stem}`](#{group.name}-{_anchor(p.stem)})" for p in sorted(group.glob("*.yaml"))
        )
        lines.append(f"| `{group.name}` | {options} |")
    lines.append("")
    for group in groups:
        lines += [f"## `{group.name}`", ""]
        for path in sorted(group.glob("*.yaml")):
            summary = _first_comment(path)
            lines += [
                f"### `{group.name}={path.stem}` {{ #{group.name}-{_anchor(path.stem)} }}",
                "",
                summary,
                "",
                _yaml_block(path),
                "",
            ]
    return "\n".join(lines) + "\n"


def benchmarks_page(files: Files, config) -> str:
    text = (ROOT / "BENCHMARKS.md").read_text()

    def image(match: re.Match) -> str:
        source = ROOT / match.group(2)
        if not source.exists():
            raise FileNotFoundError(f"BENCHMARKS.md links {match.group(2)}, which is not in the repository")
        uri = f"assets/benchmarks/{source.name}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(source)))
        return f"![{match.group(1)}]({uri})"

    return re.sub(r"!\[([^\]]*)\]\(((?:benchmarks|docs)/[^)]+)\)", image, text)


SPHINX_ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|obj|exc):(?=<code>)")


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings name things with Sphinx roles (:func:`x`); on the site the code span alone reads right."""
    return SPHINX_ROLE.sub("", html)
