"""Zero-shot as a system of the evaluation engine: planted prompts, shuffled prompts, CIs, the
same folds as the probes and paired tests against them."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import mtbc.zeroshot
from mtbc.evaluation import (
    Classification,
    EvalOptions,
    Tagging,
    compare,
    evaluate,
    evaluate_probe,
    evaluate_tagging,
)
from mtbc.evaluation.results import ZERO_SHOT, ProbeResult, TaggingResult
from mtbc.study.tagging import paired_tagging_tests
from mtbc.zeroshot import DEFAULT_TEMPLATE, Prompts, ZeroShot, prompts_for, track_embeddings

CLASSES = ["blues", "jazz", "metal", "pop", "rock"]
OPTIONS = EvalOptions(n_splits=4, seed=0, n_boot=200)


def _study(rng, *, n_per_class=24, dim=16, noise=0.3, tags=False):
    """Tracks (two per group), the classes' planted text embeddings, per-track joint
    embeddings near their class's text, and segments (two per track) for a probe."""
    text = rng.standard_normal((len(CLASSES), dim))
    y = np.repeat(np.arange(len(CLASSES)), n_per_class)
    rng.shuffle(y)
    audio = text[y] + noise * rng.standard_normal((len(y), dim))
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(len(y))],
                           "label": np.asarray(CLASSES)[y],
                           "group": [f"g{i // 2}" for i in range(len(y))]})
    if tags:  # the track's class is its one positive tag; every other tag a known negative
        tracks["tags"] = tracks["label"]
        tracks["tags_negative"] = [";".join(c for c in CLASSES if c != lab)
                                   for lab in tracks["label"]]
    index = np.repeat(np.arange(len(y)), 2)
    segments = (audio[index] + 0.1 * rng.standard_normal((len(index), dim)))[:, None, :]
    return tracks, text, audio, segments.astype(np.float32), index


def _prompts(text, order=None):
    names = CLASSES if order is None else [CLASSES[i] for i in order]
    return Prompts(tuple(names), tuple(prompts_for(names)), text)


def test_planted_prompts_are_perfect_with_cis_on_the_probes_folds(rng):
    tracks, text, audio, segments, index = _study(rng)
    zs = evaluate(Classification(tracks), ZeroShot(audio, _prompts(text), name="clap · zs",
                                                  fingerprint="clap-abc"), OPTIONS)
    assert isinstance(zs, ProbeResult) and zs.metric("accuracy") == 1.0
    acc = zs.metrics.set_index("metric").loc["accuracy"]
    assert acc.ci_low == acc.ci_high == 1.0 and acc.n_tracks == 120 and acc.n_groups == 60
    assert zs.system == ZERO_SHOT and zs.probe == "zero-shot" and zs.fingerprint == "clap-abc"
    assert zs.params["template"] == DEFAULT_TEMPLATE
    assert zs.params["prompts"]["jazz"] == "This is a jazz song."
    assert (zs.folds["n_train"] == 0).all() and zs.chosen_layers() == "joint (x4)"
    assert np.isnan(zs.validation_score())  # nothing chosen: never picked on validation
    np.testing.assert_allclose(zs.probabilities.sum(axis=1), 1.0)
    probe = evaluate_probe(segments, index, tracks, eval_options=OPTIONS, name="probe")
    # the same folds: every track in the same test fold for both systems
    pd.testing.assert_series_equal(zs.predictions["fold"], probe.predictions["fold"])


def test_shuffled_prompts_are_at_chance(rng):
    tracks, text, audio, _, _ = _study(rng)
    task, options = Classification(tracks), EvalOptions(n_splits=4, seed=0, n_boot=0)
    accs = [evaluate(task, ZeroShot(audio, _prompts(text[p])), options).metric("accuracy")
            for p in (np.random.default_rng(s).permutation(len(CLASSES)) for s in range(40))]
    # over random relabellings of the prompts the mean accuracy is chance, 1/5 (the standard
    # error over 40 shuffles is 0.2 / sqrt(40) = 0.03)
    assert abs(np.mean(accs) - 1 / len(CLASSES)) < 0.07
    derangement = ZeroShot(audio, _prompts(np.roll(text, 1, axis=0)))
    assert evaluate(task, derangement, options).metric("accuracy") == 0.0
    # prompts given in another order are matched to the classes by name, not by position
    order = [3, 0, 4, 1, 2]
    same = evaluate(task, ZeroShot(audio, _prompts(text[order], order=order)), options)
    assert same.metric("accuracy") == 1.0


def test_paired_test_against_a_probe_on_the_same_tracks(rng):
    tracks, text, audio, segments, index = _study(rng, noise=1.2)
    zs = evaluate(Classification(tracks), ZeroShot(audio, _prompts(text), name="zero-shot"),
                  OPTIONS)
    probe = evaluate_probe(segments, index, tracks, eval_options=OPTIONS, name="linear probe")
    acc = zs.metrics.set_index("metric").loc["accuracy"]
    assert 0.2 < acc.value < 1.0 and acc.ci_low < acc.value < acc.ci_high
    tests = compare([probe, zs])
    assert len(tests) == 1
    row = tests.iloc[0]
    assert {row.system_a, row.system_b} == {"linear probe", "zero-shot"}
    assert row.n_tracks == 120 and 0.0 <= row.p_value <= 1.0


def test_zero_shot_tagging_ranks_planted_tags_and_is_tested_against_a_probe(rng):
    tracks, text, audio, segments, index = _study(rng, tags=True, noise=0.6)
    zs = evaluate(Tagging(tracks), ZeroShot(audio, _prompts(text), name="clap · zero-shot"),
                  OPTIONS)
    assert isinstance(zs, TaggingResult) and zs.system == ZERO_SHOT
    assert zs.metric("roc_auc_macro") > 0.95
    m = zs.metrics.set_index("metric").loc["roc_auc_macro"]
    assert m.ci_low <= m.value <= m.ci_high
    shuffled = evaluate(Tagging(tracks), ZeroShot(audio, _prompts(np.roll(text, 1, axis=0))),
                        OPTIONS)
    assert shuffled.metric("roc_auc_macro") < 0.6
    probe = evaluate_tagging(segments, index, tracks, eval_options=OPTIONS, name="probe")
    assert (zs.fold == probe.fold).all()
    tests = paired_tagging_tests([probe, zs], n_perm=100, n_boot=50)
    assert len(tests) == 1 and tests.iloc[0].n_tracks == 120


def test_inputs_are_checked_against_the_task(rng):
    tracks, text, audio, _, _ = _study(rng)
    task = Classification(tracks)
    partial = Prompts(tuple(CLASSES[:4]), tuple(prompts_for(CLASSES[:4])), text[:4])
    with pytest.raises(ValueError, match="no prompt for 'rock'"):
        evaluate(task, ZeroShot(audio, partial), OPTIONS)
    with pytest.raises(ValueError, match=r"n_tracks=120"):
        evaluate(task, ZeroShot(audio[:10], _prompts(text)), OPTIONS)
    holes = audio.copy()
    holes[7] = np.nan
    with pytest.raises(ValueError, match="1 labelled track.*t007"):
        evaluate(task, ZeroShot(holes, _prompts(text)), OPTIONS)
    with pytest.raises(ValueError, match="dims"):
        evaluate(task, ZeroShot(audio[:, :8], _prompts(text)), OPTIONS)
    with pytest.raises(ValueError, match="only field"):
        prompts_for(["jazz"], "{label} by {artist}")
    # an unlabelled track without an embedding takes no part and is fine
    tracks.loc[7, "label"] = None
    r = evaluate(Classification(tracks), ZeroShot(holes, _prompts(text)), OPTIONS)
    assert r.n_tracks == 119


def test_track_embeddings_feed_the_system_from_segments(rng):
    tracks, text, audio, segments, index = _study(rng, noise=0.2)
    joint = track_embeddings(segments, index, len(tracks))
    r = evaluate(Classification(tracks), ZeroShot(joint, _prompts(text)), OPTIONS)
    assert r.metric("accuracy") == 1.0


def test_docstring_examples_run():
    result = doctest.testmod(mtbc.zeroshot, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
