"""mtbc.cache.extract: cache-filling runs that skip cached tracks, list failures and shard."""

from __future__ import annotations

import numpy as np
import pytest

from mtbc.cache.extract import extract_collection, select_shard
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import from_folder, scan
from mtbc.extractors import Extractor, make_fingerprint


class CountingExtractor(Extractor):
    """Embeds a wave as its (mean, std, length) per 0.1 s segment; counts model calls."""

    name = "counting"
    sample_rate = 8000
    min_samples = 400

    def __init__(self, *, fail_on_loud: bool = False, scale: float = 1.0):
        self.calls = 0
        self.batches: list[int] = []
        self.fail_on_loud = fail_on_loud
        self.scale = scale

    @property
    def fingerprint(self):
        return make_fingerprint(self.name, scale=self.scale)

    def embed(self, wave):
        self.calls += 1
        if self.fail_on_loud and np.abs(wave).max() > 0.8:
            raise RuntimeError("too loud for this model")
        segs = wave[: len(wave) // 800 * 800].reshape(-1, 800)
        feats = np.stack([segs.mean(1), segs.std(1), np.full(len(segs), len(wave))], axis=1)
        return (self.scale * feats[:, None, :]).astype(np.float32)

    def embed_many(self, waves):
        self.batches.append(len(waves))
        return [self.embed(w) for w in waves]


@pytest.fixture
def collection(tmp_path, tone):
    root = tmp_path / "music"
    for i in range(5):
        tone(root / ("a" if i % 2 else "b") / f"t{i}.wav", seconds=0.5 + 0.1 * i, sr=16000,
             freq=200 + 100 * i)
    tone(root / "a" / "short.wav", seconds=0.01, sr=16000)
    (root / "a" / "broken.wav").write_text("nope")
    return scan(from_folder(root), progress=False)


def test_fills_cache_then_second_run_does_no_model_work(tmp_path, collection):
    store = EmbeddingStore(tmp_path / "cache")
    ext = CountingExtractor()
    first = extract_collection(collection.tracks, ext, store, batch_tracks=2, progress=False)
    assert len(first.extracted) == 5 and first.cached == []
    assert list(first.failed["track_id"]) == ["a/short"]
    assert "too short for counting" in first.failed["reason"].iloc[0]
    assert max(ext.batches) == 2
    assert store.read_info(ext.fingerprint)["extractor"] == "counting"
    ext2 = CountingExtractor()
    second = extract_collection(collection.tracks, ext2, store, progress=False)
    assert ext2.calls == 0 and len(second.cached) == 5 and second.extracted == []
    row = collection.tracks.set_index("track_id").loc["a/t1"]
    emb = store.get(row["content_hash"], ext.fingerprint)
    assert emb.shape == (int(row["duration"] * 8000) // 800, 1, 3)


def test_changed_fingerprint_recomputes(tmp_path, collection):
    store = EmbeddingStore(tmp_path / "cache")
    extract_collection(collection.tracks, CountingExtractor(), store, progress=False)
    other = CountingExtractor(scale=2.0)
    report = extract_collection(collection.tracks, other, store, progress=False)
    assert len(report.extracted) == 5 and other.calls == 5


def test_model_failure_on_one_track_keeps_the_others(tmp_path, tone, collection):
    loud = tone(tmp_path / "music" / "b" / "loud.wav", seconds=0.5, amplitude=0.95)
    coll = scan(from_folder(loud.parent.parent), progress=False)
    store = EmbeddingStore(tmp_path / "cache")
    report = extract_collection(coll.tracks, CountingExtractor(fail_on_loud=True), store,
                                batch_tracks=3, progress=False)
    assert len(report.extracted) == 5
    failed = report.failed.set_index("track_id")["reason"]
    assert "too loud" in failed["b/loud"] and "RuntimeError" in failed["b/loud"]


def test_audio_failure_found_at_extraction_is_listed(tmp_path, collection):
    tracks = collection.tracks.copy()
    bad = tmp_path / "gone.wav"
    tracks.loc[0, "path"] = str(bad)
    report = extract_collection(tracks, CountingExtractor(), EmbeddingStore(tmp_path / "c"),
                                progress=False)
    assert "file not found" in report.failed.set_index("track_id")["reason"][tracks.loc[0, "track_id"]]


def test_shards_partition_the_collection(collection):
    parts = [set(select_shard(collection.tracks, (i, 3))["track_id"]) for i in range(3)]
    assert set.union(*parts) == set(collection.tracks["track_id"])
    assert sum(map(len, parts)) == len(collection.tracks)
    with pytest.raises(ValueError, match="0 <= i < n"):
        select_shard(collection.tracks, (3, 3))
