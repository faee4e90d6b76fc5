"""Extraction caches the outputs the same forward pass computes for other extractors
(musicnn's tags beside its embedding), identical to extracting them on their own."""

import numpy as np
import pandas as pd
import soundfile as sf

from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.extractors.musicnn import MusicnnExtractor


def _tracks(tmp_path, n=3):
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        path = tmp_path / f"t{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32), 16000)
        rows.append({"track_id": f"t{i}", "path": str(path), "content_hash": f"{i:064x}",
                     "duration": 4.0})
    return pd.DataFrame(rows)


def test_musicnn_extraction_caches_its_tags_as_the_tagger_would(tmp_path):
    tracks = _tracks(tmp_path)
    ext = MusicnnExtractor(device="cpu")
    tagger = ext.tagger()
    assert list(ext.companions()) == [tagger.fingerprint] and tagger.companions() == {}
    store = EmbeddingStore(tmp_path / "cache")
    extract_collection(tracks, ext, store, progress=False)
    cached = [store.get(h, tagger.fingerprint) for h in tracks["content_hash"]]
    assert all(c is not None and c.shape[1:] == (1, 50) for c in cached)
    report = extract_collection(tracks, tagger, store, progress=False)
    assert len(report.cached) == 3 and not report.extracted  # nothing run again
    alone = EmbeddingStore(tmp_path / "alone")
    extract_collection(tracks, tagger, alone, progress=False)
    for h, c in zip(tracks["content_hash"], cached, strict=True):
        assert np.allclose(alone.get(h, tagger.fingerprint), c, atol=1e-6)
