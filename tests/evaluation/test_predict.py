"""Final probe bundles: save/load, fingerprint check, predicting files with a fake extractor."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mtbc.cache.store import EmbeddingStore
from mtbc.data.audio import chunk_wave
from mtbc.evaluation.predict import load_bundle, predict_files, train_final_probe
from mtbc.extractors import Extractor, make_fingerprint
from mtbc.files import content_hash


class ToneExtractor(Extractor):
    """Trivial extractor: per 0.25 s segment, layer 0 is constant, layer 1 holds the
    zero-crossing rate (pitch) and RMS, so the label (low/high tone) is in layer 1."""

    name = "tone"
    sample_rate = 8000
    min_samples = 400

    def __init__(self, *, gain: float = 1.0):
        self.gain = gain
        self.calls = 0

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, gain=self.gain)

    def embed(self, wave):
        self.calls += 1
        rows = []
        for seg in chunk_wave(wave, 2000, min_last=400):
            zcr = np.mean(np.abs(np.diff(np.sign(seg)))) / 2
            rms = np.sqrt(np.mean(seg**2))
            rows.append([[1.0, 0.0, 0.0], [100 * zcr * self.gain, rms, 1.0]])
        return np.asarray(rows, dtype=np.float32)


def write_tone(path, freq, seconds, amp):
    t = np.arange(int(seconds * 8000)) / 8000
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000)
    return path


@pytest.fixture
def trained(tmp_path):
    """A bundle trained on 8 low and 8 high tones, saved to model.joblib."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        label = "low" if i % 2 == 0 else "high"
        freq = rng.uniform(180, 260) if label == "low" else rng.uniform(1500, 1900)
        path = write_tone(tmp_path / f"train{i}.wav", freq, rng.uniform(0.5, 1.0),
                          rng.uniform(0.2, 0.8))
        rows.append({"track_id": f"train{i}", "path": str(path), "label": label,
                     "group": f"g{i}"})
    tracks = pd.DataFrame(rows)
    ex = ToneExtractor()
    store = EmbeddingStore(tmp_path / "cache")
    hasher = content_hash
    tracks["content_hash"] = [hasher(p) for p in tracks["path"]]
    from mtbc.data.audio import load_audio

    for p, h in zip(tracks["path"], tracks["content_hash"], strict=True):
        store.put(h, ex.fingerprint, ex.embed(load_audio(p, ex.sample_rate)))
    features, ti = store.load_many(tracks["content_hash"], ex.fingerprint, reduce=None)
    bundle = train_final_probe(features, ti, tracks, extractor=ex,
                               extractor_options={"gain": 1.0}, n_splits=4, seed=5)
    model = bundle.save(tmp_path / "models" / "model.npz")
    return bundle, model, store, features, ti


def factory(name, **options):
    assert name == "tone"
    return ToneExtractor(**options)


def test_bundle_records_how_it_was_trained(trained):
    bundle, _, _, features, _ = trained
    assert bundle.classes == ["high", "low"]
    assert bundle.extractor == "tone" and bundle.fingerprint == ToneExtractor().fingerprint
    assert bundle.seed == 5 and bundle.training["n_tracks"] == 16
    assert bundle.layer in (1, "mean")  # layer 0 is constant: never chosen
    assert bundle.training["n_segments"] == len(features)


def test_save_load_round_trip_gives_identical_probabilities(trained):
    bundle, model, _, features, ti = trained
    loaded = load_bundle(model)
    for track in range(3):
        emb = features[ti == track]
        assert np.array_equal(loaded.predict_proba(emb), bundle.predict_proba(emb))


def test_predict_files_labels_files_and_reports_the_bad_one(trained, tmp_path):
    _, model, store, _, _ = trained
    paths = [write_tone(tmp_path / "new_low.wav", 220, 0.75, 0.5),
             write_tone(tmp_path / "new_high.wav", 1700, 0.6, 0.3)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    paths.insert(1, broken)
    paths.append(tmp_path / "missing.wav")
    out = predict_files(model, paths, store=store, extractor_factory=factory, progress=False)
    assert out["path"].tolist() == [str(p) for p in paths]
    assert out["label"].tolist()[0::2] == ["low", "high"]
    assert out["error"].isna().tolist() == [True, False, True, False]
    assert "broken.wav" in out["error"].iloc[1]
    assert out["error"].iloc[3]  # a missing file is reported too
    assert np.allclose(out[["p_high", "p_low"]].iloc[[0, 2]].sum(axis=1), 1.0)
    # the new embeddings went into the store under the file's content hash
    assert store.has(out["content_hash"].iloc[0], ToneExtractor().fingerprint)


def test_predict_files_reuses_cached_embeddings(trained, tmp_path):
    _, model, store, _, _ = trained
    path = write_tone(tmp_path / "again.wav", 240, 0.5, 0.4)
    ex = ToneExtractor()
    first = predict_files(model, [path], store=store, extractor=ex, progress=False)
    second = predict_files(model, [path], store=store, extractor=ex, progress=False)
    assert ex.calls == 1
    pd.testing.assert_frame_equal(first, second)


def test_a_different_extractor_fingerprint_is_refused(trained, tmp_path):
    _, model, store, _, _ = trained
    path = write_tone(tmp_path / "x.wav", 220, 0.5, 0.5)
    with pytest.raises(ValueError, match="fingerprint"):
        predict_files(model, [path], store=store, extractor_factory=factory,
                      extractor_options={"gain": 2.0}, progress=False)
    assert not store.has(content_hash(path), ToneExtractor(gain=2.0).fingerprint)


def test_load_bundle_refuses_other_files(tmp_path):
    joblib.dump({"not": "a model"}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="pickle/joblib file"):
        load_bundle(tmp_path / "other.joblib")
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an mtbc probe model"):
        load_bundle(tmp_path / "arrays.npz")
    with pytest.raises(FileNotFoundError, match="notebook 04"):
        load_bundle(tmp_path / "absent.npz")


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: a stand-in for an attacker's code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["pickle", "joblib"])
def test_a_crafted_pickle_model_is_refused_and_never_run(tmp_path, writer, capsys):
    import pickle

    from mtbc.cli import main

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.joblib"
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        joblib.dump(_Payload(marker), evil)
    song = write_tone(tmp_path / "song.wav", 220, 0.5, 0.5)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["predict", str(evil), str(song), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "pickle" in err and "evil.joblib" in err and "Traceback" not in err
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_tampered_model_cannot_name_other_classes(trained, tmp_path):
    import json

    _, model, _, _, _ = trained
    with np.load(model, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header["pipeline"]["steps"][0][1]["estimator"] = "os.system"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="is not one of"):
        load_bundle(tmp_path / "tampered.npz")


def test_mlp_and_early_fusion_probes_round_trip(tmp_path, rng):
    from sklearn.pipeline import Pipeline

    from mtbc.evaluation import BlockStandardizer, LayerSelector, LinearProbe, MLPProbe
    from mtbc.evaluation.predict import ProbeBundle, save_bundle

    X = rng.standard_normal((60, 2, 6)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20)
    X[:, 1, 0] += y
    for probe in (MLPProbe(hidden=8, max_epochs=3, random_state=0),
                  LinearProbe(C=0.5, scaler=BlockStandardizer(blocks=[2, 4]))):
        pipe = Pipeline([("layer", LayerSelector(layer=1)), ("probe", probe)]).fit(X, y)
        bundle = ProbeBundle(pipeline=pipe, classes=["a", "b", "c"], layer=1, probe="x",
                             extractor="tone", extractor_options={}, fingerprint="f",
                             extractor_metadata={}, seed=0)
        loaded = load_bundle(save_bundle(bundle, tmp_path / f"{type(probe).__name__}.npz"))
        assert np.array_equal(loaded.pipeline.predict_proba(X), pipe.predict_proba(X))


def test_predict_resamples_with_the_extractors_own_resampler(trained, tmp_path, monkeypatch):
    """A file at another rate is resampled with the extractor's ``res_type`` (as extract does),
    and predict's embedding equals the one extract stores."""
    import librosa

    from mtbc.cache.extract import extract_collection

    class FastTone(ToneExtractor):
        res_type = "kaiser_fast"

    seen = []
    real = librosa.resample  # mtbc.data.audio resamples through librosa.resample
    monkeypatch.setattr(librosa, "resample",
                        lambda *a, **k: seen.append(k["res_type"]) or real(*a, **k))
    _, model, _, _, _ = trained
    t = np.arange(16000) / 16000
    song = tmp_path / "at16k.wav"
    sf.write(song, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    ex = FastTone()
    out = predict_files(model, [song], store=tmp_path / "c1", extractor=ex, progress=False)
    assert out["error"].isna().all() and seen == ["kaiser_fast"]
    tracks = pd.DataFrame({"track_id": ["s"], "path": [str(song)],
                           "content_hash": [content_hash(song)], "duration": [1.0]})
    store2 = EmbeddingStore(tmp_path / "c2")
    extract_collection(tracks, ex, store2, progress=False)
    assert seen == ["kaiser_fast", "kaiser_fast"]
    np.testing.assert_array_equal(EmbeddingStore(tmp_path / "c1").get(content_hash(song),
                                                                       ex.fingerprint),
                                  store2.get(content_hash(song), ex.fingerprint))


def test_predict_lists_hostile_files_and_labels_the_good_one(trained, tmp_path):
    from tests.hostile import write_hostile

    _, model, store, _, _ = trained
    cases = write_hostile(tmp_path / "bad")
    good = write_tone(tmp_path / "good.wav", 220, 0.6, 0.5)
    paths = [good, *[tmp_path / "bad" / n for n in cases]]
    out = predict_files(model, paths, store=store, extractor_factory=factory, progress=False)
    assert out["label"].iloc[0] == "low" and pd.isna(out["error"].iloc[0])
    errors = dict(zip(out["path"].map(lambda p: p.rsplit("/", 1)[-1]), out["error"],
                      strict=True))
    for name, phrase in cases.items():
        if name != "one_sample.wav":
            assert errors[name] and phrase in errors[name], (name, errors[name])
            assert name in errors[name]  # the reason names the file
