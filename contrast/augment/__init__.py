"""Augmentations of crystal graphs (one per module), their composition and the two-view pipelines.

Every augmentation is called as ``transform(data, generator) -> Data``: it copies its input, draws all its
randomness from the explicit ``torch.Generator`` and has a deterministic ``repr``.
"""

from contrast.augment.atom_mask import AtomMask
from contrast.augment.compose import Compose
from contrast.augment.edge_drop import EdgeDrop
from contrast.augment.origin_shift import OriginShift
from contrast.augment.position_noise import PositionNoise
from contrast.augment.rotation import RandomRotation, random_rotation
from contrast.augment.site_removal import SiteRemoval
from contrast.augment.strain import LatticeStrain
from contrast.augment.substitution import SpeciesSubstitution, similar_elements
from contrast.augment.supercell import RandomSupercell
from contrast.augment.views import TwoViews, ViewDataset, ViewPipeline, rebuild_graph, view_seed

__all__ = [
    "AtomMask",
    "Compose",
    "EdgeDrop",
    "LatticeStrain",
    "OriginShift",
    "PositionNoise",
    "RandomRotation",
    "RandomSupercell",
    "SiteRemoval",
    "SpeciesSubstitution",
    "TwoViews",
    "ViewDataset",
    "ViewPipeline",
    "random_rotation",
    "rebuild_graph",
    "similar_elements",
    "view_seed",
]
