"""Choosing a layer and a hyperparameter on validation tracks only (used by the protocol).

:class:`Design` groups segments by track; :class:`ProbeSpec` scores a hyperparameter grid on
validation data and builds the final probe; :func:`choose` picks the best (candidate layer,
grid value) by pooled track-level validation accuracy; :func:`fit_fold` chooses and refits;
:func:`predict_tracks` averages segment probabilities per track. Ties go to the earlier
candidate: lower layer, smaller ``C``, fewer epochs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mtbc.analysis.probes import (
    DEFAULT_CS,
    PROBES,
    LinearProbe,
    MLPProbe,
    check_layer,
    make_scaler,
    safe_std,
    take_layer,
)

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SELECTIONS = ("auto", "probe", "linear", "ridge")


class Design:
    """Segments grouped by track: which rows of the features belong to which track."""

    def __init__(self, track_index: np.ndarray, n_tracks: int, y: np.ndarray):
        self.seg_track = np.asarray(track_index, dtype=np.int64)
        self.order = np.argsort(self.seg_track, kind="stable")
        self.counts = np.bincount(self.seg_track, minlength=n_tracks)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.y = y  # class code per track row, -1 unlabelled

    def segments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment indices of ``rows`` (grouped by track, in ``rows`` order) and their counts."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.counts[rows]
        local = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.repeat(self.starts[rows] - local, counts) + np.arange(counts.sum())
        return self.order[pos], counts

    def seg_labels(self, seg: np.ndarray) -> np.ndarray:
        return self.y[self.seg_track[seg]]

    @staticmethod
    def track_mean(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Mean over each track's consecutive segment rows: ``(n_seg, K) -> (n_tracks, K)``."""
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.add.reduceat(scores, offsets, axis=0) / counts[:, None]


def expand_classes(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Put the columns of classes seen in training into the full class layout."""
    if len(present) == n_classes:
        return proba
    out = np.zeros((len(proba), n_classes), dtype=proba.dtype)
    out[:, present] = proba
    return out


def standardise(xtr: np.ndarray, xva: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = xtr.mean(axis=0, dtype=np.float64)
    std = safe_std(mean, xtr.std(axis=0, dtype=np.float64))
    return (((xtr - mean) / std).astype(np.float32), ((xva - mean) / std).astype(np.float32))


@dataclass
class ProbeSpec:
    """How to score a grid of hyperparameters on validation data, and build the final probe."""

    kind: str  # "linear", "mlp" or "ridge"
    n_classes: int
    seed: int
    params: dict = field(default_factory=dict)
    Cs: tuple = DEFAULT_CS

    @property
    def param(self) -> str:
        return {"linear": "C", "mlp": "epochs", "ridge": "alpha"}[self.kind]

    @property
    def grid(self) -> list:
        if self.kind == "linear":
            return list(self.Cs)
        if self.kind == "mlp":
            return list(range(1, int(self.params.get("max_epochs", 100)) + 1))
        return list(RIDGE_ALPHAS)

    def estimator(self, value):
        if self.kind == "linear":
            return LinearProbe(C=value, random_state=self.seed, **self.params)
        if self.kind == "mlp":
            return MLPProbe(random_state=self.seed, **{**self.params, "max_epochs": int(value)})
        raise ValueError("the ridge scorer only ranks layers; it is not a probe")

    def path(self, xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray) -> list[np.ndarray]:
        """Validation scores ``(n_va, n_classes)`` for every grid value."""
        k = self.n_classes
        present = np.unique(ytr)
        if self.kind == "ridge":
            return ridge_path(xtr, ytr, xva, k)
        if len(present) < 2:  # a degenerate split: predict the only class
            one = np.zeros((len(xva), k))
            one[:, present] = 1.0
            return [one] * len(self.grid)
        if self.kind == "linear":
            params = {key: v for key, v in self.params.items() if key != "scaler"}
            scaler = make_scaler(self.params.get("scaler")).fit(xtr)
            ztr, zva = scaler.transform(xtr), scaler.transform(xva)
            model = LogisticRegression(warm_start=True, random_state=self.seed,
                                       max_iter=params.get("max_iter", 1000),
                                       tol=params.get("tol", 1e-4))
            out = []
            for c in self.grid:  # increasing C, each start from the previous optimum
                model.set_params(C=c).fit(ztr, ytr)
                out.append(expand_classes(model.predict_proba(zva), present, k))
            return out
        probe = self.estimator(self.grid[-1]).fit(xtr, ytr, eval_X=xva)
        return [expand_classes(p, present, k) for p in probe.eval_proba_]


def ridge_path(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, k: int) -> list[np.ndarray]:
    """Closed-form ridge classifier (one-hot targets, intercept) for every strength at once."""
    a, b = standardise(xtr, xva)
    y = np.zeros((len(ytr), k))
    y[np.arange(len(ytr)), ytr] = 1.0
    ybar = y.mean(axis=0)
    yc = y - ybar
    n, d = a.shape
    if n <= d:  # dual: (A A^T + alpha I)^-1
        w, u = np.linalg.eigh((a @ a.T).astype(np.float64))
        p = (b @ a.T).astype(np.float64) @ u
        q = u.T @ yc
    else:  # primal: (A^T A + alpha I)^-1
        w, u = np.linalg.eigh((a.T @ a).astype(np.float64))
        p = b.astype(np.float64) @ u
        q = u.T @ (a.T.astype(np.float64) @ yc)
    w = np.clip(w, 0.0, None)
    scale = w.sum() / max(1, np.count_nonzero(w > w.max() * 1e-10))
    return [p @ (q / (w + r * scale)[:, None]) + ybar for r in RIDGE_ALPHAS]


@dataclass
class Choice:
    candidate: Any
    value: Any
    accuracy: float
    val_rows: np.ndarray
    by_candidate: dict  # candidate -> (accuracy, correctness per val row, grid value)


View = Callable[[Any, np.ndarray], np.ndarray]


def choose(design: Design, view: View, candidates: Sequence, inner: Sequence,
            spec: ProbeSpec) -> Choice:
    """Best (candidate, grid value) by pooled track-level validation accuracy over ``inner``."""
    val_rows = np.concatenate([va for _, va in inner])
    best, by_candidate = None, {}
    for cand in candidates:
        correct = []
        for tr, va in inner:
            s_tr, _ = design.segments(tr)
            s_va, c_va = design.segments(va)
            scores = spec.path(view(cand, s_tr), design.seg_labels(s_tr), view(cand, s_va))
            truth = design.y[va]
            correct.append(np.stack([design.track_mean(s, c_va).argmax(axis=1) == truth
                                     for s in scores]))
        correct = np.concatenate(correct, axis=1)  # (grid, val tracks)
        acc = correct.mean(axis=1)
        g = int(np.argmax(acc))  # first maximum: the simpler model on ties
        by_candidate[cand] = (float(acc[g]), correct[g], spec.grid[g])
        if best is None or acc[g] > best.accuracy:
            best = Choice(cand, spec.grid[g], float(acc[g]), val_rows, by_candidate)
    return best


def fit_fold(design: Design, view: View, candidates: Sequence, inner: Sequence,
              refit_rows: np.ndarray, spec: ProbeSpec, scorer: ProbeSpec) -> tuple[Any, Choice, Choice]:
    """Choose on validation, refit on ``refit_rows``: (fitted probe, layer choice, param choice)."""
    layer_choice = choose(design, view, candidates, inner, scorer)
    if scorer is spec or spec.kind == scorer.kind:
        param_choice = layer_choice
    else:
        param_choice = choose(design, view, [layer_choice.candidate], inner, spec)
    segs, _ = design.segments(refit_rows)
    probe = spec.estimator(param_choice.value)
    probe.fit(view(layer_choice.candidate, segs), design.seg_labels(segs))
    return probe, layer_choice, param_choice


def predict_tracks(probe, design: Design, view: View, candidate, rows: np.ndarray,
                    n_classes: int) -> np.ndarray:
    segs, counts = design.segments(rows)
    proba = expand_classes(probe.predict_proba(view(candidate, segs)), probe.classes_, n_classes)
    return design.track_mean(proba, counts)


def layer_view(features: np.ndarray) -> View:
    cache: dict[str, np.ndarray] = {}

    def view(layer, segs):
        if isinstance(layer, str):
            if "mean" not in cache:
                cache["mean"] = take_layer(features, "mean")
            return cache["mean"][segs]
        return features[segs, layer]

    return view


def candidate_layers(layer, n_layers: int) -> list:
    if isinstance(layer, str) and layer == "select":
        return list(range(n_layers)) + (["mean"] if n_layers > 1 else [])
    check_layer(layer, n_layers)
    return [layer if isinstance(layer, str) else int(layer) % n_layers]


def resolve_selection(probe: str, selection: str) -> str:
    """Validate the options; returns the resolved selection (``"auto"`` made concrete)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, not {probe!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if selection == "auto":
        return "probe" if probe == "linear" else "linear"
    return selection


def layer_scorer(spec: ProbeSpec, selection: str, params: dict) -> ProbeSpec:
    """The spec that scores layers under ``selection`` (resolved)."""
    if selection == "probe" or (selection == "linear" and spec.kind == "linear"):
        return spec
    if selection == "linear":
        keep = {k: v for k, v in params.items() if k in ("scaler", "max_iter", "tol")}
        return ProbeSpec("linear", spec.n_classes, spec.seed, keep, spec.Cs)
    return ProbeSpec("ridge", spec.n_classes, spec.seed)


@contextmanager
def limit_threads(n: int | None, *, torch_too: bool = False):
    """Limit BLAS/OpenMP (and torch's intra-op) threads to ``n`` inside the block (None: as is)."""
    if n is None:
        yield
        return
    torch = None
    if torch_too or "torch" in sys.modules:
        import torch
    old = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


@dataclass(frozen=True)
class ProbeData:
    """Validated probe inputs: segment ``features`` ``(N, L, D)``, their ``track_index`` into the
    tracks table, the sorted ``classes`` and ``y``, the class code per track row (-1:
    unlabelled)."""

    features: np.ndarray
    track_index: np.ndarray
    classes: list
    y: np.ndarray

    @property
    def n_layers(self) -> int:
        return self.features.shape[1]

    @property
    def dim(self) -> int:
        return self.features.shape[2]


def prepare_data(features, track_index, tracks: pd.DataFrame) -> ProbeData:
    """Validate segment features against the tracks table (raises ``ValueError`` saying what
    is wrong)."""
    features = np.asarray(features)
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise ValueError(f"features must be (n_segments, n_layers, dim), got {features.shape}")
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float32)
    track_index = np.asarray(track_index)
    if track_index.shape != (len(features),):
        raise ValueError(f"track_index must have one entry per segment ({len(features)}), "
                         f"got shape {track_index.shape}")
    if len(track_index) and (track_index.min() < 0 or track_index.max() >= len(tracks)):
        raise ValueError("track_index holds positions outside the tracks table")
    if "label" not in tracks.columns:
        raise ValueError("the tracks table needs a label column")
    labels = tracks["label"]
    labelled = labels.notna().to_numpy()
    classes = sorted(pd.unique(labels[labelled].astype(str)))
    if len(classes) < 2:
        raise ValueError(f"probing needs at least 2 labelled classes, found {classes}")
    y = np.full(len(tracks), -1)
    y[labelled] = pd.Categorical(labels[labelled].astype(str), categories=classes).codes
    counts = np.bincount(track_index.astype(np.int64), minlength=len(tracks))
    missing = np.flatnonzero(labelled & (counts == 0))
    if len(missing):
        ids = track_ids(tracks)[missing[:3]]
        raise ValueError(f"{len(missing)} labelled track(s) have no segments in features "
                         f"(e.g. {', '.join(map(str, ids))}); extract them or drop them "
                         f"from the tracks table")
    ids = track_ids(tracks)
    if pd.Index(ids[labelled]).has_duplicates:
        raise ValueError("track_id values must be unique among labelled tracks")
    return ProbeData(features, track_index, classes, y)


def track_ids(tracks: pd.DataFrame) -> np.ndarray:
    if "track_id" in tracks.columns:
        return tracks["track_id"].astype(str).to_numpy()
    return tracks.index.astype(str).to_numpy()


def track_means(features: np.ndarray, track_index: np.ndarray, n_tracks: int) -> np.ndarray:
    """Mean of each track's segments: ``(N_seg, L, D) -> (n_tracks, L, D)``; NaN where none."""
    features = np.asarray(features)
    if features.ndim == 2:
        features = features[:, None, :]
    track_index = np.asarray(track_index, dtype=np.int64)
    if np.any(np.diff(track_index) < 0):  # load_many gives sorted segments; sort otherwise
        order = np.argsort(track_index, kind="stable")
        features, track_index = features[order], track_index[order]
    out = np.full((n_tracks,) + features.shape[1:], np.nan, dtype=np.float32)
    if len(track_index) == 0:
        return out
    present, starts, counts = np.unique(track_index, return_index=True, return_counts=True)
    sums = np.add.reduceat(features, starts, axis=0, dtype=np.float64)
    out[present] = sums / counts[:, None, None]
    return out
