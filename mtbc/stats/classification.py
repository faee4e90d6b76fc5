"""Classification metrics, group-aware intervals and paired tests (``docs/protocol.md``).

See docs/statistics.md for the reasoning and the measured error rates.

- Metrics: accuracy and macro precision / recall / F1 with scikit-learn's conventions
  (``labels=None``: the classes present in ``y_true`` or ``y_pred``; an undefined ratio counts
  as 0, i.e. ``zero_division=0``), and the confusion matrix.
- :func:`bootstrap_ci`: percentile bootstrap, seeded; with ``groups`` a cluster bootstrap
  (whole groups of tracks resampled, :mod:`mtbc.stats.resampling`), otherwise over tracks.
  Every metric is recomputed on each resample from its confusion matrix, vectorised. The
  interval reflects which tracks (groups) happened to be tested, not retraining variability.
- :func:`paired_test`: two systems on the same tracks -- McNemar's exact test
  (:func:`mcnemar_exact`) when every group is one track, else a sign-flip permutation test
  on per-group differences; macro-F1 by swapping predictions within groups. Interval of the
  difference by the cluster bootstrap.
- :func:`metrics_table` and :func:`pairwise_tests` (Holm over a table, :func:`holm`) build
  the pandas tables reports show.
- The resampling core is :mod:`mtbc.stats.resampling`; multi-label metrics are
  :mod:`mtbc.stats.multilabel`. :mod:`mtbc.stats` exports all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mtbc.stats.resampling import (
    Resampling,
    flip_patterns,
    group_bootstrap,
    group_codes,
    permutation_p_value,
)

__all__ = [
    "METRICS", "PairedTest", "bootstrap_ci", "classification_metrics", "confusion_frame", "holm",
    "mcnemar_exact", "metrics_table", "paired_test", "pairwise_tests",
]

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


def _onehot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width))
    out[np.arange(len(codes)), codes] = 1.0
    return out


def bootstrap_ci(y_true: Sequence, y_pred: Sequence, *, groups: Sequence | None = None,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95, batch: int = 250
                 ) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric in :data:`METRICS`.

    Parameters
    ----------
    y_true, y_pred : sequence of shape (n,)
        True and predicted labels.
    groups : sequence of shape (n,), optional
        Group label per track (e.g. :func:`mtbc.data.splits.track_groups`). Given, the
        bootstrap is a cluster bootstrap: each resample draws ``n_groups`` groups with
        replacement and takes all their tracks (:func:`~mtbc.stats.resampling.resample_weights`).
        ``None``, or one track per group: the ordinary track bootstrap -- resample ``b`` is
        ``np.random.default_rng(seed).integers(0, n, (n_boot, n))`` drawn in row batches of
        ``batch`` (the stream is the same).
    n_boot, seed, level, batch
        Resamples, seed, interval level, resamples evaluated at a time.

    Returns
    -------
    dict
        ``{metric: (low, high)}``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles
        (numpy's linear interpolation) of the metric recomputed on every resample from its
        confusion matrix.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    t, p, labels = _encode(y_true, y_pred)
    k = len(labels)
    onehot = _onehot(t * k + p, k * k)

    def statistic(weights):
        return _metrics_from_confusion((weights @ onehot).reshape(-1, k, k))

    return group_bootstrap(statistic, len(t), groups=groups, n_boot=n_boot, seed=seed,
                           level=level, batch=batch)


def metrics_table(y_true: Sequence, y_pred: Sequence, *, groups: Sequence | None = None,
                  n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Table ``metric, value, ci_low, ci_high, n_tracks, n_groups``.

    The interval is :func:`bootstrap_ci` (over groups when ``groups`` is given, over tracks
    otherwise); ``n_boot=0``: no interval (NaN). ``n_groups`` equals ``n_tracks`` without
    groups.
    """
    point = classification_metrics(y_true, y_pred)
    n = len(y_true)
    n_groups = group_codes(groups, n)[1]
    ci = (bootstrap_ci(y_true, y_pred, groups=groups, n_boot=n_boot, seed=seed, level=level)
          if n_boot else {m: (np.nan, np.nan) for m in METRICS})
    return pd.DataFrame([{"metric": m, "value": point[m], "ci_low": ci[m][0],
                          "ci_high": ci[m][1], "n_tracks": n, "n_groups": n_groups}
                         for m in METRICS])


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


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_test` (``diff`` is ``value_a - value_b``)."""

    metric: str
    value_a: float
    value_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_tracks: int
    n_groups: int
    method: str
    exact: bool
    n_permutations: int

    def as_dict(self) -> dict:
        """The fields as a plain dict (one row of :func:`pairwise_tests`)."""
        return asdict(self)


PAIRED_METRICS = ("accuracy", "macro_f1")
MCNEMAR = "mcnemar-exact"
SIGN_FLIP = "sign-flip permutation on per-group differences"
SWAP = "swap permutation within groups"


def paired_test(y_true: Sequence, pred_a: Sequence, pred_b: Sequence, *,
                groups: Sequence | None = None, metric: str = "accuracy",
                **resampling) -> PairedTest:
    """Paired comparison of two systems on the same tracks, respecting groups of tracks.

    Parameters
    ----------
    y_true, pred_a, pred_b : sequence of shape (n,)
        True labels and the two systems' predictions, track for track.
    groups : sequence of shape (n,), optional
        Group label per track (:func:`mtbc.data.splits.track_groups`); ``None``: every track
        is its own group.
    metric : {"accuracy", "macro_f1"}
        ``diff`` is ``metric(a) - metric(b)``.
    **resampling
        :class:`~mtbc.stats.resampling.Resampling` fields: ``n_perm`` (default 10000), the
        random swap patterns when exact enumeration is out of reach (more than 16 groups in
        which the systems differ);
    n_boot, level : int, float
        Cluster-bootstrap resamples and level of the interval ``ci_low, ci_high`` of ``diff``
        (the same resamples for both systems; ``n_boot=0``: NaN).
    seed : int
        Seeds the bootstrap (``default_rng(seed)``) and random swaps (``default_rng((seed, 1))``).

    Returns
    -------
    PairedTest
        Frozen dataclass: ``metric, value_a, value_b, diff, ci_low, ci_high, p_value,
        n_tracks, n_groups, method, exact, n_permutations``.

    Notes
    -----
    Null hypothesis: within every group the two systems are exchangeable (swapping their
    predictions on all of a group's tracks leaves the joint distribution unchanged). Groups
    are independent, tracks within a group need not be.

    - ``accuracy``, every group one track: McNemar's exact test (:func:`mcnemar_exact`,
      ``method="mcnemar-exact"``).
    - ``accuracy`` otherwise: per group ``d_g = sum over its tracks of (correct_a -
      correct_b)``; the statistic is ``T = sum_g d_g = n * diff`` and the null distribution
      flips the sign of every ``d_g`` (``method="sign-flip permutation on per-group
      differences"``). ``T`` is the track-weighted sum rather than the mean of per-group
      differences so that it tests the very quantity reported (accuracy over tracks), with
      large groups counting by their size; with one track per group it is McNemar's test.
      Groups with ``d_g = 0`` do not change ``T*`` and are left out of the enumeration:
      all ``2**m`` patterns of the ``m`` other groups when ``m <= 16`` (p = share of
      ``|T*| >= |T|``), else ``n_perm`` random patterns (p = ``(1 + #) / (1 + n_perm)``).
    - ``macro_f1``: the same scheme on macro-F1, swapping the two systems' predictions within
      each group (``method="swap permutation within groups"``), also with one track per group.
    """
    opts = Resampling(**resampling)
    n_perm, n_boot, seed, level = opts.n_perm, opts.n_boot, opts.seed, opts.level
    if metric not in PAIRED_METRICS:
        raise ValueError(f"metric must be one of {PAIRED_METRICS}, got {metric!r}")
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError(f"y_true, pred_a and pred_b must be 1-D of equal length, got "
                         f"{y_true.shape}, {pred_a.shape} and {pred_b.shape}")
    labels = sorted(set(y_true.tolist()) | set(pred_a.tolist()) | set(pred_b.tolist()), key=str)
    t, pa, _ = _encode(y_true, pred_a, labels)
    _, pb, _ = _encode(y_true, pred_b, labels)
    n, k = len(t), len(labels)
    codes, n_groups = group_codes(groups, n)
    rng = np.random.default_rng((seed, 1))
    if metric == "accuracy":
        d = (pa == t).astype(float) - (pb == t)
        value_a, value_b = float(np.mean(pa == t)), float(np.mean(pb == t))

        def statistic(weights):
            return (weights @ d) / weights.sum(axis=1)

        if n_groups == n:
            p = mcnemar_exact(y_true, pred_a, pred_b)["p_value"]
            method, exact, n_patterns = MCNEMAR, True, 0
        else:
            d_g = np.bincount(codes, weights=d, minlength=n_groups)
            d_g = d_g[d_g != 0]
            batches, exact, n_patterns = flip_patterns(len(d_g), n_perm=n_perm, rng=rng)
            null = np.concatenate([(1 - 2 * s) @ d_g for s in batches])
            p = permutation_p_value(d.sum(), null, exact=exact)
            method = SIGN_FLIP
    else:
        oa, ob = _onehot(t * k + pa, k * k), _onehot(t * k + pb, k * k)

        def f1(cm):
            return _metrics_from_confusion(cm.reshape(-1, k, k))["f1_macro"]

        def statistic(weights):
            return f1(weights @ oa) - f1(weights @ ob)

        value_a, value_b = float(f1(oa.sum(0))[0]), float(f1(ob.sum(0))[0])
        member = _onehot(codes, n_groups).T  # (groups, tracks)
        cm_a, cm_b = member @ oa, member @ ob
        differ = np.any(cm_a != cm_b, axis=1)
        base = cm_a[~differ].sum(axis=0)
        cm_a, cm_b = cm_a[differ], cm_b[differ]
        batches, exact, n_patterns = flip_patterns(len(cm_a), n_perm=n_perm, rng=rng)
        null = []
        for s in batches:
            s = s.astype(float)
            swapped_a = base + (1 - s) @ cm_a + s @ cm_b
            swapped_b = base + s @ cm_a + (1 - s) @ cm_b
            null.append(f1(swapped_a) - f1(swapped_b))
        p = permutation_p_value(value_a - value_b, np.concatenate(null), exact=exact)
        method = SWAP
    ci = (group_bootstrap(statistic, n, groups=codes, n_boot=n_boot, seed=seed, level=level)
          if n_boot else (np.nan, np.nan))
    return PairedTest(metric=metric, value_a=value_a, value_b=value_b, diff=value_a - value_b,
                      ci_low=ci[0], ci_high=ci[1], p_value=float(p), n_tracks=n,
                      n_groups=n_groups, method=method, exact=exact, n_permutations=n_patterns)


def _align_groups(groups, y_true: pd.Series, common: pd.Index) -> np.ndarray | None:
    if groups is None:
        return None
    if not isinstance(groups, pd.Series):
        values = np.asarray(groups, dtype=object)
        if values.ndim != 1 or len(values) != len(y_true):
            raise ValueError(f"groups must be a Series indexed by track id or hold one label per "
                             f"y_true row: got shape {values.shape} for {len(y_true)} tracks")
        groups = pd.Series(values, index=y_true.index)
    missing = common.difference(groups.index)
    if len(missing):
        raise ValueError(f"groups lack {len(missing)} compared track(s), e.g. "
                         f"{list(missing[:3])}")
    return groups.loc[common].to_numpy()


def pairwise_tests(predictions: Mapping[str, pd.Series], y_true: pd.Series, *,
                   groups: pd.Series | Sequence | None = None, metric: str = "accuracy",
                   n_perm: int = 10000, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                   ) -> pd.DataFrame:
    """:func:`paired_test` for every pair of systems, on the tracks all of them predicted.

    Parameters
    ----------
    predictions : mapping of str to pandas.Series
        System name to predicted labels indexed by track id.
    y_true : pandas.Series
        True labels by track id.
    groups : pandas.Series or sequence, optional
        Group label per track: a Series indexed by track id, or one label per ``y_true`` row.
    metric, n_perm, n_boot, seed, level
        As in :func:`paired_test`.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``system_a, system_b, n, accuracy_a, accuracy_b, a_only_correct,
        b_only_correct`` (McNemar's counts), ``p_value`` (:func:`paired_test`; McNemar's exact
        p without groups), ``p_holm`` (Holm over the table's rows), ``metric, value_a, value_b,
        diff, ci_low, ci_high, n_tracks, n_groups, method``.
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
    group_values = _align_groups(groups, y_true, common)
    rows = []
    for a, b in itertools.combinations(names, 2):
        pred_a = predictions[a].loc[common].to_numpy()
        pred_b = predictions[b].loc[common].to_numpy()
        counts = mcnemar_exact(truth, pred_a, pred_b)
        test = paired_test(truth, pred_a, pred_b, groups=group_values, metric=metric,
                           n_perm=n_perm, n_boot=n_boot, seed=seed, level=level)
        counts["p_value"] = test.p_value
        rows.append({"system_a": a, "system_b": b, **counts, "p_holm": np.nan,
                     **{f: getattr(test, f) for f in ("metric", "value_a", "value_b", "diff",
                                                      "ci_low", "ci_high", "n_tracks",
                                                      "n_groups", "method")}})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table
