"""``mtbc bench``: every registered extractor timed (one subprocess each, full-size random
weights where the real ones are not here: speed only), plus two analysis benches: the probe
with layer selection on planted-signal embeddings, and bulk loads from the embedding store.

Rows and what each figure means: :mod:`mtbc.benchmark.measure`, ``docs/compute.md``.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtbc.benchmark import tables
from mtbc.benchmark.models import BenchOptions, model_keys
from mtbc.benchmark.rows import bench_rows, write_rows
from mtbc.benchmark.timing import peak_rss_mib
from mtbc.cache.store import EmbeddingStore
from mtbc.evaluation import evaluate_probe
from mtbc.extractors.base import cpu_bf16_capability, resolve_device

#: ``mtbc bench --models`` names beside the extractors' bench keys (:func:`model_keys`).
OTHER_BENCHES = ("probe", "store")


def synthetic_probe_data(*, n_tracks: int = 1000, n_layers: int = 25, dim: int = 1024,
                         n_classes: int = 10, segments_per_track: int = 1, tracks_per_group: int = 4,
                         seed: int = 0):
    """Seeded planted-signal embeddings for timing the probe (a fixture, never a result).

    Class means lie in random directions whose strength rises then falls with depth (peak at
    two thirds of the layers), under unit Gaussian noise. Returns ``(features (N, L, D)
    float32, track_index (N,), tracks table)``.
    """
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
                n_splits: int = 5, seed: int = 0) -> dict:
    """Time :func:`mtbc.evaluation.evaluate_probe` with layer selection on synthetic embeddings.

    Prints and returns wall seconds, the chosen layers and the accuracy (of synthetic data:
    a timing fixture, not a result).
    """
    features, track_index, tracks = synthetic_probe_data(
        n_tracks=n_tracks, n_layers=n_layers, dim=dim, n_classes=n_classes, seed=seed)
    start = time.perf_counter()
    result = evaluate_probe(features, track_index, tracks, probe=probe, layer="select",
                            selection=selection, seed=seed, n_splits=n_splits, n_boot=1000,
                            progress=False)
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


def main(*, models: str | None = None, device: str = "auto", quick: bool = False,
         json_path: str | Path | None = None, dtypes: str = "auto,float32",
         batch_sizes: str | None = None, clip_seconds: float = 30.0,
         repeats: int | None = None) -> int:
    """``mtbc bench``: every model's figures as rows (printed; ``json_path`` writes them).

    Models are timed with full-size random weights (MERT, VGGish; speed only) or their
    shipped weights (musicnn), one subprocess per model; rows are
    :data:`mtbc.benchmark.ROW_FIELDS` (see that module for what each figure means).
    """
    device = str(resolve_device(device))
    model_benches = tuple(model_keys())
    known = (*model_benches, *OTHER_BENCHES)
    wanted = [m.strip() for m in (models or ",".join(known)).split(",") if m.strip()]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        print(f"mtbc bench: unknown model(s) {unknown}; choose among {', '.join(known)}")
        return 2
    try:
        sizes = ([int(b) for b in batch_sizes.split(",")] if batch_sizes
                 else [1] if quick else [1, 8])
    except ValueError:
        print(f"mtbc bench: --batch-sizes takes integers like 1,8,16, not {batch_sizes!r}")
        return 2
    caps = cpu_bf16_capability()
    print(f"mtbc bench on {device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads; CPU bf16: "
          f"{', '.join(k for k, v in caps.items() if v) or 'none'}); random weights: speed "
          f"figures only")
    result = {"rows": [], "agreement": [], "failed": []}
    timed = [m for m in wanted if m in model_benches]
    if timed:
        options = BenchOptions(device=device, dtypes=dtypes.split(","), batch_sizes=sizes,
                               clip_seconds=clip_seconds, repeats=repeats or (1 if quick else 2))
        result = bench_rows(timed, options, progress=True)
        print(tables.memory_frame(result).drop(columns=["label"]).to_string(index=False))
        print(tables.rows_frame(result).to_string(index=False))
        skipped = tables.skipped_frame(result)
        if len(skipped):
            print(skipped.to_string(index=False))
        for f in result["failed"]:
            print(f"  {f['model']}: FAILED: {f['reason']}")
        speed = tables.speedup_table(result)
        if len(speed):
            print("\nreduced precision vs fp32 (same subprocess):")
            print(speed.drop(columns=["label"]).to_string(index=False))
    extra = {}
    for m in wanted:
        if m == "store":
            extra["store"] = bench_store(n_tracks=200 if quick else 1000)
        elif m == "probe":
            extra["probe"] = bench_probe(n_tracks=200 if quick else 1000)
    if json_path:
        path = write_rows({**result, **extra}, json_path)
        print(f"\nrows written to {path}")
    return 0



def bench_store(*, n_tracks: int = 1000, n_layers: int = 25, dim: int = 1024,
                segments: int = 1, root: str | Path | None = None) -> dict:
    """Write ``n_tracks`` random ``(segments, n_layers, dim)`` entries, then time bulk loads.

    Prints and returns write time, track-mean load of all layers, one-layer load
    (memory-mapped, so the other layers stay on disk) and segment load, in seconds.
    """
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        store = EmbeddingStore(tmp)
        rng = np.random.default_rng(0)
        hashes = [f"{i:064x}" for i in range(n_tracks)]
        start = time.perf_counter()
        for h in hashes:
            store.put(h, "bench", rng.standard_normal((segments, n_layers, dim),
                                                      dtype=np.float32))
        write_s = time.perf_counter() - start
        timings = {}
        for name, kwargs in [("mean_all_layers", {}), ("one_layer", {"layers": n_layers // 2}),
                             ("segments_all_layers", {"reduce": None})]:
            start = time.perf_counter()
            store.load_many(hashes, "bench", **kwargs)
            timings[name] = time.perf_counter() - start
    mib = n_tracks * segments * n_layers * dim * 4 / 2**20
    out = {"n_tracks": n_tracks, "n_layers": n_layers, "dim": dim, "segments": segments,
           "MiB": mib, "write_s": write_s, **{f"{k}_s": v for k, v in timings.items()}}
    print(f"bench_store: {n_tracks} tracks x {segments} segment(s) x {n_layers} layers x "
          f"{dim}-d ({mib:.0f} MiB): write {write_s:.1f} s, load track means "
          f"{timings['mean_all_layers']:.2f} s, one layer {timings['one_layer']:.2f} s, "
          f"all segments {timings['segments_all_layers']:.2f} s")
    return out
