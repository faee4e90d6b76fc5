"""Retrieval evaluation of one embedding: a system with fit / choose / score.

:class:`RetrievalSystem` follows the evaluation engine's *system* contract (fit on training
tracks, choose on validation queries, score test queries), so it can join the engine's Task x
System x folds loop unchanged:

- ``fit(X, tracks, train)``: remembers the training rows; whitening, when a candidate uses it,
  is fitted on training tracks only.
- ``choose(splits)``: for every candidate (layer, whitening), the queries of each inner
  validation part search the training tracks (their own group left out); the candidate with
  the best mean AP@10 over those validation queries is kept. Test queries are never read.
- ``score(test)``: every test query searches every other labelled track (its own group left
  out: same recording, near duplicates, artist) in the chosen space, and one row per query
  gives its group and P@1/5/10, AP@10, nDCG@10 -- so intervals and paired tests resample
  groups of queries.

Relevance is *same label*; with tags (``tags`` column) nDCG uses Jaccard gains of tag sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtbc.data.splits import track_groups
from mtbc.data.tags import has_tags
from mtbc.similarity.index import IndexOptions, Whitener, build_index, normalise
from mtbc.similarity.metrics import METRIC_NAMES, jaccard, query_metrics

K = 10  # results per query scored (the largest cut-off)


@dataclass(frozen=True)
class Candidate:
    """One retrieval space: a ``layer`` of the embedding (an int) and whether it is whitened."""

    layer: int
    whiten: bool

    def describe(self) -> str:
        return f"layer {self.layer}" + (", whitened" if self.whiten else "")


def _gain_matrix(tracks: pd.DataFrame) -> np.ndarray | None:
    if not has_tags(tracks):
        return None
    sets = [set(t) if isinstance(t, tuple | list) else set() for t in tracks["tags"]]
    n = len(sets)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            out[i, j] = out[j, i] = jaccard(sets[i], sets[j])
    return out


def score_queries(vectors: np.ndarray, tracks: pd.DataFrame, queries: Sequence[int],
                  candidates: Sequence[int], *, groups: np.ndarray | None = None,
                  gains: np.ndarray | None = None,
                  options: IndexOptions | None = None) -> pd.DataFrame:
    """Per-query metrics of ``queries`` searching ``candidates`` (row positions of ``tracks``).

    Parameters
    ----------
    vectors : numpy.ndarray of shape (n_tracks, dim)
        The space searched (already whitened if so chosen).
    tracks : pandas.DataFrame
        ``track_id`` and ``label`` per row (``tags`` for graded gains).
    queries, candidates : sequence of int
        Rows that query and rows that can be returned. A query's own group (``groups``) is
        never a result nor counted as relevant.
    groups : numpy.ndarray of shape (n_tracks,), optional
        Group codes (default :func:`mtbc.data.splits.track_groups` of ``tracks``).
    gains : numpy.ndarray of shape (n_tracks, n_tracks), optional
        Graded gains for nDCG (e.g. Jaccard of tags); default the 0/1 relevance.
    options : IndexOptions
        Index used for the search (exact by default at these sizes).

    Returns
    -------
    pandas.DataFrame
        One row per query: ``track_id, group, n_candidates, n_relevant, chance`` (share of
        relevant candidates: the expected P@k of a random ranking), then :data:`METRIC_NAMES`.
    """
    queries, candidates = np.asarray(queries, int), np.asarray(candidates, int)
    groups = track_groups(tracks) if groups is None else np.asarray(groups)
    labels = tracks["label"].astype(str).to_numpy()
    index = build_index(vectors[candidates], options=options)
    cand_groups = groups[candidates]
    _, counts = np.unique(cand_groups, return_counts=True)
    fetch = min(len(candidates), K + int(counts.max()))
    _, found = index.search(vectors[queries], fetch)
    rel_rows, n_rel, n_cand, g_rows, ideal_rows = [], [], [], [], []
    for qi, q in enumerate(queries):
        pos = found[qi][found[qi] >= 0]
        pos = pos[cand_groups[pos] != groups[q]][:K]
        rows = candidates[pos]
        others = candidates[cand_groups != groups[q]]
        same = labels[others] == labels[q]
        rel_rows.append(np.pad((labels[rows] == labels[q]).astype(float), (0, K - len(rows))))
        n_rel.append(int(same.sum()))
        n_cand.append(len(others))
        if gains is not None:
            g_rows.append(np.pad(gains[q, rows], (0, K - len(rows))))
            ideal = np.sort(gains[q, others])[::-1][:K]
            ideal_rows.append(np.pad(ideal, (0, K - len(ideal))))
    metrics = query_metrics(np.array(rel_rows), np.array(n_rel),
                            gains=np.array(g_rows) if gains is not None else None,
                            ideal_gains=np.array(ideal_rows) if gains is not None else None)
    table = pd.DataFrame({"track_id": tracks["track_id"].to_numpy()[queries],
                          "group": groups[queries], "n_candidates": n_cand,
                          "n_relevant": n_rel})
    table["chance"] = table["n_relevant"] / table["n_candidates"].clip(lower=1)
    for name in METRIC_NAMES:
        table[name] = metrics[name]
    return table


class RetrievalSystem:
    """Nearest-neighbour retrieval in one model's embedding space (cosine similarity).

    Parameters
    ----------
    layers : sequence of int, optional
        Candidate layers (``None``: every layer of ``X``).
    whitening : sequence of bool
        Candidate whitening settings (default: without, and with PCA whitening).
    index_options : IndexOptions
        Index used for every search.

    Examples
    --------
    >>> system = RetrievalSystem().fit(X, tracks, fold.train)  # doctest: +SKIP
    >>> system.choose(inner_splits(tracks, fold.train))         # doctest: +SKIP
    >>> per_query = system.score(fold.test)                     # doctest: +SKIP
    """

    def __init__(self, *, layers: Sequence[int] | None = None,
                 whitening: Sequence[bool] = (False, True),
                 index_options: IndexOptions | None = None):
        self.layers = layers
        self.whitening = whitening
        self.index_options = index_options

    def candidates(self) -> list[Candidate]:
        layers = range(self.X_.shape[1]) if self.layers is None else self.layers
        return [Candidate(int(layer), bool(w)) for layer in layers for w in self.whitening]

    def fit(self, X: np.ndarray, tracks: pd.DataFrame, train: Sequence[int]) -> RetrievalSystem:
        """Remember the embedding ``X`` ``(n_tracks, n_layers, dim)`` (track means), the
        ``tracks`` table (``track_id``, ``label``, group columns) and the training rows."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3 or len(X) != len(tracks):
            raise ValueError(f"X must be (n_tracks, n_layers, dim) for {len(tracks)} tracks, "
                             f"got {X.shape}")
        self.X_, self.tracks_ = X, tracks.reset_index(drop=True)
        self.train_ = np.asarray(train, int)
        self.groups_ = track_groups(self.tracks_)
        self.gains_ = _gain_matrix(self.tracks_)
        self.chosen_ = self.candidates()[0]
        self.validation_ = pd.DataFrame()
        return self

    def space(self, candidate: Candidate, fit_rows: Sequence[int]) -> np.ndarray:
        """All tracks' vectors in ``candidate``'s space, whitening fitted on ``fit_rows``."""
        V = self.X_[:, candidate.layer]
        if not candidate.whiten:
            return normalise(V)
        return Whitener().fit(V[np.asarray(fit_rows, int)]).transform(V)

    def choose(self, splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> Candidate:
        """Keep the candidate with the best validation AP@10.

        ``splits``: ``(fit_rows, valid_rows)`` pairs inside the training rows (e.g.
        :func:`mtbc.data.splits.inner_splits`). Whitening is fitted on ``fit_rows``; the
        ``valid_rows`` query all training rows. Ties keep the earlier candidate.
        """
        rows = []
        for cand in self.candidates():
            parts = [score_queries(self.space(cand, fit), self.tracks_, valid, self.train_,
                                   groups=self.groups_, gains=self.gains_,
                                   options=self.index_options)
                     for fit, valid in splits]
            pooled = pd.concat(parts) if parts else pd.DataFrame({"ap@10": []})
            rows.append({"layer": cand.layer, "whiten": cand.whiten,
                         "val_ap@10": float(pooled["ap@10"].mean()),
                         "val_p@5": float(pooled["p@5"].mean()) if len(pooled) else np.nan,
                         "n_valid": len(pooled)})
        self.validation_ = pd.DataFrame(rows)
        if len(self.validation_) and self.validation_["val_ap@10"].notna().any():
            best = int(self.validation_["val_ap@10"].fillna(-1).to_numpy().argmax())
            self.chosen_ = self.candidates()[best]
        return self.chosen_

    def transform(self) -> np.ndarray:
        """Every track in the chosen space (whitening fitted on the training rows)."""
        return self.space(self.chosen_, self.train_)

    def score(self, test: Sequence[int], candidates: Sequence[int] | None = None) -> pd.DataFrame:
        """Per-query metrics of the ``test`` rows searching ``candidates`` (default: every
        row of the tracks table), with the chosen ``layer`` and ``whiten`` recorded."""
        cand = np.arange(len(self.tracks_)) if candidates is None else candidates
        table = score_queries(self.transform(), self.tracks_, test, cand,
                              groups=self.groups_, gains=self.gains_,
                              options=self.index_options)
        return table.assign(layer=self.chosen_.layer, whiten=self.chosen_.whiten)
