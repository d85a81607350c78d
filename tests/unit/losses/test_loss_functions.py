"""Pure losses against independent, loop-based references in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contrast.losses import barlow_twins, info_nce, vicreg


@pytest.fixture(scope="session")
def pair():
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(6, 5, generator=g, dtype=torch.float64)
    z_b = z_a + 0.5 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    return z_a, z_b


def nt_xent_reference(z_a: np.ndarray, z_b: np.ndarray, temperature: float) -> float:
    """SimCLR's NT-Xent written out sample by sample."""
    samples = [v / np.linalg.norm(v) for v in list(z_a) + list(z_b)]
    batch = len(z_a)
    total = 0.0
    for k, anchor in enumerate(samples):
        positive = (k + batch) % (2 * batch)
        numerator = math.exp(float(anchor @ samples[positive]) / temperature)
        denominator = sum(
            math.exp(float(anchor @ other) / temperature) for m, other in enumerate(samples) if m != k
        )
        total += -math.log(numerator / denominator)
    return total / (2 * batch)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_info_nce_matches_the_written_out_reference(pair, temperature):
    z_a, z_b = pair
    expected = nt_xent_reference(z_a.numpy(), z_b.numpy(), temperature)
    assert float(info_nce(z_a, z_b, temperature)) == pytest.approx(expected, rel=1e-12)


def test_info_nce_closed_form_for_orthogonal_aligned_views():
    z = torch.eye(4, dtype=torch.float64) * 3.0  # every crystal orthogonal to the others, views identical
    t = 0.2
    # Positive similarity 1, the 2B - 2 = 6 negatives 0.
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 6))
    assert float(info_nce(z, z.clone(), t)) == pytest.approx(expected, rel=1e-12)


def test_info_nce_is_symmetric_and_scale_invariant(pair):
    z_a, z_b = pair
    torch.testing.assert_close(info_nce(z_a, z_b), info_nce(z_b, z_a))
    torch.testing.assert_close(info_nce(3 * z_a, 0.5 * z_b), info_nce(z_a, z_b))


def test_info_nce_tensor_temperature_gets_a_gradient(pair):
    z_a, z_b = pair
    log_t = torch.tensor(math.log(0.3), dtype=torch.float64, requires_grad=True)
    loss = info_nce(z_a, z_b, log_t.exp())
    loss.backward()
    assert loss.item() == pytest.approx(nt_xent_reference(z_a.numpy(), z_b.numpy(), 0.3), rel=1e-12)
    # d loss / d log T by central differences.
    h = 1e-6
    up = nt_xent_reference(z_a.numpy(), z_b.numpy(), math.exp(math.log(0.3) + h))
    down = nt_xent_reference(z_a.numpy(), z_b.numpy(), math.exp(math.log(0.3) - h))
    assert float(log_t.grad) == pytest.approx((up - down) / (2 * h), rel=1e-5)


def nt_xent_with_ids_reference(z_a: np.ndarray, z_b: np.ndarray, temperature: float, ids: list[int]) -> float:
    """NT-Xent sample by sample, where another row holding the same crystal id is no negative."""
    samples = [v / np.linalg.norm(v) for v in list(z_a) + list(z_b)]
    batch = len(z_a)
    total = 0.0
    for k, anchor in enumerate(samples):
        positive = (k + batch) % (2 * batch)
        terms = []
        for m, other in enumerate(samples):
            if m == k:
                continue
            if m != positive and m % batch != k % batch and ids[m % batch] == ids[k % batch]:
                continue  # a view of a copy of the anchor's crystal
            terms.append(math.exp(float(anchor @ other) / temperature))
        total += -math.log(math.exp(float(anchor @ samples[positive]) / temperature) / sum(terms))
    return total / (2 * batch)


@pytest.fixture(scope="session")
def padded_pair():
    """Six crystals padded to eight rows as a distributed sampler does: rows 6 and 7 repeat crystals 1 and 4.

    Row 6 has views of its own (as a copy drawn with other randomness); row 7 repeats row 4 exactly (views
    are seeded by the dataset index, so a padded copy usually has identical views).
    """
    g = torch.Generator().manual_seed(3)
    z_a = torch.randn(8, 5, generator=g, dtype=torch.float64)
    z_b = z_a + 0.5 * torch.randn(8, 5, generator=g, dtype=torch.float64)
    z_a[7], z_b[7] = z_a[4], z_b[4]
    return z_a, z_b, torch.tensor([10, 11, 12, 13, 14, 15, 11, 14])


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_info_nce_keeps_copies_of_a_crystal_out_of_each_others_negatives(padded_pair, temperature):
    z_a, z_b, ids = padded_pair
    expected = nt_xent_with_ids_reference(z_a.numpy(), z_b.numpy(), temperature, ids.tolist())
    assert float(info_nce(z_a, z_b, temperature, ids=ids)) == pytest.approx(expected, rel=1e-12)
    # Without ids the copies are false negatives, and the loss differs.
    unmasked = nt_xent_reference(z_a.numpy(), z_b.numpy(), temperature)
    assert float(info_nce(z_a, z_b, temperature)) == pytest.approx(unmasked, rel=1e-12)
    assert abs(expected - unmasked) > 1e-3


def test_info_nce_with_distinct_ids_is_exactly_the_plain_loss(pair):
    z_a, z_b = pair
    ids = torch.tensor([5, 3, 8, 0, 1, 2])
    assert torch.equal(info_nce(z_a, z_b, 0.3, ids=ids), info_nce(z_a, z_b, 0.3))
    t = torch.tensor(0.3, dtype=torch.float64)
    assert torch.equal(info_nce(z_a, z_b, t, ids=ids.int()), info_nce(z_a, z_b, t))


def test_info_nce_with_ids_passes_gradcheck():
    g = torch.Generator().manual_seed(5)
    z_a = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z_b = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    temperature = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([7, 2, 7, 2])
    assert torch.autograd.gradcheck(lambda a, b, t: info_nce(a, b, t, ids=ids), (z_a, z_b, temperature))


def test_info_nce_refuses_bad_ids(pair):
    z_a, z_b = pair
    for ids in (
        torch.arange(5),
        torch.arange(6).view(2, 3),
        torch.arange(6.0),
        torch.ones(6, dtype=torch.bool),
    ):
        with pytest.raises(ValueError, match="ids"):
            info_nce(z_a, z_b, ids=ids)


def test_losses_refuse_mismatched_shapes(pair):
    z_a, _ = pair
    for loss in (info_nce, barlow_twins, vicreg):
        with pytest.raises(ValueError, match="equal shape"):
            loss(z_a, z_a[:, :3])


def barlow_reference(z_a: np.ndarray, z_b: np.ndarray, lambd: float) -> float:
    batch, dim = z_a.shape
    norm = [(z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) for z in (z_a, z_b)]
    total = 0.0
    for i in range(dim):
        for j in range(dim):
            c = sum(norm[0][b, i] * norm[1][b, j] for b in range(batch)) / batch
            total += (1 - c) ** 2 if i == j else lambd * c**2
    return total


def test_barlow_twins_matches_reference(pair):
    z_a, z_b = pair
    expected = barlow_reference(z_a.numpy(), z_b.numpy(), 5e-3)
    assert float(barlow_twins(z_a, z_b, 5e-3)) == pytest.approx(expected, rel=1e-10)


def test_barlow_twins_vanishes_for_identical_decorrelated_views():
    # Columns of a scaled Hadamard-like design: zero mean, unit variance, uncorrelated.
    z = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    assert float(barlow_twins(z, z.clone())) == pytest.approx(0.0, abs=1e-4)


def vicreg_reference(z_a: np.ndarray, z_b: np.ndarray, weights=(25.0, 25.0, 1.0)) -> float:
    batch, dim = z_a.shape
    sim = np.mean((z_a - z_b) ** 2)
    var = cov = 0.0
    for z in (z_a, z_b):
        std = np.sqrt(np.var(z, axis=0, ddof=1) + 1e-4)
        var += np.mean(np.maximum(0.0, 1 - std)) / 2
        c = np.cov(z, rowvar=False)
        cov += (np.sum(c**2) - np.sum(np.diag(c) ** 2)) / dim
    return weights[0] * sim + weights[1] * var + weights[2] * cov


@pytest.mark.parametrize("scale", [0.3, 2.0])  # below and above the variance hinge
def test_vicreg_matches_reference(pair, scale):
    z_a, z_b = pair[0] * scale, pair[1] * scale
    expected = vicreg_reference(z_a.numpy(), z_b.numpy())
    assert float(vicreg(z_a, z_b)) == pytest.approx(expected, rel=1e-10)
    expected = vicreg_reference(z_a.numpy(), z_b.numpy(), (1.0, 2.0, 3.0))
    assert float(vicreg(z_a, z_b, 1.0, 2.0, 3.0)) == pytest.approx(expected, rel=1e-10)


def test_vicreg_needs_two_samples(pair):
    with pytest.raises(ValueError, match="at least 2"):
        vicreg(pair[0][:1], pair[1][:1])
