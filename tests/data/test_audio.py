"""mtbc.data.audio: decoding, validation (every hostile case names the file), resampling, chunking."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from mtbc.data.audio import AudioError, AudioWarning, chunk_wave, load_audio, read_audio


@pytest.mark.parametrize("ext,fmt,subtype", [
    ("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
])
def test_load_audio_reads_common_formats_resampled_to_float32_mono(tmp_path, tone, ext, fmt, subtype):
    path = tone(tmp_path / f"a.{ext}", seconds=1.0, sr=44100, channels=2, fmt=fmt, subtype=subtype)
    wave = load_audio(path, 24000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 24000) <= 1200  # MP3 encoders add priming samples
    assert 0.2 < np.sqrt(np.mean(wave**2)) < 0.5  # a 0.5-amplitude sine has RMS 0.354


def test_downmix_averages_channels_not_time(tmp_path):
    sr = 8000
    left = np.full(sr, 0.5, dtype=np.float32)
    right = np.full(sr, -0.1, dtype=np.float32)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="FLOAT")
    wave = load_audio(path, None)
    assert len(wave) == sr
    np.testing.assert_allclose(wave, 0.2, atol=1e-6)


def test_eight_channels_96k_downmixed_and_resampled(tmp_path, tone):
    path = tone(tmp_path / "surround.wav", seconds=0.5, sr=96000, channels=8)
    wave = load_audio(path, 24000)
    assert len(wave) == 12000
    assert read_audio(path)[1].channels == 8


def test_resampling_keeps_frequency(tmp_path, tone):
    path = tone(tmp_path / "a.wav", seconds=1.0, sr=44100, freq=1000.0)
    wave = load_audio(path, 16000)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 1000) < 2


def test_eight_bit_wav_is_scaled_to_unit_range(tmp_path, tone):
    path = tone(tmp_path / "8bit.wav", seconds=0.2, sr=8000, subtype="PCM_U8")
    wave = load_audio(path, None)
    assert 0.4 < np.abs(wave).max() <= 0.51


def test_unicode_name_and_symlink(tmp_path, tone):
    path = tone(tmp_path / "月亮代表我的心.flac", seconds=0.3, sr=22050)
    link = tmp_path / "link.flac"
    os.symlink(path, link)
    np.testing.assert_array_equal(load_audio(path, None), load_audio(link, None))


def test_one_millisecond_clip_loads_unless_minimum_set(tmp_path, tone):
    path = tone(tmp_path / "blip.wav", seconds=0.001, sr=16000)
    assert len(load_audio(path, None)) == 16
    with pytest.raises(AudioError, match="too short") as err:
        load_audio(path, None, min_duration=1.0)
    assert str(path) in str(err.value)


def _hostile(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "missing":
        pass
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not audio\n" * 20)
    elif case == "zero_length":
        sf.write(path, np.zeros((0, 1), np.float32), 16000)
    elif case == "truncated":
        sf.write(path, np.random.default_rng(0).standard_normal(16000).astype(np.float32) * .1, 16000)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "corrupt_flac":
        path = tmp_path / "corrupt.flac"
        sf.write(path, np.random.default_rng(0).standard_normal(16000).astype(np.float32) * .1,
                 16000, format="FLAC")
        data = bytearray(path.read_bytes())
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif case in ("nan", "inf"):
        x = np.zeros(1000, np.float32)
        x[10] = np.nan if case == "nan" else np.inf
        sf.write(path, x, 16000, subtype="FLOAT")
    elif case == "directory":
        path.mkdir()
    elif case == "broken_symlink":
        os.symlink(tmp_path / "nowhere.wav", path)
    return path


@pytest.mark.parametrize("case,reason", [
    ("missing", "file not found"),
    ("broken_symlink", "broken symlink"),
    ("empty", "empty"),
    ("text", "cannot decode"),
    ("zero_length", "no samples"),
    ("truncated", "truncated"),
    ("corrupt_flac", "cannot decode"),
    ("nan", "non-finite"),
    ("inf", "non-finite"),
    ("directory", "directory"),
])
def test_bad_input_raises_audio_error_naming_file_and_reason(tmp_path, case, reason):
    path = _hostile(tmp_path, case)
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert type(err.value) is AudioError
    assert str(err.value).startswith(str(path))
    assert reason in err.value.reason
    assert err.value.path == str(path)


def test_silence_warns_by_default_and_can_be_refused(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.warns(AudioWarning, match="silent"):
        wave = load_audio(path, 16000)
    assert not wave.any()
    with pytest.raises(AudioError, match="silent"):
        load_audio(path, 16000, on_silence="error")


def test_chunk_wave_equal_chunks_then_remainder_policy():
    wave = np.arange(25, dtype=np.float32)
    chunks = chunk_wave(wave, 10)
    assert [len(c) for c in chunks] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate(chunks), wave)
    assert [len(c) for c in chunk_wave(wave, 10, min_last=6)] == [10, 10]
    assert [len(c) for c in chunk_wave(wave[:4], 10, min_last=6)] == [4]  # never nothing
    assert [len(c) for c in chunk_wave(wave[:20], 10)] == [10, 10]
    with pytest.raises(ValueError):
        chunk_wave(wave, 0)
