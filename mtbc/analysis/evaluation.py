"""Classification metrics, bootstrap confidence intervals and paired tests (DESIGN section 5).

- Metrics: accuracy and macro precision / recall / F1 with scikit-learn's conventions
  (``labels=None``: the classes present in ``y_true`` or ``y_pred``; an undefined ratio counts
  as 0, i.e. ``zero_division=0``), and the confusion matrix.
- :func:`bootstrap_ci`: percentile bootstrap over test tracks (resampled with replacement,
  seeded); every metric is recomputed on each resample from its confusion matrix, vectorised.
  The interval reflects which tracks happened to be tested, not retraining variability.
- :func:`mcnemar_exact`: McNemar's exact test between two systems on the same tracks -- a
  two-sided binomial test (p = 1/2) on the discordant pairs.
- :func:`metrics_table` and :func:`pairwise_tests` build the pandas tables reports show.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest

METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def _encode(y_true, y_pred, labels=None) -> tuple[np.ndarray, np.ndarray, list]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got "
                         f"{y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("no predictions to evaluate")
    if labels is None:
        labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        t = np.array([index[v] for v in y_true.tolist()])
        p = np.array([index[v] for v in y_pred.tolist()])
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not in labels {labels}") from None
    return t, p, list(labels)


def _metrics_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of confusion matrices ``(..., K, K)`` (rows true, columns predicted)."""
    cm = cm.astype(np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true_n = cm.sum(axis=-1)
    pred_n = cm.sum(axis=-2)
    total = true_n.sum(axis=-1)
    present = (true_n + pred_n) > 0  # sklearn's labels=None: classes seen in y_true or y_pred
    n_present = present.sum(axis=-1)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def macro(values):
        return (values * present).sum(axis=-1) / n_present

    return {
        "accuracy": tp.sum(axis=-1) / total,
        "precision_macro": macro(ratio(tp, pred_n)),
        "recall_macro": macro(ratio(tp, true_n)),
        "f1_macro": macro(ratio(2 * tp, true_n + pred_n)),
    }


def _confusion_codes(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def classification_metrics(y_true: Sequence, y_pred: Sequence, *, labels: Sequence | None = None
                           ) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 (sklearn conventions, ``zero_division=0``)."""
    t, p, labels = _encode(y_true, y_pred, labels)
    cm = _confusion_codes(t, p, len(labels))
    return {k: float(v) for k, v in _metrics_from_confusion(cm).items()}


def confusion_frame(y_true: Sequence, y_pred: Sequence, *, labels: Sequence | None = None
                    ) -> pd.DataFrame:
    """Confusion matrix as a table: rows true label, columns predicted label (counts)."""
    t, p, labels = _encode(y_true, y_pred, labels)
    cm = _confusion_codes(t, p, len(labels))
    return pd.DataFrame(cm, index=pd.Index(labels, name="true"),
                        columns=pd.Index(labels, name="predicted"))


def bootstrap_ci(y_true: Sequence, y_pred: Sequence, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, batch: int = 250) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric in :data:`METRICS`, resampling tracks.

    Resample ``b`` draws ``n`` indices with ``np.random.default_rng(seed).integers(0, n,
    (n_boot, n))`` (drawn in row batches of ``batch``; the stream is the same) and recomputes
    each metric on them; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    percentiles (numpy's linear interpolation). Returns ``{metric: (low, high)}``.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    t, p, labels = _encode(y_true, y_pred)
    k, n = len(labels), len(t)
    codes = t * k + p
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = codes[idx] + (np.arange(b) * k * k)[:, None]
        cm = np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)
        for m, v in _metrics_from_confusion(cm).items():
            values[m].append(v)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    out = {}
    for m in METRICS:
        low, high = np.percentile(np.concatenate(values[m]), q)
        out[m] = (float(low), float(high))
    return out


def metrics_table(y_true: Sequence, y_pred: Sequence, *, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """Table ``metric, value, ci_low, ci_high`` (bootstrap over tracks; ``n_boot=0``: no CI)."""
    point = classification_metrics(y_true, y_pred)
    ci = (bootstrap_ci(y_true, y_pred, n_boot=n_boot, seed=seed, level=level) if n_boot
          else {m: (np.nan, np.nan) for m in METRICS})
    return pd.DataFrame([{"metric": m, "value": point[m], "ci_low": ci[m][0],
                          "ci_high": ci[m][1]} for m in METRICS])


def mcnemar_exact(y_true: Sequence, pred_a: Sequence, pred_b: Sequence) -> dict[str, float]:
    """McNemar's exact test of two systems' predictions on the same tracks.

    ``a_only`` counts tracks A gets right and B wrong, ``b_only`` the reverse; under the null
    hypothesis each discordant track is a fair coin, so the two-sided p-value is
    ``binomtest(a_only, a_only + b_only, 0.5).pvalue`` (1.0 without discordant tracks).
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError("y_true, pred_a and pred_b must be 1-D of equal length")
    ca, cb = pred_a == y_true, pred_b == y_true
    a_only, b_only = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    n_disc = a_only + b_only
    p = binomtest(a_only, n_disc, 0.5).pvalue if n_disc else 1.0
    return {"n": len(y_true), "accuracy_a": float(ca.mean()), "accuracy_b": float(cb.mean()),
            "a_only_correct": a_only, "b_only_correct": b_only, "p_value": float(p)}


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def pairwise_tests(predictions: Mapping[str, pd.Series], y_true: pd.Series) -> pd.DataFrame:
    """McNemar's exact test for every pair of systems, on the tracks all of them predicted.

    ``predictions`` maps a system name to predicted labels indexed by track id; ``y_true``
    holds the true labels by track id. Columns: ``system_a, system_b, n, accuracy_a,
    accuracy_b, a_only_correct, b_only_correct, p_value, p_holm`` (Holm over the table's rows).
    """
    names = list(predictions)
    if len(names) < 2:
        raise ValueError("pairwise tests need at least two systems")
    common = y_true.index
    for name in names:
        common = common.intersection(predictions[name].index)
    if len(common) == 0:
        raise ValueError("the systems share no predicted tracks")
    truth = y_true.loc[common].to_numpy()
    rows = []
    for a, b in itertools.combinations(names, 2):
        res = mcnemar_exact(truth, predictions[a].loc[common].to_numpy(),
                            predictions[b].loc[common].to_numpy())
        rows.append({"system_a": a, "system_b": b, **res})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table
