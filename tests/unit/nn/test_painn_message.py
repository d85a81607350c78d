"""PaiNN's hand-written message backward equals autograd's, to first and second order."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from contrast.nn.forces import constant_weights, energy_forces_stress
from contrast.nn.painn_message import message_sum_
from contrast.testing import assert_close, to_graph

N, E, D = 5, 17, 4


def inputs(with_vectors: bool, seed: int = 0):
    """Random float64 message inputs that require grad; sources and targets repeat atoms."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    unit = torch.nn.functional.normalize(torch.randn(3, E, generator=gen, dtype=torch.float64), dim=0)
    return {
        "phi_s": rand(N, D),
        "phi_vs": rand(N, D),
        "v_phi": rand(3, N, D) if with_vectors else None,
        "filters": (rand(E, D), rand(E, D), rand(E, D)),
        "unit": unit.requires_grad_(True),
        "source": torch.randint(0, N, (E,), generator=gen),
        "target": torch.randint(0, N, (E,), generator=gen),
    }


def reference(phi_s, phi_vs, v_phi, filters, unit, source, target):
    """The same messages written with plain autograd operations, [N, D] and [3, N, D]."""
    f_s, f_vv, f_vs = filters
    scalar = phi_s[source] * f_s  # [E, D]
    vector = unit.unsqueeze(-1) * (phi_vs[source] * f_vs)  # [3, E, D]
    if v_phi is not None:
        vector = vector + v_phi[:, source] * f_vv
    sums_s = torch.zeros(N, D, dtype=scalar.dtype).index_add(0, target, scalar)
    sums_v = torch.zeros(3, N, D, dtype=scalar.dtype).index_add(1, target, vector)
    return sums_s, sums_v


def ours(phi_s, phi_vs, v_phi, filters, unit, source, target):
    acc_s = torch.zeros(N, D, dtype=phi_s.dtype)
    acc_v = torch.zeros(3, N, D, dtype=phi_s.dtype)
    return message_sum_(acc_s, acc_v, phi_s, phi_vs, v_phi, filters, unit, source, target)


@pytest.mark.parametrize("with_vectors", [True, False])
def test_forward_and_gradients_match_autograd(with_vectors):
    args = inputs(with_vectors)
    got, expected = ours(**args), reference(**args)
    for a, b in zip(got, expected):
        assert_close(a, b, 1e-12, 1e-12, "message sums")
    leaves = [args["phi_s"], args["phi_vs"], *args["filters"], args["unit"]]
    if with_vectors:
        leaves.append(args["v_phi"])
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in expected]

    def loss(outputs):
        return sum((w * t).sum() for w, t in zip(weights, outputs))

    grads = torch.autograd.grad(loss(ours(**args)), leaves, allow_unused=True)
    expected_grads = torch.autograd.grad(loss(reference(**args)), leaves, allow_unused=True)
    for name, a, b in zip(["phi_s", "phi_vs", "f_s", "f_vv", "f_vs", "unit", "v_phi"], grads, expected_grads):
        if b is None or (not with_vectors and name == "f_vv"):
            assert a is None or not a.abs().max() > 0, name
            continue
        assert_close(a, b, 1e-12, 1e-12, f"gradient of {name}")


@pytest.mark.parametrize("with_vectors", [True, False])
def test_gradcheck_first_and_second_order(with_vectors):
    """Numerical Jacobians, and of the backward pass itself: what a force loss differentiates."""
    args = inputs(with_vectors, seed=2)
    source, target = args["source"], args["target"]
    f_s, f_vv, f_vs = args["filters"]

    def fn(phi_s, phi_vs, f_s, f_vv, f_vs, unit, *v_phi):
        v = v_phi[0] if v_phi else None
        return ours(phi_s, phi_vs, v, (f_s, f_vv, f_vs), unit, source, target)

    tensors = (args["phi_s"], args["phi_vs"], f_s, f_vv, f_vs, args["unit"])
    if with_vectors:
        tensors = tensors + (args["v_phi"],)
    assert gradcheck(fn, tensors, atol=1e-8)
    assert gradgradcheck(fn, tensors, atol=1e-8)


def test_only_needed_gradients_are_formed():
    """Inputs that need no gradient get None; the first block's embeddings need none for forces."""
    args = inputs(True)
    args["phi_s"] = args["phi_s"].detach()
    args["v_phi"] = args["v_phi"].detach()
    acc_s, acc_v = ours(**args)
    grads = torch.autograd.grad((acc_s.sum() + acc_v.sum()), [args["phi_vs"], args["unit"]])
    assert all(g is not None and g.abs().max() > 0 for g in grads)


def test_inference_treats_weights_as_constants(energy_model, alloy, cutoff):
    """Forces at inference equal those of the training path; the parameters come back as they were."""
    data = to_graph(alloy, cutoff)
    before = {name: p.detach().clone() for name, p in energy_model.named_parameters()}
    inference = energy_forces_stress(energy_model, data, compute_stress=True)
    trained = energy_forces_stress(energy_model, data, compute_stress=True, training=True)
    for key in ("energy", "forces", "stress"):
        assert_close(inference[key], trained[key].detach(), 1e-12, 1e-12, key)
    for name, p in energy_model.named_parameters():
        assert p.requires_grad and p.grad is None, name
        assert torch.equal(p.detach(), before[name]), name
    assert not any(p.requires_grad for p in inference.values())


def test_constant_weights_restores_flags_after_errors(energy_model):
    frozen = next(energy_model.parameters())
    frozen.requires_grad_(False)  # a parameter frozen by the user stays frozen
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with constant_weights(energy_model):
                assert not any(p.requires_grad for p in energy_model.parameters())
                raise RuntimeError("inside")
        assert not frozen.requires_grad
        assert all(p.requires_grad for p in list(energy_model.parameters())[1:])
    finally:
        frozen.requires_grad_(True)
    with constant_weights(lambda data: data):  # not a module: nothing to do
        pass
