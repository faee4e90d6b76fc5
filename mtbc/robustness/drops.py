"""Every probe drop of a study: each model and the concatenation of the models, accuracy on
the labelled tracks and macro ROC-AUC on the tagged ones.

:func:`measure_drops` reads each model's clean and deformed segments from the cache once (the
tracks that have every entry), then runs :func:`mtbc.robustness.probe.clean_trained` per
model and for the concatenation of all measured models (on the tracks every model has), as
notebooks 04 / 05 (classification) and 06 (tagging) do, and summarises with
:func:`~mtbc.robustness.probe.probe_drop` and :func:`~mtbc.robustness.probe.tagging_drop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtbc.data.splits import track_groups
from mtbc.data.tags import has_tags, tag_matrix
from mtbc.evaluation.tasks import usable_tags
from mtbc.robustness.probe import (
    TAG_DROP_COLUMNS,
    clean_probe_predictions,
    clean_trained,
    probe_drop,
    tagging_drop,
)


@dataclass(frozen=True)
class DropOptions:
    """Seed, outer folds (before capping by the smallest label) and bootstrap resamples; the
    swap permutations of the tagging test (notebook 06's default); ``tagging``: whether to
    run the tagging probe at all (on the demo it costs about three times the accuracy
    probe: segment-level multi-label fits)."""

    seed: int = 0
    n_splits: int = 5
    n_boot: int = 1000
    n_perm: int = 1000
    tagging: bool = True


@dataclass
class Drops:
    """``accuracy`` (:func:`~mtbc.robustness.probe.probe_drop` summaries with a ``model``
    column), ``detail`` (its per-track differences, for model comparisons), ``auc``
    (:func:`~mtbc.robustness.probe.tagging_drop` rows with ``model``), and why either is
    missing (a sentence, or None)."""

    accuracy: pd.DataFrame
    detail: pd.DataFrame
    auc: pd.DataFrame
    why_no_accuracy: str | None = None
    why_no_auc: str | None = None


def concat_name(models) -> str:
    """The concatenation's row name: ``concat(a + b)`` (as the stability table's)."""
    return f"concat({' + '.join(models)})"


def _subset(segs, loaded: np.ndarray, keep: np.ndarray):
    """Segments loaded for the pool rows ``loaded`` (in order), restricted to the pool rows
    ``keep`` (in order) with ``track_index`` into ``keep``."""
    feats, index = segs
    if np.array_equal(loaded, keep):
        return segs
    remap = np.full(len(loaded), -1, dtype=np.int64)
    remap[np.searchsorted(loaded, keep)] = np.arange(len(keep))
    new = remap[index]
    sel = new >= 0
    return feats[sel], new[sel]


def _labelled(pool: pd.DataFrame) -> np.ndarray:
    return pool["label"].notna().to_numpy() if "label" in pool else np.zeros(len(pool), bool)


def _tagged(pool: pd.DataFrame) -> np.ndarray:
    if not has_tags(pool):
        return np.zeros(len(pool), bool)
    return tag_matrix(pool)[1].any(axis=1)


def _accuracy(sub, clean, deformed, options: DropOptions):
    if not len(sub) or sub["label"].nunique() < 2:
        return "the collection has fewer than 2 labels"
    counts = sub["label"].value_counts()
    n_folds = min(int(options.n_splits), int(counts.min()))
    if n_folds < 2:
        return "too few labelled tracks per label for cross-validation"
    preds = clean_probe_predictions(clean, sub, deformed, seed=options.seed, n_splits=n_folds)
    groups = pd.Series(track_groups(sub), index=sub["track_id"].astype(str))
    return probe_drop(preds, groups, n_boot=options.n_boot, seed=options.seed)


def _auc(sub, clean, deformed, tags, options: DropOptions):
    if not len(sub) or not usable_tags(sub, tags):
        return "no tag has both a known positive and a known negative track"
    try:
        run = clean_trained(sub, clean, deformed, task="tagging", seed=options.seed,
                            n_splits=options.n_splits, tags=tags)
    except ValueError as err:  # too few tracks for notebook 06's folds: say so, go on
        return f"the tagging probe cannot be cross-validated on these tracks ({err})"
    return tagging_drop(run, n_boot=options.n_boot, n_perm=options.n_perm, seed=options.seed)


def measure_drops(tracks: pd.DataFrame, store, fingerprints: Mapping[str, tuple[str, dict]],
                  options: DropOptions = DropOptions()) -> Drops:
    """Accuracy and macro ROC-AUC drops of every model and of their concatenation.

    Parameters
    ----------
    tracks : pandas.DataFrame
        The study's tracks (``content_hash``, ``track_id``, ``label`` and/or ``tags``).
    store : EmbeddingStore
    fingerprints : mapping of str to (str, dict)
        Model -> (clean fingerprint, deformation label -> deformed fingerprint).
    options : DropOptions

    Returns
    -------
    Drops
        Each model alone on the tracks it has clean and under every deformation; with two
        models or more, their concatenation on the tracks every model has.
    """
    needed = _labelled(tracks) | _tagged(tracks)
    pool = tracks.loc[needed].reset_index(drop=True)
    labelled, tagged = _labelled(pool), _tagged(pool)
    tags = usable_tags(pool.loc[tagged]) if tagged.any() else []
    segments, have = {}, {}
    for model, (clean_fp, fps) in fingerprints.items():
        ok = np.ones(len(pool), dtype=bool)
        for fp in [clean_fp, *fps.values()]:
            ok &= np.array([store.has(h, fp) for h in pool["content_hash"]], dtype=bool)
        have[model] = np.flatnonzero(ok)
        hashes = list(pool["content_hash"].to_numpy()[ok])
        segments[model] = ({lab: store.load_many(hashes, fp, reduce=None)
                            for lab, fp in fps.items()} if hashes else {},
                           store.load_many(hashes, clean_fp, reduce=None) if hashes else None)
    systems = {m: [m] for m in fingerprints}
    if len(fingerprints) > 1:
        systems[concat_name(fingerprints)] = list(fingerprints)
    labels = list(next(iter(fingerprints.values()))[1]) if fingerprints else []
    measures = {"accuracy": (labelled, None if labelled.any()
                             else "the collection has no labelled tracks"),
                "auc": (tagged, "the tagging probe was switched off (robustness_tagging: "
                                "false)" if not options.tagging
                        else None if tags else "the collection has no tag with a known "
                                               "positive and a known negative track")}
    found: dict[str, list] = {"accuracy": [], "detail": [], "auc": []}
    why = {k: reason for k, (_, reason) in measures.items()}
    for name, members in systems.items():
        rows = np.flatnonzero(np.all([np.isin(np.arange(len(pool)), have[m])
                                      for m in members], axis=0))
        for measure, (wanted, reason) in measures.items():
            keep = rows[wanted[rows]]
            if reason is not None:
                continue
            if not len(keep):
                why[measure] = why[measure] or (f"{name} has no track with every deformation "
                                                f"cached")
                continue
            sub = pool.iloc[keep].reset_index(drop=True)
            clean = {m: _subset(segments[m][1], have[m], keep) for m in members}
            deformed = {lab: {m: _subset(segments[m][0][lab], have[m], keep) for m in members}
                        for lab in labels}
            result = (_accuracy(sub, clean, deformed, options) if measure == "accuracy"
                      else _auc(sub, clean, deformed, tags, options))
            if isinstance(result, str):
                why[measure] = why[measure] or result
            elif measure == "accuracy":
                found["accuracy"].append(result[0].assign(model=name))
                found["detail"].append(result[1].assign(model=name))
            else:
                found["auc"].append(result.assign(model=name))
    tables = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame()
              for k, v in found.items()}
    if not found["auc"]:
        tables["auc"] = pd.DataFrame(columns=[*TAG_DROP_COLUMNS, "model"])
    return Drops(tables["accuracy"], tables["detail"], tables["auc"],
                 why_no_accuracy=None if found["accuracy"] else why["accuracy"],
                 why_no_auc=None if found["auc"] else why["auc"])
