"""Split points for partial fine-tuning: a frozen trunk and a trainable top per extractor.

Each extractor's ``trunk_and_top(train_layers)`` returns a :class:`Split`: ``trunk(wave)``
runs the frozen lower part of the network on one wave and returns its output at the split
point, one row per segment, as a float32 ``(n_segments, a, b)`` array (the shape the
embedding cache stores, so it is computed once per track and kept under its own
fingerprint); ``top`` is a torch module holding a *copy* of the layers above the split point
(training it never changes the extractor's network), mapping a ``(batch, a, b)`` tensor to
``(batch, dim)`` features, which a classification head then maps to labels.

Split points (``train_layers`` = K):

- musicnn (:func:`musicnn_split`): K=1 trains the back end (batch norm of the pooled
  features, dense 200, its batch norm); the trunk output is the max and mean over time of
  the mid-end features, ``(n_patches, 2, 753)``. K=2 also trains the mid end (three 7-frame
  convs); the trunk output is the front end's ``(n_patches, 561, 187)``.
- MERT (:func:`mert_split`): the last K transformer layers (and, for the pre-LN 330M, the
  final layer norm); the trunk output is the hidden state entering layer ``n - K``,
  ``(n_chunks, frames, hidden)``; features are the time-mean of the last hidden state.
- VGGish (:func:`vggish_split`): the last K of its three fully connected layers (K=3: all);
  the trunk output is the flattened conv features ``(n_examples, 1, 12288)`` for K=3, else
  the output of the frozen fully connected layers.

The top runs in eval mode (batch norms keep their moving statistics, no dropout), so its
output on the cached trunk output equals the full network's, to float rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mtbc.extractors.musicnn_net import POOL_CHANNELS


@dataclass(frozen=True)
class Split:
    """A frozen trunk and a trainable top (see the module docstring).

    Attributes
    ----------
    trunk : ``wave -> (n_segments, a, b)`` float32 (mono wave at the extractor's rate).
    top : module ``(batch, a, b) -> (batch, dim)``; its parameters are the trainable ones.
    dim : width of the top's features.
    point : name of the split point (part of the trunk cache fingerprint).
    details : JSON-serialisable facts about the split (recorded with the cache and model).
    embedding : ``trunk output -> (n_segments, 1, dim)``, the extractor's own embedding when
        it follows from the trunk output without another pass (``None``: it does not).
    from_embedding : the inverse, ``embedding -> trunk output``, when the trunk output *is*
        the extractor's embedding rearranged (so a cached embedding gives it without a pass).
    """

    trunk: Callable[[np.ndarray], np.ndarray]
    top: nn.Module
    dim: int
    point: str
    details: dict[str, Any] = field(default_factory=dict)
    embedding: Callable[[np.ndarray], np.ndarray] | None = None
    from_embedding: Callable[[np.ndarray], np.ndarray] | None = None


def check_train_layers(train_layers: Any, most: int, what: str) -> int:
    """``train_layers`` as an int in ``1..most``, else ``ValueError`` naming the fix."""
    if isinstance(train_layers, bool) or not isinstance(train_layers, int | np.integer) \
            or not 1 <= int(train_layers) <= most:
        raise ValueError(f"train_layers={train_layers!r}: {what} can train 1 to {most} "
                         f"layers; pass an integer in that range")
    return int(train_layers)


class _EvalModule(nn.Module):
    """A module that stays in eval mode (frozen batch-norm statistics, no dropout)."""

    def train(self, mode: bool = True):  # noqa: ARG002 - always eval, by design
        return super().train(False)


# ----------------------------------------------------------------------------- musicnn

class MusicnnTop(_EvalModule):
    """musicnn above the split: optional mid end, pooling, back end -> penultimate (200)."""

    def __init__(self, net: nn.Module, *, mid: bool):
        super().__init__()
        self.with_mid = mid
        if mid:
            self.mid = copy.deepcopy(net.mid)
        self.pool_bn = copy.deepcopy(net.pool_bn)
        self.dense = copy.deepcopy(net.dense)
        self.dense_bn = copy.deepcopy(net.dense_bn)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_mid:  # x: front end (B, 561, T)
            c1 = self.mid[0](x)
            c2 = self.mid[1](c1) + c1
            c3 = self.mid[2](c2) + c2
            feats = torch.cat([x, c1, c2, c3], dim=1)
            pooled = torch.stack([feats.amax(dim=2), feats.mean(dim=2)], dim=2)
        else:  # x: (B, 2, 753) = [max_pool, mean_pool]
            pooled = x.transpose(1, 2)
        flat = pooled.flatten(1)  # TF's interleaved [max_0, mean_0, max_1, ...]
        return self.dense_bn(torch.relu(self.dense(self.pool_bn(flat))))


def musicnn_split(net: nn.Module, patches: Callable[[np.ndarray], np.ndarray],
                  train_layers: int = 1, *, device: torch.device | None = None,
                  layer: str | None = None) -> Split:
    """Split the loaded musicnn ``net``: K=1 back end, K=2 mid end and back end.

    ``patches(wave) -> (n, 187, 96)`` is the extractor's front end (log-mel patches);
    ``layer`` the extractor's embedding layer (``"pool"`` at K=1: the trunk output is it).
    """
    k = check_train_layers(train_layers, 2, "musicnn (1: back end, 2: mid end too)")
    device = device or next(net.parameters()).device

    def trunk(wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(patches(wave)).to(device)
        with torch.inference_mode():
            h = net.input_bn(x[:, None])
            front = torch.cat([blk(h) for blk in (*net.timbral, *net.temporal)], dim=1)
            if k == 2:
                return front.float().cpu().numpy()
            c1 = net.mid[0](front)
            c2 = net.mid[1](c1) + c1
            c3 = net.mid[2](c2) + c2
            feats = torch.cat([front, c1, c2, c3], dim=1)
            out = torch.stack([feats.amax(dim=2), feats.mean(dim=2)], dim=1)
        return out.float().cpu().numpy()

    point = "front end" if k == 2 else "mid end pooled"
    return Split(trunk, MusicnnTop(net, mid=k == 2).to(device), 200, point,
                 {"train_layers": k, "trainable": "mid end + back end" if k == 2 else "back end",
                  "trunk_shape": "(patches, 561, 187)" if k == 2
                  else f"(patches, 2, {POOL_CHANNELS})"},
                 *((lambda t: t.reshape(len(t), 1, -1), lambda e: e.reshape(len(e), 2, -1))
                   if k == 1 and layer == "pool" else (None, None)))


# ----------------------------------------------------------------------------- MERT

class _Stop(Exception):
    """Raised by the capture hook to end a forward pass at the split point."""


class MertTop(_EvalModule):
    """The last K transformer layers of a HubertModel (+ final layer norm for pre-LN),
    then the time mean: ``(B, frames, hidden) -> (B, hidden)``."""

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        self.layers = copy.deepcopy(model.encoder.layers[len(model.encoder.layers) - k:])
        self.stable = bool(getattr(model.config, "do_stable_layer_norm", False))
        self.norm = copy.deepcopy(model.encoder.layer_norm) if self.stable else nn.Identity()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        return self.norm(x).float().mean(dim=1)


#: MERT (HubertAttention) projections LoRA adapts, as MARBLE v2 does.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def add_lora(top: nn.Module, rank: int, *, alpha: float | None = None) -> nn.Module:
    """Add LoRA adapters (``peft``) of ``rank`` to the attention projections of ``top``; only
    the adapters stay trainable (``alpha`` default ``2 * rank``). At initialisation the
    adapters add zero, so outputs are unchanged."""
    from peft import LoraConfig, inject_adapter_in_model  # optional heavy dependency

    rank = check_train_layers(rank, 1024, "a LoRA rank")
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0,
                        target_modules=list(LORA_TARGETS))
    top = inject_adapter_in_model(config, top)
    for name, param in top.named_parameters():
        param.requires_grad = "lora_" in name
    return top


def mert_split(extractor: Any, train_layers: int = 4, *,
               normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
               lora: int | None = None) -> Split:
    """Split a :class:`~mtbc.extractors.mert.MertExtractor`: its last K transformer layers
    train. The trunk runs chunks of equal length only (full chunks; a track shorter than one
    chunk is one chunk): the shorter remainder is left out of fine-tuning. ``normalize`` is
    the per-chunk normalisation used when the extractor's ``do_normalize`` is set. ``lora``:
    a rank: those layers stay frozen and LoRA adapters on their attention projections
    train instead (:func:`add_lora`)."""
    model = extractor.model
    n = len(model.encoder.layers)
    k = check_train_layers(train_layers, n, f"MERT ({n} transformer layers)")

    def trunk(wave: np.ndarray) -> np.ndarray:
        chunks = extractor.chunks(extractor.check_wave(wave))
        if len(chunks) > 1 and len(chunks[-1]) != len(chunks[0]):
            chunks = chunks[:-1]
        x = torch.from_numpy(np.stack(chunks).astype(np.float32)).to(extractor.device)
        if extractor.do_normalize and normalize is not None:
            x = normalize(x)
        captured = []

        def hook(_module, args, kwargs):
            captured.append(args[0] if args else kwargs["hidden_states"])
            raise _Stop

        handle = model.encoder.layers[n - k].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.inference_mode():
                model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured[0].float().cpu().numpy()

    top = MertTop(model, k) if lora is None else add_lora(MertTop(model, k), lora)
    what = f"transformer layers {n - k + 1}..{n}"
    return Split(trunk, top, extractor.hidden_size, f"mert layer {n - k} input",
                 {"train_layers": k, "lora": lora,
                  "trainable": what if lora is None else f"LoRA rank {lora} on {what}",
                  "trunk_shape": "(chunks, frames, hidden)"})


# ----------------------------------------------------------------------------- VGGish

class VGGishTop(_EvalModule):
    """The last K fully connected layers of VGGish (with their ReLUs as the network has
    them): ``(B, 1, width) -> (B, 128)``."""

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        start = 2 * (3 - k)
        self.fc = copy.deepcopy(model.embeddings[start:])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, 0])


def vggish_split(extractor: Any, train_layers: int = 3) -> Split:
    """Split a :class:`~mtbc.extractors.vggish.VGGishExtractor` (no PCA): the last K of its
    fully connected layers train (K=3: all of them, the conv layers stay frozen)."""
    if getattr(extractor, "_pca", None) is not None or extractor.pca_path is not None:
        raise ValueError("fine-tuning VGGish needs postprocess: none (PCA is not trainable)")
    model = extractor.model
    k = check_train_layers(train_layers, 3, "VGGish (3 fully connected layers)")
    frozen_fc = model.embeddings[:2 * (3 - k)]

    def trunk(wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(extractor.examples(wave)).to(extractor.device)[:, None]
        with torch.inference_mode():
            h = model.features(x)
            h = torch.transpose(torch.transpose(h, 1, 3), 1, 2).contiguous().flatten(1)
            h = frozen_fc(h)
        return h.float().cpu().numpy()[:, None, :]

    return Split(trunk, VGGishTop(model, k), 128, f"vggish fc {3 - k}",
                 {"train_layers": k, "trainable": f"the last {k} fully connected layers",
                  "trunk_shape": "(examples, 1, width)"})
