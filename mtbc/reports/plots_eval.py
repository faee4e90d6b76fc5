"""Figures of the evaluation (confusion matrix, per-layer accuracy, system comparison) and of
the collection overview (durations, layer separability, tags); re-exported by
:mod:`mtbc.reports.plots`, whose docstring states the conventions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from mtbc.reports.plot_style import (
    MAX_WIDTH,
    finish_layer_axes,
    has_labels,
    label_palette,
    new_axes,
    percent_factor,
    require_columns,
)


# -- evaluation --------------------------------------------------------------------------
def plot_confusion(
    cm: np.ndarray,
    labels: Sequence[str],
    *,
    normalize: bool = True,
    ax: Axes | None = None,
    title: str = "Confusion matrix",
    annot: bool | None = None,
    cmap: str = "Blues",
) -> Axes:
    """Heatmap of a confusion matrix (rows: true class, columns: predicted class).

    ``normalize`` divides each row by its total (colour bar "fraction of true class"; a class
    with no test tracks shows an empty row); otherwise counts (colour bar "tracks").
    """
    cm = np.asarray(cm, dtype=float)
    k = len(labels)
    if cm.shape != (k, k):
        raise ValueError(f"cm has shape {cm.shape} but there are {k} labels")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(totals > 0, 100 * cm / totals, np.nan)
        fmt, cbar, vmax = ".0f", "% of the true label's tracks", 100.0
    else:
        values, fmt, cbar, vmax = cm, ".0f", "tracks", None
    side = min(12.0, 3.0 + 0.55 * k)
    ax = new_axes(ax, (side + 1.5, side))
    sns.heatmap(values, ax=ax, cmap=cmap, vmin=0.0, vmax=vmax, square=True,
                annot=(k <= 20) if annot is None else annot, fmt=fmt,
                xticklabels=list(labels), yticklabels=list(labels), cbar_kws={"label": cbar})
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    return ax


def _ci_errors(acc: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Non-negative (2, n) error-bar lengths; NaN where a bound is missing."""
    return np.clip(np.vstack([acc - lo, hi - acc]), 0.0, None)


def plot_layer_curve(
    df: pd.DataFrame,
    *,
    chance: float | None = None,
    hue: str | None = None,
    percent: bool | None = None,
    ax: Axes | None = None,
    title: str = "Probe accuracy by layer",
) -> Axes:
    """Accuracy against layer with a shaded confidence band.

    ``df`` has columns ``layer, accuracy, ci_low, ci_high``; ``hue`` (default: ``"system"``
    when that column exists) draws one curve per value. ``chance`` (same units as accuracy)
    draws a dashed line. The best layer of each curve is marked with a star. ``percent``:
    whether the values are already percentages (None: fractions if all are <= 1).
    """
    require_columns(df, ["layer", "accuracy", "ci_low", "ci_high"], "plot_layer_curve")
    if hue is None and "system" in df.columns:
        hue = "system"
    scale = percent_factor(df[["accuracy", "ci_low", "ci_high"]].to_numpy(), percent)
    ax = new_axes(ax, (8.0, 4.8))
    groups = df.groupby(hue, sort=False) if hue else [(None, df)]
    for i, (name, g) in enumerate(groups):
        g = g.sort_values("layer")
        color = f"C{i % 10}"
        acc = g["accuracy"].to_numpy(float) * scale
        ax.fill_between(g["layer"], g["ci_low"] * scale, g["ci_high"] * scale, color=color,
                        alpha=0.2, lw=0)
        ax.plot(g["layer"], acc, marker="o", ms=4, color=color,
                label=f"{name}" if name is not None else "accuracy")
        if np.isfinite(acc).any():
            best = int(np.nanargmax(acc))
            ax.plot(g["layer"].iloc[best], acc[best], marker="*", ms=14, color=color,
                    mec="k", ls="")
    if chance is not None:
        ax.axhline(chance * scale, ls="--", color="0.4", lw=1,
                   label=f"chance ({chance * scale:.1f}%)")
    ax.plot([], [], color="0.5", alpha=0.3, lw=8, label="95% CI")
    ax.plot([], [], marker="*", ms=12, color="0.5", mec="k", ls="", label="best layer")
    return finish_layer_axes(ax, ylabel="accuracy (%)", title=title)


def plot_model_comparison(
    df: pd.DataFrame,
    *,
    chance: float | None = None,
    percent: bool | None = None,
    sort: bool = True,
    ax: Axes | None = None,
    title: str = "Test accuracy by system",
) -> Axes:
    """Horizontal bars of accuracy per system with CI whiskers.

    ``df`` has columns ``system, accuracy, ci_low, ci_high``; an optional ``published``
    column (same units) adds the published figure as a diamond. ``chance`` draws a dashed line.
    ``percent``: whether the values are already percentages (None: fractions if all <= 1).
    """
    require_columns(df, ["system", "accuracy", "ci_low", "ci_high"], "plot_model_comparison")
    cols = [c for c in ("accuracy", "ci_low", "ci_high", "published") if c in df.columns]
    scale = percent_factor(df[cols].to_numpy(dtype=float), percent)
    if sort:
        df = df.sort_values("accuracy", ascending=True)
    n = len(df)
    ax = new_axes(ax, (8.0, 1.2 + 0.5 * n))
    y = np.arange(n)
    acc = df["accuracy"].to_numpy(float) * scale
    err = _ci_errors(acc, df["ci_low"].to_numpy(float) * scale,
                     df["ci_high"].to_numpy(float) * scale)
    ax.barh(y, acc, xerr=err, color="C0", alpha=0.8, capsize=4, label="accuracy, 95% CI")
    for yi, a, e in zip(y, acc, err[1], strict=True):
        ax.annotate(f"{a:.1f}", (a + (e if np.isfinite(e) else 0), yi), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    if "published" in df.columns:
        pub = df["published"].to_numpy(float) * scale
        ax.plot(pub, y, "D", color="k", ms=6, ls="", label="published")
    if chance is not None:
        ax.axvline(chance * scale, ls="--", color="0.4", lw=1,
                   label=f"chance ({chance * scale:.1f}%)")
    ax.set_yticks(y, [str(s) for s in df["system"]])
    ax.set_xlim(0, max(100.0, float(np.nanmax(acc)) if n else 100.0) * 1.02)
    ax.set_xlabel("accuracy (%)")
    ax.set_ylabel("system")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


# -- collection overview -----------------------------------------------------------------
def plot_durations(
    tracks: pd.DataFrame,
    *,
    bins: int | str = "auto",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Histogram of track durations in seconds, stacked by label (when labels exist)."""
    require_columns(tracks, ["duration"], "plot_durations")
    data = tracks[tracks["duration"].notna()].copy()
    labelled = "label" in data.columns and has_labels(data["label"])
    if labelled:
        data["label"] = data["label"].fillna("(no label)").astype(str)
    ax = new_axes(ax, (8.0, 4.5))
    sns.histplot(data=data, x="duration", hue="label" if labelled else None,
                 multiple="stack" if labelled else "layer", bins=bins, ax=ax,
                 palette=label_palette(data["label"]) if labelled else None,
                 hue_order=sorted(data["label"].unique()) if labelled else None)
    if labelled and ax.get_legend() is not None:
        ax.get_legend().set_title("label")
    total_h = data["duration"].sum() / 3600
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("tracks")
    ax.set_title(title or f"Track durations (n = {len(data)}, total {total_h:.2f} h)")
    return ax


def plot_layer_separability(
    df: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "Class separability by layer",
) -> Axes:
    """Silhouette (cosine) of the labels against layer, from ``stats.layer_separability``."""
    require_columns(df, ["layer", "silhouette"], "plot_layer_separability")
    ax = new_axes(ax, (8.0, 4.0))
    ax.plot(df["layer"], df["silhouette"], marker="o", ms=4, label="silhouette")
    if df["silhouette"].notna().any():
        best = df.loc[df["silhouette"].idxmax()]
        ax.plot(best["layer"], best["silhouette"], marker="*", ms=14, mec="k", ls="",
                color="C0", label=f"best layer ({int(best['layer'])})")
    ax.axhline(0.0, ls="--", color="0.4", lw=1, label="no structure (0)")
    return finish_layer_axes(ax, ylabel="silhouette (cosine, -1 to 1)", title=title)


def plot_tag_matrix(
    scores: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "Tag probabilities per track",
) -> Axes:
    """Heat map of a track x tag table of probabilities (0-1), shown in percent."""
    n_tracks, n_tags = scores.shape
    width = min(MAX_WIDTH, 3.0 + 0.35 * n_tags)
    ax = new_axes(ax, (width, min(12.0, 1.5 + 0.25 * n_tracks)))
    sns.heatmap(100 * scores.astype(float), ax=ax, cmap="magma", vmin=0, vmax=100,
                cbar_kws={"label": "tag probability (%)"},
                yticklabels=[str(t) for t in scores.index] if n_tracks <= 40 else False,
                xticklabels=[str(t) for t in scores.columns])
    ax.tick_params(labelsize=8)
    ax.set_xlabel("tag")
    ax.set_ylabel("track")
    ax.set_title(title)
    return ax


def plot_tag_auc(
    df: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "ROC-AUC per tag (test tracks)",
) -> Axes:
    """Horizontal bars of ROC-AUC per tag, one colour per system, tags sorted by their mean
    AUC; dashed line at chance (0.5). ``df``: ``system, tag, roc_auc`` (+ ``positive``, the
    known positives, shown in the tick labels); tags without a defined AUC are left out."""
    require_columns(df, ["system", "tag", "roc_auc"], "plot_tag_auc")
    data = df[df["roc_auc"].notna()]
    order = data.groupby("tag")["roc_auc"].mean().sort_values().index.tolist()
    systems = list(dict.fromkeys(data["system"]))
    ax = new_axes(ax, (MAX_WIDTH, 1.5 + 0.22 * len(order) * max(1, len(systems)) ** 0.5))
    height = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        s = data[data["system"] == system].set_index("tag").reindex(order)
        ax.barh(np.arange(len(order)) + (k - (len(systems) - 1) / 2) * height,
                s["roc_auc"].to_numpy(float), height=height, label=system, color=f"C{k % 10}")
    pos = data.drop_duplicates("tag").set_index("tag").get("positive")
    ax.set_yticks(np.arange(len(order)),
                  [f"{t} (n+ = {int(pos[t])})" if pos is not None else t for t in order])
    ax.axvline(0.5, ls="--", color="0.4", lw=1, label="chance (0.5)")
    ax.set_xlim(0.0, 1.0)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("ROC-AUC (0-1, 0.5 = chance)")
    ax.set_ylabel("tag (known positive tracks)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax
