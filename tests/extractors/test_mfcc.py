"""MfccExtractor: contract, segmentation, determinism and features that mean what they say."""

import json

import numpy as np
import pytest

from mtbc.extractors import get_extractor
from mtbc.extractors.mfcc import MfccExtractor

SR = 22050


def sine(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def ext() -> MfccExtractor:
    return get_extractor("mfcc")


def test_registry_builds_mfcc_with_int_rate(ext):
    assert isinstance(ext, MfccExtractor)
    assert isinstance(ext.sample_rate, int) and ext.sample_rate == SR
    assert MfccExtractor(sample_rate=16000.0).sample_rate == 16000


def test_embed_shape_dtype_and_feature_names(ext):
    out = ext.embed(sine(440, 3.0))
    assert out.shape == (1, 1, 158), f"expected (1, 1, 158), got {out.shape}"
    assert out.dtype == np.float32
    assert len(ext.feature_names()) == ext.dim == 158
    assert np.isfinite(out).all()


@pytest.mark.parametrize("seconds, expected", [
    (7.0, 3),   # 3 + 3 + 1 s remainder, kept (>= 1 s)
    (6.5, 2),   # 0.5 s remainder, dropped
    (9.0, 3),   # exact multiple: no remainder
    (0.4, 1),   # shorter than a segment: one segment
    (0.001, 1),  # shorter than n_fft: padded, still one segment
])
def test_segment_count_follows_remainder_policy(ext, seconds, expected):
    out = ext.embed(sine(440, seconds))
    assert out.shape[0] == expected, f"{seconds} s -> {out.shape[0]} segments, want {expected}"
    assert np.isfinite(out).all()


def test_embed_is_deterministic(ext):
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(4 * SR)).astype(np.float32)
    np.testing.assert_array_equal(ext.embed(wave), ext.embed(wave.copy()))


def test_silence_gives_finite_features(ext):
    assert np.isfinite(ext.embed(np.zeros(2 * SR, np.float32))).all()


def test_high_tone_moves_energy_to_higher_contrast_band_and_lowers_mfcc1(ext):
    names = ext.feature_names()
    low = dict(zip(names, ext.embed(sine(1000, 3.0))[0, 0], strict=True))
    high = dict(zip(names, ext.embed(sine(4000, 3.0))[0, 0], strict=True))
    # contrast bands from fmin=200 Hz: band 3 = 800-1600 Hz, band 5 = 3200-6400 Hz
    assert low["mean contrast_3"] > high["mean contrast_3"] + 20
    assert high["mean contrast_5"] > low["mean contrast_5"] + 20
    # mfcc_1 weighs low mel bands positively, high ones negatively: spectral tilt
    assert low["mean mfcc_1"] > high["mean mfcc_1"]


def test_fingerprint_changes_with_every_option():
    base = MfccExtractor()
    assert MfccExtractor().fingerprint == base.fingerprint
    changed = [dict(sample_rate=16000), dict(segment_seconds=2.0), dict(min_last_seconds=0.5),
               dict(n_mfcc=13), dict(n_mels=64), dict(n_fft=1024), dict(hop_length=256),
               dict(fmin=100.0), dict(n_bands=5)]
    prints = {MfccExtractor(**opts).fingerprint for opts in changed}
    assert base.fingerprint not in prints and len(prints) == len(changed)


def test_metadata_is_json_and_names_fingerprint(ext):
    meta = json.loads(json.dumps(ext.metadata()))
    assert meta["fingerprint"] == ext.fingerprint
    assert meta["extractor"] == "mfcc" and meta["dim"] == 158 and meta["n_layers"] == 1


@pytest.mark.parametrize("bad", [dict(sample_rate=22050.5), dict(segment_seconds=0),
                                 dict(n_mfcc=0), dict(fmin=8000.0)])
def test_bad_options_raise(bad):
    with pytest.raises(ValueError):
        MfccExtractor(**bad)


@pytest.mark.parametrize("wave", [np.zeros(0, np.float32), np.zeros((2, 100), np.float32),
                                  np.array([0.0, np.nan], np.float32)])
def test_bad_waves_raise(ext, wave):
    with pytest.raises(ValueError):
        ext.embed(wave)
