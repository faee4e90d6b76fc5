"""`mtbc similar` and `mtbc playlist` on a tiny folder collection embedded with MFCC."""

from __future__ import annotations

import json

import pytest

from mtbc.cli import main

FREQS = {"low": (110, 123, 131, 147), "mid": (440, 466, 494, 523), "high": (1760, 1865, 1976,
                                                                            2093)}


@pytest.fixture
def collection(tmp_path, tone):
    root = tmp_path / "music"
    for label, freqs in FREQS.items():
        for i, f in enumerate(freqs):
            tone(root / label / f"{label}{i}.wav", seconds=2.0, sr=22050, freq=f)
    cache = tmp_path / "cache"
    assert main(["extract", str(root), "-e", "mfcc", "--cache", str(cache)]) == 0
    return root, cache, tmp_path / "index"


def _args(root, cache, index):
    return ["-c", str(root), "-e", "mfcc", "--cache", str(cache), "--index-dir", str(index)]


def test_similar_lists_k_tracks_without_the_query_and_writes_json(collection, tmp_path,
                                                                  capsys):
    root, cache, index = collection
    out = tmp_path / "similar.json"
    assert main(["similar", "low/low0", *_args(root, cache, index), "--k", "3",
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    ids = [r["track_id"] for r in got["results"]]
    assert len(ids) == 3 and "low/low0" not in ids
    assert [r["rank"] for r in got["results"]] == [1, 2, 3]
    assert got["fingerprint"].startswith("mfcc-") and got["index"] == "exact"
    assert "built" in capsys.readouterr().out


def test_include_duplicates_flags_the_query_itself(collection, capsys):
    root, cache, index = collection
    assert main(["similar", "mid/mid1", *_args(root, cache, index), "--k", "2",
                 "--include-duplicates"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.strip().startswith("1 "))
    assert "mid/mid1" in first and "same track" in first


def test_a_file_of_the_collection_is_that_track(collection, tmp_path):
    root, cache, index = collection
    out = tmp_path / "f.json"
    assert main(["similar", str(root / "high" / "high2.wav"), *_args(root, cache, index),
                 "--json", str(out)]) == 0
    ids = [r["track_id"] for r in json.loads(out.read_text())["results"]]
    assert "high/high2" not in ids and len(ids) == 10


def test_index_is_reused_then_rebuilt_when_the_cache_changes(collection, tone, capsys):
    root, cache, index = collection
    main(["similar", "low/low0", *_args(root, cache, index)])
    capsys.readouterr()
    main(["similar", "low/low0", *_args(root, cache, index)])
    assert "(reused)" in capsys.readouterr().out
    tone(root / "low" / "low9.wav", seconds=2.0, sr=22050, freq=98)
    assert main(["extract", str(root), "-e", "mfcc", "--cache", str(cache)]) == 0
    capsys.readouterr()
    main(["similar", "low/low0", *_args(root, cache, index)])
    out = capsys.readouterr().out
    assert "over 13 tracks (built)" in out


def test_playlist_walk_and_path(collection, tmp_path):
    root, cache, index = collection
    out = tmp_path / "p.json"
    assert main(["playlist", "low/low0", *_args(root, cache, index), "--length", "5",
                 "--json", str(out)]) == 0
    ids = [r["track_id"] for r in json.loads(out.read_text())["results"]]
    assert ids[0] == "low/low0" and len(ids) == len(set(ids)) == 5
    assert main(["playlist", "low/low0", *_args(root, cache, index), "--length", "4",
                 "--to", "high/high3", "--json", str(out)]) == 0
    ids = [r["track_id"] for r in json.loads(out.read_text())["results"]]
    assert ids[0] == "low/low0" and ids[-1] == "high/high3" and len(set(ids)) == 4


@pytest.mark.parametrize("argv, names", [
    (["similar", "nope"], "nope"),
    (["similar", "low/low0", "--k", "0"], "--k"),
    (["similar", "low/low0", "--layer", "2"], "--layer 2"),
    (["playlist", "low/low0", "--to", "low/low0"], "--to low/low0"),
    (["playlist", "low/low0", "--length", "1"], "--length"),
    (["similar", "low/low0", "-o", "oops"], "oops"),
])
def test_bad_input_is_one_line_and_exit_2(collection, capsys, argv, names):
    root, cache, index = collection
    try:
        status = main([*argv, *_args(root, cache, index)])
    except SystemExit as exc:  # argparse refuses the value itself
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert names in err and len(err.splitlines()) == 1


def test_uncached_extractor_says_to_extract(collection, capsys):
    root, cache, index = collection
    argv = ["similar", "low/low0", "-c", str(root), "-e", "mfcc", "-o", "n_mfcc=5",
            "--cache", str(cache), "--index-dir", str(index)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mtbc extract" in err and len(err.strip().splitlines()) == 1
