"""Fine-tuning measured like the probes: same folds, choices on validation tracks only.

:func:`evaluate_finetune`: the outer folds of :func:`mtbc.data.splits.outer_folds` (the
same tracks, folds and seed as notebook 04); in each fold the learning rate (among
``TrainOptions.lrs``) and the number of epochs (early stopping) are chosen on validation
tracks only -- the predefined ``valid`` split, else the first grouped inner split of the
fold's training tracks, seeded as the probes' inner CV -- then the top is retrained on the
fold's training tracks with them and predicts the test tracks (mean of segment
probabilities). :func:`compare_with_frozen` gives the group-bootstrap CI of both systems
and the group-aware paired test on the same test tracks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc.data import splits
from mtbc.evaluation import bootstrap_ci, classification_metrics, evaluate_probe, paired_test
from mtbc.extractors.partial import Split
from mtbc.finetune.device import training_precision
from mtbc.finetune.train import (
    Checkpoint,
    FineTuned,
    RunData,
    TrainOptions,
    Watch,
    best_epoch,
    track_probabilities,
    train_run,
)
from mtbc.finetune.trunk import stack_segments


@dataclass(frozen=True)
class Choice:
    """What validation chose for one training part: learning rate, epochs, and the
    per-epoch history of every learning rate tried (``lr`` column)."""

    lr: float
    epochs: int
    valid_loss: float
    history: pd.DataFrame


@dataclass(frozen=True)
class FinetuneResult:
    """Out-of-fold track predictions of the fine-tuned model.

    ``predictions``: index ``track_id``; ``label, predicted, correct, fold``.
    ``folds``: per fold the chosen ``lr``, ``epochs``, validation loss, track counts.
    ``history``: per fold, phase (``select`` / ``refit``), lr and epoch: losses.
    ``metrics``: ``metric, value, ci_low, ci_high`` (group bootstrap over test tracks).
    """

    name: str
    predictions: pd.DataFrame
    folds: pd.DataFrame
    history: pd.DataFrame
    metrics: pd.DataFrame
    classes: list
    split: str
    seed: int

    def metric(self, name: str = "accuracy") -> float:
        return float(self.metrics.set_index("metric").loc[name, "value"])


def _codes(tracks: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    labels = tracks["label"]
    classes = sorted(pd.unique(labels.dropna().astype(str)))
    codes = np.full(len(tracks), -1)
    known = labels.notna().to_numpy()
    codes[known] = pd.Categorical(labels[known].astype(str), categories=classes).codes
    return codes, classes


def _key(**fields: Any) -> str:
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """What every run of one evaluation shares: trunk outputs (one array per track row),
    class codes per row, the split, options and where checkpoints go (``None``: none);
    ``progress`` and ``on_epoch`` as :class:`mtbc.finetune.train.Watch` has them."""

    trunks: Sequence[np.ndarray]
    y: np.ndarray
    n_classes: int
    split: Split
    options: TrainOptions
    workdir: Path | None = None
    tag: str = ""
    on_epoch: Callable | None = None
    progress: bool = False

    def run(self, train_rows, valid_rows, *, lr: float, epochs: int, what: str
            ) -> tuple[FineTuned, list[dict]]:
        X, owner = stack_segments(self.trunks, train_rows)
        data = RunData(X, self.y[np.asarray(train_rows)][owner])
        if valid_rows is not None:
            VX, vown = stack_segments(self.trunks, valid_rows)
            data = RunData(data.X, data.y, VX, vown, self.y[np.asarray(valid_rows)])
        model = FineTuned(self.split.top, self.split.dim, self.n_classes,
                          seed=self.options.seed)
        key = {"tag": self.tag, "what": what,
               "rows": _key(t=list(map(int, train_rows)),
                            v=None if valid_rows is None else list(map(int, valid_rows))),
               "options": _key(**self.options.__dict__)}
        folder = None if self.workdir is None else self.workdir / _key(lr=lr, **key)
        hist = train_run(model, data, lr=lr, epochs=epochs, options=self.options,
                         patience=self.options.patience if valid_rows is not None else None,
                         checkpoint=None if folder is None else Checkpoint(folder, key),
                         watch=Watch(self.progress, self.on_epoch))
        return model, hist


def choose(job: Job, train_rows, valid_rows, *, what: str) -> Choice:
    """Train with every learning rate on ``train_rows``, early-stopped on ``valid_rows``;
    the lowest validation loss picks lr and epochs (ties: first lr, fewer epochs)."""
    rows, best = [], None
    for lr in job.options.lrs:
        _, hist = job.run(train_rows, valid_rows, lr=lr, epochs=job.options.max_epochs,
                          what=f"{what} select")
        rows += [{"lr": lr, **h} for h in hist]
        epoch, loss = best_epoch(hist)
        if best is None or loss < best[2]:
            best = (lr, epoch, loss)
    return Choice(best[0], best[1], best[2], pd.DataFrame(rows))


def validation_split(tracks: pd.DataFrame, fold: splits.Fold, seed: int, k: int):
    """``(train, valid)`` rows for choices in outer fold ``k``: the predefined valid split,
    else the first grouped inner split (seed ``seed + 1000 + k``, as the probes')."""
    if fold.valid is not None:
        return fold.train, fold.valid
    return splits.inner_splits(tracks, fold.train, n_splits=3, seed=seed + 1000 + k)[0]


def evaluate_finetune(job: Job, tracks: pd.DataFrame, *, n_splits: int = 5,
                      n_boot: int = 1000, name: str = "fine-tuned") -> FinetuneResult:
    """Out-of-fold predictions of the fine-tuned top on every labelled track (module doc)."""
    seed = job.options.seed
    folds, desc = splits.outer_folds(tracks, n_splits=n_splits, seed=seed)
    _, classes = _codes(tracks)
    pred_rows, probas, fold_names, fold_recs, hist = [], [], [], [], []
    for k, fold in enumerate(folds):
        tr, va = validation_split(tracks, fold, seed, k)
        choice = choose(job, tr, va, what=fold.name)
        model, refit = job.run(fold.train, None, lr=choice.lr, epochs=choice.epochs,
                               what=f"{fold.name} refit")
        X, owner = stack_segments(job.trunks, fold.test)
        probas.append(track_probabilities(
            model, X, owner, len(fold.test),
            precision=training_precision(job.options.precision, model.device)))
        pred_rows.append(fold.test)
        fold_names += [fold.name] * len(fold.test)
        fold_recs.append({"fold": fold.name, "lr": choice.lr, "epochs": choice.epochs,
                          "valid_loss": choice.valid_loss, "n_train": len(fold.train),
                          "n_valid": len(va), "n_test": len(fold.test)})
        hist.append(choice.history.assign(fold=fold.name, phase="select"))
        hist.append(pd.DataFrame(refit).assign(fold=fold.name, phase="refit", lr=choice.lr))
    rows = np.concatenate(pred_rows)
    pred = np.concatenate(probas).argmax(axis=1)
    sub = tracks.iloc[rows]
    table = pd.DataFrame({"label": sub["label"].astype(str).to_numpy(),
                          "predicted": np.asarray(classes)[pred], "fold": fold_names},
                         index=pd.Index(sub["track_id"].to_numpy(), name="track_id"))
    table["correct"] = table["label"] == table["predicted"]
    return FinetuneResult(name, table, pd.DataFrame(fold_recs),
                          pd.concat(hist, ignore_index=True),
                          metrics_frame(table, tracks, n_boot=n_boot, seed=seed),
                          classes, desc, seed)


def _groups_for(table: pd.DataFrame, tracks: pd.DataFrame) -> np.ndarray:
    groups = pd.Series(splits.track_groups(tracks), index=tracks["track_id"].to_numpy())
    return groups.loc[table.index].to_numpy()


def metrics_frame(table: pd.DataFrame, tracks: pd.DataFrame, *, n_boot: int, seed: int
                  ) -> pd.DataFrame:
    """Accuracy and macro F1 of a predictions table with group-bootstrap 95% CIs."""
    values = classification_metrics(table["label"], table["predicted"])
    cis = bootstrap_ci(table["label"], table["predicted"], groups=_groups_for(table, tracks),
                       n_boot=n_boot, seed=seed)
    return pd.DataFrame([{"metric": m, "value": float(values[m]), "ci_low": cis[m][0],
                          "ci_high": cis[m][1]} for m in ("accuracy", "f1_macro")])


def frozen_probe(features: np.ndarray, track_index: np.ndarray, tracks: pd.DataFrame, *,
                 seed: int = 0, n_splits: int = 5, n_boot: int = 1000, name: str = "frozen"):
    """The frozen-embedding linear probe of the same model on the same folds.

    The one adapter to the probe evaluation (``mtbc.evaluation.evaluate_probe``);
    returns its result, whose ``predictions`` are indexed by ``track_id``.
    """
    return evaluate_probe(features, track_index, tracks, probe="linear", seed=seed,
                          n_splits=n_splits, n_boot=n_boot, name=name)


def compare_with_frozen(tuned: FinetuneResult, frozen_predictions: pd.DataFrame,
                        tracks: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
                        ) -> dict[str, Any]:
    """Paired, group-aware comparison on the test tracks both systems predicted.

    Returns a dict: ``gain`` (fine-tuned minus frozen accuracy), ``ci_low``, ``ci_high``,
    ``p_value``, both accuracies, ``n_tracks``, ``n_groups``, ``method``.
    """
    common = tuned.predictions.index.intersection(frozen_predictions.index)
    a = tuned.predictions.loc[common]
    b = frozen_predictions.loc[common]
    test = paired_test(a["label"].to_numpy(), a["predicted"].to_numpy(),
                       b["predicted"].astype(str).to_numpy(),
                       groups=_groups_for(a, tracks), n_boot=n_boot, seed=seed)
    return {"gain": test.diff, "ci_low": test.ci_low, "ci_high": test.ci_high,
            "p_value": test.p_value, "finetuned_accuracy": test.value_a,
            "frozen_accuracy": test.value_b, "n_tracks": test.n_tracks,
            "n_groups": test.n_groups, "method": test.method}
