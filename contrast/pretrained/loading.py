"""Pretrained models in notebooks and scripts: ``load_encoder``, ``embed`` and ``load_calculator``.

Checkpoints are read as data only (``weights_only``) and only classes inside ``contrast.nn`` can be built from
their hyper-parameters, so loading a checkpoint never executes code from it. No YAML or ``conf/`` is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrast.nn.base import CrystalEncoder
from contrast.pretrained.checkpoint import ENCODER_PREFIXES, load_module, read_checkpoint

__all__ = [
    "load_encoder",
    "embed",
    "load_calculator",
    "load_energy_model",
    "pretrained_models",
    "checkpoint_path",
    "check_graph_cutoff",
]

MODELS_DIR = Path(__file__).resolve().parent / "models"


def pretrained_models() -> dict[str, dict]:
    """``{name: card}`` of the encoders shipped in the package (offline; ``load_encoder(name)`` loads one).

    A card states the pretraining data, the exact recipe command, the code version and the evaluation suite's
    table with its baselines.
    """
    cards = {}
    for card_file in sorted(MODELS_DIR.glob("*.json")):
        if card_file.with_suffix(".pt").is_file():
            cards[card_file.stem] = json.loads(card_file.read_text())
    return cards


def checkpoint_path(name_or_path: str | Path) -> Path:
    """The file of a checkpoint path or of a shipped encoder's name.

    Raises:
        FileNotFoundError: neither an existing file nor a shipped name (the shipped names are listed).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = MODELS_DIR / f"{name_or_path}.pt"
    if "/" not in str(name_or_path) and shipped.is_file():
        return shipped
    names = sorted(pretrained_models())
    raise FileNotFoundError(
        f"{name_or_path}: no such checkpoint file, and no shipped encoder of that name {names}"
    )


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> CrystalEncoder:
    """The encoder of a ``contrast`` checkpoint (contrastive, probe or energy) or a shipped one, in eval mode.

    Args:
        path: a ``.ckpt`` file written by ``python -m contrast.train``, the name of a shipped encoder
            (:func:`pretrained_models`), or of a foundation model whose package is installed (``chgnet``,
            :mod:`contrast.pretrained.foundation`).
        device: where to put it (CPU by default).

    Raises:
        FileNotFoundError: neither a file nor a shipped name.
        CheckpointError: the file is not a checkpoint, or would execute code when unpickled.
        ImportError: a foundation model whose package is not installed (the extra to install is named).
    """
    from contrast.pretrained.foundation import FOUNDATION_MODELS, foundation_encoder

    if str(path) in FOUNDATION_MODELS and not Path(path).is_file():
        return foundation_encoder(str(path)).to(device)
    path = checkpoint_path(path)
    checkpoint = read_checkpoint(path)
    return load_module(checkpoint, "encoder", ENCODER_PREFIXES, source=path).to(device).eval()


def load_energy_model(path: str | Path, device: str | torch.device = "cpu"):
    """The :class:`contrast.nn.heads.EnergyModel` (encoder + energy head) of an energy-task checkpoint."""
    from contrast.pretrained.checkpoint import energy_model_from_checkpoint

    return energy_model_from_checkpoint(read_checkpoint(path), source=path).to(device).eval()


def load_calculator(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    tune_allocator: bool = True,
):
    """An ASE calculator (energy, forces, stress) from an energy-task checkpoint.

    Runs in float64 by default: molecular dynamics and finite-difference checks need the precision. With
    ``tune_allocator``, the process keeps freed tensor memory for the next step
    (:func:`contrast.nn.runtime.tune_cpu_allocator`), which saves page faults in CPU force evaluations.
    """
    from contrast.nn.runtime import tune_cpu_allocator
    from contrast.pretrained.calculator import ContrastCalculator

    if tune_allocator:
        tune_cpu_allocator()

    model = load_energy_model(path, device=device).to(dtype)
    return ContrastCalculator(model, cutoff=model.cutoff, device=device, dtype=dtype)


def _graphs(structures, cutoff: float, dtype: torch.dtype) -> Sequence:
    """Graphs from a dataset (used as is when its cutoff matches), a list of graphs built at ``cutoff``, or
    pymatgen / ASE structures (built here in ``dtype``, at full precision)."""
    from torch_geometric.data import Data

    from contrast.graph.convert import StructureError, structure_to_graph

    if isinstance(structures, list) and structures and isinstance(structures[0], Data):
        check_graph_cutoff(structures, cutoff)
        return structures
    dataset_cutoff = getattr(structures, "cutoff", None)
    if dataset_cutoff is not None:
        if abs(float(dataset_cutoff) - cutoff) > 1e-9:
            raise ValueError(
                f"the dataset was built at cutoff {dataset_cutoff} Å but the encoder uses {cutoff} Å"
            )
        return structures
    graphs = []
    for position, structure in enumerate(structures):
        try:
            graphs.append(structure_to_graph(structure, cutoff, require_neighbours=False, dtype=dtype))
        except StructureError as error:
            raise StructureError(f"structure {position} of those given: {error.reason}") from None
    return graphs


def is_one_structure(item: Any) -> bool:
    """Whether ``item`` is one crystal (a pymatgen ``Structure``, an ``ase.Atoms``, a graph), not a
    collection of them: both pymatgen and ASE structures are iterable, over their sites and atoms."""
    from torch_geometric.data import Data

    is_atoms = hasattr(item, "get_atomic_numbers") and hasattr(item, "get_cell")
    is_structure = hasattr(item, "lattice") and hasattr(item, "sites")
    return is_atoms or is_structure or isinstance(item, Data)


def check_graph_cutoff(graphs: Sequence, cutoff: float) -> None:
    """Check that prebuilt graphs hold exactly the edges of ``cutoff`` (an independent neighbour search on up
    to 16 graphs spread over the list).

    Raises:
        ValueError: naming the first graph whose edges belong to another cutoff.
    """
    from contrast.graph.convert import CrystalArrays, graph_edges

    # Graphs of one list are built alike: a spread of up to 16 of them shows a wrong cutoff at a small cost.
    for index in sorted(set(np.linspace(0, len(graphs) - 1, min(len(graphs), 16)).round().astype(int))):
        graph = graphs[int(index)]
        crystal = CrystalArrays(
            z=graph.z.detach().cpu().numpy().astype("int64"),
            pos=graph.pos.detach().cpu().double().numpy(),
            cell=graph.cell.detach().cpu().double().reshape(3, 3).numpy(),
        )
        expected, _ = graph_edges(crystal, cutoff, require_neighbours=False)
        if expected.shape[1] != graph.edge_index.shape[1]:
            raise ValueError(
                f"graph {index} has {graph.edge_index.shape[1]} edges, but {expected.shape[1]} at the "
                f"encoder's cutoff of {cutoff} Å: it was built at another cutoff (rebuild it with "
                f"contrast.structure_to_graph(structure, cutoff={cutoff}))"
            )


@torch.no_grad()
def embed(
    encoder: CrystalEncoder,
    structures: Iterable,
    batch_size: int = 64,
    progress: bool | None = None,
) -> Tensor:
    """Graph embeddings [B, D] of pymatgen Structures, ASE Atoms or a ``contrast`` dataset, read out as the
    encoder pools them (``encoder.pooling``; the shipped encoders: mean, std and max of every layer).

    Args:
        encoder: from :func:`load_encoder` (or any :class:`CrystalEncoder`).
        structures: the crystals, in order, or one crystal (then B = 1).
        batch_size: graphs per forward pass.
        progress: show a progress bar (default: when there are more than 1,000 structures).

    Raises:
        StructureError: a structure that cannot become a graph, named by its position among those given.
    """
    from torch_geometric.loader import DataLoader
    from tqdm.auto import tqdm

    parameter = next(encoder.parameters())
    if is_one_structure(structures):
        structures = [structures]
    items = structures if hasattr(structures, "__len__") else list(structures)
    graphs = _graphs(items, encoder.cutoff, parameter.dtype)
    loader = DataLoader(graphs, batch_size=batch_size, shuffle=False)
    show = len(graphs) > 1000 if progress is None else progress
    rows = []
    was_training = encoder.training
    encoder.eval()
    for batch in tqdm(loader, desc="embed", disable=not show):
        batch = batch.to(parameter.device)
        if batch.pos.dtype != parameter.dtype:  # a dataset's graphs are stored in the default dtype
            batch.pos, batch.cell = batch.pos.to(parameter.dtype), batch.cell.to(parameter.dtype)
            batch.cell_shift = batch.cell_shift.to(parameter.dtype)
        rows.append(encoder.embed(batch).cpu())  # [b, D]
    encoder.train(was_training)
    return torch.cat(rows) if rows else torch.empty(0, encoder.embedding_dim)
