"""The bundled energy/forces/stress dataset: seeded FCC metals and alloys labelled with ASE's EMT calculator.

EMT (effective medium theory; Jacobsen, Stoltze & Nørskov 1996) is a cheap many-body potential for the late
FCC metals, so labels are generated on the fly and nothing is downloaded. Each structure is an FCC supercell
(4 to 32 atoms) of one element or a random binary alloy, with a random strain, a random rattle and sometimes
a vacancy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT, parameters
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, reference_states

__all__ = ["EMT_ELEMENTS", "emt_structures", "emt_structure"]

EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
# Cubic-cell repeats (4 atoms each) and primitive-cell repeats (1 atom each), all <= 32 atoms.
CUBIC_REPEATS = ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2))
PRIMITIVE_REPEATS = ((2, 2, 2), (3, 2, 2), (3, 3, 3))
MAX_STRAIN = 0.04  # largest strain component (symmetric, so shear and volume both vary)
MAX_RATTLE = 0.12  # Å, largest standard deviation of the random displacements
VACANCY_PROBABILITY = 0.25
ALLOY_PROBABILITY = 0.5


def _check_elements(elements: Sequence[str]) -> list[str]:
    elements = list(elements)
    if not elements:
        raise ValueError("emt_structures: no elements given")
    unknown = [e for e in elements if e not in parameters or reference_states[atomic_numbers[e]] is None]
    if unknown:
        raise ValueError(f"emt_structures: EMT has no parameters for {unknown}; choose from {EMT_ELEMENTS}")
    fcc = [e for e in elements if reference_states[atomic_numbers[e]].get("symmetry") == "fcc"]
    if len(fcc) != len(elements):
        raise ValueError(f"emt_structures: not FCC metals: {sorted(set(elements) - set(fcc))}")
    return elements


def emt_structure(rng: np.random.Generator, elements: Sequence[str]) -> Atoms:
    """One random labelled structure drawn with ``rng`` from ``elements`` (see :func:`emt_structures`)."""
    pair = rng.choice(len(elements), size=2, replace=len(elements) < 2)
    host, guest = elements[pair[0]], elements[pair[1]]
    alloy = host != guest and rng.random() < ALLOY_PROBABILITY
    fraction = rng.uniform(0.1, 0.5) if alloy else 0.0
    # Vegard's law keeps alloys near their equilibrium volume.
    a_host = reference_states[atomic_numbers[host]]["a"]
    a_guest = reference_states[atomic_numbers[guest]]["a"]
    a = (1 - fraction) * a_host + fraction * a_guest
    if rng.random() < 0.5:
        atoms = bulk(host, "fcc", a=a, cubic=True) * CUBIC_REPEATS[rng.integers(len(CUBIC_REPEATS))]
    else:
        atoms = bulk(host, "fcc", a=a) * PRIMITIVE_REPEATS[rng.integers(len(PRIMITIVE_REPEATS))]
    if alloy:
        swap = rng.random(len(atoms)) < fraction
        atoms.numbers[swap] = atomic_numbers[guest]
    if len(atoms) > 4 and rng.random() < VACANCY_PROBABILITY:
        del atoms[int(rng.integers(len(atoms)))]
    strain = rng.uniform(-MAX_STRAIN, MAX_STRAIN, size=(3, 3))
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
    atoms.positions += rng.normal(scale=rng.uniform(0.0, MAX_RATTLE), size=atoms.positions.shape)
    atoms.wrap()
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def emt_structures(
    num_structures: int = 200, seed: int = 0, elements: Sequence[str] = EMT_ELEMENTS
) -> list[Atoms]:
    """Seeded EMT-labelled FCC structures: pure metals and binary alloys, strained, rattled, some vacancies.

    Structure ``k`` depends only on ``(seed, k)``, so a longer list starts with the shorter one.

    Args:
        num_structures: how many structures.
        seed: random seed; the same seed gives the same structures and labels.
        elements: FCC metals EMT knows (a subset of Al, Cu, Ag, Au, Ni, Pd, Pt).

    Returns:
        ``ase.Atoms`` with 3 to 32 atoms, each carrying a ``SinglePointCalculator`` with ``energy`` (eV),
        ``forces`` [N, 3] (eV/Å) and ``stress`` [3, 3] (eV/Å^3, ASE sign); ``info["id"]`` is
        ``"emt-<seed>-<k>"``.
    """
    if num_structures < 0:
        raise ValueError(f"emt_structures: num_structures must be >= 0, got {num_structures}")
    elements = _check_elements(elements)
    structures = []
    for k in range(num_structures):
        atoms = emt_structure(np.random.default_rng([seed, k]), elements)
        atoms.info["id"] = f"emt-{seed}-{k:05d}"
        structures.append(atoms)
    return structures
