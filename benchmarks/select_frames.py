"""Copy the frames of an extended-XYZ file whose ``info`` matches ``key=value`` pairs into a new file.

    python benchmarks/select_frames.py ../shared/data/perov_5_trainval.extxyz.gz \
        perov_5_unlabelled.extxyz.gz --where split=train

The unlabelled ``split=train`` frames of perov_5 and carbon_24 are the structures the probe suite never
reads (it trains and tests on the labelled ``split=val`` frames), so they can join pretraining
(``data.sources``) without any suite test structure reaching it. Frames are copied as text, unchanged; the
counts of frames read and kept are printed. Reading ``.gz`` and writing ``.gz`` follow the file names. A value
matches as text: ``--where split=train`` keeps frames whose ``info["split"]`` is the string ``train``.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from ase.io.extxyz import key_val_str_to_dict


def _open(path: Path, mode: str, compressed: bool | None = None):
    """A text handle; gzip when ``compressed`` (default: the name ends in ``.gz``)."""
    compressed = path.suffix == ".gz" if compressed is None else compressed
    return gzip.open(path, mode + "t") if compressed else open(path, mode)


def select_frames(source: Path, out: Path, where: dict[str, str]) -> tuple[int, int]:
    """Write the frames of ``source`` whose comment-line info has every ``where`` pair; returns (read, kept).

    Raises:
        ValueError: a frame whose atom-count line is not an integer, or a file cut short (file and frame
            named).
    """
    read = kept = 0
    partial = out.with_name(out.name + ".partial")  # renamed to `out` once every frame is read
    try:
        with _open(source, "r") as handle, _open(partial, "w", out.suffix == ".gz") as sink:
            while True:
                count_line = handle.readline()
                if not count_line:
                    break  # end of file
                if not count_line.strip():
                    continue  # blank lines between frames
                try:
                    count = int(count_line.split()[0])
                except ValueError:
                    got = count_line.strip()
                    raise ValueError(f"{source}: frame {read}: expected an atom count, got {got!r}") from None
                comment = handle.readline()
                atoms = [handle.readline() for _ in range(count)]
                if len(atoms) != count or (atoms and not atoms[-1]):
                    raise ValueError(f"{source}: frame {read}: the file ends inside the frame")
                info = key_val_str_to_dict(comment)
                if all(str(info.get(key)) == value for key, value in where.items()):
                    sink.write(count_line + comment + "".join(atoms))
                    kept += 1
                read += 1
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return read, kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--where", nargs="+", required=True, help="key=value pairs the frame's info must have"
    )
    args = parser.parse_args(argv)
    where = {}
    for pair in args.where:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"--where takes key=value pairs, got {pair!r}")
        where[key] = value
    read, kept = select_frames(args.source, args.out, where)
    print(f"{args.source}: {kept} of {read} frames match {where} -> {args.out}")


if __name__ == "__main__":
    main()
