"""Benchmark helpers: a same-run matrix-multiply peak to compare achieved TFLOP/s against.

``mtbc bench`` prints, per model, load time, peak memory, audio-seconds per wall-second,
achieved TFLOP/s and its ratio to the matmul peak measured in the same run on the same
device. Model-specific benchmarks live beside this module's helpers.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

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
                from mtbc.extractors.fixtures import make_vggish_weights
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
    print(f"VGGish on {device} (float32, channels_last={channels_last}): load {load_s:.1f} s, "
          f"{n_clips} x {clip_seconds:.0f} s clips = {len(examples)} examples, "
          f"front end {frontend_s:.2f} s")
    for r in rows:
        print(f"  batch {r['batch_size']:>3}: {r['examples_per_s']:.0f} examples/s, "
              f"{r['audio_s_per_wall_s']:.1f} audio-s/s end to end, network "
              f"{r['network_tflops']:.3f} TFLOP/s = {100 * r['peak_fraction']:.0f}% of the "
              f"{r['matmul_peak_tflops']:.3f} TFLOP/s matmul peak, peak RSS "
              f"{r['peak_rss_mib']:.0f} MiB")
    return rows


# ----------------------------------------------------------------------------- MERT-v1

def mert_forward_flops(config: dict, n_samples: int) -> float:
    """FLOPs (2 per multiply-add) of one ``HubertModel`` forward over ``n_samples`` samples.

    Counts the conv feature encoder, the feature projection, the positional convolution,
    the q/k/v/out and feed-forward matmuls and the two attention matmuls (QK^T and AV);
    norms, activations and softmax are left out (a few percent). ``config`` is a MERT
    ``config.json`` dict. About 0.81 TFLOP (95M) and 2.1 TFLOP (330M) per 30 s at 24 kHz.
    """
    length, c_in, flops = n_samples, 1, 0.0
    for dim, kernel, stride in zip(config["conv_dim"], config["conv_kernel"],
                                   config["conv_stride"], strict=True):
        length = (length - kernel) // stride + 1
        flops += 2.0 * length * c_in * dim * kernel
        c_in = dim
    frames, hidden, ffn = length, config["hidden_size"], config["intermediate_size"]
    flops += 2.0 * frames * c_in * hidden  # feature projection
    flops += 2.0 * frames * hidden * (hidden // config["num_conv_pos_embedding_groups"]) \
        * config["num_conv_pos_embeddings"]  # positional conv
    per_layer = 2.0 * frames * hidden * hidden * 4 + 2.0 * frames * hidden * ffn * 2 \
        + 2.0 * frames * frames * hidden * 2
    return flops + per_layer * config["num_hidden_layers"]


def bench_mert(*, variant: str, device: str = "cpu", dtype: str = "auto",
               batch_sizes: tuple[int, ...] = (1, 2, 4), clip_seconds: float = 30.0,
               repeats: int = 2, time_disk_load: bool | None = None,
               seed: int = 0) -> list[dict]:
    """Time MERT-v1 ``variant`` ("95m" or "330m") at full size with random weights.

    The model is built in memory (no 1.2 GB file); with ``time_disk_load`` (default: for
    95M) a full-size safetensors snapshot is written to a temporary folder and the load from
    it (file hashing included) is timed and used instead. For each batch size, ``embed_many``
    runs on that many ``clip_seconds`` clips (best of ``repeats``); achieved TFLOP/s come from
    :func:`mert_forward_flops` and are compared with :func:`matmul_peak_tflops` measured in the
    same run before and after every batch size; the largest of those is the reference, so a
    busy moment during the peak measurement cannot flatter the ratio.

    Returns one dict per batch size: model, device, dtype, batch_size, clip_seconds, load_s,
    load_kind, seconds, clips_per_s, audio_s_per_s, tflop_per_clip, tflops,
    matmul_peak_tflops, ratio_to_peak, peak_rss_mib, peak_cuda_mib. Also prints them.
    """
    import tempfile

    import numpy as np

    from mtbc.extractors.base import resolve_device, resolve_dtype
    from mtbc.extractors.fixtures import (
        make_mert_model,
        make_mert_snapshot,
        mert_config,
        mert_preprocessor,
    )
    from mtbc.extractors.mert import MertExtractor

    device = str(resolve_device(device))
    dtype = resolve_dtype(dtype, device)
    peak_dtype = getattr(torch, dtype)
    peaks = [matmul_peak_tflops(device=device, dtype=peak_dtype)]
    config = mert_config(variant, tiny=False)
    time_disk_load = variant == "95m" if time_disk_load is None else time_disk_load
    with tempfile.TemporaryDirectory(prefix="mtbc-bench-") as tmp:
        if time_disk_load:
            folder = make_mert_snapshot(Path(tmp) / variant, variant=variant, tiny=False,
                                        weights_format="safetensors", seed=seed)
            start = time.perf_counter()
            extractor = MertExtractor(model=folder, device=device, dtype=dtype,
                                      chunk_seconds=clip_seconds).load()
            load_kind = "snapshot on disk (safetensors, hashed)"
        else:
            start = time.perf_counter()
            extractor = MertExtractor.from_model(
                make_mert_model(variant, tiny=False, seed=seed), config=config,
                preprocessor=mert_preprocessor(), device=device, dtype=dtype,
                chunk_seconds=clip_seconds)
            load_kind = "built in memory (random init)"
        _sync()
        load_s = time.perf_counter() - start
        print(f"MERT-v1-{variant.upper()} on {device} ({dtype}): load {load_s:.1f} s, {load_kind}")
        rng = np.random.default_rng(seed)
        n = int(round(clip_seconds * extractor.sample_rate))
        flops = mert_forward_flops(config, n)
        extractor.embed_many([rng.standard_normal(extractor.sample_rate).astype(np.float32)])
        rows = []
        for batch_size in batch_sizes:
            extractor.batch_size = batch_size
            clips = [rng.standard_normal(n).astype(np.float32) for _ in range(batch_size)]
            seconds = best_time(lambda clips=clips: extractor.embed_many(clips),
                                repeats=repeats, warmup=0)
            peaks.append(matmul_peak_tflops(device=device, dtype=peak_dtype))
            rows.append({
                "model": f"MERT-v1-{variant.upper()}", "device": device, "dtype": dtype,
                "batch_size": batch_size, "clip_seconds": clip_seconds, "load_s": load_s,
                "load_kind": load_kind, "seconds": seconds,
                "clips_per_s": batch_size / seconds,
                "audio_s_per_s": batch_size * clip_seconds / seconds,
                "tflop_per_clip": flops / 1e12, "tflops": batch_size * flops / seconds / 1e12,
                "peak_rss_mib": peak_rss_mib(), "peak_cuda_mib": peak_cuda_mib(),
            })
    for row in rows:
        row["matmul_peak_tflops"] = max(peaks)
        row["ratio_to_peak"] = row["tflops"] / max(peaks)
        print(f"  batch {row['batch_size']:>3}: {row['seconds']:.2f} s, "
              f"{row['audio_s_per_s']:.2f} audio-s/s, {row['tflops']:.3f} TFLOP/s "
              f"({row['tflop_per_clip']:.2f} TFLOP/clip) = {100 * row['ratio_to_peak']:.0f}% of "
              f"the {max(peaks):.3f} TFLOP/s matmul peak (measured {len(peaks)} times: "
              f"{min(peaks):.3f}-{max(peaks):.3f}), peak RSS {row['peak_rss_mib']:.0f} MiB")
    return rows



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
    """Time :func:`mtbc.evaluation.evaluate_probe` with layer selection on synthetic embeddings.

    Prints and returns wall seconds, the chosen layers and the accuracy (of synthetic data:
    a timing fixture, not a result).
    """
    from mtbc.evaluation import evaluate_probe

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


#: ``mtbc bench --models`` names: the extractors (measured by
#: :func:`mtbc.analysis.compute.bench_rows`, one subprocess each) and two analysis benches.
MODEL_BENCHES = ("mert-95m", "mert-330m", "vggish", "musicnn", "mfcc")
OTHER_BENCHES = ("probe", "store")
DEFAULT_MODELS = "mert-95m,mert-330m,vggish,musicnn,mfcc,probe,store"


def main(*, models: str = DEFAULT_MODELS, device: str = "auto", quick: bool = False,
         json_path: str | Path | None = None, dtypes: str = "auto,float32",
         batch_sizes: str | None = None, clip_seconds: float = 30.0,
         repeats: int | None = None) -> int:
    """``mtbc bench``: every model's figures as rows (printed; ``json_path`` writes them).

    Models are timed with full-size random weights (MERT, VGGish; speed only) or their
    shipped weights (musicnn), one subprocess per model; rows are
    :data:`mtbc.analysis.compute.ROW_FIELDS` (see that module for what each figure means).
    """
    import platform

    from mtbc.analysis import compute
    from mtbc.extractors.base import cpu_bf16_capability, resolve_device
    from mtbc.reports import compute_tables

    device = str(resolve_device(device))
    wanted = [m.strip() for m in models.split(",") if m.strip()]
    known = MODEL_BENCHES + OTHER_BENCHES
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
    model_keys = [m for m in wanted if m in MODEL_BENCHES]
    if model_keys:
        result = compute.bench_rows(
            model_keys, device=device, dtypes=[d.strip() for d in dtypes.split(",")],
            batch_sizes=sizes, clip_seconds=clip_seconds,
            repeats=repeats or (1 if quick else 2), progress=True)
        print(compute_tables.memory_frame(result).drop(columns=["label"]).to_string(index=False))
        print(compute_tables.rows_frame(result).to_string(index=False))
        skipped = compute_tables.skipped_frame(result)
        if len(skipped):
            print(skipped.to_string(index=False))
        for f in result["failed"]:
            print(f"  {f['model']}: FAILED: {f['reason']}")
        speed = compute_tables.speedup_table(result)
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
        path = compute.write_rows({**result, **extra}, json_path)
        print(f"\nrows written to {path}")
    return 0


def bench_store(*, n_tracks: int = 1000, n_layers: int = 25, dim: int = 1024,
                segments: int = 1, root: str | Path | None = None) -> dict:
    """Write ``n_tracks`` random ``(segments, n_layers, dim)`` entries, then time bulk loads.

    Prints and returns write time, track-mean load of all layers, one-layer load
    (memory-mapped, so the other layers stay on disk) and segment load, in seconds.
    """
    import tempfile

    import numpy as np

    from mtbc.cache.store import EmbeddingStore

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
