"""Rebuild ``mp_sample.extxyz.gz``: structures drawn with a fixed seed from a Materials Project extxyz file.

    python -m contrast.data.samples.make_mp_sample mp_train.extxyz.gz [--size 300] [--seed 0]

Keeps ``mp_id``, ``e_form_per_atom`` and ``band_gap`` of each frame (the other labels and per-atom columns
are dropped) and writes the frames in the source's order.
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np

KEEP = ("mp_id", "e_form_per_atom", "band_gap")


def make_sample(source: str | Path, out: str | Path, size: int = 300, seed: int = 0) -> int:
    """Draw ``size`` frames of ``source`` with ``seed`` and write them to ``out``; returns the frame count."""
    from ase import Atoms
    from ase.io import read, write

    from contrast.data.io.extxyz import scan_frames

    with gzip.open(source, "rt") if str(source).endswith(".gz") else open(source) as handle:
        lines = handle.read().split("\n")  # decompress first: ASE seeks inside gzip streams slowly
    frames, _ = scan_frames(lines)
    chosen = np.sort(np.random.default_rng(seed).choice(len(frames), size=size, replace=False))
    sample = []
    for index in chosen:
        span = frames[index]
        atoms = read(io.StringIO("\n".join(lines[span.start : span.stop])), format="extxyz")
        info = {key: atoms.info[key] for key in KEEP}
        sample.append(Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True, info=info))
    with gzip.open(out, "wt", compresslevel=9) as handle:
        write(handle, sample, format="extxyz")
    return len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--out", default=str(Path(__file__).with_name("mp_sample.extxyz.gz")))
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    count = make_sample(args.source, args.out, args.size, args.seed)
    print(f"wrote {count} structures to {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
