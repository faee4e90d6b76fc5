"""The tables of notebook 07 and ``mtbc bench``: what :func:`mtbc.benchmark.bench_rows`
measured (memory, speed, skipped timings, the bf16 speed-up, agreement with fp32), and the
comparison's own compute figures beside ours (``docs/compute.md``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mtbc.benchmark.models import ROW_FIELDS


def _frame(result: Mapping[str, Any] | Sequence[dict]) -> pd.DataFrame:
    rows = result["rows"] if isinstance(result, Mapping) else list(result)
    frame = pd.DataFrame(rows)
    for c in ROW_FIELDS + ("label", "params", "weights_mb", "skipped", "clip_seconds"):
        if c not in frame:
            frame[c] = None
    return frame


def _with_source(out: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``out`` with a ``timing`` column (measured in this run, or cached and when) when the
    rows came through the timing cache (:class:`mtbc.benchmark.TimingCache`)."""
    if "timing_source" in frame and frame["timing_source"].notna().any():
        out["timing"] = frame["timing_source"].fillna("-").to_numpy()
    return out


def rows_frame(result: Mapping[str, Any] | Sequence[dict]) -> pd.DataFrame:
    """Speed, one row per timed (model, precision, batch size): seconds per 30 s clip,
    audio-s/s, TFLOP/s and their share of the same-run matmul peak (and ``timing``: measured
    in this run or cached, when the timing cache was used)."""
    frame = _frame(result)
    frame = frame[frame["seconds_per_clip"].notna()] if len(frame) else frame
    out = pd.DataFrame({
        "label": frame["label"], "weights": frame["weights_kind"], "dtype": frame["dtype"],
        "batch": frame["batch_size"],
        "s per 30 s clip": [round(v * 30 / c, 3) for v, c in
                            zip(frame["seconds_per_clip"], frame["clip_seconds"], strict=True)],
        "audio-s/s": frame["audio_s_per_s"].astype(float).round(1),
        "TFLOP/s": [None if v is None or v != v else round(v, 3) for v in frame["tflops"]],
        "% of matmul peak": [f"{100 * v:.0f}%" if v is not None and v == v else "-"
                             for v in frame["peak_fraction"]]})
    return _with_source(out, frame).reset_index(drop=True)


def memory_frame(result: Mapping[str, Any] | Sequence[dict]) -> pd.DataFrame:
    """Size and memory, one row per model: parameters, weights on disk, load time, the
    subprocess's peak RAM and the peak GPU memory (and ``timing``, as in :func:`rows_frame`)."""
    frame = _frame(result)
    if not len(frame):
        return pd.DataFrame(columns=["label", "model", "weights", "params", "weights MB",
                                     "load s", "peak RSS MiB", "peak VRAM MiB"])
    first = frame.groupby("label", sort=False).first().reset_index()
    return _with_source(pd.DataFrame({
        "label": first["label"], "model": first["model"], "weights": first["weights_kind"],
        "params": [f"{p / 1e6:.1f}M" if p else "-" for p in first["params"]],
        "weights MB": first["weights_mb"].astype(float).round(1),
        "load s": first["load_s"].astype(float).round(2),
        "peak RSS MiB": first["peak_rss_mib"].astype(float).round(0),
        "peak VRAM MiB": ["-" if v is None or v != v else round(v) for v in
                          first["peak_vram_mib"]]}), first)


def skipped_frame(result: Mapping[str, Any] | Sequence[dict]) -> pd.DataFrame:
    """The timings the budget left out, and why."""
    frame = _frame(result)
    frame = frame[frame["skipped"].notna()] if len(frame) else frame
    return pd.DataFrame({"label": frame["label"], "dtype": frame["dtype"],
                         "batch": frame["batch_size"], "not run because": frame["skipped"]}
                        ).reset_index(drop=True)


def speedup_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Per model and batch size: audio-s/s in fp32 and in each reduced precision, and the
    ratio (the speed-up of bf16 over fp32 measured in the same subprocess)."""
    frame = pd.DataFrame([r for r in result["rows"] if r.get("audio_s_per_s")])
    if frame.empty:
        return pd.DataFrame(columns=["label", "batch_size", "dtype", "fp32 audio-s/s",
                                     "audio-s/s", "speed-up"])
    out = []
    for (label, batch), group in frame.groupby(["label", "batch_size"], sort=False):
        fp32 = group.loc[group["dtype"] == "float32", "audio_s_per_s"]
        for row in group.itertuples():
            if row.dtype == "float32" or fp32.empty:
                continue
            out.append({"label": label, "batch_size": batch, "dtype": row.dtype,
                        "fp32 audio-s/s": round(float(fp32.iloc[0]), 2),
                        "audio-s/s": round(float(row.audio_s_per_s), 2),
                        "speed-up": round(float(row.audio_s_per_s / fp32.iloc[0]), 2),
                        "weights": row.weights_kind})
    return pd.DataFrame(out)


def agreement_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Per-layer cosine similarity (minimum over chunks) of reduced-precision time-mean
    embeddings to fp32 ones, one row per layer."""
    rows = []
    for a in result.get("agreement", []):
        for layer, cos in enumerate(a["per_layer"]):
            rows.append({"label": a["label"], "dtype": a["dtype"], "layer": layer,
                         "min cosine to fp32": round(cos, 7), "tracks": a["n_tracks"],
                         "weights": a["weights_kind"]})
    return pd.DataFrame(rows, columns=["label", "dtype", "layer", "min cosine to fp32",
                                       "tracks", "weights"])


#: The comparison's compute table, as data (MERT-v1-330M and VGGish; its CPU figures were
#: measured on a Jetson Orin, its GPU figures on an RTX 3090, the Apple ones on an M1).
CLAIMED_COMPUTE = pd.DataFrame([
    {"model": "mert-330m", "size": "1.2 GB", "RAM": "~2.5 GB", "VRAM": "~4 GB",
     "load": "10-15 s", "30 s clip, CPU (Jetson Orin)": "30-60 s",
     "30 s clip, GPU (RTX 3090)": "2-3 s", "30 s clip, M1 (MPS)": "5-8 s",
     "batch 8": "180 s", "batch 16": "300 s"},
    {"model": "vggish", "size": "276 MB", "RAM": "~500 MB", "VRAM": "~1 GB",
     "load": "2-3 s", "30 s clip, CPU (Jetson Orin)": "5-10 s",
     "30 s clip, GPU (RTX 3090)": "0.5-1 s", "30 s clip, M1 (MPS)": "1-2 s",
     "batch 8": "30 s", "batch 16": "50 s"},
]).set_index("model")


def claimed_compute() -> pd.DataFrame:
    """The comparison's compute figures, one column per model."""
    return CLAIMED_COMPUTE.T


def ours_beside_claims(result: Mapping[str, Any]) -> pd.DataFrame:
    """Our figures in the comparison's rows, one column per model (this machine; the
    weights each figure used)."""
    rows = []
    frame = pd.DataFrame([r for r in result["rows"] if r.get("seconds_per_clip")])
    for key in CLAIMED_COMPUTE.index:
        sub = frame[frame["model"] == key] if len(frame) else frame
        if sub.empty:
            rows.append({"model": key, "measured": "not measured in this run"})
            continue
        auto = sub[sub["dtype"] == sub["auto_dtype"]]
        auto = auto if len(auto) else sub
        b1 = auto[auto["batch_size"] == 1]
        rec = {"model": key, "weights": auto["weights_kind"].iloc[0],
               "size (fp32 params x 4 B)": f"{auto['params'].iloc[0] * 4 / 1e9:.2f} GB",
               "peak RSS": f"{auto['peak_rss_mib'].iloc[0]:.0f} MiB",
               "load": f"{auto['load_s'].iloc[0]:.1f} s",
               "device, dtype": f"{auto['device'].iloc[0]}, {auto['dtype'].iloc[0]}",
               "30 s clip, this machine":
                   f"{b1['seconds_per_clip'].iloc[0] * 30 / b1['clip_seconds'].iloc[0]:.2f} s"
                   if len(b1) else "-"}
        for b in (8, 16):
            hit = auto[auto["batch_size"] == b]
            rec[f"batch {b}"] = (f"{hit['seconds_per_clip'].iloc[0] * b:.1f} s"
                                 if len(hit) else "not run")
        rows.append(rec)
    return pd.DataFrame(rows).set_index("model").T


