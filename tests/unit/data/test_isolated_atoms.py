"""Atoms without a neighbour within the cutoff (bcc Cs at 5 Å, mp-1) are legal: kept, counted and reported."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.io import write
from torch_geometric.data import Batch

import contrast
from contrast.data.datamodule import CrystalDataModule
from contrast.graph.convert import StructureError
from contrast.nn.cgcnn import CGCNN
from contrast.nn.forces import energy_forces_stress
from contrast.nn.heads import EnergyHead, EnergyModel
from contrast.nn.painn import PaiNN
from contrast.nn.schnet import SchNet

CUTOFF = 5.0


def caesium() -> Atoms:
    """bcc Cs (2 atoms): nearest neighbours at 5.32 Å, beyond the cutoff."""
    atoms = bulk("Cs", "bcc", a=6.14, cubic=True)
    atoms.info["id"] = "cs"
    return atoms


def copper() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.info["id"] = "cu"
    return atoms


def lone_atom() -> Atoms:
    """One atom in a 40 Å cubic cell: no neighbour at all, not even its own images."""
    atoms = Atoms("Cs", positions=[[1.0, 2.0, 3.0]], cell=np.eye(3) * 40.0, pbc=True)
    atoms.info["id"] = "lone"
    return atoms


def test_an_isolated_atom_is_a_node_without_edges():
    graph = contrast.structure_to_graph(caesium(), cutoff=CUTOFF)
    assert graph.num_nodes == 2 and graph.edge_index.shape == (2, 0) and graph.cell_shift.shape == (0, 3)
    with pytest.raises(StructureError, match="no neighbour within the cutoff"):
        contrast.structure_to_graph(caesium(), cutoff=CUTOFF, require_neighbours=True)


def test_load_dataset_keeps_counts_and_reports_them(tmp_path, caplog):
    path = tmp_path / "cs.extxyz"
    write(path, [copper(), caesium(), lone_atom()], format="extxyz")
    cache, run = tmp_path / "cache", tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        ds = contrast.load_dataset(str(path), cutoff=CUTOFF, cache_dir=cache, report_dir=run)
    assert ds.ids == ["cu", "cs", "lone"]
    assert [(r["id"], r["index"], r["isolated_atoms"]) for r in ds.isolated] == [("cs", 1, 2), ("lone", 2, 1)]
    assert ds[1].edge_index.shape == (2, 0) and ds[0].edge_index.shape[1] > 0
    assert "2 of 3 structures" in caplog.text and "cs, lone" in caplog.text
    assert ds.report()["with_isolated_atoms"] == 2
    assert json.loads((run / "data_report.json").read_text())["with_isolated_atoms"] == 2
    assert json.loads(open(ds.report_path).read())["isolated"][0]["id"] == "cs"

    caplog.clear()
    with caplog.at_level(logging.WARNING):  # a cached load reports them again
        again = contrast.load_dataset(str(path), cutoff=CUTOFF, cache_dir=cache)
    assert (
        again.cache_path == ds.cache_path and len(again.isolated) == 2 and "2 of 3 structures" in caplog.text
    )

    # the option is part of the cache key: the strict reading is not served from the lenient cache
    with pytest.raises(StructureError, match=r"cs\.extxyz, entry 1 \(cs\): atom 0 has no neighbour"):
        contrast.load_dataset(str(path), cutoff=CUTOFF, cache_dir=cache, require_neighbours=True)
    strict = contrast.load_dataset(
        str(path), cutoff=CUTOFF, cache_dir=cache, on_error="skip", require_neighbours=True
    )
    assert strict.ids == ["cu"] and strict.cache_path != ds.cache_path and not strict.isolated


def test_datamodule_option(tmp_path):
    structures = [copper(), caesium(), lone_atom()]
    module = CrystalDataModule(structures, cutoff=CUTOFF, output_dir=str(tmp_path))
    module.setup()
    assert len(module.dataset) == 3
    assert json.loads((tmp_path / "data_report.json").read_text())["with_isolated_atoms"] == 2
    strict = CrystalDataModule(structures, cutoff=CUTOFF, on_error="skip", require_neighbours=True)
    strict.setup()
    assert strict.dataset.ids == ["cu"]


@pytest.mark.parametrize("encoder_class", [CGCNN, SchNet, PaiNN], ids=lambda c: c.__name__)
def test_encoders_give_an_isolated_atom_its_own_finite_embedding(encoder_class):
    torch.manual_seed(0)
    encoder = encoder_class(hidden_dim=16, num_layers=2, cutoff=CUTOFF, num_rbf=8, max_z=60).double().eval()
    model = EnergyModel(encoder, EnergyHead(encoder.hidden_dim, hidden_dim=16, max_z=60).double()).eval()
    graphs = [contrast.structure_to_graph(s, CUTOFF, dtype=torch.float64) for s in (lone_atom(), caesium())]
    graphs.append(contrast.structure_to_graph(copper(), CUTOFF, dtype=torch.float64))
    batch = Batch.from_data_list(graphs)
    embeddings = encoder.embed(batch)  # [3, D]
    assert torch.isfinite(embeddings).all()
    # two isolated Cs atoms per cell: the same mean embedding as one, twice the energy
    torch.testing.assert_close(embeddings[0], embeddings[1])
    out = energy_forces_stress(model, batch, compute_stress=True)
    assert all(torch.isfinite(value).all() for value in out.values())
    torch.testing.assert_close(out["energy"][1], 2 * out["energy"][0])
    assert torch.equal(out["forces"][:3], torch.zeros(3, 3, dtype=torch.float64))
