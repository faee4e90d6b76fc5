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
threads to ``n_threads`` (default 1) while it runs, and uses the cores by running the outer
folds side by side on ``n_jobs`` threads (default: every available core;
:mod:`mtbc.evaluation.parallel`).

A new system is one subclass of :class:`System` (see :mod:`mtbc.evaluation.systems` and
:mod:`mtbc.evaluation.ensembles` for the probe, concatenation and majority baseline).

With ``EvalOptions(reuse_dir=...)`` the fold outcome of a system that says what it is
(:meth:`System.identity`) is kept there and reused by any later evaluation of the same task,
inputs and options (:mod:`mtbc.evaluation.memo`): notebook 05 reuses 04's probes, and a run
made again reuses all of them.

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

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from mtbc.data import splits
from mtbc.evaluation.data import limit_threads
from mtbc.evaluation.memo import Memo, memo_at
from mtbc.evaluation.options import EvalOptions
from mtbc.evaluation.parallel import convergence_counter, parallel_map
from mtbc.evaluation.results import FoldOutcome, FoldRecord, Provenance, Result
from mtbc.evaluation.tasks import Task


@dataclass(frozen=True)
class FoldData:
    """One outer fold as a system sees it: the ``fold`` (its ``test`` rows are predicted),
    the validation folds ``inner`` ``[(train_rows, valid_rows), ...]``, ``refit_rows``, the
    tracks the final probe of this fold is fitted on, and ``seed``, the fold's own seed (for
    any further split a system draws, such as an early-stopping holdout)."""

    fold: splits.Fold
    inner: list
    refit_rows: np.ndarray
    seed: int = 0


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
    #: Where the system may keep and reuse its own work (:meth:`keep_in`; ``None``: off).
    memo: Memo | None = None

    def prepare(self, task: Task, options: EvalOptions) -> None:  # noqa: B027 -- optional hook
        """Check the system's inputs against ``task`` (raise ``ValueError``) and precompute."""

    @abstractmethod
    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        """Choose on ``data.inner``, refit on ``data.refit_rows``, predict ``data.fold.test``."""

    @abstractmethod
    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        """How the result was made (``split``: the folds in words)."""

    def identity(self) -> dict | None:
        """What determines the system's fold outcome besides the task and the fold options:
        its class (so a subclass that behaves differently never shares an entry), its
        inputs (by content, :func:`mtbc.evaluation.memo.digest`) and options. ``None``
        (the default): the outcome is never kept, always computed."""
        return None

    def keep_in(self, memo: Memo | None) -> None:
        """Where the system may keep and reuse its own intermediate work (``None``: off);
        the engine sets it before :meth:`prepare`."""
        self.memo = memo


def refit_rows(fold: splits.Fold, refit: str) -> np.ndarray:
    """The tracks a fold's final probe is fitted on (module docstring)."""
    if fold.valid is None:
        return fold.train
    if refit == "train":
        return fold.train
    if refit == "train+valid":
        return np.concatenate([fold.train, fold.valid])
    raise ValueError(f"refit must be 'train' or 'train+valid', not {refit!r}")


class FoldPlan:
    """The outer folds of one evaluation, ready to run one by one (:meth:`run`) and to be
    gathered into a :class:`~mtbc.evaluation.results.FoldOutcome` (:meth:`outcome`)."""

    def __init__(self, task: Task, system: System, folds: list, options: EvalOptions):
        self.task, self.system, self.folds = task, system, folds
        self.seeds = [options.seed + 1000 + k for k in range(len(folds))]
        self.inners = []
        for k, fold in enumerate(folds):
            if fold.valid is not None:
                self.inners.append([(fold.train, fold.valid)])
            elif not system.uses_validation:
                self.inners.append([])
            else:
                self.inners.append(task.inner(fold.train, n_splits=options.n_inner,
                                              seed=options.seed + 1000 + k))
        self.refits = [refit_rows(fold, options.refit) for fold in folds]

    def run(self, k: int) -> FoldPrediction:
        """Outer fold ``k``: the system chooses, refits and predicts its test tracks."""
        return self.system.fold(self.task, FoldData(self.folds[k], self.inners[k],
                                                    self.refits[k], self.seeds[k]))

    def outcome(self, outs: list[FoldPrediction], warned: list[int]) -> FoldOutcome:
        """The folds' predictions (in fold order) and convergence warnings, gathered."""
        rows, scores, names, records = [], [], [], []
        layer_rec: dict = {}
        test_rec: dict = {}
        for k, (fold, out) in enumerate(zip(self.folds, outs, strict=True)):
            for key, rec in out.layer_records.items():
                layer_rec.setdefault(key, []).append(rec)
            for key, rec in out.test_records.items():
                test_rec.setdefault(key, []).append(rec)
            scores.append(out.scores)
            rows.append(fold.test)
            names += [fold.name] * len(fold.test)
            records.append(FoldRecord(
                fold=fold.name, layer=out.layer, param=out.param, value=out.value,
                n_train=len(self.refits[k]) if out.n_train is None else out.n_train,
                n_test=len(fold.test), val_score=out.val_score,
                layer_val_score=out.layer_val_score, n_valid=out.n_valid,
                convergence_warnings=warned[k]))
        return FoldOutcome(np.concatenate(rows), np.concatenate(scores), names, records,
                           layer_rec, test_rec)


def run_plans(plans: list[FoldPlan], options: EvalOptions) -> list[FoldOutcome]:
    """Every fold of every plan, side by side on ``options.n_jobs`` threads in one queue
    (:mod:`mtbc.evaluation.parallel`; folds of the first plan first), each solve on
    ``options.n_threads`` BLAS threads; convergence warnings are counted per fold. The
    outcomes are the same whatever the number of threads."""
    work = [(p, k) for p in plans for k in range(len(p.folds))]
    label = " + ".join(dict.fromkeys(p.system.label for p in plans)) or "folds"
    bar = tqdm(total=len(work), desc=label, unit="fold", disable=not options.progress)
    torch_too = any(p.system.uses_torch for p in plans)
    with limit_threads(options.n_threads, torch_too=torch_too), bar, \
            convergence_counter() as warned:
        outs = parallel_map(lambda _, job: job[0].run(job[1]), work, n_jobs=options.n_jobs,
                            done=lambda: bar.update())
    result, i = [], 0
    for p in plans:
        n = len(p.folds)
        result.append(p.outcome(outs[i:i + n], [warned[j] for j in range(i, i + n)]))
        i += n
    return result


def run_folds(task: Task, system: System, folds: list, options: EvalOptions) -> FoldOutcome:
    """Every outer fold: the system chooses on validation, refits and predicts the test
    tracks (:func:`run_plans` of one plan)."""
    return run_plans([FoldPlan(task, system, folds, options)], options)[0]


def outcome_problem(outcome: Any, folds: list) -> str | None:
    """Why a kept ``outcome`` cannot be the outcome of ``folds``, or ``None``."""
    if not isinstance(outcome, FoldOutcome):
        return "not a fold outcome"
    rows = np.concatenate([f.test for f in folds]) if folds else np.zeros(0, int)
    names = [f.name for f in folds for _ in f.test]
    if not isinstance(outcome.rows, np.ndarray) or not np.array_equal(outcome.rows, rows):
        return "its test tracks are not the folds' test tracks"
    if list(outcome.fold_names) != names:
        return "its fold names are not the folds'"
    scores = outcome.scores
    if not isinstance(scores, np.ndarray) or scores.ndim != 2 or len(scores) != len(rows):
        return "its scores do not match its test tracks"
    records = outcome.records
    if len(records) != len(folds) or any(not isinstance(r, FoldRecord) or r.fold != f.name
                                         for r, f in zip(records, folds, strict=False)):
        return "its fold records are not the folds'"
    return None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation to run: a ``task``, a ``system`` and its ``options``."""

    task: Task
    system: System
    options: EvalOptions = field(default_factory=EvalOptions)


def evaluate(task: Task, system: System, options: EvalOptions | None = None) -> Result:
    """Evaluate ``system`` on ``task`` over the task's folds; returns the task's result
    (:class:`~mtbc.evaluation.results.ProbeResult` for classification,
    :class:`~mtbc.evaluation.results.TaggingResult` for tagging). With
    ``options.reuse_dir`` a kept outcome of the same evaluation is reused (module
    docstring)."""
    return evaluate_all([Evaluation(task, system, options or EvalOptions())])[0]


def evaluate_all(evaluations: list[Evaluation]) -> list[Result]:
    """Several evaluations at once: their folds share one queue of threads, so the cores
    stay busy from one evaluation to the next; results in the order given, each exactly
    what :func:`evaluate` would return. Evaluations kept earlier are reused; work kept by
    one while the others run (a layer ranking) is reused by the next -- list the
    evaluations that rank layers first. The fold loop's threads and BLAS limits are the
    first evaluation's ``n_jobs`` / ``n_threads``."""
    if not evaluations:
        return []
    plans, pending = [], []
    for ev in evaluations:
        task, system, options = ev.task, ev.system, ev.options
        memo = memo_at(options.reuse_dir)
        system.keep_in(memo)
        system.prepare(task, options)
        folds, split = task.folds(n_splits=options.n_splits, seed=options.seed)
        identity = system.identity() if memo is not None else None
        outcome = material = None
        if identity is not None:
            material = {"task": task.identity(), "system": identity,
                        "options": options.fold_key()}
            outcome = memo.load("outcome", material, lambda o, f=folds: outcome_problem(o, f))
        plan = None if outcome is not None else FoldPlan(task, system, folds, options)
        plans.append((ev, split, memo, material, outcome, plan))
        if plan is not None:
            pending.append(plan)
    computed = iter(run_plans(pending, evaluations[0].options) if pending else [])
    results = []
    for ev, split, memo, material, outcome, plan in plans:
        if plan is not None:
            outcome = next(computed)
            if material is not None:
                memo.save("outcome", material, outcome)
        results.append(ev.task.result(outcome, ev.system.provenance(ev.task, split,
                                                                     ev.options)))
    return results
