"""Two-view pipelines: seeding by (seed, epoch, index), workers, collation, configs, and views that differ."""

from __future__ import annotations

import pickle

import pytest
import torch
from augment_crystals import CUTOFF
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch_geometric.loader import DataLoader

from contrast import CONFIG_DIR
from contrast.augment import (
    AtomMask,
    OriginShift,
    PositionNoise,
    RandomRotation,
    SiteRemoval,
    TwoViews,
    ViewPipeline,
    view_seed,
)
from contrast.graph.convert import StructureError

CONF = CONFIG_DIR / "augment"


@pytest.fixture(scope="session")
def dataset(crystals):
    return [crystals["rock_salt"], crystals["silicon"], crystals["triclinic"]] * 2


@pytest.fixture(scope="session")
def two_views():
    view_a = ViewPipeline(
        [RandomRotation(), PositionNoise(sigma=0.05), SiteRemoval(fraction=0.2)], [AtomMask()], CUTOFF
    )
    view_b = ViewPipeline([OriginShift(), PositionNoise(sigma=0.02)], [], CUTOFF)
    return TwoViews(view_a, view_b, seed=5)


def same_graph(a, b) -> bool:
    keys = ("z", "pos", "cell", "edge_index", "cell_shift")
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_views_are_reproducible_per_seed_epoch_and_index(dataset, two_views):
    views = two_views.wrap(dataset)
    again = pickle.loads(pickle.dumps(two_views.wrap(dataset)))
    for i in range(len(views)):
        (a1, b1), (a2, b2) = views[i], again[i]
        assert same_graph(a1, a2) and same_graph(b1, b2)
        assert not same_graph(a1, b1)
    first = views[0]
    views.set_epoch(1)
    assert views.epoch == 1 and not same_graph(views[0][0], first[0])
    views.set_epoch(0)
    assert same_graph(views[0][0], first[0])
    other_seed = TwoViews(two_views.view_a, two_views.view_b, seed=6).wrap(dataset)
    assert not same_graph(other_seed[0][0], first[0])


def test_view_seeds_are_distinct():
    seeds = {view_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 450
    fixed = {view_seed(s, None, i) for s in range(3) for i in range(50)}
    assert len(fixed) == 150 and not fixed & seeds
    with pytest.raises(ValueError):
        view_seed(-1, 0, 0)


def test_fixed_views_are_the_same_every_epoch(dataset, two_views):
    fixed = two_views.wrap(dataset, fixed=True)
    assert fixed.fixed and "fixed=True" in repr(fixed)
    first = [fixed[i] for i in range(len(fixed))]
    fixed.set_epoch(3)
    for i, (view_a, view_b) in enumerate(first):
        again_a, again_b = fixed[i]
        assert same_graph(view_a, again_a) and same_graph(view_b, again_b)
        assert not same_graph(view_a, view_b)
    assert not same_graph(first[0][0], first[3][0])  # items differ (the same crystal at 0 and 3)
    drawn = two_views.wrap(dataset)
    drawn.set_epoch(3)
    assert not same_graph(drawn[0][0], first[0][0])  # training views follow the epoch
    restored = pickle.loads(pickle.dumps(two_views.wrap(dataset, fixed=True)))
    assert same_graph(restored[1][1], first[1][1])


def collect(loader):
    return [(batch_a.clone(), batch_b.clone()) for batch_a, batch_b in loader]


def test_views_do_not_depend_on_worker_count_and_follow_the_epoch(dataset, two_views):
    views = two_views.wrap(dataset)
    serial = collect(DataLoader(views, batch_size=2, num_workers=0))
    loader = DataLoader(views, batch_size=2, num_workers=2, persistent_workers=True)
    parallel = collect(loader)
    assert len(serial) == len(parallel) == 3
    for (sa, sb), (pa, pb) in zip(serial, parallel):
        assert same_graph(sa, pa) and same_graph(sb, pb)
        assert sa.num_graphs == 2 and hasattr(sa, "batch")
    # set_epoch reaches the persistent workers.
    views.set_epoch(3)
    next_epoch = collect(loader)
    expected = collect(DataLoader(views, batch_size=2, num_workers=0))
    for (ea, _), (na, _) in zip(expected, next_epoch):
        assert same_graph(ea, na)
    assert not same_graph(next_epoch[0][0], parallel[0][0])


def test_pipeline_redraws_invalid_views_then_names_the_entry(crystals):
    data = crystals["silicon"]
    # Huge noise makes overlapping atoms likely; every output must still be a valid graph or a clear error.
    pipeline = ViewPipeline([PositionNoise(sigma=3.0)], [], CUTOFF, max_attempts=1)
    errors = 0
    for seed in range(30):
        try:
            pipeline(data, torch.Generator().manual_seed(seed))
        except StructureError as error:
            errors += 1
            assert error.entry == 1 and "no valid view" in str(error) and "entry 1" in str(error)
    assert errors > 0


def test_graph_only_pipeline_keeps_the_input_edges(crystals):
    data = crystals["rock_salt"]
    out = ViewPipeline([], [AtomMask(fraction=0.5)], CUTOFF)(data, torch.Generator().manual_seed(0))
    assert torch.equal(out.edge_index, data.edge_index) and (out.z == 0).any()


def load_preset(name: str):
    cfg = OmegaConf.create(
        {"seed": 0, "data": {"cutoff": CUTOFF}, "augment": OmegaConf.load(CONF / f"{name}.yaml")}
    )
    return instantiate(cfg.augment)


@pytest.mark.parametrize("name", ["default", "light", "structure_only"])
def test_presets_instantiate(name, dataset):
    two_views = load_preset(name)
    assert isinstance(two_views, TwoViews)
    assert two_views.view_a.cutoff == CUTOFF == two_views.view_b.cutoff
    view_a, view_b = two_views.wrap(dataset)[2]
    assert view_a.edge_index.shape[0] == 2 and view_b.cell.shape == (1, 3, 3)
    pickle.loads(pickle.dumps(two_views))


def tiny_invariant_encoder():
    """Mean of embedded species plus an RBF of the neighbour distances: invariant by construction."""
    from torch_geometric.utils import scatter

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(101, 16).double()
    centres = torch.linspace(0.5, CUTOFF, 16, dtype=torch.float64)

    def embed(data):
        j, i = data.edge_index
        dist = (data.pos[j] - data.pos[i] + data.cell_shift @ data.cell[0]).norm(dim=1)  # [E]
        rbf = torch.exp(-((dist[:, None] - centres) ** 2))  # [E, 16]
        per_atom = embedding(data.z) + scatter(
            rbf, i, dim=0, dim_size=data.num_nodes, reduce="sum"
        )  # [N, 16]
        return per_atom.mean(0, keepdim=True)  # [1, 16]

    return embed


def encoder():
    """SchNet when it is available (preferred), else the tiny invariant encoder."""
    try:
        from contrast.nn.schnet import SchNet
    except ImportError:
        return tiny_invariant_encoder()
    torch.manual_seed(0)
    model = SchNet(hidden_dim=16, num_layers=2, cutoff=CUTOFF).double().eval()
    return model.embed


def test_default_preset_gives_different_embeddings_but_rotation_alone_does_not(dataset):
    embed = encoder()
    with torch.no_grad():
        views = load_preset("default").wrap(dataset)
        for i in range(3):
            view_a, view_b = views[i]
            assert not torch.allclose(embed(view_a), embed(view_b), atol=1e-6)
        # The control: rigid motions alone leave an invariant encoder's embedding unchanged.
        rigid = ViewPipeline([RandomRotation(), OriginShift()], [], CUTOFF)
        for i in range(3):
            view = rigid(dataset[i], torch.Generator().manual_seed(i))
            torch.testing.assert_close(embed(view), embed(dataset[i]), atol=1e-8, rtol=1e-8)


def test_views_carry_the_same_fields_whichever_transforms_fired(crystals):
    labelled = []
    for i, data in enumerate(crystals.values()):
        data = data.clone()
        data.energy = torch.tensor([-1.0 * i], dtype=torch.float64)
        data.forces = torch.zeros(data.num_nodes, 3, dtype=torch.float64)
        data.band_gap = torch.tensor([0.5 * i], dtype=torch.float64)
        labelled.append(data)
    pipeline = ViewPipeline([PositionNoise(p=0.5, sigma=0.01), SiteRemoval(p=0.5, fraction=0.3)], [], CUTOFF)
    views = TwoViews(pipeline, pipeline, seed=0).wrap(labelled * 4)
    keys = {tuple(sorted(view.keys())) for pair in views for view in pair}
    assert len(keys) == 1 and "band_gap" in keys.pop()
    batch_a, _ = next(iter(DataLoader(views, batch_size=len(views))))
    assert batch_a.num_graphs == 12 and batch_a.band_gap.shape == (12,)
