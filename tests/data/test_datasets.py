"""mtbc.data.collection: builders, scanning with a skipped table, duplicates, GTZAN split."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from mtbc.data.collection import (
    Collection,
    CollectionError,
    from_csv,
    from_folder,
    from_gtzan,
    gtzan_split_lists,
    load_collection,
    scan,
)


def _mixed_folder(root, tone):
    tone(root / "rock" / "a.wav", seconds=0.5, sr=22050, freq=300)
    tone(root / "rock" / "b.flac", seconds=0.7, sr=44100, freq=500, channels=2, fmt="FLAC")
    tone(root / "jazz" / "c.ogg", seconds=0.6, sr=48000, freq=700, fmt="OGG", subtype="VORBIS")
    tone(root / "jazz" / "sub" / "d.wav", seconds=0.4, sr=16000, freq=900)
    (root / "jazz" / "notes.txt").write_text("ignored: not an audio extension")
    (root / "jazz" / "fake.wav").write_text("not audio")
    (root / "rock" / "empty.mp3").write_bytes(b"")
    (root / "rock" / "folder.wav").mkdir()
    tone(root / "loose.wav", seconds=0.3, sr=16000)
    return root


def test_folder_scan_keeps_every_good_file_and_lists_bad_ones(tmp_path, tone):
    root = _mixed_folder(tmp_path / "music", tone)
    coll = scan(from_folder(root), progress=False)
    assert sorted(coll.tracks["track_id"]) == ["jazz/c", "jazz/sub/d", "loose", "rock/a", "rock/b"]
    assert coll.tracks.set_index("track_id").loc["jazz/sub/d", "label"] == "jazz"
    assert pd.isna(coll.tracks.set_index("track_id").loc["loose", "label"])
    reasons = dict(zip(coll.skipped["track_id"], coll.skipped["reason"], strict=True))
    assert set(reasons) == {"jazz/fake", "rock/empty", "rock/folder"}
    assert "cannot decode" in reasons["jazz/fake"]
    assert "empty" in reasons["rock/empty"]
    assert "directory" in reasons["rock/folder"]
    row = coll.tracks.set_index("track_id").loc["rock/b"]
    assert row["sample_rate"] == 44100 and row["channels"] == 2
    assert row["duration"] == pytest.approx(0.7)
    assert len(row["content_hash"]) == 64
    assert list(coll.tracks["group"]) == list(coll.tracks["track_id"])  # no artist known
    summary = coll.summary()
    assert summary.loc["rock", "tracks"] == 2 and summary.loc["(unlabelled)", "tracks"] == 1


def test_exact_duplicates_kept_once_and_listed(tmp_path, tone):
    root = tmp_path / "m"
    tone(root / "pop" / "x.wav", seconds=0.3)
    shutil.copy(root / "pop" / "x.wav", root / "pop" / "x_copy.wav")
    tone(root / "pop" / "y.wav", seconds=0.3, freq=880)
    coll = scan(from_folder(root), progress=False)
    assert sorted(coll.tracks["track_id"]) == ["pop/x", "pop/y"]
    assert coll.skipped["reason"].str.contains("duplicate of pop/x").all()


def test_duplicates_never_cross_splits(tmp_path, tone):
    tone(tmp_path / "a.wav", seconds=0.3)
    shutil.copy(tmp_path / "a.wav", tmp_path / "b.wav")
    tone(tmp_path / "c.wav", seconds=0.3, freq=600)
    (tmp_path / "m.csv").write_text("path,label,split\nb.wav,x,test\na.wav,x,train\nc.wav,y,test\n")
    coll = scan(from_csv(tmp_path / "m.csv"), progress=False)
    assert dict(zip(coll.tracks["track_id"], coll.tracks["split"], strict=True)) == {
        "a": "train", "c": "test"}
    assert list(coll.skipped["track_id"]) == ["b"]


def test_csv_manifest_resolves_relative_paths_and_keeps_extra_columns(tmp_path, tone):
    tone(tmp_path / "audio" / "s1.wav", seconds=0.3)
    tone(tmp_path / "audio" / "s2.wav", seconds=0.3, freq=600)
    (tmp_path / "m.csv").write_text(
        "path,label,artist,title\naudio/s1.wav,ballad,Teresa Teng,月亮代表我的心\n"
        "audio/s2.wav,ballad,Teresa Teng,甜蜜蜜\naudio/missing.wav,ballad,,gone\n")
    coll = scan(from_csv(tmp_path / "m.csv"), progress=False)
    assert list(coll.tracks["track_id"]) == ["audio/s1", "audio/s2"]
    assert list(coll.tracks["group"]) == ["Teresa Teng", "Teresa Teng"]
    assert coll.tracks["title"].iloc[0] == "月亮代表我的心"
    assert "file not found" in coll.skipped["reason"].iloc[0]


@pytest.mark.parametrize("content,message", [
    ("file,label\na.wav,x\n", "needs a 'path' column"),
    ("path,split\na.wav,holdout\n", "unknown split"),
    ("path,track_id\na.wav,t\nb.wav,t\n", "appears more than once"),
])
def test_bad_manifest_names_csv_and_problem(tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(CollectionError, match=message) as err:
        from_csv(csv)
    assert str(csv) in str(err.value)


def test_gtzan_split_lists_are_the_fault_filtered_split():
    lists = gtzan_split_lists()
    assert {k: len(v) for k, v in lists.items()} == {"train": 443, "valid": 197, "test": 290}
    all_names = sum(lists.values(), [])
    assert len(set(all_names)) == 930
    assert "jazz/jazz.00054.wav" in lists["train"]


def test_gtzan_layout_uses_split_and_skips_corrupt_file(tmp_path, tone):
    genres = tmp_path / "gtzan" / "genres"
    lists = gtzan_split_lists()
    picked = [lists["train"][0], lists["valid"][0], lists["test"][0], "jazz/jazz.00054.wav",
              "disco/disco.00038.wav"]  # last one is not in the filtered split
    for i, rel in enumerate(picked):
        tone(genres / rel, seconds=0.3, sr=22050, freq=200 + 50 * i)
    (genres / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00broken")
    table = from_gtzan(tmp_path / "gtzan")
    assert len(table) == 930
    coll = load_collection(tmp_path / "gtzan", progress=False)
    assert isinstance(coll, Collection)
    assert sorted(coll.tracks["split"]) == ["test", "train", "valid"]
    assert "disco.00038" not in set(coll.tracks["track_id"])
    reasons = coll.skipped.set_index("track_id")["reason"]
    assert "cannot decode" in reasons["jazz.00054"]
    assert reasons.str.contains("file not found").sum() == 930 - 4


def test_load_collection_errors_are_clear(tmp_path):
    with pytest.raises(CollectionError, match="not found"):
        load_collection(tmp_path / "nope")
    with pytest.raises(CollectionError, match="no audio files"):
        load_collection(tmp_path)
    with pytest.raises(CollectionError, match="mtbc demo"):
        load_collection(tmp_path / "demo", kind="demo")


def test_scan_cache_reused_until_a_file_changes(tmp_path, tone, monkeypatch):
    import mtbc.data.collection as ds

    root = tmp_path / "m"
    tone(root / "a" / "x.wav", seconds=0.3)
    tone(root / "b" / "y.wav", seconds=0.4, freq=700)
    first = load_collection(f"folder:{root}", scan_cache=tmp_path / "cache", progress=False)
    calls = []
    real_scan = ds.scan
    monkeypatch.setattr(ds, "scan", lambda *a, **k: calls.append(1) or real_scan(*a, **k))
    again = load_collection(root, scan_cache=tmp_path / "cache", progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(again.tracks, first.tracks, check_dtype=False)
    assert again.source == first.source == f"folder:{root}"
    tone(root / "b" / "y.wav", seconds=0.5, freq=700)  # rewritten: new size
    changed = load_collection(root, scan_cache=tmp_path / "cache", progress=False)
    assert calls == [1]
    assert changed.tracks.set_index("track_id").loc["b/y", "duration"] == pytest.approx(0.5)
