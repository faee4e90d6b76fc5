"""Tasks: what the targets are, how folds are drawn and how predictions are scored.

A :class:`Task` is bound to a tracks table. It gives the outer folds and the inner
(validation) folds, the training targets of a set of segments, the probe family
(:mod:`mtbc.evaluation.specs`) and how validation scores rank a hyperparameter grid, and it
builds the result. The engine (:mod:`mtbc.evaluation.engine`) runs any task with any system.

- :class:`Classification`: one label per track (``label``; missing = unlabelled, ignored);
  validation accuracy; :class:`~mtbc.evaluation.results.ProbeResult`.
- :class:`Tagging`: several tags per track (``tags`` / ``tags_negative``, unknown entries
  masked out of every loss and metric); validation macro ROC-AUC of the pooled inner folds,
  each fold's scores ranked within it; folds stratified by each track's most frequent
  positive tag; :class:`~mtbc.evaluation.results.TaggingResult`.

A new task is one subclass: implement the abstract methods below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mtbc.data import splits
from mtbc.data.tags import tag_matrix, tag_vocabulary
from mtbc.evaluation.data import check_covered, track_ids
from mtbc.evaluation.memo import table_digest
from mtbc.evaluation.results import (
    FoldOutcome,
    Provenance,
    Result,
    TagScores,
    classification_result,
    layer_score_table,
    tag_layer_table,
    tagging_result,
)
from mtbc.evaluation.specs import SELECTIONS, ProbeSpec, Spec, TagSpec
from mtbc.stats import macro_roc_auc


class Task(ABC):
    """What is predicted and how it is scored, for one tracks table.

    Attributes
    ----------
    name : ``"classification"``, ``"tagging"``...
    metric : the validation score's name in ``folds`` (``val_<metric>``).
    selections : the layer-ranking options the task supports.
    tracks : the tracks table; ``names``: the classes or tags, in column order.
    """

    name: ClassVar[str]
    metric: ClassVar[str]
    selections: ClassVar[tuple] = SELECTIONS

    def __init__(self, tracks: pd.DataFrame):
        self.tracks = tracks
        self.names: list = []

    @property
    def what(self) -> str:
        """What a track that takes part is called in error messages (``labelled``)."""
        return "labelled"

    @abstractmethod
    def used(self) -> np.ndarray:
        """``(n_tracks,)`` bool: the tracks that take part."""

    @abstractmethod
    def folds(self, *, n_splits: int, seed: int) -> tuple[list[splits.Fold], str]:
        """Outer folds over the tracks that take part, and a one-line description."""

    @abstractmethod
    def inner(self, rows: np.ndarray, *, n_splits: int, seed: int) -> list:
        """Grouped validation folds ``[(train_rows, valid_rows), ...]`` within ``rows``."""

    @abstractmethod
    def targets(self, seg_tracks: np.ndarray) -> Any:
        """Training targets of segments whose tracks are ``seg_tracks``."""

    @abstractmethod
    def validation_loss(self, rows: np.ndarray, scores: np.ndarray) -> float:
        """The loss early stopping watches: track ``scores`` of ``rows`` against the truth."""

    @abstractmethod
    def ridge_targets(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), K)`` float targets of the closed-form ridge ranking."""

    @abstractmethod
    def spec(self, kind: str, *, seed: int, params: dict, Cs: Sequence[float]) -> Spec:
        """The probe family ``kind`` (``linear``, ``mlp``) for this task."""

    @abstractmethod
    def grid_scores(self, fold_scores: list[list[np.ndarray]], inner: list
                    ) -> tuple[np.ndarray, list]:
        """Validation score of every grid value, and the evidence kept per grid value.

        ``fold_scores[i][g]``: track scores of inner fold ``i``'s validation tracks for grid
        value ``g``. Higher is better; the first maximum wins.
        """

    @abstractmethod
    def record(self, val_rows: np.ndarray, score: float, evidence: Any) -> Any:
        """What the layer curve keeps of one candidate's validation in one fold."""

    def test_record(self, rows: np.ndarray, scores: np.ndarray) -> Any:
        """What the (descriptive) per-layer test curve keeps of one fold's test tracks."""
        raise NotImplementedError(f"{self.name} has no per-layer test curve")

    @abstractmethod
    def result(self, outcome: FoldOutcome, how: Provenance) -> Result:
        """The task's result from the fold loop's outcome."""

    def check_covered(self, track_index: np.ndarray) -> None:
        """``ValueError`` when a track that takes part has no segment."""
        check_covered(track_index, self.tracks, self.used(), self.what)

    def groups(self) -> np.ndarray:
        return splits.track_groups(self.tracks)

    def holdout(self, rows: np.ndarray, *, n_splits: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """``(train_rows, valid_rows)``: one fold of a grouped split of ``rows`` into
        ``n_splits`` (the MLP's early-stopping holdout: 1/``n_splits`` of the tracks)."""
        return self.inner(rows, n_splits=n_splits, seed=seed)[0]

    def identity(self) -> dict:
        """What the task is, by content (the key of kept evaluations,
        :mod:`mtbc.evaluation.memo`): its name, classes or tags and its whole tracks table."""
        cached = getattr(self, "_identity", None)
        if cached is None:
            cached = {"task": self.name, "names": [str(n) for n in self.names],
                      "tracks": table_digest(self.tracks)}
            self._identity = cached
        return cached


class Classification(Task):
    """Single-label classification of ``tracks['label']`` (module docstring)."""

    name = "classification"
    metric = "accuracy"

    def __init__(self, tracks: pd.DataFrame):
        super().__init__(tracks)
        if "label" not in tracks.columns:
            raise ValueError("the tracks table needs a label column")
        labels = tracks["label"]
        labelled = labels.notna().to_numpy()
        classes = sorted(pd.unique(labels[labelled].astype(str)))
        if len(classes) < 2:
            raise ValueError(f"probing needs at least 2 labelled classes, found {classes}")
        y = np.full(len(tracks), -1)
        y[labelled] = pd.Categorical(labels[labelled].astype(str), categories=classes).codes
        self.names, self.y = classes, y

    @property
    def classes(self) -> list:
        return self.names

    def used(self) -> np.ndarray:
        return self.y >= 0

    def check_covered(self, track_index: np.ndarray) -> None:
        super().check_covered(track_index)
        if pd.Index(track_ids(self.tracks)[self.used()]).has_duplicates:
            raise ValueError("track_id values must be unique among labelled tracks")

    def folds(self, *, n_splits: int, seed: int):
        return splits.outer_folds(self.tracks, n_splits=n_splits, seed=seed)

    def inner(self, rows, *, n_splits: int, seed: int):
        return splits.inner_splits(self.tracks, rows, n_splits=n_splits, seed=seed)

    def holdout(self, rows, *, n_splits: int, seed: int):
        # 1/n_splits of the tracks, but at least two of every label in the holdout where the
        # smallest label allows (a stopping signal read on one track per class is noise):
        # fewer, larger folds on small collections; a holdout, not a CV, so no warning
        rows = np.asarray(rows)
        counts = np.bincount(self.y[rows][self.y[rows] >= 0])
        groups = len(np.unique(splits.track_groups(self.tracks)[rows]))
        k = max(2, min(int(n_splits), int(counts[counts > 0].min()) // 2, groups))
        return self.inner(rows, n_splits=k, seed=seed)[0]

    def targets(self, seg_tracks):
        return self.y[seg_tracks]

    def ridge_targets(self, rows):
        return np.eye(len(self.names))[self.y[rows]]

    def validation_loss(self, rows, scores):
        """Mean cross-entropy of the true classes."""
        p = scores[np.arange(len(rows)), self.y[rows]]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))

    def spec(self, kind, *, seed, params, Cs):
        return ProbeSpec(kind, seed, dict(params), tuple(Cs), n_classes=len(self.names))

    def grid_scores(self, fold_scores, inner):
        correct = np.concatenate(
            [np.stack([s.argmax(axis=1) == self.y[va] for s in per_grid])
             for per_grid, (_, va) in zip(fold_scores, inner, strict=True)], axis=1)
        return correct.mean(axis=1), list(correct)  # (grid,), correctness per val track

    def record(self, val_rows, score, evidence):
        return (val_rows, evidence)

    def test_record(self, rows, scores):
        return (rows, scores.argmax(axis=1) == self.y[rows])

    def result(self, outcome, how):
        rows = outcome.rows
        groups = self.groups()
        return classification_result(
            track_ids(self.tracks)[rows], groups[rows], self.names, self.y[rows], outcome, how,
            layer_score_table(outcome.layer_records, outcome.test_records, n_boot=how.n_boot,
                              seed=how.seed, scorer=how.scorer, groups=groups))


def usable_tags(tracks: pd.DataFrame, tags: Sequence[str] | None = None) -> list[str]:
    """Tags (default: the vocabulary) with at least one known positive and one known negative."""
    Y, mask, names = tag_matrix(tracks, tags=tags if tags is not None else tag_vocabulary(tracks))
    return [t for j, t in enumerate(names) if (Y[mask[:, j], j] == 1).any()
            and (Y[mask[:, j], j] == 0).any()]


def tag_strata(Y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each track's most frequent positive tag (index as str; ``(none)`` without one)."""
    pos = (Y == 1) & mask
    freq = pos.sum(axis=0)
    best = np.where(pos, freq[None, :], -1)
    out = np.where(pos.any(axis=1), best.argmax(axis=1).astype(str), "(none)")
    return out.astype(object)


class Tagging(Task):
    """Multi-label tagging with masks (module docstring).

    ``tags``: the tags to use (default: every tag with a known positive and negative);
    ``rows``: only these track rows take part (e.g. the tracks every fused model covers).
    """

    name = "tagging"
    metric = "roc_auc"

    def __init__(self, tracks: pd.DataFrame, *, tags: Sequence[str] | None = None,
                 rows: np.ndarray | None = None):
        super().__init__(tracks)
        names = usable_tags(tracks, tags)
        if not names:
            raise ValueError("no tag has both a known positive and a known negative track")
        self.Y, self.mask, _ = tag_matrix(tracks, tags=names)
        if rows is not None:
            self.mask = self.mask & np.isin(np.arange(len(tracks)), rows)[:, None]
        self.names = names

    @property
    def tags(self) -> list:
        return self.names

    @property
    def what(self) -> str:
        return "tagged"

    def used(self) -> np.ndarray:
        return self.mask.any(axis=1)

    def folds(self, *, n_splits: int, seed: int):
        """A predefined ``split`` when the tagged tracks have train and test; otherwise
        stratified group k-fold over the tagged tracks (strata: :func:`tag_strata`)."""
        tracks, Y, mask = self.tracks, self.Y, self.mask
        tagged = np.flatnonzero(self.used())
        if len(tagged) == 0:
            raise ValueError("no tagged tracks")
        if "split" in tracks.columns and {"train", "test"} <= set(
                tracks["split"].to_numpy()[tagged].tolist()):
            split = tracks["split"].to_numpy()
            parts = {s: tagged[split[tagged] == s] for s in splits.SPLIT_NAMES}
            valid = parts["valid"] if len(parts["valid"]) else None
            present = [p for p in (parts["train"], valid, parts["test"]) if p is not None]
            splits.check_disjoint(tracks, *present, names=("train", "valid", "test")
                                  if valid is not None else ("train", "test"))
            return ([splits.Fold("test", parts["train"], parts["test"], valid)],
                    f"predefined split: train {len(parts['train'])} / valid "
                    f"{len(parts['valid'])} / test {len(parts['test'])} tracks")
        groups = splits.track_groups(tracks)[tagged]
        k = min(int(n_splits), len(np.unique(groups)))
        folds = []
        for i, (tr, te) in enumerate(splits.stratified_group_folds(
                tag_strata(Y[tagged], mask[tagged]), groups, k, seed, "outer cross-validation")):
            splits.check_disjoint(tracks, tagged[tr], tagged[te], names=("train", "test"))
            folds.append(splits.Fold(f"fold {i}", tagged[tr], tagged[te]))
        return folds, (f"group {k}-fold CV stratified by most frequent tag (seed {seed}): "
                       f"{len(tagged)} tracks in {len(np.unique(groups))} groups")

    def inner(self, rows, *, n_splits: int, seed: int):
        rows = np.asarray(rows)
        groups = splits.track_groups(self.tracks)[rows]
        k = max(2, min(int(n_splits), len(np.unique(groups))))
        out = []
        for tr, va in splits.stratified_group_folds(
                tag_strata(self.Y[rows], self.mask[rows]), groups, k, seed,
                "inner cross-validation"):
            splits.check_disjoint(self.tracks, rows[tr], rows[va],
                                  names=("inner train", "inner valid"))
            out.append((rows[tr], rows[va]))
        return out

    def targets(self, seg_tracks):
        return self.Y[seg_tracks], self.mask[seg_tracks]

    def validation_loss(self, rows, scores):
        """Mean binary cross-entropy over the known track-tag entries."""
        Y, mask = np.nan_to_num(self.Y[rows].astype(np.float64)), self.mask[rows]
        p = np.clip(scores, 1e-12, 1 - 1e-12)
        bce = -(Y * np.log(p) + (1 - Y) * np.log(1 - p))
        return float((bce * mask).sum() / max(1, mask.sum()))

    def ridge_targets(self, rows):
        """0/1 tags; an unknown entry takes its tag's rate among the known ones in ``rows``
        (so it pulls the fit nowhere)."""
        Y, mask = np.nan_to_num(self.Y[rows].astype(np.float64)), self.mask[rows]
        known = mask.sum(axis=0)
        rate = np.where(known > 0, (Y * mask).sum(axis=0) / np.maximum(known, 1), 0.0)
        return np.where(mask, Y, rate[None, :])

    def spec(self, kind, *, seed, params, Cs):
        return TagSpec(kind, seed, dict(params), tuple(Cs))

    def grid_scores(self, fold_scores, inner):
        # ranked within each validation fold (see mtbc.stats.fold_ranks: no fold offsets)
        pooled = [[rankdata(s, axis=0) / len(va) for s in per_grid]
                  for per_grid, (_, va) in zip(fold_scores, inner, strict=True)]
        val_rows = np.concatenate([va for _, va in inner])
        aucs = [macro_roc_auc(self.Y[val_rows], np.concatenate([p[g] for p in pooled]),
                              self.mask[val_rows]) for g in range(len(pooled[0]))]
        return np.nan_to_num(np.asarray(aucs), nan=-np.inf), [None] * len(aucs)

    def record(self, val_rows, score, evidence):
        return score

    def result(self, outcome, how):
        rows = outcome.rows
        scores = TagScores(track_ids=track_ids(self.tracks)[rows], Y=self.Y[rows],
                           S=outcome.scores, mask=self.mask[rows], groups=self.groups()[rows],
                           fold=outcome.fold_names)
        return tagging_result(scores, self.names, how, folds=outcome.folds_table(self.metric),
                              layer_scores=tag_layer_table(outcome.layer_records))
