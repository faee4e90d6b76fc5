"""One model's figures, measured in this process (:func:`mtbc.benchmark.bench_rows` runs it
in a subprocess per model: ``python -m mtbc.benchmark.measure --worker SPEC``).

The model is whatever the extractor registry builds; everything model-specific (bench keys,
random full-size weights, FLOPs per clip, batch size per clip, precisions) comes from the
extractor's cost model (:class:`mtbc.extractors.base.Extractor`), never from its name.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtbc.benchmark.models import RANDOM, BenchOptions, model_keys
from mtbc.benchmark.timing import (
    best_time,
    cosine_per_layer,
    matmul_peak_tflops,
    peak_rss_mib,
    rss_now_mib,
    synthetic_clip,
)
from mtbc.data.audio import load_audio
from mtbc.extractors import Extractor, extractor_class
from mtbc.extractors.base import cpu_bf16_capability, resolve_device, resolve_dtype


def _construct(cls: type[Extractor], options: Mapping[str, Any], device: str) -> Extractor:
    """``cls(**options)`` on ``device`` in float32 (where the extractor takes those)."""
    accepted = inspect.signature(cls.__init__).parameters
    extra = {k: v for k, v in (("device", device), ("dtype", "float32")) if k in accepted}
    return cls(**{**options, **extra})


class Subject:
    """A loaded model, its identity for the rows, and its precisions (inside the worker).

    ``options`` ``None`` times the extractor's full-size random weights
    (:meth:`~mtbc.extractors.base.Extractor.random_full_size` in memory, or
    :meth:`~mtbc.extractors.base.Extractor.write_random_weights` into ``tmp``), or its default
    options when it has neither (shipped weights, or no network).
    """

    def __init__(self, key: str, options: Mapping[str, Any] | None, *, device: str,
                 tmp: Path, seed: int = 0, weights_label: str | None = None):
        self.key, self.device = key, str(resolve_device(device))
        cls = extractor_class(model_keys()[key])
        cls.prepare_imports()  # importing libraries is not loading
        self.weights_source = "files"
        label = weights_label
        start = time.perf_counter()
        ext = cls.random_full_size(key, device=self.device, seed=seed) if options is None else None
        if ext is not None:
            label, self.weights_source = RANDOM, "built in memory"
        else:
            if options is None:
                options = cls.write_random_weights(key, tmp, seed=seed) or {}
                label = RANDOM if options else label
                start = time.perf_counter()  # writing random files is not loading
            ext = _construct(cls, options, self.device).load()
        self.module = ext.network
        self.weights_kind = label or ext.metadata().get("weights_kind", "none")
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.load_s = time.perf_counter() - start
        self.base = ext
        self.params = ext.n_params()
        files = ext.weights_files()
        self.weights_mb = (sum(Path(p).stat().st_size for p in files) / 1e6 if files
                           else self.params * 4 / 1e6)
        self.sample_rate = ext.sample_rate

    def dtypes(self, wanted: Sequence[str]) -> list[str]:
        """The precisions actually used for ``wanted`` (``"auto"`` resolved, no repeats;
        only float32 without a network), the extractor's auto first. bfloat16 on a CPU
        without native bf16 instructions is left out and named in :attr:`skipped_dtypes`:
        torch emulates it there, many times slower than float32, so its timing would say
        nothing about the model (and a 2048-square bf16 matmul alone takes a minute)."""
        out = []
        self.skipped_dtypes: dict[str, str] = {}
        for d in wanted:
            if self.module is None:
                d = "float32"
            elif d == "auto":
                d = self.base.auto_dtype()
            else:
                d = resolve_dtype(d, self.device)
            if (d == "bfloat16" and self.device == "cpu"
                    and not cpu_bf16_capability()["native"]):
                self.skipped_dtypes[d] = ("this CPU has no native bf16 instructions "
                                          "(torch would emulate it, slower than float32)")
                continue
            if d not in out:
                out.append(d)
        auto = self.base.auto_dtype()
        return sorted(out, key=lambda d: d != auto)  # what extraction uses first


def _peak(device: str, dtype: str) -> float:
    return matmul_peak_tflops(device=device, dtype=getattr(torch, dtype))


def _timed_rows(subject: Subject, ext: Extractor, clip: np.ndarray, base: dict[str, Any], *,
                options: BenchOptions, started: float, last: float | None
                ) -> tuple[list[dict[str, Any]], float | None]:
    """One precision's rows (one per batch size; skipped ones say why), and the latest
    seconds per clip (the budget's estimate)."""
    rows: list[dict[str, Any]] = []
    peak = _peak(subject.device, base["dtype"]) if subject.module is not None else None
    warm = max(subject.sample_rate, getattr(ext, "min_samples", 1))
    ext.embed_many([clip[:warm]])  # warm-up (1 s or the shortest input), not timed
    flop = ext.flops_per_clip(clip)
    budget = options.budget_s
    for batch in options.batch_sizes:
        row = {**base, "batch_size": int(batch)}
        left = None if budget is None else budget - (time.perf_counter() - started)
        if last is not None and left is not None:
            estimate = last * batch * max(1, options.repeats)
            if estimate > left:
                rows.append({**row, "skipped": f"estimated {estimate:.0f} s > {max(left, 0):.0f}"
                                               f" s left of the {budget:.0f} s budget"})
                continue
        clips = [clip] * int(batch)
        ext.fit_batch(int(batch), clip)
        seconds = best_time(lambda clips=clips: ext.embed_many(clips),
                            repeats=max(1, options.repeats), warmup=0)
        last = seconds / batch
        rows.append({**row, "seconds_per_clip": seconds / batch,
                     "audio_s_per_s": batch * options.clip_seconds / seconds,
                     "_flop": flop, "_seconds": seconds})
    if peak is not None:
        peak = max(peak, _peak(subject.device, base["dtype"]))
    for row in rows:
        if "_seconds" not in row:
            continue
        fl, seconds = row.pop("_flop"), row.pop("_seconds")
        row["matmul_peak_tflops"] = peak
        row["tflop_per_clip"] = None if fl is None else fl / 1e12
        row["tflops"] = None if fl is None else fl * row["batch_size"] / seconds / 1e12
        row["peak_fraction"] = (None if row["tflops"] is None or not peak
                                else row["tflops"] / peak)
    return rows, last


def measure_model(key: str, model_options: Mapping[str, Any] | None = None,
                  options: BenchOptions | None = None, *,
                  weights_label: str | None = None) -> dict[str, Any]:
    """Measure one model in *this* process (:func:`mtbc.benchmark.bench_rows` runs it in a
    subprocess).

    Parameters
    ----------
    key : a bench key (:func:`mtbc.benchmark.model_keys`).
    model_options : the extractor's options (the run's own weights); ``None``: full-size
        random weights, or the defaults (see :class:`Subject`).
    options : the workload (:class:`BenchOptions`; its ``budget_s`` bounds this model's
        timings, ``agreement_paths`` get embedded in float32 and every other precision).
    weights_label : ``weights_kind`` to report instead of the extractor's own.

    Returns
    -------
    ``{"rows": [...], "agreement": [...], "info": {...}}``: one row per (precision, batch
    size) with :data:`mtbc.benchmark.ROW_FIELDS` and more; one agreement record per reduced
    precision (per-layer minimum cosine to float32).
    """
    options = options or BenchOptions(device="cpu")
    baseline = rss_now_mib()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtbc-compute-") as tmp:
        subject = Subject(key, model_options, device=options.device, tmp=Path(tmp),
                          seed=options.seed, weights_label=weights_label)
        rss_loaded = rss_now_mib()
        clip = synthetic_clip(options.clip_seconds, subject.sample_rate, seed=options.seed)
        dtypes = subject.dtypes(options.dtypes)
        rows: list[dict[str, Any]] = [
            {"model": key, "device": subject.device, "dtype": d, "batch_size": int(b),
             "clip_seconds": options.clip_seconds, "weights_kind": subject.weights_kind,
             "load_s": subject.load_s, "params": subject.params,
             "weights_mb": subject.weights_mb, "weights_source": subject.weights_source,
             "auto_dtype": subject.base.auto_dtype(), "skipped": why}
            for d, why in subject.skipped_dtypes.items() for b in options.batch_sizes]
        waves = ([load_audio(p, subject.sample_rate) for p in options.agreement_paths]
                 if len(dtypes) > 1 else [])
        outputs: dict[str, np.ndarray] = {}  # time-mean embeddings of ``waves`` per dtype
        last = None
        for dtype in dtypes:
            ext = subject.base.with_dtype(dtype)
            base = {"model": key, "device": subject.device, "dtype": dtype,
                    "clip_seconds": options.clip_seconds, "weights_kind": subject.weights_kind,
                    "load_s": subject.load_s, "params": subject.params,
                    "weights_mb": subject.weights_mb, "weights_source": subject.weights_source,
                    "auto_dtype": subject.base.auto_dtype()}
            timed, last = _timed_rows(subject, ext, clip, base, options=options,
                                      started=started, last=last)
            rows.extend(timed)
            if waves:
                outputs[dtype] = np.concatenate(ext.embed_many(waves))
        agreement = _agreement(key, subject.weights_kind, outputs, n_tracks=len(waves))
    peak_rss = peak_rss_mib()
    vram = (torch.cuda.max_memory_allocated() / 2**20 if subject.device.startswith("cuda")
            else None)
    for row in rows:
        for field in ("tflops", "peak_fraction", "seconds_per_clip", "audio_s_per_s"):
            row.setdefault(field, None)
        row.update(peak_rss_mib=peak_rss, peak_vram_mib=vram, baseline_rss_mib=baseline,
                   rss_after_load_mib=rss_loaded, threads=torch.get_num_threads())
    return {"rows": rows, "agreement": agreement,
            "info": {"model": key, "seconds": time.perf_counter() - started}}


def _agreement(key: str, weights_kind: str, outputs: dict[str, np.ndarray], *,
               n_tracks: int) -> list[dict[str, Any]]:
    reference = outputs.pop("float32", None)
    if reference is None:
        return []
    out = []
    for dtype, emb in outputs.items():
        cos = cosine_per_layer(reference, emb)
        out.append({"model": key, "dtype": dtype, "reference": "float32",
                    "n_tracks": n_tracks, "n_chunks": len(emb), "weights_kind": weights_kind,
                    "min_cosine": float(cos.min()), "per_layer": [float(c) for c in cos]})
    return out


def json_default(value):
    """``json.dumps`` ``default`` for numpy scalars."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtbc.benchmark.measure --worker SPEC``: one model's measurement as JSON."""
    parser = argparse.ArgumentParser(prog="python -m mtbc.benchmark.measure")
    parser.add_argument("--worker", required=True, help="JSON spec (see measure_model)")
    spec = json.loads(parser.parse_args(argv).worker)
    result = measure_model(spec["key"], spec["model_options"], BenchOptions(**spec["options"]),
                           weights_label=spec.get("weights_label"))
    print(json.dumps(result, default=json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
