"""Timing and memory primitives of the benchmark: best-of-N wall time, the same-run matmul
peak that achieved TFLOP/s are compared with, resident and CUDA memory, and the synthetic
workload (a deterministic music-like clip)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def best_time(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> float:
    """Shortest wall time in seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls
    (CUDA synchronised after each).

    Examples
    --------
    >>> best_time(lambda: sum(range(1000)), repeats=2) > 0
    True
    """
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
    """Achieved TFLOP/s of a large square matmul (``n`` x ``n``; 2048 on a CPU, 8192 on a
    GPU) on ``device`` in ``dtype``, best of 5: the reference peak of a benchmark row."""
    n = n or (2048 if device == "cpu" else 8192)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = best_time(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds / 1e12


def _proc_status_mib(key: str) -> float | None:
    """A ``kB`` line of ``/proc/self/status`` in MiB (``None`` where there is no ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_now_mib() -> float:
    """Resident memory of this process now (MiB; NaN where ``/proc`` is missing)."""
    now = _proc_status_mib("VmRSS")
    return float("nan") if now is None else now


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB).

    Linux: ``VmHWM``, the high-water mark of this program's own memory. Not ``ru_maxrss``:
    that one survives ``fork`` + ``exec``, so a benchmark subprocess would report at least
    its parent's resident memory at the fork. Elsewhere ``ru_maxrss`` (bytes on macOS, KiB
    otherwise).
    """
    peak = _proc_status_mib("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_cuda_mib() -> float:
    """Peak CUDA memory allocated by torch (MiB), 0 without CUDA."""
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0


def synthetic_clip(seconds: float, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """A deterministic music-like test clip, ``(round(seconds * sample_rate),)`` float32:
    three decaying harmonic tones plus soft noise (a timing workload, not music).

    Examples
    --------
    >>> synthetic_clip(2.0, 16000).shape
    (32000,)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = 0.02 * rng.standard_normal(len(t))
    for k, f in enumerate(rng.uniform(110, 880, size=3)):
        env = np.exp(-((t * (k + 1)) % 1.0) * 3)
        wave += 0.2 * env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))
    return wave.astype(np.float32)


def cosine_per_layer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity per layer of two ``(n, n_layers, dim)`` arrays; the minimum over the
    ``n`` rows, ``(n_layers,)``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (num / np.where(den == 0, 1, den)).min(axis=0)
