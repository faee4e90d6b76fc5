"""Early and late fusion: block standardisation, track-level fusion, identical-model fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtbc.evaluation import (
    BlockStandardizer,
    evaluate_early_fusion,
    evaluate_late_fusion,
    evaluate_probe,
    late_fusion,
)
from mtbc.evaluation.data import track_means


def make_tracks(n_tracks=80, n_classes=4):
    labels = np.arange(n_tracks) % n_classes
    return pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(n_tracks)],
                         "label": [f"c{c}" for c in labels],
                         "group": [f"g{i // 2}" for i in range(n_tracks)]})


@parametrize_with_checks([BlockStandardizer()])  # the checks vary n_features: one block
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_block_standardisation_gives_every_block_unit_total_variance():
    rng = np.random.default_rng(0)
    wide = 50.0 * rng.standard_normal((200, 1024)) + 3.0   # big, many dims
    narrow = 0.01 * rng.standard_normal((200, 8))          # tiny, few dims
    x = np.hstack([wide, narrow]).astype(np.float32)
    plain = StandardScaler().fit_transform(x)
    assert plain[:, :1024].var(axis=0).sum() / plain[:, 1024:].var(axis=0).sum() == (
        pytest.approx(128, rel=1e-3))  # plain standardisation: the wide block has 128x the energy
    z = BlockStandardizer(blocks=[1024, 8]).fit_transform(x)
    assert z.dtype == np.float32
    assert z[:, :1024].var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    assert z[:, 1024:].var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    # each block: the StandardScaler output divided by sqrt(block_dim)
    assert np.allclose(z[:, 1024:], plain[:, 1024:] / np.sqrt(8), atol=1e-5)


def test_block_sizes_must_cover_the_features():
    with pytest.raises(ValueError, match="sum to the 5 features"):
        BlockStandardizer(blocks=[2, 2]).fit(np.zeros((3, 5)))


def test_track_means_average_each_tracks_segments_in_any_order():
    x = np.arange(12, dtype=np.float32).reshape(6, 1, 2)
    ti = np.array([2, 0, 2, 0, 0, 2])
    m = track_means(x, ti, 4)
    assert np.allclose(m[0, 0], x[[1, 3, 4], 0].mean(axis=0))
    assert np.allclose(m[2, 0], x[[0, 2, 5], 0].mean(axis=0))
    assert np.isnan(m[1]).all() and np.isnan(m[3]).all()


def _two_models(tracks, seed=0):
    """Model A (1 segment per track, 6 layers) tells classes {0,1} from {2,3}; model B
    (5 short segments per track, 1 layer, 8-d) tells even from odd classes."""
    rng = np.random.default_rng(seed)
    codes = pd.Categorical(tracks["label"]).codes
    n = len(tracks)
    ti_a = np.arange(n)
    xa = rng.standard_normal((n, 6, 6)).astype(np.float32)
    xa[:, 2, 0] += 4.0 * (codes >= 2)
    ti_b = np.repeat(np.arange(n), 5)
    xb = rng.standard_normal((len(ti_b), 1, 8)).astype(np.float32)
    xb[:, 0, 0] += 3.0 * (codes[ti_b] % 2)
    return {"A": (xa, ti_a), "B": (xb, ti_b)}


def test_early_fusion_combines_complementary_models():
    tracks = make_tracks(120)
    blocks = _two_models(tracks)
    fused = evaluate_early_fusion(blocks, tracks, n_boot=0)
    alone = {m: evaluate_probe(x, ti, tracks, n_boot=0).metric() for m, (x, ti) in
             blocks.items()}
    assert max(alone.values()) <= 0.6  # each model alone separates only 2 of 4 classes
    assert fused.metric() >= 0.9
    assert all(layers["A"] == 2 for layers in fused.folds["layer"])  # A's layer chosen alone
    assert set(fused.layer_scores["model"]) == {"A", "B"}


def test_late_fusion_of_identical_models_equals_either_model():
    tracks = make_tracks(n_tracks=40)
    x, ti = _two_models(tracks)["A"]
    single = evaluate_probe(x, ti, tracks, layer="select", n_boot=100, name="A")
    fused = late_fusion([single, single], name="A+A")
    pd.testing.assert_frame_equal(fused.probabilities, single.probabilities, check_exact=True)
    assert fused.predictions["predicted"].equals(single.predictions["predicted"])
    pd.testing.assert_frame_equal(fused.metrics, single.metrics)


def test_late_fusion_averages_models_on_the_same_folds():
    tracks = make_tracks(120)
    blocks = _two_models(tracks)
    fused, singles = evaluate_late_fusion(blocks, tracks, n_boot=0, seed=1)
    expected = (singles["A"].probabilities + singles["B"].probabilities.loc[
        singles["A"].probabilities.index]) / 2
    pd.testing.assert_frame_equal(fused.probabilities, expected, rtol=1e-12)
    assert fused.metric() > max(s.metric() for s in singles.values())
    assert fused.seed == 1 and set(fused.fingerprint) == {"A", "B"}


def test_late_fusion_refuses_results_from_different_folds():
    tracks = make_tracks(n_tracks=40)
    x, ti = _two_models(tracks)["A"]
    a = evaluate_probe(x, ti, tracks, layer=2, n_boot=0, seed=0)
    b = evaluate_probe(x, ti, tracks, layer=2, n_boot=0, seed=1)
    with pytest.raises(ValueError, match="different folds"):
        late_fusion([a, b])
