"""Multi-label (tagging) probes and what a tagging evaluation returns (``docs/tagging.md``).

- :class:`MultiLabelLinearProbe`: standardisation + one-vs-rest logistic regression, one
  L2-penalised binary model per tag with scikit-learn's objective
  (``C * sum(log-loss) + ||w||^2 / 2``, intercept not penalised), fitted jointly for all tags
  by L-BFGS (the objective separates by tag, so this *is* one-vs-rest). Unknown (masked)
  entries add nothing to the loss. A tag with no known positive or no known negative in the
  training data gets the constant score of its smoothed training rate.
- :class:`MultiLabelMLPProbe`: standardisation + ``Linear -> ReLU -> Dropout -> Linear`` with
  sigmoid outputs, trained with Adam on masked binary cross-entropy, in torch; the number of
  epochs is chosen on grouped validation tracks (``eval_X``), as for
  :class:`mtbc.analysis.probes.MLPProbe`.
- :class:`TaggingResult`: out-of-fold track scores, metrics with group-bootstrap CIs, per-tag
  AUCs, folds and the validation scores behind every choice.
- :func:`macro_roc_auc`: fast masked macro ROC-AUC (rank statistic, equal to scikit-learn's),
  used to choose layers and hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata

from mtbc.analysis.evaluation import (
    bootstrap_mean_ci,
    multilabel_bootstrap_ci,
    multilabel_metrics,
)
from mtbc.analysis.probes import make_scaler
from mtbc.analysis.results import layer_text

TAGGING_PROBES = ("linear", "mlp")


def macro_roc_auc(Y: np.ndarray, S: np.ndarray, mask: np.ndarray) -> float:
    """Mean over tags (with a known positive and negative) of the ROC-AUC on known entries;
    NaN when no tag qualifies. Ties count one half, as in ``roc_auc_score``."""
    aucs = []
    for j in range(Y.shape[1]):
        known = mask[:, j]
        y = Y[known, j] == 1
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        r = rankdata(S[known, j])
        aucs.append((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def _prior_logit(Y: np.ndarray, M: np.ndarray) -> np.ndarray:
    pos = np.where(M, Y == 1, False).sum(axis=0)
    rate = (pos + 0.5) / (M.sum(axis=0) + 1.0)
    return np.log(rate / (1 - rate))


def _usable(Y: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Tags with a known positive and a known negative."""
    pos = (M & (Y == 1)).any(axis=0)
    neg = (M & (Y == 0)).any(axis=0)
    return pos & neg


class MultiLabelLinearProbe:
    """Standardisation + one-vs-rest L2 logistic regression over all tags (module docstring).

    Parameters
    ----------
    C : float
        Inverse L2 strength (scikit-learn's meaning), chosen on validation by the protocol.
    scaler : transformer, optional
        Unfitted scaler; ``None``: ``StandardScaler()`` (early fusion passes a
        :class:`mtbc.analysis.ensemble.BlockStandardizer`).
    max_iter, tol : int, float
        L-BFGS iteration limit and gradient tolerance (on the objective divided by
        ``C * n_samples``, as scikit-learn's ``tol``).
    """

    def __init__(self, C: float = 1.0, *, scaler=None, max_iter: int = 500, tol: float = 1e-4):
        self.C = C
        self.scaler = scaler
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, Y, mask):
        """Fit on ``X (n, d)``, ``Y (n, T)`` (0/1, anything where unknown), ``mask (n, T)``."""
        X = np.asarray(X, dtype=np.float64)
        self.scaler_ = make_scaler(self.scaler).fit(X)
        Z = np.asarray(self.scaler_.transform(X), dtype=np.float64)
        self._fit_standardised(Z, np.nan_to_num(np.asarray(Y, dtype=np.float64)),
                               np.asarray(mask, dtype=bool))
        return self

    def _fit_standardised(self, Z, Y, M, init=None):
        """L-BFGS on the objective; with fewer samples than features in the dual form
        ``W = Z^T A`` (the optimum lies in the span of the samples: ``n x T`` unknowns)."""
        n, d = Z.shape
        T = Y.shape[1]
        usable = _usable(Y, M)
        Mw = (M & usable[None, :]).astype(np.float64)
        prior = _prior_logit(Y, M)
        dual = n < d
        K = Z @ Z.T if dual else None
        rows = n if dual else d
        if init is not None and init[2] is dual:
            V0, b0 = init[0], init[1]
        else:
            V0, b0 = np.zeros((rows, T)), prior.copy()
        C = float(self.C)
        scale = 1.0 / (C * max(1, n))  # the objective per sample, as scikit-learn scales it

        def fun(theta):
            V = theta[: rows * T].reshape(rows, T)
            b = theta[rows * T:]
            if dual:
                KV = K @ V
                z = KV + b
                penalty = 0.5 * np.sum(V * KV)
            else:
                z = Z @ V + b
                penalty = 0.5 * np.sum(V * V)
            loss = C * np.sum(Mw * (np.logaddexp(0.0, z) - Y * z)) + penalty
            g = C * Mw * (expit(z) - Y)
            gv = K @ (g + V) if dual else Z.T @ g + V
            return loss * scale, np.concatenate([gv.ravel(), g.sum(axis=0)]) * scale

        res = minimize(fun, np.concatenate([V0.ravel(), b0]), jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": float(self.tol)})
        V = res.x[: rows * T].reshape(rows, T)
        self._state = (V, res.x[rows * T:], dual)
        self.coef_ = Z.T @ V if dual else V.copy()
        self.intercept_ = np.where(usable, res.x[rows * T:], prior)
        self.coef_[:, ~usable] = 0.0
        self.n_iter_ = int(res.nit)
        self.usable_ = usable
        return self

    def decision_function(self, X):
        Z = np.asarray(self.scaler_.transform(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        return Z @ self.coef_ + self.intercept_

    def predict_proba(self, X):
        """Tag probabilities ``(n, T)`` (independent sigmoids)."""
        return expit(self.decision_function(X))

    @classmethod
    def path(cls, X, Y, mask, X_eval, Cs, **options) -> list[np.ndarray]:
        """Probabilities of ``X_eval`` for every ``C`` in increasing order, each fit starting
        from the previous optimum (one scaler for all)."""
        probe = cls(**options)
        X = np.asarray(X, dtype=np.float64)
        probe.scaler_ = make_scaler(probe.scaler).fit(X)
        Z = np.asarray(probe.scaler_.transform(X), dtype=np.float64)
        Y = np.nan_to_num(np.asarray(Y, dtype=np.float64))
        M = np.asarray(mask, dtype=bool)
        out, init = [], None
        for c in Cs:
            probe.C = c
            probe._fit_standardised(Z, Y, M, init)
            init = probe._state
            out.append(probe.predict_proba(X_eval))
        return out


class MultiLabelMLPProbe:
    """Standardisation + one hidden layer (ReLU, dropout) + sigmoid outputs; masked BCE.

    Parameters
    ----------
    hidden, dropout : int, float
        Hidden units and dropout rate.
    lr, weight_decay, batch_size, max_epochs : Adam settings and the number of epochs
        (chosen on validation by the protocol).
    scaler : transformer, optional
        As for :class:`MultiLabelLinearProbe`.
    random_state : int or None
        Seeds one ``torch.Generator`` for initialisation, shuffling and dropout.
    """

    def __init__(self, hidden: int = 512, dropout: float = 0.2, *, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 100,
                 scaler=None, random_state=None):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.scaler = scaler
        self.random_state = random_state

    def fit(self, X, Y, mask, *, eval_X=None):
        """Train for ``max_epochs``; with ``eval_X`` keep its scores after every epoch
        (``eval_scores_``, a list of ``(n_eval, T)``)."""
        import torch

        X = np.asarray(X, dtype=np.float64)
        self.scaler_ = make_scaler(self.scaler).fit(X)
        seed = np.random.default_rng(self.random_state).integers(2**63 - 1)
        gen = torch.Generator().manual_seed(int(seed))
        xt = torch.as_tensor(np.asarray(self.scaler_.transform(X), dtype=np.float32))
        yt = torch.as_tensor(np.nan_to_num(np.asarray(Y, dtype=np.float32)))
        mt = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        xe = None if eval_X is None else torch.as_tensor(np.asarray(
            self.scaler_.transform(np.asarray(eval_X, dtype=np.float64)), dtype=np.float32))
        n, d = xt.shape
        T, h = yt.shape[1], int(self.hidden)

        def uniform(shape, fan_in):
            bound = 1.0 / np.sqrt(fan_in)
            return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).requires_grad_()

        w1, b1, w2, b2 = uniform((d, h), d), uniform((h,), d), uniform((h, T), h), uniform((T,), h)
        opt = torch.optim.Adam([w1, b1, w2, b2], lr=self.lr, weight_decay=self.weight_decay)
        batch = max(1, min(int(self.batch_size), n))
        keep = 1.0 - self.dropout
        self.eval_scores_ = [] if xe is not None else None
        for _ in range(int(self.max_epochs)):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, batch):
                idx = perm[start:start + batch]
                hid = torch.relu(xt[idx] @ w1 + b1)
                if self.dropout > 0:
                    hid = hid * (torch.rand(hid.shape, generator=gen) < keep) / keep
                bce = torch.nn.functional.binary_cross_entropy_with_logits(
                    hid @ w2 + b2, yt[idx], reduction="none")
                loss = (bce * mt[idx]).sum() / mt[idx].sum().clamp(min=1.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if xe is not None:
                with torch.no_grad():
                    self.eval_scores_.append(torch.sigmoid(
                        torch.relu(xe @ w1 + b1) @ w2 + b2).numpy().astype(np.float64))
        self.coefs_ = [w1.detach().numpy().copy(), w2.detach().numpy().copy()]
        self.intercepts_ = [b1.detach().numpy().copy(), b2.detach().numpy().copy()]
        return self

    def predict_proba(self, X):
        """Tag probabilities ``(n, T)``."""
        z = np.asarray(self.scaler_.transform(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        hid = np.maximum(z @ self.coefs_[0] + self.intercepts_[0], 0.0)
        return expit(hid @ self.coefs_[1] + self.intercepts_[1])


# ----------------------------------------------------------------------------- results

def topk_hits(Y: np.ndarray, S: np.ndarray, mask: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, rows)``: for each track with a known positive (``rows``), 1.0 if one of its
    ``k`` best-scored known tags is present (``multilabel_metrics``' ``top1`` / ``top3``)."""
    pos = (Y == 1) & mask
    ranked = np.flatnonzero(pos.any(axis=1))
    order = np.argsort(-np.where(mask, S, -np.inf)[ranked], axis=1, kind="stable")
    return np.take_along_axis(pos[ranked], order, axis=1)[:, :k].any(axis=1).astype(float), ranked


def fold_ranks(S: np.ndarray, fold) -> np.ndarray:
    """Scores as within-fold percentile ranks per tag (``(rank - 0.5) / n``, ties averaged).

    Out-of-fold scores of k-fold CV come from k models whose offsets differ: a fold whose
    training part holds fewer positives of a tag scores its test tracks lower, while its test
    part holds more of them, so pooled AUCs of pure noise fall below 0.5 (0.39 in a test with
    4 folds of 12 tracks). Ranking within each fold removes the offset; the order inside a
    fold, hence a single test split's ROC-AUC and PR-AUC, is unchanged.
    """
    S = np.asarray(S, dtype=float)
    fold = np.asarray(fold)
    out = np.empty_like(S)
    for f in pd.unique(fold):
        rows = np.flatnonzero(fold == f)
        out[rows] = (rankdata(S[rows], axis=0) - 0.5) / len(rows)
    return out


def tagging_metrics_table(Y, S, mask, *, fold=None, groups=None, n_boot: int = 1000,
                          seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """``metric, value, ci_low, ci_high, n_tracks, n_groups`` for macro / micro ROC-AUC,
    macro PR-AUC (= mAP), top-1 and top-3, group-bootstrap 95% CIs; and the raw metrics.

    ROC-AUC and PR-AUC (which compare tracks) are computed on :func:`fold_ranks` of the
    scores when ``fold`` is given; top-k (which compares the tags of one track, all scored by
    one fold's model) on the scores themselves."""
    ranks = S if fold is None else fold_ranks(S, fold)
    m = multilabel_metrics(Y, ranks, mask=mask)
    topk = multilabel_metrics(Y, S, mask=mask)
    m.update({"top1": topk["top1"], "top3": topk["top3"]})
    groups = np.arange(len(Y)) if groups is None else np.asarray(groups)
    ci = (multilabel_bootstrap_ci(Y, ranks, mask=mask, groups=groups, n_boot=n_boot, seed=seed)
          if n_boot else {})
    n_groups = len(pd.unique(groups))
    rows = []
    for key in ("roc_auc_macro", "pr_auc_macro", "roc_auc_micro"):
        low, high = ci.get(key, (np.nan, np.nan))
        rows.append({"metric": key, "value": m[key], "ci_low": low, "ci_high": high,
                     "n_tracks": len(Y), "n_groups": n_groups})
    for k in (1, 3):
        hits, ranked = topk_hits(Y, S, mask, k)
        low, high = (bootstrap_mean_ci(hits, groups=groups[ranked], n_boot=n_boot, seed=seed)
                     if n_boot and len(hits) else (np.nan, np.nan))
        rows.append({"metric": f"top{k}", "value": m[f"top{k}"], "ci_low": low,
                     "ci_high": high, "n_tracks": len(ranked),
                     "n_groups": len(pd.unique(groups[ranked]))})
    return pd.DataFrame(rows), m


@dataclass
class TaggingResult:
    """Out-of-fold (or test-split) tag scores of one system, and how they were made.

    ``scores``: index ``track_id``, one column per tag (mean of segment probabilities);
    ROC-AUC and PR-AUC are computed on their within-fold ranks (:func:`fold_ranks`).
    ``truth``: same shape, 1 / 0, NaN where unknown (masked). ``groups`` / ``fold``: per
    track. ``metrics``: ``metric, value, ci_low, ci_high, n_tracks, n_groups``
    (``roc_auc_macro, pr_auc_macro, roc_auc_micro, top1, top3``). ``per_tag``: ROC-AUC,
    PR-AUC and known counts per tag (NaN AUC: no known positive or negative). ``folds``:
    per outer fold the chosen ``layer``, ``param`` / ``value``, ``val_roc_auc`` (validation
    macro ROC-AUC of the choice) and track counts. ``layer_scores``: validation macro
    ROC-AUC per candidate layer, averaged over folds.
    """

    name: str
    tags: list
    scores: pd.DataFrame
    truth: pd.DataFrame
    groups: pd.Series
    fold: pd.Series
    metrics: pd.DataFrame
    per_tag: pd.DataFrame
    folds: pd.DataFrame
    layer_scores: pd.DataFrame
    probe: str
    layer: Any
    split: str
    seed: int = 0
    n_boot: int = 1000
    fingerprint: Any = None
    params: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.truth.notna().to_numpy()

    @property
    def n_tracks(self) -> int:
        return len(self.scores)

    def metric_scores(self) -> np.ndarray:
        """The scores ROC-AUC / PR-AUC are computed on: :func:`fold_ranks` of ``scores``."""
        return fold_ranks(self.scores.to_numpy(), self.fold.to_numpy())

    def metric(self, name: str = "roc_auc_macro") -> float:
        return float(self.metrics.set_index("metric").loc[name, "value"])

    def validation_score(self) -> float:
        """Validation macro ROC-AUC behind the choices (mean over folds weighted by validation
        tracks); NaN when nothing was chosen (late fusion, zero-shot)."""
        f = self.folds
        if "val_roc_auc" not in f or not len(f) or "model" in f:
            return float("nan")
        w = f["n_valid"].to_numpy(float)
        v = f["val_roc_auc"].to_numpy(float)
        ok = np.isfinite(v) & (w > 0)
        return float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")

    def chosen_layers(self) -> str:
        """Layer chosen per fold, counted (``7 (x4), 8 (x1)``); ``-`` without folds."""
        if not len(self.folds) or "layer" not in self.folds:
            return "-"
        texts = [layer_text(v) for v in self.folds["layer"]]
        if "model" in self.folds:
            texts = [f"{m} {t}" for m, t in zip(self.folds["model"], texts, strict=True)]
        counts = pd.Series(texts).value_counts()
        return ", ".join(f"{k} (x{v})" for k, v in counts.items())

    def __repr__(self) -> str:
        m = self.metrics.set_index("metric").loc["roc_auc_macro"]
        return (f"TaggingResult({self.name!r}: macro ROC-AUC {m.value:.3f} "
                f"[{m.ci_low:.3f}, {m.ci_high:.3f}] on {self.n_tracks} tracks, "
                f"{len(self.tags)} tags, {self.probe}; {self.split})")


def make_result(*, name: str, tags: list, track_ids, Y, S, mask, groups, fold, folds,
                layer_scores, probe: str, layer, split: str, seed: int = 0,
                n_boot: int = 1000, fingerprint=None, params: dict | None = None
                ) -> TaggingResult:
    """Assemble a :class:`TaggingResult` (metrics, CIs and per-tag table computed here)."""
    index = pd.Index(list(track_ids), name="track_id")
    columns = pd.Index(list(tags), name="tag")
    Y = np.where(mask, Y, np.nan)
    metrics, raw = tagging_metrics_table(Y, S, mask, fold=fold, groups=groups, n_boot=n_boot,
                                         seed=seed)
    per_tag = pd.DataFrame({"roc_auc": raw["per_tag_roc_auc"], "pr_auc": raw["per_tag_pr_auc"],
                            "positive": ((Y == 1) & mask).sum(axis=0),
                            "negative": ((Y == 0) & mask).sum(axis=0),
                            "unknown": (~mask).sum(axis=0)}, index=columns)
    return TaggingResult(
        name=name, tags=list(tags), scores=pd.DataFrame(S, index=index, columns=columns),
        truth=pd.DataFrame(Y, index=index, columns=columns),
        groups=pd.Series(np.asarray(groups), index=index, name="group"),
        fold=pd.Series(list(fold), index=index, name="fold"), metrics=metrics,
        per_tag=per_tag, folds=pd.DataFrame(folds), layer_scores=layer_scores, probe=probe,
        layer=layer, split=split, seed=seed, n_boot=n_boot, fingerprint=fingerprint,
        params=dict(params or {}))
