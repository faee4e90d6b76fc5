"""The audit trail of a run: every prediction and every reported figure, as CSV files.

``reports/<run>/predictions.csv``: one row per (system, track): ``system, task, track_id,
group, fold, label, predicted, correct`` and ``p_<class>`` per class.
``reports/<run>/results.csv``: one row per (system, task, metric): ``system, task, metric,
value, ci_low, ci_high, n_tracks, n_groups, protocol, seed``.

Notebooks add their systems with :func:`audit_results` (classification and tagging results;
tagging writes no per-track rows); rows of a (system, task) already in the files are
replaced, so re-running a notebook never duplicates them. This module is the one writer of
both files (atomically). Both live beside the run record (``run.json``) and the index page
links them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mtbc.files import atomic_write

PREDICTIONS = "predictions.csv"
RESULTS = "results.csv"
RESULT_COLUMNS = ["system", "task", "metric", "value", "ci_low", "ci_high", "n_tracks",
                  "n_groups", "protocol", "seed"]
PREDICTION_COLUMNS = ["system", "task", "track_id", "group", "fold", "label", "predicted",
                      "correct"]


def result_rows(results: Iterable) -> pd.DataFrame:
    """``results.csv`` rows (one per metric) of results of any task
    (:class:`~mtbc.evaluation.results.Result`)."""
    rows = []
    for r in results:
        for m in r.metrics.itertuples():
            rows.append({"system": r.name, "task": r.task, "metric": m.metric,
                         "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                         "n_tracks": m.n_tracks, "n_groups": m.n_groups,
                         "protocol": r.protocol, "seed": r.seed})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def prediction_rows(results: Iterable) -> pd.DataFrame:
    """``predictions.csv`` rows of classification results
    (:class:`~mtbc.evaluation.results.ProbeResult`; other tasks have none)."""
    parts = []
    for r in results:
        if r.task != "classification":
            continue
        task = r.task
        pred = r.predictions.reset_index()
        probs = r.probabilities.reset_index(drop=True).add_prefix("p_")
        part = pd.concat([pred, probs], axis=1).assign(system=r.name, task=task)
        if "group" not in part:
            part["group"] = part["track_id"]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    extra = [c for c in table.columns if c not in PREDICTION_COLUMNS]
    return table[PREDICTION_COLUMNS + extra]


def _merge(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    if not path.is_file():
        return new
    old = pd.read_csv(path)
    keys = set(zip(new["system"], new["task"], strict=True))
    keep = [(s, t) not in keys for s, t in zip(old["system"], old["task"], strict=True)]
    return pd.concat([old.loc[keep], new], ignore_index=True)


def append_audit(run_record: str | os.PathLike | None, *, results: pd.DataFrame,
                 predictions: pd.DataFrame | None = None) -> Path | None:
    """Add rows to the run's ``results.csv`` (and ``predictions.csv``), beside the run
    record; returns the folder, or ``None`` without a run (a notebook opened by hand)."""
    if run_record is None:
        return None
    folder = Path(run_record).parent
    for name, rows in ((RESULTS, results), (PREDICTIONS, predictions)):
        if rows is None:
            continue
        table = _merge(folder / name, rows)
        text = table.to_csv(index=False).encode()
        atomic_write(folder / name, lambda f, text=text: f.write(text))
    return folder


def audit_results(run_record: str | os.PathLike | None, results: Iterable) -> Path | None:
    """:func:`append_audit` for results of any task: every result's metric rows, and the
    per-track rows of classification results."""
    results = list(results)
    predictions = prediction_rows(results)
    return append_audit(run_record, results=result_rows(results),
                        predictions=predictions if len(predictions) else None)
