"""The types every collection loader shares (``mirdata.core`` in mirdata's sense): the tracks
table's columns, :class:`Collection`, :class:`CollectionError` and :func:`make_table`.

:mod:`mtbc.data.collection`, the data set loaders (:mod:`~mtbc.data.mtat`,
:mod:`~mtbc.data.openmic`) and :mod:`~mtbc.data.duplicates` import this module and not one
another, so the data package has no import circle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from mtbc.data.tags import TAG_COLUMNS, as_tuples, tag_summary

TRACK_COLUMNS = ["track_id", "path", "label", "artist", "split", "group"]
SCAN_COLUMNS = ["content_hash", "duration", "sample_rate", "channels"]
SKIPPED_COLUMNS = ["track_id", "path", "label", "reason"]
SPLIT_ORDER = ("train", "valid", "test")
#: Exact and near duplicate pairs (:func:`mtbc.data.duplicates.link_duplicates`).
DUPLICATE_COLUMNS = ["track_id", "duplicate_of", "kind", "ber", "offset_s", "cosine"]
#: Duplicates whose labels disagree, and what was done about it.
CONFLICT_COLUMNS = ["track_id", "label", "other_track_id", "other_label", "kind", "action"]


class CollectionError(ValueError):
    """A collection that cannot be read at all (bad manifest, missing folder)."""


@dataclass
class Collection:
    """A scanned collection: usable ``tracks`` and the ``skipped`` files with reasons."""

    tracks: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))
    name: str = "collection"
    source: str = ""
    #: Exact and near duplicate pairs (:data:`DUPLICATE_COLUMNS`).
    duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DUPLICATE_COLUMNS))
    #: Duplicates whose labels disagree; those tracks carry no label (:mod:`mtbc.data.duplicates`).
    conflicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CONFLICT_COLUMNS))

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def labels(self) -> list[str]:
        return sorted(self.tracks["label"].dropna().unique())

    def to_json(self) -> str:
        """The whole collection as JSON (see :meth:`from_json`)."""
        return json.dumps({"name": self.name, "source": self.source} | {
            k: json.loads(getattr(self, k).to_json(orient="split", index=False))
            for k in ("tracks", "skipped", "duplicates", "conflicts")})

    @classmethod
    def from_json(cls, text: str) -> Collection:
        d = json.loads(text)
        frames = {k: pd.DataFrame(d[k]["data"], columns=d[k]["columns"])
                  for k in ("tracks", "skipped", "duplicates", "conflicts") if k in d}
        for col in TAG_COLUMNS:  # JSON has lists; the tracks table holds tuples
            if col in frames["tracks"].columns:
                frames["tracks"][col] = as_tuples(frames["tracks"][col])
        return cls(**frames, name=d["name"], source=d["source"])

    def summary(self) -> pd.DataFrame:
        """Per-label counts and durations (s), plus the sample rates seen (indexed by label)."""
        t = self.tracks.assign(label=self.tracks["label"].fillna("(unlabelled)"))
        return (t.groupby("label")
                 .agg(tracks=("track_id", "size"), total_s=("duration", "sum"),
                      mean_s=("duration", "mean"), min_s=("duration", "min"),
                      max_s=("duration", "max"),
                      sample_rates=("sample_rate", lambda s: ", ".join(map(str, sorted(set(s)))))))

    def tag_summary(self) -> pd.DataFrame:
        """Per tag: tracks annotated present, absent and unknown (see :mod:`mtbc.data.tags`)."""
        return tag_summary(self.tracks)


def make_table(rows: list[dict]) -> pd.DataFrame:
    """A tracks table from one dict per track: :data:`TRACK_COLUMNS` first (missing ones
    ``None``), then any extra keys; ``group`` defaults to the artist, else the track.

    Examples
    --------
    >>> make_table([{"track_id": "a", "path": "a.wav", "label": "jazz"}])["group"].tolist()
    ['a']
    """
    df = pd.DataFrame(rows)
    for col in TRACK_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["group"] = df["group"].where(df["group"].notna(), df["artist"])
    df["group"] = df["group"].where(df["group"].notna(), df["track_id"])
    extra = [c for c in df.columns if c not in TRACK_COLUMNS]
    return df[TRACK_COLUMNS + extra].reset_index(drop=True)
