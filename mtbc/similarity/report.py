"""Notebook 10's tables and figure: retrieval metrics in percent with CIs and n."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mtbc.reports.plots import MAX_WIDTH
from mtbc.similarity.metrics import METRIC_NAMES

_LABELS = {"p@1": "P@1", "p@5": "P@5", "p@10": "P@10", "ap@10": "mAP@10",
           "ndcg@10": "nDCG@10"}


def _pct(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def retrieval_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per system: every metric as ``value [CI low, CI high]`` in percent, the
    chance P@5 (a random ranking's expected precision), queries and groups.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`mtbc.similarity.study.summary_table`.
    """
    rows = []
    if not len(summary):
        return pd.DataFrame()
    for system, t in summary.groupby("system", sort=False):
        t = t.set_index("metric")
        row = {"system": system}
        for m in METRIC_NAMES:
            row[f"{_LABELS[m]} % [95% CI]"] = _pct(*t.loc[m, ["value", "ci_low", "ci_high"]])
        row["chance P@5 %"] = f"{100 * t.loc['p@5', 'chance']:.1f}"
        row["n queries"] = int(t.loc["p@5", "n_queries"])
        row["n groups"] = int(t.loc["p@5", "n_groups"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


def tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Paired tests for display: AP@10 of each system, difference with CI (points), p, Holm."""
    if not len(tests):
        return pd.DataFrame()
    out = pd.DataFrame({
        "system A": tests["system_a"], "system B": tests["system_b"],
        "mAP@10 A %": (100 * tests["value_a"]).round(1),
        "mAP@10 B %": (100 * tests["value_b"]).round(1),
        "A - B points [95% CI]": [_pct(d, lo, hi) for d, lo, hi in
                                  tests[["diff", "ci_low", "ci_high"]].to_numpy()],
        "p": tests["p_value"].map(lambda p: f"{p:.3g}"),
        "p (Holm)": tests["p_holm"].map(lambda p: f"{p:.3g}"),
        "n queries": tests["n_queries"], "n groups": tests["n_groups"]})
    return out


def chosen_table(validation: pd.DataFrame) -> pd.DataFrame:
    """The layer and whitening each system chose in each fold, with its validation AP@10 (%)."""
    if not len(validation):
        return pd.DataFrame()
    chosen = validation[validation["chosen"].astype(bool)]
    return (chosen.assign(**{"validation mAP@10 %": (100 * chosen["val_ap@10"]).round(1),
                             "layer": chosen["layer"].map(lambda v: "-" if v < 0 else int(v))})
            [["system", "fold", "layer", "whiten", "validation mAP@10 %", "n_valid"]]
            .rename(columns={"n_valid": "validation queries"}).reset_index(drop=True))


def plot_retrieval(summary: pd.DataFrame, *, metrics: tuple[str, ...] = ("p@1", "p@5", "ap@10"),
                   title: str | None = None):
    """Points with 95% CI bars per system and metric (%), the chance precision dashed.

    Returns the matplotlib ``Axes`` (``None`` when there is nothing to plot).
    """
    if not len(summary):
        return None
    systems = list(dict.fromkeys(summary["system"]))
    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 0.6 + 0.55 * len(systems) * len(metrics)),
                           layout="constrained")
    colours = plt.get_cmap("tab10")
    y = 0
    ticks, names = [], []
    for i, m in enumerate(metrics):
        for s in systems:
            r = summary[(summary["system"] == s) & (summary["metric"] == m)].iloc[0]
            ax.errorbar(100 * r["value"], y, xerr=[[100 * (r["value"] - r["ci_low"])],
                                                   [100 * (r["ci_high"] - r["value"])]],
                        fmt="o", color=colours(i), capsize=3)
            if np.isfinite(r["chance"]):
                ax.plot([100 * r["chance"]] * 2, [y - 0.35, y + 0.35], "--", color="0.4")
            ticks.append(y)
            names.append(f"{_LABELS[m]} · {s} (n = {int(r['n_queries'])})")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, names)
    ax.invert_yaxis()
    ax.set_xlabel("score (%), 95% CI; dashed: chance precision")
    ax.set_xlim(0, 100)
    ax.set_title(title or "Retrieval of same-label tracks (test queries)")
    return ax
