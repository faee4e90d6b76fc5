"""MagnaTagATune (MTAT) as a tagged tracks table, mirdata style (``docs/tagging.md``).

Users download the data set themselves (mtbc never redistributes it). Expected layout::

    <root>/annotations_final.csv     TAB-separated: clip_id, 188 tag columns of 0/1, mp3_path
    <root>/0/ ... <root>/f/          the audio, e.g. f/artist-album-07-title-30-59.mp3

- Tags: the ``top_k`` (50) most frequent tags of the whole annotation file (ties: the file's
  column order). MTAT annotates every clip for every tag, so a top-50 tag a clip lacks is a
  negative; nothing is masked. Clips with no top-50 tag stay in the table (all negative).
- Split: the standard 12:1:3 split by folder, ``0``-``b`` train, ``c`` valid, ``d``-``f`` test.
- Groups: clips cut from one song share a group (the mp3 path without its trailing
  ``-NN-NN`` segment numbers), so bootstrap intervals resample songs, not 30 s segments.
- Broken clips (the empty MP3s of the release) are listed as skipped by the normal scan,
  with the decoder's reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mtbc.data.core import CollectionError, make_table

ANNOTATIONS = "annotations_final.csv"
TOP_K = 50
#: Folder (first hex digit of the path) -> split: 12 train, 1 valid, 3 test.
FOLDER_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "valid",
                **dict.fromkeys("def", "test")}
_SEGMENT = re.compile(r"-\d+-\d+$")


def find_mtat_root(root: str | Path) -> Path | None:
    """The folder holding ``annotations_final.csv`` (``root`` itself or one level down)."""
    root = Path(root)
    for cand in (root, root / "mtat", root / "magnatagatune", root / "MagnaTagATune"):
        if (cand / ANNOTATIONS).is_file():
            return cand
    return None


def song_of(mp3_path: str) -> str:
    """``f/a-b-07-title-30-59.mp3`` -> ``f/a-b-07-title`` (the song a clip was cut from)."""
    return _SEGMENT.sub("", str(mp3_path).removesuffix(".mp3"))


def read_annotations(root: str | Path) -> pd.DataFrame:
    """``annotations_final.csv`` as a table (clip_id and mp3_path as strings, tags as ints)."""
    path = Path(root) / ANNOTATIONS
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CollectionError(f"{path}: not a readable MTAT annotation file ({exc})") from exc
    missing = {"clip_id", "mp3_path"} - set(df.columns)
    if missing:
        raise CollectionError(f"{path}: needs columns clip_id and mp3_path (TAB-separated); "
                              f"missing {sorted(missing)}")
    tag_cols = [c for c in df.columns if c not in ("clip_id", "mp3_path")]
    try:
        df[tag_cols] = df[tag_cols].astype(int)
    except ValueError as exc:
        raise CollectionError(f"{path}: tag columns must hold 0/1 ({exc})") from exc
    return df


def top_tags(annotations: pd.DataFrame, *, top_k: int = TOP_K) -> list[str]:
    """The ``top_k`` most frequent tags, most frequent first (ties: column order)."""
    tag_cols = [c for c in annotations.columns if c not in ("clip_id", "mp3_path")]
    counts = annotations[tag_cols].sum()
    order = sorted(range(len(tag_cols)), key=lambda j: (-int(counts.iloc[j]), j))
    return [tag_cols[j] for j in order[:top_k]]


def from_mtat(root: str | Path, *, top_k: int = TOP_K) -> pd.DataFrame:
    """The MTAT tracks table: one row per clip with ``tags`` / ``tags_negative`` (top-k
    vocabulary), ``split`` by folder and ``group`` by song (unscanned)."""
    base = find_mtat_root(root)
    if base is None:
        raise CollectionError(f"{root}: no MagnaTagATune layout found (expected {ANNOTATIONS} "
                              f"beside the 0/ .. f/ audio folders)")
    ann = read_annotations(base)
    vocab = top_tags(ann, top_k=top_k)
    values = ann[vocab].to_numpy()
    rows = []
    for i, (clip, rel) in enumerate(zip(ann["clip_id"], ann["mp3_path"], strict=True)):
        if not rel:
            continue  # a clip without audio in the release
        on = values[i] == 1
        rows.append({"track_id": str(clip), "path": str((base / rel).absolute()),
                     "label": None, "artist": Path(rel).name.split("-")[0] or None,
                     "split": FOLDER_SPLIT.get(rel.split("/")[0]), "group": song_of(rel),
                     "tags": tuple(t for t, o in zip(vocab, on, strict=True) if o),
                     "tags_negative": tuple(t for t, o in zip(vocab, on, strict=True) if not o),
                     "mp3_path": rel})
    if not rows:
        raise CollectionError(f"{base / ANNOTATIONS}: no clips listed")
    return make_table(rows)
