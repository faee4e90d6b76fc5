"""Simulations: group-aware intervals and paired tests hold their nominal rates on grouped data.

Tracks of one group (artist, duplicates) share how hard they are, so their correctness is
correlated. Each test simulates many small test sets with fixed seeds, runs the group-aware
procedure and -- to show why groups matter -- the track-level one on the same data, and prints
the measured rates (``pytest -s``). Figures are recorded in docs/statistics.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from mtbc.stats import bootstrap_ci, mcnemar_exact, paired_test


def _labels(correct: np.ndarray, rng: np.random.Generator, n_classes: int, offset: int):
    """True labels and predictions right exactly where ``correct`` is."""
    y = rng.integers(0, n_classes, len(correct))
    return y, np.where(correct, y, (y + offset) % n_classes)


def test_group_bootstrap_covers_true_accuracy_of_pure_noise_predictions():
    # 12 groups x 5 tracks, binary labels, predictions pure noise on average (chance = 0.5),
    # but every group has its own hit rate p_g ~ Beta(1, 1) shared by its tracks.
    runs, n_groups, size, true_accuracy = 400, 12, 5, 0.5
    rng = np.random.default_rng(20240601)
    groups = np.repeat(np.arange(n_groups), size)
    covered = {"group": 0, "track": 0}
    for run in range(runs):
        p = rng.beta(1.0, 1.0, n_groups)
        y, pred = _labels(rng.random(n_groups * size) < p[groups], rng, 2, 1)
        for kind, g in (("group", groups), ("track", None)):
            low, high = bootstrap_ci(y, pred, groups=g, n_boot=1000, seed=run)["accuracy"]
            covered[kind] += low <= true_accuracy <= high
    coverage = {k: v / runs for k, v in covered.items()}
    print(f"\n95% CI coverage of the true accuracy over {runs} runs: {coverage}")
    assert coverage["group"] >= 0.90
    # resampling tracks ignores the correlation: its intervals are too narrow (measured 0.82)
    assert coverage["track"] <= coverage["group"] - 0.08


def _paired_runs(*, runs: int, shift: float, sd_group: float, sd_contrast: float, seed: int,
                 n_groups: int = 20, size: int = 3, base: float = 0.6) -> dict[str, float]:
    """Rejection rates at 0.05 of paired_test (groups) and McNemar (tracks).

    Logit of the hit rate of system A (B) in group g: ``logit(base) +/- shift / 2 + u_g +/-
    v_g``; ``u_g ~ N(0, sd_group)`` (shared difficulty: correlated errors), ``v_g ~ N(0,
    sd_contrast)`` (which system suits the group better: correlates a group's differences).
    """
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    rejected = {"sign-flip": 0, "mcnemar": 0}
    for run in range(runs):
        u = rng.normal(0, sd_group, n_groups)
        v = rng.normal(0, sd_contrast, n_groups)
        hit_a = expit(logit(base) + shift / 2 + u + v)[groups]
        hit_b = expit(logit(base) - shift / 2 + u - v)[groups]
        correct_a = rng.random(len(groups)) < hit_a
        correct_b = rng.random(len(groups)) < hit_b
        y, pred_a = _labels(correct_a, rng, 3, 1)
        pred_b = np.where(correct_b, y, (y + 2) % 3)
        res = paired_test(y, pred_a, pred_b, groups=groups, n_perm=2000, n_boot=0, seed=run)
        rejected["sign-flip"] += res.p_value < 0.05
        rejected["mcnemar"] += mcnemar_exact(y, pred_a, pred_b)["p_value"] < 0.05
    return {k: v / runs for k, v in rejected.items()}


def _shift_for(difference: float, sd_group: float, sd_contrast: float, base: float = 0.6):
    """Logit shift giving a population accuracy difference ``difference`` (bisection)."""
    z = np.random.default_rng(0).normal(size=(200_000, 2))

    def gap(shift):
        a = expit(logit(base) + shift / 2 + sd_group * z[:, 0] + sd_contrast * z[:, 1])
        b = expit(logit(base) - shift / 2 + sd_group * z[:, 0] - sd_contrast * z[:, 1])
        return a.mean() - b.mean()

    lo, hi = 0.0, 5.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < difference else (lo, mid)
    return (lo + hi) / 2


def test_paired_test_keeps_its_level_with_group_correlated_errors():
    rates = _paired_runs(runs=400, shift=0.0, sd_group=1.0, sd_contrast=1.5, seed=1)
    print(f"\nfalse-positive rate at 0.05, equal systems, 20 groups x 3 tracks: {rates}")
    assert rates["sign-flip"] <= 0.07
    # McNemar treats the 60 tracks as independent and rejects far too often (measured 0.13)
    assert rates["mcnemar"] >= 0.10


def test_paired_test_detects_a_30_point_difference():
    shift = _shift_for(0.30, 1.0, 0.3)
    rates = _paired_runs(runs=400, shift=shift, sd_group=1.0, sd_contrast=0.3, seed=2)
    print(f"\npower at 0.05, 30-point difference, 20 groups x 3 tracks: {rates}")
    assert rates["sign-flip"] >= 0.80
