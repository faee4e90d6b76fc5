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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

_AU = "(a.u.)"
#: Widest figure in inches: at :data:`DPI` it fills the report's ~850 px column without being
#: shrunk, so 8 pt text stays at about 11 px on the page.
MAX_WIDTH = 8.5
#: Resolution of every figure (the inline backend's own default differs between versions).
DPI = 100
plt.rcParams["figure.dpi"] = DPI


def label_palette(labels) -> dict[str, tuple]:
    """One colour per label, the same in every figure of a run: labels sorted, colours from
    seaborn's ``tab10`` (``tab20``, then ``husl``, for more labels); ``(no label)`` is grey."""
    names = sorted({str(v) for v in pd.Series(list(labels)).fillna("(no label)")} - {"(no label)"})
    n = len(names)
    colours = sns.color_palette("tab10" if n <= 10 else "tab20" if n <= 20 else "husl", n)
    out = dict(zip(names, colours, strict=True))
    out["(no label)"] = (0.6, 0.6, 0.6)
    return out


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {list(columns)}; missing {missing} "
                         f"(it has {list(df.columns)})")


def _percent_factor(values: np.ndarray, percent: bool | None) -> float:
    """100 when ``values`` are fractions (``percent`` False, or None and all <= 1), else 1."""
    if percent is None:
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        percent = not (len(finite) and finite.max() <= 1.0)
    return 1.0 if percent else 100.0


def _finish_layer_axes(ax: Axes, *, ylabel: str, title: str) -> Axes:
    """Integer layer ticks, axis labels, title and legend of a per-layer curve."""
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def _has_labels(labels: pd.Series) -> bool:
    return bool(labels.notna().any())


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
    ax = _axes(ax, (side + 1.5, side))
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
    vmin: float | None = None,
    vmax: float | None = None,
    center: float | None = None,
) -> Axes:
    """A labelled square heat map of a system x system table (e.g. adjusted p-values or
    accuracy differences), values written in the cells."""
    n = len(matrix)
    side = min(MAX_WIDTH - 1.5, 3.5 + 0.7 * n)
    ax = _axes(ax, (side + 1.5, side))
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
    _require(proj, ["track_id", "label", "x", "y", "method"], "plot_projection")
    method = str(proj["method"].iloc[0]) if len(proj) else "pca"
    name = {"pca": "PC", "tsne": "t-SNE"}.get(method, method)
    ax = _axes(ax, (7.0, 5.5))
    labelled = _has_labels(proj["label"])
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
    ax.set_xlabel(f"{name} 1 {_AU}")
    ax.set_ylabel(f"{name} 2 {_AU}")
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
    _require(stats, ["track_id", "label", "layer", "mean", "std", "min", "max"],
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
        ax = _axes(ax, (8.0, 5.0))
        sns.lineplot(data=data, x="layer", y=stat, hue="label", units="track_id",
                     estimator=None, palette=palette, ax=ax, lw=1, alpha=0.7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"track {stat} of embedding values {_AU}")
        ax.set_title(title or f"Per-track {stat} of embedding values by layer{who}")
        if ax.get_legend() is not None:
            ax.get_legend().set_title("label")
        return ax
    data = data.sort_values(["label", "track_id"], kind="stable").reset_index(drop=True)
    n = len(data)
    ax = _axes(ax, (min(MAX_WIDTH, 4.0 + 0.3 * n), 5.0))
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
    ax.set_ylabel(f"embedding value {_AU}")
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
    _require(dims, ["dim", "mean", "std", "std_rank"], "plot_dim_stats")
    ax = _axes(ax, (MAX_WIDTH, 4.5))
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
    ax.set_ylabel(f"value across tracks {_AU}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


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
    ax = _axes(ax, (side + 1.5, side))
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
    _require(df, ["layer", "accuracy", "ci_low", "ci_high"], "plot_layer_curve")
    if hue is None and "system" in df.columns:
        hue = "system"
    scale = _percent_factor(df[["accuracy", "ci_low", "ci_high"]].to_numpy(), percent)
    ax = _axes(ax, (8.0, 4.8))
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
    return _finish_layer_axes(ax, ylabel="accuracy (%)", title=title)


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
    _require(df, ["system", "accuracy", "ci_low", "ci_high"], "plot_model_comparison")
    cols = [c for c in ("accuracy", "ci_low", "ci_high", "published") if c in df.columns]
    scale = _percent_factor(df[cols].to_numpy(dtype=float), percent)
    if sort:
        df = df.sort_values("accuracy", ascending=True)
    n = len(df)
    ax = _axes(ax, (8.0, 1.2 + 0.5 * n))
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
    _require(tracks, ["duration"], "plot_durations")
    data = tracks[tracks["duration"].notna()].copy()
    labelled = "label" in data.columns and _has_labels(data["label"])
    if labelled:
        data["label"] = data["label"].fillna("(no label)").astype(str)
    ax = _axes(ax, (8.0, 4.5))
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
    _require(df, ["layer", "silhouette"], "plot_layer_separability")
    ax = _axes(ax, (8.0, 4.0))
    ax.plot(df["layer"], df["silhouette"], marker="o", ms=4, label="silhouette")
    if df["silhouette"].notna().any():
        best = df.loc[df["silhouette"].idxmax()]
        ax.plot(best["layer"], best["silhouette"], marker="*", ms=14, mec="k", ls="",
                color="C0", label=f"best layer ({int(best['layer'])})")
    ax.axhline(0.0, ls="--", color="0.4", lw=1, label="no structure (0)")
    return _finish_layer_axes(ax, ylabel="silhouette (cosine, -1 to 1)", title=title)


def plot_tag_matrix(
    scores: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str = "Tag probabilities per track",
) -> Axes:
    """Heat map of a track x tag table of probabilities (0-1), shown in percent."""
    n_tracks, n_tags = scores.shape
    width = min(MAX_WIDTH, 3.0 + 0.35 * n_tags)
    ax = _axes(ax, (width, min(12.0, 1.5 + 0.25 * n_tracks)))
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
    _require(df, ["system", "tag", "roc_auc"], "plot_tag_auc")
    data = df[df["roc_auc"].notna()]
    order = data.groupby("tag")["roc_auc"].mean().sort_values().index.tolist()
    systems = list(dict.fromkeys(data["system"]))
    ax = _axes(ax, (MAX_WIDTH, 1.5 + 0.22 * len(order) * max(1, len(systems)) ** 0.5))
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
