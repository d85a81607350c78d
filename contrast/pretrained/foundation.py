"""Foundation models of other packages presented as ``contrast`` encoders, so that ``contrast.embed``,
``contrast.neighbours``, ``python -m contrast.export`` and the probe suite (``python -m contrast.evaluate
checkpoint=chgnet``) score their frozen features next to ours, with the same readouts.

Each adapter is a :class:`~contrast.nn.base.CrystalEncoder`: ``forward`` gives the model's per-atom features
[N, D] in the batch's atom order, and ``embed`` pools them as ours are pooled (``pooling``: mean, or several
of mean+std+max). Their weights ship inside their own packages (optional extras, e.g.
``pip install -e ".[chgnet]"``); nothing is downloaded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from contrast.nn.base import CrystalEncoder, check_pooling

__all__ = ["FOUNDATION_MODELS", "CHGNetEncoder", "SevenNetEncoder", "foundation_encoder"]


class CHGNetEncoder(CrystalEncoder):
    """CHGNet's atom features after its last interaction block ([N, 64]), as an encoder.

    Structures are rebuilt from the batch (``z``, ``pos``, ``cell``) and converted by CHGNet's own graph
    converter (its atom and bond cutoffs); the ``contrast`` graph's edges are not used.

    Args:
        model: a loaded ``chgnet.model.CHGNet`` (default: the pretrained one shipped in the package).
        pooling: the graph readout (``mean`` or several of ``mean+std+max``).
    """

    def __init__(self, model: nn.Module | None = None, pooling: str = "mean"):
        super().__init__()
        if model is None:
            model = _load_chgnet()
        self.model = model
        self.hidden_dim = int(model.atom_fea_dim) if hasattr(model, "atom_fea_dim") else 64
        self.cutoff = float(model.graph_converter.atom_graph_cutoff)
        self.pooling = check_pooling(pooling)
        self.readout_layers = "last"

    def blocks(self) -> list[list[nn.Module]]:
        return [[self.model]]

    def untrained(self, seed: int = 0) -> CHGNetEncoder:
        """The same architecture as CHGNet builds it before training (its own initialisation), seeded."""
        model_class = type(self.model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_class(**self.model.todict()["model_args"])
        return CHGNetEncoder(model, pooling=self.pooling)

    def forward(self, data) -> Tensor:
        """Per-atom features [N, D] of every structure of the batch, in its atom order."""
        from pymatgen.core import Lattice, Structure

        graphs = []
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros_like(data.z)
        cells = data.cell.reshape(-1, 3, 3)
        for k in range(cells.shape[0]):
            mask = batch == k
            structure = Structure(
                Lattice(cells[k].detach().cpu().double().numpy()),
                data.z[mask].cpu().numpy().tolist(),
                data.pos[mask].detach().cpu().double().numpy(),
                coords_are_cartesian=True,
            )
            graphs.append(self.model.graph_converter(structure))
        out = self.model(graphs, task="e", return_atom_feas=True)
        features = torch.cat(list(out["atom_fea"]), dim=0)  # [N, D]
        return features.to(device=data.pos.device, dtype=data.pos.dtype)


def _load_chgnet() -> nn.Module:
    try:
        from chgnet.model import CHGNet
    except ImportError as error:
        raise ImportError(
            "the chgnet encoder needs the chgnet package: pip install -e '.[chgnet]' (or pip install chgnet)"
        ) from error
    return CHGNet.load(verbose=False)


class SevenNetEncoder(CrystalEncoder):
    """SevenNet-0's invariant atom features after its last interaction block ([N, 128]), as an encoder.

    Each structure is converted by SevenNet's own graph builder (its 5 Å cutoff) and run through the model's
    modules up to its energy readout.

    Args:
        model: a loaded SevenNet ``AtomGraphSequential`` (default: SevenNet-0, shipped in the package).
        cutoff: the model's cutoff, Å.
        config: the model's build config (for :meth:`untrained`).
        pooling: the graph readout (``mean`` or several of ``mean+std+max``).
    """

    READOUT = "reduce_input_to_hidden"  # the first module of the energy readout

    def __init__(
        self,
        model: nn.Module | None = None,
        cutoff: float = 5.0,
        config: dict | None = None,
        pooling: str = "mean",
    ):
        super().__init__()
        if model is None:
            model, cutoff, config = _load_sevennet()
        self.model, self.config = model, config
        self.cutoff = float(cutoff)
        self.hidden_dim = int(self.model._modules[self.READOUT].linear.irreps_in.dim)
        type_map = (config or {}).get("_type_map") or {}
        self.elements = {int(z) for z in type_map}  # the atomic numbers the model embeds (empty: unknown)
        self.pooling = check_pooling(pooling)
        self.readout_layers = "last"

    def blocks(self) -> list[list[nn.Module]]:
        return [[self.model]]

    def untrained(self, seed: int = 0) -> SevenNetEncoder:
        """The same model with e3nn's initialisation (weights drawn from N(0, 1), biases 0), seeded; its
        species mapping and fixed constants are kept."""
        model = copy.deepcopy(self.model)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for name, parameter in model.named_parameters():
                if not parameter.is_floating_point():
                    continue
                if name.endswith("bias"):
                    parameter.zero_()
                else:
                    parameter.normal_()
        return SevenNetEncoder(model, self.cutoff, self.config, self.pooling)

    def forward(self, data) -> Tensor:
        """Per-atom features [N, D] of every structure of the batch, in its atom order."""
        import sevenn._keys as keys
        from ase import Atoms
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros_like(data.z)
        unknown = sorted(set(data.z.tolist()) - self.elements) if self.elements else []
        if unknown:
            from ase.data import chemical_symbols

            from contrast.graph import StructureError

            symbols = ", ".join(chemical_symbols[z] for z in unknown)
            raise StructureError(
                f"SevenNet-0 does not embed {symbols} (it knows {len(self.elements)} elements)"
            )
        cells = data.cell.reshape(-1, 3, 3)
        features = []
        for k in range(cells.shape[0]):
            mask = batch == k
            atoms = Atoms(
                numbers=data.z[mask].cpu().numpy(),
                positions=data.pos[mask].detach().cpu().double().numpy(),
                cell=cells[k].detach().cpu().double().numpy(),
                pbc=True,
            )
            graph = AtomGraphData.from_numpy_dict(
                unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False)
            )
            graph = graph.to(data.pos.device)
            for name, module in self.model._modules.items():
                if name == self.READOUT:
                    break
                graph = module(graph)
            features.append(graph[keys.NODE_FEATURE])  # [n_k, D], scalars (0e) only
        return torch.cat(features).to(dtype=data.pos.dtype)


def _load_sevennet() -> tuple[nn.Module, float, dict]:
    try:
        from sevenn.util import load_checkpoint, pretrained_name_to_path
    except ImportError as error:
        raise ImportError(
            "the sevennet encoder needs the sevenn package: pip install -e '.[sevennet]' "
            "(or pip install sevenn)"
        ) from error
    checkpoint = load_checkpoint(pretrained_name_to_path("7net-0"))
    model = checkpoint.build_model()
    return model.eval(), float(checkpoint.config["cutoff"]), checkpoint.config


FOUNDATION_MODELS: dict[str, Callable[[], CrystalEncoder]] = {
    "chgnet": CHGNetEncoder,
    "sevennet": SevenNetEncoder,
}


def foundation_encoder(name: str) -> CrystalEncoder:
    """The adapter of a foundation model by name (``chgnet``, ``sevennet``), in eval mode.

    Raises:
        KeyError: an unknown name; ImportError: the model's package is not installed (the extra is named).
    """
    if name not in FOUNDATION_MODELS:
        raise KeyError(f"{name!r} is not a foundation model here; known: {sorted(FOUNDATION_MODELS)}")
    return FOUNDATION_MODELS[name]().eval()
