"""PaiNN's per-edge messages and their sums over neighbours, with a hand-written backward pass.

Forces are the gradient of the energy, so the backward pass of the messages runs at every force evaluation.
Left to autograd, each of the message's dozen per-edge products records a node and saves its operands, and
the backward pass adds the gradients of every reused operand out of place, expands the gradient of each
unit-vector component into a [3, E] tensor and gathers the neighbours' vector features again. Here one
autograd node covers the messages of an edge block: its forward pass records nothing and keeps the gathered
neighbour features, and its backward pass forms only the gradients that the inputs need, with reused terms
summed in place.

Every per-edge tensor is a contiguous [E, D] matrix, one Cartesian component at a time: on the CPU, products
of strided column slices or of [E, 3, D] tensors broadcast over their middle dimension cost 2 to 4 times more,
and a fresh [E, D] temporary is served from memory that the previous one just left in the cache.

The backward pass is itself written with differentiable operations, so a force loss can differentiate it
again (``create_graph=True``) to train the weights.

Notation: D is the feature width, E the number of edges (of one block), N the number of atoms; edge e goes
from its source atom j to its target atom i.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _PaiNNMessageSum(torch.autograd.Function):
    """Adds the messages of one edge block into the running sums; see :func:`message_sum_`."""

    @staticmethod
    def forward(ctx, acc_s, acc_v, phi_s, phi_vs, v_phi, f_s, f_vv, f_vs, unit, source, target):
        phi_s_j = phi_s.index_select(0, source)  # [E, D]
        phi_vs_j = phi_vs.index_select(0, source)  # [E, D]
        acc_s.index_add_(0, target, phi_s_j * f_s)
        x_vs = phi_vs_j * f_vs  # [E, D]
        v_j = None if v_phi is None else [v_phi[c].index_select(0, source) for c in range(3)]  # [E, D] each
        for c in range(3):  # one Cartesian component at a time
            message = unit[c].unsqueeze(-1) * x_vs  # [E, D]
            if v_j is not None:
                message.addcmul_(v_j[c], f_vv)
            acc_v[c].index_add_(0, target, message)
        ctx.mark_dirty(acc_s, acc_v)
        ctx.save_for_backward(phi_s, phi_vs, v_phi, f_s, f_vv, f_vs, unit, source, target)
        # The gathered terms serve a plain backward pass. One that builds a graph (for a force loss) forms
        # them again from the saved inputs, so that its result stays connected to those.
        ctx.gathered = phi_s_j, phi_vs_j, x_vs, v_j
        return acc_s, acc_v

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        phi_s, phi_vs, v_phi, f_s, f_vv, f_vs, unit, source, target = ctx.saved_tensors
        if torch.is_grad_enabled():
            phi_s_j, phi_vs_j = phi_s.index_select(0, source), phi_vs.index_select(0, source)
            x_vs = phi_vs_j * f_vs
            v_j = None if v_phi is None else [v_phi[c].index_select(0, source) for c in range(3)]
        else:
            phi_s_j, phi_vs_j, x_vs, v_j = ctx.gathered
        _, _, needs_phi_s, needs_phi_vs, needs_v_phi, needs_f_s, needs_f_vv, needs_f_vs, needs_unit = (
            ctx.needs_input_grad[:9]
        )
        n = phi_s.shape[0]

        def to_sources(per_edge: Tensor) -> Tensor:  # [E, D] -> [N, D], summed over each atom's out-edges
            return per_edge.new_zeros(n, per_edge.shape[1]).index_add_(0, source, per_edge)

        grad_phi_s = grad_phi_vs = grad_v_phi = grad_f_s = grad_f_vv = grad_f_vs = grad_unit = None
        g_s = grad_s.index_select(0, target)  # [E, D]: gradient of each edge's scalar message
        if needs_phi_s:
            grad_phi_s = to_sources(g_s * f_s)
        if needs_f_s:
            grad_f_s = g_s * phi_s_j
        g_v = [grad_v[c].index_select(0, target) for c in range(3)]  # [E, D] per component
        # gradient of x_vs: the sum over components of unit_c * g_v[c], accumulated in place
        g_x_vs = g_v[0] * unit[0].unsqueeze(-1)
        g_x_vs.addcmul_(g_v[1], unit[1].unsqueeze(-1)).addcmul_(g_v[2], unit[2].unsqueeze(-1))
        if needs_phi_vs:
            grad_phi_vs = to_sources(g_x_vs * f_vs)
        if needs_f_vs:
            grad_f_vs = g_x_vs * phi_vs_j
        if needs_unit:
            grad_unit = torch.stack([torch.linalg.vecdot(g, x_vs) for g in g_v])  # [3, E]
        if v_j is not None:
            if needs_v_phi:
                grad_v_phi = torch.stack([to_sources(g * f_vv) for g in g_v])  # [3, N, D]
            if needs_f_vv:
                grad_f_vv = g_v[0] * v_j[0]
                grad_f_vv.addcmul_(g_v[1], v_j[1]).addcmul_(g_v[2], v_j[2])
        return (
            grad_s, grad_v, grad_phi_s, grad_phi_vs, grad_v_phi, grad_f_s, grad_f_vv, grad_f_vs, grad_unit,
            None, None,
        )  # fmt: skip


def message_sum_(
    acc_s: Tensor,
    acc_v: Tensor,
    phi_s: Tensor,
    phi_vs: Tensor,
    v_phi: Tensor | None,
    filters: tuple[Tensor, Tensor | None, Tensor],
    unit: Tensor,
    source: Tensor,
    target: Tensor,
) -> tuple[Tensor, Tensor]:
    """Add PaiNN's messages over the edges ``source -> target`` into ``acc_s`` and ``acc_v`` in place.

    For an edge e from j to i with unit vector ``u`` (from i towards j) the scalar message is
    ``phi_s[j] * F_s[e]`` and the vector message ``u * phi_vs[j] * F_vs[e] + F_vv[e] * v_phi[j]``.

    Args:
        acc_s: [N, D] running sums of scalar messages.
        acc_v: [3, N, D] running sums of vector messages, component first.
        phi_s, phi_vs: [N, D] per-atom scalar filters.
        v_phi: [3, N, D] vector features already multiplied by ``phi_vv``, or None where they are zero.
        filters: the radial filters ``(F_s, F_vv, F_vs)``, [E, D] each (``F_vv`` unused without ``v_phi``).
        unit: [3, E] unit vectors from target to source, component first.
        source, target: [E] atoms j and i of each edge.

    Returns:
        ``(acc_s, acc_v)``, updated.
    """
    f_s, f_vv, f_vs = filters
    if v_phi is None:
        f_vv = None
    return _PaiNNMessageSum.apply(acc_s, acc_v, phi_s, phi_vs, v_phi, f_s, f_vv, f_vs, unit, source, target)


__all__ = ["message_sum_"]
