"""mtbc deletes only what it can prove it wrote: checksums of the user's files before and
after every command that removes or replaces files (cache, report folders, demo corpus)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mtbc.cache.store import MARKER, EmbeddingStore, NotACacheError
from mtbc.cli import main
from tests.hostile import tree_checksums

H1, H2 = "ab" + "0" * 62, "cd" + "1" * 62


def _user_folder(root):
    """A folder laid out like a cache that mtbc did not make (the issue's case)."""
    (root / "x" / "yy").mkdir(parents=True)
    np.save(root / "x" / "yy" / "valid.npy", np.ones((2, 3, 4), np.float32))  # 3-D float32
    np.save(root / "x" / "yy" / "data.npy", np.arange(5))
    (root / "x" / "yy" / "broken.npy").write_bytes(b"not numpy")
    (root / "x" / ".draft.tmp").write_bytes(b"user's hidden file")
    (root / "x" / "yy" / ".notes.tmp").write_bytes(b"another")
    for f in (root / "x" / ".draft.tmp", root / "x" / "yy" / ".notes.tmp"):
        os.utime(f, (1, 1))  # older than an hour
    (root / "x" / "info.json").write_text('{"mine": true}')  # a user's json, no mtbc_version
    return root


def test_cache_remove_in_a_folder_that_is_not_a_cache_removes_nothing(tmp_path, capsys):
    d = _user_folder(tmp_path / "D")
    before = tree_checksums(d)
    assert main(["cache", "--verify", "--remove", "--cache", str(d)]) == 2
    err = capsys.readouterr().err
    assert f"{d} is not an mtbc cache" in err and "nothing removed" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert tree_checksums(d) == before
    with pytest.raises(NotACacheError):
        EmbeddingStore(d).remove_bad()
    assert tree_checksums(d) == before


def test_cache_verify_in_a_folder_that_is_not_a_cache_says_so(tmp_path, capsys):
    d = _user_folder(tmp_path / "D")
    before = tree_checksums(d)
    assert main(["cache", "--verify", "--cache", str(d)]) == 2
    assert "is not an mtbc cache" in capsys.readouterr().err
    assert tree_checksums(d) == before


def test_cache_remove_touches_only_entries_named_by_the_hash_scheme(tmp_path, capsys, rng):
    root = tmp_path / "cache"
    store = EmbeddingStore(root)
    store.write_info("mfcc-1234", {"model": "m"})
    store.put(H1, "mfcc-1234", rng.standard_normal((1, 2, 4)))
    store.put(H2, "mfcc-1234", rng.standard_normal((1, 2, 4)))
    assert (root / MARKER).is_file()
    bad = store.path_for(H2, "mfcc-1234")
    bad.write_bytes(b"truncated")
    ours_tmp = bad.parent / f".{H2}.npy.abc123.tmp"
    ours_tmp.write_bytes(b"half")
    os.utime(ours_tmp, (1, 1))
    # the user's files inside the cache: misnamed .npy, their own temp file, another folder
    fp = root / "mfcc-1234"
    np.save(fp / "ab" / "mine.npy", np.zeros((1, 2, 4), np.float32))
    (fp / "zz").mkdir()
    np.save(fp / "zz" / f"{H1}.npy", np.zeros(3))  # a hash name in the wrong folder
    (fp / ".mine.tmp").write_bytes(b"x")
    os.utime(fp / ".mine.tmp", (1, 1))
    _user_folder(root / "userstuff")
    keep = {k: v for k, v in tree_checksums(root).items()
            if k not in (f"mfcc-1234/cd/{H2}.npy", f"mfcc-1234/cd/.{H2}.npy.abc123.tmp")}
    assert main(["cache", "--verify", "--remove", "--cache", str(root)]) == 0
    assert "removed 1 bad entries and 1 stale temp files" in capsys.readouterr().out
    assert not bad.exists() and not ours_tmp.exists()
    assert tree_checksums(root) == keep


def test_info_json_is_not_rewritten_when_unchanged(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path / "cache")
    store.write_info("fp-1", {"model": "m"})
    info = tmp_path / "cache" / "fp-1" / "info.json"
    stamp = info.stat().st_mtime_ns
    import mtbc.cache.store as s

    def refuse(*a, **k):
        raise AssertionError("info.json rewritten")

    monkeypatch.setattr(s, "atomic_write", refuse)
    store.write_info("fp-1", {"model": "m"})  # unchanged: no write at all
    assert info.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError):
        store.write_info("fp-1", {"model": "other"})
    assert json.loads(info.read_text())["model"] == "m"
