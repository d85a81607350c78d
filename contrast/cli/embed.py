"""``python -m contrast.export`` (console script ``contrast-embed``, also ``python -m contrast embed``): one
embedding per structure of a file, written to ``.npz`` or ``.parquet``; the work is
:func:`contrast.embeddings.export.embed_file`. Config: ``conf/embed.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import hydra

from contrast import CONFIG_DIR
from contrast.embeddings.export import embed_file

__all__ = ["main"]


def _run(cfg) -> None:
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True)
    result = embed_file(
        cfg.checkpoint,
        data.pop("path"),
        out=cfg.out,
        batch_size=int(cfg.batch_size),
        device=cfg.device,
        shard=None if cfg.shard is None else str(cfg.shard),
        progress=bool(cfg.progress),
        **data,
    )
    meta = result["meta"]
    start, stop = meta["rows"]
    shard = meta["shard"]
    span = f"rows {start}-{stop - 1}" if stop > start else "no rows"
    where = f" (shard {shard[0]}/{shard[1]}: {span})" if shard else ""
    print(
        f"embedded {stop - start} of {meta['total_rows']} structures{where} with {meta['encoder']} "
        f"[D={meta['embedding_dim']}] -> {Path(cfg.out).resolve()}"
    )
    if meta["skipped"]:
        print(f"skipped {len(meta['skipped'])} bad entries (listed in the file's metadata, meta['skipped'])")


def main() -> None:
    """``python -m contrast.export`` / ``contrast-embed``: Hydra config ``contrast/conf/embed.yaml``."""
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="embed")(_run)()
