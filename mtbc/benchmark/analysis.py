"""``mtbc bench --analysis``: the analysis after extraction (notebooks 03-06) timed on a
synthetic study of any size.

:func:`synthetic_study` writes a seeded study into a temporary embedding store: ``n_tracks``
tracks in ``n_classes`` labels and groups of ``tracks_per_group`` (artists), ``n_tags`` tags
per track, and two models -- ``big`` (``n_layers x dim`` per segment, MERT-330M-shaped by
default: 25 x 1024, ``n_segments`` segments per track give or take one) and ``mfcc``
(1 x 158, the MFCC baseline's shape). A weak label signal is planted in random directions,
strongest at two thirds of the depth (the way MERT's genre information peaks mid-stack), and
each tag depends weakly on the label. It is a timing fixture, never a result.

:func:`bench_analysis` then calls the notebooks' own study functions with their defaults --
``describe_models`` (03), ``classify_models`` with linear and MLP probes plus
``save_final_models`` (04), ``compare_systems`` (05) and ``tag_systems`` (06) -- and returns
one row per step: wall seconds, the process's peak memory so far, and the step's headline
figures (accuracies, macro ROC-AUCs and chosen layers, so that a speed-up is seen not to
change results). Rows print as a table and write as JSON (``--json``), like ``mtbc bench``.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc.benchmark.timing import peak_rss_mib
from mtbc.cache.store import EmbeddingStore
from mtbc.config import available_cores
from mtbc.data.core import Collection
from mtbc.data.tags import TAG_SEPARATOR
from mtbc.evaluation.estimators import mlp_device
from mtbc.files import atomic_write
from mtbc.study.classify import classify_models, save_final_models
from mtbc.study.common import Study
from mtbc.study.compare import compare_systems
from mtbc.study.describe import describe_models
from mtbc.study.tagging import tag_systems

#: The steps timed, by notebook.
STEPS = ("03", "04", "05", "06")
MFCC_DIM = 158


@dataclass(frozen=True)
class AnalysisBenchOptions:
    """The synthetic study's size and the steps to time (module docstring)."""

    n_tracks: int = 1000
    n_layers: int = 25
    dim: int = 1024
    n_segments: int = 6
    n_classes: int = 10
    n_tags: int = 8
    tracks_per_group: int = 4
    seed: int = 0
    steps: tuple = STEPS


@dataclass(frozen=True)
class SyntheticModel:
    """What a study needs of an extractor: its ``name`` (family) and ``fingerprint``."""

    name: str
    fingerprint: str
    model_name: str = "synthetic"

    def metadata(self) -> dict:
        return {"name": self.name, "weights": "synthetic (timing fixture)",
                "fingerprint": self.fingerprint}


def _class_means(rng, n_classes, n_layers, dim, separation, peak=2 / 3):
    """``(n_classes, n_layers, dim)`` class directions whose strength rises then falls with
    depth; at the peak two class means lie about ``separation`` noise units apart."""
    depth = np.arange(n_layers) / (n_layers - 1) if n_layers > 1 else np.array([peak])
    strength = separation / np.sqrt(2 * dim) * np.exp(-((depth - peak) ** 2) / 0.08)
    directions = rng.standard_normal((n_classes, n_layers, dim), dtype=np.float32)
    return directions * strength.astype(np.float32)[None, :, None]


def synthetic_study(root: str | Path, options: AnalysisBenchOptions | None = None) -> Study:
    """Write the synthetic study of ``options`` under ``root`` (an empty folder) and return
    it as the notebooks see a study."""
    o = options or AnalysisBenchOptions()
    rng = np.random.default_rng(o.seed)
    labels = np.arange(o.n_tracks) % o.n_classes
    rng.shuffle(labels)
    # every tag is more likely for some labels than others
    tag_rate = rng.uniform(0.05, 0.6, size=(o.n_classes, o.n_tags))
    has_tag = rng.random((o.n_tracks, o.n_tags)) < tag_rate[labels]
    tag_names = [f"tag{j}" for j in range(o.n_tags)]
    tracks = pd.DataFrame({
        "track_id": [f"t{i:05d}" for i in range(o.n_tracks)],
        "path": [f"synthetic/t{i:05d}.wav" for i in range(o.n_tracks)],
        "label": [f"class{c}" for c in labels],
        "group": [f"artist{i // o.tracks_per_group}" for i in rng.permutation(o.n_tracks)],
        "content_hash": [f"{i:064x}" for i in range(o.n_tracks)],
        "tags": [TAG_SEPARATOR.join(t for t, h in zip(tag_names, row, strict=True) if h)
                 for row in has_tag],
        "tags_negative": [TAG_SEPARATOR.join(t for t, h in zip(tag_names, row, strict=True) if not h)
                          for row in has_tag],
    })
    store = EmbeddingStore(Path(root) / "cache")
    n_seg = o.n_segments + rng.integers(-1, 2, size=o.n_tracks).clip(1 - o.n_segments, None)
    models = {"big": SyntheticModel("big", f"big-{o.n_layers}x{o.dim}-synthetic"),
              "mfcc": SyntheticModel("mfcc", "mfcc-synthetic")}
    shapes = {"big": (o.n_layers, o.dim, 3.0), "mfcc": (1, MFCC_DIM, 1.5)}
    for label, model in models.items():
        n_layers, dim, separation = shapes[label]
        means = _class_means(rng, o.n_classes, n_layers, dim, separation)
        # written in blocks of tracks so the whole study is never twice in memory
        for start in range(0, o.n_tracks, 100):
            block = np.arange(start, min(start + 100, o.n_tracks))
            counts = n_seg[block]
            X = rng.standard_normal((counts.sum(), n_layers, dim), dtype=np.float32)
            X += means[np.repeat(labels[block], counts)]
            pos = 0
            for i, c in zip(block, counts, strict=True):
                store.put(tracks["content_hash"][i], model.fingerprint, X[pos:pos + c])
                pos += c
    # evaluations kept as a run keeps them, so 05 and 06 reuse 04's work (mtbc.evaluation.memo)
    return Study(Collection(tracks, name="synthetic", source=f"synthetic:{root}"), store,
                 models, reuse_dir=str(Path(root) / "cache" / "evaluations"))


def _row(step: str, what: str, seconds: float, **figures) -> dict:
    return {"step": step, "what": what, "seconds": round(seconds, 2),
            "peak_rss_mib": round(peak_rss_mib(), 1), **figures}


def bench_analysis(options: AnalysisBenchOptions | None = None, *,
                   work_dir: str | Path | None = None, echo: bool = True) -> list[dict]:
    """Time notebooks 03-06's study functions on :func:`synthetic_study` (module docstring);
    one row per step."""
    o = options or AnalysisBenchOptions()
    bad = [s for s in o.steps if s not in STEPS]
    if bad:
        raise ValueError(f"steps {bad} unknown; choose among {', '.join(STEPS)}")
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="mtbc-bench-analysis-") as tmp:
        start = time.perf_counter()
        study = synthetic_study(tmp, o)
        # where the estimators run: the MLP on the GPU when CUDA is there, the rest on the
        # CPU cores (one fold per core); the row says which, so a GPU figure is labelled
        setup = _row("setup", f"synthetic study {o.n_tracks} tracks x {o.n_layers} layers x "
                     f"{o.dim} dims x ~{o.n_segments} segments", time.perf_counter() - start,
                     mlp_device=str(mlp_device("auto")), fold_threads=available_cores())
        rows: list[dict] = []

        def done(row):
            rows.append(row)
            if echo:
                figures = {k: v for k, v in row.items()
                           if k not in ("step", "what", "seconds", "peak_rss_mib")}
                print(f"{row['step']:>5} {row['what']:<28} {row['seconds']:8.1f} s "
                      f"{row['peak_rss_mib']:8.0f} MiB  {json.dumps(figures)}", flush=True)

        if echo:
            print(f"{'step':>5} {'what':<28} {'wall':>10} {'peak RSS':>12}  figures")
        done(setup)
        if "03" in o.steps:
            t = time.perf_counter()
            sep = {label: int(d.separability["silhouette"].idxmax())
                   for label, d in zip(study.models, describe_models(study), strict=True)}
            done(_row("03", "describe every model", time.perf_counter() - t,
                      best_silhouette_layer=sep))
        if "04" in o.steps:
            t = time.perf_counter()
            cls = classify_models(study, probes=["linear", "mlp"])
            fit = time.perf_counter() - t
            done(_row("04", "classify (linear + MLP)", fit,
                      accuracy={f"{m} {p}": round(r.metric(), 4)
                                for (m, p), r in cls.results.items()},
                      layers={f"{m} {p}": r.folds["layer"].tolist()
                              for (m, p), r in cls.results.items() if m == "big"}))
            t = time.perf_counter()
            save_final_models(study, cls, out_dir=Path(tmp) / "models",
                              extractors={label: {} for label in study.models})
            done(_row("04", "save final models", time.perf_counter() - t))
        if "05" in o.steps:
            t = time.perf_counter()
            comp = compare_systems(study)
            done(_row("05", "compare systems", time.perf_counter() - t,
                      accuracy={r.name: round(r.metric(), 4) for r in comp.systems}))
        if "06" in o.steps:
            t = time.perf_counter()
            tag = tag_systems(study)
            done(_row("06", "tagging", time.perf_counter() - t,
                      roc_auc={r.name: round(r.metric("roc_auc_macro"), 4)
                               for r in tag.systems}))
    total = sum(r["seconds"] for r in rows if r["step"] != "setup")
    done_row = _row("03-06", "total (without setup)", total)
    rows.append(done_row)
    if echo:
        print(f"{'03-06':>5} {'total (without setup)':<28} {total:8.1f} s "
              f"{done_row['peak_rss_mib']:8.0f} MiB")
    for r in rows:
        r.update({"bench": "analysis", **{k: v for k, v in asdict(o).items() if k != "steps"},
                  "machine": platform.machine(), "processor": platform.processor() or ""})
    return rows


def write_analysis_rows(rows: list[dict], path: str | Path) -> Path:
    """The rows as JSON (atomic)."""
    text = json.dumps({"rows": rows}, indent=2, default=str).encode()
    atomic_write(Path(path), lambda f: f.write(text))
    return Path(path)
