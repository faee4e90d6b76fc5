"""Probe estimators, in scikit-learn conventions (``__init__`` stores, ``fit`` returns self,
learned state ends in ``_``, ``random_state`` becomes a generator in ``fit``):

- :class:`LinearProbe`: standardisation + multinomial logistic regression (lbfgs).
- :class:`MLPProbe`: standardisation + one hidden layer (512, ReLU, dropout 0.2), Adam, in
  torch. Why torch rather than sklearn's ``MLPClassifier``: the latter has no dropout, and its
  ``early_stopping`` holds out a random 10% of *segments*, so segments of one track sit on both
  sides of the stopping split. Here the number of epochs is chosen like any other
  hyperparameter, on grouped validation tracks (:meth:`MLPProbe.fit` ``eval_X`` records the
  validation probabilities after every epoch). Deterministic for a given ``random_state``
  (one seeded ``torch.Generator`` for initialisation, shuffling and dropout masks).
- :class:`LayerSelector`: ``(n, n_layers, dim) -> (n, dim)``, one layer or the mean of layers.
- :class:`BlockStandardizer`: per-feature standardisation with each model's block scaled to
  total variance 1 (concatenation of models).
- :func:`train_mlp`: the one MLP training loop, shared with the tagging MLP
  (:mod:`mtbc.evaluation.tag_estimators`), which differs only in its loss.

How they are trained and evaluated without leakage is :mod:`mtbc.evaluation.engine`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
    clone,
)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

#: Inverse regularisation strengths tried for the linear probe (standardised features).
DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
PROBES = ("linear", "mlp")


def safe_std(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``std`` with (numerically) constant features set to 1, so they standardise to 0."""
    std = np.array(std, dtype=np.float64)
    std[std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return std


class LayerSelector(TransformerMixin, BaseEstimator):
    """Pick one layer of ``(n, n_layers, dim)`` features, or average them (``layer="mean"``)."""

    def __init__(self, layer: int | str = "mean"):
        self.layer = layer

    def fit(self, X, y=None):
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"expected (n, n_layers, dim) features, got shape {X.shape}")
        check_layer(self.layer, X.shape[1])
        self.n_layers_in_ = X.shape[1]
        self.dim_in_ = X.shape[2]
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1:] != (self.n_layers_in_, self.dim_in_):
            raise ValueError(f"expected (n, {self.n_layers_in_}, {self.dim_in_}) features, "
                             f"got shape {X.shape}")
        return take_layer(X, self.layer)


def check_layer(layer, n_layers: int) -> None:
    if isinstance(layer, str):
        if layer != "mean":
            raise ValueError(f"layer must be an int, 'mean' or 'select', not {layer!r}")
    elif not -n_layers <= int(layer) < n_layers:
        raise ValueError(f"layer {layer} does not exist: the features have {n_layers} layers")


def take_layer(X: np.ndarray, layer) -> np.ndarray:
    if isinstance(layer, str):
        return X.mean(axis=1, dtype=np.float64).astype(X.dtype, copy=False)
    return X[:, int(layer)]


def make_scaler(scaler):
    return clone(scaler) if scaler is not None else StandardScaler()


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Standardisation (learned on the training data) + multinomial logistic regression.

    Parameters
    ----------
    C : inverse L2 strength, chosen on validation by the protocol (:data:`DEFAULT_CS`).
    scaler : unfitted transformer to standardise with; ``None`` = ``StandardScaler()``
        (concatenation passes :class:`BlockStandardizer`).
    max_iter, tol : lbfgs limits.
    random_state : stored; lbfgs is deterministic, so it only seeds sklearn's solver state.
    """

    def __init__(self, C: float = 1.0, *, scaler=None, max_iter: int = 1000, tol: float = 1e-4,
                 random_state=None):
        self.C = C
        self.scaler = scaler
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        rng = check_random_state(self.random_state)
        self.scaler_ = make_scaler(self.scaler).fit(X)
        self.model_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, tol=self.tol,
            random_state=int(rng.randint(2**31 - 1))).fit(self.scaler_.transform(X), y)
        self.classes_ = self.model_.classes_
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.decision_function(self.scaler_.transform(X))

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict_proba(self.scaler_.transform(X))

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPSettings:
    """The settings of mtbc's MLP probes, stored by ``__init__`` in scikit-learn's convention
    and read by :func:`train_mlp`: ``hidden`` units, ``dropout``, Adam's ``lr`` and
    ``weight_decay``, ``batch_size``, at most ``max_epochs``, early stopping's ``patience``
    and ``tol`` (nats), the ``scaler`` (``None``: ``StandardScaler()``), ``random_state`` and
    the ``device`` it trains on (``"auto"``: the GPU when CUDA is available, else the CPU;
    :func:`mlp_device`). :class:`MLPProbe` and
    :class:`~mtbc.evaluation.tag_estimators.MultiLabelMLPProbe` share them."""

    def __init__(self, hidden: int = 512, dropout: float = 0.2, *, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 100,
                 patience: int | None = 10, tol: float = 1e-3, scaler=None,
                 random_state=None, device: str = "auto"):
        self.device = device
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.tol = tol
        self.scaler = scaler
        self.random_state = random_state


def mlp_device(device: str = "auto"):
    """The ``torch.device`` an MLP probe trains on: ``"auto"`` is CUDA when available, else
    the CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as given. ``ValueError`` (one line, with
    the fix) for anything else, or for CUDA where there is none. The random numbers
    (initialisation, shuffling, dropout) are drawn on the CPU from the probe's seed whatever
    the device, so a GPU run differs from a CPU run only by floating-point rounding."""
    import torch  # optional heavy dependency: only MLP training needs torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"MLP device {device!r} is not a device; use 'auto', 'cpu' or "
                         f"'cuda'") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"MLP device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"MLP device {device!r}: CUDA is not available here; use "
                         f"device='auto' or 'cpu'")
    return dev


class MLPProbe(ClassifierMixin, MLPSettings, BaseEstimator):
    """Standardisation + ``Linear(dim, hidden) -> ReLU -> Dropout -> Linear(hidden, classes)``.

    Trained with Adam on cross-entropy for ``max_epochs`` epochs of shuffled mini-batches, or
    fewer with early stopping (``patience`` and a ``monitor`` passed to ``fit``: the
    protocol's validation loss on grouped validation tracks; an epoch counts as progress when
    it lowers the loss by more than ``tol`` nats). Weights are kept as numpy arrays
    (``coefs_``, ``intercepts_``), so predicting needs no torch.

    ``fit(X, y, eval_X=...)`` also stores ``eval_proba_``: the probabilities of ``eval_X`` after
    every epoch (list of ``(n_eval, n_classes)``).
    """

    def fit(self, X, y, *, eval_X=None, monitor=None):
        """Train on ``X (n, dim)``, labels ``y (n,)``; with ``eval_X`` keep its probabilities
        after every epoch (``eval_proba_``); with ``monitor(proba) -> loss`` too, stop early
        (``patience``) and keep the best epoch's weights (``best_epoch_``)."""
        import torch  # optional heavy dependency: only MLP training needs torch
        import torch.nn.functional as F

        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                             f"the data contains only one class: {self.classes_[0]!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        rng = check_random_state(self.random_state)
        gen = torch.Generator().manual_seed(int(rng.randint(2**63 - 1, dtype=np.int64)))
        dev = mlp_device(self.device)
        self.scaler_ = make_scaler(self.scaler).fit(X)
        xt = torch.as_tensor(np.asarray(self.scaler_.transform(X), dtype=np.float32)).to(dev)
        xe = None
        if eval_X is not None:
            eval_X = validate_data(self, eval_X, reset=False, dtype=[np.float64, np.float32])
            xe = torch.as_tensor(np.asarray(self.scaler_.transform(eval_X),
                                            dtype=np.float32)).to(dev)
        yt = torch.as_tensor(codes, dtype=torch.long).to(dev)

        def loss(logits, idx):
            return F.cross_entropy(logits, yt[idx])

        def softmax(logits):
            return torch.softmax(logits, dim=1).cpu().numpy()

        classes = self.classes_

        def full(proba):  # columns of the classes seen in training, in y's label space
            return proba if monitor is None else monitor(proba, classes)

        self.best_epoch_ = None
        self.coefs_, self.intercepts_, self.eval_proba_ = train_mlp(
            self, xt, len(self.classes_), loss, gen=gen, eval_x=xe, output=softmax,
            monitor=None if monitor is None else full)
        self.n_iter_ = len(self.eval_proba_) if self.eval_proba_ is not None else int(
            self.max_epochs)
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        z = np.asarray(self.scaler_.transform(X), dtype=np.float64)
        hid = np.maximum(z @ self.coefs_[0] + self.intercepts_[0], 0.0)
        logits = hid @ self.coefs_[1] + self.intercepts_[1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]



class BlockStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise each feature, then scale each block by ``1 / sqrt(block_dim)``.

    Parameters
    ----------
    blocks : sizes of the consecutive feature blocks (summing to ``n_features``); ``None`` =
        one block. After ``fit``, every block's features have summed variance 1 on the training
        data (constant features stay 0, as in ``StandardScaler``).
    """

    def __init__(self, blocks: Sequence[int] | None = None):
        self.blocks = blocks

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        sizes = [X.shape[1]] if self.blocks is None else [int(b) for b in self.blocks]
        if any(b <= 0 for b in sizes) or sum(sizes) != X.shape[1]:
            raise ValueError(f"blocks {sizes} must be positive and sum to the "
                             f"{X.shape[1]} features")
        mean = X.mean(axis=0, dtype=np.float64)
        std = safe_std(mean, X.std(axis=0, dtype=np.float64))
        self.block_sizes_ = np.asarray(sizes)
        self.mean_ = mean
        self.scale_ = std * np.repeat(np.sqrt(self.block_sizes_), self.block_sizes_)
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)


def train_mlp(probe, x, n_out: int, loss, *, gen, eval_x=None, output=None, monitor=None):
    """The one MLP training loop of mtbc's probes (single-label and tagging).

    ``Linear(dim, hidden) -> ReLU -> Dropout -> Linear(hidden, n_out)``, initialised as
    ``torch.nn.Linear`` is, trained with Adam for ``probe.max_epochs`` epochs of shuffled
    mini-batches. ``probe`` supplies ``hidden, dropout, lr, weight_decay, batch_size,
    max_epochs``; ``x`` is the standardised ``(n, dim)`` float32 tensor; ``loss(logits, idx)``
    is the batch loss of the rows ``idx`` (cross-entropy, or masked binary cross-entropy for
    tags); ``gen`` is the seeded ``torch.Generator`` behind initialisation, shuffling and
    dropout masks. With ``eval_x``, ``output(logits)`` of it is kept after every epoch.

    Early stopping: with ``monitor(output) -> validation loss`` (and ``eval_x``), training
    stops once ``probe.patience`` epochs have not lowered the loss by more than ``probe.tol``
    (scikit-learn's ``n_iter_no_change`` / ``tol`` rule), and the weights of the epoch with
    the lowest loss are returned (``probe.best_epoch_`` is set to it, 1-based).

    Returns ``(coefs, intercepts, eval_outputs)``: the weights as numpy arrays
    ``[(dim, hidden), (hidden, n_out)]`` and ``[(hidden,), (n_out,)]``, and the list of
    per-epoch outputs (``None`` without ``eval_x``).
    """
    import torch  # optional heavy dependency: only MLP training needs torch

    n, d = x.shape
    h = int(probe.hidden)
    dev = x.device  # random numbers are drawn on the CPU (gen), then moved (mlp_device)

    def uniform(shape, fan_in):  # torch.nn.Linear's default initialisation
        bound = 1.0 / np.sqrt(fan_in)
        return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).to(dev).requires_grad_()

    w1, b1 = uniform((d, h), d), uniform((h,), d)
    w2, b2 = uniform((h, n_out), h), uniform((n_out,), h)
    # fused: one kernel updates the four tensors (torch's default on CPU is a loop over
    # them, about 3.5x slower per step and half the MLP's time); the values agree with the
    # loop's to float32 rounding (3e-8 on the probabilities in our check)
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=probe.lr, weight_decay=probe.weight_decay,
                           fused=True)
    batch = max(1, min(int(probe.batch_size), n))
    keep = 1.0 - probe.dropout
    outputs = [] if eval_x is not None else None
    params = [w1, b1, w2, b2]
    best = (np.inf, 0, None)  # (loss, epoch, weights)
    patience = getattr(probe, "patience", None)
    last_gain = (np.inf, 0)  # (loss, epoch) of the last improvement by more than `tol`
    tol = float(getattr(probe, "tol", 0.0) or 0.0)
    for epoch in range(1, int(probe.max_epochs) + 1):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch):
            idx = perm[start:start + batch].to(dev)
            hid = torch.relu(x[idx] @ w1 + b1)
            if probe.dropout > 0:
                hid = hid * (torch.rand(hid.shape, generator=gen).to(dev) < keep) / keep
            value = loss(hid @ w2 + b2, idx)
            opt.zero_grad()
            value.backward()
            opt.step()
        if eval_x is not None:
            with torch.no_grad():
                outputs.append(output(torch.relu(eval_x @ w1 + b1) @ w2 + b2))
            if monitor is not None:
                value = float(monitor(outputs[-1]))
                if value < best[0]:
                    best = (value, epoch, [p.detach().clone() for p in params])
                if value < last_gain[0] - tol:
                    last_gain = (value, epoch)
                elif patience is not None and epoch - last_gain[1] >= int(patience):
                    break
    if monitor is not None and best[2] is not None:
        w1, b1, w2, b2 = best[2]
        probe.best_epoch_ = best[1]
    coefs = [w1.detach().cpu().numpy().copy(), w2.detach().cpu().numpy().copy()]
    intercepts = [b1.detach().cpu().numpy().copy(), b2.detach().cpu().numpy().copy()]
    return coefs, intercepts, outputs
