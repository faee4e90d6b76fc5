"""Leakage-free splits of a tracks table (``docs/protocol.md``).

Nothing that could carry one recording's content may sit on both sides of a split: not two
segments of one track, not two copies of one file (same ``content_hash``), not two tracks of
one artist (same ``group``). The tracks table's ``group`` already merges artists and
duplicates, but the functions here do not rely on it: :func:`track_groups` links rows that
share a ``group``, a ``content_hash``, a ``track_id`` or a ``duplicate_group`` (near duplicates,
:mod:`mtbc.data.duplicates`) and splits keep every linked set together; :func:`check_disjoint` verifies each split and raises :class:`LeakageError`.

Two protocols, chosen by the table (:func:`outer_folds`):

- a predefined split (the ``split`` column holds ``train``/``valid``/``test``, as for GTZAN's
  fault-filtered split): fit on train, choose layer and hyperparameters on valid (or on grouped
  inner CV of train when there is no valid), report test -- MARBLE's protocol;
- otherwise stratified group k-fold (outer) with grouped inner CV inside each training part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

#: Columns whose equal values tie tracks together, in the order they are documented.
GROUP_KEYS = ("group", "content_hash", "track_id", "duplicate_group")
SPLIT_NAMES = ("train", "valid", "test")


class LeakageError(ValueError):
    """Tracks that share a group, content hash or track id sit on both sides of a split."""


@dataclass(frozen=True)
class Fold:
    """One outer fold as row positions into the tracks table.

    ``valid`` is the predefined validation split (GTZAN) or ``None`` (inner grouped CV of
    ``train`` chooses instead).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    valid: np.ndarray | None = None


def _present(tracks: pd.DataFrame, col: str) -> bool:
    return col in tracks.columns and tracks[col].notna().any()


def track_groups(tracks: pd.DataFrame) -> np.ndarray:
    """Group id per row: rows sharing a ``group``, ``content_hash``, ``track_id`` or
    ``duplicate_group`` (transitively).

    Missing values link nothing. Without any of those columns every row is its own group.
    Returns ``(n_tracks,)`` int.
    """
    n = len(tracks)
    rows, cols = [np.arange(n)], [np.arange(n)]
    for key in GROUP_KEYS:
        if not _present(tracks, key):
            continue
        values = tracks[key].reset_index(drop=True)
        codes, _ = pd.factorize(values.astype(str).where(values.notna(), None))
        known = np.flatnonzero(codes >= 0)
        if len(known) == 0:
            continue
        # link every row to the first row holding the same value
        _, first_pos, inverse = np.unique(codes[known], return_index=True, return_inverse=True)
        rows.append(known)
        cols.append(known[first_pos][inverse])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def check_disjoint(tracks: pd.DataFrame, *parts: np.ndarray, names: tuple[str, ...] = ()) -> None:
    """Raise :class:`LeakageError` if two parts (row positions) share a group, hash or track id."""
    names = names or tuple(f"part {i}" for i in range(len(parts)))
    groups = track_groups(tracks)
    keys = {k: tracks[k].to_numpy() for k in GROUP_KEYS if _present(tracks, k)}
    keys["linked group"] = groups
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            for key, values in keys.items():
                a = values[np.asarray(parts[i], dtype=int)]
                b = values[np.asarray(parts[j], dtype=int)]
                shared = set(pd.unique(a[pd.notna(a)])) & set(pd.unique(b[pd.notna(b)]))
                if shared:
                    example = sorted(map(str, shared))[:3]
                    raise LeakageError(
                        f"{len(shared)} {key} value(s) sit in both {names[i]} and {names[j]} "
                        f"(e.g. {', '.join(example)}); fix the split column or drop the "
                        f"duplicates so that no {key} spans two splits")


def fold_count(labels: pd.Series, n_splits: int) -> int:
    """Folds a stratified k-fold can make: ``n_splits`` capped by the smallest label's track
    count, so every fold's test part can hold each label (< 2: cross-validation impossible)."""
    counts = pd.Series(labels).dropna().value_counts()
    return min(int(n_splits), int(counts.min())) if len(counts) else 0


def has_predefined_split(tracks: pd.DataFrame) -> bool:
    """True when the labelled tracks carry a ``split`` with at least train and test."""
    if not _present(tracks, "split"):
        return False
    values = set(tracks.loc[tracks["label"].notna(), "split"].dropna())
    return {"train", "test"} <= values


def _stratified_group_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int,
                            what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"{what}: {n_groups} independent groups cannot make {n_splits} folds; "
                         f"lower n_splits or add tracks from more artists")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class has only N members": fine, the folds stay grouped.
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        return list(cv.split(np.zeros(len(y)), y, groups))


#: Public name of the grouped, stratified k-fold used here (the tagging protocol reuses it).
stratified_group_folds = _stratified_group_folds


def outer_folds(tracks: pd.DataFrame, *, n_splits: int = 5, seed: int = 0
                ) -> tuple[list[Fold], str]:
    """The evaluation folds of a tracks table and a one-line description of them.

    Only labelled rows (``label`` not missing) are used; positions index ``tracks`` rows.
    Predefined split: one fold ``"test"`` (train, valid or None, test). Otherwise
    ``n_splits`` stratified group folds ``"fold 0"``..., shuffled with ``seed``.
    Every fold is checked with :func:`check_disjoint`.
    """
    labelled = np.flatnonzero(tracks["label"].notna().to_numpy())
    if len(labelled) == 0:
        raise ValueError("no labelled tracks: the label column is empty")
    if has_predefined_split(tracks):
        split = tracks["split"].to_numpy()
        parts = {s: labelled[split[labelled] == s] for s in SPLIT_NAMES}
        unknown = set(pd.unique(split[labelled])) - set(SPLIT_NAMES) - {None}
        unknown = {u for u in unknown if pd.notna(u)}
        if unknown:
            raise ValueError(f"split column has values {sorted(unknown)}; "
                             f"use train/valid/test or leave it empty for k-fold CV")
        valid = parts["valid"] if len(parts["valid"]) else None
        present = [p for p in (parts["train"], valid, parts["test"]) if p is not None]
        names = ("train", "valid", "test") if valid is not None else ("train", "test")
        check_disjoint(tracks, *present, names=names)
        n_out = len(labelled) - sum(len(p) for p in present)
        desc = (f"predefined split: train {len(parts['train'])} / valid {len(parts['valid'])} / "
                f"test {len(parts['test'])} tracks"
                + (f" ({n_out} labelled tracks without a split left out)" if n_out else ""))
        return [Fold("test", parts["train"], parts["test"], valid)], desc
    groups = track_groups(tracks)[labelled]
    y = tracks["label"].to_numpy()[labelled].astype(str)
    folds = []
    for k, (tr, te) in enumerate(_stratified_group_folds(y, groups, n_splits, seed,
                                                          "outer cross-validation")):
        fold = Fold(f"fold {k}", labelled[tr], labelled[te])
        check_disjoint(tracks, fold.train, fold.test, names=("train", "test"))
        folds.append(fold)
    desc = (f"stratified group {n_splits}-fold CV (seed {seed}): {len(labelled)} tracks in "
            f"{len(np.unique(groups))} groups")
    return folds, desc


def inner_splits(tracks: pd.DataFrame, rows: np.ndarray, *, n_splits: int = 3, seed: int = 0
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified inner CV over ``rows`` (positions into ``tracks``), checked disjoint.

    Small collections: when the smallest label (or the number of groups) among ``rows`` is
    below ``n_splits``, fewer folds are used (at least 2) with a :class:`UserWarning` saying
    so; with fewer than 2 tracks in every label a ``ValueError`` says what to add.
    """
    rows = np.asarray(rows)
    groups = track_groups(tracks)[rows]
    y = tracks["label"].to_numpy()[rows].astype(str)
    _, counts = np.unique(y, return_counts=True)
    usable = min(n_splits, int(counts.max()) if len(counts) else 0, len(np.unique(groups)))
    if usable < 2:
        raise ValueError(f"inner cross-validation needs at least 2 tracks (from 2 groups) in "
                         f"some label of the training part, found {counts.tolist()} per label; "
                         f"add tracks or lower n_splits")
    if usable < n_splits or counts.min() < n_splits:
        usable = max(2, min(usable, int(counts.min())))
        if usable < n_splits:
            warnings.warn(f"inner cross-validation: {usable} folds instead of {n_splits} "
                          f"(the smallest label has {int(counts.min())} tracks in this "
                          f"training part)", UserWarning, stacklevel=2)
        n_splits = usable
    out = []
    for tr, va in _stratified_group_folds(y, groups, n_splits, seed, "inner cross-validation"):
        check_disjoint(tracks, rows[tr], rows[va], names=("inner train", "inner validation"))
        out.append((rows[tr], rows[va]))
    return out
