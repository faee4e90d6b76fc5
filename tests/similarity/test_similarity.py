"""Similarity search, playlists and retrieval metrics (mtbc.similarity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.similarity.index import (
    IndexKey,
    IndexOptions,
    Whitener,
    build_index,
    cached_index,
    load_index,
    normalise,
    recall_at_k,
)
from mtbc.similarity.metrics import (
    average_precision_at_k,
    jaccard,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
)
from mtbc.similarity.retrieval import RetrievalSystem, score_queries
from mtbc.similarity.search import KeepGroup, neighbours, playlist_path, playlist_walk


def _tracks(labels, groups=None, dup=None):
    n = len(labels)
    return pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(n)],
                         "content_hash": [f"h{i:03d}" for i in range(n)],
                         "label": labels,
                         "group": groups if groups is not None else [f"t{i:03d}" for i in range(n)],
                         "duplicate_group": dup if dup is not None else [None] * n})


# ---------------------------------------------------------------------------- metrics

def test_metrics_equal_hand_computed_values():
    rel = np.array([[1, 0, 1, 0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    n_rel = np.array([4, 2])
    assert precision_at_k(rel, k=1).tolist() == [1.0, 0.0]
    assert precision_at_k(rel, k=5).tolist() == [0.4, 0.0]
    assert precision_at_k(rel, k=10).tolist() == [0.3, 0.0]
    # AP@10 = (1/1 + 2/3 + 3/10) / min(4, 10)
    assert average_precision_at_k(rel, n_rel, k=10) == pytest.approx([(1 + 2 / 3 + 0.3) / 4, 0])
    dcg = 1 + 1 / np.log2(4) + 1 / np.log2(11)
    idcg = sum(1 / np.log2(i + 2) for i in range(4))
    out = query_metrics(rel, n_rel)
    assert out["ndcg@10"][0] == pytest.approx(dcg / idcg)
    assert out["ndcg@10"][1] == pytest.approx(0.0)


def test_ndcg_with_jaccard_gains_and_nothing_to_find():
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 0.0
    got = ndcg_at_k([[0.5, 1.0]], [[1.0, 0.5, 0.0]], k=2)
    want = (0.5 + 1 / np.log2(3)) / (1 + 0.5 / np.log2(3))
    assert got[0] == pytest.approx(want)
    assert np.isnan(ndcg_at_k([[0, 0]], [[0, 0, 0]], k=2)[0])


def test_ap_refuses_more_hits_than_relevant_candidates():
    with pytest.raises(ValueError, match="more relevant results"):
        average_precision_at_k([[1, 1]], [1], k=2)


# ---------------------------------------------------------------------------- index

def test_exact_index_top_k_equals_numpy_brute_force():
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(500, 32)), rng.normal(size=(20, 32))
    scores, pos = build_index(X).search(Q, 10)
    sims = normalise(Q) @ normalise(X).T
    want = np.argsort(-sims, axis=1)[:, :10]
    assert np.array_equal(pos, want)
    assert np.allclose(scores, np.take_along_axis(sims, want, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_recall_is_measured(kind):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 16)).astype(np.float32)
    exact = build_index(X, options=IndexOptions(kind="exact"))
    approx = build_index(X, options=IndexOptions(kind=kind))
    assert approx.kind == kind
    recall = recall_at_k(approx, exact, X[:100], k=10)
    assert 0.8 <= recall <= 1.0


def test_auto_index_turns_approximate_above_threshold():
    X = np.random.default_rng(2).normal(size=(60, 8))
    assert build_index(X, options=IndexOptions(approximate_above=100)).kind == "exact"
    assert build_index(X, options=IndexOptions(approximate_above=50)).kind == "hnsw"


def test_whitener_flattens_a_dominant_direction_learned_on_training_rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4000, 6)) * np.array([8, 1, 1, 1, 1, 1]) + 3.0
    w = Whitener().fit(X[:2000])
    assert w.shrinkage_ < 0.2  # plenty of data: little shrinkage
    before, after = np.var(normalise(X[2000:]), axis=0), np.var(w.transform(X[2000:]), axis=0)
    assert before[0] / before[1:].mean() > 5
    assert 0.5 < after[0] / after[1:].mean() < 2
    assert np.allclose(np.linalg.norm(w.transform(X), axis=1), 1.0, atol=1e-5)
    # fitted on other rows, the transform is another one: nothing of X[2000:] was used
    assert not np.allclose(Whitener().fit(X[2000:]).transform(X[:5]), w.transform(X[:5]))


def test_whitener_with_few_training_tracks_keeps_every_direction():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 64))
    w = Whitener().fit(X[:10])
    assert w.residual_scale_ > 0 and w.shrinkage_ > 0.3
    assert np.linalg.matrix_rank(w.transform(X[10:])) == 30  # not squeezed into 9 dims


def test_index_file_is_reused_and_rebuilt_when_the_cache_changes(tmp_path):
    X = np.random.default_rng(4).normal(size=(30, 8))
    key = IndexKey("fp-a", 0, True, tuple(f"h{i}" for i in range(30)))
    path = tmp_path / "idx"
    first, whitener, reused = cached_index(X, path, key=key)
    assert not reused and whitener is not None
    again, whitener2, reused = cached_index(X, path, key=key)
    assert reused and again.n == 30
    assert np.allclose(whitener2.transform(X), whitener.transform(X))
    assert load_index(path, key=IndexKey("fp-b", 0, True, key.content_hashes)) is None
    # a damaged index file is not trusted
    blob = bytearray(path.with_suffix(".faiss").read_bytes())
    blob[-1] ^= 0xFF
    path.with_suffix(".faiss").write_bytes(bytes(blob))
    assert load_index(path, key=key) is None
    _, _, reused = cached_index(X, path, key=key)
    assert not reused


# ---------------------------------------------------------------------------- search

def test_same_group_and_reencoded_copy_never_returned():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(12, 8))
    X[1] = X[0] + 1e-3          # a re-encoded copy of track 0 (near duplicate)
    X[2] = X[0] + 2e-3          # same artist as track 0
    tracks = _tracks(["a"] * 12, groups=["art0", "t001", "art0"] + [f"t{i:03d}" for i in
                                                                    range(3, 12)],
                     dup=["d0", "d0"] + [None] * 10)
    from mtbc.similarity.search import group_codes_of

    groups = group_codes_of(tracks)
    index = build_index(X)
    got = neighbours(index, X[0], k=5, groups=groups, query_group=groups[0])
    assert not {0, 1, 2} & set(got.positions.tolist())
    assert len(got.positions) == 5
    flagged = neighbours(index, X[0], k=5, groups=groups, query_group=groups[0],
                         keep_group=KeepGroup(tracks, query_row=0))
    assert list(flagged.positions[:3]) == [0, 1, 2]
    assert flagged.relations[:3] == ("same track", "near duplicate", "same group")
    unnamed = neighbours(index, X[0], k=5, groups=groups, query_group=groups[0],
                         keep_group=KeepGroup())  # no table: relations cannot be named
    assert unnamed.relations[:3] == ("near duplicate",) * 3 and unnamed.relations[3:] == ("",) * 2


def test_copy_never_counts_as_a_hit():
    # track 1 is a copy of query 0 with the same label; the only other "a" track is far
    X = np.array([[1, 0], [1, 0.001], [0, 1], [0.1, 1], [0.2, 1]], float)
    tracks = _tracks(["a", "a", "a", "b", "b"], dup=["d", "d", None, None, None])
    table = score_queries(X, tracks, [0], np.arange(5))
    row = table.iloc[0]
    assert row["n_relevant"] == 1 and row["n_candidates"] == 3
    assert row["p@1"] == 0.0  # the copy is out, the nearest remaining is a "b"


def test_playlist_walk_has_no_repeats_and_no_two_of_one_group():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 4))
    groups = np.repeat(np.arange(10), 2)
    order = playlist_walk(X, 0, length=8, groups=groups)
    assert len(order) == 8 and order[0] == 0
    assert len(set(order)) == 8 and len(set(groups[order])) == 8
    assert len(playlist_walk(X, 0, length=15, groups=groups)) == 10  # groups run out


def test_playlist_path_ends_at_target_and_moves_towards_it():
    t = np.linspace(0, np.pi / 2, 11)
    X = np.stack([np.cos(t), np.sin(t)], axis=1)
    order = playlist_path(X, 0, 10, length=6, groups=np.arange(11))
    assert order == [0, 2, 4, 6, 8, 10]
    with pytest.raises(ValueError, match="one group"):
        playlist_path(X, 0, 1, length=3, groups=np.array([0, 0] + list(range(1, 10))))


# ---------------------------------------------------------------------------- evaluation

def _planted(n_per=8, n_labels=3, dim=16, signal=5.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"c{i}" for i in range(n_labels)], n_per)
    centres = rng.normal(size=(n_labels, dim)) * signal
    X = rng.normal(size=(len(labels), dim)) + centres[np.repeat(np.arange(n_labels), n_per)]
    return X, _tracks(list(labels))


def test_planted_signal_retrieves_perfectly():
    X, tracks = _planted()
    system = RetrievalSystem(whitening=(False,)).fit(X, tracks, np.arange(len(tracks)))
    table = system.score(np.arange(len(tracks)))
    assert (table["p@1"] == 1).all() and (table["p@5"] == 1).all()
    assert table["ap@10"].min() == pytest.approx(1.0)
    assert table["ndcg@10"].min() == pytest.approx(1.0)


def test_layer_is_chosen_on_validation_queries():
    X, tracks = _planted(seed=1)
    noise = np.random.default_rng(9).normal(size=X.shape)
    stacked = np.stack([noise, X], axis=1)  # layer 1 carries the signal
    train = np.arange(0, len(tracks), 2)
    system = RetrievalSystem(whitening=(False,)).fit(stacked, tracks, train)
    chosen = system.choose([(train[: len(train) // 2], train[len(train) // 2:])])
    assert chosen.layer == 1
    assert set(system.validation_["layer"]) == {0, 1}


def test_noise_scores_at_chance_with_ci_covering_it():
    from mtbc.similarity.study import summary_table

    rng = np.random.default_rng(7)
    labels = list(np.repeat(["a", "b", "c", "d"], 50))
    tracks = _tracks(labels)
    X = rng.normal(size=(len(tracks), 32))
    system = RetrievalSystem(whitening=(False,)).fit(X, tracks, np.arange(len(tracks)))
    per_query = system.score(np.arange(len(tracks))).assign(system="noise")
    table = summary_table(per_query, n_boot=500, seed=0).set_index("metric")
    chance = per_query["chance"].mean()
    for metric in ("p@1", "p@5", "p@10"):
        low, high = table.loc[metric, ["ci_low", "ci_high"]]
        assert low <= chance <= high, f"{metric}: CI [{low}, {high}] misses chance {chance}"


# ---------------------------------------------------------------------------- study

def test_study_planted_model_beats_noise_with_every_query_scored_once(tmp_path):
    from types import SimpleNamespace

    from mtbc.cache.store import EmbeddingStore
    from mtbc.similarity import study as sim

    rng = np.random.default_rng(11)
    n_per, labels = 10, ["a", "b", "c"]
    tracks = _tracks(list(np.repeat(labels, n_per)))
    store = EmbeddingStore(tmp_path)
    centres = rng.normal(size=(3, 12)) * 4
    for i, h in enumerate(tracks["content_hash"]):
        signal = centres[i // n_per] + rng.normal(size=12)
        store.put(h, "good", np.stack([rng.normal(size=12), signal])[None].astype(np.float32))
        store.put(h, "noise", rng.normal(size=(2, 1, 12)).astype(np.float32))
    models = {"good": SimpleNamespace(fingerprint="good"),
              "noise": SimpleNamespace(fingerprint="noise")}
    study = SimpleNamespace(tracks=tracks, store=store, models=models)
    result = sim.evaluate_retrieval(study, n_splits=3, seed=0, whitening=(False,))
    counts = result.per_query.groupby("system")["track_id"].agg(["size", "nunique"])
    assert (counts["size"] == 30).all() and (counts["nunique"] == 30).all()
    chosen = result.validation[result.validation["chosen"] & (result.validation["system"]
                                                              == "good")]
    assert set(chosen["layer"]) == {1}  # the signal layer, chosen on validation queries
    summary = sim.summary_table(result.per_query, n_boot=200)
    good = summary[(summary["system"] == "good")].set_index("metric")
    assert good.loc["p@5", "value"] == pytest.approx(1.0)
    tests = sim.paired_tests(result.per_query, n_boot=200)
    row = tests[(tests["system_a"] == "good") & (tests["system_b"] == "noise")].iloc[0]
    assert row["diff"] > 0.5 and row["p_holm"] < 0.01
    text = sim.answer(result, summary, tests)
    assert text.startswith("good retrieves same-label songs best")
    assert result.chosen_by_validation() == "good"


def test_paired_test_is_over_groups():
    from mtbc.similarity.study import paired_tests

    # 4 groups of 5 queries: a beats b in every query, but only 4 independent groups, so the
    # exact sign-flip p-value is 2 / 2**4
    per_query = pd.concat([
        pd.DataFrame({"system": s, "track_id": [f"q{i}" for i in range(20)],
                      "group": np.repeat(np.arange(4), 5), "ap@10": v})
        for s, v in (("a", np.full(20, 0.8)), ("b", np.full(20, 0.3)))])
    row = paired_tests(per_query, n_boot=100).iloc[0]
    assert row["n_groups"] == 4 and row["p_value"] == pytest.approx(2 / 16)


def test_scale_benchmark_rows_on_a_tiny_size():
    from mtbc.similarity.scale import ScaleOptions, bench_similarity

    opts = ScaleOptions(sizes=(400,), dim=16, n_queries=5, n_clusters=20, chunk=150)
    table = bench_similarity(opts, log=lambda *_: None).set_index("kind")
    assert list(table.index) == ["exact", "hnsw", "ivf"]
    assert table.loc["exact", "recall_at_k"] == 1.0
    assert (table["build_s"] > 0).all() and (table["query_ms_median"] > 0).all()
    assert table.loc["ivf", "note"].startswith("nlist 20")


def test_study_without_two_labels_says_why_and_still_gives_examples(tmp_path):
    from types import SimpleNamespace

    from mtbc.cache.store import EmbeddingStore
    from mtbc.similarity import study as sim

    rng = np.random.default_rng(12)
    tracks = _tracks([None] * 8).assign(path="x.wav")
    store = EmbeddingStore(tmp_path)
    for h in tracks["content_hash"]:
        store.put(h, "m", rng.normal(size=(1, 2, 6)).astype(np.float32))
    study = SimpleNamespace(tracks=tracks, store=store,
                            models={"m": SimpleNamespace(fingerprint="m")})
    result = sim.evaluate_retrieval(study)
    assert "at least 2 labels" in result.why_not
    summary = sim.summary_table(result.per_query)
    tests = sim.paired_tests(result.per_query)
    assert summary.empty and tests.empty
    assert sim.answer(result, summary, tests).startswith("No retrieval evaluation")
    assert len(sim.example_queries(result, "m", n_queries=2)) == 2
    assert len(sim.example_playlist(result, "m", length=5)) == 5
