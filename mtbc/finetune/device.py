"""Where and how the top trains: its precision (bf16 autocast) and, on a GPU, its batch size.

- :func:`training_precision`: ``"auto"`` takes extraction's own decision
  (:func:`mtbc.extractors.base.resolve_dtype` with ``cpu_bf16=True``): bf16 on CUDA with bf16
  support and on CPUs with native bf16 (AVX512-BF16 / AMX, or ``MTBC_CPU_BF16=1``), float32
  everywhere else. A GPU without bf16 trains in float32 (fp16 would need loss scaling).
  ``"float32"`` turns autocast off; ``"bfloat16"`` forces it.
- :func:`autocast`: the context the trunk pass, every training step and every prediction
  run under (weights stay float32: AdamW updates full-precision master weights).
- :func:`batch_size_for` / :func:`choose_batch_size`: on CUDA the batch size fits the free
  memory (``torch.cuda.mem_get_info``) given a per-sample estimate measured with one and two
  samples, clamped to ``[1, max_batch_size]``; elsewhere the given batch size.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from mtbc.extractors.base import resolve_dtype

PRECISIONS = ("auto", "float32", "bfloat16")
#: Share of the free GPU memory the training batches may use (the rest: allocator slack,
#: fragmentation, the validation pass).
MEMORY_FRACTION = 0.7


def check_precision(precision: Any) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ``ValueError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, not "
                         f"{precision!r}")
    return precision


def training_precision(precision: str, device: Any) -> str:
    """The precision the top trains in on ``device``: ``"bfloat16"`` or ``"float32"``.

    Examples
    --------
    >>> training_precision("float32", "cuda")
    'float32'
    """
    if check_precision(precision) != "auto":
        return precision
    return "bfloat16" if resolve_dtype("auto", device, cpu_bf16=True) == "bfloat16" \
        else "float32"


def autocast(precision: str, device: Any):
    """A ``torch.autocast`` context for bf16 on ``device``'s type; a null context for fp32."""
    import torch  # torch only where the network runs

    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=getattr(torch, precision))


def batch_size_for(free_bytes: float, per_sample_bytes: float, *, max_batch_size: int,
                   reserve_bytes: float = 0.0, fraction: float = MEMORY_FRACTION) -> int:
    """Samples per step that fit ``fraction`` of ``free_bytes`` after ``reserve_bytes``, at
    ``per_sample_bytes`` each, clamped to ``[1, max_batch_size]``.

    Examples
    --------
    >>> batch_size_for(10 * 2**30, 2**30, max_batch_size=64)
    7
    >>> batch_size_for(2**20, 2**30, max_batch_size=64)
    1
    """
    if not per_sample_bytes > 0:
        return int(max_batch_size)
    fits = (fraction * float(free_bytes) - float(reserve_bytes)) // float(per_sample_bytes)
    return int(min(max_batch_size, max(1, fits)))


def per_sample_bytes(model, sample: np.ndarray, labels: np.ndarray, *, precision: str
                     ) -> tuple[float, float]:
    """``(per_sample, fixed)`` CUDA bytes of one training step of ``model``: the growth of
    the peak allocation from a batch of one to a batch of two ``sample`` rows (at least the
    batch of one's own), and what the step holds besides (gradients). No optimiser step is
    taken and the gradients are cleared, so the model is unchanged."""
    import torch  # torch only where the network runs

    device = next(model.parameters()).device
    loss_fn = torch.nn.CrossEntropyLoss()
    peaks = []
    base = torch.cuda.memory_allocated(device)
    for n in (1, 2):
        x = torch.from_numpy(np.ascontiguousarray(sample[:n])).to(device)
        y = torch.from_numpy(np.asarray(labels[:n], np.int64)).to(device)
        torch.cuda.reset_peak_memory_stats(device)
        with autocast(precision, device):
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        model.zero_grad(set_to_none=True)
        del x, y, loss
    if len(sample) < 2:
        return float(peaks[0]), 0.0
    slope = peaks[1] - peaks[0]
    per = float(slope if slope > 0 else peaks[0])
    return per, float(max(peaks[0] - per, 0.0))


def choose_batch_size(model, X: np.ndarray, y: np.ndarray, *, batch_size: int,
                      max_batch_size: int, precision: str) -> int:
    """The batch size a run of ``model`` uses: on CUDA from the free memory
    (:func:`batch_size_for` with :func:`per_sample_bytes`, AdamW's two moments of every
    trainable parameter reserved), else ``batch_size``."""
    import torch  # torch only where the network runs

    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    if device.type != "cuda" or len(X) == 0:
        return int(batch_size)
    per, fixed = per_sample_bytes(model, X[:2], y[:2], precision=precision)
    moments = 2 * sum(p.numel() * p.element_size() for p in params)
    free, _total = torch.cuda.mem_get_info(device)
    return batch_size_for(free, per, max_batch_size=max_batch_size,
                          reserve_bytes=moments + fixed)
