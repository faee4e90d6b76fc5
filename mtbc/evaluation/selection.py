"""The one selection routine: choose a candidate and a hyperparameter on validation tracks.

:func:`choose` scores every (candidate, grid value) on the inner folds' validation tracks
(the predefined valid split, or the pooled inner folds) with the task's validation score --
accuracy for classification, macro ROC-AUC for tagging -- and keeps the best; ties go to the
earlier candidate (lower layer) and the earlier grid value (smaller ``C``, fewer epochs).
:func:`fit_fold` chooses the layer (with the ranking spec), then the hyperparameter for that
layer (with the probe's own spec, when they differ), and refits the probe. Test tracks are
never read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtbc.evaluation.data import Design, View
from mtbc.evaluation.memo import Memo, digest, keepable
from mtbc.evaluation.parallel import parallel_map
from mtbc.evaluation.ranking import MeansView, ridge_paths
from mtbc.evaluation.specs import Spec
from mtbc.evaluation.tasks import Task


@keepable
@dataclass(frozen=True)
class CandidateScore:
    """One candidate's best grid ``value``, its validation ``score`` and the task's
    ``evidence`` (classification: correctness per validation track)."""

    score: float
    value: Any
    evidence: Any = None


@keepable
@dataclass
class Choice:
    """The chosen ``candidate`` and grid ``value`` with their validation ``score``, the
    validation rows they were measured on, and every candidate's :class:`CandidateScore`."""

    candidate: Any
    value: Any
    score: float
    val_rows: np.ndarray
    by_candidate: dict[Any, CandidateScore] = field(default_factory=dict)


@dataclass(frozen=True)
class Search:
    """What :func:`choose` searches: the ``task``, the ``design`` (segments by track), the
    ``view`` of candidates' features, the ``inner`` (train, valid) folds and, for the
    closed-form ridge ranking, ``means``: the candidates' track-mean features by track row
    (``None``: averaged from the segments when needed), and ``keep``: ``(memo, digest of
    the track means)`` to keep and reuse the ridge ranking (:mod:`mtbc.evaluation.memo`;
    ``None``: always computed)."""

    task: Task
    design: Design
    view: View
    inner: Sequence
    means: MeansView | None = None
    keep: tuple[Memo, str] | None = None

    def track_means(self) -> MeansView:
        """``means``, or the mean of each track's segments in ``view``."""
        if self.means is not None:
            return self.means

        def mean_of_segments(cand, rows):
            segs, counts = self.design.segments(rows)
            return Design.track_mean(self.view(cand, segs), counts)

        return mean_of_segments


def candidate_paths(search: Search, candidates: Sequence, spec: Spec) -> dict:
    """``{candidate: [inner fold][grid value] -> validation track scores}``: the ridge
    ranking for all candidates at once (:mod:`mtbc.evaluation.ranking`), else ``spec``'s
    path on each candidate's segments."""
    task, design, view = search.task, search.design, search.view
    if spec.kind == "ridge":
        return ridge_paths(search.track_means(), list(candidates), search.inner,
                           task.ridge_targets, spec.grid,
                           classes=task.name == "classification")
    def one(_, job):
        cand, (tr, va) = job
        s_tr, _ = design.segments(tr)
        s_va, c_va = design.segments(va)
        path = spec.path(view(cand, s_tr), task.targets(design.seg_track[s_tr]),
                         view(cand, s_va))
        return [design.track_mean(s, c_va) for s in path]

    jobs = [(cand, fold) for cand in candidates for fold in search.inner]
    paths = iter(parallel_map(one, jobs))  # inner folds side by side (mtbc.evaluation.parallel)
    return {cand: [next(paths) for _ in search.inner] for cand in candidates}


def choose(search: Search, candidates: Sequence, spec: Spec) -> Choice:
    """Best (candidate, grid value) of ``spec`` by the task's pooled validation score; the
    ridge ranking is kept and reused when ``search.keep`` says where."""
    if spec.kind != "ridge" or search.keep is None:
        return _choose(search, candidates, spec)
    memo, means_key = search.keep
    val_rows = np.concatenate([va for _, va in search.inner])
    material = {"means": means_key, "task": search.task.identity(),
                "inner": digest(*[a for fold in search.inner for a in fold]),
                "candidates": list(candidates), "grid": list(spec.grid)}

    def check(choice):
        if not isinstance(choice, Choice) or list(choice.by_candidate) != list(candidates):
            return "not a ranking of these candidates"
        if not np.array_equal(choice.val_rows, val_rows):
            return "its validation tracks are not these"
        return None

    return memo.kept("ranking", material, lambda: _choose(search, candidates, spec), check)


def _choose(search: Search, candidates: Sequence, spec: Spec) -> Choice:
    task, inner = search.task, search.inner
    val_rows = np.concatenate([va for _, va in inner])
    best, by_candidate = None, {}
    paths = candidate_paths(search, candidates, spec)
    for cand in candidates:
        values, evidence = task.grid_scores(paths[cand], inner)
        g = int(np.argmax(values))  # first maximum: the simpler model on ties
        by_candidate[cand] = CandidateScore(float(values[g]), spec.grid[g], evidence[g])
        if best is None or values[g] > best.score:
            best = Choice(cand, spec.grid[g], float(values[g]), val_rows, by_candidate)
    return best


def fit_fold(search: Search, candidates: Sequence, refit_rows: np.ndarray, spec: Spec,
             ranker: Spec, holdout: tuple | None = None) -> tuple[Any, Choice, Choice]:
    """Choose on validation, refit on ``refit_rows``: (fitted probe, layer choice, param
    choice). ``ranker`` ranks the candidates; ``spec``'s own grid is then searched on the
    chosen candidate when the two differ. The MLP (when another spec ranks) is trained once,
    with early stopping on ``holdout`` (``(train_rows, valid_rows)``; default: the first
    validation fold): that probe is the fold's probe, nothing is refitted
    (:func:`fit_early_stopping`)."""
    layer_choice = choose(search, candidates, ranker)
    if spec.kind == "mlp" and ranker.kind != "mlp":
        probe, param_choice = fit_early_stopping(search, layer_choice.candidate, spec,
                                                 holdout or search.inner[0])
        return probe, layer_choice, param_choice
    if ranker is spec or spec.kind == ranker.kind:
        param_choice = layer_choice
    else:
        param_choice = choose(search, [layer_choice.candidate], spec)
    design = search.design
    segs, _ = design.segments(refit_rows)
    probe = spec.fit(spec.estimator(param_choice.value),
                     search.view(layer_choice.candidate, segs),
                     search.task.targets(design.seg_track[segs]))
    return probe, layer_choice, param_choice


def fit_early_stopping(search: Search, candidate, spec: Spec, holdout: tuple
                       ) -> tuple[Any, Choice]:
    """The MLP trained once with early stopping: on ``holdout``'s training tracks, until the
    loss on its validation tracks (track scores: the mean of their segments') has not
    improved for ``patience`` epochs, keeping the best epoch's weights (scikit-learn's
    ``early_stopping``, with grouped validation tracks in place of a random 10% of
    samples). Returns the probe and the :class:`Choice` (``value``: the best epoch)."""
    task, design, view = search.task, search.design, search.view
    tr, va = holdout
    s_tr, _ = design.segments(tr)
    s_va, c_va = design.segments(va)

    def monitor(seg_scores):
        return task.validation_loss(va, design.track_mean(seg_scores, c_va))

    probe = spec.fit_monitored(spec.estimator(spec.grid[-1]), view(candidate, s_tr),
                               task.targets(design.seg_track[s_tr]), view(candidate, s_va),
                               monitor)
    epoch = int(probe.best_epoch_ or len(spec.grid))
    scores = design.track_mean(spec.epoch_scores(probe, epoch), c_va)
    values, evidence = task.grid_scores([[scores]], [(tr, va)])
    score = CandidateScore(float(values[0]), epoch, evidence[0])
    return probe, Choice(candidate, epoch, float(values[0]), va, {candidate: score})


def predict_tracks(probe, spec: Spec, search: Search, candidate, rows: np.ndarray
                   ) -> np.ndarray:
    """Track scores of ``rows``: the mean of their segments' predictions."""
    segs, counts = search.design.segments(rows)
    return Design.track_mean(spec.predict(probe, search.view(candidate, segs)), counts)
