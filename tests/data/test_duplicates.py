"""Near duplicates, label conflicts and confounds (mtbc.data.duplicates, docs/protocol.md)."""

from __future__ import annotations

import shutil

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mtbc.data import duplicates as dup
from mtbc.data.collection import Collection, from_csv, from_folder, scan
from mtbc.data.splits import check_disjoint, outer_folds, track_groups

SR = 22050
SECONDS = 10.0


def piece(seed: int, *, seconds: float = SECONDS, sr: int = SR) -> np.ndarray:
    """A synthetic tune: two voices of random notes (harmonics, decaying envelopes)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float64)
    for low in (48, 64):
        t0 = 0.0
        while t0 < seconds:
            dur = rng.choice([0.15, 0.25, 0.35, 0.5])
            f0 = librosa.midi_to_hz(low + rng.integers(0, 18))
            n = int(min(dur, seconds - t0) * sr)
            t = np.arange(n) / sr
            env = np.exp(-t * rng.uniform(3, 9)) * np.minimum(1, t / 0.005)
            tone = sum(np.sin(2 * np.pi * f0 * h * t) / h ** rng.uniform(0.8, 1.6)
                       for h in range(1, 6))
            start = int(t0 * sr)
            out[start:start + n] += env * tone
            t0 += dur
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def write(path, wave, sr=SR, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr, **kw)
    return path


def copies(folder, wave, *, name="orig"):
    """The original and its re-encoded, trimmed, resampled and level-changed copies."""
    paths = [write(folder / f"{name}.wav", wave),
             write(folder / f"{name}_ogg.ogg", wave, format="OGG", subtype="VORBIS"),
             write(folder / f"{name}_flac.flac", wave, format="FLAC"),
             write(folder / f"{name}_trim.wav", wave[int(1.5 * SR):]),
             write(folder / f"{name}_16k.wav", librosa.resample(wave, orig_sr=SR, target_sr=16000),
                   sr=16000),
             write(folder / f"{name}_quiet.wav", wave * 10 ** (-12 / 20))]
    if "MP3" in sf.available_formats():
        paths.append(write(folder / f"{name}_mp3.mp3", wave, format="MP3",
                           subtype="MPEG_LAYER_III"))
    return paths


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    copies(root / "a", piece(0))
    for k in range(1, 4):
        write(root / ("a" if k % 2 else "b") / f"other{k}.wav", piece(k))
    return scan(from_folder(root), progress=False)


def test_reencoded_trimmed_resampled_and_quieter_copies_form_one_group(coll):
    t = coll.tracks.set_index("track_id")
    family = [i for i in t.index if i.startswith("a/orig")]
    assert len(family) >= 6
    assert set(t.loc[family, "duplicate_group"]) == {"a/orig"}
    groups = track_groups(coll.tracks)
    assert len({groups[i] for i in np.flatnonzero(coll.tracks["track_id"].isin(family))}) == 1
    near = coll.duplicates[coll.duplicates["kind"] == "near"]
    assert set(near["track_id"]) | set(near["duplicate_of"]) == set(family)
    assert (near["ber"] <= dup.MAX_BER / 2).all(), near  # far below the threshold
    trim = near[(near["track_id"] == "a/orig_trim") & (near["duplicate_of"] == "a/orig")]
    assert len(trim) == 0 or abs(trim["offset_s"].iloc[0] - 1.5) < 0.02
    assert coll.conflicts.empty and t["label"].notna().all()


def test_different_pieces_are_not_linked(coll):
    others = coll.tracks[coll.tracks["track_id"].str.contains("other")]
    assert others["duplicate_group"].isna().all()
    fps = [dup.fingerprint_file(p) for p in others["path"]]
    bers = [dup.best_alignment(a, b)[0] for i, a in enumerate(fps) for b in fps[i + 1:]]
    assert min(bers) > 0.35, bers


def test_folds_never_split_a_near_duplicate_group(coll):
    folds, _ = outer_folds(coll.tracks, n_splits=2, seed=0)
    family = np.flatnonzero(coll.tracks["duplicate_group"].notna())
    for fold in folds:
        check_disjoint(coll.tracks, fold.train, fold.test)
        assert set(family) <= set(fold.train) or set(family) <= set(fold.test)


def test_near_duplicate_with_another_label_is_a_conflict_and_trains_nothing(tmp_path):
    wave = piece(5)
    write(tmp_path / "rock" / "song.wav", wave)
    write(tmp_path / "jazz" / "song.ogg", wave[SR:], format="OGG", subtype="VORBIS")
    write(tmp_path / "jazz" / "other.wav", piece(6))
    c = scan(from_folder(tmp_path), progress=False)
    (row,) = c.conflicts.to_dict("records")
    assert {row["track_id"], row["other_track_id"]} == {"rock/song", "jazz/song"}
    assert {row["label"], row["other_label"]} == {"rock", "jazz"} and row["kind"] == "near"
    labels = c.tracks.set_index("track_id")["label"]
    assert labels[["rock/song", "jazz/song"]].isna().all() and labels["jazz/other"] == "jazz"


def test_exact_duplicate_with_another_label_is_listed_not_dropped_silently(tmp_path):
    write(tmp_path / "rock" / "x.wav", piece(7))
    shutil.copy(tmp_path / "rock" / "x.wav", tmp_path / "rock" / "x_again.wav")  # same label
    shutil.copy(tmp_path / "rock" / "x.wav", tmp_path / "zz.wav")                # unlabelled
    write(tmp_path / "jazz" / "y.wav", piece(8))
    shutil.copy(tmp_path / "jazz" / "y.wav", tmp_path / "rock" / "y.wav")         # conflict
    c = scan(from_folder(tmp_path), progress=False)
    assert list(c.conflicts[["track_id", "other_track_id", "kind"]].itertuples(index=False)) \
        == [("jazz/y", "rock/y", "exact")]
    labels = c.tracks.set_index("track_id")["label"]
    assert pd.isna(labels["jazz/y"]) and labels["rock/x"] == "rock"
    assert set(c.skipped["track_id"]) == {"rock/x_again", "zz", "rock/y"}
    assert "label disagrees" in c.skipped.set_index("track_id").loc["rock/y", "reason"]
    exact = c.duplicates[c.duplicates["kind"] == "exact"].set_index("track_id")["duplicate_of"]
    assert exact.to_dict() == {"rock/x_again": "rock/x", "zz": "rock/x", "rock/y": "jazz/y"}


def test_predefined_split_keeps_a_near_duplicate_on_its_first_side(tmp_path):
    wave = piece(9)
    write(tmp_path / "a.wav", wave)
    write(tmp_path / "a.flac", wave[: int(8 * SR)], format="FLAC")
    for k in range(4):
        write(tmp_path / f"o{k}.wav", piece(10 + k))
    pd.DataFrame({"path": ["a.flac", "a.wav", "o0.wav", "o1.wav", "o2.wav", "o3.wav"],
                  "track_id": ["copy", "orig", "o0", "o1", "o2", "o3"],
                  "label": ["x", "x", "x", "y", "x", "y"],
                  "split": ["test", "train", "train", "train", "test", "test"]}
                 ).to_csv(tmp_path / "m.csv", index=False)
    c = scan(from_csv(tmp_path / "m.csv"), progress=False)
    assert "copy" not in set(c.tracks["track_id"])
    assert "near duplicate of orig (in train)" in c.skipped.set_index("track_id").loc["copy",
                                                                                      "reason"]
    outer_folds(c.tracks)  # raises LeakageError if anything straddles


def test_short_silent_and_steady_audio_get_no_fingerprint():
    t = np.arange(int(8 * SR)) / SR
    assert dup.fingerprint_wave(piece(1, seconds=3.0), SR) is None  # shorter than MIN_SECONDS
    assert dup.fingerprint_wave(np.zeros(8 * SR, np.float32), SR) is None
    assert dup.fingerprint_wave(0.5 * np.sin(2 * np.pi * 440 * t), SR) is None


def test_confound_warning_fires_for_a_column_that_maps_to_labels_only():
    rng = np.random.default_rng(0)
    labels = np.repeat(["rock", "jazz", "folk"], 8)
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(24)], "label": labels,
                           "path": [f"/m/t{i}.wav" for i in range(24)],
                           "source": pd.Series(labels).map({"rock": "cd", "jazz": "radio",
                                                            "folk": "tape"}),
                           "random": rng.choice(["u", "v", "w"], size=24),
                           "title": [f"song {i}" for i in range(24)],
                           "duration": rng.uniform(20, 30, size=24)})
    (warning,) = dup.confound_warnings(tracks)
    assert "'source'" in warning and "Splits do not group by 'source'" in warning
    assert dup.grouping_notes(tracks) == []
    assert dup.confound_warnings(tracks.drop(columns=["source"])) == []


def _grouped_tracks() -> pd.DataFrame:
    """Four recordings per label, each rendered twice (a group holds one recording's two
    tracks), and a 1:1 'source' column (one per label)."""
    labels = np.repeat(["rock", "jazz", "folk"], 8)
    return pd.DataFrame({"track_id": [f"t{i}" for i in range(24)], "label": labels,
                         "path": [f"/m/t{i}.wav" for i in range(24)],
                         "group": [f"rec{i // 2}" for i in range(24)],
                         "source": pd.Series(labels).map({"rock": "cd", "jazz": "radio",
                                                          "folk": "tape"})})


def test_no_confound_warning_on_the_splits_grouping_column():
    tracks = _grouped_tracks().drop(columns=["source"])
    assert dup.confound_warnings(tracks) == []
    (note,) = dup.grouping_notes(tracks)
    assert "'group' (12 values) is the grouping unit" in note
    # an artist the splits group by (a collection's group falls back to it) is the same
    tracks["artist"] = tracks["group"].str.replace("rec", "artist")
    assert dup.confound_warnings(tracks) == []
    assert [n.split(" ", 1)[0] for n in dup.grouping_notes(tracks)] == ["'group'", "'artist'"]


def test_a_one_to_one_source_column_still_warns_beside_the_groups():
    tracks = _grouped_tracks()
    (warning,) = dup.confound_warnings(tracks)
    assert "column 'source' (3 values" in warning and "do not group by 'source'" in warning
    assert len(dup.grouping_notes(tracks)) == 1
    # an artist spanning several groups is a confound like any other column
    tracks["artist"] = tracks["source"]
    assert {w.split("'")[1] for w in dup.confound_warnings(tracks)} == {"source", "artist"}


def test_json_round_trip_keeps_duplicates_and_conflicts(coll, tmp_path):
    write(tmp_path / "rock" / "s.wav", piece(3))
    write(tmp_path / "jazz" / "s.flac", piece(3), format="FLAC")
    c = scan(from_folder(tmp_path), progress=False)
    for one in (coll, c):
        back = Collection.from_json(one.to_json())
        for name in ("tracks", "skipped", "duplicates", "conflicts"):
            a, b = getattr(one, name), getattr(back, name)
            assert list(a.columns) == list(b.columns) and len(a) == len(b), name
            assert a.astype(str).equals(b.astype(str).set_axis(a.index)), name
    assert len(c.conflicts) == 1
