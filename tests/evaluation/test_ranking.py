"""The closed-form ridge ranking (mtbc.evaluation.ranking)."""

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from mtbc.evaluation import EvalOptions, evaluate_probe, evaluate_tagging
from mtbc.evaluation.ranking import kernel_ridge_path, optimal_scoring, ridge_paths


def _data(n=40, d=12, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((c, n, d)), rng.standard_normal((n, 2)), rng.standard_normal(
        (c, 7, d))


def test_dual_and_primal_forms_give_sklearn_ridge():
    for n, d in ((30, 50), (60, 10)):  # dual (n <= d) and primal (n > d)
        xtr, y, xev = _data(n=n, d=d)
        path = kernel_ridge_path(xtr, y, xev, alphas=(0.1, 10.0))
        for c in range(len(xtr)):
            mean, std = xtr[c].mean(0), xtr[c].std(0)
            z, zev = (xtr[c] - mean) / std, (xev[c] - mean) / std
            scale = (z ** 2).sum() / n
            for g, alpha in enumerate((0.1, 10.0)):
                ref = Ridge(alpha=alpha * scale).fit(z, y).predict(zev)
                assert np.allclose(path[c, g], ref, atol=1e-4), (n, d, c, alpha)


def test_optimal_scoring_separates_a_class_between_two_others():
    # three classes along one axis: a least-squares fit to indicators masks the middle one
    x = np.repeat([-4.0, 0.0, 4.0], 30)[:, None] + np.random.default_rng(1).normal(
        0, 0.3, (90, 1))
    onehot = np.eye(3)[np.repeat([0, 1, 2], 30)]
    fitted = kernel_ridge_path(x[None], onehot, x[None], (1e-3,))[0, 0]
    assert (fitted.argmax(1) == 1).sum() < 20  # the middle class is masked by argmax
    scored = optimal_scoring(fitted, onehot, fitted)
    assert (scored.argmax(1) == onehot.argmax(1)).mean() > 0.95


def _planted(n_tracks=90, n_layers=5, layer=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_tracks) % 3
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(n_tracks)],
                           "label": [f"c{k}" for k in labels],
                           "group": [f"g{i // 2}" for i in range(n_tracks)],
                           "tags": ["a" if k == 1 else "b" for k in labels],
                           "tags_negative": ["b" if k == 1 else "a" for k in labels]})
    index = np.repeat(np.arange(n_tracks), 2)
    X = rng.standard_normal((len(index), n_layers, dim)).astype(np.float32)
    directions = rng.standard_normal((3, dim)).astype(np.float32)
    X[:, layer] += 1.2 * directions[labels[index]]
    return X, index, tracks


def test_the_planted_layer_is_chosen_for_classes_and_tags():
    X, index, tracks = _planted()
    opts = EvalOptions(n_splits=3, n_boot=0)
    r = evaluate_probe(X, index, tracks, eval_options=opts)
    assert r.selection == "ridge" and r.folds["layer"].tolist() == [3, 3, 3]
    curve = r.layer_scores.set_index("layer")["accuracy"]
    assert curve.idxmax() == 3 and curve[3] > curve.drop(index=[3, "mean"]).max() + 0.3
    t = evaluate_tagging(X, index, tracks, eval_options=opts)
    assert t.folds["layer"].tolist() == [3, 3, 3]


def test_noise_layers_rank_near_chance():
    X, index, tracks = _planted(layer=3)
    rows = np.arange(len(tracks))
    inner = [(rows[(rows // 3) % 3 != k], rows[(rows // 3) % 3 == k]) for k in range(3)]
    means = X.reshape(len(tracks), 2, *X.shape[1:]).mean(axis=1)
    y = np.eye(3)[np.arange(len(tracks)) % 3]
    paths = ridge_paths(lambda c, r: means[r, c], [0, 3], inner, lambda r: y[r],
                        classes=True)
    acc = {c: max(np.mean([(p[g].argmax(1) == y[va].argmax(1)).mean()
                           for p, (_, va) in zip(paths[c], inner, strict=True)])
                  for g in range(6)) for c in (0, 3)}
    assert acc[3] > 0.9 and acc[0] < 0.6
