"""Compact storage of many crystals: arrays concatenated over structures, indexed by offsets.

Two layouts share one format (one ``.npy`` file per array; ``S`` structures, ``A`` atoms, ``E`` edges):

| array | shape, dtype | store | meaning |
|---|---|---|---|
| ``z`` | [A] uint8 | both | atomic numbers |
| ``pos`` | [A, 3] float64 / float32 | both | Cartesian positions, Å (float32 in the structure store) |
| ``cell`` | [S, 3, 3] float64 | both | lattice vectors as rows |
| ``atom_ptr`` | [S + 1] int64 | both | atoms of structure s are ``atom_ptr[s]:atom_ptr[s+1]`` |
| ``ids`` | [S] bytes | both | unique ids, UTF-8 (see :func:`~contrast.data.store.build.unique_ids`) |
| ``formulas`` | [S] bytes | both | reduced formulas |
| ``edge_ptr`` | [S + 1] int64 | graph | edges of structure s are ``edge_ptr[s]:edge_ptr[s+1]`` |
| ``edge_index`` | [E, 2] int16/int32 | graph | (source j, target i), relative to the structure's first atom |
| ``cell_shift`` | [E, 3] int8/int16 | graph | integer image shifts |
| ``target.<name>`` | [S, ...] or [A, 3] float64 | both | graph targets, or per-atom ``forces`` |

The **graph store** keeps the neighbour lists of one cutoff. Edges dominate its size (about 7 bytes each), so
positions stay float64 at little cost. The **structure store** keeps no edges: items build their neighbour
list when they are read (in DataLoader workers), which is what pretraining does anyway when it draws views.
It stores positions as float32 (a relative precision of 6e-8: below 1e-5 Å for coordinates under 100 Å),
about 16 bytes per atom in all. Loaded with ``np.load(mmap_mode="r")``, only the pages an item touches are
read: datasets larger than RAM work, and DataLoader workers share the page cache instead of copies.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch_geometric.data import Data

from contrast.graph.convert import CrystalArrays, contract_data

__all__ = [
    "PER_ATOM_TARGETS",
    "STORES",
    "StoreBuilder",
    "bytes_per_atom",
    "merge_arrays",
    "save_store",
    "load_store",
    "item_graph",
    "item_arrays",
    "string_array",
    "decode",
]

PER_ATOM_TARGETS = ("forces",)
STORES = ("graph", "structure")
EDGE_KEYS = ("edge_index", "cell_shift")


class StoreBuilder:
    """Accumulates structures one by one, in compact dtypes, then concatenates them once.

    Args:
        target_names: the targets every structure carries.
        edges: keep neighbour lists (the graph store) or not (the structure store, float32 positions).
    """

    def __init__(self, target_names: list[str], edges: bool = True):
        self.target_names = list(target_names)
        self.edges = bool(edges)
        keys = ("z", "pos", "cell", *(EDGE_KEYS if self.edges else ()))
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        self.targets: dict[str, list[np.ndarray]] = {name: [] for name in self.target_names}
        self.n_atoms: list[int] = []
        self.n_edges: list[int] = []

    def add(
        self,
        crystal: CrystalArrays,
        edge_index: np.ndarray | None,
        shift: np.ndarray | None,
        targets: dict[str, np.ndarray],
    ) -> None:
        """Append one structure: ``edge_index`` [2, E] and ``shift`` [E, 3] as from ``graph_edges`` (ignored,
        and may be None, in the structure store)."""
        self.parts["z"].append(crystal.z.astype(np.uint8))
        self.parts["pos"].append(crystal.pos if self.edges else crystal.pos.astype(np.float32))
        self.parts["cell"].append(crystal.cell[None])
        if self.edges:
            self.parts["edge_index"].append(edge_index.T.astype(np.int32))
            self.parts["cell_shift"].append(shift.astype(np.int16))
            self.n_edges.append(edge_index.shape[1])
        for name in self.target_names:
            self.targets[name].append(targets[name])
        self.n_atoms.append(len(crystal.z))

    def __len__(self) -> int:
        return len(self.n_atoms)

    def finish(self) -> dict[str, np.ndarray]:
        """Concatenate into the layout of the module docstring, narrowing index dtypes where values allow."""
        arrays = {
            key: np.concatenate(parts) if parts else self._empty(key) for key, parts in self.parts.items()
        }
        arrays["atom_ptr"] = np.concatenate([[0], np.cumsum(self.n_atoms, dtype=np.int64)])
        if self.edges:
            arrays["edge_ptr"] = np.concatenate([[0], np.cumsum(self.n_edges, dtype=np.int64)])
            if max(self.n_atoms, default=0) <= np.iinfo(np.int16).max:
                arrays["edge_index"] = arrays["edge_index"].astype(np.int16)
            shift = arrays["cell_shift"]
            if shift.size == 0 or np.abs(shift).max() <= np.iinfo(np.int8).max:
                arrays["cell_shift"] = shift.astype(np.int8)
        for name in self.target_names:
            values = self.targets[name]
            arrays[f"target.{name}"] = np.concatenate(values) if values else np.zeros(_target_shape(name))
        return arrays

    def _empty(self, key: str) -> np.ndarray:
        shapes = {"z": (0,), "pos": (0, 3), "cell": (0, 3, 3), "edge_index": (0, 2), "cell_shift": (0, 3)}
        dtypes = {"z": np.uint8, "pos": np.float64 if self.edges else np.float32, "edge_index": np.int16}
        return np.zeros(shapes[key], dtype=dtypes.get(key, np.float64 if key == "cell" else np.int8))


def _target_shape(name: str) -> tuple[int, ...]:
    return (0, 3) if name in PER_ATOM_TARGETS else (0, 3, 3) if name == "stress" else (0,)


def merge_arrays(parts: list[dict[str, np.ndarray]], target_names: list[str]) -> dict[str, np.ndarray]:
    """Concatenate stores built separately (in order), rebasing their offsets."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return StoreBuilder(target_names).finish()
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if not key.endswith("_ptr")}
    for key in [k for k in parts[0] if k.endswith("_ptr")]:
        sizes = np.concatenate([np.diff(p[key]) for p in parts])
        merged[key] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return merged


def string_array(values: list[str]) -> np.ndarray:
    """Strings as a fixed-width UTF-8 bytes array [S] (a compact, memory-mappable list of ids or formulas)."""
    encoded = [value.encode() for value in values]
    return np.array(encoded, dtype=f"S{max(map(len, encoded), default=1) or 1}")


def decode(strings: np.ndarray) -> list[str]:
    """A bytes array of :func:`string_array` back as a list of strings."""
    return [value.decode() for value in strings.tolist()]


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


def bytes_per_atom(store: str | os.PathLike | dict[str, np.ndarray]) -> float:
    """Size of a store per atom: the bytes of all its arrays (a folder's ``.npy`` files, or a dict of
    arrays) over its number of atoms; per-structure arrays (cells, offsets, ids) count amortised."""
    arrays = load_store(os.fspath(store)) if not isinstance(store, dict) else store
    return sum(int(array.nbytes) for array in arrays.values()) / max(len(arrays["z"]), 1)


def item_arrays(arrays: dict[str, np.ndarray], index: int) -> CrystalArrays:
    """The float64 arrays of structure ``index``."""
    a0, a1 = arrays["atom_ptr"][index : index + 2]
    return CrystalArrays(
        np.asarray(arrays["z"][a0:a1], dtype=np.int64),
        np.array(arrays["pos"][a0:a1], dtype=np.float64),
        np.array(arrays["cell"][index], dtype=np.float64),
    )


def item_graph(
    arrays: dict[str, np.ndarray],
    index: int,
    target_names: list[str],
    dtype: torch.dtype | None = None,
    search=None,
) -> Data:
    """Structure ``index`` as a contract ``Data`` with its targets and ``idx`` [1].

    Edges come from the graph store; in the structure store they are searched with ``search`` (a
    :class:`~contrast.graph.neighbours.NeighbourSearch`), and left out when ``search`` is None (for views,
    which build their own).
    """
    dtype = dtype or torch.get_default_dtype()
    a0, a1 = (int(v) for v in arrays["atom_ptr"][index : index + 2])
    pos, cell = np.array(arrays["pos"][a0:a1]), np.array(arrays["cell"][index])  # [N, 3], [3, 3]
    fields = {
        "z": torch.from_numpy(np.asarray(arrays["z"][a0:a1], dtype=np.int64)),
        "pos": torch.from_numpy(pos).to(dtype),
        "cell": torch.from_numpy(cell).to(dtype).unsqueeze(0),  # [1, 3, 3]
    }
    if "edge_ptr" in arrays:
        e0, e1 = (int(v) for v in arrays["edge_ptr"][index : index + 2])
        edge_index = np.asarray(arrays["edge_index"][e0:e1], dtype=np.int64).T  # [2, E]
        shift = np.asarray(arrays["cell_shift"][e0:e1], dtype=np.float64)  # [E, 3]
    elif search is not None:
        # positions of the store checked at build time: no distance check here
        edge_index, shift, _ = search(pos.astype(np.float64), cell.astype(np.float64))
    else:
        edge_index = shift = None
    if edge_index is not None:
        fields["edge_index"] = torch.from_numpy(np.ascontiguousarray(edge_index, dtype=np.int64))
        fields["cell_shift"] = torch.from_numpy(np.asarray(shift, dtype=np.float64)).to(dtype)  # [E, 3]
    fields["idx"] = torch.tensor([index], dtype=torch.long)
    fields["num_nodes"] = a1 - a0
    for name in target_names:
        values = arrays[f"target.{name}"]
        if name in PER_ATOM_TARGETS:
            value = torch.from_numpy(np.array(values[a0:a1]))  # [N, 3]
        else:
            value = torch.from_numpy(np.array(values[index : index + 1]))  # [1] or [1, 3, 3]
        fields[name] = value.to(dtype)
    return contract_data(**fields)
