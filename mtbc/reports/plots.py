"""Figures for the notebooks: every one has a title, axes with units and labelled colour bars.

Each function draws into ``ax`` (a new figure when ``ax`` is None) and returns the Axes
(``ax.figure`` is the Figure). Embedding values have no physical unit and are labelled "a.u."
(arbitrary units). Accuracy-like columns may hold fractions (0-1) or percentages (0-100):
``percent=None`` treats them as fractions when every value is <= 1, and plots percent.

No backend is forced here: in Jupyter (and papermill) the inline backend is used, and a
process with no display gets matplotlib's own headless default (Agg). Scripts and tests that
want to be explicit set ``MPLBACKEND=Agg`` or call ``matplotlib.use("Agg")`` themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from mtbc.reports.plot_style import (
    AU,
    DPI,
    MAX_WIDTH,
    has_labels,
    label_palette,
    new_axes,
    require_columns,
)
from mtbc.reports.plots_eval import (
    plot_confusion,
    plot_durations,
    plot_layer_curve,
    plot_layer_separability,
    plot_model_comparison,
    plot_tag_auc,
    plot_tag_matrix,
)

__all__ = ["DPI", "MAX_WIDTH", "label_palette", "plot_confusion", "plot_dim_stats",
           "plot_durations", "plot_layer_curve", "plot_layer_separability", "plot_matrix",
           "plot_model_comparison", "plot_projection", "plot_similarity", "plot_tag_auc",
           "plot_tag_matrix", "plot_track_stats"]


# -- embedding statistics ----------------------------------------------------------------
def plot_similarity(
    sim: pd.DataFrame,
    *,
    labels: Sequence | pd.Series | None = None,
    ax: Axes | None = None,
    title: str = "Cosine similarity between tracks (track-mean embeddings)",
    annot: bool | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """Heatmap of a square similarity DataFrame (from ``stats.cosine_similarity_matrix``).

    ``labels`` (one per row of ``sim``, same order) sorts the tracks by class and draws lines
    between classes; with up to 30 tracks every track is named, beyond that each label is
    named once at the middle of its block. The colour scale spans the 2nd to 98th
    percentile of the off-diagonal values unless ``vmin``/``vmax`` are given, so that the
    structure shows even when every track is similar to every other (embeddings with a large
    common offset have cosine similarities of 0.97-1.0). ``annot`` writes the values
    (default: at most 12 tracks). The colour bar reads "cosine similarity".
    """
    n = len(sim)
    if sim.shape != (n, n):
        raise ValueError(f"sim must be square, got shape {sim.shape}")
    ticks = [str(t) for t in sim.index]
    bounds, lab = [], None
    if labels is not None:
        lab = pd.Series(np.asarray(labels, dtype=object)).fillna("(no label)").astype(str)
        if len(lab) != n:
            raise ValueError(f"{len(lab)} labels for a {n} x {n} similarity matrix")
        order = np.argsort(lab.to_numpy(), kind="stable")
        sim = sim.iloc[order, order]
        lab = lab.iloc[order].reset_index(drop=True)
        ticks = [f"{t} ({c})" for t, c in zip(sim.index, lab, strict=True)]
        bounds = [i for i in range(1, n) if lab[i] != lab[i - 1]]
    values = sim.to_numpy(dtype=float)
    off = values[~np.eye(n, dtype=bool)] if n > 1 else values.ravel()
    off = off[np.isfinite(off)]
    if len(off):
        lo, hi = np.percentile(off, [2, 98])
        vmin = float(lo) if vmin is None else vmin
        vmax = float(max(hi, lo + 1e-6)) if vmax is None else vmax
    side = min(MAX_WIDTH - 1.5, 3.0 + 0.3 * n)
    ax = new_axes(ax, (side + 1.5, side))
    every_track = n <= 30
    sns.heatmap(values, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, square=True,
                annot=(n <= 12) if annot is None else annot, fmt=".2f",
                xticklabels=ticks if every_track else False,
                yticklabels=ticks if every_track else False,
                cbar_kws={"label": "cosine similarity"})
    if every_track:
        ax.tick_params(labelsize=8)
    elif lab is not None:
        centres = [(np.flatnonzero(lab == c).mean() + 0.5, c) for c in lab.unique()]
        ax.set_xticks([c for c, _ in centres], [name for _, name in centres], rotation=90,
                      fontsize=9)
        ax.set_yticks([c for c, _ in centres], [name for _, name in centres], fontsize=9)
    for b in bounds:
        ax.axhline(b, color="white", lw=1.5)
        ax.axvline(b, color="white", lw=1.5)
    ax.set_title(title)
    ax.set_xlabel("track" + ("" if every_track else f" ({n}, grouped by label)"))
    ax.set_ylabel("track")
    return ax


def plot_matrix(
    matrix: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str,
    colorbar: str,
    fmt: str = ".2f",
    cmap: str = "viridis_r",
    limits: tuple[float, float] | None = None,
    center: float | None = None,
) -> Axes:
    """A labelled square heat map of a system x system table (e.g. adjusted p-values or
    accuracy differences), values written in the cells; ``limits`` = (low, high) of the
    colour scale (default: the data's range)."""
    vmin, vmax = limits if limits is not None else (None, None)
    n = len(matrix)
    side = min(MAX_WIDTH - 1.5, 3.5 + 0.7 * n)
    ax = new_axes(ax, (side + 1.5, side))
    sns.heatmap(matrix.astype(float), ax=ax, annot=True, fmt=fmt, cmap=cmap, vmin=vmin,
                vmax=vmax, center=center, square=True, cbar_kws={"label": colorbar},
                annot_kws={"fontsize": 9})
    ax.tick_params(labelsize=9)
    ax.set_xlabel("system")
    ax.set_ylabel("system")
    ax.set_title(title)
    return ax


def plot_projection(
    proj: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Axes:
    """Scatter of a 2-D projection (``stats.project_2d``), coloured by label.

    ``annotate`` writes each track_id beside its point (default: at most 20 tracks). The
    projection's note (method, perplexity, explained variance, fallbacks) is printed under
    the plot.
    """
    require_columns(proj, ["track_id", "label", "x", "y", "method"], "plot_projection")
    method = str(proj["method"].iloc[0]) if len(proj) else "pca"
    name = {"pca": "PC", "tsne": "t-SNE"}.get(method, method)
    ax = new_axes(ax, (7.0, 5.5))
    labelled = has_labels(proj["label"])
    data = proj.assign(label=proj["label"].fillna("(no label)").astype(str))
    sns.scatterplot(data=data, x="x", y="y", hue="label" if labelled else None, ax=ax, s=60,
                    palette=label_palette(data["label"]) if labelled else None,
                    hue_order=sorted(data["label"].unique()) if labelled else None)
    if labelled and ax.get_legend() is not None:
        ax.get_legend().set_title("label")
    if annotate if annotate is not None else len(proj) <= 20:
        for row in proj.itertuples():
            ax.annotate(str(row.track_id), (row.x, row.y), fontsize=7, alpha=0.8,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{name} 1 {AU}")
    ax.set_ylabel(f"{name} 2 {AU}")
    ax.set_title(title or f"{'t-SNE' if method == 'tsne' else 'PCA'} of track embeddings "
                          f"(n = {len(proj)})")
    note = proj.attrs.get("note", "")
    if note:
        ax.annotate(note, (0, 0), xycoords="axes fraction", xytext=(0, -32),
                    textcoords="offset points", fontsize=7, color="0.35", va="top")
    return ax


def plot_track_stats(
    stats: pd.DataFrame,
    *,
    layer: int | None = None,
    stat: str = "mean",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Per-track summary from ``stats.track_stats``.

    One layer in the table (or ``layer`` given): per track, the mean with a thick +-std bar and
    a thin min-max line, coloured by label. Several layers: ``stat`` against layer, one line per
    track, coloured by label.
    """
    require_columns(stats, ["track_id", "label", "layer", "mean", "std", "min", "max"],
             "plot_track_stats")
    if layer is not None:
        stats = stats[stats["layer"] == layer]
        if stats.empty:
            raise ValueError(f"no rows for layer {layer}")
    data = stats.assign(label=stats["label"].fillna("(no label)").astype(str))
    models = [m for m in data["model"].unique() if m] if "model" in data.columns else []
    who = f" ({', '.join(map(str, models))})" if models else ""
    labels = sorted(data["label"].unique())
    palette = label_palette(data["label"])
    if data["layer"].nunique() > 1:
        ax = new_axes(ax, (8.0, 5.0))
        sns.lineplot(data=data, x="layer", y=stat, hue="label", units="track_id",
                     estimator=None, palette=palette, ax=ax, lw=1, alpha=0.7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"track {stat} of embedding values {AU}")
        ax.set_title(title or f"Per-track {stat} of embedding values by layer{who}")
        if ax.get_legend() is not None:
            ax.get_legend().set_title("label")
        return ax
    data = data.sort_values(["label", "track_id"], kind="stable").reset_index(drop=True)
    n = len(data)
    ax = new_axes(ax, (min(MAX_WIDTH, 4.0 + 0.3 * n), 5.0))
    x = np.arange(n)
    colors = [palette[c] for c in data["label"]]
    ax.vlines(x, data["min"], data["max"], colors=colors, lw=1, alpha=0.6)
    ax.errorbar(x, data["mean"], yerr=data["std"], fmt="none", ecolor=colors, elinewidth=4,
                alpha=0.5)
    ax.scatter(x, data["mean"], c=colors, zorder=3, s=25)
    if n <= 30:
        ax.set_xticks(x, [str(t) for t in data["track_id"]], rotation=90, fontsize=8)
        ax.set_xlabel("track")
    else:  # one tick per label, at the middle of its tracks
        centres = data.groupby("label", sort=False).apply(lambda g: g.index.to_numpy().mean(),
                                                          include_groups=False)
        ax.set_xticks(centres.to_numpy(), list(centres.index), fontsize=9)
        ax.set_xlabel(f"track ({n}, grouped by label)")
    ax.set_ylabel(f"embedding value {AU}")
    lay = f", layer {data['layer'].iloc[0]}" if n else ""
    ax.set_title(title or f"Embedding values per track{who}{lay}")
    handles = [Line2D([], [], color=palette[c], marker="o", ls="", label=c) for c in labels]
    handles += [Line2D([], [], color="0.4", lw=4, alpha=0.5, label="mean +- std"),
                Line2D([], [], color="0.4", lw=1, label="min to max")]
    ax.legend(handles=handles, title="label", fontsize=8)
    return ax


def plot_dim_stats(
    dims: pd.DataFrame,
    *,
    top: int = 10,
    feature_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str = "Per-dimension statistics across tracks",
) -> Axes:
    """Mean +- std across tracks of every dimension (``stats.dim_stats``), with the ``top``
    highest-variance dimensions highlighted and named (``feature_names`` when given)."""
    require_columns(dims, ["dim", "mean", "std", "std_rank"], "plot_dim_stats")
    ax = new_axes(ax, (MAX_WIDTH, 4.5))
    hi = dims["std_rank"] <= top
    rest = dims[~hi]
    ax.errorbar(rest["dim"], rest["mean"], yerr=rest["std"], fmt=".", ms=3, lw=0.6,
                color="0.55", label="dimension: mean +- std")
    sel = dims[hi]
    ax.errorbar(sel["dim"], sel["mean"], yerr=sel["std"], fmt="o", ms=4, lw=1.2,
                color="C3", label=f"top {int(hi.sum())} by std")
    for row in sel.itertuples():
        name = feature_names[row.dim] if feature_names is not None else str(row.dim)
        ax.annotate(name, (row.dim, row.mean + row.std), fontsize=7, color="C3",
                    xytext=(0, 3), textcoords="offset points", ha="center")
    ax.set_xlabel("embedding dimension (index)")
    ax.set_ylabel(f"value across tracks {AU}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
