"""Training the top and a head on cached trunk outputs (AdamW, per-epoch checkpoints).

One *run* trains a fresh copy of the split's top plus a linear head on the segments of some
tracks, for up to ``epochs`` epochs, and after every epoch records the training loss
(segment cross-entropy) and, when validation tracks are given, the validation loss and
accuracy *per track* (a track's probabilities are the mean of its segments'). With
``patience`` it stops after that many epochs without a lower validation loss.

Everything random is seeded: the head's initialisation by ``seed``, the batch order of
epoch ``e`` by ``numpy.random.default_rng([seed, e])``. With a checkpoint folder the run
saves its state after every epoch and, started again, resumes after the last completed
epoch, so an interrupted run ends with the same weights and history as an uninterrupted one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtbc.finetune.checkpoint import load_checkpoint, save_checkpoint

#: Learning rates tried on validation tracks (AdamW).
DEFAULT_LRS = (3e-4, 1e-3, 3e-3)


@dataclass(frozen=True)
class TrainOptions:
    """How the top is trained.

    Attributes
    ----------
    lrs : learning rates chosen among on validation tracks.
    max_epochs : most epochs of a run; the epoch count is chosen on validation tracks.
    patience : epochs without a lower validation loss before a run stops.
    batch_size : segments per step.
    weight_decay : AdamW weight decay.
    seed : head initialisation, batch order, folds.
    n_threads : torch threads while training (``None``: leave as is); one is fastest for
        small tops on a shared CPU (oversubscribed threads made the same runs 3x slower).
    """

    lrs: tuple[float, ...] = DEFAULT_LRS
    max_epochs: int = 20
    patience: int = 4
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0
    n_threads: int | None = 1

    def __post_init__(self):
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs!r}")
        for name in ("max_epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


class FineTuned(nn.Module):
    """A copy of a split's top plus a linear head: ``(B, a, b) -> (B, n_classes)`` logits."""

    def __init__(self, top: nn.Module, dim: int, n_classes: int, *, seed: int = 0):
        super().__init__()
        self.top = copy.deepcopy(top)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(x))


@dataclass(frozen=True)
class RunData:
    """Segments of one run: training ``X (N, a, b)``, ``y (N,)`` class codes; optional
    validation segments ``valid_X``, their track ``valid_owner (M,)`` and the validation
    tracks' codes ``valid_y (n_valid,)``."""

    X: np.ndarray
    y: np.ndarray
    valid_X: np.ndarray | None = None
    valid_owner: np.ndarray | None = None
    valid_y: np.ndarray | None = None


def track_probabilities(model: nn.Module, X: np.ndarray, owner: np.ndarray, n_tracks: int,
                        *, batch_size: int = 64) -> np.ndarray:
    """Mean of segment softmax probabilities per track: ``(n_tracks, n_classes)`` float64."""
    model.eval()
    probs = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            logits = model(torch.from_numpy(X[start:start + batch_size]))
            probs.append(torch.softmax(logits.float(), dim=1).double().numpy())
    p = np.concatenate(probs)
    out = np.zeros((n_tracks, p.shape[1]))
    np.add.at(out, owner, p)
    return out / np.bincount(owner, minlength=n_tracks)[:, None]


def _validate(model: nn.Module, data: RunData) -> tuple[float, float]:
    n = len(data.valid_y)
    p = track_probabilities(model, data.valid_X, data.valid_owner, n)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(n), data.valid_y], 1e-12, None))))
    return loss, float(np.mean(p.argmax(axis=1) == data.valid_y))


@dataclass(frozen=True)
class Checkpoint:
    """Where a run saves its per-epoch checkpoints, and what identifies it.

    Attributes
    ----------
    folder : str or pathlib.Path
        The run's checkpoint folder (:mod:`mtbc.finetune.checkpoint`).
    key : mapping
        JSON-able values that identify the run besides its lr, epochs and patience; a
        checkpoint saved under another key is not resumed.
    """

    folder: str | Path
    key: Mapping[str, Any] = field(default_factory=dict)


def train_run(model: FineTuned, data: RunData, *, lr: float, epochs: int,
              options: TrainOptions, patience: int | None = None,
              checkpoint: Checkpoint | None = None, on_epoch=None) -> list[dict[str, float]]:
    """Train ``model`` in place; returns the history, one dict per completed epoch
    (``epoch`` from 1, ``train_loss``, and ``valid_loss`` / ``valid_accuracy`` with
    validation data).

    ``checkpoint``: where per-epoch checkpoints go (:class:`Checkpoint`; resumed when one
    for the same key is there). ``on_epoch(record)`` is called after each epoch (progress,
    tests).
    """
    threads = torch.get_num_threads()
    if options.n_threads is not None:
        torch.set_num_threads(options.n_threads)
    try:
        return _train(model, data, lr=lr, epochs=epochs, options=options, patience=patience,
                      checkpoint=checkpoint, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(model, data, *, lr, epochs, options, patience, checkpoint: Checkpoint | None,
           on_epoch):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=options.weight_decay)
    folder = None if checkpoint is None else checkpoint.folder
    key = {"lr": lr, "epochs": epochs, "patience": patience,
           **(checkpoint.key if checkpoint is not None else {})}
    history: list[dict[str, float]] = []
    start = 0
    if folder is not None:
        record = load_checkpoint(folder, model, opt, key)
        if record is not None:
            history, start = record["history"], int(record["epoch"])
            if record.get("done"):
                return history
    X, y = torch.from_numpy(data.X), torch.from_numpy(np.asarray(data.y, np.int64))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start + 1, epochs + 1):
        model.train()
        order = np.random.default_rng([options.seed, epoch]).permutation(len(X))
        total = 0.0
        for i in range(0, len(order), options.batch_size):
            idx = torch.from_numpy(order[i:i + options.batch_size])
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
        rec = {"epoch": epoch, "train_loss": total / len(order)}
        if data.valid_X is not None:
            rec["valid_loss"], rec["valid_accuracy"] = _validate(model, data)
        history.append(rec)
        done = epoch == epochs or _stalled(history, patience)
        if folder is not None:
            save_checkpoint(folder, model, opt, {"epoch": epoch, "history": history,
                                                 "key": key, "done": done})
        if on_epoch is not None:
            on_epoch(rec)
        if done:
            break
    return history


def _stalled(history: list[dict[str, float]], patience: int | None) -> bool:
    if patience is None or "valid_loss" not in history[-1]:
        return False
    best = int(np.argmin([h["valid_loss"] for h in history]))
    return len(history) - 1 - best >= patience


def best_epoch(history: list[dict[str, float]]) -> tuple[int, float]:
    """``(epoch, valid_loss)`` of the lowest validation loss (ties: the earlier epoch)."""
    losses = [h["valid_loss"] for h in history]
    i = int(np.argmin(losses))
    return int(history[i]["epoch"]), float(losses[i])
