"""Precision helpers of notebook 07: whether this CPU has native bf16, and how bf16 and fp32
compare on the run's own tracks (per-layer agreement, probe accuracy both ways).

The timing rows themselves come from :func:`mtbc.benchmark.bench_rows`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from mtbc.cache.extract import extract_collection
from mtbc.cache.store import load_embeddings
from mtbc.evaluation import evaluate_probe
from mtbc.extractors.base import CPU_BF16_ENV, cpu_bf16_capability, cpu_has_native_bf16
from mtbc.study.common import plan_classification


def agreement_paths(study, n_tracks: int) -> list[str]:
    """The first ``n_tracks`` tracks of the run (by track id): the audio the precision
    agreement is measured on."""
    tracks = study.tracks.sort_values("track_id")
    return [str(p) for p in tracks["path"].head(max(0, int(n_tracks)))]


def precision_capability() -> pd.DataFrame:
    """This CPU's bf16 support as torch reports it, and what ``dtype="auto"`` picks here."""
    caps = cpu_bf16_capability()
    rows = [{"check": k, "value": v} for k, v in caps.items()]
    rows.append({"check": f"auto picks bf16 on this CPU (MERT, VGGish; {CPU_BF16_ENV}="
                          f"{os.environ.get(CPU_BF16_ENV, 'unset')})",
                 "value": cpu_has_native_bf16()})
    return pd.DataFrame(rows).set_index("check")


def precision_probe(study, *, budget_s: float = 120.0, seed: int = 0, n_splits: int = 5,
                    n_boot: int = 200, rows: Sequence[dict] = ()) -> pd.DataFrame | str:
    """Linear-probe accuracy of each MERT model of the run in fp32 and in bf16, same folds.

    The run's own precision comes from the cache; the other is extracted now (and cached).
    Skipped, with the reason as the return value, when no MERT ran, when the run has no
    labels, when this CPU has no native bf16, or when extracting the other precision is
    estimated (from 07's ``rows``) to take longer than ``budget_s``.
    """
    labels = [k for k, e in study.models.items() if e.name == "mert"]
    if not labels:
        return "No MERT model ran in this study, so there is no probe to compare."
    plan = plan_classification(study.tracks, n_splits=n_splits)
    if plan.why_not:
        return f"No probe: {plan.why_not}."
    out = []
    for label in labels:
        ext = study.models[label]
        other = "float32" if ext.dtype != "float32" else "bfloat16"
        if other == "bfloat16" and ext.device.type == "cpu" and not cpu_bf16_capability()["native"]:
            return "This CPU has no native bf16: the bf16 probe is not run (it would be emulated)."
        audio = float(study.tracks["duration"].fillna(0).sum())
        timed = [r for r in rows if r.get("label") == label and r.get("dtype") == other
                 and r.get("seconds_per_clip")]
        if timed:
            estimate = audio / timed[0]["clip_seconds"] * timed[0]["seconds_per_clip"]
            if estimate > budget_s:
                return (f"{label}: extracting {audio:.0f} s of audio in {other} would take "
                        f"about {estimate:.0f} s here (over the {budget_s:.0f} s budget; raise "
                        f"`probe_budget_s` to run it).")
        twin = ext.with_dtype(other)  # the same weights and files, the other precision
        extract_collection(plan.tracks, twin, study.store, progress=False)
        for e in (ext, twin):
            sub, (feats, index) = load_embeddings(plan.tracks, study.store, e.fingerprint,
                                                  reduce=None)
            r = evaluate_probe(feats, index, sub, probe="linear", seed=seed,
                               n_splits=plan.n_folds, n_boot=n_boot, name=f"{label} {e.dtype}")
            m = r.metrics.set_index("metric").loc["accuracy"]
            out.append({"model": label, "dtype": e.dtype,
                        "weights": e.metadata()["weights_kind"],
                        "accuracy % [95% CI]": f"{100 * m['value']:.1f} [{100 * m['ci_low']:.1f}"
                                               f", {100 * m['ci_high']:.1f}]",
                        "tracks": r.n_tracks})
    return pd.DataFrame(out)
