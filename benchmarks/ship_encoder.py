"""Package a pretrained encoder: ``contrast/pretrained/models/<name>.pt`` (weights) and ``<name>.json`` (its
card).

    python benchmarks/ship_encoder.py --checkpoint runs/x/checkpoints/last.ckpt --name contrast-mp-painn \
        --command "python -m contrast.train experiment=mp_pretrain_cpu ..." --results runs/evaluate/y

The weights file holds only the encoder (its ``_target_`` config and float32 state dict) in the layout of a
training checkpoint, so ``contrast.load_encoder(name)`` reads it with ``weights_only`` like any checkpoint.
The card records the data, the exact recipe command, the code version and the evaluation suite's table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import date
from pathlib import Path

import torch

from contrast.pretrained.checkpoint import encoder_config_and_weights, read_checkpoint
from contrast.pretrained.loading import MODELS_DIR as MODELS  # where load_encoder(name) looks

MAX_BYTES = 5 * 1024 * 1024


def code_version() -> str:
    """The git commit of this checkout (with ``-dirty`` when it has uncommitted changes)."""
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "contrast", "conf"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def ship(
    checkpoint: Path,
    name: str,
    card: dict,
    out_dir: Path = MODELS,
    pooling: str | None = None,
    readout_layers: str | None = None,
) -> Path:
    """Write ``<name>.pt`` and ``<name>.json`` into ``out_dir``; returns the weights file.

    ``pooling`` (e.g. ``mean+std+max``) and ``readout_layers`` (``last`` or ``all``) set the shipped encoder's
    graph readout (None keeps the checkpoint's): they change no weight, only how per-atom features become the
    embedding.
    """
    config, weights = encoder_config_and_weights(read_checkpoint(checkpoint), source=checkpoint)
    if pooling is not None:
        config["pooling"] = pooling
    if readout_layers is not None:
        config["readout_layers"] = readout_layers
    state = {
        f"encoder.{key}": value.float() if value.is_floating_point() else value
        for key, value in weights.items()
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_file = out_dir / f"{name}.pt"
    torch.save(
        {"state_dict": state, "hyper_parameters": {"encoder": config, "task": "shipped"}}, weights_file
    )
    size = weights_file.stat().st_size
    if size > MAX_BYTES:
        weights_file.unlink()
        raise ValueError(
            f"{name}: {size / 1e6:.1f} MB of weights, more than the 5 MB a shipped encoder may take"
        )
    card = {"name": name, "encoder": config, "weights_bytes": size, **card}
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return weights_file


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the exact pretraining command")
    parser.add_argument("--data", required=True, help="what the encoder was pretrained on")
    parser.add_argument("--results", type=Path, help="an evaluation run directory (results.json, results.md)")
    parser.add_argument("--evaluate-command", default=None, help="the command that produced --results")
    parser.add_argument("--notes", default="")
    parser.add_argument("--pooling", default=None, help="the shipped graph readout, e.g. mean+std+max")
    parser.add_argument("--readout-layers", default=None, choices=("last", "all"), help="the layers pooled")
    args = parser.parse_args()
    card = {
        "data": args.data,
        "recipe": args.command,
        "code_version": code_version(),
        "date": date.today().isoformat(),
        "notes": args.notes,
    }
    if args.results:
        card["evaluation"] = {
            "command": args.evaluate_command,
            "table": (args.results / "results.md").read_text(),
            "results": json.loads((args.results / "results.json").read_text()),
        }
    print(ship(args.checkpoint, args.name, card, pooling=args.pooling, readout_layers=args.readout_layers))


if __name__ == "__main__":
    main()
