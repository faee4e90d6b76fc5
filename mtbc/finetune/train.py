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

Steps run on the device of the top (the extractor's), under bf16 autocast where the device
has it (:mod:`mtbc.finetune.device`; ``TrainOptions.precision="float32"`` turns it off), with
float32 weights; on a GPU the batch size fits the free memory. Each epoch shows a progress
bar (training loss as it goes, then the validation loss) when asked and on a terminal.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mtbc.finetune.checkpoint import load_checkpoint, save_checkpoint
from mtbc.finetune.device import (
    autocast,
    check_precision,
    choose_batch_size,
    training_precision,
)

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
    batch_size : segments per step on a CPU (on a GPU: as many as the free memory holds,
        up to ``max_batch_size``).
    weight_decay : AdamW weight decay.
    seed : head initialisation, batch order, folds.
    n_threads : torch threads while training (``None``: leave as is); one is fastest for
        small tops on a shared CPU (oversubscribed threads made the same runs 3x slower).
    precision : ``"auto"`` (bf16 autocast where the device has it, as extraction decides:
        :func:`mtbc.finetune.device.training_precision`), ``"float32"`` (off) or
        ``"bfloat16"``.
    max_batch_size : the most segments per step on a GPU.
    """

    lrs: tuple[float, ...] = DEFAULT_LRS
    max_epochs: int = 20
    patience: int = 4
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0
    n_threads: int | None = 1
    precision: str = "auto"
    max_batch_size: int = 256

    def __post_init__(self):
        check_precision(self.precision)
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs!r}")
        for name in ("max_epochs", "patience", "batch_size", "max_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


class FineTuned(nn.Module):
    """A copy of a split's top plus a linear head: ``(B, a, b) -> (B, n_classes)`` logits.

    The copy's weights are float32 (a top cut from a network cast to bf16 trains float32
    master weights under autocast); the head is on the top's device."""

    def __init__(self, top: nn.Module, dim: int, n_classes: int, *, seed: int = 0):
        super().__init__()
        self.top = copy.deepcopy(top).float()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = nn.Linear(dim, n_classes)
        self.head.to(self.device)

    @property
    def device(self) -> torch.device:
        """Where the top's parameters are (the CPU for a top without parameters)."""
        return next((p.device for p in self.top.parameters()), torch.device("cpu"))

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


def track_probabilities(model: FineTuned, X: np.ndarray, owner: np.ndarray, n_tracks: int,
                        *, batch_size: int = 64, precision: str = "float32") -> np.ndarray:
    """Mean of segment softmax probabilities per track: ``(n_tracks, n_classes)`` float64
    (segments run on the model's device under ``precision``)."""
    model.eval()
    device = model.device
    probs = []
    with torch.no_grad(), autocast(precision, device):
        for start in range(0, len(X), batch_size):
            logits = model(torch.from_numpy(X[start:start + batch_size]).to(device))
            probs.append(torch.softmax(logits.float(), dim=1).double().cpu().numpy())
    p = np.concatenate(probs)
    out = np.zeros((n_tracks, p.shape[1]))
    np.add.at(out, owner, p)
    return out / np.bincount(owner, minlength=n_tracks)[:, None]


def _validate(model: FineTuned, data: RunData, *, batch_size: int, precision: str
              ) -> tuple[float, float]:
    n = len(data.valid_y)
    p = track_probabilities(model, data.valid_X, data.valid_owner, n, batch_size=batch_size,
                            precision=precision)
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


@dataclass(frozen=True)
class Watch:
    """What a run shows while it trains, without changing what it computes: a progress bar
    per epoch (``progress``; shown on a terminal only) and ``on_epoch(record)``, called after
    each epoch (notebooks, tests)."""

    progress: bool = False
    on_epoch: Callable[[dict[str, float]], Any] | None = None


def train_run(model: FineTuned, data: RunData, *, lr: float, epochs: int,
              options: TrainOptions, patience: int | None = None,
              checkpoint: Checkpoint | None = None, watch: Watch = Watch()
              ) -> list[dict[str, float]]:
    """Train ``model`` in place; returns the history, one dict per completed epoch
    (``epoch`` from 1, ``train_loss``, ``segments``, ``batch_size``, ``precision``, and
    ``valid_loss`` / ``valid_accuracy`` with validation data).

    The precision is ``options.precision`` on the model's device
    (:func:`mtbc.finetune.device.training_precision`); the batch size ``options.batch_size``,
    or on a GPU what the free memory holds (:func:`mtbc.finetune.device.choose_batch_size`).
    ``checkpoint``: where per-epoch checkpoints go (:class:`Checkpoint`; resumed when one
    for the same key and precision is there; it goes on with the batch size it was saved
    with). ``watch``: progress bar and
    per-epoch callback (:class:`Watch`).
    """
    threads = torch.get_num_threads()
    if options.n_threads is not None:
        torch.set_num_threads(options.n_threads)
    try:
        precision = training_precision(options.precision, model.device)
        batch = choose_batch_size(model, data.X, data.y, batch_size=options.batch_size,
                                  max_batch_size=options.max_batch_size, precision=precision)
        key = {"lr": lr, "epochs": epochs, "patience": patience, "precision": precision,
               **(checkpoint.key if checkpoint is not None else {})}
        step = _Step(model, torch.optim.AdamW([p for p in model.parameters()
                                               if p.requires_grad],
                                              lr=lr, weight_decay=options.weight_decay),
                     precision, batch)
        return _train(step, data, epochs=epochs, options=options, patience=patience,
                      folder=None if checkpoint is None else checkpoint.folder, key=key,
                      watch=watch)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class _Step:
    model: FineTuned
    opt: torch.optim.Optimizer
    precision: str
    batch_size: int


def _train(step: _Step, data: RunData, *, epochs, options, patience, folder, key, watch):
    model, opt, batch_size = step.model, step.opt, step.batch_size
    history: list[dict[str, float]] = []
    start = 0
    if folder is not None:
        record = load_checkpoint(folder, model, opt, key)
        if record is not None:
            history, start = record["history"], int(record["epoch"])
            batch_size = int(record.get("batch_size", batch_size))
            if record.get("done"):
                return history
    device = model.device
    X, y = torch.from_numpy(data.X), torch.from_numpy(np.asarray(data.y, np.int64))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start + 1, epochs + 1):
        model.train()
        order = np.random.default_rng([options.seed, epoch]).permutation(len(X))
        total = 0.0
        bar = tqdm(total=len(order), desc=f"epoch {epoch}/{epochs}", unit="seg", leave=False,
                   disable=None if watch.progress else True, dynamic_ncols=True)
        for i in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[i:i + batch_size])
            xb, yb = X[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
            with autocast(step.precision, device):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
            bar.update(len(idx))
            bar.set_postfix(train_loss=f"{total / min(i + len(idx), len(order)):.4f}",
                            refresh=False)
        rec = {"epoch": epoch, "train_loss": total / len(order), "segments": len(order),
               "batch_size": batch_size, "precision": step.precision}
        if data.valid_X is not None:
            rec["valid_loss"], rec["valid_accuracy"] = _validate(
                model, data, batch_size=max(64, batch_size), precision=step.precision)
            bar.set_postfix(train_loss=f"{rec['train_loss']:.4f}",
                            valid_loss=f"{rec['valid_loss']:.4f}")
        bar.close()
        history.append(rec)
        done = epoch == epochs or _stalled(history, patience)
        if folder is not None:
            save_checkpoint(folder, model, opt, {"epoch": epoch, "history": history,
                                                 "key": key, "done": done,
                                                 "batch_size": batch_size})
        if watch.on_epoch is not None:
            watch.on_epoch(rec)
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
