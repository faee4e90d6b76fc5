"""Ensembles of embedding models: concatenation (early fusion) and late fusion.

Models segment audio differently (MERT: 30 s chunks; VGGish: 0.96 s frames), so fusion
happens at the TRACK level:

- :class:`Concatenation` (:func:`evaluate_early_fusion`, :func:`evaluate_tagging_early_fusion`):
  each model's segments are averaged into one vector per track and layer; in every outer
  fold each model's layer is chosen on validation tracks exactly as for that model alone,
  the chosen layers are concatenated, and one probe is trained on the concatenation with
  :class:`~mtbc.evaluation.estimators.BlockStandardizer` as its scaler and its
  hyperparameter chosen on validation.
- Late fusion (:func:`late_fusion`, :func:`tagging_late_fusion`, :func:`evaluate_late_fusion`):
  each model is probed on its own segments with the same seed and therefore the same folds;
  a track's fused score is the (weighted) mean of the models' track scores. The probes are
  fit by log-loss, so their probabilities are on a common, roughly calibrated scale; no
  extra calibration is fitted. Late fusion of identical models returns exactly that model's
  probabilities.

The block standardisation divides each model's block by ``sqrt(block_dim)`` so each block
carries total variance 1 whatever its width: without it a 1024-d block holds 8x the squared
norm of a 128-d one and dominates the L2 penalty's trade-off and the probe's dot products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from mtbc.evaluation.data import (
    Design,
    candidate_layers,
    check_features,
    layer_view,
    track_means,
)
from mtbc.evaluation.engine import Evaluation, FoldData, FoldPrediction, System, evaluate
from mtbc.evaluation.estimators import BlockStandardizer
from mtbc.evaluation.memo import digest
from mtbc.evaluation.options import EvalOptions, ProbeOptions, split_options
from mtbc.evaluation.results import (
    CONCATENATION,
    LATE_FUSION,
    ProbeResult,
    Provenance,
    TaggingResult,
    TagScores,
    tagging_result,
)
from mtbc.evaluation.selection import Search, choose, fit_fold, predict_tracks
from mtbc.evaluation.specs import resolve_selection
from mtbc.evaluation.systems import evaluate_probe, probe_identity
from mtbc.evaluation.tasks import Classification, Tagging, Task
from mtbc.stats import confusion_frame, metrics_table

Blocks = Mapping[str, tuple[np.ndarray, np.ndarray]]


def block_means(blocks: Blocks, task: Task) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-model track-mean features ``(n_rows, L, D)`` over the track ``rows`` every model
    covers (each model's segments checked against ``task`` first)."""
    if len(blocks) < 2:
        raise ValueError("fusion needs at least two models")
    means = {}
    for model, (features, track_index) in blocks.items():
        features, track_index = check_features(features, track_index, task.tracks)
        task.check_covered(track_index)
        means[model] = track_means(features, track_index, len(task.tracks))
    covered = np.all([~np.isnan(m[:, 0, 0]) for m in means.values()], axis=0)
    rows = np.flatnonzero(covered)
    return {m: v[rows] for m, v in means.items()}, rows


class Concatenation(System):
    """One probe on the models' track-mean embeddings ``means`` (model -> ``(n_rows, L, D)``
    over the track ``rows``), each model at its own validation-chosen layer (``layers``: one
    request for all or one per model), block-standardised."""

    def __init__(self, means: Mapping[str, np.ndarray], rows: np.ndarray,
                 options: ProbeOptions | None = None, *,
                 layers: int | str | Mapping = "select"):
        self.means, self.rows = dict(means), np.asarray(rows)
        self.models = list(self.means)
        self.options = options or ProbeOptions()
        self.layers = layers
        self.per_model = {m: (layers[m] if isinstance(layers, Mapping) else layers)
                          for m in self.models}
        self.uses_torch = self.options.probe == "mlp"
        self.label = f"early fusion {self.options.probe}"

    def identity(self) -> dict | None:
        o = self.options
        options = {"probe": o.probe, "layers": self.per_model, "selection": self.selection,
                   "Cs": list(o.Cs), "probe_params": self.params}
        return probe_identity(self, options, rows=digest(self.rows),
                              means={m: self.keys[m] for m in self.models})

    def prepare(self, task: Task, options: EvalOptions) -> None:
        o = self.options
        self.seed = options.seed
        self.selection = resolve_selection(o.probe, o.selection, allowed=task.selections)
        task.check_covered(self.rows)
        self.design = Design(self.rows, len(task.tracks))  # positions into `rows`
        self.views = {m: layer_view(self.means[m]) for m in self.models}
        self.cands = {m: candidate_layers(self.per_model[m], self.means[m].shape[1])
                      for m in self.models}
        self.dims = [self.means[m].shape[2] for m in self.models]
        self.params = dict(o.probe_params or {})
        # by content: the same key as the model's own probe (LayerProbe) when every track
        # is covered, so the ranking that probe kept is reused
        self.keys = ({m: digest(self.means[m]) for m in self.models}
                     if self.memo is not None else {})

    def specs(self, task: Task, seed: int):
        o = self.options
        fused = task.spec(o.probe, seed=seed, Cs=o.Cs,
                          params={**self.params, "scaler": BlockStandardizer(blocks=self.dims)})
        single = task.spec(o.probe, seed=seed, params=self.params, Cs=o.Cs)
        return fused, single.ranker(self.selection)

    def means_view(self, model: str):
        """Track rows -> the model's track means (each track is one row of ``means``)."""
        view, design = self.views[model], self.design

        def means(cand, rows):
            return view(cand, design.segments(rows)[0])

        return means

    def _view(self, cand, segs):
        return np.hstack([self.views[m](c, segs) for m, c in zip(self.models, cand,
                                                                  strict=True)])

    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        spec, ranker = self.specs(task, self.seed)
        chosen, records = [], {}
        for m in self.models:  # each model's layer, chosen as for that model alone
            keep = (self.memo, self.keys[m]) if self.memo is not None else None
            choice = choose(Search(task, self.design, self.views[m], data.inner,
                                   self.means_view(m), keep), self.cands[m], ranker)
            chosen.append(choice.candidate)
            for c, e in choice.by_candidate.items():
                records[(m, c)] = task.record(choice.val_rows, e.score, e.evidence)
        search = Search(task, self.design, self._view, data.inner)
        probe, lc, pc = fit_fold(search, [tuple(chosen)], data.refit_rows, spec, spec)
        return FoldPrediction(
            scores=predict_tracks(probe, spec, search, lc.candidate, data.fold.test),
            layer=dict(zip(self.models, lc.candidate, strict=True)), param=spec.param,
            value=pc.value, val_score=pc.score, layer_val_score=lc.score,
            n_valid=len(lc.val_rows), layer_records=records)

    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        o = self.options
        _, ranker = self.specs(task, options.seed)
        joined = " + ".join(self.models)
        if task.name == "classification":
            name = o.name or f"early fusion ({joined})"
            layer = self.per_model
            params = {"models": self.models, "dims": self.dims,
                      "fusion": "early (track means, block-standardised)", "Cs": list(o.Cs),
                      "n_splits": options.n_splits, "n_inner": options.n_inner,
                      "refit": options.refit, "probe_params": self.params,
                      "scaler": f"BlockStandardizer(blocks={self.dims})"}
        else:
            name, layer = o.name or f"concat({joined})", self.layers
            params = {"models": self.models, "dims": self.dims, "Cs": list(o.Cs),
                      "fusion": "early (track means, block-standardised)"}
        fingerprint = o.fingerprint if isinstance(o.fingerprint, Mapping) else None
        return Provenance(name=name, task=task.name, system=CONCATENATION, probe=o.probe,
                          layer=layer, selection=self.selection, scorer=ranker.kind,
                          split=split, seed=options.seed, n_boot=options.n_boot,
                          fingerprint=dict(fingerprint) if fingerprint else None, params=params)


def evaluate_early_fusion(blocks: Blocks, tracks: pd.DataFrame,
                          probe_options: ProbeOptions | None = None,
                          eval_options: EvalOptions | None = None, *,
                          layers: int | str | Mapping = "select", fingerprints=None,
                          **overrides) -> ProbeResult:
    """Concatenate the models' track-mean embeddings (block-standardised) and probe them.

    ``blocks`` maps a model name to ``(features (N_seg, L, D), track_index (N_seg,))`` over
    the same ``tracks`` table; ``layers``: one request for all models or one per model
    (``"select"``, an int or ``"mean"``); ``fingerprints``: model -> extractor fingerprint.
    Options as :func:`~mtbc.evaluation.systems.evaluate_probe`. ``layer_scores`` has a
    ``model`` column (each model's validation accuracy per layer, alone) and
    ``folds.layer`` holds the chosen layer per model.
    """
    ev = early_fusion_evaluation(blocks, tracks, probe_options, eval_options, layers=layers,
                                 fingerprints=fingerprints, **overrides)
    return evaluate(ev.task, ev.system, ev.options)


def early_fusion_evaluation(blocks: Blocks, tracks: pd.DataFrame,
                            probe_options: ProbeOptions | None = None,
                            eval_options: EvalOptions | None = None, *, layers="select",
                            fingerprints: Mapping[str, str] | None = None,
                            **overrides) -> Evaluation:
    """What :func:`evaluate_early_fusion` evaluates, to run with others in one
    :func:`~mtbc.evaluation.engine.evaluate_all` (after the models' own probes, whose
    kept layer rankings it then reuses)."""
    p, e = split_options(probe_options, eval_options, overrides)
    p = replace_fingerprint(p, fingerprints)
    task = Classification(tracks)
    means, rows = block_means(blocks, task)
    return Evaluation(task, Concatenation(means, rows, p, layers=layers), e)


def evaluate_tagging_early_fusion(blocks: Blocks, tracks: pd.DataFrame,
                                  probe_options: ProbeOptions | None = None,
                                  eval_options: EvalOptions | None = None, *,
                                  layers="select", tags: Sequence[str] | None = None,
                                  **overrides) -> TaggingResult:
    """Concatenation for tags: each model's layer is ranked on its track means as for that
    model alone (``selection``, default the closed-form ridge ranking), then one probe tags
    the block-standardised concatenation (options as
    :func:`~mtbc.evaluation.systems.evaluate_tagging`)."""
    ev = tagging_early_fusion_evaluation(blocks, tracks, probe_options, eval_options,
                                         layers=layers, tags=tags, **overrides)
    return evaluate(ev.task, ev.system, ev.options)


def tagging_early_fusion_evaluation(blocks: Blocks, tracks: pd.DataFrame,
                                    probe_options: ProbeOptions | None = None,
                                    eval_options: EvalOptions | None = None, *,
                                    layers="select", tags: Sequence[str] | None = None,
                                    **overrides) -> Evaluation:
    """What :func:`evaluate_tagging_early_fusion` evaluates, for
    :func:`~mtbc.evaluation.engine.evaluate_all`."""
    p, e = split_options(probe_options, eval_options, overrides)
    full = Tagging(tracks, tags=tags)
    means, rows = block_means(blocks, full)
    task = Tagging(tracks, tags=full.names, rows=rows)
    return Evaluation(task, Concatenation(means, rows, p, layers=layers), e)


def replace_fingerprint(options: ProbeOptions, fingerprints) -> ProbeOptions:
    """``options`` with the per-model ``fingerprints`` (model -> fingerprint), if any."""
    return replace(options, fingerprint=dict(fingerprints)) if fingerprints else options


def _check_same(results: Sequence, *, tagging: bool) -> None:
    if len(results) < 2:
        raise ValueError("late fusion needs at least two results")
    first = results[0]
    for r in results[1:]:
        if tagging:
            if list(r.tags) != list(first.tags) or not r.scores.index.equals(
                    first.scores.index) or not r.fold.equals(first.fold):
                raise ValueError(f"{r.name} and {first.name} differ in tags, tracks or folds; "
                                 f"evaluate them on the same tracks with the same seed")
            continue
        if list(r.classes) != list(first.classes):
            raise ValueError(f"{r.name} has classes {r.classes}, {first.name} {first.classes}")
        if not r.predictions.index.sort_values().equals(first.predictions.index.sort_values()):
            raise ValueError(f"{r.name} and {first.name} predicted different tracks; "
                             f"evaluate them on the same tracks table")
        fold_r = r.predictions["fold"].reindex(first.predictions.index)
        if not fold_r.equals(first.predictions["fold"]):
            raise ValueError(f"{r.name} and {first.name} used different folds; evaluate them "
                             f"with the same seed and n_splits")


def _late_provenance(results, *, name, task, params, n_boot, seed) -> Provenance:
    first = results[0]
    return Provenance(
        name=name, task=task, system=LATE_FUSION, probe="+".join(r.probe for r in results),
        layer={r.name: r.layer for r in results}, selection=first.selection,
        scorer=first.provenance.scorer, split=first.split,
        seed=first.seed if seed is None else seed,
        n_boot=first.n_boot if n_boot is None else n_boot,
        fingerprint={r.name: r.fingerprint for r in results}, params=params)


def late_fusion(results: Sequence[ProbeResult], *, weights: Sequence[float] | None = None,
                name: str | None = None, n_boot: int | None = None, seed: int | None = None
                ) -> ProbeResult:
    """Average the track probabilities of results made on the same tracks and folds.

    Refuses results whose track sets, fold assignment or classes differ (rerun them with the
    same seed and ``n_splits``). ``weights`` default to equal. ``n_boot``/``seed`` default to
    the first result's.
    """
    results = list(results)
    _check_same(results, tagging=False)
    first = results[0]
    w = np.ones(len(results)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(results),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be one non-negative number per result, not all zero")
    index = first.predictions.index
    proba = np.average(np.stack([r.probabilities.loc[index].to_numpy() for r in results]),
                       axis=0, weights=w)
    classes = np.asarray(first.classes, dtype=object)
    truth = first.predictions["label"].to_numpy()
    predicted = classes[proba.argmax(axis=1)]
    how = _late_provenance(
        results, name=name or f"late fusion ({' + '.join(r.name for r in results)})",
        task="classification", n_boot=n_boot, seed=seed,
        params={"fusion": "late (mean of track probabilities)", "weights": w.tolist(),
                "members": [r.name for r in results]})
    groups = first.predictions["group"].to_numpy() if "group" in first.predictions else None
    predictions = pd.DataFrame({"label": truth, "predicted": predicted,
                                "correct": truth == predicted,
                                "fold": first.predictions["fold"].to_numpy()}, index=index)
    if groups is not None:
        predictions["group"] = groups
    return ProbeResult(
        provenance=how,
        folds=pd.concat([r.folds.assign(model=r.name) for r in results], ignore_index=True),
        layer_scores=pd.concat([r.layer_scores.assign(model=r.name) for r in results],
                               ignore_index=True),
        metrics=metrics_table(truth, predicted, groups=groups, n_boot=how.n_boot,
                              seed=how.seed),
        predictions=predictions,
        probabilities=pd.DataFrame(proba, index=index, columns=first.probabilities.columns),
        confusion=confusion_frame(truth, predicted, labels=list(first.classes)),
        classes=list(first.classes))


def tagging_late_fusion(results: Sequence[TaggingResult], *, name: str | None = None,
                        n_boot: int | None = None, seed: int | None = None) -> TaggingResult:
    """The mean of the results' track scores (same tracks, tags and folds required)."""
    results = list(results)
    _check_same(results, tagging=True)
    first = results[0]
    S = np.mean([r.scores.to_numpy() for r in results], axis=0)
    how = _late_provenance(
        results, name=name or f"late({' + '.join(r.name for r in results)})", task="tagging",
        n_boot=n_boot, seed=seed,
        params={"fusion": "late (mean of track scores)", "members": [r.name for r in results]})
    scores = TagScores(track_ids=first.scores.index, Y=first.truth.to_numpy(), S=S,
                       mask=first.mask, groups=first.groups.to_numpy(),
                       fold=first.fold.to_numpy())
    folds = pd.concat([r.folds.assign(model=r.name) for r in results], ignore_index=True)
    return tagging_result(scores, first.tags, how, folds=folds)


def evaluate_late_fusion(blocks: Blocks, tracks: pd.DataFrame, *,
                         layers: int | str | Mapping = "select",
                         weights: Mapping[str, float] | None = None,
                         fingerprints: Mapping[str, str] | None = None,
                         name: str | None = None, **options
                         ) -> tuple[ProbeResult, dict[str, ProbeResult]]:
    """Probe every model alone (same seed, same folds) and fuse them late.

    ``options`` go to :func:`~mtbc.evaluation.systems.evaluate_probe` (``probe``, ``seed``,
    ``n_splits``...). Returns ``(fused, {model: single-model result})``.
    """
    singles = {}
    for m, (features, track_index) in blocks.items():
        singles[m] = evaluate_probe(
            features, track_index, tracks,
            layer=layers[m] if isinstance(layers, Mapping) else layers,
            fingerprint=(fingerprints or {}).get(m), name=m, **options)
    w = None if weights is None else [weights[m] for m in blocks]
    fused = late_fusion(list(singles.values()), weights=w, name=name)
    return fused, singles
