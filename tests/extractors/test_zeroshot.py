"""Zero-shot classification and text search in a joint space (planted embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from mtbc.zeroshot import (
    DEFAULT_TEMPLATE,
    ZeroShotClassifier,
    evaluate_zero_shot,
    prompts_for,
    text_search,
    track_embeddings,
)

CLASSES = ["blues", "jazz", "rock", "metal", "pop"]


def _planted(rng, *, n_per_class=40, dim=16, noise=0.3):
    """Text embeddings of each class and audio tracks near their class's text embedding."""
    text = rng.standard_normal((len(CLASSES), dim))
    y = np.repeat(np.arange(len(CLASSES)), n_per_class)
    audio = text[y] + noise * rng.standard_normal((len(y), dim))
    groups = np.repeat(np.arange(len(y) // 2), 2)  # two tracks per group (e.g. one album)
    return text, audio, np.asarray(CLASSES)[y], groups


def test_template_makes_one_prompt_per_label():
    assert DEFAULT_TEMPLATE == "This is a {label} song."
    assert prompts_for(["jazz", "hip hop"]) == ["This is a jazz song.", "This is a hip hop song."]
    with pytest.raises(ValueError, match="no {label} field"):
        prompts_for(["jazz"], "a song")


def test_planted_prompts_give_perfect_accuracy_with_ci_and_n(rng):
    text, audio, labels, groups = _planted(rng)
    clf = ZeroShotClassifier(text, CLASSES).fit(audio[:10], labels[:10])  # fits nothing
    proba = clf.predict_proba(audio)
    assert proba.shape == (len(audio), len(CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    result = evaluate_zero_shot(clf, audio, labels, groups=groups, n_boot=200, seed=0)
    assert result.accuracy == 1.0 and result.ci_low == result.ci_high == 1.0
    assert result.n_tracks == 200 and result.n_groups == 100


def test_shuffled_prompts_are_at_chance(rng):
    text, audio, labels, groups = _planted(rng)
    accs = []
    for seed in range(300):
        perm = np.random.default_rng(seed).permutation(len(CLASSES))
        clf = ZeroShotClassifier(text[perm], CLASSES)
        accs.append(evaluate_zero_shot(clf, audio, labels, n_boot=0).accuracy)
    # mean accuracy over prompt shuffles is chance (1/5); a fixed derangement scores 0
    assert abs(np.mean(accs) - 1 / len(CLASSES)) < 0.05
    derangement = ZeroShotClassifier(np.roll(text, 1, axis=0), CLASSES)
    assert evaluate_zero_shot(derangement, audio, labels, n_boot=0).accuracy == 0.0


def test_paired_test_against_a_probe_on_the_same_tracks(rng):
    text, audio, labels, groups = _planted(rng, noise=1.5)
    result = evaluate_zero_shot(ZeroShotClassifier(text, CLASSES), audio, labels, groups=groups,
                                n_boot=100)
    assert 0.2 < result.accuracy < 1.0 and result.ci_low <= result.accuracy <= result.ci_high
    test = result.paired_test(labels, n_perm=500, n_boot=100)  # an oracle "probe"
    assert test.diff == pytest.approx(result.accuracy - 1.0)
    assert test.n_groups == 100 and test.p_value < 0.05


def test_track_embeddings_average_segments_of_the_joint_row():
    feats = np.zeros((3, 2, 4), np.float32)
    feats[:, 1, :2] = [[1, 0], [0, 1], [3, 0]]
    feats[:, 1, 2:] = 0  # zero padding beyond the joint width
    out = track_embeddings(feats, np.array([0, 0, 1]), 2, width=2)
    np.testing.assert_allclose(out, [[np.sqrt(0.5), np.sqrt(0.5)], [1, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="no segments"):
        track_embeddings(feats, np.array([0, 0, 0]), 2)


def test_text_search_ranks_tracks_by_cosine(rng):
    text, audio, labels, _ = _planted(rng, noise=0.1)
    ids = [f"t{i}" for i in range(len(audio))]
    hits = text_search(text[2], audio, ids, k=5)
    assert list(hits["rank"]) == [1, 2, 3, 4, 5]
    assert (labels[[ids.index(t) for t in hits.track_id]] == "rock").all()
    assert hits["cosine"].is_monotonic_decreasing
