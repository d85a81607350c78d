"""Global-batch losses under DDP equal one process holding the whole batch (2 CPU ranks over gloo).

Each rank takes a slice of a fixed float64 batch, including ranks of different sizes (3 and 5) and an
empty rank; the model is wrapped in torch DDP (gradients averaged over ranks) and computes the loss module
on the projections gathered with gradient. Loss and every parameter gradient must match a single process.

InfoNCE also runs on a batch padded as a DistributedSampler pads it: its last row repeats crystal 0 (same id,
same views), which lands on the other rank in the equal and unequal splits. The ids are gathered with the
projections, so the copies are not each other's negatives there either.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from contrast.losses import BarlowTwinsLoss, InfoNCELoss, VICRegLoss, gather_rows, gather_with_grad, info_nce

WORLD = 2
BATCH = 8
SPLITS = {"equal": (4, 4), "unequal": (3, 5), "empty_rank": (0, 8)}
IDS = torch.tensor([10, 11, 12, 13, 14, 15, 16, 10])  # dataset indices; the last row is padding


class NaiveInfoNCE(nn.Module):
    """Control: gathers other ranks' projections as constants and keeps only the local gradient."""

    def forward(self, z_a, z_b):
        return info_nce(_naive_gather(z_a), _naive_gather(z_b), 0.2)


def _naive_gather(x):
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(WORLD)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]]))
    sizes = [int(s) for s in sizes]
    padded = x.new_zeros(max(sizes), x.shape[1])
    padded[: x.shape[0]] = x.detach()
    buffers = [torch.empty_like(padded) for _ in range(WORLD)]
    dist.all_gather(buffers, padded)
    parts = [b[:n] for b, n in zip(buffers, sizes)]
    parts[dist.get_rank()] = x
    return torch.cat(parts)


LOSSES = {
    "infonce": lambda: InfoNCELoss(temperature=0.2),
    "infonce_learnt": lambda: InfoNCELoss(temperature=0.2, learnable_temperature=True),
    "barlow": lambda: BarlowTwinsLoss(lambd=0.01),
    "vicreg": lambda: VICRegLoss(),
    "naive": NaiveInfoNCE,
}
ID_LOSSES = {  # run on padded_batch() with IDS
    "infonce_ids": lambda: InfoNCELoss(temperature=0.2),
    "infonce_learnt_ids": lambda: InfoNCELoss(temperature=0.2, learnable_temperature=True),
}


class Pretrainer(nn.Module):
    """A shared projector run on both views (two forward passes, as the contrastive task does)."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
        self.loss = loss

    def forward(self, x_a, x_b, ids=None):
        if ids is None:
            return self.loss(self.net(x_a), self.net(x_b))
        return self.loss(self.net(x_a), self.net(x_b), ids=ids)


def build(name: str) -> Pretrainer:
    torch.manual_seed(0)
    return Pretrainer({**LOSSES, **ID_LOSSES}[name]()).double()


def batch():
    g = torch.Generator().manual_seed(1)
    x_a = torch.randn(BATCH, 4, generator=g, dtype=torch.float64)
    return x_a, x_a + 0.3 * torch.randn(BATCH, 4, generator=g, dtype=torch.float64)


def padded_batch():
    """``batch()`` whose last row is a copy of row 0 (views are seeded by the dataset index)."""
    x_a, x_b = batch()
    x_a[-1], x_b[-1] = x_a[0], x_b[0]
    return x_a, x_b


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    x_a, x_b = batch()
    results = {}
    for split, sizes in SPLITS.items():
        start = sum(sizes[:rank])
        local_a, local_b = x_a[start : start + sizes[rank]], x_b[start : start + sizes[rank]]
        results[f"gather/{split}"] = gather_with_grad(local_a)
        for name in LOSSES:
            model = DistributedDataParallel(build(name))
            loss = model(local_a, local_b)
            loss.backward()
            grads = {key: p.grad.clone() for key, p in model.module.named_parameters()}
            results[f"{name}/{split}"] = {"loss": loss.detach(), "grads": grads}
        p_a, p_b = padded_batch()
        local_a, local_b = p_a[start : start + sizes[rank]], p_b[start : start + sizes[rank]]
        local_ids = IDS[start : start + sizes[rank]]
        results[f"gather_ids/{split}"] = gather_rows(local_ids)
        for name in ID_LOSSES:
            model = DistributedDataParallel(build(name))
            loss = model(local_a, local_b, local_ids)
            loss.backward()
            grads = {key: p.grad.clone() for key, p in model.module.named_parameters()}
            results[f"{name}/{split}"] = {"loss": loss.detach(), "grads": grads}
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def single_process(name: str, ids=None):
    model = build(name)
    loss = model(*(batch() if ids is None else padded_batch()), ids)
    loss.backward()
    return loss.detach(), {key: p.grad for key, p in model.named_parameters()}


@pytest.mark.parametrize("split", list(SPLITS))
def test_gather_concatenates_in_rank_order(rank_results, split):
    for results in rank_results:
        torch.testing.assert_close(results[f"gather/{split}"], batch()[0], rtol=0, atol=0)


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("name", ["infonce", "infonce_learnt", "barlow", "vicreg"])
def test_ddp_matches_one_process(rank_results, name, split):
    loss, grads = single_process(name)
    for results in rank_results:
        got = results[f"{name}/{split}"]
        torch.testing.assert_close(got["loss"], loss, rtol=1e-10, atol=1e-10)
        assert got["grads"].keys() == grads.keys()
        for key, grad in grads.items():
            torch.testing.assert_close(got["grads"][key], grad, rtol=1e-8, atol=1e-10, msg=key)


def test_without_the_gradient_all_reduce_ddp_is_world_size_times_too_small(rank_results):
    loss, grads = single_process("infonce")  # the same loss, computed with the full gradient
    for results in rank_results:
        got = results["naive/unequal"]
        torch.testing.assert_close(got["loss"], loss, rtol=1e-10, atol=1e-10)
        for key, grad in grads.items():
            torch.testing.assert_close(got["grads"][key], grad / WORLD, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("split", list(SPLITS))
def test_ids_are_gathered_in_rank_order(rank_results, split):
    for results in rank_results:
        got = results[f"gather_ids/{split}"]
        assert got.dtype == IDS.dtype and torch.equal(got, IDS)


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("name", list(ID_LOSSES))
def test_copies_on_different_ranks_are_not_negatives(rank_results, name, split):
    loss, grads = single_process(name, IDS)  # one process, whole padded batch, copies masked
    plain_loss, _ = single_process(name, torch.arange(BATCH))  # the copies counted as negatives
    assert abs(float(loss - plain_loss)) > 1e-3
    for results in rank_results:
        got = results[f"{name}/{split}"]
        torch.testing.assert_close(got["loss"], loss, rtol=1e-10, atol=1e-10)
        assert got["grads"].keys() == grads.keys()
        for key, grad in grads.items():
            torch.testing.assert_close(got["grads"][key], grad, rtol=1e-8, atol=1e-10, msg=key)
