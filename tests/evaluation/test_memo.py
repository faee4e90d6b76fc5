"""Kept evaluations (mtbc.evaluation.memo): reused only for equal inputs, verified on read,
never fatal, and the same numbers as computing again."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from mtbc.evaluation import engine as engine_module
from mtbc.evaluation import (
    evaluate_early_fusion,
    evaluate_probe,
    evaluate_tagging,
    evaluate_tagging_early_fusion,
)
from mtbc.evaluation import selection as selection_module
from mtbc.evaluation.memo import Memo, decode, digest, encode
from mtbc.evaluation.results import FoldOutcome, FoldRecord
from mtbc.evaluation.selection import CandidateScore, Choice


def _data(n=48, k=3, layers=3, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    tracks = pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(n)],
                           "label": [f"c{i % k}" for i in range(n)],
                           "group": [f"g{i // 2}" for i in range(n)],
                           "tags": ["x" if i % 2 else "y|z" for i in range(n)],
                           "tags_negative": ["y|z" if i % 2 else "x" for i in range(n)]})
    index = np.repeat(np.arange(n), 2)
    X = rng.standard_normal((2 * n, layers, dim)).astype(np.float32)
    X[:, 1, 0] += 2.0 * (index % k)  # the labels show in layer 1
    X[:, 2, 1] += 1.5 * (index % 2)  # the tags in layer 2
    return tracks, X, index


def _same(a, b):
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    pd.testing.assert_frame_equal(a.probabilities, b.probabilities)
    pd.testing.assert_frame_equal(a.folds, b.folds)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.layer_scores, b.layer_scores)


def _no_folds(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("computed again")
    monkeypatch.setattr(engine_module, "run_folds", refuse)


OPTS = {"n_splits": 3, "n_boot": 50, "seed": 1}


def test_values_round_trip_and_only_registered_types_are_rebuilt():
    rec = FoldRecord("fold 0", ("a", 2), "C", 0.1, 10, 5, val_score=float("nan"))
    outcome = FoldOutcome(np.array([3, 1]), np.array([[0.25, 0.75], [1 / 3, 2 / 3]]),
                          ["fold 0", "fold 0"], [rec],
                          {(0, "mean"): [(np.array([1, 2]), np.array([True, False]))],
                           "mean": [0.5]}, {})
    back = decode(json.loads(json.dumps(encode(outcome))))
    assert isinstance(back, FoldOutcome) and back.fold_names == outcome.fold_names
    np.testing.assert_array_equal(back.scores, outcome.scores)  # bit for bit
    assert back.scores.dtype == np.float64 and back.rows.dtype == outcome.rows.dtype
    assert back.records[0].layer == ("a", 2) and np.isnan(back.records[0].val_score)
    rows, correct = back.layer_records[(0, "mean")][0]
    assert correct.dtype == bool and list(rows) == [1, 2]
    choice = Choice(3, 0.01, 0.5, np.arange(4), {3: CandidateScore(0.5, 0.01, None)})
    back = decode(encode(choice))
    assert (back.candidate, back.value, back.by_candidate) == (3, 0.01, choice.by_candidate)
    np.testing.assert_array_equal(back.val_rows, choice.val_rows)
    with pytest.raises(ValueError, match="not a type mtbc keeps"):
        decode({"__keep__": "Popen", "fields": {}})
    with pytest.raises(TypeError):
        encode(object())


def test_digest_sees_content_not_identity():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert digest(a) == digest(a.copy())
    assert digest(a) != digest(a.astype(np.float64))  # dtype counts
    assert digest(a) != digest(a.reshape(3, 2))  # shape counts
    b = a.copy()
    b[1, 2] = np.nextafter(b[1, 2], np.float32(9))
    assert digest(a) != digest(b)


def test_a_probe_kept_is_reused_with_the_same_numbers(tmp_path, monkeypatch):
    tracks, X, index = _data()
    fresh = evaluate_probe(X, index, tracks, per_layer_test=True, **OPTS)
    kept = evaluate_probe(X, index, tracks, per_layer_test=True, reuse_dir=str(tmp_path),
                          **OPTS)
    assert list(tmp_path.glob("outcome-*.json"))
    _same(fresh, kept)
    _no_folds(monkeypatch)
    again = evaluate_probe(X, index, tracks, per_layer_test=True, reuse_dir=str(tmp_path),
                           name="another name", **OPTS)
    _same(fresh, again)
    assert again.name == "another name"  # provenance is made fresh


@pytest.mark.slow  # seven evaluations: `make test` runs it, `make test-fast` leaves it out
@pytest.mark.parametrize("change", ["features", "label", "seed", "probe option"])
def test_any_change_in_the_inputs_computes_again(tmp_path, change):
    tracks, X, index = _data()
    evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)
    opts = dict(OPTS)
    if change == "features":
        X = X.copy()
        X[0, 0, 0] += 1e-3
    elif change == "label":
        tracks = tracks.copy()
        tracks.loc[0, "label"] = "c1"
    elif change == "seed":
        opts["seed"] = 2
    else:
        opts["Cs"] = (0.1, 1.0)
    before = len(list(tmp_path.glob("outcome-*.json")))
    evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **opts)
    assert len(list(tmp_path.glob("outcome-*.json"))) == before + 1


@pytest.mark.slow  # nine evaluations: `make test` runs it, `make test-fast` leaves it out
@pytest.mark.parametrize("damage", ["number", "truncated", "other key"])
def test_a_damaged_entry_is_named_and_computed_again(tmp_path, damage):
    tracks, X, index = _data()
    fresh = evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)
    (path,) = tmp_path.glob("outcome-*.json")
    text = path.read_text()
    if damage == "number":
        entry = json.loads(text)
        entry["payload"]["__keep__"] = "FoldOutcome"
        scores = entry["payload"]["fields"]["scores"]["data"]
        scores[0] = 1.0 - scores[0]
        path.write_text(json.dumps(entry))
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        entry = json.loads(text)
        entry["key"]["inputs"]["__dict__"][0][1] = "something else"
        path.write_text(json.dumps(entry))
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        again = evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)
    _same(fresh, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: read back without complaint
        evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)


def test_a_folder_that_cannot_be_written_warns_once_and_the_result_comes(tmp_path):
    tracks, X, index = _data()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="not kept"):
        r = evaluate_probe(X, index, tracks, reuse_dir=str(blocker / "evaluations"), **OPTS)
    _same(r, evaluate_probe(X, index, tracks, **OPTS))
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow  # seven evaluations, two of them MLPs: `make test` runs it
def test_the_mlp_and_the_concatenation_reuse_the_probe_s_ranking(tmp_path, monkeypatch):
    tracks, X, index = _data()
    rng = np.random.default_rng(5)
    other = (rng.standard_normal((len(X), 1, 4)) + (index % 3)[:, None, None]).astype(
        np.float32)
    blocks = {"a": (X, index), "b": (other, index)}
    mlp_params = {"probe": "mlp", "probe_params": {"max_epochs": 5, "hidden": 8}}
    fresh_mlp = evaluate_probe(X, index, tracks, **mlp_params, **OPTS)
    fresh_concat = evaluate_early_fusion(blocks, tracks, **OPTS)
    evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)  # the linear probe
    assert len(list(tmp_path.glob("ranking-*.json"))) == 3  # one per outer fold
    calls = []
    real = selection_module._choose
    monkeypatch.setattr(selection_module, "_choose",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    _same(fresh_mlp, evaluate_probe(X, index, tracks, reuse_dir=str(tmp_path), **mlp_params,
                                    **OPTS))
    assert calls == []  # the MLP's layers: the linear probe's kept ranking
    _same(fresh_concat, evaluate_early_fusion(blocks, tracks, reuse_dir=str(tmp_path), **OPTS))
    # model a's four candidates were not ranked again: only model b's one layer and the
    # fused probe's C were computed
    assert calls and all(len(c) == 1 for c in calls)


def test_tagging_is_kept_too(tmp_path, monkeypatch):
    tracks, X, index = _data()
    blocks = {"a": (X, index), "b": (X[:, :1] * 2, index)}
    fresh = evaluate_tagging(X, index, tracks, **OPTS)
    fused = evaluate_tagging_early_fusion(blocks, tracks, **OPTS)
    evaluate_tagging(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)
    evaluate_tagging_early_fusion(blocks, tracks, reuse_dir=str(tmp_path), **OPTS)
    _no_folds(monkeypatch)
    again = evaluate_tagging(X, index, tracks, reuse_dir=str(tmp_path), **OPTS)
    pd.testing.assert_frame_equal(fresh.scores, again.scores)
    pd.testing.assert_frame_equal(fresh.metrics, again.metrics)
    pd.testing.assert_frame_equal(
        fused.scores, evaluate_tagging_early_fusion(blocks, tracks, reuse_dir=str(tmp_path),
                                                    **OPTS).scores)


def test_the_mlp_is_trained_once_on_a_grouped_holdout_of_the_training_tracks():
    tracks, X, index = _data(n=120)
    r = evaluate_probe(X, index, tracks, probe="mlp",
                       probe_params={"max_epochs": 4, "hidden": 8}, **OPTS)
    linear = evaluate_probe(X, index, tracks, **OPTS)
    # a 1/10 holdout stops it: it saw about 90% of the tracks the linear probe was refit on
    assert (r.folds["n_train"] < linear.folds["n_train"]).all()
    assert (r.folds["n_train"] >= 0.85 * linear.folds["n_train"]).all()
    assert r.folds["value"].between(1, 4).all()


def test_memo_kept_computes_once(tmp_path):
    memo = Memo(tmp_path)
    calls = []
    value = memo.kept("ranking", {"x": 1}, lambda: calls.append(1) or {"a": np.arange(3)})
    again = memo.kept("ranking", {"x": 1}, lambda: calls.append(1) or None)
    assert calls == [1] and list(again["a"]) == list(value["a"])
    assert memo.load("ranking", {"x": 2}) is None
