"""``python -m contrast``: the command-line entry points, one line each.

    python -m contrast --help
    python -m contrast train experiment=smoke   # the same as python -m contrast.train / contrast-train

Printing the help imports nothing heavy (no torch, Lightning or Hydra); a command imports its module only
when it runs. The console scripts (``contrast-train``, ``contrast-evaluate``, ``contrast-embed``) come through
here too, so that each module runs as ``__main__`` as it does under ``python -m``.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys

# command -> (module with main(), what it does, console script)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": (
        "contrast.train",
        "pretrain an encoder, or probe, fine-tune or fit an energy head on one (Hydra overrides)",
        "contrast-train",
    ),
    "evaluate": (
        "contrast.evaluate",
        "score an encoder (checkpoint=PATH_OR_NAME) on a probe suite next to its baselines",
        "contrast-evaluate",
    ),
    "embed": (
        "contrast.export",
        "write one embedding per structure of a file to .npz or .parquet (shard=i/n for array jobs)",
        "contrast-embed",
    ),
    "map": (
        "contrast.cli.map",
        "an embedding map as a standalone HTML page (colour by a label or element, hover, search)",
        "contrast-map",
    ),
}


def usage() -> str:
    """The help text: every command with one line, and the equivalent module and console script."""
    width = max(map(len, COMMANDS))
    lines = [
        "usage: python -m contrast <command> [overrides ...]",
        "",
        "commands:",
        *(f"  {name:<{width}}  {about}" for name, (_, about, _) in COMMANDS.items()),
        "",
        "Each command is also `python -m <module>` and a console script:",
        *(f"  {name:<{width}}  python -m {mod:<17} {script}" for name, (mod, _, script) in COMMANDS.items()),
        "",
        "`python -m contrast <command> --help` shows the command's configuration (Hydra).",
    ]
    return "\n".join(lines)


def run_command(command: str, args: list[str]) -> int:
    """Run ``python -m <module of command> <args>`` in this process.

    The module runs as ``__main__``, exactly as with ``python -m``: Hydra then finds the package's
    ``conf/``, and Lightning's DDP re-launches the same module for its other processes.
    """
    module_name = COMMANDS[command][0]
    if importlib.util.find_spec(module_name) is None:
        print(f"contrast {command}: {module_name} is not part of this installation", file=sys.stderr)
        return 2
    sys.argv = [f"contrast-{command}", *args]
    runpy.run_module(module_name, run_name="__main__", alter_sys=True)
    return 0


def train() -> int:
    """Console script ``contrast-train``."""
    return run_command("train", sys.argv[1:])


def evaluate() -> int:
    """Console script ``contrast-evaluate``."""
    return run_command("evaluate", sys.argv[1:])


def embed() -> int:
    """Console script ``contrast-embed``."""
    return run_command("embed", sys.argv[1:])


def map_command() -> int:
    """Console script ``contrast-map``."""
    return run_command("map", sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    """Print the help, or run ``<command>`` with the remaining arguments as its own command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from contrast import __version__

        print(f"contrast {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"python -m contrast: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
