"""The musicnn network (Pons & Serra 2019) in PyTorch, with TF checkpoint weights mapped in.

A port of ``build_musicnn`` of the musicnn 0.1.0 wheel (``musicnn/models.py``) for inference
(``is_training=False``: batch norm uses the moving statistics, dropout is the identity).
Tensors are laid out ``(batch, channels, time, freq)``; the original is NHWC
``(batch, time, freq, channels)`` with ``(kh, kw, in, out)`` kernels, converted on load.

Input ``(batch, 187, 96)`` log-mel patches:

1. batch norm of the input (one channel: scalar statistics);
2. front end, five blocks of conv + ReLU, then batch norm, then max over the whole frequency
   axis: timbral 7x38 and 7x67 (204 filters each), 'valid' on the input zero-padded by 3
   frames each side in time; temporal 128x1, 64x1, 32x1 (51 filters each), TF 'same'
   padding (for an even kernel ``k``: ``(k - 1) // 2`` frames before, ``k // 2`` after);
   concatenated: 561 channels per frame;
3. mid end: three 7-frame convs (64 filters; ReLU then batch norm), zero-padded by 3 frames,
   the 2nd and 3rd with a residual connection; concatenated with the front end: 753 channels;
4. back end: max and mean over time (753 each). TF concatenates them on a trailing axis of
   size 2 and flattens, so the 1506 inputs of the next batch norm are *interleaved*
   ``[max_0, mean_0, max_1, mean_1, ...]``; then dense 200 + ReLU, batch norm (the
   ``penultimate`` features) and dense 50 (logits).

Batch norm epsilon is TF's default, 1e-3.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

BN_EPSILON = 1e-3
N_FRAMES = 187
N_MELS = 96
N_TAGS = 50
TIMBRAL_FILTERS = int(1.6 * 128)  # 204
TEMPORAL_FILTERS = int(1.6 * 32)  # 51
MIDEND_FILTERS = 64
BACKEND_UNITS = 200
FRONTEND_CHANNELS = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS  # 561
POOL_CHANNELS = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 753
TIMBRAL_KERNELS = ((7, int(0.4 * N_MELS)), (7, int(0.7 * N_MELS)))  # 7x38, 7x67
TEMPORAL_KERNELS = (128, 64, 32)


def same_padding(kernel: int) -> tuple[int, int]:
    """TF 'same' padding at stride 1: ``(before, after)``, the extra frame after."""
    return (kernel - 1) // 2, kernel // 2


def _bn(n: int, dims: int) -> nn.Module:
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(n, eps=BN_EPSILON)


class _FrontBlock(nn.Module):
    """Conv2d + ReLU, batch norm, max over frequency: ``(B, 1, T', F) -> (B, C, T)``."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]):
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = _bn(filters, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (0, 0, *self.time_pad))  # (freq l, r, time l, r)
        return self.bn(torch.relu(self.conv(x))).amax(dim=3)


class _MidBlock(nn.Module):
    """7-frame conv over all channels + ReLU, then batch norm: ``(B, C, T) -> (B, 64, T)``."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, MIDEND_FILTERS, 7, padding=3)
        self.bn = _bn(MIDEND_FILTERS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.relu(self.conv(x)))


class Musicnn(nn.Module):
    """musicnn for inference; :meth:`forward` returns a dict of named outputs."""

    def __init__(self, n_tags: int = N_TAGS):
        super().__init__()
        self.input_bn = _bn(1, 2)
        self.timbral = nn.ModuleList(_FrontBlock(TIMBRAL_FILTERS, k, (3, 3))
                                     for k in TIMBRAL_KERNELS)
        self.temporal = nn.ModuleList(_FrontBlock(TEMPORAL_FILTERS, (k, 1), same_padding(k))
                                      for k in TEMPORAL_KERNELS)
        self.mid = nn.ModuleList([_MidBlock(FRONTEND_CHANNELS), _MidBlock(MIDEND_FILTERS),
                                  _MidBlock(MIDEND_FILTERS)])
        self.pool_bn = _bn(2 * POOL_CHANNELS, 1)
        self.dense = nn.Linear(2 * POOL_CHANNELS, BACKEND_UNITS)
        self.dense_bn = _bn(BACKEND_UNITS, 1)
        self.logits = nn.Linear(BACKEND_UNITS, n_tags)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``(B, 187, 96)`` log-mel patches (any number of frames >= 1 works)."""
        x = self.input_bn(x[:, None])
        front = torch.cat([blk(x) for blk in (*self.timbral, *self.temporal)], dim=1)
        c1 = self.mid[0](front)
        c2 = self.mid[1](c1) + c1
        c3 = self.mid[2](c2) + c2
        feats = torch.cat([front, c1, c2, c3], dim=1)  # (B, 753, T)
        max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF's interleaved order
        penultimate = self.dense_bn(torch.relu(self.dense(self.pool_bn(flat))))
        logits = self.logits(penultimate)
        return {"timbral": front[:, :2 * TIMBRAL_FILTERS],
                "temporal": front[:, 2 * TIMBRAL_FILTERS:], "cnn1": c1, "cnn2": c2, "cnn3": c3,
                "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate,
                "logits": logits, "tags": torch.sigmoid(logits)}


# ----------------------------------------------------------------------------- weights

def _conv2d(k: np.ndarray) -> np.ndarray:  # (kh, kw, in, out) -> (out, in, kh, kw)
    return k.transpose(3, 2, 0, 1)


def _conv1d(k: np.ndarray) -> np.ndarray:  # (7, C, 1, out): conv over (time, all channels)
    return k[:, :, 0, :].transpose(2, 1, 0)


def _dense(k: np.ndarray) -> np.ndarray:  # (in, out) -> (out, in)
    return k.T


def _identity(k: np.ndarray) -> np.ndarray:
    return k


def _key_table() -> list[tuple[str, str, object]]:
    """(TF checkpoint name, torch state-dict key, layout conversion), in graph order."""
    table: list[tuple[str, str, object]] = []
    bns = ["input_bn", "timbral.0.bn", "timbral.1.bn", "temporal.0.bn", "temporal.1.bn",
           "temporal.2.bn", "mid.0.bn", "mid.1.bn", "mid.2.bn", "pool_bn", "dense_bn"]
    for i, module in enumerate(bns):
        tf = "batch_normalization" + (f"_{i}" if i else "")
        for tf_part, pt_part in (("gamma", "weight"), ("beta", "bias"),
                                 ("moving_mean", "running_mean"),
                                 ("moving_variance", "running_var")):
            table.append((f"{tf}/{tf_part}", f"{module}.{pt_part}", _identity))
    convs = [("timbral.0.conv", _conv2d), ("timbral.1.conv", _conv2d),
             ("temporal.0.conv", _conv2d), ("temporal.1.conv", _conv2d),
             ("temporal.2.conv", _conv2d), ("mid.0.conv", _conv1d), ("mid.1.conv", _conv1d),
             ("mid.2.conv", _conv1d)]
    for i, (module, fn) in enumerate(convs):
        tf = "conv2d" + (f"_{i}" if i else "")
        table.append((f"{tf}/kernel", f"{module}.weight", fn))
        table.append((f"{tf}/bias", f"{module}.bias", _identity))
    for tf, module in (("dense", "dense"), ("dense_1", "logits")):
        table.append((f"{tf}/kernel", f"{module}.weight", _dense))
        table.append((f"{tf}/bias", f"{module}.bias", _identity))
    return table


#: TF checkpoint name -> (torch key, layout conversion): the 64 tensors the network uses.
KEY_TABLE = {tf: (pt, fn) for tf, pt, fn in _key_table()}


def is_model_tensor(name: str) -> bool:
    """True for tensors the network uses; False for optimiser state (Adam slots, powers)."""
    return name in KEY_TABLE


def state_dict_from_tf(tensors: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map TF-named tensors (original layouts) to a :class:`Musicnn` state dict.

    Every tensor of :data:`KEY_TABLE` must be present with the shape the network needs; any
    other tensor except optimiser slots is an error.
    """
    missing = sorted(set(KEY_TABLE) - set(tensors))
    unused = sorted(n for n in tensors if n not in KEY_TABLE and "Adam" not in n
                    and not n.startswith(("beta1_power", "beta2_power")))
    if missing or unused:
        raise ValueError(f"musicnn weights do not match the network: missing {missing}, "
                         f"unexpected {unused}")
    n_tags = int(tensors["dense_1/bias"].shape[0])
    expected = Musicnn(n_tags).state_dict()
    state: dict[str, torch.Tensor] = {}
    for tf_name, (key, fn) in KEY_TABLE.items():
        value = torch.from_numpy(np.ascontiguousarray(fn(np.asarray(tensors[tf_name],
                                                                    np.float32))))
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"musicnn tensor {tf_name!r}: shape {tuple(value.shape)} after "
                             f"conversion, the network needs {tuple(expected[key].shape)}")
        state[key] = value
    for key, value in expected.items():  # BN counters, not in TF checkpoints
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                raise AssertionError(f"no checkpoint tensor maps to {key}")
            state[key] = value
    return state


def build_musicnn(tensors: Mapping[str, np.ndarray]) -> Musicnn:
    """A :class:`Musicnn` in eval mode holding ``tensors`` (TF names and layouts)."""
    model = Musicnn(int(tensors["dense_1/bias"].shape[0]))
    model.load_state_dict(state_dict_from_tf(tensors), strict=True)
    return model.eval()
