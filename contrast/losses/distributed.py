"""All-gather of embeddings with gradient, for negatives drawn from the global batch.

Every rank gathers the embeddings of all ranks and computes the same global loss ``L``. In backward,
rank ``r`` holds ``dL/dZ`` for the whole gathered batch, but only its own slice reaches its parameters.
Summing the incoming gradient over ranks (all-reduce) makes rank ``r``'s slice ``W * dL/dZ_r``; DDP then
averages parameter gradients over the ``W`` ranks, so the factor ``W`` cancels and every parameter gets
exactly the gradient of one process holding the whole batch. (Without the all-reduce the gradients would be
``W`` times too small.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a default process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_sizes(x: Tensor) -> list[int]:
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _all_gather_rows(x: Tensor) -> tuple[Tensor, list[int]]:
    """``x`` [B_rank, ...] of every rank concatenated in rank order (no autograd), and the per-rank sizes."""
    sizes = _gather_sizes(x)
    # all_gather needs equal shapes: pad every rank to the largest batch, strip the padding after.
    padded = x.new_zeros((max(sizes), *x.shape[1:]))  # [B_max, ...]
    padded[: x.shape[0]] = x
    buffers = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(buffers, padded)
    return torch.cat([buffer[:n] for buffer, n in zip(buffers, sizes)]), sizes  # [sum B, ...]


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        gathered, sizes = _all_gather_rows(x)  # [sum B, D]
        rank = dist.get_rank()
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        return gathered

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()  # [sum B, D]; all_reduce works in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop]  # [B_rank, D]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` [B_rank, D] from every rank, in rank order, into [sum B, D], keeping the gradient.

    Ranks may hold different numbers of rows (also zero). Gradients flow back to each rank's own slice,
    scaled so that with DDP's gradient averaging the parameter gradients equal single-process ones (see the
    module docstring).
    Without an initialised process group (or with one rank) ``x`` is returned unchanged.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


def gather_rows(x: Tensor) -> Tensor:
    """Concatenate ``x`` [B_rank, ...] from every rank, in rank order, into [sum B, ...], without gradient.

    For tensors that travel alongside the embeddings (e.g. the dataset indices [B_rank] of the crystals), in
    the same order as :func:`gather_with_grad`. Ranks may hold different numbers of rows (also zero).
    Without an initialised process group (or with one rank) ``x`` is returned unchanged.
    """
    if not is_distributed():
        return x
    return _all_gather_rows(x.detach())[0]
