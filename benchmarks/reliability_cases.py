"""The reproductions of the reliability issue, run against whichever `contrast` is importable:

    python benchmarks/reliability_cases.py

A 30-frame extxyz file with one frame whose count is one off, a cut gzip, a multi-block CIF with a broken
block, a CGCNN folder whose CIF is overwritten with the same size and time, an element beyond the encoders,
embed on a list with a bad structure and on one structure, and the losses on a batch of one. Prints one line
per case (kept and skipped entries, or the error).
"""

from __future__ import annotations

import os
import tempfile
import time
import zlib
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

import contrast
from contrast.losses import info_nce, vicreg
from contrast.nn.painn import PaiNN

N = 30


def frame(k, atoms=2, declared=None):
    labels = f'id=f{k} energy={-k * 0.1:.3f} pbc="T T T"'
    header = f'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 {labels}'
    lines = [f"Cu {0.1 * k:.3f} 0 0", "Cu 1.5 1.5 0", "Cu 0 1.5 1.5", "Cu 1.5 0 1.5"][:atoms]
    return "\n".join([str(atoms if declared is None else declared), header, *lines]) + "\n"


def load(path, tmp, **kw):
    try:
        ds = contrast.load_dataset(
            str(path), cutoff=3.0, on_error="skip", cache_dir=str(tmp / f"c{time.time_ns()}"), **kw
        )
        return f"kept {len(ds)}, skipped {len(ds.skipped)}"
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:150]}"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CONTRAST_CACHE"] = str(tmp / "cache")
    cases = {
        "count one too many (frame 10)": {10: frame(10, 2, 3)},
        "count one too few (frame 10)": {10: frame(10, 3, 2)},
    }
    for name, broken in cases.items():
        p = tmp / f"{abs(hash(name))}.extxyz"
        p.write_text("".join(broken.get(k, frame(k)) for k in range(N)))
        print(f"{N}-frame extxyz, {name}: {load(p, tmp)}")
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    packed = (
        b"".join(packer.compress(frame(k).encode()) + packer.flush(zlib.Z_FULL_FLUSH) for k in range(N))
        + packer.flush()
    )
    cut = tmp / "cut.extxyz.gz"
    cut.write_bytes(packed[: int(len(packed) * 0.8)])
    prefix = zlib.decompressobj(wbits=31).decompress(cut.read_bytes()).decode()
    complete = int((np.cumsum([len(frame(k)) for k in range(N)]) <= len(prefix)).sum())
    print(f"gzip cut at 80% ({complete} complete frames before the cut): {load(cut, tmp)}")
    blocks = []
    for k, el in enumerate(["Cu", "Ni", "Al"]):
        s = Structure(Lattice.cubic(3.6), [el] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        blocks.append(str(CifWriter(s)).replace("data_", f"data_b{k}_", 1))
    bad = blocks[1].split("_atom_site_occupancy")[0] + "_atom_site_occupancy\n  Ni  Ni0  1  0.0  0.0\n"
    cif = tmp / "three.cif"
    cif.write_text(blocks[0] + bad + blocks[2])
    print(f"3-block CIF, block 1 broken: {load(cif, tmp)}")
    # stale cache
    folder = tmp / "cg"
    folder.mkdir()

    def wcif(path, a):
        s = Structure(Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        path.write_text(str(CifWriter(s)))

    for k in range(2):
        wcif(folder / f"c{k}.cif", 3.61)
    (folder / "id_prop.csv").write_text("c0,1\nc1,2\n")
    cache = str(tmp / "stale")
    a0 = contrast.load_dataset(str(folder), cutoff=3.0, cache_dir=cache).structure(0).cell[0, 0]
    print(f"CGCNN folder: first load reads a = {a0:.2f} A")
    st = os.stat(folder / "c0.cif")
    wcif(folder / "c0.cif", 3.71)
    os.utime(folder / "c0.cif", ns=(st.st_atime_ns, st.st_mtime_ns))
    a1 = contrast.load_dataset(str(folder), cutoff=3.0, cache_dir=cache).structure(0).cell[0, 0]
    print(
        "CGCNN folder, CIF overwritten 3.61 -> 3.71 A (same size and mtime): "
        f"second load reads a = {a1:.2f} A"
    )
    # Z 101
    heavy = bulk("Cu", "fcc", a=3.6, cubic=True)
    heavy.symbols[1] = "Md"
    p = tmp / "heavy.extxyz"
    ase.io.write(p, [bulk("Cu", "fcc", a=3.6, cubic=True), heavy], format="extxyz")
    try:
        contrast.load_dataset(str(p), cutoff=3.0, cache_dir=str(tmp / "h"))
        print("Md (Z=101) at read time: accepted")
    except Exception as e:
        print(f"Md (Z=101) at read time: {type(e).__name__}: {str(e)[:160]}")

    enc = PaiNN(hidden_dim=8, num_layers=1, num_rbf=4, cutoff=4.0)
    good = bulk("Cu", "fcc", a=3.6, cubic=True)
    try:
        contrast.embed(enc, [good, heavy, good])
        print("embed([good, Md, good]): no error")
    except Exception as e:
        print(f"embed([good, Md, good]): {type(e).__name__}: {str(e)[:160]}")
    try:
        print("embed(one ase.Atoms of 4 atoms) shape:", tuple(contrast.embed(enc, good).shape))
    except Exception as e:
        print(f"embed(one ase.Atoms): {type(e).__name__}: {str(e)[:120]}")

    z = torch.randn(1, 4)
    for f in (vicreg, info_nce):
        try:
            print(f"{f.__name__} on a batch of one: {float(f(z, z + 0.1)):.4f}")
        except Exception as e:
            print(f"{f.__name__} on a batch of one: {type(e).__name__}: {str(e)[:100]}")


if __name__ == "__main__":
    main()
