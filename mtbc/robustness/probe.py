"""The probe drop: a probe trained on clean tracks, tested on deformed copies of its test tracks.

The folds, seeds, layer and ``C`` choices are notebook 04's linear probe
(:func:`mtbc.evaluation.evaluate_probe`): :func:`clean_probe_predictions` is the one
function that talks to the evaluation engine. It runs the engine's own fold loop
(:func:`mtbc.evaluation.engine.run_folds`) on a tracks table that holds, after the clean
tracks, one copy per deformation whose rows appear only in test parts: each outer fold is the
clean fold, with the deformed copies of its test tracks added to its test part. Training,
validation and every choice therefore see clean tracks only, exactly as in notebook 04 (the
clean predictions equal ``evaluate_probe``'s; ``tests/robustness/test_robustness.py`` checks it), and the
same fitted probe predicts each test track clean and deformed.

:func:`probe_drop` turns the predictions into the drop (clean accuracy minus deformed
accuracy) with a group-aware paired CI and p (:func:`mtbc.evaluation.paired_test`).
Single-label classification only; tagged collections (macro ROC-AUC) are not covered yet.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mtbc import evaluation
from mtbc.data import splits
from mtbc.evaluation import Classification, EvalOptions, LayerProbe, ProbeOptions
from mtbc.evaluation.data import limit_threads
from mtbc.evaluation.engine import run_folds


def clean_probe_predictions(clean: tuple[np.ndarray, np.ndarray], tracks: pd.DataFrame,
                            deformed: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                            seed: int = 0, n_splits: int = 5) -> pd.DataFrame:
    """Notebook 04's linear probe, trained on clean tracks, predicting clean and deformed ones.

    The adapter onto the evaluation engine: everything engine-specific is in this function.

    Parameters
    ----------
    clean : (segments ``(N, n_layers, dim)``, track_index ``(N,)``)
        Clean segment embeddings of ``tracks`` (``EmbeddingStore.load_many(..., reduce=None)``).
    tracks : pandas.DataFrame
        Labelled tracks (``track_id``, ``label``, grouping columns), row ``i`` = track index ``i``.
    deformed : mapping of str to (segments, track_index)
        Deformation label -> the same tracks' deformed segment embeddings.
    seed, n_splits : int
        As notebook 04 (``n_splits`` already capped by the smallest label, as 04 does).

    Returns
    -------
    pandas.DataFrame
        One row per (test track, condition): ``track_id, condition`` (``"clean"`` or a
        deformation label), ``fold, label, predicted, correct``.
    """
    n = len(tracks)
    names = ["clean", *deformed]
    base = tracks.reset_index(drop=True)
    copies = [base] + [base.assign(track_id=base["track_id"].astype(str) + f" ~ {k}")
                       for k in deformed]
    augmented = pd.concat(copies, ignore_index=True)
    parts = [clean, *deformed.values()]
    features = np.concatenate([np.asarray(p[0]) for p in parts])
    index = np.concatenate([np.asarray(p[1]) + j * n for j, p in enumerate(parts)])
    # notebook 04's outer folds on the clean tracks; each test part gains the deformed copies
    folds, _ = Classification(base).folds(n_splits=n_splits, seed=seed)
    folds = [splits.Fold(f.name, f.train, np.concatenate([f.test + j * n
                                                          for j in range(len(names))]),
                         f.valid) for f in folds]
    task = Classification(augmented)
    system = LayerProbe(features, index, ProbeOptions(probe="linear"))
    options = EvalOptions(n_splits=n_splits, seed=seed, n_boot=0)
    system.prepare(task, options)
    with limit_threads(options.n_threads):
        outcome = run_folds(task, system, folds, options)
    classes = np.asarray(task.classes, dtype=object)
    rows = np.asarray(outcome.rows)
    truth = classes[task.y[rows]]
    predicted = classes[outcome.scores.argmax(axis=1)]
    return pd.DataFrame({"track_id": base["track_id"].astype(str).to_numpy()[rows % n],
                         "condition": np.asarray(names, dtype=object)[rows // n],
                         "fold": outcome.fold_names, "label": truth, "predicted": predicted,
                         "correct": truth == predicted})


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
