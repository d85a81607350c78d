"""Contrastive and redundancy-reduction losses (pure functions), their Hydra modules and diagnostics."""

from contrast.losses.contrastive import barlow_twins, info_nce, vicreg
from contrast.losses.distributed import gather_rows, gather_with_grad, is_distributed
from contrast.losses.metrics import alignment, embedding_std, positive_negative_similarity, uniformity
from contrast.losses.modules import BarlowTwinsLoss, InfoNCELoss, VICRegLoss

__all__ = [
    "BarlowTwinsLoss",
    "InfoNCELoss",
    "VICRegLoss",
    "alignment",
    "barlow_twins",
    "embedding_std",
    "gather_rows",
    "gather_with_grad",
    "info_nce",
    "is_distributed",
    "positive_negative_similarity",
    "uniformity",
    "vicreg",
]
