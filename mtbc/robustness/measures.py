"""How much a deformation moves each model's embeddings, with group-aware intervals and tests.

- :func:`track_stability`: per track, the cosine between its clean and deformed track-mean
  embeddings and whether its clean version is the nearest clean track to the deformed copy
  (self-retrieval, recall@1), both after standardising every dimension by the **clean**
  collection's mean and standard deviation (raw embeddings share a large common offset that
  makes every cosine close to 1, and MFCC dimensions differ in scale by orders of magnitude).
- :func:`summarise_stability`: mean cosine and recall@1 per model and deformation with
  cluster-bootstrap CIs over track groups (:func:`mtbc.evaluation.bootstrap_mean_ci`,
  :func:`mtbc.evaluation.bootstrap_ci`) and n.
- :func:`paired_mean_test`: two per-track measures on the same tracks, sign-flip permutation
  test on per-group sums and a cluster-bootstrap CI of the mean difference; used for model x
  model comparisons of stability and of probe drops (:func:`compare_models`, Holm-adjusted).

Invariance is not always wanted (a pitch shift should not change a genre but does change a
key): these are measurements, not verdicts.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from mtbc import evaluation
from mtbc.stats.resampling import group_codes, paired_mean_test


def _standardise(clean: np.ndarray, deformed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = clean.mean(axis=0, dtype=np.float64)
    std = clean.std(axis=0, dtype=np.float64)
    std[std < 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))] = 1.0
    return (clean - mean) / std, (deformed - mean) / std


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def track_stability(clean: np.ndarray, deformed: np.ndarray, *,
                    blocks: list[int] | None = None) -> pd.DataFrame:
    """Per-track stability of one model under one deformation.

    Parameters
    ----------
    clean, deformed : np.ndarray, shape ``(n_tracks, dim)``
        Track-mean embeddings, row ``i`` of both the same track.
    blocks : list of int, optional
        Widths of concatenated models' blocks (summing to ``dim``): after standardising,
        each block is divided by the square root of its width so that every model weighs the
        same in the cosine, whatever its dimension (the concatenation ensemble).

    Returns
    -------
    pandas.DataFrame
        ``n_tracks`` rows: ``cosine`` (clean vs deformed, standardised space, in [-1, 1]),
        ``hit`` (1.0 when the deformed copy's nearest clean track by cosine is its own clean
        version, ties counted as misses), ``rank`` (1 = nearest).

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((20, 8))
    >>> track_stability(x, x)["hit"].mean()
    1.0
    """
    clean = np.asarray(clean, dtype=np.float64)
    deformed = np.asarray(deformed, dtype=np.float64)
    if clean.shape != deformed.shape or clean.ndim != 2:
        raise ValueError(f"clean and deformed must be (n_tracks, dim) of one shape, got "
                         f"{clean.shape} and {deformed.shape}")
    zc, zd = _standardise(clean, deformed)
    if blocks is not None:
        if sum(blocks) != clean.shape[1]:
            raise ValueError(f"blocks {blocks} do not add up to dim {clean.shape[1]}")
        w = np.repeat(1 / np.sqrt(np.asarray(blocks, dtype=float)), blocks)
        zc, zd = zc * w, zd * w
    uc, ud = _unit(zc), _unit(zd)
    sim = ud @ uc.T  # (deformed i, clean j)
    own = np.diag(sim)
    rank = 1 + (sim > own[:, None] + 1e-12).sum(axis=1)
    ties = (np.abs(sim - own[:, None]) <= 1e-12).sum(axis=1) - 1
    hit = ((rank == 1) & (ties == 0)).astype(float)
    return pd.DataFrame({"cosine": own, "hit": hit, "rank": rank})


def summarise_stability(per_track: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> pd.DataFrame:
    """Mean cosine and recall@1 with cluster-bootstrap CIs, per model and deformation.

    Parameters
    ----------
    per_track : pandas.DataFrame
        Rows of :func:`track_stability` with ``model``, ``deformation`` and ``group`` (track
        group, :func:`mtbc.data.splits.track_groups`) columns.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(model, deformation)``: ``cosine, cosine_low, cosine_high, recall1,
        recall1_low, recall1_high, n_tracks, n_groups``.
    """
    rows = []
    for (model, deformation), part in per_track.groupby(["model", "deformation"], sort=False):
        groups = part["group"].to_numpy()
        cos = part["cosine"].to_numpy(float)
        hit = part["hit"].to_numpy(float)
        c_lo, c_hi = evaluation.bootstrap_mean_ci(cos, groups=groups, n_boot=n_boot, seed=seed,
                                                  level=level)
        ci = evaluation.bootstrap_ci(np.ones(len(hit), int), hit.astype(int), groups=groups,
                                     n_boot=n_boot, seed=seed, level=level)["accuracy"]
        rows.append({"model": model, "deformation": deformation, "cosine": cos.mean(),
                     "cosine_low": c_lo, "cosine_high": c_hi, "recall1": hit.mean(),
                     "recall1_low": ci[0], "recall1_high": ci[1], "n_tracks": len(part),
                     "n_groups": group_codes(groups, len(part))[1]})
    return pd.DataFrame(rows).set_index(["model", "deformation"])


def compare_models(per_track: pd.DataFrame, measure: str, *, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Every pair of models under every deformation, on ``measure`` (a per-track column of
    ``per_track``: ``cosine``, ``hit``, or ``drop`` from :func:`mtbc.robustness.probe.probe_drop`),
    on the tracks both models have; Holm over the whole table.

    Returns
    -------
    pandas.DataFrame
        ``deformation, model_a, model_b, measure, mean_a, mean_b, diff, ci_low, ci_high,
        p_value, p_holm, n_tracks, n_groups``.
    """
    rows = []
    for deformation, part in per_track.groupby("deformation", sort=False):
        wide = part.pivot_table(index="track_id", columns="model", values=measure,
                                aggfunc="first")
        groups = part.drop_duplicates("track_id").set_index("track_id")["group"]
        for a, b in itertools.combinations(list(dict.fromkeys(part["model"])), 2):
            both = wide[[a, b]].dropna()
            if not len(both):
                continue
            t = paired_mean_test(both[a], both[b], groups=groups.loc[both.index].to_numpy(),
                                 n_boot=n_boot, seed=seed)
            rows.append({"deformation": deformation, "model_a": a, "model_b": b,
                         "measure": measure, "mean_a": t.mean_a, "mean_b": t.mean_b,
                         "diff": t.diff, "ci_low": t.ci_low, "ci_high": t.ci_high,
                         "p_value": t.p_value, "p_holm": np.nan, "n_tracks": t.n_tracks,
                         "n_groups": t.n_groups})
    table = pd.DataFrame(rows, columns=["deformation", "model_a", "model_b", "measure",
                                        "mean_a", "mean_b", "diff", "ci_low", "ci_high",
                                        "p_value", "p_holm", "n_tracks", "n_groups"])
    if len(table):
        table["p_holm"] = evaluation.holm(table["p_value"].to_numpy())
    return table
