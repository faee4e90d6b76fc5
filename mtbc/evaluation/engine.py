"""The evaluation engine: one fold loop for every task and system (``docs/protocol.md``).

An evaluation is a *task* (:mod:`mtbc.evaluation.tasks`: what the targets are and how
predictions are scored) x a *system* (:class:`System`: something fitted on training tracks,
with its choices made on validation tracks, that predicts test tracks) x *folds* (the
task's predefined split, else stratified group k-fold with grouped inner folds).
:func:`evaluate` runs them: for every outer fold it builds the validation folds (the
predefined valid split, else inner folds over the fold's training part), asks the system to
choose, refit and predict the fold's test tracks (:meth:`System.fold`), and records the
choices; the task then scores the pooled test predictions with group-bootstrap intervals.

The refit uses the training part only for a predefined split (as MARBLE does;
``refit="train+valid"`` adds the valid split) and the whole outer training part for k-fold.
Small solves are many and fast single-threaded: the engine limits BLAS/OpenMP (and torch)
threads to ``n_threads`` (default 1) while it runs.

A new system is one subclass of :class:`System` (see :mod:`mtbc.evaluation.systems` and
:mod:`mtbc.evaluation.ensembles` for the probe, concatenation and majority baseline).

Example
-------
>>> import numpy as np, pandas as pd
>>> from mtbc.evaluation import Classification, EvalOptions, LayerProbe, evaluate
>>> tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(60)],
...                        "label": ["a", "b", "c"] * 20})
>>> X = np.random.default_rng(0).standard_normal((60, 2, 4)).astype(np.float32)
>>> X[:, 1, 0] += np.tile([0.0, 10.0, 20.0], 20)  # the labels show in layer 1
>>> result = evaluate(Classification(tracks), LayerProbe(X, np.arange(60)),
...                   EvalOptions(n_splits=3, n_boot=0))
>>> result.metric("accuracy") > 0.9
True
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from tqdm import tqdm

from mtbc.data import splits
from mtbc.evaluation.data import limit_threads
from mtbc.evaluation.options import EvalOptions
from mtbc.evaluation.results import FoldOutcome, FoldRecord, Provenance, Result
from mtbc.evaluation.tasks import Task


@dataclass(frozen=True)
class FoldData:
    """One outer fold as a system sees it: the ``fold`` (its ``test`` rows are predicted),
    the validation folds ``inner`` ``[(train_rows, valid_rows), ...]``, and ``refit_rows``,
    the tracks the final probe of this fold is fitted on."""

    fold: splits.Fold
    inner: list
    refit_rows: np.ndarray


@dataclass
class FoldPrediction:
    """What a system returns for one fold: the test tracks' ``scores`` (``(n_test, K)``),
    the chosen ``layer`` and hyperparameter (``param`` = ``value``) with their validation
    scores, the evidence per candidate for the layer curves (``layer_records``,
    ``test_records``: candidate -> what the task records), and ``n_train``, the tracks the
    final probe saw when not the fold's refit tracks (early stopping)."""

    scores: np.ndarray
    layer: Any = "-"
    param: str = "-"
    value: Any = "-"
    val_score: float | None = None
    layer_val_score: float | None = None
    n_valid: int | None = None
    layer_records: dict = field(default_factory=dict)
    test_records: dict = field(default_factory=dict)
    n_train: int | None = None


class System(ABC):
    """Something fitted on training tracks, with choices made on validation tracks, that
    predicts test tracks. Subclasses implement :meth:`fold` and :meth:`provenance`, and
    :meth:`prepare` when they check or precompute anything against the task."""

    #: Whether fitting uses torch (the engine then limits torch's threads too).
    uses_torch: bool = False
    #: Progress-bar label.
    label: str = "system"
    #: Whether :meth:`fold` reads validation folds (systems that choose nothing skip them).
    uses_validation: bool = True

    def prepare(self, task: Task, options: EvalOptions) -> None:  # noqa: B027 -- optional hook
        """Check the system's inputs against ``task`` (raise ``ValueError``) and precompute."""

    @abstractmethod
    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        """Choose on ``data.inner``, refit on ``data.refit_rows``, predict ``data.fold.test``."""

    @abstractmethod
    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        """How the result was made (``split``: the folds in words)."""


def refit_rows(fold: splits.Fold, refit: str) -> np.ndarray:
    """The tracks a fold's final probe is fitted on (module docstring)."""
    if fold.valid is None:
        return fold.train
    if refit == "train":
        return fold.train
    if refit == "train+valid":
        return np.concatenate([fold.train, fold.valid])
    raise ValueError(f"refit must be 'train' or 'train+valid', not {refit!r}")


def run_folds(task: Task, system: System, folds: list, options: EvalOptions) -> FoldOutcome:
    """Every outer fold: the system chooses on validation, refits and predicts the test
    tracks; convergence warnings are counted per fold."""
    rows, scores, names, records = [], [], [], []
    layer_rec: dict = {}
    test_rec: dict = {}
    bar = tqdm(folds, desc=system.label, unit="fold", disable=not options.progress)
    for k, fold in enumerate(bar):
        if fold.valid is not None:
            inner = [(fold.train, fold.valid)]
        elif not system.uses_validation:
            inner = []
        else:
            inner = task.inner(fold.train, n_splits=options.n_inner,
                               seed=options.seed + 1000 + k)
        refit = refit_rows(fold, options.refit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            out = system.fold(task, FoldData(fold, inner, refit))
        n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        for key, rec in out.layer_records.items():
            layer_rec.setdefault(key, []).append(rec)
        for key, rec in out.test_records.items():
            test_rec.setdefault(key, []).append(rec)
        scores.append(out.scores)
        rows.append(fold.test)
        names += [fold.name] * len(fold.test)
        records.append(FoldRecord(
            fold=fold.name, layer=out.layer, param=out.param, value=out.value,
            n_train=len(refit) if out.n_train is None else out.n_train,
            n_test=len(fold.test), val_score=out.val_score,
            layer_val_score=out.layer_val_score, n_valid=out.n_valid,
            convergence_warnings=n_warn))
    return FoldOutcome(np.concatenate(rows), np.concatenate(scores), names, records,
                       layer_rec, test_rec)


def evaluate(task: Task, system: System, options: EvalOptions | None = None) -> Result:
    """Evaluate ``system`` on ``task`` over the task's folds; returns the task's result
    (:class:`~mtbc.evaluation.results.ProbeResult` for classification,
    :class:`~mtbc.evaluation.results.TaggingResult` for tagging)."""
    options = options or EvalOptions()
    system.prepare(task, options)
    folds, split = task.folds(n_splits=options.n_splits, seed=options.seed)
    with limit_threads(options.n_threads, torch_too=system.uses_torch):
        outcome = run_folds(task, system, folds, options)
    return task.result(outcome, system.provenance(task, split, options))
