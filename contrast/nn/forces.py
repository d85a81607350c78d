"""Forces and stress from an energy model, by reverse-mode autograd only.

Conventions (the same as ASE): ``forces = -dE/dpos`` and ``stress = (1/V) dE/d(strain)``, where a symmetric
strain ``eps`` deforms positions and cell alike, ``pos' = pos (I + eps)`` and ``cell' = cell (I + eps)``.
Positive stress means the crystal would lower its energy by shrinking (it is under tension).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from contrast.nn.geometry import graph_index

EnergyFn = Callable[..., Tensor]


@contextmanager
def constant_weights(model: EnergyFn) -> Iterator[None]:
    """Within the block, ``model``'s parameters do not require grad: autograd records only what depends on
    the inputs.

    Forces at inference need derivatives with respect to positions and strain only. With the weights as
    constants, no node is recorded for the weights' paths (such as the embeddings of the first layer) and
    custom backward passes skip the gradients that lead only to weights. The flags are restored on exit.
    Callables that are not modules are left alone. The flags belong to the module, so one module must not be
    trained in another thread meanwhile.
    """
    params = [p for p in model.parameters() if p.requires_grad] if isinstance(model, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def apply_strain(pos: Tensor, cell: Tensor, batch: Tensor, strain: Tensor) -> tuple[Tensor, Tensor]:
    """Deform positions [N, 3] and cells [B, 3, 3] by a per-graph strain [B, 3, 3] (symmetrised here).

    ``batch`` [N] is the graph of each atom. Returns ``(pos (I + eps), cell (I + eps))``.
    """
    sym = 0.5 * (strain + strain.transpose(1, 2))  # [B, 3, 3]
    deform = torch.eye(3, dtype=sym.dtype, device=sym.device) + sym  # [B, 3, 3]
    pos = torch.bmm(pos.unsqueeze(1), deform.index_select(0, batch)).squeeze(1)  # [N, 3]
    return pos, torch.bmm(cell, deform)


def energy_forces_stress(
    model: EnergyFn,
    data: Data,
    compute_forces: bool = True,
    compute_stress: bool = False,
    training: bool = False,
) -> dict[str, Tensor]:
    """Energies, forces and stress of a batch of crystals.

    Works under ``torch.no_grad`` (gradients are switched back on locally), not under ``inference_mode``.

    Args:
        model: callable ``model(data, pos=None, cell=None) -> [B]`` energies, e.g. an ``EnergyModel``.
        data: a ``Data`` or ``Batch`` following the graph contract.
        compute_forces: return ``forces`` [N, 3] = -dE/dpos.
        compute_stress: return ``stress`` [B, 3, 3] = (1/V) dE/d(strain), in energy/length^3 units.
        training: keep the graph of the derivatives (``create_graph``) so a force or stress loss trains the
            weights; otherwise all outputs are detached and the weights are treated as constants
            (:func:`constant_weights`).

    Returns:
        ``{"energy": [B], "forces": [N, 3], "stress": [B, 3, 3]}`` (the last two when requested).
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "forces need autograd: run outside torch.inference_mode (Trainer(inference_mode=False))"
        )
    with torch.enable_grad(), nullcontext() if training else constant_weights(model):
        inputs: list[Tensor] = []
        pos = cell = None
        if compute_forces:
            pos = data.pos if data.pos.requires_grad else data.pos.detach().requires_grad_(True)
            inputs.append(pos)
        if compute_stress:
            strain = torch.zeros_like(data.cell, requires_grad=True)  # [B, 3, 3]
            pos, cell = apply_strain(data.pos if pos is None else pos, data.cell, graph_index(data), strain)
            inputs.append(strain)
        energy = model(data, pos=pos, cell=cell)  # [B]
        out = {"energy": energy}
        if inputs:
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training)
            if compute_forces:
                out["forces"] = -grads[0]
            if compute_stress:
                volume = torch.linalg.det(data.cell).abs()  # [B]
                out["stress"] = grads[-1] / volume.view(-1, 1, 1)
    if not training:
        out = {key: value.detach() for key, value in out.items()}
    return out
