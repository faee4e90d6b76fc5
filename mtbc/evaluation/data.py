"""Segments grouped by track, layer views, and the checks every task's inputs pass.

Features are segments ``(N_seg, n_layers, dim)`` with a ``track_index`` ``(N_seg,)`` into the
tracks table (what ``EmbeddingStore.load_many(..., reduce=None)`` returns). :class:`Design`
finds a set of tracks' segments; a *view* ``view(candidate, segments) -> (n, dim)`` gives
their features for one candidate (a layer, the mean of layers, or one layer per model).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from threadpoolctl import threadpool_limits

from mtbc.evaluation.estimators import check_layer, take_layer

#: ``view(candidate, segment_indices) -> (n_segments, dim)`` features of one candidate.
View = Callable[[Any, np.ndarray], np.ndarray]


class Design:
    """Segments grouped by track: which rows of the features belong to which track.

    Parameters
    ----------
    track_index : ``(N_seg,)`` track row of each segment.
    n_tracks : rows in the tracks table.
    """

    def __init__(self, track_index: np.ndarray, n_tracks: int):
        self.seg_track = np.asarray(track_index, dtype=np.int64)
        self.order = np.argsort(self.seg_track, kind="stable")
        self.counts = np.bincount(self.seg_track, minlength=n_tracks)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def segments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment indices of ``rows`` (grouped by track, in ``rows`` order) and their counts."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.counts[rows]
        local = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.repeat(self.starts[rows] - local, counts) + np.arange(counts.sum())
        return self.order[pos], counts

    @staticmethod
    def track_mean(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Mean over each track's consecutive segment rows: ``(n_seg, K) -> (n_tracks, K)``."""
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.add.reduceat(scores, offsets, axis=0) / counts[:, None]


def check_features(features, track_index, tracks: pd.DataFrame
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Segment features as ``(N, L, D)`` float and their ``track_index``, or ``ValueError``."""
    features = np.asarray(features)
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise ValueError(f"features must be (n_segments, n_layers, dim), got {features.shape}")
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float32)
    track_index = np.asarray(track_index)
    if track_index.shape != (len(features),):
        raise ValueError(f"track_index must have one entry per segment ({len(features)}), "
                         f"got shape {track_index.shape}")
    if len(track_index) and (track_index.min() < 0 or track_index.max() >= len(tracks)):
        raise ValueError("track_index holds positions outside the tracks table")
    return features, track_index


def check_covered(track_index: np.ndarray, tracks: pd.DataFrame, used: np.ndarray,
                  what: str) -> None:
    """``ValueError`` when a track that takes part (``used``) has no segment."""
    counts = np.bincount(np.asarray(track_index, dtype=np.int64), minlength=len(tracks))
    missing = np.flatnonzero(used & (counts == 0))
    if len(missing):
        ids = track_ids(tracks)[missing[:3]]
        raise ValueError(f"{len(missing)} {what} track(s) have no segments in features "
                         f"(e.g. {', '.join(map(str, ids))}); extract them or drop them "
                         f"from the tracks table")


def track_ids(tracks: pd.DataFrame) -> np.ndarray:
    """``track_id`` as str (the index when there is no such column)."""
    if "track_id" in tracks.columns:
        return tracks["track_id"].astype(str).to_numpy()
    return tracks.index.astype(str).to_numpy()


def track_means(features: np.ndarray, track_index: np.ndarray, n_tracks: int) -> np.ndarray:
    """Mean of each track's segments: ``(N_seg, L, D) -> (n_tracks, L, D)``; NaN where none.

    Example
    -------
    >>> import numpy as np
    >>> track_means(np.ones((3, 1, 2)), np.array([0, 0, 2]), 3)[:, 0, 0]
    array([ 1., nan,  1.], dtype=float32)
    """
    features = np.asarray(features)
    if features.ndim == 2:
        features = features[:, None, :]
    track_index = np.asarray(track_index, dtype=np.int64)
    if np.any(np.diff(track_index) < 0):  # load_many gives sorted segments; sort otherwise
        order = np.argsort(track_index, kind="stable")
        features, track_index = features[order], track_index[order]
    out = np.full((n_tracks,) + features.shape[1:], np.nan, dtype=np.float32)
    if len(track_index) == 0:
        return out
    present, counts = np.unique(track_index, return_counts=True)
    # one sparse (tracks x segments) averaging matrix: a single pass over the features
    # (np.add.reduceat along axis 0 of a 3-D array is ~100x slower)
    weights = (1.0 / counts[np.searchsorted(present, track_index)]).astype(np.float32)
    average = scipy.sparse.csr_matrix(
        (weights, (np.searchsorted(present, track_index), np.arange(len(track_index)))),
        shape=(len(present), len(track_index)))
    flat = np.ascontiguousarray(features, dtype=np.float32).reshape(len(features), -1)
    out[present] = (average @ flat).reshape((len(present),) + features.shape[1:])
    return out


def layer_view(features: np.ndarray) -> View:
    """The view of ``(N, L, D)`` features: candidate ``i`` is layer ``i``, ``"mean"`` the mean
    of layers (computed once)."""
    cache: dict[str, np.ndarray] = {}

    def view(layer, segs):
        if isinstance(layer, str):
            if "mean" not in cache:
                cache["mean"] = take_layer(features, "mean")
            return cache["mean"][segs]
        return features[segs, layer]

    return view


def candidate_layers(layer, n_layers: int) -> list:
    """``"select"``: every layer and (with several) their mean; else the one layer asked for."""
    if isinstance(layer, str) and layer == "select":
        return list(range(n_layers)) + (["mean"] if n_layers > 1 else [])
    check_layer(layer, n_layers)
    return [layer if isinstance(layer, str) else int(layer) % n_layers]


@contextmanager
def limit_threads(n: int | None, *, torch_too: bool = False):
    """Limit BLAS/OpenMP (and torch's intra-op) threads to ``n`` inside the block (None: as is).

    Small solves are many and fast single-threaded; oversubscribed BLAS threads made the same
    fits up to 50x slower on a loaded machine.
    """
    if n is None:
        yield
        return
    torch = None
    if torch_too or "torch" in sys.modules:
        import torch  # optional heavy dependency: only the MLP probes need torch
    old = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)
