"""Ensembles of embedding models, evaluated with the probing protocol (``docs/protocol.md``).

Models segment audio differently (MERT: 30 s chunks; VGGish: 0.96 s frames), so fusion
happens at the TRACK level:

- Early fusion (:func:`evaluate_early_fusion`): each model's segments are averaged into one
  vector per track and layer; in every outer fold each model's layer is chosen on validation
  tracks exactly as for that model alone (its own probe, or the ridge ranking, on its track
  means), the chosen layers are concatenated, and one probe is trained on the concatenation
  with :class:`BlockStandardizer` as its scaler and its hyperparameter chosen on validation.
- Late fusion (:func:`late_fusion`, :func:`evaluate_late_fusion`): each model is probed on its
  own segments by :func:`mtbc.analysis.protocol.evaluate_probe` with the same seed and therefore the same
  folds; a track's fused probability is the (weighted) mean of the models' track
  probabilities. The probes are fit by log-loss, so their probabilities are on a common,
  roughly calibrated scale; no extra calibration is fitted. Late fusion of identical models
  returns exactly that model's probabilities.

:class:`BlockStandardizer` standardises every feature on the training data and divides each
model's block by ``sqrt(block_dim)``, so each block carries total variance 1 whatever its width:
without it a 1024-d block holds 8x the squared norm of a 128-d one and dominates both the L2
penalty's trade-off and the dot products of the probe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mtbc.analysis import evaluation
from mtbc.analysis.probes import DEFAULT_CS, safe_std
from mtbc.analysis.protocol import FoldPlan, evaluate_probe, run_folds
from mtbc.analysis.results import ProbeResult, Provenance, build_result
from mtbc.analysis.selection import (
    Design,
    ProbeSpec,
    candidate_layers,
    choose,
    layer_scorer,
    layer_view,
    limit_threads,
    prepare_data,
    resolve_selection,
    track_means,
)
from mtbc.data import splits


class BlockStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise each feature, then scale each block by ``1 / sqrt(block_dim)``.

    Parameters
    ----------
    blocks : sizes of the consecutive feature blocks (summing to ``n_features``); ``None`` =
        one block. After ``fit``, every block's features have summed variance 1 on the training
        data (constant features stay 0, as in ``StandardScaler``).
    """

    def __init__(self, blocks: Sequence[int] | None = None):
        self.blocks = blocks

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        sizes = [X.shape[1]] if self.blocks is None else [int(b) for b in self.blocks]
        if any(b <= 0 for b in sizes) or sum(sizes) != X.shape[1]:
            raise ValueError(f"blocks {sizes} must be positive and sum to the "
                             f"{X.shape[1]} features")
        mean = X.mean(axis=0, dtype=np.float64)
        std = safe_std(mean, X.std(axis=0, dtype=np.float64))
        self.block_sizes_ = np.asarray(sizes)
        self.mean_ = mean
        self.scale_ = std * np.repeat(np.sqrt(self.block_sizes_), self.block_sizes_)
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)


def _blocks_views(blocks: Mapping[str, tuple[np.ndarray, np.ndarray]], tracks: pd.DataFrame):
    """Per-model track-mean features over the tracks every model covers."""
    if len(blocks) < 2:
        raise ValueError("fusion needs at least two models")
    means = {}
    for model, (features, track_index) in blocks.items():
        data = prepare_data(features, track_index, tracks)
        means[model] = track_means(data.features, data.track_index, len(tracks))
    covered = np.all([~np.isnan(m[:, 0, 0]) for m in means.values()], axis=0)
    rows = np.flatnonzero(covered)
    return {m: v[rows] for m, v in means.items()}, rows


def evaluate_early_fusion(
    blocks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    tracks: pd.DataFrame,
    *,
    layers: int | str | Mapping[str, int | str] = "select",
    probe: str = "linear",
    selection: str = "auto",
    seed: int = 0,
    n_splits: int = 5,
    n_inner: int = 3,
    refit: str = "train",
    Cs: Sequence[float] = DEFAULT_CS,
    probe_params: dict | None = None,
    n_boot: int = 1000,
    fingerprints: Mapping[str, str] | None = None,
    name: str | None = None,
    n_threads: int | None = 1,
    progress: bool = False,
) -> ProbeResult:
    """Concatenate the models' track-mean embeddings (block-standardised) and probe them.

    ``blocks`` maps a model name to ``(features (N_seg, L, D), track_index (N_seg,))`` over
    the same ``tracks`` table. ``layers`` is one choice for all models or one per model
    (``"select"``, an int or ``"mean"``). Folds, seed and other options as in
    :func:`mtbc.analysis.protocol.evaluate_probe`; ``layer_scores`` has a ``model`` column (each model's
    validation accuracy per layer, alone) and ``folds.layer`` holds the chosen layer per model.
    """
    selection = resolve_selection(probe, selection)
    models = list(blocks)
    per_model = {m: (layers[m] if isinstance(layers, Mapping) else layers) for m in models}
    means, rows = _blocks_views(blocks, tracks)
    data = prepare_data(means[models[0]], rows, tracks)
    classes = data.classes
    folds, split_desc = splits.outer_folds(tracks, n_splits=n_splits, seed=seed)
    design = Design(rows, len(tracks), data.y)
    # compact index: design.segments returns positions into `rows`
    views = {m: layer_view(means[m]) for m in models}
    cands = {m: candidate_layers(per_model[m], means[m].shape[1]) for m in models}
    dims = [means[m].shape[2] for m in models]
    params = dict(probe_params or {})
    fused_params = {**params, "scaler": BlockStandardizer(blocks=dims)}
    spec = ProbeSpec(probe, len(classes), seed, fused_params, tuple(Cs))
    single = ProbeSpec(probe, len(classes), seed, params, tuple(Cs))
    scorer = layer_scorer(single, selection, params)

    def fused_view(cand, segs):
        return np.hstack([views[m](c, segs) for m, c in zip(models, cand, strict=True)])

    def pre_select(inner):
        chosen, records = [], {}
        for m in models:
            choice = choose(design, views[m], cands[m], inner, scorer)
            chosen.append(choice.candidate)
            for c, (_, correct, _) in choice.by_candidate.items():
                records[(m, c)] = (choice.val_rows, correct)
        return [tuple(chosen)], records

    plan = FoldPlan(design=design, view=fused_view, candidates=None, tracks=tracks, folds=folds,
                    spec=spec, scorer=spec, n_inner=n_inner, seed=seed, refit=refit,
                    pre_select=pre_select, progress=progress, desc=f"early fusion {probe}")
    with limit_threads(n_threads, torch_too=probe == "mlp"):
        outcome = run_folds(plan)
    for row in outcome.fold_rows:
        row["layer"] = dict(zip(models, row["layer"], strict=True))
    how = Provenance(
        name=name or f"early fusion ({' + '.join(models)})", probe=probe, layer=per_model,
        selection=selection, scorer=scorer.kind, split=split_desc, seed=seed, n_boot=n_boot,
        fingerprint=dict(fingerprints) if fingerprints else None,
        params={"models": models, "dims": dims, "fusion": "early (track means, block-standardised)",
                "Cs": list(Cs), "n_splits": n_splits, "n_inner": n_inner, "refit": refit,
                "probe_params": params, "scaler": f"BlockStandardizer(blocks={dims})"})
    return build_result(tracks, data, outcome, how)


def late_fusion(results: Sequence[ProbeResult], *, weights: Sequence[float] | None = None,
                name: str | None = None, n_boot: int | None = None, seed: int | None = None
                ) -> ProbeResult:
    """Average the track probabilities of results made on the same tracks and folds.

    Refuses results whose track sets, fold assignment or classes differ (rerun them with the
    same seed and ``n_splits``). ``weights`` default to equal. ``n_boot``/``seed`` default to
    the first result's.
    """
    results = list(results)
    if len(results) < 2:
        raise ValueError("late fusion needs at least two results")
    first = results[0]
    for r in results[1:]:
        if list(r.classes) != list(first.classes):
            raise ValueError(f"{r.name} has classes {r.classes}, {first.name} {first.classes}")
        if not r.predictions.index.sort_values().equals(first.predictions.index.sort_values()):
            raise ValueError(f"{r.name} and {first.name} predicted different tracks; "
                             f"evaluate them on the same tracks table")
        fold_r = r.predictions["fold"].reindex(first.predictions.index)
        if not fold_r.equals(first.predictions["fold"]):
            raise ValueError(f"{r.name} and {first.name} used different folds; evaluate them "
                             f"with the same seed and n_splits")
    w = np.ones(len(results)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(results),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be one non-negative number per result, not all zero")
    index = first.predictions.index
    proba = np.average(np.stack([r.probabilities.loc[index].to_numpy() for r in results]),
                       axis=0, weights=w)
    classes = np.asarray(first.classes, dtype=object)
    truth = first.predictions["label"].to_numpy()
    predicted = classes[proba.argmax(axis=1)]
    n_boot = first.n_boot if n_boot is None else n_boot
    seed = first.seed if seed is None else seed
    groups = first.predictions["group"].to_numpy() if "group" in first.predictions else None
    predictions = pd.DataFrame({"label": truth, "predicted": predicted,
                                "correct": truth == predicted,
                                "fold": first.predictions["fold"].to_numpy()}, index=index)
    if groups is not None:
        predictions["group"] = groups
    folds = pd.concat([r.folds.assign(model=r.name) for r in results], ignore_index=True)
    scores = pd.concat([r.layer_scores.assign(model=r.name) for r in results],
                       ignore_index=True)
    return ProbeResult(
        name=name or f"late fusion ({' + '.join(r.name for r in results)})",
        predictions=predictions,
        probabilities=pd.DataFrame(proba, index=index, columns=first.probabilities.columns),
        folds=folds, layer_scores=scores,
        metrics=evaluation.metrics_table(truth, predicted, groups=groups, n_boot=n_boot,
                                         seed=seed),
        confusion=evaluation.confusion_frame(truth, predicted, labels=list(first.classes)),
        classes=list(first.classes), seed=seed, probe="+".join(r.probe for r in results),
        layer={r.name: r.layer for r in results}, selection=first.selection, split=first.split,
        n_tracks=len(index), n_boot=n_boot,
        fingerprint={r.name: r.fingerprint for r in results},
        params={"fusion": "late (mean of track probabilities)", "weights": w.tolist(),
                "members": [r.name for r in results]})


def evaluate_late_fusion(
    blocks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    tracks: pd.DataFrame,
    *,
    layers: int | str | Mapping[str, int | str] = "select",
    weights: Mapping[str, float] | None = None,
    fingerprints: Mapping[str, str] | None = None,
    name: str | None = None,
    **options,
) -> tuple[ProbeResult, dict[str, ProbeResult]]:
    """Probe every model alone (same seed, same folds) and fuse them late.

    ``options`` go to :func:`mtbc.analysis.protocol.evaluate_probe` (``probe``, ``seed``, ``n_splits``...).
    Returns ``(fused, {model: single-model result})``.
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
