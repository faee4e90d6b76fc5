"""mtbc.robustness: deformations, deformed embeddings through the cache, stability, probe drop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import welch

from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import from_folder, scan
from mtbc.data.tags import complete_negatives
from mtbc.evaluation import evaluate_probe
from mtbc.robustness import DEFORMATIONS, deform, embed_deformed, track_stability
from mtbc.robustness.deform import full_set, label
from mtbc.robustness.embed import DeformedExtractor, deformed_fingerprint
from mtbc.robustness.measures import compare_models, paired_mean_test
from mtbc.robustness.probe import clean_probe_predictions, probe_drop
from mtbc.robustness.study import resolve_deformations
from tests.cache.test_extract import CountingExtractor

SR = 16000


@pytest.fixture(scope="module")
def music():
    t = np.arange(SR) / SR
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    return (x + 0.02 * rng.standard_normal(SR)).astype(np.float32)


@pytest.mark.parametrize("name,strength", full_set())
def test_each_deformation_is_deterministic_by_seed(music, name, strength):
    a = deform(music, SR, name, strength, seed=3)
    b = deform(music, SR, name, strength, seed=3)
    assert a.dtype == np.float32 and a.ndim == 1 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:len(music)], music[:len(a)])  # it did change something
    if name in ("noise", "reverb"):  # the seed is what draws their noise
        assert not np.array_equal(a, deform(music, SR, name, strength, seed=4))


def test_deform_leaves_the_global_random_state_alone(music):
    np.random.seed(11)
    expected = np.random.random()
    np.random.seed(11)
    deform(music, SR, "noise", 0.1, seed=0)
    assert np.random.random() == expected


@pytest.mark.parametrize("name", list(DEFORMATIONS))
def test_strength_zero_returns_the_input_itself(music, name):
    assert deform(music, SR, name, 0, seed=5) is music


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 0.0])
def test_measured_snr_is_within_half_a_db_of_the_request(music, snr_db):
    y = deform(music, SR, "noise", 10 ** (-snr_db / 10), seed=1)
    noise = y.astype(np.float64) - music
    measured = 10 * np.log10(np.mean(music.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr_db) < 0.5
    assert label("noise", 10 ** (-snr_db / 10)) == f"noise {snr_db:g} dB SNR"


@pytest.mark.parametrize("sr", [24000, 44100])
def test_mp3_at_32_kbps_removes_content_above_its_cut_off(sr):
    # LAME low-passes near 8.3 kHz at 32 kbps (measured, docs/robustness.md)
    x = (0.1 * np.random.default_rng(0).standard_normal(2 * sr)).astype(np.float32)
    y = deform(x, sr, "mp3", 32, seed=0)
    f, p_in = welch(x, sr, nperseg=2048)
    _, p_out = welch(y, sr, nperseg=2048)
    above, below = f > 9500, (f > 200) & (f < 7000)
    assert 10 * np.log10(p_out[above].sum() / p_in[above].sum()) < -40
    assert abs(10 * np.log10(p_out[below].sum() / p_in[below].sum())) < 1.5


def test_bad_names_and_strengths_are_refused_with_the_fix(music):
    with pytest.raises(ValueError, match="does not exist; choose one of noise"):
        deform(music, SR, "echo", 1)
    with pytest.raises(ValueError, match="one of"):
        deform(music, SR, "mp3", 33)
    with pytest.raises(ValueError, match="not a \\[name, strength\\] pair"):
        resolve_deformations(["noise"])
    assert resolve_deformations("all") == full_set()


# ------------------------------------------------------------------ through the cache

@pytest.fixture
def collection(tmp_path, tone):
    root = tmp_path / "music"
    for i in range(4):
        tone(root / ("a" if i % 2 else "b") / f"t{i}.wav", seconds=0.6, sr=16000,
             freq=200 + 150 * i)
    return scan(from_folder(root), progress=False)


def test_identity_gives_identical_embeddings_and_a_rerun_computes_nothing(tmp_path,
                                                                           collection):
    store = EmbeddingStore(tmp_path / "cache")
    ext = CountingExtractor()
    extract_collection(collection.tracks, ext, store, progress=False)
    calls = ext.calls
    first = embed_deformed(collection.tracks, {"m": ext}, store, [("gain", 0), ("noise", 0.1)],
                           seed=0)
    assert list(first["extracted"]) == [4, 4] and list(first["failed"]) == [0, 0]
    assert ext.calls == calls + 8
    fp0 = deformed_fingerprint(ext.fingerprint, "gain", 0, 0)
    for h in collection.tracks["content_hash"]:
        np.testing.assert_array_equal(store.get(h, fp0), store.get(h, ext.fingerprint))
    info = store.read_info(fp0)
    assert info["deformation"]["name"] == "gain" and info["deformation"]["seed"] == 0
    again = embed_deformed(collection.tracks, {"m": ext}, store, [("gain", 0), ("noise", 0.1)],
                           seed=0)
    assert list(again["extracted"]) == [0, 0] and list(again["cached"]) == [4, 4]
    assert ext.calls == calls + 8  # nothing decoded, deformed or embedded
    noisy = deformed_fingerprint(ext.fingerprint, "noise", 0.1, 0)
    h = collection.tracks["content_hash"].iloc[0]
    assert not np.array_equal(store.get(h, noisy), store.get(h, ext.fingerprint))


def test_fingerprint_records_deformation_strength_and_seed():
    fps = {deformed_fingerprint("mfcc-1", n, s, seed) for n, s in [("noise", 0.1), ("noise", 1.0),
                                                                   ("gain", 12)]
           for seed in (0, 1)}
    assert len(fps) == 6
    assert all(fp.startswith("mfcc-1~") and "/" not in fp for fp in fps)
    wrapped = DeformedExtractor(CountingExtractor(), "noise", 0.1, 2)
    assert wrapped.sample_rate == 8000 and wrapped.fingerprint.endswith(
        deformed_fingerprint(CountingExtractor().fingerprint, "noise", 0.1, 2)[-8:])


# ------------------------------------------------------------------ measures

def test_identity_stability_is_a_cosine_of_one_and_perfect_retrieval(rng):
    x = rng.standard_normal((30, 12))
    s = track_stability(x, x.copy())
    np.testing.assert_allclose(s["cosine"], 1.0)
    assert s["hit"].mean() == 1.0 and (s["rank"] == 1).all()
    moved = track_stability(x, rng.standard_normal((30, 12)))
    assert moved["cosine"].mean() < 0.5 and moved["hit"].mean() < 0.5


def test_concatenated_blocks_weigh_the_same_whatever_their_width(rng):
    small, wide = rng.standard_normal((25, 2)), rng.standard_normal((25, 200))
    moved_small = small + rng.standard_normal((25, 2))
    joined = track_stability(np.hstack([small, wide]), np.hstack([moved_small, wide]),
                             blocks=[2, 200])
    unweighted = track_stability(np.hstack([small, wide]), np.hstack([moved_small, wide]))
    assert joined["cosine"].mean() < unweighted["cosine"].mean() - 0.1
    with pytest.raises(ValueError, match="do not add up"):
        track_stability(small, small, blocks=[1])


def _labelled_segments(rng, n_per_class=12, classes=3, dim=16, segs=3):
    centres = 3.0 * rng.standard_normal((classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    tracks = pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(len(labels))],
                           "label": [f"c{c}" for c in labels]})
    index = np.repeat(np.arange(len(labels)), segs)
    feats = centres[labels][index] + rng.standard_normal((len(index), dim))
    return tracks, feats[:, None, :].astype(np.float32), index


def test_clean_predictions_are_notebook_04s_and_identity_drops_nothing(rng):
    tracks, feats, index = _labelled_segments(rng)
    preds = clean_probe_predictions((feats, index), tracks, {"same": (feats.copy(), index)},
                                    seed=0, n_splits=3)
    ref = evaluate_probe(feats, index, tracks, probe="linear", seed=0, n_splits=3, n_boot=0)
    clean = preds[preds["condition"] == "clean"].set_index("track_id")["predicted"]
    pd.testing.assert_series_equal(clean.sort_index(),
                                   ref.predictions["predicted"].sort_index(), check_names=False)
    groups = pd.Series(np.arange(len(tracks)), index=tracks["track_id"])
    summary, detail = probe_drop(preds, groups, n_boot=200)
    assert summary.loc[0, "drop"] == 0.0 and summary.loc[0, "p_value"] == 1.0
    assert (detail["drop"] == 0).all()


def test_planted_destroying_deformation_drops_significantly_a_harmless_one_does_not(rng):
    tracks, feats, index = _labelled_segments(rng)
    destroyed = rng.standard_normal(feats.shape).astype(np.float32) * feats.std()
    harmless = feats + 0.01 * rng.standard_normal(feats.shape).astype(np.float32)
    preds = clean_probe_predictions((feats, index), tracks,
                                    {"destroy": (destroyed, index), "harmless": (harmless, index)},
                                    seed=0, n_splits=3)
    groups = pd.Series(np.arange(len(tracks)), index=tracks["track_id"])
    summary = probe_drop(preds, groups, n_boot=200)[0].set_index("deformation")
    assert summary.loc["destroy", "drop"] > 0.3 and summary.loc["destroy", "p_value"] < 0.01
    assert summary.loc["destroy", "ci_low"] > 0
    assert summary.loc["harmless", "p_value"] > 0.05
    track_means = feats[:, 0].reshape(len(tracks), -1, feats.shape[2]).mean(axis=1)
    stable = track_stability(track_means, harmless[:, 0].reshape(track_means.shape[0], -1,
                                                                 feats.shape[2]).mean(axis=1))
    assert stable["cosine"].min() > 0.99


def test_paired_mean_test_rejects_at_most_the_nominal_rate_under_the_null():
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(20), 2)
    rejections = 0
    for _ in range(200):
        shared = rng.standard_normal(20)[groups]  # group effect common to both systems
        a = shared + rng.standard_normal(40)
        b = shared + rng.standard_normal(40)
        rejections += paired_mean_test(a, b, groups=groups, n_perm=500, n_boot=0).p_value < 0.05
    assert rejections / 200 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)
    planted = paired_mean_test(np.ones(40), np.zeros(40) + 0.1 * rng.standard_normal(40),
                               groups=groups, n_boot=200)
    assert planted.p_value < 0.001 and planted.ci_low > 0.9


def test_model_comparison_table_is_holm_adjusted_per_deformation(rng):
    rows = []
    for model, shift in (("a", 0.0), ("b", 0.5)):
        for d in ("noise", "mp3"):
            rows.append(pd.DataFrame({"model": model, "deformation": d,
                                      "track_id": [f"t{i}" for i in range(30)],
                                      "group": np.arange(30),
                                      "cosine": shift + 0.1 * rng.standard_normal(30)}))
    table = compare_models(pd.concat(rows), "cosine", n_boot=100)
    assert list(table["deformation"]) == ["noise", "mp3"]
    assert (table["diff"] < -0.3).all() and (table["p_holm"] >= table["p_value"]).all()
    assert (table["p_holm"] < 0.05).all() and (table["n_tracks"] == 30).all()


def test_run_robustness_end_to_end_on_a_tiny_collection(tmp_path, tone):
    from types import SimpleNamespace

    from mtbc.robustness.study import (
        RobustnessOptions,
        drops_display,
        example_clips,
        run_robustness,
        stability_display,
        tag_drops_display,
    )

    root = tmp_path / "music"
    for i in range(12):  # 6 training tracks per tagging fold: 3 inner folds
        tone(root / ("a" if i % 2 else "b") / f"t{i}.wav", seconds=0.6, sr=16000,
             freq=(300 if i % 2 else 900) + 20 * i, amplitude=0.2 + 0.05 * i)
    tracks = scan(from_folder(root), progress=False).tracks
    tags = [("loud",) if i % 4 < 2 else ("soft",) for i in range(len(tracks))]
    tracks = tracks.assign(tags=tags, tags_negative=complete_negatives(tags))
    store = EmbeddingStore(tmp_path / "cache")
    ext, other = CountingExtractor(), CountingExtractor(scale=3.0)
    for e in (ext, other):
        extract_collection(tracks, e, store, progress=False)
    study = SimpleNamespace(tracks=tracks, store=store, models={"m": ext, "k": other})
    result = run_robustness(study, RobustnessOptions(deformations=[["gain", 0], ["noise", 1.0]],
                                                     n_splits=2, n_boot=50))
    assert result.labels == ["gain 0 dB", "noise 0 dB SNR"]
    gain0 = result.stability.loc[("m", "gain 0 dB")]
    assert gain0["cosine"] == pytest.approx(1.0) and gain0["recall1"] == 1.0
    assert gain0["n_tracks"] == 12
    concat = result.stability.loc[("concat(m + k)", "gain 0 dB")]
    assert concat["cosine"] == pytest.approx(1.0) and concat["n_tracks"] == 12
    assert len(result.stability_tests) == 6  # 3 pairs x 2 deformations
    drops = result.drops[result.drops["model"] == "m"].set_index("deformation")
    assert drops.loc["gain 0 dB", "drop"] == 0.0 and drops.loc["gain 0 dB", "n_tracks"] == 12
    assert result.answer.startswith("At **gain 0 dB**, m loses 0.0 points")
    assert list(stability_display(result).columns)[-2:] == ["n tracks", "n groups"]
    assert len(drops_display(result)) == 6  # m, k and concat(m + k) x 2 deformations
    tagged = result.tag_drops.set_index(["model", "deformation"])
    assert list(dict.fromkeys(result.tag_drops["model"])) == ["m", "k", "concat(m + k)"]
    assert (tagged.xs("gain 0 dB", level="deformation")["drop"] == 0).all()
    assert (tagged["n_tracks"] == 12).all() and result.why_no_tagging is None
    shown = tag_drops_display(result)
    assert len(shown) == 6 and list(shown.columns)[-3:] == ["n tracks", "n groups", "n tags"]
    frame, _ = result.heatmap()
    assert list(frame.columns) == result.labels
    assert list(frame.index) == ["m", "k", "concat(m + k)"]
    assert frame.loc["concat(m + k)", "gain 0 dB"] == 0.0
    still = run_robustness(study, RobustnessOptions(deformations=[["gain", 0]], probe=False,
                                                    models=["m"], n_boot=50))
    assert still.why_no_probe and not len(still.drops)
    assert still.answer.startswith("At **gain 0 dB**, m keeps a cosine of 1.000")
    assert list(still.heatmap()[0].index) == ["m"]
    assert still.why_no_tagging and not len(still.tag_drops)
    tags_only = SimpleNamespace(tracks=tracks.drop(columns=["label"]), store=store,
                                models={"m": ext})
    only = run_robustness(tags_only, RobustnessOptions(deformations=[["gain", 0]], n_splits=2,
                                                       n_boot=50))
    assert not len(only.drops) and "no labelled" in only.why_no_probe
    assert only.answer.startswith("At **gain 0 dB**, m loses 0.000 [0.000, 0.000] (p = 1) of "
                                  "the tagging probe's macro ROC-AUC")
    frame, colorbar = only.heatmap()
    assert "ROC-AUC" in colorbar and frame.loc["m", "gain 0 dB"] == 0.0
    with pytest.raises(ValueError, match="not among this run's models"):
        run_robustness(study, RobustnessOptions(models=["zzz"]))
    clips = example_clips(study, result.deformations, seconds=0.5)
    assert [c[0] for c in clips[1:]] == result.labels and len(clips[1][1]) == 8000


def test_tracks_without_a_clean_entry_are_not_deformed(tmp_path, collection):
    store = EmbeddingStore(tmp_path / "cache")
    ext = CountingExtractor()
    extract_collection(collection.tracks.iloc[:3], ext, store, progress=False)
    report = embed_deformed(collection.tracks, {"m": ext}, store, [("gain", -12)], seed=0)
    assert report.loc[0, "extracted"] == 3 and report.loc[0, "failed"] == 0
    skipped = collection.tracks["content_hash"].iloc[3]
    assert not store.has(skipped, deformed_fingerprint(ext.fingerprint, "gain", -12, 0))


def test_probe_drop_of_a_harmless_deformation_rejects_at_most_the_nominal_rate():
    rng = np.random.default_rng(3)
    ids = [f"t{i:02d}" for i in range(40)]
    groups = pd.Series(np.repeat(np.arange(20), 2), index=ids)
    rejections = 0
    for _ in range(200):
        truth = rng.choice(["a", "b", "c"], 40)

        frame = pd.concat([pd.DataFrame({"track_id": ids, "condition": cond, "label": truth,
                                         "predicted": _guess(rng, truth, 0.6)})
                           for cond in ("clean", "harmless")])
        summary, _ = probe_drop(frame, groups, n_boot=0)
        rejections += summary.loc[0, "p_value"] < 0.05
    assert rejections / 200 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)
    planted = pd.concat([pd.DataFrame({"track_id": ids, "condition": cond, "label": truth,
                                       "predicted": _guess(rng, truth, p)})
                         for cond, p in (("clean", 0.9), ("destroy", 0.2))])
    assert probe_drop(planted, groups, n_boot=0)[0].loc[0, "p_value"] < 0.01


def _guess(rng, truth, accuracy):
    wrong = np.where(truth == "a", "b", "a")
    return np.where(rng.random(len(truth)) < accuracy, truth, wrong)
