"""``python -m contrast map``: an embedding map as a standalone HTML page (:mod:`contrast.embeddings.maps`),
from a checkpoint and a structure file or from embedding files. Config: ``conf/map.yaml``."""

from __future__ import annotations

from pathlib import Path

import hydra

from contrast import CONFIG_DIR

__all__ = ["main", "map_rows"]


def map_rows(cfg) -> tuple[dict, str]:
    """The rows to map (ids, formulas, embeddings, labels) and a title, from embedding files or by embedding
    ``data.path`` with ``checkpoint``."""
    from omegaconf import OmegaConf

    from contrast.embeddings.export import embed_file
    from contrast.embeddings.files import read_embeddings
    from contrast.nn.base import check_pooling, check_readout_layers
    from contrast.pretrained import load_encoder

    if cfg.embeddings:
        return read_embeddings(cfg.embeddings), str(cfg.embeddings)
    if not cfg.checkpoint or not cfg.data.path:
        raise ValueError("map needs embeddings=FILE, or checkpoint=PATH_OR_NAME and data.path=FILE")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    path = data.pop("path")
    targets = list(data.pop("targets") or [])
    if cfg.color not in (None, "element") and cfg.color not in targets:
        targets.append(str(cfg.color))
    encoder = load_encoder(cfg.checkpoint)
    if cfg.pooling:
        encoder.pooling = check_pooling(cfg.pooling)
    if cfg.layers:
        encoder.readout_layers = check_readout_layers(cfg.layers)
    rows = embed_file(
        encoder, path, out=None, targets=targets, batch_size=int(cfg.batch_size), device=cfg.device, **data
    )
    return rows, f"{Path(str(path)).name} · {cfg.checkpoint}"


def _run(cfg) -> None:
    from contrast.embeddings.maps import write_map

    rows, title = map_rows(cfg)
    result = write_map(rows, cfg.out, color=cfg.color, projection=cfg.projection, title=cfg.title or title)
    print(
        f"mapped {result['points']} structures ({result['projection']}) -> {Path(result['path']).resolve()}"
    )


def main() -> None:
    """``python -m contrast map`` / ``contrast-map``: Hydra config ``contrast/conf/map.yaml``."""
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="map")(_run)()


if __name__ == "__main__":
    main()
