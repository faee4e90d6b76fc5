"""mtbc.robustness: the tagging probe's macro ROC-AUC drop and the concatenation's drop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.data.tags import complete_negatives
from mtbc.evaluation import (
    evaluate_early_fusion,
    evaluate_tagging,
    evaluate_tagging_early_fusion,
)
from mtbc.robustness.drops import DropOptions, measure_drops
from mtbc.robustness.probe import (
    clean_probe_predictions,
    clean_trained,
    probe_drop,
    tagging_drop,
)

TAGS = ("piano", "violin", "drums")


def _tagged_segments(rng, n=48, dim=12, segs=3):
    """Tracks with 1-2 of three tags; each present tag adds its centre to every segment."""
    centres = 2.5 * rng.standard_normal((len(TAGS), dim))
    present = rng.random((n, len(TAGS))) < 0.45
    present[~present.any(axis=1), 0] = True
    tags = [tuple(t for t, p in zip(TAGS, row, strict=True) if p) for row in present]
    tracks = pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(n)],
                           "tags": tags, "tags_negative": complete_negatives(tags)})
    index = np.repeat(np.arange(n), segs)
    feats = present[index].astype(float) @ centres + rng.standard_normal((len(index), dim))
    return tracks, feats[:, None, :].astype(np.float32), index


def test_tagging_scores_are_notebook_06s_and_the_identity_drops_nothing(rng):
    """One model: 06's linear tagging probe; two: 06's concatenation (same scores)."""
    tracks, feats, index = _tagged_segments(rng)
    run = clean_trained(tracks, {"m": (feats, index)}, {"same": {"m": (feats.copy(), index)}},
                        task="tagging", seed=0, n_splits=3)
    ref = evaluate_tagging(feats, index, tracks, probe="linear", seed=0, n_splits=3, n_boot=0)
    clean = run.condition == "clean"
    ids = tracks["track_id"].to_numpy()[run.rows[clean]]
    np.testing.assert_allclose(run.scores[clean], ref.scores.loc[ids].to_numpy())
    assert list(run.fold[clean]) == list(ref.fold.loc[ids])
    summary = tagging_drop(run, n_boot=100, n_perm=200)
    row = summary.iloc[0]
    assert row["deformation"] == "same" and row["drop"] == 0.0 and row["p_value"] == 1.0
    assert row["roc_auc_clean"] == pytest.approx(ref.metric("roc_auc_macro"))
    assert row["n_tracks"] == len(tracks) and row["n_tags"] == len(TAGS)
    blocks = {"m": (feats, index), "o": (rng.standard_normal((len(index), 2, 5)), index)}
    fused = clean_trained(tracks, blocks, {"same": blocks}, task="tagging", seed=0, n_splits=3)
    ref = evaluate_tagging_early_fusion(blocks, tracks, seed=0, n_splits=3, n_boot=0)
    clean = fused.condition == "clean"
    ids = tracks["track_id"].to_numpy()[fused.rows[clean]]
    np.testing.assert_allclose(fused.scores[clean], ref.scores.loc[ids].to_numpy())
    assert tagging_drop(fused, n_boot=0, n_perm=100).loc[0, "drop"] == 0.0


def test_planted_destroying_deformation_drops_macro_auc_significantly(rng):
    tracks, feats, index = _tagged_segments(rng)
    destroyed = rng.standard_normal(feats.shape).astype(np.float32) * feats.std()
    harmless = feats + 0.01 * rng.standard_normal(feats.shape).astype(np.float32)
    run = clean_trained(tracks, {"m": (feats, index)},
                        {"destroy": {"m": (destroyed, index)},
                         "harmless": {"m": (harmless, index)}},
                        task="tagging", seed=0, n_splits=3)
    summary = tagging_drop(run, n_boot=200, n_perm=500).set_index("deformation")
    assert summary.loc["destroy", "roc_auc_clean"] > 0.9
    assert summary.loc["destroy", "drop"] > 0.3 and summary.loc["destroy", "p_value"] < 0.01
    assert summary.loc["destroy", "ci_low"] > 0.2
    assert abs(summary.loc["harmless", "drop"]) < 0.02
    assert summary.loc["harmless", "p_value"] > 0.05
    assert summary.loc["harmless", "ci_low"] <= 0 <= summary.loc["harmless", "ci_high"]


def _two_models(rng, n_per_class=12, classes=3):
    """Two models of one labelled collection: ``a`` carries the labels, ``b`` is noise."""
    labels = np.repeat(np.arange(classes), n_per_class)
    tracks = pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(len(labels))],
                           "label": [f"c{c}" for c in labels]})
    centres = 3.0 * rng.standard_normal((classes, 8))
    ia, ib = np.repeat(np.arange(len(labels)), 3), np.repeat(np.arange(len(labels)), 2)
    a = (centres[labels][ia] + rng.standard_normal((len(ia), 8)))[:, None, :]
    b = rng.standard_normal((len(ib), 2, 5))
    return tracks, {"a": (a.astype(np.float32), ia), "b": (b.astype(np.float32), ib)}


def test_concatenation_is_notebook_05s_system_and_its_drop_is_reported(rng):
    tracks, clean = _two_models(rng)
    fa, ia = clean["a"]
    deformed = {"same": {m: (f.copy(), i) for m, (f, i) in clean.items()},
                "destroy": {"a": (rng.standard_normal(fa.shape).astype(np.float32)
                                  * fa.std(), ia), "b": clean["b"]}}
    preds = clean_probe_predictions(clean, tracks, deformed, seed=0, n_splits=3)
    ref = evaluate_early_fusion(clean, tracks, seed=0, n_splits=3, n_boot=0)
    mine = preds[preds["condition"] == "clean"].set_index("track_id")["predicted"]
    pd.testing.assert_series_equal(mine.sort_index(), ref.predictions["predicted"].sort_index(),
                                   check_names=False)
    groups = pd.Series(np.arange(len(tracks)), index=tracks["track_id"])
    summary = probe_drop(preds, groups, n_boot=200)[0].set_index("deformation")
    assert summary.loc["same", "drop"] == 0.0 and summary.loc["same", "p_value"] == 1.0
    assert summary.loc["destroy", "drop"] > 0.3 and summary.loc["destroy", "p_value"] < 0.01


class _Store:
    """In-memory stand-in of EmbeddingStore: ``has`` and ``load_many(reduce=None)``."""

    def __init__(self, entries):
        self.entries = entries  # (content_hash, fingerprint) -> (n_seg, L, D)

    def has(self, h, fp):
        return (h, fp) in self.entries

    def load_many(self, hashes, fp, *, reduce=None):
        parts = [self.entries[(h, fp)] for h in hashes]
        return (np.concatenate(parts),
                np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)]))


def test_measure_drops_gives_both_measures_for_each_model_and_the_concatenation(rng):
    tracks, feats, index = _tagged_segments(rng, n=36)
    tracks["label"] = np.where(np.arange(36) % 2, "x", "y")
    tracks["content_hash"] = [f"h{i}" for i in range(36)]
    entries = {}
    for i, h in enumerate(tracks["content_hash"]):
        mine = feats[index == i]
        entries[(h, "m")] = entries[(h, "m~0")] = mine
        entries[(h, "k")] = entries[(h, "k~0")] = 2 * mine[:2]
        entries[(h, "m~x")] = rng.standard_normal(mine.shape).astype(np.float32)
        entries[(h, "k~x")] = rng.standard_normal(mine[:2].shape).astype(np.float32)
    del entries[("h0", "k~x")]  # k lacks one deformed track: it and the concat leave it out
    found = measure_drops(tracks, _Store(entries),
                          {"m": ("m", {"gain 0": "m~0", "destroy": "m~x"}),
                           "k": ("k", {"gain 0": "k~0", "destroy": "k~x"})},
                          DropOptions(n_splits=3, n_boot=100, n_perm=200))
    auc = found.auc.set_index(["model", "deformation"])
    assert list(dict.fromkeys(found.auc["model"])) == ["m", "k", "concat(m + k)"]
    assert (auc.xs("gain 0", level="deformation")["drop"] == 0).all()
    assert (auc.xs("gain 0", level="deformation")["p_value"] == 1).all()
    assert auc.loc[("concat(m + k)", "destroy"), "drop"] > 0.2
    assert auc.loc[("concat(m + k)", "destroy"), "p_value"] < 0.01
    assert auc.loc[("m", "gain 0"), "n_tracks"] == 36
    assert auc.loc[("k", "gain 0"), "n_tracks"] == auc.loc[("concat(m + k)", "gain 0"),
                                                           "n_tracks"] == 35
    acc = found.accuracy.set_index(["model", "deformation"])
    assert sorted(set(found.accuracy["model"])) == ["concat(m + k)", "k", "m"]
    assert (acc.xs("gain 0", level="deformation")["drop"] == 0).all()
    assert set(found.detail["model"]) == set(found.accuracy["model"])
    assert found.why_no_accuracy is None and found.why_no_auc is None
    untagged = measure_drops(tracks.drop(columns=["tags", "tags_negative"]), _Store(entries),
                             {"m": ("m", {"gain 0": "m~0"})}, DropOptions(n_splits=3, n_boot=0))
    assert not len(untagged.auc) and "no tag" in untagged.why_no_auc
    assert len(untagged.accuracy) == 1
    few = tracks.iloc[:6]
    small = measure_drops(few, _Store(entries), {"m": ("m", {"gain 0": "m~0"})},
                          DropOptions(n_splits=3, n_boot=0))
    assert not len(small.auc) and "cannot be cross-validated" in small.why_no_auc
    assert len(small.accuracy) == 1  # the accuracy drop goes on without the tagging one
    off = measure_drops(few, _Store(entries), {"m": ("m", {"gain 0": "m~0"})},
                        DropOptions(n_splits=3, n_boot=0, tagging=False))
    assert not len(off.auc) and "switched off" in off.why_no_auc and len(off.accuracy) == 1
