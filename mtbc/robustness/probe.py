"""The probe drop: a system trained on clean tracks, tested on deformed copies of its test tracks.

The systems are the notebooks' own: for one model notebook 04's linear probe
(:func:`mtbc.evaluation.evaluate_probe`) or notebook 06's linear tagging probe
(:func:`mtbc.evaluation.evaluate_tagging`); for several models notebook 05's / 06's
concatenation (:class:`mtbc.evaluation.Concatenation`: each model's layer chosen alone, one
probe on the block-standardised track means). :func:`clean_trained` is the one function that
talks to the evaluation engine. It runs the engine's own fold loop
(:func:`mtbc.evaluation.engine.run_folds`) on a tracks table that holds, after the clean
tracks, one copy per deformation whose rows appear only in test parts: each outer fold is the
clean fold, with the deformed copies of its test tracks added to its test part. Training,
validation, every choice and every scaler therefore see clean tracks only, exactly as in the
notebooks (the clean predictions equal theirs; ``tests/robustness`` checks it), and the same
fitted system predicts each test track clean and deformed.

Why not a :class:`~mtbc.evaluation.System` wrapper that predicts deformed features for the
test rows: a system fits, chooses and predicts inside one call (:meth:`System.fold`) and hands
back only the test rows' scores, so a wrapper would either copy the selection and refit
(``fit_fold``) to reach the fitted probe, or pass the deformed rows as extra test rows, which
is what the augmented table does for every system at once.

- :func:`probe_drop`: accuracy, clean minus deformed, with a group-aware paired CI and p
  (:func:`mtbc.evaluation.paired_test`) and per-track differences for model comparisons.
- :func:`tagging_drop`: macro ROC-AUC, clean minus deformed, on the same tracks: the swap
  permutation test and cluster-bootstrap CI of :func:`mtbc.stats.multilabel_paired_test`
  between the clean and the deformed score matrices (a per-track difference of an AUC is not
  defined, so there is no per-track detail). Scores are ranked within each fold and condition
  first (:func:`mtbc.stats.fold_ranks`), as notebook 06's metrics are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtbc import evaluation
from mtbc.data import splits
from mtbc.evaluation import (
    Classification,
    Concatenation,
    EvalOptions,
    LayerProbe,
    ProbeOptions,
    Tagging,
)
from mtbc.evaluation.data import limit_threads
from mtbc.evaluation.engine import run_folds
from mtbc.evaluation.ensembles import block_means
from mtbc.stats import fold_ranks, multilabel_paired_test

#: Segments of one model: ``(features (N_seg, n_layers, dim), track_index (N_seg,))``.
Segments = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CleanTrained:
    """Test-track scores of a system trained on clean tracks: row ``i`` is clean track
    ``rows[i]`` of ``tracks`` under ``condition[i]`` (``"clean"`` or a deformation label),
    scored by outer fold ``fold[i]``; ``task`` is the task on the clean ``tracks`` (its
    classes or tags are the columns of ``scores``)."""

    tracks: pd.DataFrame
    task: Classification | Tagging
    rows: np.ndarray
    condition: np.ndarray
    fold: np.ndarray
    scores: np.ndarray


def clean_trained(tracks: pd.DataFrame, clean: Mapping[str, Segments],
                  deformed: Mapping[str, Mapping[str, Segments]], *, task: str = "classification",
                  seed: int = 0, n_splits: int = 5,
                  tags: Sequence[str] | None = None) -> CleanTrained:
    """The notebooks' system, trained and tuned on clean tracks, scoring clean and deformed ones.

    The adapter onto the evaluation engine: everything engine-specific is in this function.

    Parameters
    ----------
    tracks : pandas.DataFrame
        The tracks (``track_id``, ``label`` or ``tags``, grouping columns), row ``i`` = track
        index ``i``; every track has segments under every model and condition.
    clean : mapping of str to (segments, track_index)
        Model -> clean segment embeddings of ``tracks`` (``load_many(..., reduce=None)``).
        One model: the linear probe (04 / 06); several: their concatenation (05 / 06).
    deformed : mapping of str to mapping of str to (segments, track_index)
        Deformation label -> model -> the same tracks' deformed segment embeddings.
    task : {"classification", "tagging"}
    seed, n_splits : int
        As the notebooks (``n_splits`` already capped by the smallest label, as 04 does).
    tags : sequence of str, optional
        Tagging: the tags (default: every tag with a known positive and negative).

    Returns
    -------
    CleanTrained
    """
    if task not in ("classification", "tagging"):
        raise ValueError(f"task must be 'classification' or 'tagging', not {task!r}")
    base = tracks.reset_index(drop=True)
    n, names = len(base), ["clean", *deformed]
    augmented = pd.concat([base] + [base.assign(track_id=base["track_id"].astype(str)
                                                + f" ~ {k}") for k in deformed],
                          ignore_index=True)
    blocks = {}
    for model, segs in clean.items():
        parts = [segs, *(d[model] for d in deformed.values())]
        blocks[model] = (np.concatenate([np.asarray(p[0]) for p in parts]),
                         np.concatenate([np.asarray(p[1]) + j * n for j, p in enumerate(parts)]))
    if task == "classification":
        on_clean, on_all = Classification(base), Classification(augmented)
    else:
        on_clean = Tagging(base, tags=tags)
        on_all = Tagging(augmented, tags=on_clean.names)
    # the notebooks' outer folds on the clean tracks; each test part gains the deformed copies
    folds, _ = on_clean.folds(n_splits=n_splits, seed=seed)
    folds = [splits.Fold(f.name, f.train, np.concatenate([f.test + j * n
                                                          for j in range(len(names))]),
                         f.valid) for f in folds]
    probe = ProbeOptions(probe="linear")
    if len(blocks) == 1:
        system = LayerProbe(*next(iter(blocks.values())), probe)
    else:
        system = Concatenation(*block_means(blocks, on_all), probe)
    options = EvalOptions(n_splits=n_splits, seed=seed, n_boot=0)
    system.prepare(on_all, options)
    with limit_threads(options.n_threads):
        outcome = run_folds(on_all, system, folds, options)
    rows = np.asarray(outcome.rows)
    return CleanTrained(tracks=base, task=on_clean, rows=rows % n,
                        condition=np.asarray(names, dtype=object)[rows // n],
                        fold=np.asarray(outcome.fold_names, dtype=object),
                        scores=np.asarray(outcome.scores))


def clean_probe_predictions(clean, tracks: pd.DataFrame, deformed: Mapping, *, seed: int = 0,
                            n_splits: int = 5) -> pd.DataFrame:
    """Notebook 04's linear probe (one model) or 05's concatenation (several), trained on
    clean tracks, predicting clean and deformed ones.

    Parameters
    ----------
    clean : (segments ``(N, n_layers, dim)``, track_index ``(N,)``), or model -> that
        Clean segment embeddings of ``tracks`` (``EmbeddingStore.load_many(..., reduce=None)``).
    tracks : pandas.DataFrame
        Labelled tracks (``track_id``, ``label``, grouping columns), row ``i`` = track index ``i``.
    deformed : mapping of str to (segments, track_index), or to model -> that
        Deformation label -> the same tracks' deformed segment embeddings.
    seed, n_splits : int
        As :func:`clean_trained`.

    Returns
    -------
    pandas.DataFrame
        One row per (test track, condition): ``track_id, condition`` (``"clean"`` or a
        deformation label), ``fold, label, predicted, correct``.
    """
    if not isinstance(clean, Mapping):
        clean = {"model": clean}
        deformed = {k: {"model": v} for k, v in deformed.items()}
    run = clean_trained(tracks, clean, deformed, task="classification", seed=seed,
                        n_splits=n_splits)
    classes = np.asarray(run.task.classes, dtype=object)
    truth = classes[run.task.y[run.rows]]
    predicted = classes[run.scores.argmax(axis=1)]
    return pd.DataFrame({"track_id": run.tracks["track_id"].astype(str).to_numpy()[run.rows],
                         "condition": run.condition, "fold": run.fold, "label": truth,
                         "predicted": predicted, "correct": truth == predicted})


def probe_drop(predictions: pd.DataFrame, groups: pd.Series, *, n_boot: int = 1000,
               seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy drop from clean to each deformation, with a paired group-aware CI and p.

    Parameters
    ----------
    predictions : pandas.DataFrame
        :func:`clean_probe_predictions`' output.
    groups : pandas.Series
        Track group by ``track_id`` (str).

    Returns
    -------
    (summary, per_track)
        ``summary``: one row per deformation: ``deformation, accuracy_clean,
        accuracy_deformed, drop`` (clean minus deformed, accuracy points as fractions),
        ``ci_low, ci_high, p_value, n_tracks, n_groups, method``.
        ``per_track``: ``track_id, deformation, group, drop`` (1: right when clean and wrong
        when deformed, -1 the reverse, 0 otherwise), for model comparisons.
    """
    wide = predictions.pivot_table(index="track_id", columns="condition",
                                   values="predicted", aggfunc="first")
    truth = predictions.drop_duplicates("track_id").set_index("track_id")["label"]
    truth = truth.loc[wide.index]
    g = groups.loc[wide.index].to_numpy()
    rows, per_track = [], []
    for cond in [c for c in dict.fromkeys(predictions["condition"]) if c != "clean"]:
        t = evaluation.paired_test(truth.to_numpy(), wide["clean"].to_numpy(),
                                   wide[cond].to_numpy(), groups=g, n_boot=n_boot, seed=seed)
        rows.append({"deformation": cond, "accuracy_clean": t.value_a,
                     "accuracy_deformed": t.value_b, "drop": t.diff, "ci_low": t.ci_low,
                     "ci_high": t.ci_high, "p_value": t.p_value, "n_tracks": t.n_tracks,
                     "n_groups": t.n_groups, "method": t.method})
        d = ((wide["clean"] == truth).astype(int) - (wide[cond] == truth).astype(int))
        per_track.append(pd.DataFrame({"track_id": wide.index, "deformation": cond,
                                       "group": g, "drop": d.to_numpy(float)}))
    summary = pd.DataFrame(rows, columns=["deformation", "accuracy_clean",
                                          "accuracy_deformed", "drop", "ci_low", "ci_high",
                                          "p_value", "n_tracks", "n_groups", "method"])
    detail = (pd.concat(per_track, ignore_index=True) if per_track
              else pd.DataFrame(columns=["track_id", "deformation", "group", "drop"]))
    return summary, detail


TAG_DROP_COLUMNS = ["deformation", "roc_auc_clean", "roc_auc_deformed", "drop", "ci_low",
                    "ci_high", "p_value", "n_tracks", "n_groups", "n_tags", "method"]


def tagging_drop(run: CleanTrained, *, n_boot: int = 1000, n_perm: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Macro ROC-AUC drop from clean to each deformation, with a group-aware paired CI and p.

    Parameters
    ----------
    run : CleanTrained
        :func:`clean_trained` with ``task="tagging"``.
    n_boot, n_perm, seed : int
        Cluster-bootstrap resamples of the CI, swap permutations of the p-value (exact with
        at most 10 groups), seed (:func:`mtbc.stats.multilabel_paired_test`; notebook 06's
        paired tests use the same).

    Returns
    -------
    pandas.DataFrame
        One row per deformation: ``deformation, roc_auc_clean, roc_auc_deformed, drop``
        (clean minus deformed), ``ci_low, ci_high, p_value, n_tracks, n_groups, n_tags,
        method``.
    """
    task = run.task
    clean = run.condition == "clean"
    order = np.argsort(run.rows[clean], kind="stable")
    rows = run.rows[clean][order]
    fold = run.fold[clean][order]
    groups = task.groups()[rows]
    Y, mask = task.Y[rows], task.mask[rows]
    scores_clean = fold_ranks(run.scores[clean][order], fold)
    out = []
    for cond in [c for c in dict.fromkeys(run.condition) if c != "clean"]:
        here = run.condition == cond
        pos = pd.Series(np.flatnonzero(here), index=run.rows[here]).loc[rows].to_numpy()
        if not np.array_equal(run.fold[pos], fold):
            raise ValueError(f"{cond}: a deformed copy was scored by another fold than its "
                             f"clean track")
        t = multilabel_paired_test(Y, scores_clean, fold_ranks(run.scores[pos], fold),
                                   mask=mask, groups=groups, n_perm=n_perm, n_boot=n_boot,
                                   seed=seed)
        out.append({"deformation": cond, "roc_auc_clean": t["value_a"],
                    "roc_auc_deformed": t["value_b"], "drop": t["diff"],
                    "ci_low": t["ci_low"], "ci_high": t["ci_high"], "p_value": t["p_value"],
                    "n_tracks": t["n_tracks"], "n_groups": t["n_groups"],
                    "n_tags": len(task.names), "method": t["method"]})
    return pd.DataFrame(out, columns=TAG_DROP_COLUMNS)
