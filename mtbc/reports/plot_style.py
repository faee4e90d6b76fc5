"""What every figure shares: size and resolution, one colour per label, and the small helpers
the plotting modules use (:mod:`mtbc.reports.plots`, :mod:`mtbc.reports.plots_eval`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

#: Axis-label suffix of embedding values, which have no physical unit (arbitrary units).
AU = "(a.u.)"
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


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {list(columns)}; missing {missing} "
                         f"(it has {list(df.columns)})")


def percent_factor(values: np.ndarray, percent: bool | None) -> float:
    """100 when ``values`` are fractions (``percent`` False, or None and all <= 1), else 1."""
    if percent is None:
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        percent = not (len(finite) and finite.max() <= 1.0)
    return 1.0 if percent else 100.0


def finish_layer_axes(ax: Axes, *, ylabel: str, title: str) -> Axes:
    """Integer layer ticks, axis labels, title and legend of a per-layer curve."""
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def has_labels(labels: pd.Series) -> bool:
    return bool(labels.notna().any())
