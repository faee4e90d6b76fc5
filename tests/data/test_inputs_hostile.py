"""Hostile inputs: sample rates too low to be music, file names that are not UTF-8,
`mtbc predict` with nothing it can predict, and model files holding object arrays."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import soundfile as sf

from mtbc.cli import main
from mtbc.data.audio import MIN_SAMPLE_RATE, AudioError, load_audio, probe_audio
from mtbc.data.collection import load_collection, open_collection
from tests.evaluation.test_predict import factory, trained, write_tone  # noqa: F401 - the fixture


def _wav(path, sr, n):
    x = (0.3 * np.sin(np.arange(n) / 3)).astype(np.float32)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


@pytest.mark.parametrize("sr", [1, 100, MIN_SAMPLE_RATE - 1])
def test_a_sample_rate_below_the_floor_is_skipped_with_the_reason(tmp_path, sr):
    path = _wav(tmp_path / "low.wav", sr, 10_000)  # 20 KB: at 1 Hz, 2.8 h of "audio"
    with pytest.raises(AudioError, match=f"sample rate {sr} Hz is below the minimum usable "
                                         f"{MIN_SAMPLE_RATE} Hz"):
        probe_audio(path)
    with pytest.raises(AudioError, match="below the minimum"):
        load_audio(path, 16000)


def test_the_floor_rate_is_usable_and_sized_at_the_models_rate(tmp_path):
    path = _wav(tmp_path / "ok.wav", MIN_SAMPLE_RATE, 2 * MIN_SAMPLE_RATE)  # 2 s
    assert probe_audio(path).sample_rate == MIN_SAMPLE_RATE
    assert len(load_audio(path, 48000)) == 96000  # 2 s at the model's rate


def test_a_scan_skips_a_1_hz_file_and_keeps_the_others(tmp_path, capsys):
    (tmp_path / "m" / "a").mkdir(parents=True)
    _wav(tmp_path / "m" / "a" / "one_hz.wav", 1, 10_000)
    _wav(tmp_path / "m" / "a" / "fine.wav", 16000, 16000)
    assert main(["scan", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "one_hz.wav" in out and "below the minimum usable 4000 Hz" in out
    assert len(load_collection(tmp_path / "m", progress=False)) == 1


def _latin1_name(folder):
    folder.mkdir(parents=True, exist_ok=True)
    good = _wav(folder / "plain.wav", 16000, 16000)
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.wav")
    _wav(folder / "tmp.wav", 16000, 12000)
    os.rename(folder / "tmp.wav", bad)
    return good, os.fsdecode(bad)


def test_a_non_utf8_file_name_is_read_or_skipped_with_the_real_reason(tmp_path):
    good, bad = _latin1_name(tmp_path / "m" / "a")
    assert len(load_audio(bad, None)) == 12000  # the audio itself reads
    coll = open_collection(tmp_path / "m", cache_dir=tmp_path / "cache", progress=False)
    assert list(coll.tracks["path"]) == [str(good)]
    (reason,) = coll.skipped["reason"]
    assert "file name is not valid UTF-8" in reason and "cannot decode" not in reason
    assert coll.skipped["path"].iloc[0].endswith("caf\\xe9.wav")
    again = open_collection(tmp_path / "m", cache_dir=tmp_path / "cache", progress=False)
    assert list(again.skipped["reason"]) == [reason]  # the cached scan says the same


def _cli_factory(monkeypatch):
    import mtbc.evaluation.predict as predict

    monkeypatch.setattr(predict, "predict_files",
                        functools.partial(predict.predict_files, extractor_factory=factory))


def test_predict_exits_non_zero_when_nothing_could_be_predicted(trained, tmp_path,  # noqa: F811
                                                                monkeypatch, capsys):
    _, model, _, _, _ = trained
    _cli_factory(monkeypatch)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00" * 100)
    assert main(["predict", str(model), str(empty), str(garbage),
                 "--cache", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert f"{empty}: " in err and f"{garbage}: " in err
    assert "no file could be predicted (2 failed" in err and "Traceback" not in err
    good = write_tone(tmp_path / "good.wav", 220, 0.6, 0.5)
    assert main(["predict", str(model), str(good), str(empty),
                 "--cache", str(tmp_path / "c")]) == 0
    assert f"{empty}: " in capsys.readouterr().err  # the failure is still named


def test_predict_refuses_missing_inputs_naming_them(trained, tmp_path, capsys):  # noqa: F811
    _, model, _, _, _ = trained
    (tmp_path / "nothing").mkdir()
    assert main(["predict", str(model), str(tmp_path / "nope.wav"), str(tmp_path / "nothing"),
                 "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "nope.wav (no such file or folder)" in err and "nothing (an empty folder)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_model_file_with_an_object_array_is_refused_naming_the_file(trained, tmp_path,  # noqa: F811
                                                                     capsys):
    _, model, _, _, _ = trained
    with np.load(model, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    victim = next(k for k in arrays if k != "header")
    arrays[victim] = np.array([{"x": 1}], dtype=object)
    evil = tmp_path / "evil.npz"
    np.savez(evil, **arrays)
    song = write_tone(tmp_path / "song.wav", 220, 0.5, 0.5)
    assert main(["predict", str(evil), str(song), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert str(evil) in err and "cannot be read" in err and "Traceback" not in err
