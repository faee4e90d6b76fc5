"""mtbc.stats.descriptive on synthetic embeddings with known answers."""

import numpy as np
import pandas as pd
import pytest

from mtbc.stats import descriptive as stats


def make_tracks(labels):
    return pd.DataFrame({"track_id": [f"t{i}" for i in range(len(labels))], "label": labels})


def clusters(n_per: int, dim: int = 16, *, spread: float = 0.05, seed: int = 0):
    """Three classes around orthogonal directions (well separated under cosine)."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(dim)[:3]
    X = np.concatenate([c + spread * rng.standard_normal((n_per, dim)) for c in centres])
    return X, np.repeat(["a", "b", "c"], n_per)


# -- track_stats -------------------------------------------------------------------------
def test_constant_tracks_have_mean_c_std_0_range_0():
    consts = [0.0, 1.5, -2.0]
    n_seg = [2, 3, 1]
    segs = np.concatenate([np.full((k, 2, 4), c) for c, k in zip(consts, n_seg, strict=True)])
    idx = np.repeat(np.arange(3), n_seg)
    df = stats.track_stats(segs, idx, make_tracks(["x", "y", "y"]), model="m")
    assert list(df.columns) == stats.TRACK_STATS_COLUMNS
    assert len(df) == 3 * 2, "one row per (track, layer) when layer=None"
    for c, k, (_, g) in zip(consts, n_seg, df.groupby("track_id", sort=False), strict=True):
        np.testing.assert_allclose(g["mean"], c)
        np.testing.assert_allclose(g[["std", "range"]], 0.0)
        assert (g["n_segments"] == k).all() and (g["dim"] == 4).all()
        assert (g["model"] == "m").all()


def test_track_stats_pools_segments_and_dims():
    # track 0: segment values 0 and 2 everywhere -> mean 1, std 1, min 0, max 2
    segs = np.stack([np.zeros((1, 3)), np.full((1, 3), 2.0)])
    df = stats.track_stats(segs, np.array([0, 0]), make_tracks(["a"]), layer=0)
    row = df.iloc[0]
    assert (row["mean"], row["std"], row["min"], row["max"], row["range"]) == (1, 1, 0, 2, 2)


def test_track_stats_selects_layers_and_unsorted_index():
    rng = np.random.default_rng(1)
    segs = rng.standard_normal((5, 4, 3))
    idx = np.array([1, 0, 1, 0, 1])
    df = stats.track_stats(segs, idx, make_tracks(["a", "b"]), layer=[-1, 1])
    assert list(df["layer"]) == [3, 1, 3, 1]
    np.testing.assert_allclose(df["mean"].iloc[0], segs[[1, 3]][:, 3].mean())
    assert list(df["n_segments"]) == [2, 2, 3, 3]


def test_track_stats_rejects_track_without_segments():
    with pytest.raises(ValueError, match="no segments"):
        stats.track_stats(np.zeros((2, 1, 3)), np.array([0, 0]), make_tracks(["a", "b"]))


# -- per-dimension statistics --------------------------------------------------------------
def test_dim_stats_finds_planted_high_variance_dim():
    rng = np.random.default_rng(0)
    X = 0.1 * rng.standard_normal((30, 2, 8))
    X[:, 1, 5] *= 50
    top = stats.top_variance_dims(X, layer=1, k=3)
    assert top["dim"].iloc[0] == 5 and top["std_rank"].iloc[0] == 1
    d = stats.dim_stats(X, layer=1)
    assert len(d) == 8 and sorted(d["std_rank"]) == list(range(1, 9))
    np.testing.assert_allclose(d["mean"], X[:, 1].mean(axis=0))


def test_multi_layer_input_needs_a_layer():
    with pytest.raises(ValueError, match="pass layer"):
        stats.dim_stats(np.zeros((3, 2, 4)))
    assert len(stats.dim_stats(np.zeros((3, 1, 4)))) == 4  # one layer: no choice needed


# -- similarity ------------------------------------------------------------------------------
def test_cosine_similarity_known_values():
    X = np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 3.0, 0], [-1.0, 0, 0]])
    sim = stats.cosine_similarity_matrix(X, make_tracks(list("abcd")))
    assert list(sim.index) == list(sim.columns) == ["t0", "t1", "t2", "t3"]
    assert sim.loc["t0", "t1"] == pytest.approx(1.0)
    assert sim.loc["t0", "t2"] == pytest.approx(0.0)
    assert sim.loc["t0", "t3"] == pytest.approx(-1.0)
    np.testing.assert_allclose(sim.to_numpy(), sim.to_numpy().T)


# -- projections -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_one_row_per_track_and_deterministic(method):
    X, y = clusters(5)
    tracks = make_tracks(list(y))
    a = stats.project_2d(X, tracks, method=method, seed=3)
    b = stats.project_2d(X, tracks, method=method, seed=3)
    assert list(a.columns) == ["track_id", "label", "x", "y", "method"]
    assert len(a) == len(X) and (a["method"] == method).all()
    assert list(a["track_id"]) == list(tracks["track_id"])
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["note"]


def test_pca_separates_two_far_clusters_on_x():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-5, 0.1, (4, 6)), rng.normal(5, 0.1, (4, 6))])
    p = stats.project_2d(X, make_tracks(list("aaaabbbb")), method="pca")
    assert np.sign(p["x"][:4]).nunique() == 1 and np.sign(p["x"][4:]).nunique() == 1
    assert np.sign(p["x"][0]) != np.sign(p["x"][4])


def test_tsne_with_few_tracks_falls_back_to_pca_with_note():
    X = np.random.default_rng(0).standard_normal((3, 5))
    with pytest.warns(UserWarning, match="PCA used instead"):
        p = stats.project_2d(X, make_tracks(list("abc")), method="tsne")
    assert (p["method"] == "pca").all() and "at least 4" in p.attrs["note"]


def test_single_track_projects_to_origin_with_note():
    with pytest.warns(UserWarning, match="origin"):
        p = stats.project_2d(np.ones((1, 5)), make_tracks(["a"]), method="pca")
    assert (p["x"].iloc[0], p["y"].iloc[0]) == (0.0, 0.0)


# -- separability ----------------------------------------------------------------------------
def test_well_separated_classes_score_high():
    X, y = clusters(6)
    s = stats.separability(X, y)
    assert s["silhouette"] > 0.9, s
    assert s["ratio"] < 0.1, s
    assert s["n_classes"] == 3 and s["n_tracks"] == 18 and s["note"] == ""


def test_noise_scores_near_zero_silhouette_and_unit_ratio():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 32))
    y = rng.choice(["a", "b", "c"], size=90)
    s = stats.separability(X, y)
    assert abs(s["silhouette"]) < 0.05, s
    assert s["ratio"] == pytest.approx(1.0, abs=0.05), s


def test_one_class_gives_nan_with_reason():
    s = stats.separability(np.random.default_rng(0).standard_normal((5, 4)), ["a"] * 5)
    assert np.isnan(s["silhouette"]) and np.isnan(s["ratio"])
    assert "one class" in s["note"] and np.isfinite(s["intra"])


def test_all_singleton_classes_give_nan_with_reason():
    s = stats.separability(np.random.default_rng(0).standard_normal((4, 4)), list("abcd"))
    assert np.isnan(s["silhouette"]) and np.isnan(s["ratio"])
    assert "single track" in s["note"]


def test_singleton_class_among_others_is_noted_not_fatal():
    X, y = clusters(4)
    y = y.astype(object)  # a "<U1" array would truncate the new label
    y[-1] = "lonely"
    s = stats.separability(X, y)
    assert np.isfinite(s["silhouette"]) and np.isfinite(s["ratio"])
    assert "single-track" in s["note"] and "lonely" in s["note"]


def test_unlabelled_tracks_are_left_out():
    X, y = clusters(4)
    labels = list(y) + [None]
    s = stats.separability(np.vstack([X, np.ones((1, X.shape[1]))]), labels)
    assert s["n_tracks"] == 12 and "unlabelled" in s["note"]


def test_layer_separability_finds_the_informative_layer():
    X, y = clusters(6)
    rng = np.random.default_rng(1)
    stack = np.stack([rng.standard_normal(X.shape), X, rng.standard_normal(X.shape)], axis=1)
    df = stats.layer_separability(stack, y)
    assert list(df["layer"]) == [0, 1, 2]
    assert df["silhouette"].idxmax() == 1 and df["ratio"].idxmin() == 1
