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


def synthetic_probe_data(*, n_tracks: int = 1000, n_layers: int = 25, dim: int = 1024,
                         n_classes: int = 10, segments_per_track: int = 1, tracks_per_group: int = 4,
                         seed: int = 0):
    """Seeded planted-signal embeddings for timing the probe (a fixture, never a result).

    Class means lie in random directions whose strength rises then falls with depth (peak at
    two thirds of the layers), under unit Gaussian noise. Returns ``(features (N, L, D)
    float32, track_index (N,), tracks table)``.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = np.arange(n_tracks) % n_classes
    depth = np.arange(n_layers) / max(1, n_layers - 1)
    strength = 0.12 * np.exp(-((depth - 2 / 3) ** 2) / 0.08)
    directions = rng.standard_normal((n_classes, n_layers, dim), dtype=np.float32)
    track_index = np.repeat(np.arange(n_tracks), segments_per_track)
    features = rng.standard_normal((len(track_index), n_layers, dim), dtype=np.float32)
    features += (directions[labels[track_index]] * strength[None, :, None]).astype(np.float32)
    tracks = pd.DataFrame({
        "track_id": [f"t{i:05d}" for i in range(n_tracks)],
        "label": [f"class{c}" for c in labels],
        "group": [f"artist{i // tracks_per_group}" for i in rng.permutation(n_tracks)],
        "content_hash": [f"{i:064x}" for i in range(n_tracks)],
    })
    return features, track_index, tracks


def bench_probe(*, n_tracks: int = 1000, n_layers: int = 25, dim: int = 1024,
                n_classes: int = 10, probe: str = "linear", selection: str = "auto",
                n_splits: int = 5, seed: int = 0, progress: bool = False) -> dict:
    """Time :func:`mtbc.probe.evaluate_probe` with layer selection on synthetic embeddings.

    Prints and returns wall seconds, the chosen layers and the accuracy (of synthetic data:
    a timing fixture, not a result).
    """
    from .probe import evaluate_probe

    features, track_index, tracks = synthetic_probe_data(
        n_tracks=n_tracks, n_layers=n_layers, dim=dim, n_classes=n_classes, seed=seed)
    start = time.perf_counter()
    result = evaluate_probe(features, track_index, tracks, probe=probe, layer="select",
                            selection=selection, seed=seed, n_splits=n_splits, n_boot=1000,
                            progress=progress)
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "n_tracks": n_tracks, "n_layers": n_layers, "dim": dim,
           "probe": probe, "selection": result.selection, "n_splits": n_splits,
           "chosen_layers": result.folds["layer"].tolist(),
           "chosen_C": result.folds["value"].tolist(),
           "convergence_warnings": int(result.folds["convergence_warnings"].sum()),
           "accuracy": result.metric(),
           "peak_rss_mib": peak_rss_mib()}
    print(f"bench_probe: {n_tracks} tracks x {n_layers} layers x {dim}-d, {probe} probe, "
          f"selection={result.selection}, {n_splits} folds: {seconds:.1f} s "
          f"(layers chosen {out['chosen_layers']}, synthetic accuracy {out['accuracy']:.3f})")
    return out
