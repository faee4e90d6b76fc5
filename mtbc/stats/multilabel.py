"""Multi-label (tagging) metrics with masks, group-bootstrap intervals and a paired test.

Re-exported by :mod:`mtbc.stats` and :mod:`mtbc.evaluation` (``mtbc.evaluation.multilabel_metrics``).
Definitions (docs/statistics.md):

- ``mask`` is True where a label is known; unknown entries take no part in anything.
- Per tag, ROC-AUC and average precision (scikit-learn's ``roc_auc_score`` /
  ``average_precision_score``) on the tracks where that tag is known. A tag with no known
  positive or no known negative is *left out* (NaN per tag) and counted in
  ``n_tags_left_out``. ``roc_auc_macro`` / ``pr_auc_macro`` (= ``map``, mean average
  precision) average the tags used.
- ``roc_auc_micro`` pools every known (track, tag) entry, left-out tags included (with
  ``mask=None`` it is ``roc_auc_score(average="micro")``).
- ``top1`` / ``top3``: share of tracks, among those with at least one known positive, whose
  1 / 3 highest-scored *known* tags include a true one (unknown tags are not ranked; ties
  go to the lower column; a track with fewer known tags ranks all of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

from mtbc.stats.resampling import (
    Resampling,
    bootstrap_mean_ci,
    flip_patterns,
    group_bootstrap,
    group_codes,
    permutation_p_value,
)

SUMMARY = ("roc_auc_macro", "pr_auc_macro", "roc_auc_micro")
PAIRED_EXACT_MAX = 10  # exact swap enumeration (2**m metric evaluations) up to this many groups


def _check(Y_true, Y_score, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Y_true = np.asarray(Y_true, dtype=float)
    Y_score = np.asarray(Y_score, dtype=float)
    if Y_true.ndim != 2 or Y_true.shape != Y_score.shape:
        raise ValueError(f"Y_true and Y_score must be 2-D (tracks, tags) of equal shape, got "
                         f"{Y_true.shape} and {Y_score.shape}")
    if mask is None:
        mask = np.ones(Y_true.shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != Y_true.shape:
        raise ValueError(f"mask must have shape {Y_true.shape}, got {mask.shape}")
    if mask.dtype != bool:
        raise ValueError(f"mask must be boolean (True where a label is known), got {mask.dtype}")
    known = Y_true[mask]
    bad = known[(known != 0) & (known != 1)]
    if len(bad):
        raise ValueError(f"known entries of Y_true must be 0 or 1, found {float(bad[0]):g}")
    if not np.all(np.isfinite(Y_score[mask])):
        raise ValueError("Y_score has NaN or infinite values at known entries")
    return Y_true == 1, Y_score, mask


def _rank_metrics(scores: np.ndarray, y: np.ndarray, weights: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC-AUC and average precision, one per row, vectorised.

    ``scores``: ``(m,)`` (shared by all rows) or ``(r, m)``; ``y``: ``(m,)`` bool; ``weights``:
    ``(r, m)`` multiplicities or None (1). Equals scikit-learn's ``roc_auc_score`` /
    ``average_precision_score`` with ``sample_weight`` (ties: half credit / one threshold).
    NaN where a row has no positive or no negative weight.
    """
    m = len(y)
    if scores.ndim == 1:
        order = np.argsort(-scores, kind="stable")
        s = scores[order][None, :]
        yy = y[order][None, :]
        w = np.ones((1, m)) if weights is None else weights[:, order]
    else:
        order = np.argsort(-scores, axis=1, kind="stable")
        s = np.take_along_axis(scores, order, axis=1)
        yy = y[order]
        w = np.ones(s.shape) if weights is None else np.take_along_axis(weights, order, axis=1)
    pos, neg = w * yy, w * ~yy
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    idx = np.arange(m)
    change = s[:, 1:] != s[:, :-1]  # a new score level starts at column i + 1
    is_end = np.concatenate([change, np.ones((len(s), 1), bool)], axis=1)
    is_start = np.concatenate([np.ones((len(s), 1), bool), change], axis=1)
    end = np.minimum.accumulate(np.where(is_end, idx, m)[:, ::-1], axis=1)[:, ::-1]
    start = np.maximum.accumulate(np.where(is_start, idx, -1), axis=1)

    def at(a, i):
        return a[:, i[0]] if len(i) == 1 and len(a) > 1 else np.take_along_axis(a, i, axis=1)

    tp_end, fp_end = at(tp, end), at(fp, end)
    fp_before = np.where(start > 0, at(fp, np.maximum(start - 1, 0)), 0.0)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = n_neg[:, None] - fp_end + 0.5 * (fp_end - fp_before)
        auc = np.sum(pos * lower, axis=1) / (n_pos * n_neg)
        precision = np.where(tp_end + fp_end > 0, tp_end / (tp_end + fp_end), 0.0)
        ap = np.sum(pos * precision, axis=1) / n_pos
    undefined = (n_pos <= 0) | (n_neg <= 0)
    return np.where(undefined, np.nan, auc), np.where(undefined, np.nan, ap)


class _Prepared:
    """Known entries per used tag and pooled, for repeated (weighted / swapped) evaluation."""

    def __init__(self, Y: np.ndarray, mask: np.ndarray):
        self.tags = [j for j in range(Y.shape[1])
                     if Y[mask[:, j], j].any() and not Y[mask[:, j], j].all()]
        self.rows = [np.flatnonzero(mask[:, j]) for j in self.tags]
        self.y = [Y[r, j] for r, j in zip(self.rows, self.tags, strict=True)]
        self.pool_rows, self.pool_cols = np.nonzero(mask)
        self.pool_y = Y[self.pool_rows, self.pool_cols]

    def values(self, scores, weights=None, swap=None, other=None, metrics=SUMMARY
               ) -> dict[str, np.ndarray]:
        """Summary ``metrics`` (of :data:`SUMMARY`) per row of ``weights`` / ``swap``
        (``(r, n)``; swap takes ``other``); the pooled ROC-AUC is computed only when asked."""

        def pick(rows, cols):
            if swap is None:
                return scores[rows, cols]
            return np.where(swap[:, rows], other[rows, cols], scores[rows, cols])

        def w(rows):
            return None if weights is None else weights[:, rows]

        out = {}
        if {"roc_auc_macro", "pr_auc_macro"} & set(metrics):
            per_tag = [_rank_metrics(pick(r, j), y, w(r))
                       for r, j, y in zip(self.rows, self.tags, self.y, strict=True)]
            aucs = np.array([a for a, _ in per_tag]) if per_tag else np.full((1, 1), np.nan)
            aps = np.array([p for _, p in per_tag]) if per_tag else np.full((1, 1), np.nan)
            out.update({"roc_auc_macro": _nanmean(aucs), "pr_auc_macro": _nanmean(aps)})
        if "roc_auc_micro" in metrics:
            out["roc_auc_micro"] = _rank_metrics(pick(self.pool_rows, self.pool_cols),
                                                 self.pool_y, w(self.pool_rows))[0]
        return out


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN (no warning) where a column is all NaN."""
    ok = ~np.isnan(a)
    count = ok.sum(axis=0)
    total = np.where(ok, a, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def multilabel_metrics(Y_true, Y_score, *, mask=None) -> dict:
    """Tagging metrics of scores against binary labels, on the known entries.

    Parameters
    ----------
    Y_true : array-like of shape (n_tracks, n_tags)
        1 / 0 (or bool) where the label is known; any value (NaN too) where it is not.
    Y_score : array-like of shape (n_tracks, n_tags)
        Scores (higher: more likely); finite where the label is known.
    mask : array-like of bool, same shape, optional
        True where a label is known; ``None``: all known.

    Returns
    -------
    dict
        ``roc_auc_macro, pr_auc_macro, map`` (= ``pr_auc_macro``), ``roc_auc_micro, top1,
        top3`` (floats, NaN if undefined), ``per_tag_roc_auc, per_tag_pr_auc`` (arrays
        ``(n_tags,)``, NaN for a left-out tag), ``n_tags_used, n_tags_left_out, n_tracks,
        n_tracks_ranked`` (tracks with a known positive, the top-k denominator). See the module
        docstring for the definitions.
    """
    Y, S, mask = _check(Y_true, Y_score, mask)
    n, n_tags = Y.shape
    prep = _Prepared(Y, mask)
    per_auc, per_ap = np.full(n_tags, np.nan), np.full(n_tags, np.nan)
    for r, j, y in zip(prep.rows, prep.tags, prep.y, strict=True):
        per_auc[j] = roc_auc_score(y, S[r, j])
        per_ap[j] = average_precision_score(y, S[r, j])
    used = len(prep.tags)
    pooled = prep.pool_y
    micro = (float(roc_auc_score(pooled, S[prep.pool_rows, prep.pool_cols]))
             if pooled.any() and not pooled.all() else np.nan)
    out = {"roc_auc_macro": float(np.mean(per_auc[prep.tags])) if used else np.nan,
           "pr_auc_macro": float(np.mean(per_ap[prep.tags])) if used else np.nan}
    out["map"] = out["pr_auc_macro"]
    out["roc_auc_micro"] = micro
    ranked = np.flatnonzero((Y & mask).any(axis=1))
    order = np.argsort(-np.where(mask, S, -np.inf)[ranked], axis=1, kind="stable")
    hits = np.take_along_axis((Y & mask)[ranked], order, axis=1)
    for k in (1, 3):
        out[f"top{k}"] = float(hits[:, :k].any(axis=1).mean()) if len(ranked) else np.nan
    out.update({"per_tag_roc_auc": per_auc, "per_tag_pr_auc": per_ap, "n_tags_used": used,
                "n_tags_left_out": n_tags - used, "n_tracks": n, "n_tracks_ranked": len(ranked)})
    return out


def multilabel_bootstrap_ci(Y_true, Y_score, *, mask=None, groups: Sequence | None = None,
                            n_boot: int = 1000, seed: int = 0, level: float = 0.95
                            ) -> dict[str, tuple[float, float]]:
    """Percentile (cluster-)bootstrap intervals of ``roc_auc_macro, pr_auc_macro, roc_auc_micro``.

    Resamples groups of tracks (:func:`~mtbc.stats.resampling.group_bootstrap`; tracks
    when ``groups`` is None), keeping each track's mask. The tags are those used on the full
    data; in a resample where a tag has no positive or no negative, it is left out of that
    resample's macro average. Returns ``{metric: (low, high)}`` (also ``map``).
    """
    Y, S, mask = _check(Y_true, Y_score, mask)
    prep = _Prepared(Y, mask)
    ci = group_bootstrap(lambda w: prep.values(S, weights=w), len(Y), groups=groups,
                         n_boot=n_boot, seed=seed, level=level)
    ci["map"] = ci["pr_auc_macro"]
    return ci


def multilabel_paired_test(Y_true, score_a, score_b, *, mask=None,
                           groups: Sequence | None = None, metric: str = "roc_auc_macro",
                           **resampling) -> dict:
    """Compare two systems' tag scores on the same tracks: bootstrap CI and permutation p.

    Parameters
    ----------
    Y_true, score_a, score_b, mask
        As in :func:`multilabel_metrics`.
    groups : sequence of shape (n_tracks,), optional
        Group label per track; ``None``: every track its own group.
    metric : {"roc_auc_macro", "pr_auc_macro", "map", "roc_auc_micro"}
    **resampling
        :class:`~mtbc.stats.resampling.Resampling` fields: ``n_perm`` (default 1000 here),
        random swap patterns when there are more than 10 groups (else all ``2**n_groups``);
        ``n_boot``, ``seed``, ``level``:
        Cluster-bootstrap resamples (the same for both systems), seed
        (``default_rng(seed)`` for the bootstrap, ``default_rng((seed, 1))`` for swaps), level.

    Returns
    -------
    dict
        ``metric, value_a, value_b, diff`` (a - b), ``ci_low, ci_high`` (of ``diff``),
        ``p_value``, ``n_tracks, n_groups, method, exact, n_permutations``. The p-value swaps
        the two systems' scores on all tracks of a random half of the groups (exact
        enumeration with at most 10 groups) and is two-sided in ``diff``.
    """
    opts = Resampling(**{"n_perm": 1000, **resampling})
    n_perm, n_boot, seed, level = opts.n_perm, opts.n_boot, opts.seed, opts.level
    key = "pr_auc_macro" if metric == "map" else metric
    if key not in SUMMARY:
        raise ValueError(f"metric must be one of {SUMMARY + ('map',)}, got {metric!r}")
    Y, sa, mask = _check(Y_true, score_a, mask)
    _, sb, _ = _check(Y_true, score_b, mask)
    prep = _Prepared(Y, mask)
    n = len(Y)
    codes, n_groups = group_codes(groups, n)
    want = (key,)
    value_a, value_b = prep.values(sa, metrics=want)[key][0], prep.values(sb, metrics=want)[key][0]

    def diff(weights):
        return (prep.values(sa, weights=weights, metrics=want)[key]
                - prep.values(sb, weights=weights, metrics=want)[key])

    ci = group_bootstrap(diff, n, groups=codes, n_boot=n_boot, seed=seed, level=level) \
        if n_boot else (np.nan, np.nan)
    rng = np.random.default_rng((seed, 1))
    batches, exact, count = flip_patterns(n_groups, n_perm=n_perm, rng=rng,
                                          exact_max=PAIRED_EXACT_MAX, batch=64)
    null = []
    for s in batches:
        swap = s[:, codes]
        null.append(prep.values(sa, swap=swap, other=sb, metrics=want)[key]
                    - prep.values(sb, swap=swap, other=sa, metrics=want)[key])
    p = permutation_p_value(value_a - value_b, np.concatenate(null), exact=exact)
    return {"metric": key, "value_a": float(value_a), "value_b": float(value_b),
            "diff": float(value_a - value_b), "ci_low": ci[0], "ci_high": ci[1],
            "p_value": float(p), "n_tracks": n, "n_groups": n_groups,
            "method": "swap permutation within groups", "exact": exact,
            "n_permutations": count}


def macro_roc_auc(Y: np.ndarray, S: np.ndarray, mask: np.ndarray) -> float:
    """Mean over tags (with a known positive and negative) of the ROC-AUC on known entries;
    NaN when no tag qualifies. Ties count one half, as in ``roc_auc_score``."""
    aucs = []
    for j in range(Y.shape[1]):
        known = mask[:, j]
        y = Y[known, j] == 1
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        r = rankdata(S[known, j])
        aucs.append((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def topk_hits(Y: np.ndarray, S: np.ndarray, mask: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, rows)``: for each track with a known positive (``rows``), 1.0 if one of its
    ``k`` best-scored known tags is present (``multilabel_metrics``' ``top1`` / ``top3``)."""
    pos = (Y == 1) & mask
    ranked = np.flatnonzero(pos.any(axis=1))
    order = np.argsort(-np.where(mask, S, -np.inf)[ranked], axis=1, kind="stable")
    return np.take_along_axis(pos[ranked], order, axis=1)[:, :k].any(axis=1).astype(float), ranked


def fold_ranks(S: np.ndarray, fold) -> np.ndarray:
    """Scores as within-fold percentile ranks per tag (``(rank - 0.5) / n``, ties averaged).

    Out-of-fold scores of k-fold CV come from k models whose offsets differ: a fold whose
    training part holds fewer positives of a tag scores its test tracks lower, while its test
    part holds more of them, so pooled AUCs of pure noise fall below 0.5 (0.39 in a test with
    4 folds of 12 tracks). Ranking within each fold removes the offset; the order inside a
    fold, hence a single test split's ROC-AUC and PR-AUC, is unchanged.
    """
    S = np.asarray(S, dtype=float)
    fold = np.asarray(fold)
    out = np.empty_like(S)
    for f in pd.unique(fold):
        rows = np.flatnonzero(fold == f)
        out[rows] = (rankdata(S[rows], axis=0) - 0.5) / len(rows)
    return out


def tagging_metrics_table(Y, S, mask, *, fold=None, groups=None, n_boot: int = 1000,
                          seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """``metric, value, ci_low, ci_high, n_tracks, n_groups`` for macro / micro ROC-AUC,
    macro PR-AUC (= mAP), top-1 and top-3, group-bootstrap 95% CIs; and the raw metrics.

    ROC-AUC and PR-AUC (which compare tracks) are computed on :func:`fold_ranks` of the
    scores when ``fold`` is given; top-k (which compares the tags of one track, all scored by
    one fold's model) on the scores themselves."""
    ranks = S if fold is None else fold_ranks(S, fold)
    m = multilabel_metrics(Y, ranks, mask=mask)
    topk = multilabel_metrics(Y, S, mask=mask)
    m.update({"top1": topk["top1"], "top3": topk["top3"]})
    groups = np.arange(len(Y)) if groups is None else np.asarray(groups)
    ci = (multilabel_bootstrap_ci(Y, ranks, mask=mask, groups=groups, n_boot=n_boot, seed=seed)
          if n_boot else {})
    n_groups = len(pd.unique(groups))
    rows = []
    for key in ("roc_auc_macro", "pr_auc_macro", "roc_auc_micro"):
        low, high = ci.get(key, (np.nan, np.nan))
        rows.append({"metric": key, "value": m[key], "ci_low": low, "ci_high": high,
                     "n_tracks": len(Y), "n_groups": n_groups})
    for k in (1, 3):
        hits, ranked = topk_hits(Y, S, mask, k)
        low, high = (bootstrap_mean_ci(hits, groups=groups[ranked], n_boot=n_boot, seed=seed)
                     if n_boot and len(hits) else (np.nan, np.nan))
        rows.append({"metric": f"top{k}", "value": m[f"top{k}"], "ci_low": low,
                     "ci_high": high, "n_tracks": len(ranked),
                     "n_groups": len(pd.unique(groups[ranked]))})
    return pd.DataFrame(rows), m
