"""What decoding costs: milliseconds per clip and format, as extraction decodes (notebook 07)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from mtbc.benchmark.timing import best_time, synthetic_clip
from mtbc.data.audio import load_audio


def decode_costs(*, formats: Sequence[str] = ("wav", "mp3", "ogg"), clip_seconds: float = 30.0,
                 source_rate: int = 44100, target_rate: int = 24000, repeats: int = 2,
                 root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Milliseconds to decode and resample one ``clip_seconds`` stereo clip per format.

    Each clip (``source_rate`` Hz, written to a temporary folder under ``root``) is read as
    extraction reads it (:func:`mtbc.data.audio.load_audio` to ``target_rate``), best of
    ``repeats``. Returns one row per format: ``ms_per_clip``, ``file_kb``,
    ``clips_per_s_per_thread``, ``threads_for_100_clips_per_s`` (decode threads that keep up
    with a model embedding 100 clips per second) and a ``note`` (why a format failed).

    Examples
    --------
    >>> decode_costs(formats=["wav"], clip_seconds=1.0, repeats=1)["format"].tolist()
    ['wav']
    """
    rows = []
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        left = synthetic_clip(clip_seconds, source_rate, seed=1)
        data = np.stack([left, np.roll(left, 100)], axis=1)
        for fmt in formats:
            path = Path(tmp) / f"clip.{fmt}"
            try:
                sf.write(path, data, source_rate, format=fmt.upper())
            except (sf.LibsndfileError, ValueError, TypeError) as exc:
                rows.append({"format": fmt, "ms_per_clip": None, "note": str(exc)})
                continue
            seconds = best_time(lambda path=path: load_audio(path, target_rate),
                                repeats=repeats, warmup=1)
            rows.append({"format": fmt, "ms_per_clip": round(1000 * seconds, 1),
                         "file_kb": round(path.stat().st_size / 1024),
                         "clips_per_s_per_thread": round(1 / seconds, 1),
                         "threads_for_100_clips_per_s": math.ceil(100 * seconds),
                         "note": f"{clip_seconds:.0f} s stereo {source_rate} Hz -> mono "
                                 f"{target_rate} Hz"})
    return pd.DataFrame(rows)
