"""Descriptive statistics of embeddings: per track, per dimension, between tracks.

Input conventions (what :meth:`mtbc.cache.store.EmbeddingStore.load_many` returns):

- track level: ``X`` of shape ``(n_tracks, n_layers, dim)`` (``reduce="mean"``), or an already
  chosen layer ``(n_tracks, dim)``;
- segment level: ``segments (N, n_layers, dim)`` with ``track_index (N,)``, the position of
  each segment's track (``reduce=None``);
- ``tracks``: a DataFrame with a ``track_id`` column and, optionally, ``label``, one row per
  track in the same order as ``X`` (the manifest of :mod:`mtbc.data.collection` works as is).

Functions that need one layer take ``layer=``; ``layer=None`` is accepted only when there is a
single layer (VGGish, MFCC), so a multi-layer model never gets averaged silently.
Standard deviations are population ones (``ddof=0``). Embedding values have no physical unit:
plots call them "a.u." (arbitrary units).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

TRACK_STATS_COLUMNS = ["track_id", "label", "model", "layer", "n_segments", "dim",
                       "mean", "std", "min", "max", "range"]


# -- input helpers ---------------------------------------------------------------------
def _select_layer(X: np.ndarray, layer: int | None) -> np.ndarray:
    """``(n, dim)`` from ``(n, n_layers, dim)`` or ``(n, dim)``."""
    X = np.asarray(X)
    if X.ndim == 2:
        if layer not in (None, 0, -1):
            raise ValueError(f"X is already one layer (shape {X.shape}); layer={layer} "
                             f"cannot be selected from it")
        return X.astype(np.float64, copy=False)
    if X.ndim != 3:
        raise ValueError(f"expected X of shape (n_tracks, n_layers, dim) or (n_tracks, dim), "
                         f"got {X.shape}")
    n_layers = X.shape[1]
    if layer is None:
        if n_layers != 1:
            raise ValueError(f"X has {n_layers} layers; pass layer=k with 0 <= k < {n_layers} "
                             f"(or -1 for the last)")
        layer = 0
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer={layer} out of range for {n_layers} layers")
    return X[:, layer].astype(np.float64, copy=False)


def _track_table(tracks: pd.DataFrame | None, n: int) -> pd.DataFrame:
    """``track_id`` and ``label`` columns for ``n`` tracks (labels may be missing: NaN)."""
    if tracks is None:
        return pd.DataFrame({"track_id": [f"track {i}" for i in range(n)],
                             "label": [np.nan] * n})
    if "track_id" not in tracks.columns:
        raise ValueError(f"tracks needs a 'track_id' column; it has {list(tracks.columns)}")
    if len(tracks) != n:
        raise ValueError(f"tracks has {len(tracks)} rows but the embeddings hold {n} tracks; "
                         f"pass the same tracks, in the order they were loaded")
    label = tracks["label"] if "label" in tracks.columns else [np.nan] * n
    return pd.DataFrame({"track_id": tracks["track_id"].to_numpy(),
                         "label": np.asarray(label, dtype=object)})


def _layer_list(n_layers: int, layer: int | Sequence[int] | None) -> list[int]:
    if layer is None:
        return list(range(n_layers))
    out = [layer] if isinstance(layer, int | np.integer) else list(layer)
    for k in out:
        if not -n_layers <= k < n_layers:
            raise ValueError(f"layer={k} out of range for {n_layers} layers")
    return [int(k) % n_layers for k in out]


# -- per track ---------------------------------------------------------------------------
def track_stats(
    segments: np.ndarray,
    track_index: np.ndarray,
    tracks: pd.DataFrame | None = None,
    *,
    model: str = "",
    layer: int | Sequence[int] | None = None,
) -> pd.DataFrame:
    """Summary of each track's embedding values, over its segments and dimensions.

    Parameters
    ----------
    segments : ``(N, n_layers, dim)`` segment embeddings (``load_many(..., reduce=None)``).
    track_index : ``(N,)`` int, the row of ``tracks`` each segment belongs to.
    tracks : one row per track (``track_id``, optional ``label``); ``None`` numbers them.
    model : name written into the ``model`` column (e.g. ``"MERT-v1-95M"``).
    layer : one layer, a list of layers, or ``None`` for every layer (one row per layer).

    Returns
    -------
    DataFrame with columns ``track_id, label, model, layer, n_segments, dim, mean, std, min,
    max, range``: one row per (track, layer), tracks in ``tracks`` order. ``std`` is over all
    ``n_segments x dim`` values of the track at that layer (ddof=0).
    """
    segments = np.asarray(segments)
    track_index = np.asarray(track_index)
    if segments.ndim != 3 or len(segments) == 0:
        raise ValueError(f"segments must be a non-empty (N, n_layers, dim) array, "
                         f"got {segments.shape}")
    if track_index.shape != (len(segments),):
        raise ValueError(f"track_index must have shape ({len(segments)},), "
                         f"got {track_index.shape}")
    n_tracks = len(tracks) if tracks is not None else int(track_index.max()) + 1
    if len(track_index) and (track_index.min() < 0 or track_index.max() >= n_tracks):
        raise ValueError(f"track_index holds values outside 0..{n_tracks - 1}")
    info = _track_table(tracks, n_tracks)
    layers = _layer_list(segments.shape[1], layer)
    counts = np.bincount(track_index, minlength=n_tracks)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(f"{len(empty)} track(s) have no segments, e.g. "
                         f"{info['track_id'].iloc[empty[0]]!r}; drop them from tracks")
    order = np.argsort(track_index, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    dim = segments.shape[2]
    rows = []
    for t in range(n_tracks):
        idx = order[starts[t]:starts[t] + counts[t]]
        block = segments[idx][:, layers].astype(np.float64)  # (n_seg, n_sel, dim)
        mean = block.mean(axis=(0, 2))
        std = block.std(axis=(0, 2))
        lo = block.min(axis=(0, 2))
        hi = block.max(axis=(0, 2))
        for j, k in enumerate(layers):
            rows.append((info["track_id"].iloc[t], info["label"].iloc[t], model, k,
                         int(counts[t]), dim, mean[j], std[j], lo[j], hi[j], hi[j] - lo[j]))
    return pd.DataFrame(rows, columns=TRACK_STATS_COLUMNS)


# -- per dimension -----------------------------------------------------------------------
def dim_stats(X: np.ndarray, *, layer: int | None = None) -> pd.DataFrame:
    """Statistics of each embedding dimension across tracks.

    Parameters
    ----------
    X : ``(n_tracks, n_layers, dim)`` or ``(n_tracks, dim)`` track-level embeddings.
    layer : which layer (needed when there are several).

    Returns
    -------
    DataFrame, one row per dimension in index order: ``dim, mean, std, min, max,
    std_rank`` (``std_rank`` 1 = the dimension varying most across tracks).
    """
    Z = _select_layer(X, layer)
    std = Z.std(axis=0)
    rank = np.empty(len(std), dtype=int)
    rank[np.argsort(-std, kind="stable")] = np.arange(1, len(std) + 1)
    return pd.DataFrame({"dim": np.arange(Z.shape[1]), "mean": Z.mean(axis=0), "std": std,
                         "min": Z.min(axis=0), "max": Z.max(axis=0), "std_rank": rank})


def top_variance_dims(X: np.ndarray, *, layer: int | None = None, k: int = 10) -> pd.DataFrame:
    """The ``k`` dimensions whose values vary most across tracks (rows of :func:`dim_stats`,
    largest ``std`` first)."""
    return dim_stats(X, layer=layer).nsmallest(k, "std_rank").reset_index(drop=True)


# -- between tracks ----------------------------------------------------------------------
def cosine_similarity_matrix(
    X: np.ndarray, tracks: pd.DataFrame | None = None, *, layer: int | None = None
) -> pd.DataFrame:
    """Cosine similarity between the track-mean embeddings of every pair of tracks.

    Returns a square DataFrame indexed (rows and columns) by ``track_id``, values in
    [-1, 1]. A track whose embedding is all zeros has similarity 0 to every track.
    """
    from sklearn.metrics.pairwise import cosine_similarity

    Z = _select_layer(X, layer)
    info = _track_table(tracks, len(Z))
    ids = pd.Index(info["track_id"], name="track_id")
    if ids.has_duplicates:
        raise ValueError(f"track_id values repeat (e.g. {ids[ids.duplicated()][0]!r}); "
                         f"each track must appear once")
    sim = np.clip(cosine_similarity(Z), -1.0, 1.0)
    return pd.DataFrame(sim, index=ids, columns=ids.copy())


# -- 2-D projections -----------------------------------------------------------------------
def project_2d(
    X: np.ndarray,
    tracks: pd.DataFrame | None = None,
    *,
    method: str = "pca",
    layer: int | None = None,
    seed: int = 0,
    perplexity: float | None = None,
    metric: str = "cosine",
    standardize: bool = False,
) -> pd.DataFrame:
    """Project track embeddings to 2-D with PCA or t-SNE.

    Parameters
    ----------
    X : ``(n_tracks, n_layers, dim)`` or ``(n_tracks, dim)``.
    tracks : ``track_id`` (and ``label``) per row of ``X``.
    method : ``"pca"`` or ``"tsne"``.
    layer : which layer (needed when there are several).
    seed : random seed (t-SNE initialisation and optimisation; PCA's solver).
    perplexity : t-SNE perplexity; ``None`` adapts it to small collections:
        ``min(30, max(1, (n_tracks - 1) / 3))``, always below ``n_tracks``.
    metric : t-SNE distance (``"cosine"`` default, or ``"euclidean"``). t-SNE is exact below
        200 tracks and Barnes-Hut above (its OpenMP threads crawl on an oversubscribed CPU:
        set ``OMP_NUM_THREADS`` there).
    standardize : z-score each dimension first (for PCA, so no dimension dominates by scale).

    Returns
    -------
    DataFrame ``track_id, label, x, y, method`` (``method`` is the one actually used).
    Fallbacks, each explained in ``df.attrs["note"]`` and by a ``UserWarning``:
    t-SNE with fewer than 4 tracks falls back to PCA; with 1 track, or data of rank 0, the
    points sit at the origin; with only one usable component ``y`` is 0.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    Z = _select_layer(X, layer)
    info = _track_table(tracks, len(Z))
    n = len(Z)
    if n == 0:
        raise ValueError("no tracks to project")
    notes = []
    if standardize:
        sd = Z.std(axis=0)
        Z = (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    used = method
    if method == "tsne" and n < 4:
        notes.append(f"t-SNE needs at least 4 tracks (got {n}); PCA used instead")
        used = "pca"
    xy = np.zeros((n, 2))
    if used == "tsne":
        if perplexity is None:
            perplexity = min(30.0, max(1.0, (n - 1) / 3))
        if not 0 < perplexity < n:
            raise ValueError(f"perplexity must be in (0, n_tracks={n}), not {perplexity}")
        tsne = TSNE(n_components=2, perplexity=perplexity, metric=metric, init="pca",
                    random_state=seed, method="exact" if n < 200 else "barnes_hut")
        # one OpenMP thread: with two on a busy machine t-SNE of 250 points took 38 s
        # instead of 0.9 s (threads spin waiting for each other)
        with threadpool_limits(limits=1):
            xy = tsne.fit_transform(Z)
        notes.append(f"t-SNE, perplexity {perplexity:.3g}, {metric} distance, seed {seed}")
    else:
        centred = Z - Z.mean(axis=0)
        rank = 0 if n < 2 else int(np.linalg.matrix_rank(centred))
        n_comp = min(2, rank)
        if n_comp == 0:
            notes.append(f"{n} track(s) with no spread: every point drawn at the origin")
        else:
            pca = PCA(n_components=n_comp, random_state=seed)
            xy[:, :n_comp] = pca.fit_transform(Z)
            # PCA's sign is arbitrary: fix it so the largest |loading| is positive
            for c in range(n_comp):
                if pca.components_[c][np.argmax(np.abs(pca.components_[c]))] < 0:
                    xy[:, c] *= -1
            var = ", ".join(f"{v:.0%}" for v in pca.explained_variance_ratio_)
            notes.append(f"PCA, explained variance {var}")
            if n_comp == 1:
                notes.append("only one component has any variance: y is 0")
    note = "; ".join(notes)
    if any(w in note for w in ("instead", "origin", "y is 0")):
        warnings.warn(f"project_2d: {note}", UserWarning, stacklevel=2)
    df = pd.DataFrame({"track_id": info["track_id"], "label": info["label"],
                       "x": xy[:, 0], "y": xy[:, 1], "method": used})
    df.attrs["note"] = note
    return df


# -- class separability ------------------------------------------------------------------
def separability(
    X: np.ndarray,
    labels: Sequence | np.ndarray | pd.Series,
    *,
    layer: int | None = None,
    metric: str = "cosine",
) -> dict:
    """How well the labels separate in embedding space (no training involved).

    Parameters
    ----------
    X : ``(n_tracks, n_layers, dim)`` or ``(n_tracks, dim)`` track-level embeddings.
    labels : ``(n_tracks,)`` class of each track; missing labels (None/NaN) are left out.
    layer : which layer (needed when there are several).
    metric : distance for both measures (``"cosine"`` default, or ``"euclidean"``).

    Returns
    -------
    dict with ``silhouette`` (sklearn's mean silhouette, in [-1, 1]: near 1 = tight,
    well-separated classes, near 0 = no structure), ``intra`` (mean distance over all pairs of
    tracks with the same label), ``inter`` (mean over all pairs with different labels),
    ``ratio = intra / inter`` (< 1: classes tighter than the gaps between them, ~1: none),
    ``n_tracks``, ``n_classes`` and ``note`` (empty, or why a value is NaN or partial).
    Edge cases give NaN plus a reason, never an exception: one class (no between-class pairs,
    no silhouette), every class a single track (no within-class pairs, no silhouette).
    Singleton classes among others add no within-class pairs and count as silhouette 0.
    """
    from sklearn.metrics import pairwise_distances, silhouette_score

    Z = _select_layer(X, layer)
    y = pd.Series(np.asarray(labels, dtype=object))
    if len(y) != len(Z):
        raise ValueError(f"{len(y)} labels for {len(Z)} tracks")
    notes = []
    keep = y.notna().to_numpy()
    if not keep.all():
        notes.append(f"{(~keep).sum()} unlabelled track(s) left out")
    Z, y = Z[keep], y[keep].astype(str).to_numpy()
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    n, k = len(y), len(classes)
    out = {"silhouette": np.nan, "ratio": np.nan, "intra": np.nan, "inter": np.nan,
           "n_tracks": n, "n_classes": k, "note": ""}
    if n < 2:
        notes.append(f"{n} labelled track(s): nothing to compare")
        out["note"] = "; ".join(notes)
        return out
    D = np.clip(pairwise_distances(Z, metric=metric), 0.0, None)  # rounding can give -1e-16
    iu = np.triu_indices(n, k=1)
    same = codes[iu[0]] == codes[iu[1]]
    d = D[iu]
    if same.any():
        out["intra"] = float(d[same].mean())
    if (~same).any():
        out["inter"] = float(d[~same].mean())
    if k < 2:
        notes.append(f"only one class ({classes[0]!r}): no between-class pairs, "
                     f"silhouette and ratio undefined")
    elif k == n:
        notes.append("every class has a single track: no within-class pairs, "
                     "silhouette and ratio undefined")
    else:
        np.fill_diagonal(D, 0.0)
        out["silhouette"] = float(silhouette_score(D, codes, metric="precomputed"))
        if out["inter"] > 0:
            out["ratio"] = out["intra"] / out["inter"]
        else:
            notes.append("all between-class distances are 0: ratio undefined")
        singles = classes[counts == 1]
        if len(singles):
            notes.append(f"{len(singles)} single-track class(es) ({', '.join(singles[:5])}"
                         f"{', ...' if len(singles) > 5 else ''}) add no within-class pairs "
                         f"and count as silhouette 0")
    out["note"] = "; ".join(notes)
    return out


def layer_separability(
    X: np.ndarray, labels: Sequence | np.ndarray | pd.Series, *, metric: str = "cosine"
) -> pd.DataFrame:
    """:func:`separability` for every layer of ``X`` ``(n_tracks, n_layers, dim)``.

    Returns a DataFrame ``layer, silhouette, ratio, intra, inter, n_tracks, n_classes, note``,
    one row per layer.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"expected X of shape (n_tracks, n_layers, dim), got {X.shape}")
    rows = [{"layer": k, **separability(X[:, k], labels, metric=metric)}
            for k in range(X.shape[1])]
    return pd.DataFrame(rows, columns=["layer", "silhouette", "ratio", "intra", "inter",
                                       "n_tracks", "n_classes", "note"])
