"""Per-query retrieval metrics: precision@k, average precision@k and nDCG@k.

Every function takes the **ranked** relevance of one or many queries' results (best first)
and returns one value per query, so intervals and paired tests can resample queries by group.

Definitions (``rel_i`` in {0, 1} is the relevance of the result at rank ``i`` = 1..k, ``g_i``
its graded gain in [0, 1], ``R`` the number of relevant candidates of the query):

- ``P@k = (1 / k) * sum_{i <= k} rel_i`` (a shorter result list counts its missing ranks as
  misses);
- ``AP@k = (1 / min(R, k)) * sum_{i <= k} rel_i * P@i`` (0 when ``R = 0``), the TREC /
  ``ml_metrics`` ``apk`` convention, so a perfect ranking scores 1 even when ``R < k``;
- ``nDCG@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{i <= k} g_i / log2(i + 1)`` and ``IDCG@k``
  the DCG of the query's best possible ranking (its ``k`` largest gains among all candidates);
  NaN when every gain is 0 (nothing to find).

Graded gains for tagged collections are the Jaccard overlap of tag sets (:func:`jaccard`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Cut-offs reported by :func:`query_metrics`.
CUTOFFS = (1, 5, 10)
#: Metric columns of :func:`query_metrics`, in report order.
METRIC_NAMES = ("p@1", "p@5", "p@10", "ap@10", "ndcg@10")


def _ranked(rel, k: int) -> np.ndarray:
    r = np.asarray(rel, dtype=float)
    if r.ndim == 1:
        r = r[None, :]
    if r.ndim != 2:
        raise ValueError(f"relevance must be (n_queries, n_results), got shape {r.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if r.shape[1] < k:  # fewer results than k: the missing ranks are misses
        r = np.pad(r, ((0, 0), (0, k - r.shape[1])))
    return r[:, :k]


def precision_at_k(relevant, *, k: int) -> np.ndarray:
    """Precision at ``k`` of each query.

    Parameters
    ----------
    relevant : array-like of shape (n_queries, n_results) or (n_results,)
        1 where the result at that rank (best first) is relevant, else 0.
    k : int
        Cut-off (ranks).

    Returns
    -------
    numpy.ndarray of shape (n_queries,)

    Examples
    --------
    >>> precision_at_k([[1, 0, 1, 0, 0]], k=5)
    array([0.4])
    """
    return _ranked(relevant, k).mean(axis=1)


def average_precision_at_k(relevant, n_relevant, *, k: int) -> np.ndarray:
    """Average precision at ``k`` of each query (``1 / min(R, k)`` normalisation).

    Parameters
    ----------
    relevant : array-like of shape (n_queries, n_results)
        Ranked 0/1 relevance of each query's results.
    n_relevant : array-like of shape (n_queries,)
        Relevant candidates ``R`` of each query in the whole candidate set (not only the
        results shown). 0 gives AP 0.
    k : int
        Cut-off (ranks).

    Returns
    -------
    numpy.ndarray of shape (n_queries,)

    Examples
    --------
    >>> average_precision_at_k([[1, 0, 1]], [2], k=3)  # (1/1 + 2/3) / 2
    array([0.83333333])
    """
    r = _ranked(relevant, k)
    n_rel = np.asarray(n_relevant, dtype=float).reshape(-1)
    if len(n_rel) != len(r):
        raise ValueError(f"n_relevant has {len(n_rel)} values for {len(r)} queries")
    if np.any(r.sum(axis=1) > n_rel):
        raise ValueError("a query has more relevant results than relevant candidates")
    hits = np.cumsum(r, axis=1)
    prec = hits / np.arange(1, k + 1)
    denom = np.minimum(n_rel, k)
    total = (prec * r).sum(axis=1)
    return np.divide(total, denom, out=np.zeros(len(r)), where=denom > 0)


def ndcg_at_k(gains, ideal_gains, *, k: int) -> np.ndarray:
    """Normalised discounted cumulative gain at ``k`` of each query.

    Parameters
    ----------
    gains : array-like of shape (n_queries, n_results)
        Gain (0..1) of each ranked result: 0/1 relevance or a graded gain such as
        :func:`jaccard`.
    ideal_gains : array-like of shape (n_queries, m)
        The gains of every candidate of the query (any order, ``m >= 1``; only the ``k``
        largest matter): they define the best possible ranking.
    k : int
        Cut-off (ranks).

    Returns
    -------
    numpy.ndarray of shape (n_queries,)
        NaN for a query whose candidates all have gain 0.

    Examples
    --------
    >>> ndcg_at_k([[0, 1]], [[1, 0, 0]], k=2).round(4)  # (1/log2 3) / (1/log2 2)
    array([0.6309])
    """
    g = _ranked(gains, k)
    ideal = np.asarray(ideal_gains, dtype=float)
    if ideal.ndim == 1:
        ideal = ideal[None, :]
    best = -np.sort(-ideal, axis=1)
    best = _ranked(best, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg, idcg = g @ discount, best @ discount
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def jaccard(a: Sequence[str] | set, b: Sequence[str] | set) -> float:
    """Jaccard overlap ``|a & b| / |a | b|`` of two tag sets (0 when both are empty).

    Examples
    --------
    >>> jaccard({"rock", "guitar"}, {"rock", "male vocal", "guitar"})
    0.6666666666666666
    """
    a, b = set(a), set(b)
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def query_metrics(relevant, n_relevant, *, gains=None, ideal_gains=None) -> dict[str, np.ndarray]:
    """All of :data:`METRIC_NAMES` for each query.

    Parameters
    ----------
    relevant : array-like of shape (n_queries, n_results)
        Ranked 0/1 relevance (at least 10 results for the @10 metrics to be exact; fewer
        count as misses).
    n_relevant : array-like of shape (n_queries,)
        Relevant candidates of each query.
    gains, ideal_gains : array-like, optional
        Graded gains for nDCG (ranked results, all candidates); ``None``: the 0/1 relevance,
        with ``n_relevant`` ones as the ideal.

    Returns
    -------
    dict
        Metric name -> ``(n_queries,)`` array.
    """
    rel = _ranked(relevant, max(CUTOFFS))
    n_rel = np.asarray(n_relevant, dtype=float).reshape(-1)
    if gains is None:
        gains = rel
        ideal_gains = (np.arange(max(CUTOFFS))[None, :] < n_rel[:, None]).astype(float)
    out = {f"p@{k}": precision_at_k(rel, k=k) for k in CUTOFFS}
    out["ap@10"] = average_precision_at_k(rel, n_rel, k=10)
    out["ndcg@10"] = ndcg_at_k(gains, ideal_gains, k=10)
    return out
