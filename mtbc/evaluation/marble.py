"""The MARBLE probe protocol, for figures comparable with the MARBLE benchmark's.

MARBLE's constrained track probes a frozen model on the predefined split: every file is the
mean of its chunks' embeddings; an MLP (one hidden layer of 512, ReLU, dropout 0.2) trains
with Adam at each learning rate of :data:`MARBLE_LRS`, the learning rate is reduced on a
validation plateau, training stops early, and the checkpoint with the best validation
accuracy is kept. The layer is each single layer, or a learned softmax-weighted sum of layers
1..L (layer 0, the conv front end, left out). The (layer, learning rate) with the best
validation accuracy is measured on the test split. Nothing is chosen on test data.

mtbc's default protocol differs (segment-level training, linear probe grid, k-fold for
collections without a split); ``docs/protocol.md`` says which published numbers each
protocol is comparable with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtbc.data import splits
from mtbc.evaluation.data import check_features, limit_threads, track_means
from mtbc.evaluation.options import EvalOptions, ProbeOptions
from mtbc.evaluation.results import (
    MARBLE,
    FoldOutcome,
    FoldRecord,
    ProbeResult,
    Provenance,
)
from mtbc.evaluation.tasks import Classification

#: Adam learning rates MARBLE searches.
MARBLE_LRS = (5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2)
WEIGHTED = "weighted sum 1..L"


def _fit(train: tuple, valid: tuple, *, n_classes: int, lr: float, weighted: bool, seed: int,
         options: MarbleOptions):
    """Train one MARBLE MLP on ``train = (x, y)``, stopping on ``valid = (x, y)``; returns
    (best validation accuracy, predict function of the state at that epoch)."""
    (x_tr, y_tr), (x_va, y_va) = train, valid
    import torch  # optional heavy dependency: only MLP training needs torch
    import torch.nn.functional as F

    max_epochs, patience, batch_size = options.max_epochs, options.patience, options.batch_size
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_layers, dim = (x_tr.shape[1], x_tr.shape[2]) if weighted else (1, x_tr.shape[1])
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0) + 1e-8  # standardised on training files only

    def prep(x):
        return torch.as_tensor((x - mean) / std, dtype=torch.float32)

    xt, xv = prep(x_tr), prep(x_va)
    yt = torch.as_tensor(y_tr, dtype=torch.long)
    net = torch.nn.Sequential(torch.nn.Linear(dim, 512), torch.nn.ReLU(),
                              torch.nn.Dropout(0.2), torch.nn.Linear(512, n_classes))
    layer_logits = torch.nn.Parameter(torch.zeros(n_layers)) if weighted else None
    params = list(net.parameters()) + ([layer_logits] if weighted else [])
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                       patience=max(1, patience // 3))

    def forward(x):
        if weighted:
            x = (torch.softmax(layer_logits, 0)[None, :, None] * x).sum(dim=1)
        return net(x)

    best, best_state, since = -1.0, None, 0
    for _ in range(max_epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(batch_size):
            loss = F.cross_entropy(forward(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = float((forward(xv).argmax(1).numpy() == y_va).mean())
        sched.step(acc)
        if acc > best:
            best, since = acc, 0
            best_state = ({k: v.clone() for k, v in net.state_dict().items()},
                          None if layer_logits is None else layer_logits.detach().clone())
        else:
            since += 1
            if since >= patience:
                break

    def predict(x):
        state, logits = best_state
        net.load_state_dict(state)
        net.eval()
        with torch.no_grad():
            z = prep(x)
            if weighted:
                z = (torch.softmax(logits, 0)[None, :, None] * z).sum(dim=1)
            return torch.softmax(net(z), dim=1).numpy()

    return best, predict


@dataclass(frozen=True)
class MarbleOptions:
    """MARBLE's search: Adam learning rates ``lrs``, ``max_epochs``, early-stopping
    ``patience`` (epochs without a better validation accuracy) and ``batch_size``."""

    lrs: tuple = MARBLE_LRS
    max_epochs: int = 100
    patience: int = 20
    batch_size: int = 64


#: ProbeOptions fields that MARBLE's protocol fixes itself (refused when set).
_NOT_APPLICABLE = ("layer", "selection", "Cs", "probe_params", "per_layer_test")


def evaluate_marble(features: np.ndarray, track_index: np.ndarray, tracks: pd.DataFrame, *,
                    probe_options=None, eval_options=None,
                    marble: MarbleOptions | None = None) -> ProbeResult:
    """The MARBLE constrained-track probe on a predefined train/valid/test split.

    ``features``/``track_index``/``tracks`` as in
    :func:`mtbc.evaluation.systems.evaluate_probe`; of its options only ``name``,
    ``fingerprint``, ``seed``, ``n_boot`` and ``n_threads`` apply (the layer, selection and
    probe grid are MARBLE's own: setting them raises ``ValueError``). Raises ``ValueError``
    when the tracks have no predefined split with all three parts.
    """
    p = probe_options or ProbeOptions()
    e = eval_options or EvalOptions()
    m = marble or MarbleOptions()
    default = ProbeOptions()
    ignored = [f for f in _NOT_APPLICABLE if getattr(p, f) != getattr(default, f)]
    if ignored:
        raise ValueError(f"protocol 'marble' chooses its own layer and probe: the option(s) "
                         f"{', '.join(ignored)} do not apply to it; leave them unset")
    seed, n_boot = e.seed, e.n_boot
    if not splits.has_predefined_split(tracks):
        raise ValueError("protocol 'marble' needs a predefined train/valid/test split (e.g. "
                         "GTZAN's fault-filtered split); use the default protocol for other "
                         "collections")
    features, track_index = check_features(features, track_index, tracks)
    task = Classification(tracks)
    task.check_covered(track_index)
    y = task.y
    split = tracks["split"].to_numpy()
    part = {s: np.flatnonzero((split == s) & (y >= 0)) for s in ("train", "valid", "test")}
    if not all(len(v) for v in part.values()):
        raise ValueError("protocol 'marble' needs labelled train, valid and test tracks")
    X = track_means(features, track_index, len(tracks)).astype(np.float64)
    n_layers = X.shape[1]
    candidates = list(range(n_layers)) + ([WEIGHTED] if n_layers > 2 else [])
    k = len(task.classes)
    scores = []
    best = None
    with limit_threads(e.n_threads, torch_too=True):
        for cand in candidates:
            weighted = cand == WEIGHTED
            view = (lambda r, c=cand: X[r, 1:]) if weighted else (lambda r, c=cand: X[r, c])
            for lr in m.lrs:
                acc, predict = _fit((view(part["train"]), y[part["train"]]),
                                    (view(part["valid"]), y[part["valid"]]), n_classes=k,
                                    lr=lr, weighted=weighted, seed=seed, options=m)
                scores.append({"layer": cand, "lr": lr, "val_accuracy": acc})
                if best is None or acc > best[0]:  # ties: the earlier candidate
                    best = (acc, cand, lr, predict, view)
    acc, cand, lr, predict, view = best
    test = part["test"]
    outcome = FoldOutcome(
        rows=test, scores=predict(view(test)), fold_names=["test"] * len(test),
        records=[FoldRecord(fold="test", layer=cand, param="lr", value=lr, val_score=acc,
                            n_train=len(part["train"]), n_valid=len(part["valid"]),
                            n_test=len(test))],
        layer_records={}, test_records={})
    how = Provenance(name=p.name or "MARBLE MLP probe", task="classification", system=MARBLE,
                     probe="mlp (MARBLE)", layer="select", selection="marble", scorer="mlp",
                     split="predefined split (MARBLE)", seed=seed, n_boot=n_boot,
                     fingerprint=p.fingerprint,
                     params={"protocol": "marble", "lrs": list(m.lrs),
                             "max_epochs": m.max_epochs, "patience": m.patience,
                             "candidates": [str(c) for c in candidates]})
    result = task.result(outcome, how)
    table = pd.DataFrame(scores)
    per_layer = table.groupby("layer", sort=False)["val_accuracy"].max().reset_index()
    result.layer_scores = per_layer.rename(columns={"val_accuracy": "accuracy"}).assign(
        ci_low=np.nan, ci_high=np.nan, n_tracks=len(part["valid"]), scorer="mlp (MARBLE)")
    return result
