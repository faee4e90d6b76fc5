"""Layer ranking in closed form: ridge regression on track means, every candidate at once.

Ranking the layers of a 25-layer model with the probe itself fits the probe 26 times per
validation fold. The ``"ridge"`` ranking (the default, ``selection="auto"``) instead scores
every candidate (each layer and the mean of layers) with a ridge classifier (one-hot targets;
for tags, one regression per tag) on the tracks' mean embeddings, for every strength of
:data:`RIDGE_ALPHAS` at once:

- per validation fold, the candidates are one batch: one matrix product gives every
  candidate's kernel (dual form, ``Z Z^T``, when there are fewer tracks than dimensions;
  otherwise the primal ``Z^T Z``), and one batched Cholesky factorisation per strength solves
  them (:func:`kernel_ridge_path`);
- features are standardised on the fold's training tracks; the intercept is the training
  targets' mean (exact for centred features); a strength ``alpha`` means
  ``alpha * trace(Z^T Z) / n``, so the grid is the same whatever the width and scale of
  the features;
- validation scores are read exactly as the probe's are (the task's ``grid_scores``:
  accuracy, or macro ROC-AUC for tags), and the best strength is each candidate's score.

Then the probe's own hyperparameter is chosen on the chosen layer only, on the same
validation folds (:func:`mtbc.evaluation.selection.fit_fold`). The cost is a few matrix
products per fold instead of ``26 x 3`` solver paths; the validation folds, and what is
chosen from, are the same. Track means suffice for ranking: a linear model's mean segment
score is its score of the mean segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.linalg

from mtbc.evaluation.estimators import safe_std
from mtbc.evaluation.parallel import parallel_map

#: Ridge strengths of the ranking (relative to the mean eigenvalue, module docstring).
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Candidates per batch (bounds the memory of the stacked kernels).
BATCH = 8

#: ``means(candidate, track_rows) -> (n, dim)``: the track-mean features of one candidate.
MeansView = Callable[[Any, np.ndarray], np.ndarray]


def standardise_batch(xtr: np.ndarray, xev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, n, D)`` training and ``(C, m, D)`` evaluation features standardised with the
    training mean and standard deviation of each candidate (constant features become 0)."""
    xtr = np.asarray(xtr, dtype=np.float32)
    mean = xtr.mean(axis=1, keepdims=True)
    scale = (1.0 / safe_std(mean, xtr.std(axis=1, keepdims=True))).astype(np.float32)
    ztr = xtr - mean
    ztr *= scale
    zev = np.asarray(xev, dtype=np.float32) - mean
    zev *= scale
    return ztr, zev


def kernel_ridge_path(xtr: np.ndarray, ytr: np.ndarray, xev: np.ndarray,
                      alphas: Sequence[float] = RIDGE_ALPHAS, *, classes: bool = False
                      ) -> np.ndarray:
    """Ridge predictions of ``xev`` for every candidate and strength.

    Parameters
    ----------
    xtr : ``(C, n, D)`` training features of ``C`` candidates (standardised here).
    ytr : ``(n, K)`` training targets (one-hot classes or 0/1 tags).
    xev : ``(C, m, D)`` features to predict.
    alphas : relative strengths (module docstring).
    classes : ``ytr`` is one-hot: score classes by :func:`optimal_scoring` in the fitted
        space (a least-squares fit to class indicators alone can mask a class lying between
        two others).

    Returns
    -------
    ``(C, len(alphas), m, K)`` float64 predictions (class scores with ``classes``).

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((1, 40, 5)); y = np.eye(2)[(x[0, :, 0] > 0).astype(int)]
    >>> p = kernel_ridge_path(x, y, x, alphas=(1e-3,))
    >>> bool((p[0, 0].argmax(axis=1) == y.argmax(axis=1)).mean() > 0.9)
    True
    """
    ztr, zev = standardise_batch(np.asarray(xtr), np.asarray(xev))
    ytr = np.asarray(ytr, dtype=np.float64)
    ybar = ytr.mean(axis=0)
    yc = ytr - ybar
    c, n, d = ztr.shape
    dual = n <= d
    if dual:  # (Z Z^T + l I)^-1 Y, predictions Zev Z^T (...)
        gram = np.matmul(ztr, ztr.transpose(0, 2, 1)).astype(np.float64)
        cross = np.matmul(zev, ztr.transpose(0, 2, 1)).astype(np.float64)
        rhs = np.broadcast_to(yc, (c, *yc.shape))
    else:  # (Z^T Z + l I)^-1 Z^T Y, predictions Zev (...)
        gram = np.matmul(ztr.transpose(0, 2, 1), ztr).astype(np.float64)
        cross = zev.astype(np.float64)
        rhs = np.matmul(ztr.transpose(0, 2, 1).astype(np.float64), yc)
    scale = np.trace(gram, axis1=1, axis2=2) / max(1, n)
    scale = np.where(scale > 0, scale, 1.0)[:, None, None]
    diag = np.arange(gram.shape[1])
    shifted = np.empty_like(gram)
    out = np.empty((c, len(alphas), zev.shape[1], ytr.shape[1]))
    for g, alpha in enumerate(alphas):
        np.copyto(shifted, gram)  # gram + alpha * scale * I, without a new array per alpha
        shifted[:, diag, diag] += alpha * scale[:, :, 0]
        factor = np.linalg.cholesky(shifted)
        coef = np.stack([scipy.linalg.cho_solve((f, True), r, check_finite=False)
                         for f, r in zip(factor, rhs, strict=True)])
        out[:, g] = np.matmul(cross, coef) + ybar
        if classes:
            fitted = np.matmul(gram if dual else ztr.astype(np.float64), coef) + ybar
            for i in range(c):
                out[i, g] = optimal_scoring(fitted[i], ytr, out[i, g])
    return out


def optimal_scoring(fitted: np.ndarray, onehot: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Class scores of ``scores (m, K)`` by linear discriminant analysis in the ridge's fitted
    space (Hastie, Tibshirani and Buja's optimal scoring): the training tracks' ``fitted``
    values give class means and a pooled covariance (shrunk by 1e-3 of its mean variance);
    the score is minus half the Mahalanobis distance to each class mean plus the log prior.
    Where the fit interpolates the indicators this is the nearest indicator, i.e. argmax."""
    counts = onehot.sum(axis=0)
    present = counts > 0
    means = (onehot.T @ fitted)[present] / counts[present, None]
    resid = fitted - onehot[:, present] @ means
    cov = resid.T @ resid / max(1, len(fitted) - int(present.sum()))
    cov += (1e-3 * max(np.trace(cov) / len(cov), 1e-12)) * np.eye(len(cov))
    prec = np.linalg.inv(cov)
    diff = scores[:, None, :] - means[None, :, :]
    dist = np.sum((diff @ prec) * diff, axis=-1)
    out = np.full(scores.shape, -np.inf)
    out[:, present] = -0.5 * dist + np.log(counts[present] / counts.sum())
    return out


def _batched_path(means: MeansView, candidates: Sequence, train_rows: np.ndarray,
                  eval_rows: np.ndarray, y: np.ndarray, alphas: Sequence[float],
                  classes: bool) -> dict[Any, np.ndarray]:
    """:func:`kernel_ridge_path` of ``candidates`` in batches of :data:`BATCH`:
    candidate -> ``(len(alphas), len(eval_rows), K)``."""
    candidates, out = list(candidates), {}
    for start in range(0, len(candidates), BATCH):
        chunk = candidates[start:start + BATCH]
        xtr = np.stack([means(c, train_rows) for c in chunk])
        xev = np.stack([means(c, eval_rows) for c in chunk])
        path = kernel_ridge_path(xtr, y, xev, alphas, classes=classes)
        out.update(zip(chunk, path, strict=True))
    return out


def ridge_paths(means: MeansView, candidates: Sequence, inner: Sequence,
                targets: Callable[[np.ndarray], np.ndarray],
                alphas: Sequence[float] = RIDGE_ALPHAS, *, classes: bool = False
                ) -> dict[Any, list[list[np.ndarray]]]:
    """Every candidate's validation track scores: ``{candidate: [fold][alpha] (n_va, K)}``.

    ``means(candidate, rows)``: track-mean features; ``inner``: ``[(train_rows,
    valid_rows), ...]``; ``targets(rows)``: ``(n, K)`` ridge targets of those tracks;
    ``classes``: they are one-hot (:func:`kernel_ridge_path`).
    """
    def one(_, fold):
        tr, va = fold
        return _batched_path(means, candidates, tr, va, targets(tr), alphas, classes)

    out: dict[Any, list[list[np.ndarray]]] = {c: [] for c in candidates}
    for paths in parallel_map(one, list(inner)):  # folds side by side, mtbc.evaluation.parallel
        for cand, path in paths.items():
            out[cand].append(list(path))
    return out


def ridge_predict(means: MeansView, chosen: dict, train_rows: np.ndarray,
                  test_rows: np.ndarray, targets: Callable[[np.ndarray], np.ndarray], *,
                  classes: bool = False) -> dict[Any, np.ndarray]:
    """Test-track predictions of each candidate's ridge at its own strength:
    ``chosen`` maps candidate -> alpha; returns candidate -> ``(n_test, K)``."""
    y = targets(train_rows)
    by_alpha: dict[float, list] = {}
    for cand, alpha in chosen.items():
        by_alpha.setdefault(float(alpha), []).append(cand)
    out = {}
    for alpha, cands in by_alpha.items():
        path = _batched_path(means, cands, train_rows, test_rows, y, (alpha,), classes)
        out.update({cand: p[0] for cand, p in path.items()})
    return out
