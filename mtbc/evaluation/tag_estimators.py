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

from mtbc.evaluation.estimators import MLPSettings, make_scaler, mlp_device, train_mlp

TAGGING_PROBES = ("linear", "mlp")
#: Newton's method in the samples' span up to this many samples (when fewer than the
#: dimensions): one ``(n + 1)``-square solve per tag and iteration.
NEWTON_MAX_SAMPLES = 400


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
        """The objective's minimum: by Newton's method in the span of the samples when there
        are at most half as many samples as dimensions and at most
        :data:`NEWTON_MAX_SAMPLES` of them (:meth:`_fit_newton`), else by L-BFGS in the
        primal (:meth:`_fit_lbfgs`)."""
        n, d = Z.shape
        if n <= min(d // 2, NEWTON_MAX_SAMPLES):
            return self._fit_newton(Z, Y, M, init)
        return self._fit_lbfgs(Z, Y, M, init)

    def _fit_newton(self, Z, Y, M, init=None):
        """Newton's method on ``w = Z^T a`` (the minimum lies in the samples' span: the
        gradient in ``w`` is ``Z^T r + w``), one ``(n + 1)``-square system per tag and
        iteration, with a backtracking line search per tag, until the Newton decrement is
        below 1e-10 of the objective. Where L-BFGS needed hundreds of iterations on
        near-separable tags (a few hundred segments in a thousand dimensions), this needs
        about ten, and reaches the minimum more closely."""
        n, _ = Z.shape
        T = Y.shape[1]
        usable = _usable(Y, M)
        prior = _prior_logit(Y, M)
        C = float(self.C)
        Mw = (M & usable[None, :]).astype(np.float64)
        K = Z @ Z.T
        if init is not None and init[0] == "newton" and init[1].shape == (n, T):
            a, b = init[1].copy(), init[2].copy()
        else:
            a, b = np.zeros((n, T)), prior.astype(np.float64).copy()
        cols = np.flatnonzero(usable)

        def objective(a_, b_, tags):
            z_ = K @ a_ + b_
            f_ = C * np.sum(Mw[:, tags] * (np.logaddexp(0.0, z_) - Y[:, tags] * z_), axis=0)
            return f_ + 0.5 * np.sum(a_ * (K @ a_), axis=0), z_

        f, z = objective(a[:, cols], b[cols], cols)
        todo = np.ones(len(cols), bool)
        it = 0
        while todo.any() and it < int(self.max_iter):
            it += 1
            idx = np.flatnonzero(todo)
            t = cols[idx]
            p = expit(z[:, idx])
            r = C * Mw[:, t] * (p - Y[:, t])
            dg = C * Mw[:, t] * p * (1.0 - p)
            A = np.zeros((len(t), n + 1, n + 1))
            A[:, :n, :n] = dg.T[:, :, None] * K[None] + np.eye(n)[None]
            A[:, :n, n] = dg.T
            A[:, n, :n] = dg.T @ K
            A[:, n, n] = dg.sum(axis=0) + 1e-12
            rhs = -np.concatenate([(r + a[:, t]).T, r.sum(axis=0)[:, None]], axis=1)
            step = np.linalg.solve(A, rhs[..., None])[..., 0]
            da, db = step[:, :n].T, step[:, n]
            grad_a = K @ (r + a[:, t])
            decrement = -(np.sum(grad_a * da, axis=0) + r.sum(axis=0) * db)
            scale = np.ones(len(t))
            for _ in range(40):  # backtracking (Armijo) per tag
                f_new, z_new = objective(a[:, t] + scale * da, b[t] + scale * db, t)
                ok = f_new <= f[idx] - 1e-4 * scale * decrement
                if ok.all():
                    break
                scale = np.where(ok, scale, scale / 2)
            else:  # no decrease found (at the minimum to rounding): stay
                scale = np.where(ok, scale, 0.0)
                f_new, z_new = objective(a[:, t] + scale * da, b[t] + scale * db, t)
            a[:, t] += scale * da
            b[t] += scale * db
            f[idx], z[:, idx] = f_new, z_new
            done = (decrement / 2 <= 1e-10 * np.maximum(1.0, np.abs(f[idx]))) | (scale == 0)
            todo[idx[done]] = False
        V = Z.T @ a
        self._state = ("newton", a, b)
        self.coef_ = V.copy()
        self.intercept_ = np.where(usable, b, prior)
        self.coef_[:, ~usable] = 0.0
        self.n_iter_ = it
        self.usable_ = usable
        return self

    def _fit_lbfgs(self, Z, Y, M, init=None):
        """L-BFGS on the objective in the primal (``d x T`` weights). The dual form
        (``n x T`` unknowns when ``n < d``) is smaller but converged far more slowly: it
        often ran into ``max_iter``, where the primal needs tens of iterations."""
        n, d = Z.shape
        T = Y.shape[1]
        usable = _usable(Y, M)
        Mw = (M & usable[None, :]).astype(np.float64)
        prior = _prior_logit(Y, M)
        if init is not None and init[0] == "lbfgs":
            V0, b0 = init[1], init[2]
        else:
            V0, b0 = np.zeros((d, T)), prior.copy()
        C = float(self.C)
        scale = 1.0 / (C * max(1, n))  # the objective per sample, as scikit-learn scales it

        # the two products per evaluation read Z, which is memory-bound: in float32 they take
        # half the time; the objective, the gradient's sums and L-BFGS stay in float64 (the
        # macro ROC-AUCs moved in the sixth decimal in our check)
        Z32 = np.asarray(Z, dtype=np.float32)

        def fun(theta):
            V = theta[: d * T].reshape(d, T)
            b = theta[d * T:]
            z = (Z32 @ V.astype(np.float32)).astype(np.float64) + b
            loss = C * np.sum(Mw * (np.logaddexp(0.0, z) - Y * z)) + 0.5 * np.sum(V * V)
            g = C * Mw * (expit(z) - Y)
            gv = (Z32.T @ g.astype(np.float32)).astype(np.float64) + V
            return loss * scale, np.concatenate([gv.ravel(), g.sum(axis=0)]) * scale

        res = minimize(fun, np.concatenate([V0.ravel(), b0]), jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": float(self.tol)})
        V = res.x[: d * T].reshape(d, T)
        self._state = ("lbfgs", V, res.x[d * T:])
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
        dev = mlp_device(self.device)
        xt = torch.as_tensor(np.asarray(self.scaler_.transform(X), dtype=np.float32)).to(dev)
        yt = torch.as_tensor(np.nan_to_num(np.asarray(Y, dtype=np.float32))).to(dev)
        mt = torch.as_tensor(np.asarray(mask, dtype=np.float32)).to(dev)
        xe = None if eval_X is None else torch.as_tensor(np.asarray(
            self.scaler_.transform(np.asarray(eval_X, dtype=np.float64)),
            dtype=np.float32)).to(dev)

        def loss(logits, idx):  # binary cross-entropy over the known entries only
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yt[idx], reduction="none")
            return (bce * mt[idx]).sum() / mt[idx].sum().clamp(min=1.0)

        def sigmoid(logits):
            return torch.sigmoid(logits).cpu().numpy().astype(np.float64)

        self.best_epoch_ = None
        self.coefs_, self.intercepts_, self.eval_scores_ = train_mlp(
            self, xt, yt.shape[1], loss, gen=gen, eval_x=xe, output=sigmoid, monitor=monitor)
        return self

    def predict_proba(self, X):
        """Tag probabilities ``(n, T)``."""
        z = np.asarray(self.scaler_.transform(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        hid = np.maximum(z @ self.coefs_[0] + self.intercepts_[0], 0.0)
        return expit(hid @ self.coefs_[1] + self.intercepts_[1])
