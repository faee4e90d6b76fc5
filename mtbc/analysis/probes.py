"""Probing embeddings without leakage (DESIGN section 5, STYLE section 3).

Estimators (scikit-learn conventions: ``__init__`` stores, ``fit`` returns self, learned state
ends in ``_``, ``random_state`` becomes a generator in ``fit``):

- :class:`LinearProbe`: standardisation + multinomial logistic regression (lbfgs).
- :class:`MLPProbe`: standardisation + one hidden layer (512, ReLU, dropout 0.2), Adam, in
  torch. Why torch rather than sklearn's ``MLPClassifier``: the latter has no dropout, and its
  ``early_stopping`` holds out a random 10% of *segments*, so segments of one track sit on both
  sides of the stopping split. Here the number of epochs is chosen like any other
  hyperparameter, on grouped validation tracks (:meth:`MLPProbe.fit` ``eval_X`` records the
  validation probabilities after every epoch). Deterministic for a given ``random_state``
  (one seeded ``torch.Generator`` for initialisation, shuffling and dropout masks).
- :class:`LayerSelector`: ``(n, n_layers, dim) -> (n, dim)``, one layer or the mean of layers.

The protocol (:func:`evaluate_probe`): features are segments ``(N_seg, n_layers, dim)`` with a
``track_index`` into the tracks table. Probes train on segments; a track's prediction is the
mean of its segments' probabilities. Splits come from :mod:`mtbc.data.splits` (predefined
train/valid/test, else stratified group k-fold with grouped inner CV). Within each outer fold
the layer (each layer and the mean of layers) and the probe's hyperparameter (``C`` for the
linear probe, the number of epochs for the MLP) are chosen on validation tracks only -- the
predefined valid split, else the pooled inner folds -- then the probe is refit with them
(on train for a predefined split, as MARBLE does; on the whole outer training part for k-fold)
and predicts the fold's test tracks. Ties go to the earlier candidate: lower layer, smaller
``C``, fewer epochs.

How candidates are scored (``selection``):

- ``"probe"``: the probe itself, over its whole hyperparameter grid, for every layer (exact;
  the layer curve is the probe's own validation accuracy).
- ``"linear"``: the linear probe ranks the layers; the probe's hyperparameter is then chosen
  on validation for the chosen layer only (for the MLP, whose per-layer search costs 100
  epochs x folds x layers).
- ``"auto"`` (default): ``"probe"`` for the linear probe, ``"linear"`` for the MLP.
- ``"ridge"``: a closed-form ridge classifier on standardised features (one eigendecomposition
  per layer and split gives every regularisation strength) ranks the layers; the probe's
  hyperparameter is then chosen on validation for the chosen layer only. Cheaper; the layer
  curve then shows the ridge classifier's validation accuracy.

Small solves are many and fast single-threaded: the protocol limits BLAS/OpenMP (and torch)
threads to ``n_threads`` (default 1) while it runs; oversubscribed BLAS threads made the same
fits up to 50x slower on a loaded machine.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mtbc.analysis import evaluation
from mtbc.data import splits

#: Inverse regularisation strengths tried for the linear probe (standardised features).
DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Ridge strengths of the "ridge" layer ranking, relative to the mean non-zero eigenvalue.
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
PROBES = ("linear", "mlp")
SELECTIONS = ("auto", "probe", "linear", "ridge")


# -- estimators -----------------------------------------------------------------------------
class LayerSelector(TransformerMixin, BaseEstimator):
    """Pick one layer of ``(n, n_layers, dim)`` features, or average them (``layer="mean"``)."""

    def __init__(self, layer: int | str = "mean"):
        self.layer = layer

    def fit(self, X, y=None):
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"expected (n, n_layers, dim) features, got shape {X.shape}")
        _check_layer(self.layer, X.shape[1])
        self.n_layers_in_ = X.shape[1]
        self.dim_in_ = X.shape[2]
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1:] != (self.n_layers_in_, self.dim_in_):
            raise ValueError(f"expected (n, {self.n_layers_in_}, {self.dim_in_}) features, "
                             f"got shape {X.shape}")
        return _take_layer(X, self.layer)


def _check_layer(layer, n_layers: int) -> None:
    if isinstance(layer, str):
        if layer != "mean":
            raise ValueError(f"layer must be an int, 'mean' or 'select', not {layer!r}")
    elif not -n_layers <= int(layer) < n_layers:
        raise ValueError(f"layer {layer} does not exist: the features have {n_layers} layers")


def _take_layer(X: np.ndarray, layer) -> np.ndarray:
    if isinstance(layer, str):
        return X.mean(axis=1, dtype=np.float64).astype(X.dtype, copy=False)
    return X[:, int(layer)]


def _make_scaler(scaler):
    return clone(scaler) if scaler is not None else StandardScaler()


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Standardisation (learned on the training data) + multinomial logistic regression.

    Parameters
    ----------
    C : inverse L2 strength, chosen on validation by the protocol (:data:`DEFAULT_CS`).
    scaler : unfitted transformer to standardise with; ``None`` = ``StandardScaler()``
        (early fusion passes :class:`mtbc.analysis.ensemble.BlockStandardizer`).
    max_iter, tol : lbfgs limits.
    random_state : stored; lbfgs is deterministic, so it only seeds sklearn's solver state.
    """

    def __init__(self, C: float = 1.0, *, scaler=None, max_iter: int = 1000, tol: float = 1e-4,
                 random_state=None):
        self.C = C
        self.scaler = scaler
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        rng = check_random_state(self.random_state)
        self.scaler_ = _make_scaler(self.scaler).fit(X)
        self.model_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, tol=self.tol,
            random_state=int(rng.randint(2**31 - 1))).fit(self.scaler_.transform(X), y)
        self.classes_ = self.model_.classes_
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.decision_function(self.scaler_.transform(X))

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict_proba(self.scaler_.transform(X))

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPProbe(ClassifierMixin, BaseEstimator):
    """Standardisation + ``Linear(dim, hidden) -> ReLU -> Dropout -> Linear(hidden, classes)``.

    Trained with Adam on cross-entropy for exactly ``max_epochs`` epochs of shuffled
    mini-batches (the protocol chooses the epoch count on validation tracks). Weights are kept
    as numpy arrays (``coefs_``, ``intercepts_``), so predicting needs no torch.

    ``fit(X, y, eval_X=...)`` also stores ``eval_proba_``: the probabilities of ``eval_X`` after
    every epoch (list of ``(n_eval, n_classes)``), which is how epochs are chosen.
    """

    def __init__(self, hidden: int = 512, dropout: float = 0.2, *, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 100,
                 scaler=None, random_state=None):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.scaler = scaler
        self.random_state = random_state

    def fit(self, X, y, *, eval_X=None):
        import torch
        import torch.nn.functional as F

        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                             f"the data contains only one class: {self.classes_[0]!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        rng = check_random_state(self.random_state)
        gen = torch.Generator().manual_seed(int(rng.randint(2**63 - 1, dtype=np.int64)))
        self.scaler_ = _make_scaler(self.scaler).fit(X)
        xt = torch.as_tensor(np.asarray(self.scaler_.transform(X), dtype=np.float32))
        yt = torch.as_tensor(codes, dtype=torch.long)
        xe = None
        if eval_X is not None:
            eval_X = validate_data(self, eval_X, reset=False, dtype=[np.float64, np.float32])
            xe = torch.as_tensor(np.asarray(self.scaler_.transform(eval_X), dtype=np.float32))
        n, d = xt.shape
        k, h = len(self.classes_), int(self.hidden)

        def uniform(shape, fan_in):  # torch.nn.Linear's default initialisation
            bound = 1.0 / np.sqrt(fan_in)
            return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).requires_grad_()

        w1, b1, w2, b2 = uniform((d, h), d), uniform((h,), d), uniform((h, k), h), uniform((k,), h)
        params = [w1, b1, w2, b2]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        batch = max(1, min(int(self.batch_size), n))
        keep = 1.0 - self.dropout
        self.eval_proba_ = [] if xe is not None else None
        for _ in range(int(self.max_epochs)):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, batch):
                idx = perm[start:start + batch]
                hid = torch.relu(xt[idx] @ w1 + b1)
                if self.dropout > 0:
                    hid = hid * (torch.rand(hid.shape, generator=gen) < keep) / keep
                loss = F.cross_entropy(hid @ w2 + b2, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if xe is not None:
                with torch.no_grad():
                    logits = torch.relu(xe @ w1 + b1) @ w2 + b2
                    self.eval_proba_.append(torch.softmax(logits, dim=1).numpy())
        self.coefs_ = [w1.detach().numpy().copy(), w2.detach().numpy().copy()]
        self.intercepts_ = [b1.detach().numpy().copy(), b2.detach().numpy().copy()]
        self.n_iter_ = int(self.max_epochs)
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        z = np.asarray(self.scaler_.transform(X), dtype=np.float64)
        hid = np.maximum(z @ self.coefs_[0] + self.intercepts_[0], 0.0)
        logits = hid @ self.coefs_[1] + self.intercepts_[1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


# -- result ---------------------------------------------------------------------------------
@dataclass
class ProbeResult:
    """Out-of-fold (or test-split) track predictions of one system, with how they were made.

    ``predictions``: index ``track_id``; columns ``label, predicted, correct, fold``.
    ``probabilities``: same index, one column per class (mean of segment probabilities).
    ``folds``: one row per outer fold: chosen ``layer``, ``param``/``value`` (``C`` or
    ``epochs``), validation accuracy of the choice, track counts.
    ``layer_scores``: validation accuracy per candidate layer (``layer`` is an int or
    ``"mean"``) with a bootstrap 95% CI over validation tracks, and which ``scorer`` measured it.
    ``metrics``: ``metric, value, ci_low, ci_high`` on the predicted tracks.
    """

    name: str
    predictions: pd.DataFrame
    probabilities: pd.DataFrame
    folds: pd.DataFrame
    layer_scores: pd.DataFrame
    metrics: pd.DataFrame
    confusion: pd.DataFrame
    classes: list
    seed: int
    probe: str
    layer: Any
    selection: str
    split: str
    n_tracks: int
    n_boot: int
    fingerprint: Any = None
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        acc = self.metrics.set_index("metric").loc["accuracy"]
        return (f"ProbeResult({self.name!r}: accuracy {acc.value:.3f} "
                f"[{acc.ci_low:.3f}, {acc.ci_high:.3f}] on {self.n_tracks} tracks, "
                f"{self.probe} probe, layer={self.layer!r}, seed={self.seed}; {self.split})")

    def metric(self, name: str = "accuracy") -> float:
        return float(self.metrics.set_index("metric").loc[name, "value"])

    def summary(self) -> dict:
        """One row for a comparison table (metrics with CIs, plus how the result was made)."""
        row: dict[str, Any] = {"system": self.name}
        for r in self.metrics.itertuples():
            row[r.metric] = r.value
            row[f"{r.metric}_ci_low"] = r.ci_low
            row[f"{r.metric}_ci_high"] = r.ci_high
        layers = self.folds["layer"].astype(str).value_counts()
        row.update({"probe": self.probe, "layer": self.layer,
                    "chosen_layers": ", ".join(f"{k} (x{v})" for k, v in layers.items()),
                    "selection": self.selection, "n_tracks": self.n_tracks, "seed": self.seed,
                    "split": self.split, "fingerprint": self.fingerprint})
        return row


def summarize(results: Sequence[ProbeResult]) -> pd.DataFrame:
    """One row per result (see :meth:`ProbeResult.summary`)."""
    return pd.DataFrame([r.summary() for r in results])


def compare(results: Sequence[ProbeResult]) -> pd.DataFrame:
    """McNemar's exact test between every pair of results, on the tracks all of them predicted."""
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"results need distinct names to be compared, got {names}")
    truth = results[0].predictions["label"]
    return evaluation.pairwise_tests({r.name: r.predictions["predicted"] for r in results}, truth)


# -- the protocol's building blocks (also used by mtbc.analysis.ensemble and mtbc.analysis.predict) --------------
class _Design:
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


def _expand(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Put the columns of classes seen in training into the full class layout."""
    if len(present) == n_classes:
        return proba
    out = np.zeros((len(proba), n_classes), dtype=proba.dtype)
    out[:, present] = proba
    return out


def _standardise(xtr: np.ndarray, xva: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = xtr.mean(axis=0, dtype=np.float64)
    std = xtr.std(axis=0, dtype=np.float64)
    std[std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return (((xtr - mean) / std).astype(np.float32), ((xva - mean) / std).astype(np.float32))


@dataclass
class _Spec:
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
            return _ridge_path(xtr, ytr, xva, k)
        if len(present) < 2:  # a degenerate split: predict the only class
            one = np.zeros((len(xva), k))
            one[:, present] = 1.0
            return [one] * len(self.grid)
        if self.kind == "linear":
            params = {key: v for key, v in self.params.items() if key != "scaler"}
            scaler = _make_scaler(self.params.get("scaler")).fit(xtr)
            ztr, zva = scaler.transform(xtr), scaler.transform(xva)
            model = LogisticRegression(warm_start=True, random_state=self.seed,
                                       max_iter=params.get("max_iter", 1000),
                                       tol=params.get("tol", 1e-4))
            out = []
            for c in self.grid:  # increasing C, each start from the previous optimum
                model.set_params(C=c).fit(ztr, ytr)
                out.append(_expand(model.predict_proba(zva), present, k))
            return out
        probe = self.estimator(self.grid[-1]).fit(xtr, ytr, eval_X=xva)
        return [_expand(p, present, k) for p in probe.eval_proba_]


def _ridge_path(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, k: int) -> list[np.ndarray]:
    """Closed-form ridge classifier (one-hot targets, intercept) for every strength at once."""
    a, b = _standardise(xtr, xva)
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
class _Choice:
    candidate: Any
    value: Any
    accuracy: float
    val_rows: np.ndarray
    by_candidate: dict  # candidate -> (accuracy, correctness per val row, grid value)


View = Callable[[Any, np.ndarray], np.ndarray]


def _choose(design: _Design, view: View, candidates: Sequence, inner: Sequence,
            spec: _Spec) -> _Choice:
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
            best = _Choice(cand, spec.grid[g], float(acc[g]), val_rows, by_candidate)
    return best


def _fit_fold(design: _Design, view: View, candidates: Sequence, inner: Sequence,
              refit_rows: np.ndarray, spec: _Spec, scorer: _Spec) -> tuple[Any, _Choice, _Choice]:
    """Choose on validation, refit on ``refit_rows``: (fitted probe, layer choice, param choice)."""
    layer_choice = _choose(design, view, candidates, inner, scorer)
    if scorer is spec or spec.kind == scorer.kind:
        param_choice = layer_choice
    else:
        param_choice = _choose(design, view, [layer_choice.candidate], inner, spec)
    segs, _ = design.segments(refit_rows)
    probe = spec.estimator(param_choice.value)
    probe.fit(view(layer_choice.candidate, segs), design.seg_labels(segs))
    return probe, layer_choice, param_choice


def _predict_tracks(probe, design: _Design, view: View, candidate, rows: np.ndarray,
                    n_classes: int) -> np.ndarray:
    segs, counts = design.segments(rows)
    proba = _expand(probe.predict_proba(view(candidate, segs)), probe.classes_, n_classes)
    return design.track_mean(proba, counts)


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


def _layer_view(features: np.ndarray) -> View:
    cache: dict[str, np.ndarray] = {}

    def view(layer, segs):
        if isinstance(layer, str):
            if "mean" not in cache:
                cache["mean"] = _take_layer(features, "mean")
            return cache["mean"][segs]
        return features[segs, layer]

    return view


def _prepare(features, track_index, tracks: pd.DataFrame):
    """Validate inputs: (features (N, L, D), track_index, classes, y codes per track row)."""
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
        ids = _track_ids(tracks)[missing[:3]]
        raise ValueError(f"{len(missing)} labelled track(s) have no segments in features "
                         f"(e.g. {', '.join(map(str, ids))}); extract them or drop them "
                         f"from the tracks table")
    ids = _track_ids(tracks)
    if pd.Index(ids[labelled]).has_duplicates:
        raise ValueError("track_id values must be unique among labelled tracks")
    return features, track_index, classes, y


def _track_ids(tracks: pd.DataFrame) -> np.ndarray:
    if "track_id" in tracks.columns:
        return tracks["track_id"].astype(str).to_numpy()
    return tracks.index.astype(str).to_numpy()


def _candidates(layer, n_layers: int) -> list:
    if isinstance(layer, str) and layer == "select":
        return list(range(n_layers)) + (["mean"] if n_layers > 1 else [])
    _check_layer(layer, n_layers)
    return [layer if isinstance(layer, str) else int(layer) % n_layers]


def _inner_for(tracks, fold: splits.Fold, n_inner: int, seed: int, k: int):
    if fold.valid is not None:
        return [(fold.train, fold.valid)]
    return splits.inner_splits(tracks, fold.train, n_splits=n_inner, seed=seed + 1000 + k)


def _refit_rows(fold: splits.Fold, refit: str) -> np.ndarray:
    if fold.valid is None:
        return fold.train
    if refit == "train":
        return fold.train
    if refit == "train+valid":
        return np.concatenate([fold.train, fold.valid])
    raise ValueError(f"refit must be 'train' or 'train+valid', not {refit!r}")


def _check_options(probe: str, selection: str) -> str:
    """Validate the options; returns the resolved selection (``"auto"`` made concrete)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, not {probe!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    if selection == "auto":
        return "probe" if probe == "linear" else "linear"
    return selection


def _scorer(spec: _Spec, selection: str, params: dict) -> _Spec:
    """The spec that scores layers under ``selection`` (resolved)."""
    if selection == "probe" or (selection == "linear" and spec.kind == "linear"):
        return spec
    if selection == "linear":
        keep = {k: v for k, v in params.items() if k in ("scaler", "max_iter", "tol")}
        return _Spec("linear", spec.n_classes, spec.seed, keep, spec.Cs)
    return _Spec("ridge", spec.n_classes, spec.seed)


def _layer_scores(records: dict, test_records: dict, n_boot: int, seed: int,
                  scorer: str) -> pd.DataFrame:
    """Per candidate: accuracy over (fold, track) pairs and a track-bootstrap CI.

    ``records[key]`` is a list of ``(val_rows, correct)`` over folds; ``test_records`` likewise
    for test tracks (optional). A key is a layer, or ``(model, layer)`` in early fusion.
    """

    def summarise(parts):
        rows = np.concatenate([r for r, _ in parts])
        correct = np.concatenate([c for _, c in parts]).astype(float)
        per_track = pd.Series(correct).groupby(rows).mean().to_numpy()
        low, high = bootstrap_mean_ci(per_track, n_boot=n_boot, seed=seed)
        return float(correct.mean()), low, high, len(per_track)

    columns = ["layer", "accuracy", "ci_low", "ci_high", "n_tracks", "scorer"]
    out = []
    for key, parts in records.items():
        row = dict(zip(["model", "layer"], key, strict=True)) if isinstance(key, tuple) else {
            "layer": key}
        acc, low, high, n = summarise(parts)
        row.update({"accuracy": acc, "ci_low": low, "ci_high": high, "n_tracks": n,
                    "scorer": scorer})
        if test_records.get(key):
            acc, low, high, n = summarise(test_records[key])
            row.update({"test_accuracy": acc, "test_ci_low": low, "test_ci_high": high,
                        "n_test_tracks": n})
        out.append(row)
    table = pd.DataFrame(out)
    if len(out) == 0:
        return pd.DataFrame(columns=columns)
    lead = (["model"] if "model" in table.columns else []) + columns
    return table[lead + [c for c in table.columns if c not in lead]]


def bootstrap_mean_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    values = np.asarray(values, dtype=float)
    if n_boot <= 0 or len(values) == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = np.concatenate([values[rng.integers(0, len(values), (min(250, n_boot - s),
                                                                  len(values)))].mean(axis=1)
                            for s in range(0, n_boot, 250)])
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def _assemble(*, name, tracks, classes, y, pred_rows, proba, fold_names, fold_rows, layer_rec,
              test_rec, scorer, seed, probe, layer, selection, split_desc, n_boot, fingerprint, params
              ) -> ProbeResult:
    ids = _track_ids(tracks)[pred_rows]
    cls = np.asarray(classes, dtype=object)
    truth = cls[y[pred_rows]]
    predicted = cls[proba.argmax(axis=1)]
    index = pd.Index(ids, name="track_id")
    predictions = pd.DataFrame({"label": truth, "predicted": predicted,
                                "correct": truth == predicted, "fold": fold_names}, index=index)
    probabilities = pd.DataFrame(proba, index=index, columns=pd.Index(classes, name="class"))
    return ProbeResult(
        name=name, predictions=predictions, probabilities=probabilities,
        folds=pd.DataFrame(fold_rows),
        layer_scores=_layer_scores(layer_rec, test_rec, n_boot, seed, scorer),
        metrics=evaluation.metrics_table(truth, predicted, n_boot=n_boot, seed=seed),
        confusion=evaluation.confusion_frame(truth, predicted, labels=list(classes)),
        classes=list(classes), seed=seed, probe=probe, layer=layer, selection=selection,
        split=split_desc, n_tracks=len(pred_rows), n_boot=n_boot, fingerprint=fingerprint,
        params=params)


def _fold_loop(*, design, view, candidates, tracks, folds, spec, scorer, n_inner, seed, refit,
               progress, desc, pre_select=None, per_layer_test=False):
    """Run every outer fold.

    Returns ``(test rows, probabilities, fold names, fold table rows, validation records,
    test records)``. ``pre_select(inner) -> (candidates, records)`` replaces the fixed
    ``candidates`` (early fusion chooses each model's layer first).
    """
    pred_rows, probas, fold_names, fold_rows = [], [], [], []
    layer_rec: dict = {}
    test_rec: dict = {}
    for k, fold in enumerate(tqdm(folds, desc=desc, unit="fold", disable=not progress)):
        inner = _inner_for(tracks, fold, n_inner, seed, k)
        refit_rows = _refit_rows(fold, refit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if pre_select is not None:
                cands, records = pre_select(inner)
            else:
                cands, records = candidates, None
            probe, lc, pc = _fit_fold(design, view, cands, inner, refit_rows, spec, scorer)
            truth = design.y[fold.test]
            proba = _predict_tracks(probe, design, view, lc.candidate, fold.test, spec.n_classes)
            if per_layer_test and pre_select is None:
                segs, _ = design.segments(refit_rows)
                for cand, (_, _, value) in lc.by_candidate.items():
                    if cand == lc.candidate:
                        p = proba
                    else:
                        other = spec.estimator(value if scorer.kind == spec.kind else pc.value)
                        other.fit(view(cand, segs), design.seg_labels(segs))
                        p = _predict_tracks(other, design, view, cand, fold.test,
                                            spec.n_classes)
                    test_rec.setdefault(cand, []).append((fold.test, p.argmax(axis=1) == truth))
        n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        if records is None:
            records = {c: (lc.val_rows, correct) for c, (_, correct, _) in lc.by_candidate.items()}
        for key, rec in records.items():
            layer_rec.setdefault(key, []).append(rec)
        probas.append(proba)
        pred_rows.append(fold.test)
        fold_names += [fold.name] * len(fold.test)
        fold_rows.append({"fold": fold.name, "layer": lc.candidate, "param": spec.param,
                          "value": pc.value, "val_accuracy": pc.accuracy,
                          "layer_val_accuracy": lc.accuracy, "n_train": len(refit_rows),
                          "n_valid": len(lc.val_rows), "n_test": len(fold.test),
                          "convergence_warnings": n_warn})
    return (np.concatenate(pred_rows), np.concatenate(probas), fold_names, fold_rows,
            layer_rec, test_rec)


def evaluate_probe(
    features: np.ndarray,
    track_index: np.ndarray,
    tracks: pd.DataFrame,
    *,
    probe: str = "linear",
    layer: int | str = "select",
    selection: str = "auto",
    seed: int = 0,
    n_splits: int = 5,
    n_inner: int = 3,
    refit: str = "train",
    Cs: Sequence[float] = DEFAULT_CS,
    probe_params: dict | None = None,
    n_boot: int = 1000,
    fingerprint: str | None = None,
    name: str | None = None,
    per_layer_test: bool = False,
    n_threads: int | None = 1,
    progress: bool = False,
) -> ProbeResult:
    """Probe segment embeddings and report track-level, out-of-sample predictions and metrics.

    Parameters
    ----------
    features : ``(N_seg, n_layers, dim)`` (or ``(N_seg, dim)``) segment embeddings.
    track_index : ``(N_seg,)`` row position in ``tracks`` of each segment (what
        ``EmbeddingStore.load_many(tracks.content_hash, fp, reduce=None)`` returns).
    tracks : table with ``label`` (missing = unlabelled, ignored), ``track_id``, optional
        ``group``/``content_hash`` (kept together) and ``split`` (train/valid/test).
    probe : ``"linear"`` or ``"mlp"``.
    layer : ``"select"`` (every layer and the mean of layers, chosen on validation), an int
        or ``"mean"``.
    selection : ``"auto"``, ``"probe"``, ``"linear"`` or ``"ridge"``: what scores layers
        (module docstring).
    n_splits, n_inner : outer and inner fold counts when there is no predefined split.
    refit : predefined split only: refit on ``"train"`` (MARBLE) or ``"train+valid"``.
    Cs : linear probe's C grid. probe_params : extra probe constructor options
        (e.g. ``{"max_epochs": 30}`` for the MLP).
    n_boot : bootstrap resamples of the CIs (0: none). seed : folds, probes and bootstrap.
    per_layer_test : also refit every candidate layer (with its own validation-chosen
        hyperparameter under ``selection="probe"``, else the chosen layer's) and add its test
        accuracy to ``layer_scores`` -- descriptive only, nothing is chosen from it. The
        validation ``accuracy`` column is the best over the hyperparameter grid, hence
        optimistic by a few points on noise; the test columns are not.
    """
    selection = _check_options(probe, selection)
    features, track_index, classes, y = _prepare(features, track_index, tracks)
    folds, split_desc = splits.outer_folds(tracks, n_splits=n_splits, seed=seed)
    design = _Design(track_index, len(tracks), y)
    candidates = _candidates(layer, features.shape[1])
    params = dict(probe_params or {})
    spec = _Spec(probe, len(classes), seed, params, tuple(Cs))
    scorer = _scorer(spec, selection, params)
    view = _layer_view(features)
    with limit_threads(n_threads, torch_too=probe == "mlp"):
        pred_rows, proba, fold_names, fold_rows, layer_rec, test_rec = _fold_loop(
            design=design, view=view, candidates=candidates, tracks=tracks, folds=folds,
            spec=spec, scorer=scorer, n_inner=n_inner, seed=seed, refit=refit,
            progress=progress, desc=f"probe {probe}", per_layer_test=per_layer_test)
    return _assemble(
        name=name or f"{probe} probe", tracks=tracks, classes=classes, y=y, pred_rows=pred_rows,
        proba=proba, fold_names=fold_names, fold_rows=fold_rows, layer_rec=layer_rec,
        test_rec=test_rec, scorer=scorer.kind, seed=seed, probe=probe, layer=layer, selection=selection,
        split_desc=split_desc, n_boot=n_boot, fingerprint=fingerprint,
        params={"Cs": list(Cs), "n_splits": n_splits, "n_inner": n_inner, "refit": refit,
                "probe_params": params, "n_layers": features.shape[1],
                "dim": features.shape[2], "n_segments": int(len(features))})
