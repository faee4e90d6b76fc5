"""What each model costs to run: the measurement behind ``mtbc bench --json`` and notebook 07.

One function produces every figure, :func:`bench_rows`: for each model (MERT-v1-95M / 330M,
VGGish, musicnn, MFCC) it starts **one subprocess** (so peak memory is that model's alone),
loads the model there and times :meth:`Extractor.embed_many` on ``batch_size`` synthetic
clips of ``clip_seconds`` at the model's sample rate, for every precision asked for. Each
row holds :data:`ROW_FIELDS` (and a few more: parameters, weights on disk, the matmul peak):

- ``seconds_per_clip`` = best wall time of the batch / batch size; ``audio_s_per_s`` = audio
  seconds embedded per wall second (front end included: the whole ``embed_many``);
- ``tflops`` = analytic network FLOPs (MERT: :func:`mtbc.bench.mert_forward_flops`; VGGish:
  1.728 GFLOP per example; musicnn: counted by ``torch.utils.flop_counter`` on one patch;
  MFCC: none) over that time; ``peak_fraction`` = ``tflops`` over the matmul peak measured in
  the same subprocess, in the same dtype, before and after the timings (the larger is used);
- ``peak_rss_mib``: the subprocess's peak resident memory (``ru_maxrss``, imports included;
  ``baseline_rss_mib`` is the resident memory after imports, before the model);
  ``peak_vram_mib``: ``torch.cuda.max_memory_allocated`` (``None`` off CUDA);
- ``load_s``: constructing and loading the extractor (weights read from disk and hashed)
  or, for random weights built in memory, building the model;
- ``weights_kind``: ``pretrained``, ``fixture`` (the files a test or ``mtbc fixtures``
  wrote: random), ``random (speed only)`` (full-size random weights in the exact
  architecture, made here because the real ones are not on this machine) or ``none`` (MFCC).

Random weights time exactly like real ones (same shapes, same kernels); their embeddings mean
nothing, and every table says which weights a row used.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The columns every row carries (``mtbc bench --json`` writes them; tests check them).
ROW_FIELDS = ("model", "device", "dtype", "batch_size", "seconds_per_clip", "audio_s_per_s",
              "tflops", "peak_fraction", "peak_rss_mib", "peak_vram_mib", "load_s",
              "weights_kind")
#: Model keys :func:`bench_rows` knows, and the extractor each one is.
MODEL_KEYS = {"mert-95m": "mert", "mert-330m": "mert", "vggish": "vggish",
              "musicnn": "musicnn", "mfcc": "mfcc"}
RANDOM = "random (speed only)"


# ----------------------------------------------------------------------------- which models

def model_key(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The :data:`MODEL_KEYS` key of a run's extractor (``name`` plus its options)."""
    options = options or {}
    if name == "mert":
        from mtbc.extractors.fixtures import MERT_SIZES  # noqa: F401 - keys 95m / 330m

        model = str(options.get("model", "m-a-p/MERT-v1-330M"))
        if "95m" in model.lower():
            return "mert-95m"
        if "330m" in model.lower():
            return "mert-330m"
        config = Path(model) / "config.json"
        if config.is_file():
            hidden = json.loads(config.read_text()).get("hidden_size", 1024)
            return "mert-95m" if hidden == 768 else "mert-330m"
        return "mert-330m"
    if name not in MODEL_KEYS:
        raise ValueError(f"unknown model {name!r}; choose among {', '.join(MODEL_KEYS)}")
    return name


def models_for_run(extractors: Mapping[str, Mapping[str, Any]], *,
                   extra: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Label -> ``{"key", "options"}`` for every extractor the run used (its own weights),
    then each key in ``extra`` the run did not use (``options`` ``None``: random full-size
    weights for MERT and VGGish, the shipped weights for musicnn)."""
    out: dict[str, dict[str, Any]] = {}
    for label, opts in extractors.items():
        opts = dict(opts)
        name = opts.pop("name", label)
        out[label] = {"key": model_key(name, opts), "name": name, "options": opts}
    used = {m["key"] for m in out.values()}
    for key in extra:
        if key not in MODEL_KEYS:
            raise ValueError(f"unknown model {key!r}; choose among {', '.join(MODEL_KEYS)}")
        if key not in used and key not in out:
            out[key] = {"key": key, "name": MODEL_KEYS[key], "options": None}
    return out


# ----------------------------------------------------------------------------- small helpers

def _rss_now_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def synthetic_clip(seconds: float, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """A deterministic music-like test clip: three decaying harmonic tones plus soft noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = 0.02 * rng.standard_normal(len(t))
    for k, f in enumerate(rng.uniform(110, 880, size=3)):
        env = np.exp(-((t * (k + 1)) % 1.0) * 3)
        wave += 0.2 * env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))
    return wave.astype(np.float32)


def _file_mb(paths: Sequence[Path]) -> float:
    return sum(Path(p).stat().st_size for p in paths) / 1e6


def _params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def cosine_per_layer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity per layer of two ``(n, n_layers, dim)`` arrays; the minimum over the
    ``n`` rows (``(n_layers,)``)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (num / np.where(den == 0, 1, den)).min(axis=0)


# ----------------------------------------------------------------------------- one model

class _Subject:
    """A loaded model and how to run it in one precision (inside the worker)."""

    def __init__(self, key: str, options: dict | None, device: str, tmp: Path, seed: int):
        import torch

        from mtbc.extractors.base import resolve_device

        self.key, self.device = key, str(resolve_device(device))
        self.name = MODEL_KEYS[key]
        self.flop_per_clip = None
        self.weights_source = "files"
        import importlib

        importlib.import_module(f"mtbc.extractors.{self.name}")  # imports are not loading
        if self.name == "mert":
            import transformers.models.hubert.modeling_hubert  # noqa: F401
        start = time.perf_counter()
        if self.name == "mert":
            from mtbc.extractors.fixtures import make_mert_model, mert_config, mert_preprocessor
            from mtbc.extractors.mert import MertExtractor

            if options is None:
                variant = key.split("-")[1]
                model = make_mert_model(variant, tiny=False, seed=seed)
                self.base = MertExtractor.from_model(
                    model, config=mert_config(variant, tiny=False),
                    preprocessor=mert_preprocessor(), device=self.device, dtype="float32")
                self.weights_kind, self.weights_source = RANDOM, "built in memory"
                self.weights_mb = _params(model) * 4 / 1e6
            else:
                opts = {**options, "device": self.device, "dtype": "float32"}
                self.base = MertExtractor(**opts).load()
                self.weights_kind = self.base.metadata()["weights_kind"]
                self.weights_mb = _file_mb(self.base.snapshot.weights)
            self.module = self.base.model
        elif self.name == "vggish":
            from mtbc.extractors.vggish import VGGishExtractor

            opts = dict(options or {})
            if options is None:
                from mtbc.extractors.fixtures import make_vggish_weights

                weights, _ = make_vggish_weights(tmp / "vggish", seed=seed)
                start = time.perf_counter()  # writing the random file is not loading
                opts = {"weights": str(weights)}
            self.base = VGGishExtractor(**{**opts, "device": self.device, "dtype": "float32"})
            self.base.load()
            self.weights_kind = (RANDOM if options is None
                                 else self.base.metadata()["weights_kind"])
            self.weights_mb = _file_mb([self.base.weights_path] + (
                [self.base.pca_path] if self.base.pca_path else []))
            self.module = self.base.model
        elif self.name == "musicnn":
            from mtbc.extractors.musicnn import MusicnnExtractor

            opts = {**(options or {}), "device": self.device, "dtype": "float32"}
            self.base = MusicnnExtractor(**opts)
            self.module = self.base.net
            self.weights_kind = self.base.metadata()["weights_kind"]
            self.weights_mb = _file_mb([self.base.weights_path])
        else:
            from mtbc.extractors.mfcc import MfccExtractor

            self.base = MfccExtractor(**(options or {}))
            self.module, self.weights_kind, self.weights_mb = None, "none", 0.0
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.load_s = time.perf_counter() - start
        self.params = _params(self.module) if self.module is not None else 0
        self.sample_rate = self.base.sample_rate

    # -- precisions
    def dtypes(self, wanted: Sequence[str]) -> list[str]:
        """The precisions actually used for ``wanted`` (``"auto"`` resolved, no repeats)."""
        from mtbc.extractors.base import resolve_dtype

        out = []
        for d in wanted:
            if self.name == "mfcc":
                d = "float32"
            elif d == "auto":
                d = self.auto_dtype()
            else:
                d = resolve_dtype(d, self.device)
            if d not in out:
                out.append(d)
        auto = self.auto_dtype()
        return sorted(out, key=lambda d: d != auto)  # what extraction uses first

    def auto_dtype(self) -> str:
        """What the extractor's own ``dtype="auto"`` resolves to here."""
        if self.name == "mert":
            from mtbc.extractors.base import resolve_dtype

            return resolve_dtype("auto", self.device, cpu_bf16=True)
        if self.name == "vggish":
            from mtbc.extractors.base import resolve_dtype

            return resolve_dtype("auto", self.device,
                                 cpu_bf16=self.base.postprocess != "pca_uint8")
        return "float32"

    def extractor(self, dtype: str):
        if self.name == "mert":
            if dtype == self.base.dtype:
                return self.base
            import copy

            from mtbc.extractors.mert import MertExtractor

            model = self.base.model
            if not self.device.startswith("cpu") and dtype != "float32":
                model = copy.deepcopy(model)  # cast to bf16 on the device: keep fp32 intact
            return MertExtractor.from_model(
                model, config=self.base.config,
                preprocessor=self.base.snapshot.preprocessor, device=self.device,
                dtype=dtype, chunk_seconds=self.base.chunk_seconds)
        if self.name in ("vggish", "musicnn"):
            self.base.dtype = dtype
        return self.base

    # -- workload
    def set_batch(self, ext, batch: int, clip: np.ndarray) -> None:
        if self.name == "mert":
            ext.batch_size = batch
        elif self.name == "vggish":
            ext.batch_size = batch * len(ext.examples(clip))
        elif self.name == "musicnn":
            ext.batch_size = batch * len(ext.patches(clip))

    def flops(self, ext, clip: np.ndarray) -> float | None:
        """Network FLOPs of one clip (2 per multiply-add), ``None`` without a network."""
        if self.name == "mert":
            from mtbc.bench import mert_forward_flops

            return float(sum(mert_forward_flops(ext.config, len(c)) for c in ext.chunks(clip)))
        if self.name == "vggish":
            from mtbc.extractors.vggish import vggish_flops_per_example

            return float(len(ext.examples(clip)) * vggish_flops_per_example())
        if self.name == "musicnn":
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            patch = torch.from_numpy(ext.patches(clip)[:1]).to(self.device)
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                ext.net(patch)
            return float(counter.get_total_flops() * len(ext.patches(clip)))
        return None


def _matmul_peak(device: str, dtype: str) -> float:
    import torch

    from mtbc.bench import matmul_peak_tflops

    return matmul_peak_tflops(device=device, dtype=getattr(torch, dtype))


def measure_model(key: str, options: dict | None = None, *, device: str = "cpu",
                  dtypes: Sequence[str] = ("auto",), batch_sizes: Sequence[int] = (1, 8),
                  clip_seconds: float = 30.0, repeats: int = 1, budget_s: float | None = None,
                  agreement_paths: Sequence[str] = (), seed: int = 0,
                  weights_label: str | None = None) -> dict[str, Any]:
    """Measure one model in *this* process (:func:`bench_rows` runs it in a subprocess).

    ``budget_s`` bounds the timing: a batch size whose estimated time (from the last batch
    measured, scaled by batch size, times ``repeats``) exceeds what is left is not run, and
    its row says so (``skipped``). ``agreement_paths``: audio files embedded in fp32 and in
    every other precision (MERT), for :func:`precision_agreement` figures.

    Returns ``{"rows": [...], "agreement": [...], "info": {...}}``.
    """
    import torch

    import mtbc.bench as bench

    baseline = _rss_now_mib()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtbc-compute-") as tmp:
        subject = _Subject(key, options, device, Path(tmp), seed)
        if weights_label:
            subject.weights_kind = weights_label
        rss_loaded = _rss_now_mib()
        clip = synthetic_clip(clip_seconds, subject.sample_rate, seed=seed)
        rows: list[dict[str, Any]] = []
        agreement: list[dict[str, Any]] = []
        waves = []
        if agreement_paths and subject.name == "mert":
            from mtbc.data.audio import load_audio

            waves = [load_audio(p, subject.sample_rate) for p in agreement_paths]
        outputs: dict[str, np.ndarray] = {}  # time-mean embeddings of ``waves`` per dtype
        last = None  # seconds per clip of the latest timing (the budget's estimate)
        for dtype in subject.dtypes(dtypes):
            ext = subject.extractor(dtype)
            peak = _matmul_peak(subject.device, dtype) if subject.module is not None else None
            warm = max(subject.sample_rate, getattr(ext, "min_samples", 1))
            ext.embed_many([clip[:warm]])  # warm-up (1 s or the shortest input), not timed
            flop_per_clip = subject.flops(ext, clip)
            for batch in batch_sizes:
                base = {"model": key, "device": subject.device, "dtype": dtype,
                        "batch_size": int(batch), "clip_seconds": clip_seconds,
                        "weights_kind": subject.weights_kind, "load_s": subject.load_s,
                        "params": subject.params, "weights_mb": subject.weights_mb,
                        "weights_source": subject.weights_source,
                        "auto_dtype": subject.auto_dtype()}
                left = None if budget_s is None else budget_s - (time.perf_counter() - started)
                if last is not None and left is not None:
                    estimate = last * batch * max(1, repeats)
                    if estimate > left:
                        rows.append({**base, "skipped": f"estimated {estimate:.0f} s > "
                                                        f"{max(left, 0):.0f} s left of the "
                                                        f"{budget_s:.0f} s budget"})
                        continue
                clips = [clip] * int(batch)
                subject.set_batch(ext, int(batch), clip)
                seconds = bench.best_time(lambda clips=clips, ext=ext: ext.embed_many(clips),
                                          repeats=max(1, repeats), warmup=0)
                last = seconds / batch
                rows.append({**base, "seconds_per_clip": seconds / batch,
                             "audio_s_per_s": batch * clip_seconds / seconds,
                             "flop_per_clip": flop_per_clip, "_seconds": seconds,
                             "_peak": peak})
            if peak is not None:
                peak = max(peak, _matmul_peak(subject.device, dtype))
            for row in rows:
                if row["dtype"] == dtype and "_peak" in row:
                    row["matmul_peak_tflops"] = peak
                    fl = row.pop("flop_per_clip")
                    row["tflop_per_clip"] = None if fl is None else fl / 1e12
                    row["tflops"] = (None if fl is None
                                     else fl * row["batch_size"] / row.pop("_seconds") / 1e12)
                    row.pop("_seconds", None)
                    row.pop("_peak")
                    row["peak_fraction"] = (None if row["tflops"] is None or not peak
                                            else row["tflops"] / peak)
            if waves:
                outputs[dtype] = np.concatenate(ext.embed_many(waves))
        reference = outputs.pop("float32", None)
        for dtype, out in outputs.items():
            if reference is None:
                break
            cos = cosine_per_layer(reference, out)
            agreement.append({"model": key, "dtype": dtype, "reference": "float32",
                              "n_tracks": len(waves), "n_chunks": len(out),
                              "weights_kind": subject.weights_kind,
                              "min_cosine": float(cos.min()),
                              "per_layer": [float(c) for c in cos]})
    peak_rss = _peak_rss_mib()
    vram = (torch.cuda.max_memory_allocated() / 2**20 if subject.device.startswith("cuda")
            else None)
    for row in rows:
        row.setdefault("tflops", None)
        row.setdefault("peak_fraction", None)
        row.setdefault("seconds_per_clip", None)
        row.setdefault("audio_s_per_s", None)
        row.update(peak_rss_mib=peak_rss, peak_vram_mib=vram, baseline_rss_mib=baseline,
                   rss_after_load_mib=rss_loaded, threads=torch.get_num_threads())
    return {"rows": rows, "agreement": agreement,
            "info": {"model": key, "seconds": time.perf_counter() - started}}


# ----------------------------------------------------------------------------- the rows

def _worker_command(spec: dict) -> list[str]:
    return [sys.executable, "-m", "mtbc.analysis.compute", "--worker", json.dumps(spec)]


def measure_isolated(key: str, options: dict | None = None, *, timeout: float | None = None,
                     **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_model` in a fresh subprocess (its peak memory is this model's alone)."""
    spec = {"key": key, "options": options, **kwargs}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(_worker_command(spec), capture_output=True, text=True, env=env,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"measuring {key} failed (exit {proc.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


def bench_rows(models: Mapping[str, Mapping[str, Any]] | Sequence[str], *,
               device: str = "auto", dtypes: Sequence[str] = ("auto",),
               batch_sizes: Sequence[int] = (1, 8), clip_seconds: float = 30.0,
               repeats: int = 1, budget_s: float | None = None, isolate: bool = True,
               agreement_paths: Sequence[str] = (), seed: int = 0,
               progress: bool = False) -> dict[str, list[dict]]:
    """Every figure, for every model: ``{"rows": [...], "agreement": [...], "failed": [...]}``.

    ``models``: keys of :data:`MODEL_KEYS` (random full-size weights for MERT and VGGish,
    shipped weights for musicnn) or :func:`models_for_run`'s mapping (label -> key and
    options: the run's own weights). Rows carry :data:`ROW_FIELDS` plus ``label``. A model
    that cannot be measured is listed in ``failed`` with the reason; it never stops the rest.
    ``budget_s`` applies per model (see :func:`measure_model`).
    """
    from mtbc.extractors.base import resolve_device

    device = str(resolve_device(device))
    if not isinstance(models, Mapping):
        models = {k: {"key": k, "options": None} for k in models}
    out: dict[str, list[dict]] = {"rows": [], "agreement": [], "failed": []}
    for label, spec in models.items():
        kwargs = dict(device=device, dtypes=list(dtypes), batch_sizes=[int(b) for b in batch_sizes],
                      clip_seconds=float(clip_seconds), repeats=int(repeats), budget_s=budget_s,
                      agreement_paths=[str(p) for p in agreement_paths], seed=seed)
        if progress:
            print(f"measuring {label} ({spec['key']}) on {device} ...", flush=True)
        options = spec.get("options")
        with tempfile.TemporaryDirectory(prefix="mtbc-weights-") as tmp:
            if spec["key"] == "vggish" and options is None and isolate:
                # Random weights written here, so that making them is not in the model's RSS.
                from mtbc.extractors.fixtures import make_vggish_weights

                options = {"weights": str(make_vggish_weights(Path(tmp), seed=seed)[0])}
                kwargs["weights_label"] = RANDOM
            try:
                if isolate:
                    result = measure_isolated(spec["key"], options, **kwargs)
                else:
                    result = measure_model(spec["key"], options, **kwargs)
            except Exception as exc:  # noqa: BLE001 - one model's failure is one row
                out["failed"].append({"label": label, "model": spec["key"],
                                      "reason": f"{type(exc).__name__}: {exc}"})
                continue
        for row in result["rows"]:
            out["rows"].append({"label": label, **row})
        for row in result["agreement"]:
            out["agreement"].append({"label": label, **row})
    return out


def write_rows(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`bench_rows`'s result as JSON (with the machine it ran on)."""
    import platform

    from mtbc.extractors.base import cpu_bf16_capability

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"processor": platform.processor() or platform.machine(),
                           "cpu_count": os.cpu_count(), "cpu_bf16": cpu_bf16_capability()},
               **result}
    path.write_text(json.dumps(payload, indent=2, default=_json_default))
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_rows(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """What :func:`write_rows` wrote, or ``None`` when there is no such file."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text())


def rows_path(run_record: str | os.PathLike | None, cache_dir: str | None = None) -> Path:
    """Where notebook 07 leaves its rows for 08: beside the run record (the run's report
    folder) in a run, else in the cache folder (``compute.json``)."""
    if run_record is not None:
        return Path(run_record).parent / "compute.json"
    from mtbc import config

    return Path(config.cache_dir(cache_dir)) / "compute.json"


# ----------------------------------------------------------------------------- decoding

def decode_costs(*, formats: Sequence[str] = ("wav", "mp3", "ogg"), clip_seconds: float = 30.0,
                 source_rate: int = 44100, target_rate: int = 24000, repeats: int = 2,
                 root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Milliseconds to decode and resample one ``clip_seconds`` stereo clip per format, as
    extraction does (:func:`mtbc.data.audio.load_audio` to ``target_rate``), best of
    ``repeats``; and how many decode threads keep up with a model embedding
    ``clips_per_s`` clips per second (``workers_for_100_clips_per_s``)."""
    import soundfile as sf

    from mtbc.bench import best_time
    from mtbc.data.audio import load_audio

    rows = []
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        left = synthetic_clip(clip_seconds, source_rate, seed=1)
        data = np.stack([left, np.roll(left, 100)], axis=1)
        for fmt in formats:
            path = Path(tmp) / f"clip.{fmt}"
            try:
                sf.write(path, data, source_rate, format=fmt.upper())
            except (sf.LibsndfileError, ValueError, TypeError) as exc:
                rows.append({"format": fmt, "ms_per_clip": None, "note": str(exc)})
                continue
            seconds = best_time(lambda path=path: load_audio(path, target_rate),
                                repeats=repeats, warmup=1)
            rows.append({"format": fmt, "ms_per_clip": round(1000 * seconds, 1),
                         "file_kb": round(path.stat().st_size / 1024),
                         "clips_per_s_per_thread": round(1 / seconds, 1),
                         "threads_for_100_clips_per_s": math.ceil(100 * seconds),
                         "note": f"{clip_seconds:.0f} s stereo {source_rate} Hz -> mono "
                                 f"{target_rate} Hz"})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtbc.analysis.compute --worker SPEC``: one model's measurement as JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mtbc.analysis.compute")
    parser.add_argument("--worker", required=True, help="JSON spec (see measure_model)")
    spec = json.loads(parser.parse_args(argv).worker)
    result = measure_model(spec.pop("key"), spec.pop("options"), **spec)
    print(json.dumps(result, default=_json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
