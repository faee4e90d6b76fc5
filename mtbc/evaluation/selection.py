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
from mtbc.evaluation.specs import Spec
from mtbc.evaluation.tasks import Task


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's best grid ``value``, its validation ``score`` and the task's
    ``evidence`` (classification: correctness per validation track)."""

    score: float
    value: Any
    evidence: Any = None


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
    ``view`` of candidates' features and the ``inner`` (train, valid) folds."""

    task: Task
    design: Design
    view: View
    inner: Sequence


def choose(search: Search, candidates: Sequence, spec: Spec) -> Choice:
    """Best (candidate, grid value) of ``spec`` by the task's pooled validation score."""
    task, design, view, inner = search.task, search.design, search.view, search.inner
    val_rows = np.concatenate([va for _, va in inner])
    best, by_candidate = None, {}
    for cand in candidates:
        fold_scores = []
        for tr, va in inner:
            s_tr, _ = design.segments(tr)
            s_va, c_va = design.segments(va)
            path = spec.path(view(cand, s_tr), task.targets(design.seg_track[s_tr]),
                             view(cand, s_va))
            fold_scores.append([design.track_mean(s, c_va) for s in path])
        values, evidence = task.grid_scores(fold_scores, inner)
        g = int(np.argmax(values))  # first maximum: the simpler model on ties
        by_candidate[cand] = CandidateScore(float(values[g]), spec.grid[g], evidence[g])
        if best is None or values[g] > best.score:
            best = Choice(cand, spec.grid[g], float(values[g]), val_rows, by_candidate)
    return best


def fit_fold(search: Search, candidates: Sequence, refit_rows: np.ndarray, spec: Spec,
             ranker: Spec) -> tuple[Any, Choice, Choice]:
    """Choose on validation, refit on ``refit_rows``: (fitted probe, layer choice, param
    choice). ``ranker`` ranks the candidates; ``spec``'s own grid is then searched on the
    chosen candidate when the two differ."""
    layer_choice = choose(search, candidates, ranker)
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


def predict_tracks(probe, spec: Spec, search: Search, candidate, rows: np.ndarray
                   ) -> np.ndarray:
    """Track scores of ``rows``: the mean of their segments' predictions."""
    segs, counts = search.design.segments(rows)
    return Design.track_mean(spec.predict(probe, search.view(candidate, segs)), counts)
