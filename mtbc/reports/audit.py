"""The audit trail of a run: every prediction and every reported figure, as CSV files.

``reports/<run>/predictions.csv``: one row per (system, track): ``system, task, track_id,
group, fold, label, predicted, correct`` and ``p_<class>`` per class.
``reports/<run>/results.csv``: one row per (system, task, metric): ``system, task, metric,
value, ci_low, ci_high, n_tracks, n_groups, protocol, seed``.

Notebooks add their systems with :func:`append_audit`; rows of a (system, task) already in the
files are replaced, so re-running a notebook never duplicates them. Both files live beside
the run record (``run.json``) and the index page links them.
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


def result_rows(results: Iterable, *, task: str = "classification") -> pd.DataFrame:
    """``results.csv`` rows of classification results (:class:`ProbeResult`)."""
    rows = []
    for r in results:
        for m in r.metrics.itertuples():
            rows.append({"system": r.name, "task": task, "metric": m.metric,
                         "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                         "n_tracks": getattr(m, "n_tracks", r.n_tracks),
                         "n_groups": getattr(m, "n_groups", None),
                         "protocol": r.split, "seed": r.seed})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def prediction_rows(results: Iterable, *, task: str = "classification") -> pd.DataFrame:
    """``predictions.csv`` rows of classification results (:class:`ProbeResult`)."""
    parts = []
    for r in results:
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


def audit_classification(run_record: str | os.PathLike | None, results: Iterable) -> Path | None:
    """:func:`append_audit` for classification results (rows of both files)."""
    results = list(results)
    return append_audit(run_record, results=result_rows(results),
                        predictions=prediction_rows(results))
