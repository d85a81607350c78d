"""Logging diagnostics against loop references; the Hydra loss modules outside a process group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from contrast import CONFIG_DIR
from contrast.losses import (
    BarlowTwinsLoss,
    InfoNCELoss,
    VICRegLoss,
    alignment,
    barlow_twins,
    embedding_std,
    gather_with_grad,
    info_nce,
    positive_negative_similarity,
    uniformity,
    vicreg,
)

CONF = CONFIG_DIR / "loss"


@pytest.fixture(scope="session")
def pair():
    g = torch.Generator().manual_seed(1)
    z_a = torch.randn(5, 4, generator=g, dtype=torch.float64)
    return z_a, z_a + 0.3 * torch.randn(5, 4, generator=g, dtype=torch.float64)


def unit(rows) -> list[np.ndarray]:
    return [r / np.linalg.norm(r) for r in rows.numpy()]


def test_alignment_and_uniformity_match_loops(pair):
    z_a, z_b = pair
    a, b = unit(z_a), unit(z_b)
    expected = np.mean([np.linalg.norm(x - y) ** 2 for x, y in zip(a, b)])
    assert float(alignment(z_a, z_b)) == pytest.approx(expected, rel=1e-12)
    pairs = [math.exp(-2 * np.linalg.norm(a[i] - a[j]) ** 2) for i in range(5) for j in range(i + 1, 5)]
    assert float(uniformity(z_a)) == pytest.approx(math.log(np.mean(pairs)), rel=1e-12)
    assert float(alignment(z_a, 2 * z_a)) == pytest.approx(0.0, abs=1e-14)
    collapsed = torch.ones(5, 4, dtype=torch.float64)
    assert float(uniformity(collapsed)) == pytest.approx(0.0, abs=1e-14)


def test_positive_negative_similarity_matches_loops(pair):
    z_a, z_b = pair
    a, b = unit(z_a), unit(z_b)
    positive, negative = positive_negative_similarity(z_a, z_b)
    assert float(positive) == pytest.approx(np.mean([a[k] @ b[k] for k in range(5)]), rel=1e-12)
    cross = [a[k] @ b[m] for k in range(5) for m in range(5) if k != m]
    assert float(negative) == pytest.approx(np.mean(cross), rel=1e-12)


def test_embedding_std_detects_collapse(pair):
    z_a, _ = pair
    expected = np.mean(np.std(np.stack(unit(z_a)), axis=0, ddof=1))
    assert float(embedding_std(z_a)) == pytest.approx(expected, rel=1e-12)
    collapsed = torch.randn(1, 4, dtype=torch.float64).expand(6, 4) * torch.rand(6, 1, dtype=torch.float64)
    assert float(embedding_std(collapsed)) == pytest.approx(0.0, abs=1e-12)


def test_gather_is_a_no_op_without_a_process_group(pair):
    z_a, _ = pair
    assert gather_with_grad(z_a) is z_a


def test_modules_equal_the_pure_functions(pair):
    z_a, z_b = pair
    torch.testing.assert_close(InfoNCELoss(temperature=0.2)(z_a, z_b), info_nce(z_a, z_b, 0.2))
    torch.testing.assert_close(BarlowTwinsLoss(lambd=0.01)(z_a, z_b), barlow_twins(z_a, z_b, 0.01))
    torch.testing.assert_close(VICRegLoss(1.0, 2.0, 3.0)(z_a, z_b), vicreg(z_a, z_b, 1.0, 2.0, 3.0))


def test_temperature_is_fixed_or_learnt(pair):
    z_a, z_b = pair
    fixed = InfoNCELoss(temperature=0.2)
    assert list(fixed.parameters()) == [] and fixed.state_dict() == {}
    assert float(fixed.temperature) == pytest.approx(0.2)
    learnt = InfoNCELoss(temperature=0.2, learnable_temperature=True).double()
    (parameter,) = learnt.parameters()
    learnt(z_a.clone().requires_grad_(), z_b).backward()
    assert parameter.grad is not None and parameter.grad.abs() > 0
    assert learnt.temperature.item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="positive"):
        InfoNCELoss(temperature=0.0)


def test_infonce_module_passes_ids_to_the_pure_function(pair):
    z_a, z_b = pair
    z_a, z_b = torch.cat([z_a, z_a[:1]]), torch.cat([z_b, z_b[:1]])  # row 5 repeats crystal 0
    ids = torch.tensor([[3], [1], [4], [0], [2], [3]])  # [B, 1], as a batch's idx field
    expected = info_nce(z_a, z_b, 0.2, ids=ids.view(-1))
    torch.testing.assert_close(InfoNCELoss(temperature=0.2)(z_a, z_b, ids=ids), expected, rtol=0, atol=0)
    assert not torch.equal(expected, info_nce(z_a, z_b, 0.2))
    assert InfoNCELoss.uses_ids
    assert not getattr(BarlowTwinsLoss, "uses_ids", False) and not getattr(VICRegLoss, "uses_ids", False)


@pytest.mark.parametrize(("log_t", "expected"), [(math.log(100.0), 1.0), (math.log(1e-5), 0.01)])
def test_learnt_temperature_is_clamped_to_its_bounds(pair, log_t, expected):
    z_a, z_b = pair
    loss = InfoNCELoss(temperature=0.2, learnable_temperature=True).double()
    with torch.no_grad():
        loss.log_temperature.fill_(log_t)
    assert loss.temperature.item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(loss(z_a, z_b), info_nce(z_a, z_b, expected), rtol=1e-12, atol=0)
    narrow = InfoNCELoss(0.2, learnable_temperature=True, min_temperature=0.05, max_temperature=0.5).double()
    with torch.no_grad():
        narrow.log_temperature.fill_(log_t)
    assert narrow.temperature.item() == pytest.approx(0.5 if expected == 1.0 else 0.05, rel=1e-12)


def _temperature_grad(loss: InfoNCELoss, log_t: float, sign: float) -> float:
    """d(sign * T)/d log_t, i.e. the gradient reaching log_t when the loss wants T lower (sign > 0)."""
    loss.zero_grad()
    with torch.no_grad():
        loss.log_temperature.fill_(log_t)
    (sign * loss.temperature).backward()
    return float(loss.log_temperature.grad)


def test_learnt_temperature_gradient_at_the_bounds_only_points_back_inside():
    loss = InfoNCELoss(temperature=0.2, learnable_temperature=True).double()
    # Inside: the gradient of exp.
    assert _temperature_grad(loss, math.log(0.2), 1.0) == pytest.approx(0.2, rel=1e-12)
    assert _temperature_grad(loss, math.log(0.2), -1.0) == pytest.approx(-0.2, rel=1e-12)
    # Beyond the upper bound a descent step may lower T (gradient kept) but not raise it (gradient dropped).
    assert _temperature_grad(loss, math.log(100.0), 1.0) == pytest.approx(1.0, rel=1e-12)
    assert _temperature_grad(loss, math.log(100.0), -1.0) == 0.0
    # Beyond the lower bound: raising T passes, lowering it does not.
    assert _temperature_grad(loss, math.log(1e-5), -1.0) == pytest.approx(-0.01, rel=1e-12)
    assert _temperature_grad(loss, math.log(1e-5), 1.0) == 0.0


def test_pinned_temperature_comes_back_inside_under_sgd(pair):
    # Aligned views: a lower temperature lowers the loss, so from far above the bound T must come down.
    z_a, _ = pair
    loss = InfoNCELoss(temperature=0.5, learnable_temperature=True).double()
    with torch.no_grad():
        loss.log_temperature.fill_(math.log(10.0))
    optimiser = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(100):
        optimiser.zero_grad()
        loss(z_a, z_a.clone()).backward()
        optimiser.step()
    assert loss.temperature.item() < 1.0


def test_temperature_bounds_are_checked():
    with pytest.raises(ValueError, match="min_temperature"):
        InfoNCELoss(min_temperature=0.0)
    with pytest.raises(ValueError, match="min_temperature"):
        InfoNCELoss(min_temperature=0.5, max_temperature=0.1)
    with pytest.raises(ValueError, match="outside"):
        InfoNCELoss(temperature=2.0, learnable_temperature=True)
    assert InfoNCELoss(temperature=2.0).temperature.item() == pytest.approx(2.0)  # a fixed one is not bounded


@pytest.mark.parametrize(
    ("name", "cls"), [("infonce", InfoNCELoss), ("barlow", BarlowTwinsLoss), ("vicreg", VICRegLoss)]
)
def test_configs_instantiate(name, cls, pair):
    loss = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert isinstance(loss, cls)
    assert torch.isfinite(loss(*pair))
