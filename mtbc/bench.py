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


def bench_vggish(*, device: str = "cpu", batch_sizes: tuple[int, ...] = (8, 32, 64),
                 clip_seconds: float = 30.0, n_clips: int = 2, channels_last: bool = True,
                 num_threads: int | None = None, repeats: int = 3,
                 weights: str | None = None) -> list[dict]:
    """Time VGGish extraction end to end, one row per batch size.

    Uses full-size random weights (written to a temporary folder; a benchmark fixture, its
    embeddings mean nothing) unless ``weights`` names a file. The workload is ``n_clips``
    clips of ``clip_seconds`` of noise at 16 kHz, embedded with ``embed_many`` (examples of all
    clips batched together). FLOPs are analytic: ``vggish_flops_per_example()`` = 1.728 GFLOP
    per 0.96 s example (convs 1.593, linears 0.135; 2 FLOPs per multiply-add, from the layer
    shapes). Each row's reference peak is the larger of two ``matmul_peak_tflops`` runs just
    before and after its timings (same device, dtype float32, thread count), so that load
    from other processes on a shared machine hits both sides of the ratio alike.

    Returns
    -------
    list of dict with ``batch_size``, ``examples_per_s`` (network alone), ``network_tflops``,
    ``peak_fraction`` (network TFLOP/s over the matmul peak), ``frontend_s`` / ``network_s`` /
    ``total_s`` (best of ``repeats``, whole workload), ``frontend_share``,
    ``audio_s_per_wall_s`` (end to end), ``load_s``, ``peak_rss_mib``, ``peak_cuda_mib``, ...
    """
    import tempfile

    import numpy as np

    from mtbc.extractors.vggish import VGGishExtractor, vggish_flops_per_example

    old_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if weights is None:
                from mtbc.testing_vggish import make_vggish_weights
                weights, _ = make_vggish_weights(tmp)
            start = time.perf_counter()
            ext = VGGishExtractor(weights=weights, device=device,
                                  channels_last=channels_last).load()
            _sync()
            load_s = time.perf_counter() - start
            rng = np.random.default_rng(0)
            waves = [(0.1 * rng.standard_normal(int(clip_seconds * 16000))).astype(np.float32)
                     for _ in range(n_clips)]
            frontend_s = best_time(lambda: [ext.examples(w) for w in waves], repeats=repeats)
            examples = np.concatenate([ext.examples(w) for w in waves])
            flops = len(examples) * vggish_flops_per_example()
            timings = []
            for bs in batch_sizes:
                ext.batch_size = bs
                peak = matmul_peak_tflops(device=device)
                network_s = best_time(lambda: ext.embed_examples(examples), repeats=repeats)
                total_s = best_time(lambda: ext.embed_many(waves), repeats=repeats)
                peak = max(peak, matmul_peak_tflops(device=device))
                timings.append((bs, network_s, total_s, peak))
    finally:
        torch.set_num_threads(old_threads)
    rows = []
    for bs, network_s, total_s, peak in timings:
        rows.append({
            "model": "vggish", "device": device, "batch_size": bs,
            "channels_last": channels_last, "threads": num_threads or old_threads,
            "clip_seconds": clip_seconds, "n_clips": n_clips, "n_examples": len(examples),
            "load_s": load_s, "frontend_s": frontend_s, "network_s": network_s,
            "total_s": total_s, "frontend_share": frontend_s / total_s,
            "examples_per_s": len(examples) / network_s,
            "audio_s_per_wall_s": n_clips * clip_seconds / total_s,
            "network_tflops": flops / network_s / 1e12,
            "end_to_end_tflops": flops / total_s / 1e12,
            "matmul_peak_tflops": peak,
            "peak_fraction": flops / network_s / 1e12 / peak,
            "peak_rss_mib": peak_rss_mib(), "peak_cuda_mib": peak_cuda_mib(),
        })
    return rows
