"""The physics checks pass on a correct model and fail on models broken in known ways."""

import pytest
import torch
from ase.build import bulk
from torch import nn
from torch_geometric.utils import scatter

from contrast.nn.geometry import edge_vectors, graph_index, polynomial_envelope
from contrast.testing import (
    assert_equivariant,
    assert_forces_match_finite_differences,
    assert_invariant,
    assert_smooth_at_cutoff,
    assert_stress_matches_finite_differences,
    assert_supercell_consistent,
    to_graph,
)

CUTOFF = 3.5


class PairModel(nn.Module):
    """E = sum over pairs of exp(-d) u(d), with switches that break it in known ways."""

    def __init__(self, smooth=True, detach_pos=False, detach_cell=False, reduce="sum"):
        super().__init__()
        self.smooth, self.detach_pos, self.detach_cell, self.reduce = smooth, detach_pos, detach_cell, reduce

    def forward(self, data, pos=None, cell=None):
        pos = data.pos if pos is None else pos
        cell = data.cell if cell is None else cell
        vectors = edge_vectors(data, pos=pos, cell=cell.detach() if self.detach_cell else cell)
        d = torch.linalg.vector_norm(vectors, dim=-1)  # [E]
        pair = torch.exp(-d) * (polynomial_envelope(d, CUTOFF) if self.smooth else 1.0)
        if self.detach_pos:
            pair = pair + 0.3 * torch.sin(pos.detach()).sum() / d.shape[0]
        batch = graph_index(data)[data.edge_index[1]]
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        return scatter(0.5 * pair, batch, dim=0, dim_size=num_graphs, reduce=self.reduce)


@pytest.fixture(scope="module")
def atoms():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=0)
    return atoms


def test_correct_model_passes(atoms):
    model = PairModel()
    data = to_graph(atoms, CUTOFF)
    assert_invariant(model, atoms, CUTOFF)
    assert_supercell_consistent(model, atoms, CUTOFF, extensive=True)
    assert_forces_match_finite_differences(model, data)
    assert_stress_matches_finite_differences(model, data)
    assert_smooth_at_cutoff(model, CUTOFF)


def test_broken_models_fail(atoms):
    data = to_graph(atoms, CUTOFF)
    with pytest.raises(AssertionError, match="forces differ"):
        assert_forces_match_finite_differences(PairModel(detach_pos=True), data)
    with pytest.raises(AssertionError, match="stress differs"):
        assert_stress_matches_finite_differences(PairModel(detach_cell=True), data)
    with pytest.raises(AssertionError, match="energy jumps"):
        assert_smooth_at_cutoff(PairModel(smooth=False), CUTOFF)
    with pytest.raises(AssertionError, match="supercell"):
        assert_supercell_consistent(PairModel(reduce="mean"), atoms, CUTOFF, extensive=True)
    with pytest.raises(AssertionError, match="translation"):
        assert_invariant(lambda g: g.pos.sum(0, keepdim=True), atoms, CUTOFF, invariances=["translation"])
    with pytest.raises(AssertionError, match="rotate"):
        assert_equivariant(lambda g: torch.ones_like(g.pos), atoms, CUTOFF)
    assert_equivariant(lambda g: g.pos - g.pos.mean(0), atoms, CUTOFF)  # centred positions do rotate
