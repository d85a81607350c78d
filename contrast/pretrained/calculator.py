"""ASE calculator around an energy model: energy, forces and stress, all from autograd.

Example::

    calc = ContrastCalculator(energy_model, cutoff=5.0)
    atoms.calc = calc
    BFGS(atoms).run(fmax=0.05)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import Tensor, nn
from torch_geometric.data import Batch

from contrast.graph.convert import structure_to_graph

__all__ = ["ContrastCalculator", "ForwardFn"]

ForwardFn = Callable[..., dict[str, Tensor]]


def _default_forward_fn() -> ForwardFn:
    # Imported on first use so the calculator only depends on the wrapper's interface.
    from contrast.nn.forces import energy_forces_stress

    return energy_forces_stress


class ContrastCalculator(Calculator):
    """ASE calculator for an energy model ``model(data, pos=None, cell=None) -> [B]`` energies.

    Forces are ``-dE/dpos`` and stress ``(1/V) dE/d(strain)`` (ASE's sign convention, eV/Å^3), both from
    autograd through ``forward_fn``. All properties are computed together and cached until the atoms change.

    Args:
        model: an ``EnergyModel`` (or any module with that call signature); moved to ``device``/``dtype`` and
            put in eval mode.
        cutoff: neighbour cutoff in Å; defaults to ``model.cutoff`` (or ``model.encoder.cutoff``).
        device: torch device for the model and graphs.
        dtype: float dtype of the model and graphs (float64 for tight force checks and long MD runs).
        forward_fn: ``forward_fn(model, data, compute_forces, compute_stress, training) -> dict`` returning
            ``energy`` [B], ``forces`` [N, 3], ``stress`` [B, 3, 3]; defaults to
            :func:`contrast.nn.forces.energy_forces_stress`.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: nn.Module,
        cutoff: float | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        forward_fn: ForwardFn | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.cutoff = float(cutoff if cutoff is not None else self._model_cutoff(model))
        self.forward_fn = forward_fn

    @staticmethod
    def _model_cutoff(model: nn.Module) -> float:
        for owner in (model, getattr(model, "encoder", None)):
            value = getattr(owner, "cutoff", None)
            if value is not None:
                return float(value)
        raise ValueError("cutoff not given and the model has no `cutoff` (nor `encoder.cutoff`) attribute")

    def graph(self, atoms: Atoms) -> Batch:
        """The one-graph batch of ``atoms`` on the calculator's device and dtype."""
        # Built in the calculator's dtype from the float64 atoms: float32 would cap force accuracy at ~1e-6.
        data = structure_to_graph(atoms, self.cutoff, require_neighbours=False, dtype=self.dtype)
        return Batch.from_data_list([data]).to(self.device)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Fill ``self.results`` with energy, free_energy, forces [N, 3] and stress (Voigt 6, eV/Å^3)."""
        super().calculate(atoms, properties, system_changes)
        forward_fn = self.forward_fn or _default_forward_fn()
        data = self.graph(self.atoms)
        out = forward_fn(self.model, data, compute_forces=True, compute_stress=True, training=False)
        energy = float(out["energy"].detach().sum().cpu())
        forces = out["forces"].detach().cpu().numpy().astype(np.float64)  # [N, 3]
        stress = out["stress"].detach().cpu().numpy().astype(np.float64).reshape(3, 3)  # [3, 3]
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": full_3x3_to_voigt_6_stress(stress),
        }
