"""Multi-label annotations of a tracks table: ``tags`` and ``tags_negative`` (``docs/tagging.md``).

A tagged collection's tracks table has two object columns of tuples of tag names:

- ``tags``: the tags annotated *present* for the track;
- ``tags_negative``: the tags annotated *absent*.

A vocabulary tag in neither is *unknown* for that track: it is masked out of training and of
every metric (OpenMIC-2018 annotates only some instruments per clip). :func:`tag_matrix`
turns the two columns into ``Y`` (1 / 0, NaN where unknown) and a boolean ``mask``.

A CSV manifest's ``tags`` column holds ``;``-separated names. With a ``tags_negative`` column
beside it the negatives are explicit; without one, every vocabulary tag (the union of all
tags in the manifest) that a track does not list is taken as *absent* for that track
(:func:`complete_negatives`). A row whose ``tags`` cell is empty is not annotated: all its
tags are unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

TAG_COLUMNS = ("tags", "tags_negative")
TAG_SEPARATOR = ";"


def parse_tags(value) -> tuple[str, ...]:
    """``"piano; violin"`` (or a list / tuple) -> ``("piano", "violin")``; empty -> ``()``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        items = value.split(TAG_SEPARATOR)
    else:
        items = list(value)
    return tuple(dict.fromkeys(t.strip() for t in map(str, items) if str(t).strip()))


def as_tuples(values: Iterable) -> list[tuple[str, ...]]:
    """Every cell as a tuple of tag names (lists from JSON, strings from CSV, NaN)."""
    return [parse_tags(v) for v in values]


def has_tags(tracks: pd.DataFrame) -> bool:
    """True when the table has a ``tags`` column with at least one tag."""
    return "tags" in tracks.columns and any(len(parse_tags(v)) for v in tracks["tags"])


def tag_vocabulary(tracks: pd.DataFrame) -> list[str]:
    """Every tag named in ``tags`` or ``tags_negative``, sorted."""
    names: set[str] = set()
    for col in TAG_COLUMNS:
        if col in tracks.columns:
            for v in tracks[col]:
                names.update(parse_tags(v))
    return sorted(names)


def complete_negatives(tags: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Negatives for a plain tag list: every vocabulary tag a track does not list (rows with
    no tag at all are left unannotated)."""
    vocab = sorted({t for row in tags for t in row})
    return [tuple(t for t in vocab if t not in row) if row else () for row in tags]


def tag_matrix(tracks: pd.DataFrame, *, tags: Sequence[str] | None = None
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(Y, mask, names)``: ``Y`` ``(n_tracks, n_tags)`` float, 1 present, 0 absent, NaN
    unknown; ``mask`` True where known; ``names`` the tag order (default
    :func:`tag_vocabulary`)."""
    names = list(tags) if tags is not None else tag_vocabulary(tracks)
    col = {t: j for j, t in enumerate(names)}
    Y = np.full((len(tracks), len(names)), np.nan)
    for key, value in (("tags_negative", 0.0), ("tags", 1.0)):
        if key not in tracks.columns:
            continue
        for i, cell in enumerate(tracks[key]):
            for t in parse_tags(cell):
                if t in col:
                    Y[i, col[t]] = value
    return Y, ~np.isnan(Y), names


def tag_summary(tracks: pd.DataFrame) -> pd.DataFrame:
    """Per tag: tracks annotated present, absent and unknown (masked), by split when known."""
    Y, mask, names = tag_matrix(tracks)
    out = pd.DataFrame({"positive": np.nansum(Y == 1, axis=0).astype(int),
                        "negative": (mask & (Y == 0)).sum(axis=0),
                        "unknown": (~mask).sum(axis=0)}, index=pd.Index(names, name="tag"))
    if "split" in tracks.columns and tracks["split"].notna().any():
        split = tracks["split"].to_numpy()
        for s in ("train", "valid", "test"):
            rows = split == s
            if rows.any():
                out[f"positive ({s})"] = (Y[rows] == 1).sum(axis=0)
    return out
