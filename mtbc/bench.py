"""Benchmark helpers: a same-run matrix-multiply peak to compare achieved TFLOP/s against.

``mtbc bench`` prints, per model, load time, peak memory, audio-seconds per wall-second,
achieved TFLOP/s and its ratio to the matmul peak measured in the same run on the same
device. Model-specific benchmarks live beside this module's helpers.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import torch


def best_time(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn`` after ``warmup`` calls (seconds)."""
    for _ in range(warmup):
        fn()
        _sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - start)
    return best


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_peak_tflops(*, device: str = "cpu", dtype: torch.dtype = torch.float32,
                       n: int | None = None) -> float:
    """Achieved TFLOP/s of a large square matmul on ``device`` in ``dtype`` (the reference peak)."""
    n = n or (2048 if device == "cpu" else 8192)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = best_time(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds / 1e12


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_cuda_mib() -> float:
    """Peak CUDA memory allocated by torch (MiB), 0 without CUDA."""
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
