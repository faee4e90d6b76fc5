"""One fine-tuning study: trunk cache, cross-validated fine-tuning, frozen probe, final model.

:func:`finetune_collection` is what ``mtbc finetune`` and notebook 09 call. Example::

    from mtbc.finetune import FinetuneSpec, finetune_collection
    report = finetune_collection(tracks, FinetuneSpec("musicnn"), store=store, workdir=tmp)
    report.comparison["gain"], report.comparison["p_value"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore, load_embeddings
from mtbc.extractors import Extractor, ExtractorConfigError, get_extractor
from mtbc.extractors.partial import Split
from mtbc.finetune.device import training_precision
from mtbc.finetune.model import save_model
from mtbc.finetune.protocol import (
    FinetuneResult,
    Job,
    _codes,
    choose,
    compare_with_frozen,
    evaluate_finetune,
    frozen_probe,
)
from mtbc.finetune.train import TrainOptions
from mtbc.finetune.trunk import trunk_fingerprint, trunk_outputs


@dataclass(frozen=True)
class FinetuneSpec:
    """What to fine-tune and how.

    Attributes
    ----------
    extractor : extractor name (``musicnn``, ``mert``, ``vggish``).
    options : its options (as ``-o key=value`` / the run's ``extractors`` entry).
    train_layers : K of ``trunk_and_top`` (``None``: the extractor's default).
    lora : a LoRA rank (MERT only): adapters on the attention of those K layers train.
    train : :class:`TrainOptions` (learning-rate grid, epochs, seed).
    n_splits, n_boot : outer folds (as notebook 04) and bootstrap resamples.
    """

    extractor: str
    options: dict[str, Any] = field(default_factory=dict)
    train_layers: int | None = None
    train: TrainOptions = TrainOptions()
    n_splits: int = 5
    n_boot: int = 1000
    lora: int | None = None


@dataclass
class FinetuneReport:
    """The fine-tuned result, the frozen probe's, their paired comparison and provenance."""

    tuned: FinetuneResult
    frozen: Any
    comparison: dict[str, Any]
    extractor: Extractor
    split: Split
    trunk_fingerprint: str
    seconds: dict[str, float]
    job: Job
    precision: str = "float32"

    def batch_sizes(self) -> list[int]:
        """The batch sizes the training runs used (one unless a GPU's free memory changed)."""
        h = self.tuned.history
        return sorted({int(b) for b in h["batch_size"].dropna()}) if "batch_size" in h else []

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: accuracies with CIs, gain, CI, p, n, choices per fold, the
        device, the precision the trunk and the training ran in, the batch size and the
        number of segment passes the cross-validation made (``segments_trained``)."""
        def acc(metrics: pd.DataFrame) -> dict[str, float]:
            row = metrics.set_index("metric").loc["accuracy"]
            return {"value": float(row["value"]), "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"])}

        return {"extractor": self.extractor.name, "fingerprint": self.extractor.fingerprint,
                "trunk_fingerprint": self.trunk_fingerprint, "split_point": self.split.point,
                **self.split.details, "finetuned_accuracy": acc(self.tuned.metrics),
                "frozen_accuracy": acc(self.frozen.metrics), "comparison": self.comparison,
                "folds": self.tuned.folds.to_dict(orient="records"),
                "split": self.tuned.split, "seed": self.tuned.seed, "seconds": self.seconds,
                "device": str(getattr(self.extractor, "device", "cpu")),
                "precision": self.precision, "batch_size": self.batch_sizes(),
                "segments_trained": self.segments_trained(),
                "weights_kind": self.extractor.metadata().get("weights_kind", "unknown")}

    def segments_trained(self) -> int:
        """Segment passes (forward + backward) of every epoch of every run of the
        cross-validation: what ``seconds["finetune"]`` paid for."""
        h = self.tuned.history
        return int(h["segments"].fillna(0).sum()) if "segments" in h else 0


def build_split(spec: FinetuneSpec) -> tuple[Extractor, Split]:
    """The extractor of ``spec`` and its split (``ExtractorConfigError`` for a model without
    one or a ``train_layers`` it does not have)."""
    ext = get_extractor(spec.extractor, **spec.options)
    if not hasattr(ext, "trunk_and_top"):
        raise ExtractorConfigError(f"extractor {spec.extractor!r} has no trainable layers to "
                                   f"fine-tune; use musicnn, mert or vggish")
    if spec.lora is not None and spec.extractor != "mert":
        raise ExtractorConfigError(f"extractor {spec.extractor}: LoRA is for MERT's attention "
                                   f"layers; use --train-layers for {spec.extractor}")
    kwargs = {} if spec.lora is None else {"lora": spec.lora}
    try:
        split = (ext.trunk_and_top(**kwargs) if spec.train_layers is None
                 else ext.trunk_and_top(spec.train_layers, **kwargs))
    except ValueError as exc:  # a K out of range, VGGish with PCA
        raise ExtractorConfigError(f"extractor {spec.extractor}: {exc}") from None
    return ext, split


def labelled(tracks: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows of a tracks table, renumbered from 0."""
    return tracks.loc[tracks["label"].notna()].reset_index(drop=True)


def frozen_features(tracks: pd.DataFrame, ext: Extractor, split: Split, trunks: list,
                    store: EmbeddingStore, *, progress: bool = False):
    """``(tracks_subset, (segments, track_index))`` of the extractor's frozen embedding:
    derived from the trunk outputs when the split allows it, else from the cache (extracting
    what is missing)."""
    if split.embedding is not None:
        parts = [split.embedding(t) for t in trunks]
        index = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
        return tracks, (np.concatenate(parts).astype(np.float32), index)
    extract_collection(tracks, ext, store, progress=progress)
    return load_embeddings(tracks, store, ext.fingerprint, reduce=None)


def finetune_collection(tracks: pd.DataFrame, spec: FinetuneSpec, *, store: EmbeddingStore,
                        workdir: str | Path | None, progress: bool = False,
                        on_epoch=None) -> FinetuneReport:
    """Fine-tune ``spec``'s extractor on the labelled ``tracks`` (out-of-fold, as notebook
    04) and compare with its frozen linear probe on the same test tracks.

    ``workdir``: checkpoint folder (a rerun resumes there); ``None``: no checkpoints.
    """
    t0 = time.perf_counter()
    tracks = labelled(tracks)
    ext, split = build_split(spec)
    precision = training_precision(spec.train.precision, getattr(ext, "device", "cpu"))
    trunks = trunk_outputs(tracks, ext, split, store, progress=progress, precision=precision)
    t1 = time.perf_counter()
    y, classes = _codes(tracks)
    fp = trunk_fingerprint(ext, split, precision)
    job = Job(trunks, y, len(classes), split, spec.train,
              None if workdir is None else Path(workdir) / fp, tag=fp, on_epoch=on_epoch,
              progress=progress)
    tuned = evaluate_finetune(job, tracks, n_splits=spec.n_splits, n_boot=spec.n_boot,
                              name=f"{ext.name} fine-tuned ({split.details.get('trainable')})")
    t2 = time.perf_counter()
    sub, (X, index) = frozen_features(tracks, ext, split, trunks, store, progress=progress)
    frozen = frozen_probe(X, index, sub, seed=spec.train.seed, n_splits=spec.n_splits,
                          n_boot=spec.n_boot, name=f"{ext.name} frozen (linear probe)")
    comparison = compare_with_frozen(tuned, frozen.predictions, tracks, n_boot=spec.n_boot,
                                     seed=spec.train.seed)
    t3 = time.perf_counter()
    return FinetuneReport(tuned, frozen, comparison, ext, split, fp,
                          {"trunk": t1 - t0, "finetune": t2 - t1, "frozen_probe": t3 - t2},
                          job, precision)


def train_final(report: FinetuneReport, tracks: pd.DataFrame, spec: FinetuneSpec,
                out: str | Path) -> Path:
    """Retrain on every labelled track (lr and epochs chosen on the first grouped inner
    split of all of them) and save the model for ``mtbc predict``; returns its JSON path."""
    from mtbc.data import splits

    tracks = labelled(tracks)
    rows = np.arange(len(tracks))
    tr, va = splits.inner_splits(tracks, rows, n_splits=3, seed=spec.train.seed + 1000)[0]
    choice = choose(report.job, tr, va, what="final")
    model, _ = report.job.run(rows, None, lr=choice.lr, epochs=choice.epochs, what="final refit")
    k = report.split.details.get("train_layers")
    return save_model(out, model, {
        "extractor": report.extractor.name, "options": spec.options,
        "fingerprint": report.extractor.fingerprint, "train_layers": k, "lora": spec.lora,
        "split_point": report.split.point, "classes": list(report.tuned.classes),
        "lr": choice.lr, "epochs": choice.epochs, "n_tracks": len(tracks),
        "precision": report.precision,
        "summary": report.summary()})
