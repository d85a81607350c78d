"""Several encoders' probe-suite runs side by side (our shipped encoders next to foundation models).

    python -m contrast.evaluate checkpoint=painn-mp-cpu-2400 suite.data_dir=../shared/data \
        pooling=mean+std+max layers=all hydra.run.dir=runs/eval/ours
    python -m contrast.evaluate checkpoint=chgnet suite.data_dir=../shared/data \
        pooling=mean+std+max hydra.run.dir=runs/eval/chgnet
    python benchmarks/compare_encoders.py ours=runs/eval/ours/results.json \
        chgnet=runs/eval/chgnet/results.json

Prints one markdown table (``--out`` also writes it): per task and probe, each encoder's MAE with its ratio to
its own fresh copy, and the composition baselines. The runs must score the same parts of the same splits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> str:
    from contrast.evaluation.report import comparison_markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=path/to/results.json, in the order of the columns")
    parser.add_argument("--probes", nargs="+", default=["linear", "knn"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"{item!r}: expected NAME=path/to/results.json")
        runs[name] = json.loads(Path(path).read_text())
    table = comparison_markdown(runs, args.probes)
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
