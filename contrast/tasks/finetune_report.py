"""The test report of a fine-tuning run: metrics and parity plots per target next to composition baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor


def finetune_report(module: pl.LightningModule, datamodule, output_dir: Path) -> dict[str, Any]:
    """Test metrics of the evaluated weights per target, a parity plot (or confusion matrix) per target, and
    the composition baselines on the same split (fine-tuning beats a probe on the model's own embeddings by
    construction, so those are left out).

    Returns:
        ``{"finetune": {"split": ..., target: metrics + ratio to the best composition baseline},
        "baselines": composition_report(...)}``.
    """
    from contrast.evaluation.probes import (
        classification_metrics,
        confusion_matrix_plot,
        parity_plot,
        regression_metrics,
    )
    from contrast.evaluation.probes.report import composition_report, graph_labels

    hp = module.hparams
    train = [datamodule.train_set[i] for i in range(len(datamodule.train_set))]  # read each graph once
    test = [datamodule.test_set[i] for i in range(len(datamodule.test_set))]
    y = graph_labels(test, hp.targets)  # [m, T]
    out = predict(module, test).numpy()  # [m, T] or logits [m, C]
    baselines = composition_report(train, test, hp.targets, hp.kind, hp.seed)
    scores: dict[str, Any] = {"split": {"train": len(train), "test": len(test)}}
    for t, name in enumerate(hp.targets):
        plots = output_dir / f"plots_{name}"
        composition = [
            (f"{fs}/{probe}", m) for fs, probes in baselines[name].items() for probe, m in probes.items()
        ]
        if hp.kind == "regression":
            scores[name] = regression_metrics(y[:, t], out[:, t])
            parity_plot(y[:, t], out[:, t], plots / "finetune_parity.png", title=f"fine-tuned: {name}")
            best, metrics = min(composition, key=lambda item: item[1]["mae"])
            ratio = scores[name]["mae"] / metrics["mae"] if metrics["mae"] > 0 else float("inf")
            scores[name].update(best_composition=best, vs_best_composition=float(ratio))
        else:
            proba = torch.softmax(torch.from_numpy(out), dim=1).numpy()
            labels = out.argmax(1)
            classes = np.arange(hp.num_classes)
            scores[name] = classification_metrics(y[:, t], labels, proba, classes, labels=classes)
            confusion_matrix_plot(
                y[:, t], labels, plots / "finetune_confusion.png", title=f"fine-tuned: {name}"
            )
            best, metrics = max(composition, key=lambda item: item[1]["accuracy"])
            scores[name].update(best_composition=best, best_composition_accuracy=metrics["accuracy"])
    return {"finetune": scores, "baselines": baselines}


@torch.no_grad()
def predict(module: pl.LightningModule, graphs, batch_size: int = 64) -> Tensor:
    """Predictions of the evaluated weights for a list of graphs: [n, T] in target units, or logits [n, C]."""
    from torch_geometric.loader import DataLoader

    was_training = module.training
    module.eval()
    device = module.target_mean.device
    rows = [module(batch.to(device)).cpu().double() for batch in DataLoader(graphs, batch_size=batch_size)]
    module.train(was_training)
    return torch.cat(rows)
