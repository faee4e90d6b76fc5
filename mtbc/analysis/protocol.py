"""The evaluation protocol: probing embeddings without leakage (``docs/protocol.md``).

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

Building blocks, public because :mod:`mtbc.analysis.ensemble`, :mod:`mtbc.analysis.marble`
and :mod:`mtbc.analysis.predict` run the same protocol: :mod:`mtbc.analysis.selection`
(:func:`~mtbc.analysis.selection.prepare_data` -> ``ProbeData``, ``Design``, ``ProbeSpec``,
``choose`` / ``fit_fold``), this module's :func:`run_folds` (a :class:`FoldPlan` in, a
``FoldOutcome`` out) and :func:`mtbc.analysis.results.build_result`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from tqdm import tqdm

from mtbc.analysis.probes import DEFAULT_CS
from mtbc.analysis.results import FoldOutcome, ProbeResult, Provenance, build_result
from mtbc.analysis.selection import (
    Design,
    ProbeData,
    ProbeSpec,
    View,
    candidate_layers,
    fit_fold,
    layer_scorer,
    layer_view,
    limit_threads,
    predict_tracks,
    prepare_data,
    resolve_selection,
)
from mtbc.data import splits


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


@dataclass
class FoldPlan:
    """Everything :func:`run_folds` needs: the data's :class:`Design` and layer ``view``, the
    candidate layers, the outer ``folds`` over ``tracks``, the probe ``spec`` and the
    ``scorer`` that ranks layers, and the protocol's options.

    ``pre_select(inner) -> (candidates, records)`` replaces the fixed ``candidates`` (early
    fusion chooses each model's layer first). ``per_layer_test`` refits every candidate for a
    descriptive test curve (nothing is chosen from it).
    """

    design: Design
    view: View
    candidates: list | None
    tracks: pd.DataFrame
    folds: list
    spec: ProbeSpec
    scorer: ProbeSpec
    n_inner: int = 3
    seed: int = 0
    refit: str = "train"
    pre_select: Callable | None = None
    per_layer_test: bool = False
    progress: bool = False
    desc: str = "probe"


def run_folds(plan: FoldPlan) -> FoldOutcome:
    """Run every outer fold: choose on validation, refit, predict the fold's test tracks."""
    design, view, spec, scorer = plan.design, plan.view, plan.spec, plan.scorer
    pred_rows, probas, fold_names, fold_rows = [], [], [], []
    layer_rec: dict = {}
    test_rec: dict = {}
    folds = tqdm(plan.folds, desc=plan.desc, unit="fold", disable=not plan.progress)
    for k, fold in enumerate(folds):
        inner = _inner_for(plan.tracks, fold, plan.n_inner, plan.seed, k)
        refit_rows = _refit_rows(fold, plan.refit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if plan.pre_select is not None:
                cands, records = plan.pre_select(inner)
            else:
                cands, records = plan.candidates, None
            probe, lc, pc = fit_fold(design, view, cands, inner, refit_rows, spec, scorer)
            truth = design.y[fold.test]
            proba = predict_tracks(probe, design, view, lc.candidate, fold.test, spec.n_classes)
            if plan.per_layer_test and plan.pre_select is None:
                segs, _ = design.segments(refit_rows)
                for cand, (_, _, value) in lc.by_candidate.items():
                    if cand == lc.candidate:
                        p = proba
                    else:
                        other = spec.estimator(value if scorer.kind == spec.kind else pc.value)
                        other.fit(view(cand, segs), design.seg_labels(segs))
                        p = predict_tracks(other, design, view, cand, fold.test, spec.n_classes)
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
    return FoldOutcome(np.concatenate(pred_rows), np.concatenate(probas), fold_names, fold_rows,
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
    protocol: str = "default",
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
    protocol : ``"default"`` (this module) or ``"marble"``: MARBLE's constrained-track MLP
        probe on a predefined split (:func:`mtbc.analysis.marble.evaluate_marble`; ``probe``,
        ``layer``, ``selection``, ``Cs`` and the fold options do not apply).
    """
    if protocol == "marble":
        from mtbc.analysis.marble import evaluate_marble

        return evaluate_marble(features, track_index, tracks, seed=seed, n_boot=n_boot,
                               fingerprint=fingerprint, name=name, n_threads=n_threads)
    if protocol != "default":
        raise ValueError(f"protocol must be 'default' or 'marble', not {protocol!r}")
    selection = resolve_selection(probe, selection)
    data = prepare_data(features, track_index, tracks)
    folds, split_desc = splits.outer_folds(tracks, n_splits=n_splits, seed=seed)
    params = dict(probe_params or {})
    spec = ProbeSpec(probe, len(data.classes), seed, params, tuple(Cs))
    plan = FoldPlan(
        design=Design(data.track_index, len(tracks), data.y), view=layer_view(data.features),
        candidates=candidate_layers(layer, data.n_layers), tracks=tracks, folds=folds,
        spec=spec, scorer=layer_scorer(spec, selection, params), n_inner=n_inner, seed=seed,
        refit=refit, per_layer_test=per_layer_test, progress=progress, desc=f"probe {probe}")
    with limit_threads(n_threads, torch_too=probe == "mlp"):
        outcome = run_folds(plan)
    how = Provenance(
        name=name or f"{probe} probe", probe=probe, layer=layer, selection=selection,
        scorer=plan.scorer.kind, split=split_desc, seed=seed, n_boot=n_boot,
        fingerprint=fingerprint,
        params={"Cs": list(Cs), "n_splits": n_splits, "n_inner": n_inner, "refit": refit,
                "probe_params": params, "n_layers": data.n_layers, "dim": data.dim,
                "n_segments": int(len(data.features))})
    return build_result(tracks, data, outcome, how)


def evaluate_majority(tracks: pd.DataFrame, *, seed: int = 0, n_splits: int = 5,
                      n_boot: int = 1000, name: str = "majority class (baseline)"
                      ) -> ProbeResult:
    """The majority-class baseline on the protocol's outer folds: each test track gets the
    label most frequent among that fold's training tracks (ties: the first in sorted order),
    with the training label frequencies as its probabilities. No features, no choices."""
    labelled = tracks["label"].notna().to_numpy()
    classes = sorted(pd.unique(tracks.loc[labelled, "label"].astype(str)))
    y = np.full(len(tracks), -1)
    y[labelled] = pd.Categorical(tracks.loc[labelled, "label"].astype(str),
                                 categories=classes).codes
    folds, split_desc = splits.outer_folds(tracks, n_splits=n_splits, seed=seed)
    rows, probas, names, fold_rows = [], [], [], []
    for fold in folds:
        freq = np.bincount(y[fold.train], minlength=len(classes)).astype(float)
        freq /= freq.sum()
        rows.append(fold.test)
        probas.append(np.tile(freq, (len(fold.test), 1)))
        names += [fold.name] * len(fold.test)
        fold_rows.append({"fold": fold.name, "layer": "-", "param": "-", "value": "-",
                          "n_train": len(fold.train), "n_test": len(fold.test),
                          "convergence_warnings": 0})
    outcome = FoldOutcome(np.concatenate(rows), np.concatenate(probas), names, fold_rows, {},
                          {})
    data = ProbeData(np.zeros((len(tracks), 1, 1), np.float32), np.arange(len(tracks)),
                     classes, y)
    how = Provenance(name=name, probe="majority", layer="-", selection="none", scorer="none",
                     split=split_desc, seed=seed, n_boot=n_boot)
    return build_result(tracks, data, outcome, how)
