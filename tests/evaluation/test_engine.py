"""The evaluation engine: one fold loop and one selection routine for every task and system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.evaluation import (
    Classification,
    EvalOptions,
    FoldPrediction,
    LayerProbe,
    ProbeOptions,
    Provenance,
    System,
    Tagging,
    evaluate,
    evaluate_probe,
)
from mtbc.evaluation import selection as selection_module


def _tracks(n=36, k=3):
    return pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(n)],
                         "label": [f"c{i % k}" for i in range(n)],
                         "group": [f"g{i // 2}" for i in range(n)],
                         "tags": ["x" if i % 2 else "y" for i in range(n)],
                         "tags_negative": ["y" if i % 2 else "x" for i in range(n)]})


class Oracle(System):
    """A new system in one small class: it reads the labels of the training tracks only and
    predicts the class whose training tracks are nearest in track number (a toy)."""

    label = "oracle"

    def fold(self, task, data):
        train = data.fold.train
        scores = np.zeros((len(data.fold.test), len(task.names)))
        for i, row in enumerate(data.fold.test):
            scores[i, task.y[train[np.argmin(np.abs(train - row))]]] = 1.0
        return FoldPrediction(scores=scores, n_valid=0)

    def provenance(self, task, split, options):
        return Provenance(name="oracle · none", task=task.name, system="oracle", probe="none",
                          layer="-", selection="none", scorer="none", split=split,
                          seed=options.seed, n_boot=options.n_boot)


def test_a_new_system_is_one_small_class_and_gets_folds_metrics_and_groups():
    tracks = _tracks()
    r = evaluate(Classification(tracks), Oracle(), EvalOptions(n_splits=3, n_boot=50))
    assert r.name == "oracle · none" and r.task == "classification" and r.n_tracks == 36
    assert set(r.predictions["fold"]) == {"fold 0", "fold 1", "fold 2"}
    assert r.predictions["group"].nunique() == 18  # the bootstrap's unit: 18 pairs
    assert {"accuracy", "f1_macro"} <= set(r.metrics["metric"])
    assert r.folds["convergence_warnings"].eq(0).all() and np.isnan(r.validation_score())


def test_classification_and_tagging_share_the_selection_routine(monkeypatch):
    calls = []
    real = selection_module.choose

    def spy(search, candidates, spec):
        calls.append(search.task.name)
        return real(search, candidates, spec)

    monkeypatch.setattr(selection_module, "choose", spy)
    tracks = _tracks()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((36, 2, 3)).astype(np.float32)
    X[:, 1, 0] += 4 * (np.arange(36) % 3)
    X[:, 1, 1] += 4 * (np.arange(36) % 2)
    opts = EvalOptions(n_splits=3, n_boot=0)
    c = evaluate(Classification(tracks), LayerProbe(X, np.arange(36)), opts)
    t = evaluate(Tagging(tracks), LayerProbe(X, np.arange(36)), opts)
    assert set(calls) == {"classification", "tagging"}
    # layer 1 carries both the labels and the tags: it leads both layer curves
    for r, col in ((c, "accuracy"), (t, "val_roc_auc")):
        curve = r.layer_scores.set_index("layer")[col]
        assert curve.idxmax() == 1 and curve[1] > curve[0] + 0.3
    assert "1" in c.chosen_layers() and t.chosen_layers() == "1 (x3)"
    assert "val_accuracy" in c.folds and "val_roc_auc" in t.folds
    assert c.provenance.task == "classification" and t.provenance.task == "tagging"
    assert not hasattr(type(c), "__dataclass_fields__") or "probe" not in \
        type(c).__dataclass_fields__  # provenance fields are not repeated on the result


def test_options_objects_and_keywords_agree_and_unknown_options_are_named():
    tracks = _tracks()
    X = np.random.default_rng(1).standard_normal((36, 1, 3)).astype(np.float32)
    a = evaluate_probe(X, np.arange(36), tracks, ProbeOptions(Cs=(0.1, 1.0)),
                       EvalOptions(n_splits=3, n_boot=0, seed=2))
    b = evaluate_probe(X, np.arange(36), tracks, Cs=(0.1, 1.0), n_splits=3, n_boot=0, seed=2)
    pd.testing.assert_frame_equal(a.probabilities, b.probabilities)
    with pytest.raises(TypeError, match="n_split"):
        evaluate_probe(X, np.arange(36), tracks, n_split=3)
    with pytest.raises(ValueError, match="selection do not apply"):
        evaluate_probe(X, np.arange(36), tracks.assign(split="train"), protocol="marble",
                       selection="ridge")
