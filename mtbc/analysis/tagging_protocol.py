"""The tagging protocol: multi-label probes without leakage (``docs/tagging.md``).

The same protocol as classification (:mod:`mtbc.analysis.protocol`), with tags:

- Tracks with at least one known tag entry take part; a (track, tag) entry that is unknown
  (masked) adds nothing to any loss or metric.
- Splits: a predefined ``split`` (train / valid / test, as MagnaTagATune's and OpenMIC's)
  when the tagged tracks have train and test; otherwise stratified group k-fold whose strata
  are each track's *most frequent positive tag* (frequency over the collection; ``(none)``
  without a positive), with grouped inner folds for validation. Groups come from
  :func:`mtbc.data.splits.track_groups`, so no song, duplicate or artist spans two sides.
- Within each outer fold the layer (each layer and the mean of layers) and the
  hyperparameter (``C`` of the linear probe, epochs of the MLP) are chosen by **validation
  macro ROC-AUC** (the valid split, else the pooled inner folds' validation tracks), then the
  probe is refit (on train for a predefined split, on the whole outer training part for
  k-fold) and scores the fold's test tracks. Ties go to the lower layer, smaller ``C``,
  fewer epochs. ``selection="auto"``: the linear probe scores layers itself; for the MLP the
  linear probe ranks the layers and the MLP's epochs are chosen on the chosen layer.
- A track's score per tag is the mean of its segments' probabilities.
- Early fusion (:func:`evaluate_tagging_early_fusion`): each model's track-mean embedding at
  its own validation-chosen layer, concatenated with per-block standardisation
  (:class:`mtbc.analysis.ensemble.BlockStandardizer`); late fusion
  (:func:`tagging_late_fusion`): the mean of the models' track scores on the same folds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mtbc.analysis.ensemble import BlockStandardizer
from mtbc.analysis.probes import DEFAULT_CS
from mtbc.analysis.selection import (
    Design,
    View,
    candidate_layers,
    layer_view,
    limit_threads,
    track_ids,
    track_means,
)
from mtbc.analysis.tagging import (
    TAGGING_PROBES,
    MultiLabelLinearProbe,
    MultiLabelMLPProbe,
    TaggingResult,
    macro_roc_auc,
    make_result,
)
from mtbc.data import splits
from mtbc.data.tags import tag_matrix, tag_vocabulary


@dataclass(frozen=True)
class TagData:
    """Validated inputs: segment ``features (N, L, D)``, ``track_index``, the ``tags`` used,
    ``Y`` (n_tracks, T: 1 / 0 / NaN) and ``mask`` (True where known)."""

    features: np.ndarray
    track_index: np.ndarray
    tags: list
    Y: np.ndarray
    mask: np.ndarray


def usable_tags(tracks: pd.DataFrame, tags: Sequence[str] | None = None) -> list[str]:
    """Tags (default: the vocabulary) with at least one known positive and one known negative."""
    Y, mask, names = tag_matrix(tracks, tags=tags if tags is not None else tag_vocabulary(tracks))
    return [t for j, t in enumerate(names) if (Y[mask[:, j], j] == 1).any()
            and (Y[mask[:, j], j] == 0).any()]


def prepare_tag_data(features, track_index, tracks: pd.DataFrame, *,
                     tags: Sequence[str] | None = None) -> TagData:
    """Validate segment features against a tagged tracks table (``ValueError`` says why)."""
    features = np.asarray(features)
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise ValueError(f"features must be (n_segments, n_layers, dim), got {features.shape}")
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float32)
    track_index = np.asarray(track_index, dtype=np.int64)
    if track_index.shape != (len(features),):
        raise ValueError(f"track_index must have one entry per segment ({len(features)})")
    if len(track_index) and (track_index.min() < 0 or track_index.max() >= len(tracks)):
        raise ValueError("track_index holds positions outside the tracks table")
    names = usable_tags(tracks, tags)
    if not names:
        raise ValueError("no tag has both a known positive and a known negative track")
    Y, mask, _ = tag_matrix(tracks, tags=names)
    counts = np.bincount(track_index, minlength=len(tracks))
    missing = np.flatnonzero(mask.any(axis=1) & (counts == 0))
    if len(missing):
        raise ValueError(f"{len(missing)} tagged track(s) have no segments in features "
                         f"(e.g. {', '.join(track_ids(tracks)[missing[:3]])})")
    return TagData(features, track_index, names, Y, mask)


def tag_strata(Y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each track's most frequent positive tag (index as str; ``(none)`` without one)."""
    pos = (Y == 1) & mask
    freq = pos.sum(axis=0)
    best = np.where(pos, freq[None, :], -1)
    out = np.where(pos.any(axis=1), best.argmax(axis=1).astype(str), "(none)")
    return out.astype(object)


def has_predefined_tag_split(tracks: pd.DataFrame, tagged: np.ndarray) -> bool:
    if "split" not in tracks.columns:
        return False
    return {"train", "test"} <= set(tracks["split"].to_numpy()[tagged].tolist())


def tagging_folds(tracks: pd.DataFrame, Y: np.ndarray, mask: np.ndarray, *, n_splits: int = 5,
                  seed: int = 0) -> tuple[list[splits.Fold], str]:
    """Outer folds over the tagged tracks (module docstring) and a one-line description."""
    tagged = np.flatnonzero(mask.any(axis=1))
    if len(tagged) == 0:
        raise ValueError("no tagged tracks")
    if has_predefined_tag_split(tracks, mask.any(axis=1)):
        split = tracks["split"].to_numpy()
        parts = {s: tagged[split[tagged] == s] for s in splits.SPLIT_NAMES}
        valid = parts["valid"] if len(parts["valid"]) else None
        present = [p for p in (parts["train"], valid, parts["test"]) if p is not None]
        splits.check_disjoint(tracks, *present, names=("train", "valid", "test")
                              if valid is not None else ("train", "test"))
        return ([splits.Fold("test", parts["train"], parts["test"], valid)],
                f"predefined split: train {len(parts['train'])} / valid {len(parts['valid'])}"
                f" / test {len(parts['test'])} tracks")
    groups = splits.track_groups(tracks)[tagged]
    k = min(int(n_splits), len(np.unique(groups)))
    folds = []
    for i, (tr, te) in enumerate(splits.stratified_group_folds(
            tag_strata(Y[tagged], mask[tagged]), groups, k, seed, "outer cross-validation")):
        splits.check_disjoint(tracks, tagged[tr], tagged[te], names=("train", "test"))
        folds.append(splits.Fold(f"fold {i}", tagged[tr], tagged[te]))
    return folds, (f"group {k}-fold CV stratified by most frequent tag (seed {seed}): "
                   f"{len(tagged)} tracks in {len(np.unique(groups))} groups")


def tagging_inner(tracks, rows, Y, mask, *, n_splits: int = 3, seed: int = 0):
    """Grouped inner folds over ``rows`` (stratified like the outer folds), checked disjoint."""
    rows = np.asarray(rows)
    groups = splits.track_groups(tracks)[rows]
    k = max(2, min(int(n_splits), len(np.unique(groups))))
    out = []
    for tr, va in splits.stratified_group_folds(tag_strata(Y[rows], mask[rows]), groups, k,
                                                seed, "inner cross-validation"):
        splits.check_disjoint(tracks, rows[tr], rows[va], names=("inner train", "inner valid"))
        out.append((rows[tr], rows[va]))
    return out


@dataclass
class TagSpec:
    """A tagging probe and its hyperparameter grid (``C`` or epochs)."""

    kind: str
    seed: int = 0
    params: dict = field(default_factory=dict)
    Cs: tuple = DEFAULT_CS

    @property
    def param(self) -> str:
        return {"linear": "C", "mlp": "epochs"}[self.kind]

    @property
    def grid(self) -> list:
        if self.kind == "linear":
            return list(self.Cs)
        return list(range(1, int(self.params.get("max_epochs", 100)) + 1))

    def estimator(self, value):
        if self.kind == "linear":
            return MultiLabelLinearProbe(C=value, **self.params)
        return MultiLabelMLPProbe(random_state=self.seed,
                                  **{**self.params, "max_epochs": int(value)})

    def path(self, xtr, ytr, mtr, xva) -> list[np.ndarray]:
        """Validation scores for every grid value."""
        if self.kind == "linear":
            return MultiLabelLinearProbe.path(xtr, ytr, mtr, xva, self.grid, **self.params)
        return self.estimator(self.grid[-1]).fit(xtr, ytr, mtr, eval_X=xva).eval_scores_


@dataclass
class TagChoice:
    candidate: object
    value: object
    score: float
    val_rows: np.ndarray
    by_candidate: dict  # candidate -> (validation macro ROC-AUC, grid value)


def choose_tagging(design: Design, view: View, candidates: Sequence, inner: Sequence,
                   Y: np.ndarray, mask: np.ndarray, spec: TagSpec) -> TagChoice:
    """Best (candidate, grid value) by validation macro ROC-AUC of the inner folds'
    validation tracks pooled (each fold's scores ranked within it); first best on ties."""
    val_rows = np.concatenate([va for _, va in inner])
    best, by_candidate = None, {}
    for cand in candidates:
        pooled = []
        for tr, va in inner:
            s_tr, _ = design.segments(tr)
            s_va, c_va = design.segments(va)
            seg_tracks = design.seg_track[s_tr]
            scores = spec.path(view(cand, s_tr), Y[seg_tracks], mask[seg_tracks],
                               view(cand, s_va))
            # ranked within each validation fold (see fold_ranks: no fold-to-fold offset)
            pooled.append([rankdata(design.track_mean(s, c_va), axis=0) / len(va)
                           for s in scores])
        aucs = [macro_roc_auc(Y[val_rows], np.concatenate([p[g] for p in pooled]),
                              mask[val_rows]) for g in range(len(spec.grid))]
        aucs = np.nan_to_num(np.asarray(aucs), nan=-np.inf)
        g = int(np.argmax(aucs))
        by_candidate[cand] = (float(aucs[g]), spec.grid[g])
        if best is None or aucs[g] > best.score:
            best = TagChoice(cand, spec.grid[g], float(aucs[g]), val_rows, by_candidate)
    return best


def _predict(probe, design: Design, view: View, cand, rows) -> np.ndarray:
    segs, counts = design.segments(rows)
    return design.track_mean(probe.predict_proba(view(cand, segs)), counts)


@dataclass
class TagPlan:
    """What :func:`run_tagging_folds` needs (see :class:`mtbc.analysis.protocol.FoldPlan`)."""

    design: Design
    view: View
    candidates: list | None
    tracks: pd.DataFrame
    folds: list
    Y: np.ndarray
    mask: np.ndarray
    spec: TagSpec
    scorer: TagSpec
    n_inner: int = 3
    seed: int = 0
    refit: str = "train"
    pre_select: Callable | None = None


def run_tagging_folds(plan: TagPlan) -> tuple[np.ndarray, np.ndarray, list, list, dict]:
    """Every outer fold: choose on validation, refit, score the test tracks. Returns test
    rows, their scores, fold names, one row per fold, and validation AUC per candidate."""
    d, Y, M = plan.design, plan.Y, plan.mask
    rows, scores, names, fold_rows, layer_rec = [], [], [], [], {}
    for k, fold in enumerate(plan.folds):
        inner = ([(fold.train, fold.valid)] if fold.valid is not None else
                 tagging_inner(plan.tracks, fold.train, Y, M, n_splits=plan.n_inner,
                               seed=plan.seed + 1000 + k))
        refit_rows = (np.concatenate([fold.train, fold.valid])
                      if fold.valid is not None and plan.refit == "train+valid" else fold.train)
        cands, records = (plan.pre_select(inner) if plan.pre_select is not None
                          else (plan.candidates, None))
        lc = choose_tagging(d, plan.view, cands, inner, Y, M, plan.scorer)
        pc = lc if plan.scorer.kind == plan.spec.kind else choose_tagging(
            d, plan.view, [lc.candidate], inner, Y, M, plan.spec)
        segs, _ = d.segments(refit_rows)
        probe = plan.spec.estimator(pc.value).fit(plan.view(lc.candidate, segs),
                                                  Y[d.seg_track[segs]], M[d.seg_track[segs]])
        scores.append(_predict(probe, d, plan.view, lc.candidate, fold.test))
        rows.append(fold.test)
        names += [fold.name] * len(fold.test)
        for key, (auc, _) in (records or lc.by_candidate).items():
            layer_rec.setdefault(key, []).append(auc)
        fold_rows.append({"fold": fold.name, "layer": lc.candidate, "param": plan.spec.param,
                          "value": pc.value, "val_roc_auc": pc.score,
                          "layer_val_roc_auc": lc.score, "n_train": len(refit_rows),
                          "n_valid": len(lc.val_rows), "n_test": len(fold.test)})
    return np.concatenate(rows), np.concatenate(scores), names, fold_rows, layer_rec


def _layer_table(records: dict) -> pd.DataFrame:
    out = []
    for key, values in records.items():
        row = dict(zip(["model", "layer"], key, strict=True)) if isinstance(key, tuple) else {
            "layer": key}
        row.update({"val_roc_auc": float(np.mean(values)), "n_folds": len(values)})
        out.append(row)
    return pd.DataFrame(out)


def _specs(probe: str, selection: str, seed: int, params: dict, Cs) -> tuple[TagSpec, TagSpec]:
    if probe not in TAGGING_PROBES:
        raise ValueError(f"probe must be one of {TAGGING_PROBES}, not {probe!r}")
    if selection not in ("auto", "probe", "linear"):
        raise ValueError(f"selection must be 'auto', 'probe' or 'linear', not {selection!r}")
    spec = TagSpec(probe, seed, params, tuple(Cs))
    if probe == "mlp" and selection in ("auto", "linear"):
        keep = {k: v for k, v in params.items() if k == "scaler"}
        return spec, TagSpec("linear", seed, keep, tuple(Cs))
    return spec, spec


def _finish(tracks, data_tags, Y, mask, outcome, *, name, probe, layer, split, seed, n_boot,
            fingerprint, params) -> TaggingResult:
    rows, scores, names, fold_rows, layer_rec = outcome
    return make_result(
        name=name, tags=data_tags, track_ids=track_ids(tracks)[rows], Y=Y[rows], S=scores,
        mask=mask[rows], groups=splits.track_groups(tracks)[rows], fold=names,
        folds=fold_rows, layer_scores=_layer_table(layer_rec), probe=probe, layer=layer,
        split=split, seed=seed, n_boot=n_boot, fingerprint=fingerprint, params=params)


def evaluate_tagging(features, track_index, tracks: pd.DataFrame, *, probe: str = "linear",
                     layer: int | str = "select", selection: str = "auto",
                     tags: Sequence[str] | None = None, seed: int = 0, n_splits: int = 5,
                     n_inner: int = 3, refit: str = "train", Cs: Sequence[float] = DEFAULT_CS,
                     probe_params: dict | None = None, n_boot: int = 1000,
                     fingerprint: str | None = None, name: str | None = None,
                     n_threads: int | None = 1) -> TaggingResult:
    """Probe segment embeddings for tags; out-of-sample track scores and metrics.

    Parameters
    ----------
    features, track_index, tracks
        As for :func:`mtbc.analysis.protocol.evaluate_probe`; ``tracks`` carries ``tags`` /
        ``tags_negative`` (:mod:`mtbc.data.tags`).
    probe : {"linear", "mlp"}
    layer : ``"select"`` (every layer and their mean, chosen on validation), an int or "mean".
    selection : {"auto", "probe", "linear"}
        What scores layers (module docstring).
    tags : the tags to use (default: every tag with a known positive and negative).
    seed, n_splits, n_inner, refit, Cs, probe_params, n_boot, fingerprint, name, n_threads
        As for classification.
    """
    params = dict(probe_params or {})
    spec, scorer = _specs(probe, selection, seed, params, Cs)
    data = prepare_tag_data(features, track_index, tracks, tags=tags)
    folds, split = tagging_folds(tracks, data.Y, data.mask, n_splits=n_splits, seed=seed)
    plan = TagPlan(Design(data.track_index, len(tracks), np.zeros(len(tracks), int)),
                   layer_view(data.features), candidate_layers(layer, data.features.shape[1]),
                   tracks, folds, data.Y, data.mask, spec, scorer, n_inner=n_inner, seed=seed,
                   refit=refit)
    with limit_threads(n_threads, torch_too=probe == "mlp"):
        outcome = run_tagging_folds(plan)
    return _finish(tracks, data.tags, data.Y, data.mask, outcome,
                   name=name or f"{probe} tagging probe", probe=probe, layer=layer,
                   split=split, seed=seed, n_boot=n_boot, fingerprint=fingerprint,
                   params={"Cs": list(Cs), "n_splits": n_splits, "n_inner": n_inner,
                           "refit": refit, "probe_params": params, "selection": selection,
                           "n_layers": data.features.shape[1], "dim": data.features.shape[2]})


def evaluate_tagging_early_fusion(blocks: Mapping[str, tuple[np.ndarray, np.ndarray]],
                                  tracks: pd.DataFrame, *, layers="select", probe: str = "linear",
                                  tags: Sequence[str] | None = None, seed: int = 0,
                                  n_splits: int = 5, n_inner: int = 3, refit: str = "train",
                                  Cs: Sequence[float] = DEFAULT_CS,
                                  probe_params: dict | None = None, n_boot: int = 1000,
                                  name: str | None = None, n_threads: int | None = 1
                                  ) -> TaggingResult:
    """Concatenate the models' track-mean embeddings, each at its own validation-chosen
    layer, block-standardised, and probe them for tags (options as :func:`evaluate_tagging`)."""
    models = list(blocks)
    if len(models) < 2:
        raise ValueError("fusion needs at least two models")
    datas = {m: prepare_tag_data(*blocks[m], tracks, tags=tags) for m in models}
    names = datas[models[0]].tags
    means = {m: track_means(datas[m].features, datas[m].track_index, len(tracks))
             for m in models}
    rows = np.flatnonzero(np.all([~np.isnan(v[:, 0, 0]) for v in means.values()], axis=0))
    means = {m: v[rows] for m, v in means.items()}
    Y, mask, _ = tag_matrix(tracks, tags=names)
    mask = mask & np.isin(np.arange(len(tracks)), rows)[:, None]
    folds, split = tagging_folds(tracks, Y, mask, n_splits=n_splits, seed=seed)
    design = Design(rows, len(tracks), np.zeros(len(tracks), int))
    views = {m: layer_view(means[m]) for m in models}
    cands = {m: candidate_layers(layers[m] if isinstance(layers, Mapping) else layers,
                                 means[m].shape[1]) for m in models}
    dims = [means[m].shape[2] for m in models]
    params = dict(probe_params or {})
    spec = TagSpec(probe, seed, {**params, "scaler": BlockStandardizer(blocks=dims)}, tuple(Cs))
    single = TagSpec("linear", seed, {}, tuple(Cs))

    def fused_view(cand, segs):
        return np.hstack([views[m](c, segs) for m, c in zip(models, cand, strict=True)])

    def pre_select(inner):
        chosen, records = [], {}
        for m in models:
            choice = choose_tagging(design, views[m], cands[m], inner, Y, mask, single)
            chosen.append(choice.candidate)
            records.update({(m, c): v for c, v in choice.by_candidate.items()})
        return [tuple(chosen)], records

    plan = TagPlan(design, fused_view, None, tracks, folds, Y, mask, spec, spec,
                   n_inner=n_inner, seed=seed, refit=refit, pre_select=pre_select)
    with limit_threads(n_threads, torch_too=probe == "mlp"):
        outcome = run_tagging_folds(plan)
    for row in outcome[3]:
        row["layer"] = dict(zip(models, row["layer"], strict=True))
    return _finish(tracks, names, Y, mask, outcome,
                   name=name or f"concat({' + '.join(models)})", probe=probe, layer=layers,
                   split=split, seed=seed, n_boot=n_boot, fingerprint=None,
                   params={"models": models, "dims": dims, "Cs": list(Cs),
                           "fusion": "early (track means, block-standardised)"})


def tagging_late_fusion(results: Sequence[TaggingResult], *, name: str | None = None,
                        n_boot: int | None = None, seed: int | None = None) -> TaggingResult:
    """The mean of the results' track scores (same tracks, tags and folds required)."""
    results = list(results)
    if len(results) < 2:
        raise ValueError("late fusion needs at least two results")
    first = results[0]
    for r in results[1:]:
        if list(r.tags) != list(first.tags) or not r.scores.index.equals(first.scores.index) \
                or not r.fold.equals(first.fold):
            raise ValueError(f"{r.name} and {first.name} differ in tags, tracks or folds; "
                             f"evaluate them on the same tracks with the same seed")
    S = np.mean([r.scores.to_numpy() for r in results], axis=0)
    folds = pd.concat([r.folds.assign(model=r.name) for r in results], ignore_index=True)
    return make_result(
        name=name or f"late({' + '.join(r.name for r in results)})", tags=first.tags,
        track_ids=first.scores.index, Y=first.truth.to_numpy(), S=S, mask=first.mask,
        groups=first.groups.to_numpy(), fold=first.fold.to_numpy(), folds=folds,
        layer_scores=pd.DataFrame(), probe="+".join(r.probe for r in results),
        layer={r.name: r.layer for r in results}, split=first.split,
        seed=first.seed if seed is None else seed,
        n_boot=first.n_boot if n_boot is None else n_boot,
        params={"fusion": "late (mean of track scores)", "members": [r.name for r in results]})
