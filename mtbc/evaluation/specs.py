"""Estimator families with a hyperparameter grid: what the selection routine scores.

A *spec* builds a probe for one grid value (``estimator``), scores the whole grid on
validation data at once (``path``: warm-started ``C`` path, the MLP's per-epoch outputs, or
the closed-form ridge path), fits a probe on a task's targets (``fit``) and predicts
(``predict``). :class:`ProbeSpec` is the single-label family (``linear``, ``mlp``, and the
``ridge`` ranking), :class:`TagSpec` the multi-label one. Ties go to the earlier grid value:
smaller ``C``, fewer epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.linear_model import LogisticRegression

from mtbc.evaluation.estimators import (
    DEFAULT_CS,
    PROBES,
    LinearProbe,
    MLPProbe,
    make_scaler,
)
from mtbc.evaluation.ranking import RIDGE_ALPHAS
from mtbc.evaluation.tag_estimators import MultiLabelLinearProbe, MultiLabelMLPProbe

SELECTIONS = ("auto", "probe", "linear", "ridge")
#: Options of the linear probe that carry over when it ranks layers for the MLP.
_LINEAR_KEEP = ("scaler", "max_iter", "tol")


def expand_classes(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Put the columns of classes seen in training into the full class layout."""
    if len(present) == n_classes:
        return proba
    out = np.zeros((len(proba), n_classes), dtype=proba.dtype)
    out[:, present] = proba
    return out


@dataclass(frozen=True)
class Spec:
    """A probe family: ``kind``, its ``seed``, constructor ``params`` and the ``C`` grid."""

    kind: str
    seed: int = 0
    params: dict = field(default_factory=dict)
    Cs: tuple = DEFAULT_CS

    @property
    def param(self) -> str:
        """Name of the hyperparameter: ``C``, ``epochs`` or ``alpha``."""
        return {"linear": "C", "mlp": "epochs", "ridge": "alpha"}[self.kind]

    @property
    def grid(self) -> list:
        if self.kind == "linear":
            return list(self.Cs)
        if self.kind == "mlp":
            return list(range(1, int(self.params.get("max_epochs", 100)) + 1))
        return list(RIDGE_ALPHAS)

    def ranker(self, selection: str) -> Spec:
        """The spec that ranks layers under ``selection`` (resolved: ``probe``, ``linear``
        or ``ridge``)."""
        if selection == "probe" or (selection == "linear" and self.kind == "linear"):
            return self
        if selection == "linear":
            keep = {k: v for k, v in self.params.items() if k in _LINEAR_KEEP}
            return replace(self, kind="linear", params=keep)
        return replace(self, kind="ridge", params={})


@dataclass(frozen=True)
class ProbeSpec(Spec):
    """Single-label probes: ``linear`` (:class:`LinearProbe`), ``mlp`` (:class:`MLPProbe`)
    and the ``ridge`` ranking (closed form, ranks layers only)."""

    n_classes: int = 2

    def estimator(self, value):
        if self.kind == "linear":
            return LinearProbe(C=value, random_state=self.seed, **self.params)
        if self.kind == "mlp":
            return MLPProbe(random_state=self.seed, **{**self.params, "max_epochs": int(value)})
        raise ValueError("the ridge scorer only ranks layers; it is not a probe")

    def fit(self, probe, x: np.ndarray, y: np.ndarray):
        return probe.fit(x, y)

    def fit_monitored(self, probe, x, y, x_eval, monitor):
        """Fit the MLP with early stopping on ``monitor(scores of x_eval) -> loss``."""
        return probe.fit(x, y, eval_X=x_eval, monitor=lambda p, classes: monitor(
            expand_classes(p, classes, self.n_classes)))

    def epoch_scores(self, probe, epoch: int) -> np.ndarray:
        """The evaluation scores after ``epoch`` (1-based) of a monitored fit."""
        return expand_classes(probe.eval_proba_[epoch - 1], probe.classes_, self.n_classes)

    def predict(self, probe, x: np.ndarray) -> np.ndarray:
        return expand_classes(probe.predict_proba(x), probe.classes_, self.n_classes)

    def path(self, xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray) -> list[np.ndarray]:
        """Validation scores ``(n_va, n_classes)`` for every grid value."""
        k = self.n_classes
        present = np.unique(ytr)
        if self.kind == "ridge":
            raise ValueError("the ridge ranking scores candidates in a batch "
                             "(mtbc.evaluation.ranking.ridge_paths)")
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


@dataclass(frozen=True)
class TagSpec(Spec):
    """Multi-label probes: ``linear`` (:class:`MultiLabelLinearProbe`) and ``mlp``
    (:class:`MultiLabelMLPProbe`); targets are ``(Y, mask)``."""

    def estimator(self, value):
        if self.kind == "linear":
            return MultiLabelLinearProbe(C=value, **self.params)
        if self.kind == "mlp":
            return MultiLabelMLPProbe(random_state=self.seed,
                                      **{**self.params, "max_epochs": int(value)})
        raise ValueError(f"tagging has no {self.kind!r} probe")

    def fit(self, probe, x: np.ndarray, targets: tuple[np.ndarray, np.ndarray]):
        return probe.fit(x, *targets)

    def fit_monitored(self, probe, x, targets, x_eval, monitor):
        """Fit the MLP with early stopping on ``monitor(scores of x_eval) -> loss``."""
        return probe.fit(x, *targets, eval_X=x_eval, monitor=monitor)

    def epoch_scores(self, probe, epoch: int) -> np.ndarray:
        """The evaluation scores after ``epoch`` (1-based) of a monitored fit."""
        return probe.eval_scores_[epoch - 1]

    def predict(self, probe, x: np.ndarray) -> np.ndarray:
        return probe.predict_proba(x)

    def path(self, xtr, targets: tuple[np.ndarray, np.ndarray], xva) -> list[np.ndarray]:
        """Validation scores ``(n_va, T)`` for every grid value."""
        ytr, mtr = targets
        if self.kind == "linear":
            return MultiLabelLinearProbe.path(xtr, ytr, mtr, xva, self.grid, **self.params)
        return self.estimator(self.grid[-1]).fit(xtr, ytr, mtr, eval_X=xva).eval_scores_


def resolve_selection(probe: str, selection: str, *, allowed=SELECTIONS) -> str:
    """Validate the options; returns the resolved selection (``"auto"`` made concrete: the
    closed-form ridge ranking of :mod:`mtbc.evaluation.ranking`, for every probe)."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, not {probe!r}")
    if selection not in allowed:
        raise ValueError(f"selection must be one of {tuple(allowed)}, not {selection!r}")
    if selection == "auto":
        return "ridge"
    return selection
