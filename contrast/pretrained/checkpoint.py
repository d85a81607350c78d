"""Safe checkpoint loading: plain-data unpickling and an allow-listed ``_target_`` builder.

A checkpoint is data, not code. :func:`read_checkpoint` unpickles with ``weights_only=True``, so a file that
would import or call anything beyond tensors and plain containers is refused before any of it runs.
:func:`build_from_config` is the one builder of objects from checkpoint content, shipped cards and the
networks of a task: it checks every ``_target_`` of the whole config (nested dicts and lists included) against
an allow-list before it builds anything, so the hyper-parameters of a checkpoint cannot name an arbitrary
callable either. Hydra's ``instantiate`` is only for the user's own YAML (data, augmentations, trainer,
loggers).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ALLOWED_PREFIXES",
    "ENCODER_PREFIXES",
    "TASK_PREFIXES",
    "check_targets",
    "CheckpointError",
    "encoder_config_and_weights",
    "build_from_config",
    "extract_state_dict",
    "energy_model_from_checkpoint",
    "load_module",
    "read_checkpoint",
]

ALLOWED_PREFIXES: tuple[str, ...] = ("contrast.nn.",)
# What the hyper-parameters of a task may name: its networks, its loss and its optimiser.
TASK_PREFIXES: tuple[str, ...] = ("contrast.nn.", "contrast.losses.", "torch.optim.")
REQUIRED_KEYS: tuple[str, ...] = ("state_dict", "hyper_parameters")
# Where each task keeps its encoder in the state dict (contrastive and probe, energy).
ENCODER_PREFIXES: tuple[str, ...] = ("encoder.", "model.encoder.")
_CONFIG_KEYS = {"_target_", "_args_", "_partial_", "_recursive_", "_convert_"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or built safely.

    Args:
        reason: what is wrong.
        source: the checkpoint file, when known.
    """

    def __init__(self, reason: str, source: str | Path | None = None):
        self.reason = reason
        self.source = None if source is None else str(source)
        super().__init__(f"checkpoint {self.source}: {reason}" if self.source else reason)


def read_checkpoint(path: str | Path, required_keys: Sequence[str] = REQUIRED_KEYS) -> dict[str, Any]:
    """Load a Lightning ``.ckpt`` (or any ``torch.save`` dict) without executing code from it.

    Only ``torch.load(..., weights_only=True)`` is used: tensors, numbers, strings and plain containers load;
    anything else (a ``__reduce__`` that calls a function, a custom class, an OmegaConf object) is refused.

    Args:
        path: the checkpoint file.
        required_keys: top-level keys the checkpoint must have.

    Returns:
        The checkpoint dict, tensors on the CPU.

    Raises:
        CheckpointError: the file is missing, is not a torch checkpoint, would run code when unpickled, or
            lacks a required key. The message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such file", path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(_unpickling_reason(str(error)), path) from None
    except Exception as error:  # torch raises KeyError, RuntimeError, EOFError... for non-checkpoints
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"not a readable torch checkpoint ({first})", path) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"expected a dict at the top level, found {type(checkpoint).__name__}", path)
    missing = [key for key in required_keys if key not in checkpoint]
    if missing:
        found = ", ".join(map(repr, list(checkpoint)[:10])) or "none"
        raise CheckpointError(f"missing key(s) {missing}; top-level keys: {found}", path)
    return checkpoint


def _unpickling_reason(message: str) -> str:
    """Turn torch's weights-only refusal into a one-line reason naming the offending global."""
    if "weights only" in message.lower() or "weights_only" in message.lower():
        found = re.search(r"(?:GLOBAL|global)\s+([\w.]+)", message)
        what = f" (it references {found.group(1)})" if found else ""
        return (
            f"refused: unpickling it would import or call code{what}; only tensors and plain data "
            "(dicts, lists, numbers, strings) are accepted"
        )
    first = message.strip().splitlines()[0] if message.strip() else "unpickling failed"
    return f"not a readable torch checkpoint ({first})"


def _resolve_target(target: Any, allowed_prefixes: Sequence[str]) -> Any:
    """Import ``module.Name`` only if both the path and the object's home module are allow-listed."""
    if not isinstance(target, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", target):
        raise CheckpointError(f"_target_ {target!r} is not a dotted Python path")
    if not any(target.startswith(prefix) for prefix in allowed_prefixes):
        raise CheckpointError(f"_target_ {target!r} is outside the allowed packages {list(allowed_prefixes)}")
    module_name, _, name = target.rpartition(".")
    if name.startswith("_"):
        raise CheckpointError(f"_target_ {target!r} names a private object")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise CheckpointError(f"_target_ {target!r}: cannot import {module_name} ({error})") from None
    obj = getattr(module, name, None)
    if obj is None:
        raise CheckpointError(f"_target_ {target!r}: {module_name} has no attribute {name!r}")
    # A re-exported foreign object (``contrast.nn.x.os``, ``contrast.nn.x.Tensor``) passes the prefix test, so
    # the object itself must be a class or function defined inside the allowed packages.
    home = getattr(obj, "__module__", None) or ""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not any(
        f"{home}.".startswith(prefix) for prefix in allowed_prefixes
    ):
        raise CheckpointError(
            f"_target_ {target!r} is not a class or function defined in {list(allowed_prefixes)}"
        )
    return obj


def check_targets(config: Any, allowed_prefixes: Sequence[str] = ALLOWED_PREFIXES, where: str = "") -> None:
    """Refuse a config any of whose ``_target_`` values, at any depth, is outside ``allowed_prefixes``.

    Walks nested dicts and lists; nothing is built and no module outside the allow-list is imported.

    Raises:
        CheckpointError: naming the first disallowed target and where it sits (``encoder.extra[0]``).
    """
    if isinstance(config, Mapping):
        if "_target_" in config:
            try:
                _resolve_target(config["_target_"], allowed_prefixes)
            except CheckpointError as error:
                raise CheckpointError(f"{error.reason} (at {where or 'the top level'})") from None
        for key, value in config.items():
            check_targets(value, allowed_prefixes, f"{where}.{key}" if where else str(key))
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            check_targets(value, allowed_prefixes, f"{where}[{index}]")


def build_from_config(config: Any, allowed_prefixes: Sequence[str] = ALLOWED_PREFIXES) -> Any:
    """Instantiate a Hydra-style ``_target_`` config, allowing only targets inside ``allowed_prefixes``.

    Every target of the whole config is checked first (:func:`check_targets`), so nothing is built from a
    config that names one disallowed target anywhere. Then nested dicts with a ``_target_`` are built first
    (depth first), lists are walked, and plain dicts stay dicts. ``_args_`` (positional arguments) and
    ``_partial_`` are honoured; ``_recursive_``/``_convert_`` are accepted and ignored.

    Args:
        config: a dict (or list, or scalar) as found in a checkpoint's ``hyper_parameters``.
        allowed_prefixes: dotted prefixes a ``_target_`` must start with.

    Returns:
        The built object, or the config with its nested targets built.

    Raises:
        CheckpointError: a target outside the allow-list, not importable, or failing to construct.
    """
    check_targets(config, allowed_prefixes)
    return _build(config, allowed_prefixes)


def _build(config: Any, allowed_prefixes: Sequence[str]) -> Any:
    if isinstance(config, Mapping):
        built = {key: _build(value, allowed_prefixes) for key, value in config.items()}
        if "_target_" not in config:
            return built
        target = _resolve_target(config["_target_"], allowed_prefixes)
        args = built.get("_args_", [])
        kwargs = {key: value for key, value in built.items() if key not in _CONFIG_KEYS}
        if built.get("_partial_", False):
            return functools.partial(target, *args, **kwargs)
        try:
            return target(*args, **kwargs)
        except TypeError as error:
            raise CheckpointError(f"cannot build {config['_target_']}: {error}") from None
    if isinstance(config, (list, tuple)):
        return type(config)(_build(value, allowed_prefixes) for value in config)
    return config


def extract_state_dict(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix stripped (``"model.encoder.w" -> "w"``).

    ``torch.compile`` wrappers leave ``_orig_mod.`` in the keys; it is removed too, so compiled and plain
    modules load into each other.

    Raises:
        CheckpointError: no key starts with ``prefix``.
    """
    prefix = prefix if not prefix or prefix.endswith(".") else f"{prefix}."
    out = {}
    for key, value in state_dict.items():
        key = key.replace("_orig_mod.", "")
        if key.startswith(prefix):
            out[key[len(prefix) :]] = value
    if not out:
        roots = sorted({key.split(".")[0] + "." for key in state_dict})
        raise CheckpointError(f"no weights under prefix {prefix!r}; the state dict has {roots}")
    return out


def load_module(
    checkpoint: Mapping[str, Any],
    config_key: str,
    prefixes: Sequence[str],
    source: str | Path | None = None,
    allowed_prefixes: Sequence[str] = ALLOWED_PREFIXES,
) -> nn.Module:
    """Build ``hyper_parameters[config_key]`` and load its weights from the first prefix present.

    Example: ``load_module(ckpt, "encoder", ["encoder.", "model.encoder."])`` gives the encoder of a
    contrastive, probe or energy checkpoint.

    Returns:
        The module in eval mode, weights loaded strictly.

    Raises:
        CheckpointError: missing config, disallowed target, or weights that do not fit the module.
    """
    hparams = checkpoint.get("hyper_parameters", {})
    if config_key not in hparams:
        raise CheckpointError(f"hyper_parameters has no {config_key!r} (keys: {sorted(hparams)})", source)
    try:
        module = build_from_config(hparams[config_key], allowed_prefixes)
    except CheckpointError as error:
        raise CheckpointError(error.reason, source) from None
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"hyper_parameters[{config_key!r}] did not build a torch module", source)
    prefix, weights = _weights_under(checkpoint["state_dict"], prefixes, source)
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"weights under {prefix!r} do not fit {config_key}: {error}", source) from None
    return module.eval()


def _weights_under(
    state_dict: Mapping[str, Tensor], prefixes: Sequence[str], source: str | Path | None
) -> tuple[str, dict[str, Tensor]]:
    """The first of ``prefixes`` present in ``state_dict`` and its weights, the prefix stripped."""
    for prefix in prefixes:
        if any(key.replace("_orig_mod.", "").startswith(prefix) for key in state_dict):
            return prefix, extract_state_dict(state_dict, prefix)
    raise CheckpointError(f"no weights under any of {list(prefixes)}", source)


def encoder_config_and_weights(
    checkpoint: Mapping[str, Any], source: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The encoder's ``_target_`` config and its weights, for a task that builds the encoder itself.

    Every target of the config, nested ones included, is checked against the allow-list (nothing is built
    here); the task builds it with the same allow-listed builder.

    Raises:
        CheckpointError: no encoder config, a disallowed target, or no encoder weights.
    """
    hparams = checkpoint.get("hyper_parameters", {})
    config = hparams.get("encoder")
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise CheckpointError(f"hyper_parameters has no encoder config (keys: {sorted(hparams)})", source)
    try:
        check_targets(config, ALLOWED_PREFIXES, "encoder")
    except CheckpointError as error:
        raise CheckpointError(error.reason, source) from None
    _, weights = _weights_under(checkpoint["state_dict"], ENCODER_PREFIXES, source)
    return dict(config), weights


def energy_model_from_checkpoint(
    checkpoint: Mapping[str, Any], source: str | Path | None = None
) -> nn.Module:
    """Rebuild the ``EnergyModel`` of an energy-task checkpoint (``model.encoder.*`` and ``model.head.*``).

    The encoder comes from ``hyper_parameters["encoder"]`` (a ``_target_`` config, allow-listed), the head
    from ``hyper_parameters["head"]`` (``EnergyHead`` keyword arguments, ``in_dim`` taken from the encoder).

    Returns:
        The model in eval mode with all weights and buffers (reference energies, scale, shift) loaded.

    Raises:
        CheckpointError: not an energy checkpoint, a disallowed target, or weights that do not fit.
    """
    from contrast.nn.heads import EnergyHead, EnergyModel

    if not any(key.startswith("model.head.") for key in checkpoint["state_dict"]):
        raise CheckpointError("no energy head weights (model.head.*): not an energy-task checkpoint", source)
    encoder = load_module(checkpoint, "encoder", ["model.encoder."], source)
    head_kwargs = dict(checkpoint["hyper_parameters"].get("head") or {})
    head_kwargs.pop("in_dim", None)
    try:
        head = EnergyHead(in_dim=encoder.feature_dim, **head_kwargs)
        head.load_state_dict(extract_state_dict(checkpoint["state_dict"], "model.head."), strict=True)
    except (TypeError, RuntimeError) as error:
        raise CheckpointError(f"energy head does not fit its weights: {error}", source) from None
    return EnergyModel(encoder, head).eval()
