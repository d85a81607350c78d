"""Compact storage of many crystal graphs: arrays concatenated over structures, indexed by offsets.

Layout (one ``.npy`` file per array; ``S`` structures, ``A`` atoms, ``E`` edges in total):

| array | shape, dtype | meaning |
|---|---|---|
| ``z`` | [A] uint8 | atomic numbers |
| ``pos`` | [A, 3] float64 | Cartesian positions, Å |
| ``cell`` | [S, 3, 3] float64 | lattice vectors as rows |
| ``atom_ptr`` | [S + 1] int64 | atoms of structure s are ``atom_ptr[s]:atom_ptr[s+1]`` |
| ``edge_ptr`` | [S + 1] int64 | edges of structure s are ``edge_ptr[s]:edge_ptr[s+1]`` |
| ``edge_index`` | [E, 2] int16/int32 | (source j, target i), relative to the structure's first atom |
| ``cell_shift`` | [E, 3] int8/int16 | integer image shifts |
| ``target.<name>`` | [S, ...] or [A, 3] float64 | graph targets, or per-atom ``forces`` |

Edges dominate the size (about 7 bytes each with int16/int8), so positions stay float64 at little cost. Loaded
with ``np.load(mmap_mode="r")``, only the pages an item touches are read: datasets larger than RAM work, and
DataLoader workers share the page cache instead of copies.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch_geometric.data import Data

from contrast.data.graph import CrystalArrays

__all__ = [
    "PER_ATOM_TARGETS",
    "StoreBuilder",
    "merge_arrays",
    "save_store",
    "load_store",
    "item_graph",
    "item_arrays",
]

PER_ATOM_TARGETS = ("forces",)


class StoreBuilder:
    """Accumulates structures one by one, in compact dtypes, then concatenates them once."""

    def __init__(self, target_names: list[str]):
        self.target_names = list(target_names)
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("z", "pos", "cell", "edge_index", "cell_shift")
        }
        self.targets: dict[str, list[np.ndarray]] = {name: [] for name in self.target_names}
        self.n_atoms: list[int] = []
        self.n_edges: list[int] = []

    def add(
        self,
        crystal: CrystalArrays,
        edge_index: np.ndarray,
        shift: np.ndarray,
        targets: dict[str, np.ndarray],
    ) -> None:
        """Append one structure: ``edge_index`` [2, E] and ``shift`` [E, 3] as from ``graph_edges``."""
        self.parts["z"].append(crystal.z.astype(np.uint8))
        self.parts["pos"].append(crystal.pos)
        self.parts["cell"].append(crystal.cell[None])
        self.parts["edge_index"].append(edge_index.T.astype(np.int32))
        self.parts["cell_shift"].append(shift.astype(np.int16))
        for name in self.target_names:
            self.targets[name].append(targets[name])
        self.n_atoms.append(len(crystal.z))
        self.n_edges.append(edge_index.shape[1])

    def __len__(self) -> int:
        return len(self.n_atoms)

    def finish(self) -> dict[str, np.ndarray]:
        """Concatenate into the layout of the module docstring, narrowing index dtypes where values allow."""
        arrays = {key: np.concatenate(parts) if parts else _empty(key) for key, parts in self.parts.items()}
        arrays["atom_ptr"] = np.concatenate([[0], np.cumsum(self.n_atoms, dtype=np.int64)])
        arrays["edge_ptr"] = np.concatenate([[0], np.cumsum(self.n_edges, dtype=np.int64)])
        if max(self.n_atoms, default=0) <= np.iinfo(np.int16).max:
            arrays["edge_index"] = arrays["edge_index"].astype(np.int16)
        shift = arrays["cell_shift"]
        if shift.size == 0 or np.abs(shift).max() <= np.iinfo(np.int8).max:
            arrays["cell_shift"] = shift.astype(np.int8)
        for name in self.target_names:
            values = self.targets[name]
            arrays[f"target.{name}"] = np.concatenate(values) if values else np.zeros(0)
        return arrays


def merge_arrays(parts: list[dict[str, np.ndarray]], target_names: list[str]) -> dict[str, np.ndarray]:
    """Concatenate stores built separately (in order), rebasing their offsets."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return StoreBuilder(target_names).finish()
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if not key.endswith("_ptr")}
    for key in ("atom_ptr", "edge_ptr"):
        sizes = np.concatenate([np.diff(p[key]) for p in parts])
        merged[key] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return merged


def _empty(key: str) -> np.ndarray:
    shapes = {"z": (0,), "pos": (0, 3), "cell": (0, 3, 3), "edge_index": (0, 2), "cell_shift": (0, 3)}
    return np.zeros(shapes[key])


def save_store(arrays: dict[str, np.ndarray], folder: str) -> None:
    """Write each array as ``folder/<name>.npy``."""
    for key, value in arrays.items():
        np.save(os.path.join(folder, f"{key}.npy"), np.ascontiguousarray(value))


def load_store(folder: str, mmap: bool = True) -> dict[str, np.ndarray]:
    """Open every ``.npy`` array of a store, memory-mapped (read lazily) unless ``mmap`` is False."""
    mode = "r" if mmap else None
    return {
        name[: -len(".npy")]: np.load(os.path.join(folder, name), mmap_mode=mode)
        for name in sorted(os.listdir(folder))
        if name.endswith(".npy")
    }


def item_arrays(arrays: dict[str, np.ndarray], index: int) -> CrystalArrays:
    """The float64 arrays of structure ``index``."""
    a0, a1 = arrays["atom_ptr"][index : index + 2]
    return CrystalArrays(
        np.asarray(arrays["z"][a0:a1], dtype=np.int64),
        np.array(arrays["pos"][a0:a1], dtype=np.float64),
        np.array(arrays["cell"][index], dtype=np.float64),
    )


def item_graph(
    arrays: dict[str, np.ndarray], index: int, target_names: list[str], dtype: torch.dtype | None = None
) -> Data:
    """Structure ``index`` as a contract ``Data`` with its targets and ``idx`` [1]."""
    dtype = dtype or torch.get_default_dtype()
    a0, a1 = (int(v) for v in arrays["atom_ptr"][index : index + 2])
    e0, e1 = (int(v) for v in arrays["edge_ptr"][index : index + 2])
    edge_index = np.asarray(arrays["edge_index"][e0:e1], dtype=np.int64).T  # [2, E]
    data = Data(
        z=torch.from_numpy(np.asarray(arrays["z"][a0:a1], dtype=np.int64)),
        pos=torch.from_numpy(np.array(arrays["pos"][a0:a1])).to(dtype),  # [N, 3]
        cell=torch.from_numpy(np.array(arrays["cell"][index])).to(dtype).unsqueeze(0),  # [1, 3, 3]
        edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
        cell_shift=torch.from_numpy(np.asarray(arrays["cell_shift"][e0:e1], dtype=np.float64)).to(dtype),
        idx=torch.tensor([index], dtype=torch.long),
        num_nodes=a1 - a0,
    )
    for name in target_names:
        values = arrays[f"target.{name}"]
        if name in PER_ATOM_TARGETS:
            value = torch.from_numpy(np.array(values[a0:a1]))  # [N, 3]
        else:
            value = torch.from_numpy(np.array(values[index : index + 1]))  # [1] or [1, 3, 3]
        data[name] = value.to(dtype)
    return data
