"""Multi-label (tagging) probes, in scikit-learn conventions (``docs/tagging.md``).

- :class:`MultiLabelLinearProbe`: standardisation + one-vs-rest logistic regression, one
  L2-penalised binary model per tag with scikit-learn's objective
  (``C * sum(log-loss) + ||w||^2 / 2``, intercept not penalised), fitted jointly for all tags
  by L-BFGS (the objective separates by tag, so this *is* one-vs-rest). Unknown (masked)
  entries add nothing to the loss. A tag with no known positive or no known negative in the
  training data gets the constant score of its smoothed training rate.
- :class:`MultiLabelMLPProbe`: standardisation + ``Linear -> ReLU -> Dropout -> Linear`` with
  sigmoid outputs, trained by :func:`mtbc.evaluation.estimators.train_mlp` (the loop of
  :class:`~mtbc.evaluation.estimators.MLPProbe`) on masked binary cross-entropy; the number
  of epochs is chosen on grouped validation tracks (``eval_X``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from mtbc.evaluation.estimators import MLPSettings, make_scaler, train_mlp

TAGGING_PROBES = ("linear", "mlp")


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
        :class:`mtbc.evaluation.estimators.BlockStandardizer`).
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
        """L-BFGS on the objective in the primal (``d x T`` weights). The dual form
        (``n x T`` unknowns when ``n < d``) is smaller but converged far more slowly: it
        often ran into ``max_iter``, where the primal needs tens of iterations."""
        n, d = Z.shape
        T = Y.shape[1]
        usable = _usable(Y, M)
        Mw = (M & usable[None, :]).astype(np.float64)
        prior = _prior_logit(Y, M)
        if init is not None:
            V0, b0 = init[0], init[1]
        else:
            V0, b0 = np.zeros((d, T)), prior.copy()
        C = float(self.C)
        scale = 1.0 / (C * max(1, n))  # the objective per sample, as scikit-learn scales it

        def fun(theta):
            V = theta[: d * T].reshape(d, T)
            b = theta[d * T:]
            z = Z @ V + b
            loss = C * np.sum(Mw * (np.logaddexp(0.0, z) - Y * z)) + 0.5 * np.sum(V * V)
            g = C * Mw * (expit(z) - Y)
            gv = Z.T @ g + V
            return loss * scale, np.concatenate([gv.ravel(), g.sum(axis=0)]) * scale

        res = minimize(fun, np.concatenate([V0.ravel(), b0]), jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": float(self.tol)})
        V = res.x[: d * T].reshape(d, T)
        self._state = (V, res.x[d * T:])
        self.coef_ = V.copy()
        self.intercept_ = np.where(usable, res.x[d * T:], prior)
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


class MultiLabelMLPProbe(MLPSettings):
    """Standardisation + one hidden layer (ReLU, dropout) + sigmoid outputs; masked BCE.

    Parameters
    ----------
    hidden, dropout : int, float
        Hidden units and dropout rate.
    lr, weight_decay, batch_size, max_epochs : Adam settings and the most epochs.
    patience : early stopping, with a ``monitor`` given to ``fit`` (the validation loss):
        epochs without lowering the loss by more than ``tol`` before training stops; the
        best epoch's weights are kept.
    scaler : transformer, optional
        As for :class:`MultiLabelLinearProbe`.
    random_state : int or None
        Seeds one ``torch.Generator`` for initialisation, shuffling and dropout.
    """

    def fit(self, X, Y, mask, *, eval_X=None, monitor=None):
        """Train for ``max_epochs``; with ``eval_X`` keep its scores after every epoch
        (``eval_scores_``, a list of ``(n_eval, T)``); with ``monitor(scores) -> loss`` too,
        stop early and keep the best epoch (``best_epoch_``)."""
        import torch  # optional heavy dependency: only MLP training needs torch

        X = np.asarray(X, dtype=np.float64)
        self.scaler_ = make_scaler(self.scaler).fit(X)
        seed = np.random.default_rng(self.random_state).integers(2**63 - 1)
        gen = torch.Generator().manual_seed(int(seed))
        xt = torch.as_tensor(np.asarray(self.scaler_.transform(X), dtype=np.float32))
        yt = torch.as_tensor(np.nan_to_num(np.asarray(Y, dtype=np.float32)))
        mt = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        xe = None if eval_X is None else torch.as_tensor(np.asarray(
            self.scaler_.transform(np.asarray(eval_X, dtype=np.float64)), dtype=np.float32))

        def loss(logits, idx):  # binary cross-entropy over the known entries only
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yt[idx], reduction="none")
            return (bce * mt[idx]).sum() / mt[idx].sum().clamp(min=1.0)

        def sigmoid(logits):
            return torch.sigmoid(logits).numpy().astype(np.float64)

        self.best_epoch_ = None
        self.coefs_, self.intercepts_, self.eval_scores_ = train_mlp(
            self, xt, yt.shape[1], loss, gen=gen, eval_x=xe, output=sigmoid, monitor=monitor)
        return self

    def predict_proba(self, X):
        """Tag probabilities ``(n, T)``."""
        z = np.asarray(self.scaler_.transform(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        hid = np.maximum(z @ self.coefs_[0] + self.intercepts_[0], 0.0)
        return expit(hid @ self.coefs_[1] + self.intercepts_[1])
