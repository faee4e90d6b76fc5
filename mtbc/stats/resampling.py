"""Group-aware resampling: the package's one bootstrap and its permutation tests (docs/statistics.md).

Tracks that share an artist, a ``group`` or a duplicate link (the connected components built by
:func:`mtbc.data.splits.track_groups`) are not independent test cases, so every interval and
test here resamples or permutes whole *groups* of tracks:

- :func:`resample_weights` yields cluster-bootstrap resamples as track multiplicities: draw
  ``n_groups`` groups with replacement, take all the tracks of every drawn group. When every
  group is one track this is exactly the ordinary track bootstrap (same random stream).
- :func:`group_bootstrap` turns a statistic of weighted tracks into percentile intervals;
  :func:`bootstrap_mean_ci` is the interval of a per-track mean (layer curves, probes).
- :func:`flip_patterns` and :func:`permutation_p_value` are the within-group swap / sign-flip
  permutation machinery of :func:`mtbc.stats.classification.paired_test` and
  :func:`mtbc.stats.multilabel.multilabel_paired_test`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

BATCH = 250  # bootstrap resamples drawn (and evaluated) at a time
EXACT_MAX = 16  # exact enumeration of the 2**m sign patterns up to this many groups



@dataclass(frozen=True)
class Resampling:
    """How a paired test resamples: ``n_perm`` permutations for the p-value, ``n_boot``
    bootstrap resamples for the interval of the difference (0: none), the ``seed`` and the
    interval ``level``. The tests take these fields as keywords."""

    n_perm: int = 10000
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95

def group_codes(groups, n: int) -> tuple[np.ndarray, int]:
    """Group code ``0..n_groups-1`` per track (order of first appearance) and ``n_groups``.

    Parameters
    ----------
    groups : array-like of shape (n,) or None
        Any hashable group label per track; ``None``: every track is its own group. A missing
        label (NaN / None) makes that track a group of its own, as in
        :func:`mtbc.data.splits.track_groups` where a missing value links nothing.
    n : int
        Number of tracks ``groups`` must describe.
    """
    if groups is None:
        return np.arange(n), n
    values = np.asarray(groups, dtype=object)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"groups must be 1-D with one label per track: got shape "
                         f"{values.shape} for {n} tracks")
    codes, uniques = pd.factorize(pd.Series(values), sort=False)
    missing = np.flatnonzero(codes < 0)
    if len(missing):
        codes = codes.copy()
        codes[missing] = len(uniques) + np.arange(len(missing))
        # renumber so codes stay in order of first appearance
        codes = pd.factorize(codes, sort=False)[0]
    return codes.astype(np.int64), int(codes.max()) + 1 if n else 0


def resample_weights(codes: np.ndarray, n_groups: int, *, n_boot: int, seed: int,
                     batch: int = BATCH) -> Iterator[np.ndarray]:
    """Yield cluster-bootstrap resamples as track multiplicities, ``batch`` rows at a time.

    Resample ``b`` draws ``n_groups`` group codes with ``np.random.default_rng(seed).integers(0,
    n_groups, (n_boot, n_groups))`` (in row batches; the stream is the same) and gives every
    track the number of times its group was drawn. With one track per group (``codes ==
    arange(n)``) these are exactly the counts of the ordinary track bootstrap.

    Yields
    ------
    numpy.ndarray of shape (b, n_tracks), float64
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if n_groups < 1:
        raise ValueError("nothing to resample: no tracks")
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        flat = draws + (np.arange(b) * n_groups)[:, None]
        counts = np.bincount(flat.ravel(), minlength=b * n_groups).reshape(b, n_groups)
        yield counts[:, codes].astype(np.float64)


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles, ignoring NaN replicates.

    NaN replicates are resamples where the statistic is undefined (e.g. an AUC without a
    positive); ``(nan, nan)`` if all are.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) == 0:
        return (np.nan, np.nan)
    low, high = np.percentile(r, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def group_bootstrap(statistic: Callable[[np.ndarray], np.ndarray | dict[str, np.ndarray]],
                    n: int, *, groups=None, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, batch: int = BATCH
                    ) -> tuple[float, float] | dict[str, tuple[float, float]]:
    """Percentile cluster-bootstrap interval of a statistic of weighted tracks.

    Parameters
    ----------
    statistic : callable
        ``statistic(weights)`` with ``weights`` of shape ``(b, n)`` (how many times each track
        is in each resample) returns the statistic of every resample: an array ``(b,)`` or a
        dict of such arrays (NaN where undefined).
    n : int
        Number of tracks.
    groups : array-like of shape (n,), optional
        Group label per track (see :func:`group_codes`); ``None``: resample tracks.
    n_boot, seed, level, batch
        Resamples, seed of :func:`resample_weights`, interval level, resamples per batch.

    Returns
    -------
    tuple or dict
        ``(low, high)``, or ``{name: (low, high)}`` if ``statistic`` returns a dict.
    """
    codes, n_groups = group_codes(groups, n)
    parts: list = []
    for weights in resample_weights(codes, n_groups, n_boot=n_boot, seed=seed, batch=batch):
        parts.append(statistic(weights))
    if isinstance(parts[0], dict):
        return {k: percentile_interval(np.concatenate([p[k] for p in parts]), level)
                for k in parts[0]}
    return percentile_interval(np.concatenate(parts), level)


def bootstrap_mean_ci(values, *, groups=None, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-track ``values``.

    Resamples groups of tracks when ``groups`` is given (the mean stays a mean over tracks:
    ``sum(w * v) / sum(w)``), tracks otherwise. ``(nan, nan)`` if ``n_boot <= 0`` or there are
    no values (layer curves, probes).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    if n_boot <= 0 or len(values) == 0:
        return (np.nan, np.nan)
    return group_bootstrap(lambda w: (w @ values) / w.sum(axis=1), len(values), groups=groups,
                           n_boot=n_boot, seed=seed, level=level)


def flip_patterns(m: int, *, n_perm: int, rng: np.random.Generator, exact_max: int = EXACT_MAX,
                  batch: int = 4096) -> tuple[Iterator[np.ndarray], bool, int]:
    """Swap patterns of ``m`` units: all ``2**m`` if ``m <= exact_max``, else ``n_perm`` random.

    Returns ``(batches, exact, count)``: an iterator of boolean arrays ``(b, m)`` (True: swap
    the two systems in that unit), whether the enumeration is exact, and the number of
    patterns. The exact enumeration includes the identity pattern.
    """
    if m <= exact_max:
        total = 2 ** m

        def exact_batches():
            bits = 1 << np.arange(m)
            for start in range(0, total, batch):
                k = np.arange(start, min(total, start + batch))[:, None]
                yield (k & bits) > 0

        return exact_batches(), True, total
    if n_perm < 1:
        raise ValueError(f"n_perm must be at least 1, got {n_perm}")

    def random_batches():
        for start in range(0, n_perm, batch):
            yield rng.random((min(batch, n_perm - start), m)) < 0.5

    return random_batches(), False, n_perm


def permutation_p_value(observed: float, null_stats: np.ndarray, *, exact: bool) -> float:
    """Two-sided p-value: share of ``|T*| >= |T|`` (exact) or ``(1 + #) / (1 + n_perm)``.

    A relative tolerance of 1e-9 counts ties of floating-point statistics as ties.
    """
    null_stats = np.asarray(null_stats, dtype=float)
    hits = int(np.sum(np.abs(null_stats) >= abs(observed) - 1e-9 * max(1.0, abs(observed))))
    if exact:
        return hits / len(null_stats)
    return (1 + hits) / (1 + len(null_stats))


@dataclass(frozen=True)
class PairedMean:
    """Result of :func:`paired_mean_test`: ``diff`` is mean(a) - mean(b)."""

    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_tracks: int
    n_groups: int
    exact: bool


def paired_mean_test(a, b, *, groups=None, n_perm: int = 10000, n_boot: int = 1000,
                     seed: int = 0, level: float = 0.95) -> PairedMean:
    """Paired test of two per-track measures on the same tracks, respecting groups.

    Null hypothesis: within each group the two measures are exchangeable. The statistic is
    the sum of per-track differences (``n * diff``); the null flips the sign of each group's
    sum (every pattern when at most 16 groups differ, else ``n_perm`` random ones). The CI
    of ``diff`` is a cluster bootstrap over groups (:func:`group_bootstrap`).

    Parameters
    ----------
    a, b : sequence of float, shape ``(n_tracks,)``
        Track for track, e.g. cosines of two models, or per-track probe drops.
    groups : sequence, shape ``(n_tracks,)``, optional
        Track groups; ``None``: every track its own group.

    Example
    -------
    >>> paired_mean_test([1.0, 0.9, 0.8], [0.5, 0.4, 0.6]).diff
    0.4
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"a and b must be 1-D, non-empty and of one length, got {a.shape} "
                         f"and {b.shape}")
    d = a - b
    codes, n_groups = group_codes(groups, len(d))
    d_g = np.bincount(codes, weights=d, minlength=n_groups)
    d_g = d_g[np.abs(d_g) > 1e-12]
    rng = np.random.default_rng((seed, 1))
    batches, exact, _ = flip_patterns(len(d_g), n_perm=n_perm, rng=rng)
    null = np.concatenate([(1 - 2 * s) @ d_g for s in batches]) if len(d_g) else np.zeros(1)
    p = permutation_p_value(d.sum(), null, exact=exact) if len(d_g) else 1.0
    ci = (group_bootstrap(lambda w: (w @ d) / w.sum(axis=1), len(d), groups=codes,
                                     n_boot=n_boot, seed=seed, level=level)
          if n_boot else (np.nan, np.nan))
    return PairedMean(float(a.mean()), float(b.mean()), float(d.mean()), float(ci[0]),
                      float(ci[1]), float(p), len(d), n_groups, bool(exact))
