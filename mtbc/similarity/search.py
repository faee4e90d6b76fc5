"""Search a collection with its own group left out, and walk it into playlists.

A query's *group* is every track linked to it by :func:`mtbc.data.splits.track_groups`: the
same recording (content hash, track id), its near duplicates (``duplicate_group``) and its
artist or ``group``. Those tracks are never results by default: a re-encoded copy of the
query is not a discovery. :func:`neighbours` asks the index for ``k`` plus the size of the
query's group, so filtering the group out still leaves ``k`` results (exact index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtbc.data.splits import track_groups
from mtbc.similarity.index import VectorIndex, normalise

#: How a result shown with ``include_duplicates`` relates to the query.
RELATIONS = ("same track", "near duplicate", "same group")


@dataclass(frozen=True)
class Neighbours:
    """Ranked results of one query: row ``positions`` into the tracks table, cosine
    ``scores``, and for each result its relation to the query (``""`` or one of
    :data:`RELATIONS`; only non-empty when the group was not left out)."""

    positions: np.ndarray
    scores: np.ndarray
    relations: tuple[str, ...]


def relation(tracks: pd.DataFrame, query: int, other: int) -> str:
    """How row ``other`` relates to row ``query`` of ``tracks``: ``""`` (unrelated) or one
    of :data:`RELATIONS`."""
    a, b = tracks.iloc[query], tracks.iloc[other]
    if query == other or (pd.notna(a.get("content_hash")) and a.get("content_hash")
                          == b.get("content_hash")):
        return "same track"
    dup = "duplicate_group"
    if dup in tracks and pd.notna(a[dup]) and a[dup] == b[dup]:
        return "near duplicate"
    return "same group"


@dataclass(frozen=True)
class KeepGroup:
    """Keep the query's group and excluded rows among the results, each flagged with its
    relation to the query (:attr:`Neighbours.relations`).

    Attributes
    ----------
    tracks : pandas.DataFrame, optional
        The indexed tracks table, to name each relation (:func:`relation`).
    query_row : int, optional
        The query's row in ``tracks``. Without ``tracks`` and ``query_row`` every kept row
        of the group is flagged ``"near duplicate"``.
    """

    tracks: pd.DataFrame | None = None
    query_row: int | None = None


def neighbours(index: VectorIndex, query: np.ndarray, *, k: int, groups: np.ndarray,
               query_group: int | None = None, exclude: Sequence[int] = (),
               keep_group: KeepGroup | None = None) -> Neighbours:
    """The ``k`` nearest tracks to one query vector, its group left out.

    Parameters
    ----------
    index : VectorIndex
        Built over the rows of the tracks table, in order.
    query : numpy.ndarray of shape (dim,)
        The query's vector, in the index's space (after any whitening).
    k : int
        Results wanted.
    groups : numpy.ndarray of shape (n_tracks,)
        Group code of every indexed row (:func:`mtbc.data.splits.track_groups`).
    query_group : int, optional
        The query's group code (``None``: a song outside the collection).
    exclude : sequence of int
        More rows to leave out (e.g. near duplicates of an outside song).
    keep_group : KeepGroup, optional
        Keep the group and ``exclude`` rows, flagged in :attr:`Neighbours.relations`
        (``None``: leave them out).

    Returns
    -------
    Neighbours
    """
    include_group = keep_group is not None
    tracks = keep_group.tracks if keep_group is not None else None
    query_row = keep_group.query_row if keep_group is not None else None
    groups = np.asarray(groups)
    out_of = set(map(int, exclude))
    if query_group is not None:
        out_of |= set(np.flatnonzero(groups == query_group).tolist())
    fetch = min(index.n, k + len(out_of))
    scores, pos = index.search(np.asarray(query)[None, :], fetch)
    scores, pos = scores[0], pos[0]
    keep = pos >= 0
    if not include_group:
        keep &= ~np.isin(pos, list(out_of))
    pos, scores = pos[keep][:k], scores[keep][:k]
    rel = []
    for p in pos:
        if int(p) not in out_of:
            rel.append("")
        elif tracks is not None and query_row is not None:
            rel.append(relation(tracks, query_row, int(p)))
        else:
            rel.append("near duplicate")
    return Neighbours(pos.astype(int), scores.astype(float), tuple(rel))


def group_codes_of(tracks: pd.DataFrame) -> np.ndarray:
    """Group code per row (same recording, near duplicates, artist or ``group`` linked)."""
    return track_groups(tracks.reset_index(drop=True))


def playlist_walk(vectors: np.ndarray, seed: int | np.ndarray, *, length: int,
                  groups: np.ndarray, seed_group: int | None = None) -> list[int]:
    """A walk of nearest neighbours: each next track is the one nearest to the current
    track among tracks not yet played whose group has not been played.

    Parameters
    ----------
    vectors : numpy.ndarray of shape (n_tracks, dim)
        The collection, in the space searched.
    seed : int or numpy.ndarray of shape (dim,)
        A row of ``vectors`` (it opens the playlist) or the vector of a song outside it.
    length : int
        Tracks in the playlist (the seed row counts; an outside seed does not).
    groups : numpy.ndarray of shape (n_tracks,)
        Group code per row; no two playlist tracks share one.
    seed_group : int, optional
        Group of an outside seed (e.g. its near duplicates' group), left out.

    Returns
    -------
    list of int
        Row positions, shorter than ``length`` only when the groups run out.

    Examples
    --------
    >>> playlist_walk(np.eye(3) + 0.1, 0, length=3, groups=np.arange(3))
    [0, 1, 2]
    """
    V = normalise(vectors)
    groups = np.asarray(groups)
    used_groups: set = set()
    order: list[int] = []
    if isinstance(seed, int | np.integer):
        order.append(int(seed))
        used_groups.add(groups[int(seed)])
        current = V[int(seed)]
    else:
        current = normalise(np.asarray(seed)[None, :])[0]
        if seed_group is not None:
            used_groups.add(seed_group)
    while len(order) < length:
        free = ~np.isin(groups, list(used_groups))
        if not free.any():
            break
        sims = np.where(free, V @ current, -np.inf)
        nxt = int(np.argmax(sims))
        order.append(nxt)
        used_groups.add(groups[nxt])
        current = V[nxt]
    return order


def playlist_path(vectors: np.ndarray, start: int | np.ndarray, end: int, *, length: int,
                  groups: np.ndarray, start_group: int | None = None) -> list[int]:
    """A smooth path from ``start`` to row ``end``: the tracks nearest to evenly spaced
    points on the great circle between them, no repeats and no two tracks of one group.

    Parameters
    ----------
    vectors : numpy.ndarray of shape (n_tracks, dim)
    start : int or numpy.ndarray of shape (dim,)
        First row, or the vector of a song outside the collection (not in the output).
    end : int
        Last row of the playlist.
    length : int
        Tracks in the playlist, ``end`` (and a row ``start``) included; at least 2.
    groups : numpy.ndarray of shape (n_tracks,)
    start_group : int, optional
        Group of an outside start, left out.

    Returns
    -------
    list of int
        Row positions from start to end (shorter only when the groups run out).
    """
    if length < 2:
        raise ValueError(f"a path needs a length of at least 2, got {length}")
    V = normalise(vectors)
    groups = np.asarray(groups)
    inside = isinstance(start, int | np.integer)
    a = V[int(start)] if inside else normalise(np.asarray(start)[None, :])[0]
    b = V[int(end)]
    used = {groups[int(end)]}
    order: list[int] = []
    if inside:
        if groups[int(start)] == groups[int(end)]:
            raise ValueError("the start and the end of the path are of one group (same "
                             "recording, near duplicate or artist); choose another end")
        order.append(int(start))
        used.add(groups[int(start)])
    elif start_group is not None:
        used.add(start_group)
    n_mid = length - len(order) - 1
    omega = np.arccos(np.clip(float(a @ b), -1.0, 1.0))
    for t in np.linspace(0, 1, n_mid + 2)[1:-1]:
        if omega < 1e-6:
            point = a
        else:  # spherical interpolation between a and b
            point = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
        free = ~np.isin(groups, list(used))
        if not free.any():
            break
        nxt = int(np.argmax(np.where(free, V @ point, -np.inf)))
        order.append(nxt)
        used.add(groups[nxt])
    order.append(int(end))
    return order
