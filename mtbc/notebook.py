"""Small display helpers that keep the numbered notebooks thin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__


def listen(path: str | Path, *, seconds: float = 10.0, sr: int = 16000):
    """An audio player for the first ``seconds`` of a file (embedded, so HTML stays portable)."""
    from IPython.display import Audio

    from .audio import load_audio

    wave = load_audio(path, sr, on_silence="ignore")[: int(seconds * sr)]
    return Audio(wave, rate=sr, normalize=True)


def extractor_table(metadata: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per extractor label: model, revision/weights, kind of weights, fingerprint."""
    rows = []
    for label, meta in metadata.items():
        rows.append({
            "extractor": label,
            "model": meta.get("model") or meta.get("weights") or meta.get("extractor"),
            "revision": meta.get("commit") or meta.get("revision") or meta.get("weights_sha256",
                                                                                  "")[:12],
            "weights": meta.get("weights_kind", "unknown"),
            "sample rate (Hz)": meta.get("sample_rate"),
            "fingerprint": meta.get("fingerprint"),
        })
    return pd.DataFrame(rows)


def provenance(**values: Any) -> pd.DataFrame:
    """The closing provenance table: the values given plus the mtbc version."""
    rows = [(k, v if isinstance(v, str) else repr(v)) for k, v in values.items()]
    rows.append(("mtbc version", __version__))
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")
