"""Scale benchmark: a million synthetic crystals through the structure store, the view loaders and training.

    OMP_NUM_THREADS=1 python benchmarks/scale.py --n 1000000 --rounds 3 --out /tmp/scale \
        --json benchmarks/results/scale.json

The synthetic set is made of perturbed copies of real structures of 5 to 50 atoms (``--seed-data``, default
``../shared/data/mp_train.extxyz.gz``, else the bundled ``mp_sample.extxyz.gz``): Gaussian noise on the
positions, a small random symmetric strain on the cell, and fresh ids. It is written as extended XYZ files of
``--shard-size`` frames, formatted in bulk with numpy (no ASE), several files at once.

Phases, each in its own process so that memory is measured on a clean process tree:

1. ``generate``: the synthetic files.
2. ``build``: the structure store of the first ``--rss-small`` structures and of all ``--n``; peak RSS of the
   build's process tree (its largest process, and the sum over the tree, sampled every 0.2 s).
3. ``graph``: the graph store (neighbour lists at ``--cutoff``) of the first ``--graph-sample`` structures.
4. ``loader``: DataLoaders with ``--loader-workers`` workers drawing contrastive view pairs with the default
   augment config, as pretraining does (``CrystalDataModule(view_transform=...)``): each worker's private
   memory after some hundreds of batches, and views/s over the full store against a 33k-structure store (the
   real ``mp_train`` when present, and a 33k subset of the synthetic set), interleaved over rounds.
5. ``train``: ``python -m contrast.train`` on the built store with one optimiser step; seconds from process
   start until that step's checkpoint is on disk (an upper bound of the first step).

Goals are printed pass/fail at the end; every measurement goes to ``--json``. "Flat in N" means the peak of
the full build is at most 1.25 times that of the ``--rss-small`` build. The build rate is also given per CPU
second of the build's processes (``build_structures_per_cpu_s``), which a loaded machine does not lower.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_SEED = REPO.parent / "shared" / "data" / "mp_train.extxyz.gz"
BUNDLED_SEED = REPO / "contrast" / "data" / "samples" / "mp_sample.extxyz.gz"
BASELINE_SIZE = 33_023  # structures of mp_train.extxyz.gz

GOALS = {
    "structure_store_bytes_per_atom": ("<=", 30.0),
    "build_structures_per_s_per_process": (">=", 3000.0),
    "peak_build_rss_mb_full": ("<=", 2048.0),
    "peak_build_rss_flat": ("<=", 1.25),  # peak at the full N over the peak at the small N
    "worker_extra_rss_mb": ("<=", 300.0),
    "view_throughput_ratio": (">=", 0.9),
    "first_step_s": ("<=", 60.0),
}


# ----------------------------------------------------------------------------------------------- generation


def load_seeds(path: str | os.PathLike, min_atoms: int = 5, max_atoms: int = 50) -> dict[str, np.ndarray]:
    """Real structures of ``min_atoms`` to ``max_atoms`` atoms as concatenated arrays.

    Returns:
        ``z`` [A] int64, ``pos`` [A, 3], ``cell`` [S, 3, 3] and ``ptr`` [S + 1] int64.
    """
    from contrast.data.io.readers import read_entries, resolve_source

    crystals = [
        entry.structure
        for entry in read_entries(resolve_source(str(path)))
        if entry.error is None and min_atoms <= len(entry.structure.z) <= max_atoms
    ]
    if not crystals:
        raise ValueError(f"{path} holds no structure of {min_atoms} to {max_atoms} atoms")
    sizes = np.array([len(c.z) for c in crystals], dtype=np.int64)
    return {
        "z": np.concatenate([c.z for c in crystals]).astype(np.int64),
        "pos": np.concatenate([c.pos for c in crystals]).astype(np.float64),
        "cell": np.stack([c.cell for c in crystals]).astype(np.float64),
        "ptr": np.concatenate([[0], np.cumsum(sizes)]),
    }


HEADER = 'Lattice="' + " ".join(["%.8f"] * 9) + '" Properties=species:S:1:pos:R:3 id=syn-%08d pbc="T T T"\n'
ATOM = "%s %.6f %.6f %.6f\n"


def perturb(
    seeds: dict[str, np.ndarray], count: int, rng: np.random.Generator, noise: float, strain: float
) -> dict[str, np.ndarray]:
    """``count`` perturbed copies of random seed structures (positions strained with their cell, plus
    Gaussian noise of ``noise`` Å; a symmetric strain of standard deviation ``strain``)."""
    sizes = np.diff(seeds["ptr"])
    pick = rng.integers(0, len(sizes), count)
    counts = sizes[pick]
    ptr = np.concatenate([[0], np.cumsum(counts)])
    owner = np.repeat(np.arange(count), counts)  # [A] structure of each atom
    atoms = seeds["ptr"][pick][owner] + (np.arange(ptr[-1]) - ptr[:-1][owner])
    eps = rng.normal(0.0, strain, (count, 3, 3))
    deform = np.eye(3) + 0.5 * (eps + eps.transpose(0, 2, 1))  # [S, 3, 3]
    cell = seeds["cell"][pick] @ deform  # rows are lattice vectors
    pos = np.einsum("ai,aij->aj", seeds["pos"][atoms], deform[owner]) + rng.normal(
        0.0, noise, (len(atoms), 3)
    )
    return {"z": seeds["z"][atoms], "pos": pos, "cell": cell, "ptr": ptr}


def format_frames(frames: dict[str, np.ndarray], first_id: int) -> str:
    """Extended XYZ text of the frames: one ``%`` over a format string of every line and all values."""
    from ase.data import chemical_symbols

    counts = np.diff(frames["ptr"])
    count, n_atoms = len(counts), int(frames["ptr"][-1])
    formats: dict[int, str] = {}
    for n in np.unique(counts).tolist():
        formats[n] = f"{n}\n" + HEADER + ATOM * n
    template = "".join([formats[n] for n in counts.tolist()])
    # value k of structure s starts at 10 * s + 4 * ptr[s] (10 header values, 4 per atom)
    starts = 10 * np.arange(count) + 4 * frames["ptr"][:-1]
    values = np.empty(10 * count + 4 * n_atoms, dtype=object)
    header = np.empty((count, 10), dtype=object)
    header[:, :9] = frames["cell"].reshape(count, 9)
    header[:, 9] = np.arange(first_id, first_id + count)
    values[(starts[:, None] + np.arange(10)).ravel()] = header.ravel()
    owner = np.repeat(np.arange(count), counts)
    atom_starts = starts[owner] + 10 + 4 * (np.arange(n_atoms) - frames["ptr"][:-1][owner])
    table = np.empty((n_atoms, 4), dtype=object)
    table[:, 0] = np.array(chemical_symbols, dtype=object)[frames["z"]]
    table[:, 1:] = frames["pos"]
    values[(atom_starts[:, None] + np.arange(4)).ravel()] = table.ravel()
    return template % tuple(values.tolist())


_SEEDS: dict[str, np.ndarray] | None = None


def _write_file(job: tuple) -> tuple[str, int, int]:
    path, first_id, count, seed, noise, strain, compress = job
    rng = np.random.default_rng([seed, first_id])
    text, atoms = [], 0
    for start in range(0, count, 10_000):  # bounded memory per formatting call
        frames = perturb(_SEEDS, min(10_000, count - start), rng, noise, strain)
        text.append(format_frames(frames, first_id + start))
        atoms += int(frames["ptr"][-1])
    data = "".join(text).encode()
    if compress:
        import gzip

        data = gzip.compress(data, compresslevel=1)
    tmp = f"{path}.tmp"
    Path(tmp).write_bytes(data)
    os.replace(tmp, path)
    return path, count, atoms


def generate(
    seed_data: str | os.PathLike,
    folder: str | os.PathLike,
    n: int,
    file_size: int,
    workers: int = 2,
    seed: int = 0,
    noise: float = 0.02,
    strain: float = 0.01,
    compress: bool = False,
) -> dict:
    """Write ``n`` synthetic structures into ``folder`` as files of ``file_size`` frames; reuses finished
    files. Returns the file list, atoms and seconds."""
    global _SEEDS
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _SEEDS = load_seeds(seed_data)
    seeds_s = time.perf_counter() - start
    suffix = ".extxyz.gz" if compress else ".extxyz"
    jobs = []
    for k, first in enumerate(range(0, n, file_size)):
        path = str(folder / f"synthetic-{k:05d}{suffix}")
        jobs.append((path, first, min(file_size, n - first), seed, noise, strain, compress))
    todo = [job for job in jobs if not Path(job[0]).exists()]
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:
            done = pool.map(_write_file, todo, chunksize=1)
    else:
        done = [_write_file(job) for job in todo]
    atoms = {path: a for path, _, a in done}
    return {
        "files": [job[0] for job in jobs],
        "seed_structures": int(len(_SEEDS["ptr"]) - 1),
        "atoms_written": int(sum(atoms.values())),
        "bytes": int(sum(Path(job[0]).stat().st_size for job in jobs)),
        "seconds_seeds": seeds_s,
        "seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------------------ process memory


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/<pid>/task/*/children``)."""
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return tree


def private_mb(pid: int) -> float:
    """Memory only this process holds (Private_Clean + Private_Dirty of ``smaps_rollup``), MB."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total / 1024


class TreeSampler:
    """Samples a process tree every ``interval`` s: the largest single process (its ``VmHWM``, so peaks
    between samples count) and the largest sum of ``VmRSS`` over the tree (shared pages count in each)."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.max_single_kb = self.max_tree_kb = self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = process_tree(self.pid)
            self.max_single_kb = max([self.max_single_kb, *(_status_kb(p, "VmHWM") for p in pids)])
            self.max_tree_kb = max(self.max_tree_kb, sum(_status_kb(p, "VmRSS") for p in pids))
            self.max_processes = max(self.max_processes, len(pids))
            self._stop.wait(self.interval)


def run_phase(
    name: str, args: dict, sample: bool = False, timeout: float | None = None, inline: bool = False
) -> dict:
    """Run ``phase_<name>(**args)`` in a fresh Python process and return its JSON result, with the peak
    memory of its process tree when ``sample``. ``inline`` runs it in this process instead (quick checks:
    memory is then that of this process and its children)."""
    if inline:
        start = time.perf_counter()
        sampler = TreeSampler(os.getpid())
        with sampler if sample else _Null():
            result = json.loads(json.dumps(PHASES[name](**args), default=float))
        result["phase_seconds"] = time.perf_counter() - start
        return _with_rss(result, sampler if sample else None)
    command = [sys.executable, str(Path(__file__).resolve()), "--_phase", name, "--_args", json.dumps(args)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=str(REPO), text=True)
    sampler = TreeSampler(process.pid)
    with sampler if sample else _Null():
        out, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"phase {name} failed with exit code {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["phase_seconds"] = time.perf_counter() - start
    return _with_rss(result, sampler if sample else None)


def _with_rss(result: dict, sampler: TreeSampler | None) -> dict:
    """Add the sampled peak memory of the phase's process tree (if sampled) to its result."""
    if sampler is not None:
        result["rss"] = {
            "max_single_mb": sampler.max_single_kb / 1024,
            "tree_sum_mb": sampler.max_tree_kb / 1024,
            "processes": sampler.max_processes,
            **result.get("rss", {}),
        }
    return result


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------------------------ phases


def phase_generate(seed_data: str, folder: str, n: int, file_size: int, workers: int, compress: bool) -> dict:
    return generate(seed_data, folder, n, file_size, workers, compress=compress)


def phase_build(
    source, cache_dir: str, store: str, workers: int, shard_size: int, max_structures, cutoff: float = 5.0
) -> dict:
    """Build a store (timed) and report its size; memory is sampled by the caller."""
    from contrast.data.dataset import load_dataset
    from contrast.data.io.readers import resolve_source
    from contrast.data.store.arrays import bytes_per_atom

    resolve_source(source)  # imports done before the clock starts
    start, cpu = time.perf_counter(), _cpu_seconds()
    ds = load_dataset(
        source,
        cutoff=cutoff,
        store=store,
        cache_dir=cache_dir,
        workers=workers,
        shard_size=shard_size,
        max_structures=max_structures,
    )
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    shards = math.ceil(len(ds) / shard_size)
    processes = 1 if shards == 1 else min(workers, shards)
    return {
        "structures": len(ds),
        "atoms": int(len(ds.arrays["z"])),
        "seconds": seconds,
        "processes": processes,
        "structures_per_s": len(ds) / seconds,
        "structures_per_s_per_process": len(ds) / seconds / processes,
        # CPU seconds of the build and its workers: the rate of a process that had a core to itself
        "cpu_seconds": cpu,
        "structures_per_cpu_s": len(ds) / cpu,
        "bytes_per_atom": bytes_per_atom(ds.cache_path),
        "cache_path": ds.cache_path,
        "rss": {
            "build_process_hwm_mb": _status_kb(os.getpid(), "VmHWM") / 1024,
            "children_ru_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        },
    }


def _cpu_seconds() -> float:
    """User and system CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def view_transform(seed: int = 0, cutoff: float = 5.0):
    """The default augment config's two view pipelines, as pretraining instantiates them."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"seed": seed, "data": {"cutoff": cutoff}})
    cfg.augment = OmegaConf.load(REPO / "conf" / "augment" / "default.yaml")
    return instantiate(cfg.augment)


def _datamodule(source, cache_dir: str, output_dir: str, max_structures, batch_size: int, workers: int):
    from contrast.data.datamodule import CrystalDataModule

    dm = CrystalDataModule(
        source,
        cutoff=5.0,
        batch_size=batch_size,
        num_workers=workers,
        fractions=(0.9, 0.1, 0.0),
        cache_dir=cache_dir,
        output_dir=output_dir,
        view_transform=view_transform(),
        max_structures=max_structures,
        store="structure",
    )
    dm.setup("fit")
    return dm


def _worker_pids(iterator) -> list[int]:
    return [worker.pid for worker in getattr(iterator, "_workers", [])]


def phase_loader(
    stores: dict[str, dict],
    cache_dir: str,
    output_dir: str,
    batch_size: int,
    workers: int,
    batches: int,
    warmup: int,
    rounds: int,
    rss_batches: list[int],
    main: str,
) -> dict:
    """Worker memory on the ``main`` store, then views/s of every store, interleaved over ``rounds``."""
    setup = {}
    modules = {}
    for name, spec in stores.items():
        start = time.perf_counter()
        modules[name] = _datamodule(
            spec["source"],
            cache_dir,
            os.path.join(output_dir, name),
            spec.get("max_structures"),
            batch_size,
            workers,
        )
        setup[name] = time.perf_counter() - start
    # worker memory: one iterator over the main store, private pages of each worker after k batches
    loader = modules[main].train_dataloader()
    iterator = iter(loader)
    memory, done = [], 0
    for target in sorted(rss_batches):
        while done < target:
            next(iterator)
            done += 1
        pids = _worker_pids(iterator)
        memory.append(
            {
                "batches": done,
                "private_mb": [private_mb(pid) for pid in pids],
                "rss_mb": [_status_kb(pid, "VmRSS") / 1024 for pid in pids],
            }
        )
    del iterator
    main_private = _status_kb(os.getpid(), "VmRSS") / 1024
    # throughput: the same loader settings and number of batches on each store, in rotating order
    views = {name: [] for name in stores}
    atoms = {name: [] for name in stores}
    names = list(stores)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            iterator = iter(modules[name].train_dataloader())
            for _ in range(warmup):
                next(iterator)
            start, count, n_atoms = time.perf_counter(), 0, 0
            for _ in range(batches):
                view_a, view_b = next(iterator)
                count += view_a.num_graphs + view_b.num_graphs
                n_atoms += view_a.num_nodes + view_b.num_nodes
            elapsed = time.perf_counter() - start
            views[name].append(count / elapsed)
            atoms[name].append(n_atoms / elapsed)
            del iterator
    return {
        "setup_seconds": setup,
        "sizes": {name: len(modules[name].dataset) for name in stores},
        "worker_memory": memory,
        "main_rss_mb": main_private,
        "views_per_s": views,
        "view_atoms_per_s": atoms,
    }


def phase_train(source: str, cache_dir: str, run_dir: str, workers: int, timeout: float) -> dict:
    """``python -m contrast.train`` with one optimiser step on the cached store: seconds from process start
    until the step's checkpoint is written, and until the process ends."""
    command = [
        sys.executable,
        "-m",
        "contrast.train",
        f"data.path={source}",
        "data.store=structure",
        f"data.cache_dir={cache_dir}",
        f"data.num_workers={workers}",
        "+trainer.max_steps=1",
        "+trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "test_after_fit=false",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    checkpoints = Path(run_dir) / "checkpoints"
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reader = threading.Thread(target=lambda: setattr(process, "_err", process.stderr.read()), daemon=True)
    reader.start()
    first_step = None
    while process.poll() is None and time.perf_counter() - start < timeout:
        if first_step is None and checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
            first_step = time.perf_counter() - start
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
    process.wait()
    total = time.perf_counter() - start
    reader.join()
    if first_step is None and process.returncode == 0 and any(checkpoints.glob("*.ckpt")):
        first_step = total
    if process.returncode != 0:
        sys.stderr.write(getattr(process, "_err", b"").decode()[-4000:])
    return {"first_step_s": first_step, "process_s": total, "returncode": process.returncode}


PHASES = {
    "generate": phase_generate,
    "build": phase_build,
    "loader": phase_loader,
    "train": phase_train,
}


# -------------------------------------------------------------------------------------------------- driver


def machine() -> dict:
    import torch

    memory_kb = _status_kb_meminfo("MemTotal")
    return {
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(memory_kb / 1024**2, 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _status_kb_meminfo(field: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def check_goals(result: dict) -> dict[str, dict]:
    """Pass or fail of each goal against the measured values (None when not measured)."""
    peak = result["peak_build_rss_mb"]
    sizes = sorted(peak, key=int)
    values = {
        "structure_store_bytes_per_atom": result["structure_store_bytes_per_atom"],
        "build_structures_per_s_per_process": result["build_structures_per_s_per_process"],
        "peak_build_rss_mb_full": peak[sizes[-1]]["max_single_mb"],
        "peak_build_rss_flat": peak[sizes[-1]]["max_single_mb"] / peak[sizes[0]]["max_single_mb"],
        "worker_extra_rss_mb": result.get("worker_extra_rss_mb"),
        "view_throughput_ratio": result.get("view_throughput_ratio"),
        "first_step_s": result.get("first_step_s"),
    }
    goals = {}
    for name, (sense, bound) in GOALS.items():
        value = values[name]
        ok = None if value is None else (value <= bound if sense == "<=" else value >= bound)
        goals[name] = {"value": value, "goal": f"{sense} {bound:g}", "pass": ok}
    return goals


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args: argparse.Namespace) -> dict:
    """Every phase in turn (generate, structure stores, a graph-store sample, view loaders, a first training
    step), each in its own process; the result holds their measurements and the goals checked on them."""
    out = Path(args.out)
    seed_data = Path(args.seed_data)
    if not seed_data.exists():
        seed_data = BUNDLED_SEED
    result: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "n": args.n,
        "shard_size": args.shard_size,
        "build_workers": args.workers,
        "loader_workers": args.loader_workers,
        "seed_data": str(seed_data),
        "cutoff": args.cutoff,
    }
    phases: dict[str, float] = {}
    source = _generate(args, seed_data, out / "data", result, phases)
    _build_structure_stores(args, source, out / "cache", result, phases)
    _build_graph_sample(args, source, out / "cache", result, phases)
    if args.loader_batches > 0:
        _measure_loaders(args, source, out, result, phases)
    if args.train:
        _first_step(args, source, out, result, phases)
    result["phase_seconds"] = phases
    result["goals"] = check_goals(result)
    return result


def _phase(args: argparse.Namespace, name: str, phase_args: dict, sample: bool = False) -> dict:
    return run_phase(name, phase_args, sample=sample, inline=args.inline)


def _generate(args, seed_data: Path, data: Path, result: dict, phases: dict) -> str:
    """Write the synthetic structures; returns the folder, the source every later phase reads."""
    _log(f"generating {args.n} structures from {seed_data}")
    gen = _phase(
        args,
        "generate",
        dict(
            seed_data=str(seed_data),
            folder=str(data),
            n=args.n,
            file_size=args.shard_size,
            workers=args.workers,
            compress=args.gzip,
        ),
    )
    phases["generate"] = gen["phase_seconds"]
    result["generation"] = {k: v for k, v in gen.items() if k != "files"}
    result["generation"]["files"] = len(gen["files"])
    result["generation"]["structures_per_s"] = args.n / gen["seconds"]
    _log(f"generated {args.n} structures in {gen['seconds']:.1f} s ({gen['bytes'] / 1e6:.0f} MB)")
    return str(data)  # the folder: the same source (and cache) as data.path=<folder>


def _build_structure_stores(args, source: str, cache: Path, result: dict, phases: dict) -> None:
    """Structure stores of a small and of the full set: build rate and peak memory against size."""
    builds = {}
    for size in sorted({min(args.rss_small, args.n), args.n}):
        _log(f"building the structure store of {size} structures")
        build = _phase(
            args,
            "build",
            dict(
                source=source,
                cache_dir=str(cache),
                store="structure",
                workers=args.workers,
                shard_size=args.shard_size,
                max_structures=None if size == args.n else size,
            ),
            sample=True,
        )
        builds[size] = build
        phases[f"build_structure_{size}"] = build["phase_seconds"]
        _log(
            f"  {build['structures_per_s_per_process']:.0f} structures/s per process, peak RSS "
            f"{build['rss']['max_single_mb']:.0f} MB (tree {build['rss']['tree_sum_mb']:.0f} MB)"
        )
    full = builds[args.n]
    result["structure_store_bytes_per_atom"] = full["bytes_per_atom"]
    result["build_structures_per_s_per_process"] = full["structures_per_s_per_process"]
    result["build_structures_per_cpu_s"] = full.get("structures_per_cpu_s")
    result["build"] = {
        str(size): {k: v for k, v in b.items() if k != "cache_path"} for size, b in builds.items()
    }
    result["peak_build_rss_mb"] = {str(size): b["rss"] for size, b in builds.items()}


def _build_graph_sample(args, source: str, cache: Path, result: dict, phases: dict) -> None:
    """A graph store (neighbour lists) of a sample: its size per atom and build rate."""
    sample = min(args.graph_sample, args.n)
    _log(f"building the graph store of {sample} structures at {args.cutoff} Å")
    graph = _phase(
        args,
        "build",
        dict(
            source=source,
            cache_dir=str(cache),
            store="graph",
            workers=args.workers,
            shard_size=math.ceil(sample / args.workers),
            max_structures=sample,
            cutoff=args.cutoff,
        ),
        sample=True,
    )
    phases["build_graph_sample"] = graph["phase_seconds"]
    result["edge_store_bytes_per_atom"] = graph["bytes_per_atom"]
    result["graph_build_structures_per_s_per_process"] = graph["structures_per_s_per_process"]
    result["graph_build_structures_per_cpu_s"] = graph.get("structures_per_cpu_s")
    result["graph_build"] = {k: v for k, v in graph.items() if k != "cache_path"}
    shutil.rmtree(graph["cache_path"], ignore_errors=True)


def _measure_loaders(args, source: str, out: Path, result: dict, phases: dict) -> None:
    """View loaders over the full store against a 33k-structure one (and the real seed file when given):
    throughput ratios and the workers' memory."""
    stores = {"full": {"source": source}}
    stores["synthetic_33k"] = {"source": source, "max_structures": min(BASELINE_SIZE, args.n)}
    real = Path(args.seed_data)
    if real.exists() and real.resolve() != BUNDLED_SEED.resolve():
        stores["real"] = {"source": str(real)}
    _log(f"view loaders with {args.loader_workers} workers over {list(stores)}")
    loader = _phase(
        args,
        "loader",
        dict(
            stores=stores,
            cache_dir=str(out / "cache"),
            output_dir=str(out / "loader_runs"),
            batch_size=args.batch_size,
            workers=args.loader_workers,
            batches=args.loader_batches,
            warmup=args.loader_warmup,
            rounds=args.rounds,
            rss_batches=args.rss_batches,
            main="full",
        ),
        sample=False,
    )
    phases["loader"] = loader["phase_seconds"]
    last = loader["worker_memory"][-1]
    result["worker_extra_rss_mb"] = max(last["private_mb"]) if last["private_mb"] else None
    result["worker_memory"] = loader["worker_memory"]
    rate = {name: float(np.median(v)) for name, v in loader["views_per_s"].items()}
    atom_rate = {name: float(np.median(v)) for name, v in loader["view_atoms_per_s"].items()}
    anchor = "real" if "real" in rate else "synthetic_33k"
    result["view_throughput_anchor"] = anchor
    result["view_throughput_ratio"] = rate["full"] / rate[anchor]
    result["view_throughput_ratio_synthetic_33k"] = rate["full"] / rate["synthetic_33k"]
    result["view_atoms_throughput_ratio"] = atom_rate["full"] / atom_rate[anchor]
    result["views_per_s"] = loader["views_per_s"]
    result["view_atoms_per_s"] = loader["view_atoms_per_s"]
    result["loader"] = {
        "batch_size": args.batch_size,
        "batches": args.loader_batches,
        "warmup_batches": args.loader_warmup,
        "rounds": args.rounds,
        "sizes": loader["sizes"],
        "setup_seconds": loader["setup_seconds"],
        "main_rss_mb": loader["main_rss_mb"],
    }
    _log(f"  worker private memory {result['worker_extra_rss_mb']:.0f} MB, views/s {rate}")


def _first_step(args, source: str, out: Path, result: dict, phases: dict) -> None:
    """The time to the first optimiser step of ``python -m contrast.train`` on the built store."""
    _log("first optimiser step of python -m contrast.train on the built store")
    train = _phase(
        args,
        "train",
        dict(
            source=source,
            cache_dir=str(out / "cache"),
            run_dir=str(out / "train_run"),
            workers=args.loader_workers,
            timeout=args.train_timeout,
        ),
    )
    phases["train"] = train["phase_seconds"]
    result["first_step_s"] = train["first_step_s"]
    result["train_process_s"] = train["process_s"]
    result["train_returncode"] = train["returncode"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic structures")
    parser.add_argument("--seed-data", default=str(SHARED_SEED), help="real structures to perturb")
    parser.add_argument(
        "--out",
        default=str(Path(tempfile.gettempdir()) / "contrast-scale"),
        help="folder for the data and the caches (removed afterwards unless --keep)",
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--shard-size", type=int, default=50_000, help="frames per file and store shard")
    parser.add_argument("--workers", type=int, default=2, help="processes generating and building")
    parser.add_argument("--gzip", action="store_true", help="write .extxyz.gz (level 1) instead of .extxyz")
    parser.add_argument("--cutoff", type=float, default=5.0, help="Å, for the graph store sample")
    parser.add_argument("--rss-small", type=int, default=100_000, help="the smaller build for peak RSS")
    parser.add_argument("--graph-sample", type=int, default=20_000, help="structures in the graph store")
    parser.add_argument("--loader-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loader-batches", type=int, default=100, help="timed batches per run (0: skip)")
    parser.add_argument("--loader-warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds")
    parser.add_argument("--rss-batches", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the first-step run")
    parser.add_argument("--train-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic data and caches")
    parser.add_argument(
        "--inline", action="store_true", help="run every phase in this process (quick checks)"
    )
    parser.add_argument("--_phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_args", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def report(result: dict) -> None:
    print(json.dumps({k: v for k, v in result.items() if k != "goals"}, indent=1, default=str))
    for name, goal in result["goals"].items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[goal["pass"]]
        value = "-" if goal["value"] is None else f"{goal['value']:.3g}"
        print(f"{verdict:4s}  {name}: {value} (goal {goal['goal']})")


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args._phase is not None:
        print(json.dumps(PHASES[args._phase](**json.loads(args._args)), default=float), flush=True)
        return None
    try:
        result = run(args)
    finally:
        if not args.keep:
            for part in ("data", "cache", "loader_runs", "train_run"):
                shutil.rmtree(Path(args.out, part), ignore_errors=True)
    report(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


if __name__ == "__main__":
    main()
