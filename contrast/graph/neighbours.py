"""Full periodic neighbour lists through vesin's C library.

vesin's Python ``NeighborList.compute`` accepts numpy, torch and cupy arrays on any device. Dispatching on
them, converting dtypes and wrapping the outputs costs about as much as the search itself for the small cells
of crystal datasets (``benchmarks/graph_build.py`` prints both). :class:`NeighbourSearch` calls the same
library function, ``vesin_neighbors``, with float64 CPU arrays only. Where the installed vesin does not expose
its C bindings the way this module expects, it falls back to the public Python API.

Small cells are searched on one thread: starting the OpenMP team costs more than it saves below about a
thousand atoms. Larger systems (MD supercells) use vesin's default thread count.
"""

from __future__ import annotations

import ctypes

import numpy as np
from vesin import NeighborList

__all__ = ["NeighbourSearch"]

THREADED_FROM_ATOMS = 1000  # from this many atoms on, vesin may use every core

try:  # vesin's own ctypes declarations of its C API, so the struct layouts match the installed library
    from vesin._c_api import VesinAutoAlgorithm, VesinCPU, VesinDevice, VesinNeighborList, VesinOptions
    from vesin._c_lib import get_library

    _HAS_C_API = all(
        name in dict(VesinOptions._fields_)
        for name in ("cutoff", "full", "sorted", "n_threads", "return_shifts", "return_distances")
    )
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed vesin
    _HAS_C_API = False


class NeighbourSearch:
    """A reusable full, periodic neighbour search at one cutoff (not thread-safe: one per thread).

    Calling it returns ``(edge_index, shift, distance)``: [2, E] int64 with sources j in row 0 and targets i
    in row 1 (the graph contract's layout), integer image shifts [E, 3] as int32 and distances [E] as
    float64, with ``pos[j] - pos[i] + shift @ cell`` the vector from atom i to its neighbour. Every pair
    within the cutoff is listed in both directions, images included; an atom's own zero-shift image is not.

    Args:
        cutoff: radius in Å.
        use_c_api: call vesin's C library directly (default where available) or its Python API.
    """

    def __init__(self, cutoff: float, use_c_api: bool | None = None):
        self.cutoff = float(cutoff)
        self.use_c_api = _HAS_C_API if use_c_api is None else bool(use_c_api and _HAS_C_API)
        if self.use_c_api:
            self._lib = get_library()
            # vesin_neighbors taking every pointer as a plain address (no ctypes pointer objects per call)
            self._neighbors = _ADDRESS_PROTOTYPE(
                ctypes.cast(self._lib.vesin_neighbors, ctypes.c_void_p).value
            )
            self._result = VesinNeighborList()
            self._result_address = ctypes.addressof(self._result)
            # The same struct with plain addresses: reading a pointer field then costs no ctypes object.
            self._addresses = _ADDRESS_STRUCT.from_buffer(self._result)
            self._device = VesinDevice(VesinCPU, 0)
            # Inputs are copied into buffers whose addresses are known: asking numpy for an array's address
            # (``array.ctypes``) costs more than copying a small cell.
            self._periodic = np.ones(3, dtype=np.bool_)
            self._cell = np.empty((3, 3), dtype=np.float64)
            self._pos = np.empty((0, 3), dtype=np.float64)
            self._addresses_in = (self._periodic.ctypes.data, self._cell.ctypes.data, self._pos.ctypes.data)
            self._error = ctypes.c_char_p()
            self._error_address = ctypes.addressof(self._error)
            self._options = {threads: self._make_options(threads) for threads in (0, 1)}
        else:
            self._calculators = {
                threads: NeighborList(cutoff=self.cutoff, full_list=True, n_threads=threads)
                for threads in (0, 1)
            }

    def _make_options(self, n_threads: int):
        return VesinOptions(
            cutoff=self.cutoff,
            full=True,
            sorted=False,
            algorithm=VesinAutoAlgorithm,
            n_threads=n_threads,
            return_shifts=True,
            return_distances=True,
            return_vectors=False,
        )

    def __call__(self, pos: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbours of the atoms at ``pos`` [N, 3] in the periodic ``cell`` [3, 3] (lattice rows)."""
        threads = 0 if len(pos) >= THREADED_FROM_ATOMS else 1
        if not self.use_c_api:
            i, j, shift, distance = self._calculators[threads].compute(
                points=pos, box=cell, periodic=True, quantities="ijSd"
            )
            return np.stack((j, i)).astype(np.int64), shift, distance
        n = len(pos)
        if n > len(self._pos):
            self._pos = np.empty((max(n, 2 * len(self._pos)), 3), dtype=np.float64)
            self._addresses_in = (*self._addresses_in[:2], self._pos.ctypes.data)
        self._pos[:n] = pos
        self._cell[...] = cell
        periodic_address, cell_address, pos_address = self._addresses_in
        status = self._neighbors(
            pos_address,
            n,
            cell_address,
            periodic_address,
            self._device,
            self._options[threads],
            self._result_address,
            self._error_address,
        )
        if status != 0:
            raise RuntimeError(f"vesin: {self._error.value.decode('utf8', 'replace')}")
        n_pairs = self._result.length
        if n_pairs == 0:
            return np.empty((2, 0), np.int64), np.empty((0, 3), np.int32), np.empty(0, np.float64)
        # Copies out of vesin's buffers, which the next call reuses.
        addresses = self._addresses
        pairs = _view(addresses.pairs, "<u8", (n_pairs, 2))  # [E, 2] as (i, j)
        edge_index = pairs.T[::-1].astype(np.int64, order="C")  # [2, E] as (j, i)
        shift = _view(addresses.shifts, "<i4", (n_pairs, 3)).copy()
        distance = _view(addresses.distances, "<f8", (n_pairs,)).copy()
        return edge_index, shift, distance

    def __del__(self):
        if getattr(self, "use_c_api", False) and hasattr(self, "_result"):
            self._lib.vesin_free(ctypes.byref(self._result))


class _Memory:
    """Exposes C memory to numpy through the array interface (cheaper than a ctypes array type per size)."""

    __slots__ = ("__array_interface__",)

    def __init__(self, address: int, typestr: str, shape: tuple[int, ...]):
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": typestr, "version": 3}


def _view(address: int, typestr: str, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only numpy view of ``shape`` at ``address`` (not owned; copy before the next search)."""
    return np.asarray(_Memory(address, typestr, shape))


if _HAS_C_API:
    _ADDRESS_PROTOTYPE = ctypes.CFUNCTYPE(
        ctypes.c_int,
        ctypes.c_void_p,  # points
        ctypes.c_size_t,  # number of points
        ctypes.c_void_p,  # box
        ctypes.c_void_p,  # periodic
        VesinDevice,
        VesinOptions,
        ctypes.c_void_p,  # neighbors
        ctypes.c_void_p,  # error message
    )
    _ADDRESS_STRUCT = type(
        "VesinNeighborListAddresses",
        (ctypes.Structure,),
        {
            "_fields_": [
                (name, ctypes.c_void_p if issubclass(kind, ctypes._Pointer) else kind)
                for name, kind in VesinNeighborList._fields_
            ]
        },
    )
