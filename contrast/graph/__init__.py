"""Structure -> crystal graph: checked arrays, periodic neighbour lists (vesin) per structure, and neighbour
search for a whole batch on its device. Knows nothing of files or datasets."""

from contrast.graph.convert import (
    MAX_Z,
    CrystalArrays,
    StructureError,
    structure_to_graph,
    structures_to_graphs,
    to_arrays,
)
from contrast.graph.neighbours import NeighbourSearch

__all__ = [
    "MAX_Z",
    "CrystalArrays",
    "NeighbourSearch",
    "StructureError",
    "structure_to_graph",
    "structures_to_graphs",
    "to_arrays",
]
