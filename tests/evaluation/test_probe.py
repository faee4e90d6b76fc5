"""Probes and the probing protocol on planted-signal embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtbc.data.splits import LeakageError, check_disjoint, outer_folds, track_groups
from mtbc.evaluation import LayerSelector, LinearProbe, MLPProbe, evaluate_probe
from mtbc.evaluation.data import limit_threads


def make_tracks(n_tracks=80, n_classes=4, per_group=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_tracks) % n_classes
    return pd.DataFrame({
        "track_id": [f"t{i:03d}" for i in range(n_tracks)],
        "label": [f"c{c}" for c in labels],
        "group": [f"g{i // per_group}" for i in rng.permutation(n_tracks)],
        "content_hash": [f"h{i:03d}" for i in range(n_tracks)],
    })


def planted(tracks, *, n_layers=4, dim=8, segments=3, layer=None, strength=3.0, seed=0):
    """Gaussian segments; if ``layer`` is set, dimension 0 of that layer holds the label."""
    rng = np.random.default_rng(seed)
    codes = pd.Categorical(tracks["label"]).codes
    track_index = np.repeat(np.arange(len(tracks)), segments)
    x = rng.standard_normal((len(track_index), n_layers, dim)).astype(np.float32)
    if layer is not None:
        x[:, layer, 0] += strength * codes[track_index]
    return x, track_index


@parametrize_with_checks([LinearProbe(), MLPProbe(hidden=16, max_epochs=20, lr=1e-2)])
def test_sklearn_estimator_checks(estimator, check):
    with limit_threads(1, torch_too=True):  # tiny fits: threads only contend
        check(estimator)


def test_layer_selector_takes_a_layer_or_the_mean():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert np.array_equal(LayerSelector(layer=1).fit(x).transform(x), x[:, 1])
    assert np.allclose(LayerSelector(layer="mean").fit(x).transform(x), x.mean(axis=1))
    with pytest.raises(ValueError, match="does not exist"):
        LayerSelector(layer=5).fit(x)


def test_one_informative_dimension_gives_near_perfect_accuracy():
    tracks = make_tracks()
    x, ti = planted(tracks, n_layers=1, layer=0, strength=4.0)
    result = evaluate_probe(x, ti, tracks, layer=0, n_boot=200)
    assert result.metric("accuracy") >= 0.95
    assert len(result.predictions) == len(tracks)  # every track predicted once, out of fold


def test_pure_noise_stays_at_chance_inside_its_ci():
    tracks = make_tracks(n_tracks=120)
    x, ti = planted(tracks, n_layers=2)
    result = evaluate_probe(x, ti, tracks, n_boot=500)
    acc = result.metrics.set_index("metric").loc["accuracy"]
    assert acc.ci_low <= 0.25 <= acc.ci_high, acc


def test_the_layer_that_carries_the_label_is_selected():
    tracks = make_tracks()
    x, ti = planted(tracks, n_layers=5, layer=3, strength=1.5)
    for selection in ("probe", "ridge"):
        result = evaluate_probe(x, ti, tracks, selection=selection, n_boot=0)
        assert result.folds["layer"].tolist() == [3] * 5, selection
        scores = result.layer_scores.set_index("layer")["accuracy"]
        assert scores.idxmax() == 3 and list(scores.index) == [0, 1, 2, 3, 4, "mean"]


def test_layer_choice_uses_only_the_validation_split():
    tracks = make_tracks()
    split = np.where(np.arange(80) < 40, "train", np.where(np.arange(80) < 60, "valid", "test"))
    tracks["split"] = split
    tracks["group"] = tracks["track_id"]
    codes = pd.Categorical(tracks["label"]).codes
    rng = np.random.default_rng(9)
    ti = np.repeat(np.arange(80), 2)
    x = rng.standard_normal((len(ti), 3, 8)).astype(np.float32)
    part = split[ti]
    # train: label in layers 1 and 2; valid: layer 1 only; test: layer 2 only.
    # Choosing on valid gives layer 1; choosing on test would give layer 2.
    x[part != "test", 1, 0] += 2.0 * codes[ti[part != "test"]]
    x[part != "valid", 2, 0] += 2.0 * codes[ti[part != "valid"]]
    result = evaluate_probe(x, ti, tracks, n_boot=0, per_layer_test=True)
    assert result.folds["layer"].tolist() == [1]
    assert set(result.predictions.index) == set(tracks.loc[split == "test", "track_id"])
    scores = result.layer_scores.set_index("layer")
    assert scores["accuracy"].idxmax() == 1
    # the descriptive test curve sees layer 2's signal but is never used to choose
    assert scores["test_accuracy"].idxmax() == 2
    assert result.metric("accuracy") < scores.loc[2, "test_accuracy"]
    assert "predefined split" in result.split


def test_track_prediction_averages_segments_in_any_order():
    tracks = make_tracks(n_tracks=40)
    x, ti = planted(tracks, n_layers=1, layer=0, strength=1.0, segments=4)
    perm = np.random.default_rng(2).permutation(len(ti))
    a = evaluate_probe(x, ti, tracks, layer=0, n_boot=0)
    b = evaluate_probe(x[perm], ti[perm], tracks, layer=0, n_boot=0)
    pd.testing.assert_frame_equal(a.probabilities, b.probabilities, atol=1e-6, rtol=1e-5)


def test_result_records_how_it_was_made():
    tracks = make_tracks(n_tracks=40)
    x, ti = planted(tracks, n_layers=2, layer=1)
    r = evaluate_probe(x, ti, tracks, seed=3, n_splits=4, fingerprint="fake-0123", n_boot=50)
    assert (r.seed, r.probe, r.layer, r.fingerprint, r.n_tracks) == (3, "linear", "select",
                                                                    "fake-0123", 40)
    assert "4-fold" in r.split and "seed 3" in r.split
    assert list(r.metrics["metric"]) == ["accuracy", "precision_macro", "recall_macro",
                                         "f1_macro"]
    assert r.summary()["seed"] == 3


def test_mlp_probe_is_deterministic_and_learns():
    tracks = make_tracks(n_tracks=80)
    x, ti = planted(tracks, n_layers=1, layer=0, strength=4.0)
    opts = dict(probe="mlp", layer=0, n_splits=4, n_boot=0,
                probe_params={"hidden": 32, "max_epochs": 20, "lr": 1e-2, "batch_size": 32})
    a = evaluate_probe(x, ti, tracks, **opts)
    b = evaluate_probe(x, ti, tracks, **opts)
    pd.testing.assert_frame_equal(a.probabilities, b.probabilities, check_exact=True)
    assert a.metric("accuracy") >= 0.9
    assert a.folds["param"].eq("epochs").all()


# -- leakage ----------------------------------------------------------------------------------
def test_track_groups_link_group_hash_and_id_transitively():
    tracks = pd.DataFrame({"track_id": ["a", "b", "c", "d"], "group": ["x", "x", "y", "z"],
                           "content_hash": ["h1", "h2", "h2", "h3"]})
    g = track_groups(tracks)
    assert g[0] == g[1] == g[2] and g[3] != g[0]


def test_a_duplicate_across_a_predefined_split_is_refused():
    tracks = pd.DataFrame({"track_id": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"],
                           "split": ["train", "train", "test", "test"],
                           "group": ["a", "b", "c", "d"],
                           "content_hash": ["h1", "h2", "h1", "h4"]})
    with pytest.raises(LeakageError, match="content_hash"):
        outer_folds(tracks)
    with pytest.raises(LeakageError):
        check_disjoint(tracks, np.array([0]), np.array([2]))


def test_near_identical_segments_and_duplicates_never_cross_a_split():
    rng = np.random.default_rng(4)
    n, dim = 60, 64
    labels = rng.integers(0, 3, n)  # labels unrelated to anything but the track itself
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)],
                           "label": [f"c{c}" for c in labels],
                           "group": [f"g{i}" for i in range(n)],  # group does NOT merge dups
                           "content_hash": [f"h{i}" for i in range(n)]})
    # every odd track is a copy of the previous one: same content hash, same audio
    tracks.loc[1::2, "content_hash"] = tracks["content_hash"].to_numpy()[0::2]
    tracks.loc[1::2, "label"] = tracks["label"].to_numpy()[0::2]
    signature = rng.standard_normal((n, dim)).astype(np.float32)
    signature[1::2] = signature[0::2]
    ti = np.repeat(np.arange(n), 4)
    x = signature[ti] + 0.01 * rng.standard_normal((len(ti), dim)).astype(np.float32)
    x = x[:, None, :]

    folds, _ = outer_folds(tracks, n_splits=5, seed=0)
    for fold in folds:
        train_hashes = set(tracks["content_hash"].to_numpy()[fold.train])
        assert train_hashes.isdisjoint(tracks["content_hash"].to_numpy()[fold.test])
    # the probe can memorise: trained on everything, it recalls the copies perfectly...
    memorised = LinearProbe(C=10.0).fit(x[:, 0], tracks["label"].to_numpy()[ti])
    assert (memorised.predict(x[:, 0]) == tracks["label"].to_numpy()[ti]).mean() == 1.0
    # ...so out-of-fold accuracy at chance shows no segment or copy crossed a split
    result = evaluate_probe(x, ti, tracks, layer=0, n_boot=500)
    acc = result.metrics.set_index("metric").loc["accuracy"]
    assert acc.ci_low <= 1 / 3 <= acc.ci_high and acc.value < 0.6


def test_labelled_track_without_segments_is_named():
    tracks = make_tracks(n_tracks=20)
    x, ti = planted(tracks, n_layers=1)
    keep = ti != 7
    with pytest.raises(ValueError, match="t007"):
        evaluate_probe(x[keep], ti[keep], tracks)


def test_the_majority_baseline_predicts_each_folds_most_frequent_training_label():
    from mtbc.evaluation import evaluate_majority

    tracks = make_tracks(n_tracks=60, n_classes=3, per_group=1)
    tracks.loc[:29, "label"] = "c0"  # c0 is half of the tracks: the majority in every fold
    result = evaluate_majority(tracks, seed=0, n_splits=5, n_boot=100)
    assert set(result.predictions["predicted"]) == {"c0"}
    assert result.metric() == pytest.approx((tracks["label"] == "c0").mean())
    assert result.n_tracks == 60 and np.isnan(result.folds.get("val_accuracy", np.nan)).all()


def test_nothing_is_chosen_on_test_data():
    """On a predefined train/valid/test split, relabelling the test tracks changes test scores
    but not which system is best, which probe represents a model, or which layer is starred."""
    from mtbc.evaluation import evaluate_early_fusion
    from mtbc.study.common import choose_by_validation, validation_accuracy

    rng = np.random.default_rng(3)
    n = 90
    tracks = make_tracks(n_tracks=n, n_classes=3, per_group=1)
    tracks["split"] = np.repeat(["train", "valid", "test"], n // 3)
    y = tracks["label"].str[1].astype(int).to_numpy()
    a = rng.standard_normal((n, 4, 6)).astype(np.float32)
    a[:, 2, 0] += 1.5 * y  # model a: signal at layer 2
    b = rng.standard_normal((n, 3, 6)).astype(np.float32)
    b[:, 1, 0] += 0.7 * y  # model b: a weaker signal at layer 1
    index = np.arange(n)

    def decisions(table):
        kw = dict(seed=0, n_boot=50)
        systems = {
            ("a", "linear"): evaluate_probe(a, index, table, probe="linear", name="a", **kw),
            ("a", "mlp"): evaluate_probe(a, index, table, probe="mlp", name="a mlp",
                                         probe_params={"max_epochs": 8}, **kw),
            ("b", "linear"): evaluate_probe(b, index, table, probe="linear", name="b", **kw)}
        concat = evaluate_early_fusion({"a": (a, index), "b": (b, index)}, table,
                                       name="concat", **kw)
        chosen_probe = choose_by_validation([systems["a", "linear"], systems["a", "mlp"]]).name
        best = choose_by_validation([systems["a", "linear"], systems["b", "linear"], concat])
        star = {k: r.layer_scores.loc[r.layer_scores["accuracy"].idxmax(), "layer"]
                for k, r in systems.items()}
        layers = {k: list(r.folds["layer"]) for k, r in systems.items()}
        vals = [validation_accuracy(r) for r in [*systems.values(), concat]]
        tests = [r.metric() for r in [*systems.values(), concat]]
        return (chosen_probe, best.name, star, layers, vals), tests

    before, test_before = decisions(tracks)
    relabelled = tracks.copy()
    test = relabelled["split"] == "test"
    relabelled.loc[test, "label"] = rng.permutation(relabelled.loc[test, "label"].to_numpy())
    after, test_after = decisions(relabelled)
    assert after == before
    assert test_after != test_before  # the test labels did change what was measured
    assert before[2][("a", "linear")] == 2


def test_the_marble_protocol_chooses_layer_and_learning_rate_on_validation():
    rng = np.random.default_rng(5)
    n = 240  # MARBLE takes 64-file batches: enough files for several steps per epoch
    tracks = make_tracks(n_tracks=n, n_classes=3, per_group=1)
    tracks["split"] = np.repeat(["train", "valid", "test"], n // 3)
    y = tracks["label"].str[1].astype(int).to_numpy()
    feats = rng.standard_normal((2 * n, 3, 5)).astype(np.float32)  # two chunks per file
    index = np.repeat(np.arange(n), 2)
    feats[:, 2, 0] += 3.0 * y[index]  # the signal lives in layer 2
    result = evaluate_probe(feats, index, tracks, protocol="marble", seed=0, n_boot=50)
    fold = result.folds.iloc[0]
    assert fold["layer"] in (2, "weighted sum 1..L") and fold["param"] == "lr"
    assert fold["value"] in (5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2)
    assert result.n_tracks == 80 and result.metric() > 0.9  # 80 test files
    assert set(result.layer_scores["layer"]) == {0, 1, 2, "weighted sum 1..L"}
    with pytest.raises(ValueError, match="predefined train/valid/test split"):
        evaluate_probe(feats, index, tracks.drop(columns="split"), protocol="marble")


def test_the_mlp_trains_where_it_is_told_and_says_how_to_fix_a_missing_gpu():
    import torch

    from mtbc.evaluation.estimators import MLPProbe, mlp_device

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = np.arange(40) % 2
    auto = MLPProbe(hidden=8, max_epochs=3, random_state=0).fit(X, y)
    cpu = MLPProbe(hidden=8, max_epochs=3, random_state=0, device="cpu").fit(X, y)
    if not torch.cuda.is_available():  # "auto" is the CPU here: the very same numbers
        assert mlp_device("auto").type == "cpu"
        np.testing.assert_array_equal(auto.predict_proba(X), cpu.predict_proba(X))
        with pytest.raises(ValueError, match="CUDA is not available here"):
            MLPProbe(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="use 'auto', 'cpu' or 'cuda'"):
        mlp_device("tpu")
