"""mtbc.cache.store: atomic entries, fingerprint isolation, listing and bulk loading."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

import mtbc
from mtbc.cache.store import EmbeddingStore

H1, H2 = "ab" + "0" * 62, "cd" + "1" * 62


def test_put_get_round_trip(tmp_path, rng):
    store = EmbeddingStore(tmp_path)
    arr = rng.standard_normal((3, 25, 8)).astype(np.float32)
    store.put(H1, "mert-x", arr)
    np.testing.assert_array_equal(store.get(H1, "mert-x"), arr)
    assert store.has(H1, "mert-x") and not store.has(H2, "mert-x")


def test_changed_fingerprint_misses(tmp_path, rng):
    store = EmbeddingStore(tmp_path)
    store.put(H1, "mert-aaaa", rng.standard_normal((1, 2, 4)))
    assert store.get(H1, "mert-bbbb") is None
    assert store.missing([H1], "mert-bbbb") == [H1]


def test_rejects_bad_shapes_and_values(tmp_path):
    store = EmbeddingStore(tmp_path)
    with pytest.raises(ValueError, match="n_segments, n_layers, dim"):
        store.put(H1, "fp", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        store.put(H1, "fp", np.full((1, 1, 2), np.nan))


def _slow_writer(root):
    """Write an entry whose serialisation never finishes (the parent kills us mid-write)."""
    store = EmbeddingStore(root)

    class Endless:
        def write(self, f):
            f.write(b"\x93NUMPY partial header")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    import mtbc.cache.store as s

    s.atomic_write(store.path_for(H1, "fp"), Endless().write)


def test_writer_killed_mid_write_leaves_no_entry(tmp_path):
    proc = mp.get_context("fork").Process(target=_slow_writer, args=(tmp_path,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    store = EmbeddingStore(tmp_path)
    leftovers = list(tmp_path.rglob("*.tmp"))
    assert leftovers, "the killed writer should have left its temp file behind"
    assert store.get(H1, "fp") is None and not store.has(H1, "fp")
    assert len(store.list()) == 0


def test_exception_mid_write_keeps_previous_entry(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path)
    store.put(H1, "fp", np.ones((1, 1, 2)))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        store.put(H1, "fp", np.zeros((1, 1, 2)))
    monkeypatch.undo()
    np.testing.assert_array_equal(store.get(H1, "fp"), np.ones((1, 1, 2)))
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_entry_is_treated_as_missing(tmp_path):
    store = EmbeddingStore(tmp_path)
    path = store.put(H1, "fp", np.ones((1, 1, 2)))
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.get(H1, "fp") is None


def test_list_and_info(tmp_path, rng):
    store = EmbeddingStore(tmp_path)
    store.put(H1, "fp1", rng.standard_normal((2, 3, 4)))
    store.put(H2, "fp1", rng.standard_normal((5, 3, 4)))
    store.put(H1, "fp2", rng.standard_normal((1, 1, 128)))
    store.write_info("fp1", {"model": "tiny"})
    listing = store.list()
    assert sorted(listing["fingerprint"]) == ["fp1", "fp1", "fp2"]
    assert listing.set_index(["fingerprint", "content_hash"]).loc[("fp1", H2), "n_segments"] == 5
    assert store.read_info("fp1") == {"model": "tiny", "mtbc_version": mtbc.__version__}


def test_load_many_mean_segments_and_layers(tmp_path, rng):
    store = EmbeddingStore(tmp_path)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((5, 3, 4)).astype(np.float32)
    store.put(H1, "fp", a)
    store.put(H2, "fp", b)
    means = store.load_many([H2, H1], "fp")
    assert means.shape == (2, 3, 4)
    np.testing.assert_allclose(means[0], b.mean(0), rtol=1e-6)
    segs, index = store.load_many([H1, H2], "fp", reduce=None, layers=[2])
    assert segs.shape == (7, 1, 4)
    np.testing.assert_array_equal(index, [0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(segs[2:, 0], b[:, 2])
    with pytest.raises(KeyError, match="mtbc extract"):
        store.load_many([H1, "ee" + "2" * 62], "fp")
