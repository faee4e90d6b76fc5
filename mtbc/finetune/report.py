"""Notebook 09's building blocks: which models to fine-tune, the runs, tables and plots, and
the record it leaves in the run folder (``finetune.json``, :func:`write_record`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mtbc.cache.store import EmbeddingStore
from mtbc.extractors import ExtractorConfigError, ModelLoadError, WeightsUnavailableError
from mtbc.extractors.base import resolve_device
from mtbc.files import atomic_write
from mtbc.finetune.run import FinetuneReport, FinetuneSpec, finetune_collection
from mtbc.finetune.train import TrainOptions

#: Extractors with a split point, and those too heavy to train on a CPU unless asked.
FINETUNABLE = ("musicnn", "mert", "vggish")
HEAVY = ("mert", "vggish")


@dataclass
class FinetunePlan:
    """``specs``: label -> :class:`FinetuneSpec` to run; ``skipped``: label, reason."""

    specs: dict[str, FinetuneSpec]
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["model", "reason"]))


def plan_finetuning(extractors: Mapping[str, Mapping[str, Any]], *, allow_cpu: bool = False,
                    train_layers: Mapping[str, int] | None = None,
                    train: TrainOptions | None = None, n_splits: int = 5,
                    n_boot: int = 1000) -> FinetunePlan:
    """The run's extractors that can be fine-tuned here; the others with the reason.

    MERT and VGGish train on a CPU only with ``allow_cpu`` (their tops hold 25-70M
    parameters); extractors without trainable layers (MFCC) are not listed.
    """
    specs, skipped = {}, []
    for label, opts in extractors.items():
        opts = dict(opts)
        name = opts.pop("name", label)
        if name not in FINETUNABLE:
            continue
        device = resolve_device(opts.get("device", "auto"))
        if name in HEAVY and device.type == "cpu" and not allow_cpu:
            skipped.append((label, "no GPU here; set allow_cpu: true to train it on the CPU"))
            continue
        if name == "vggish":
            opts["postprocess"] = "none"
        specs[label] = FinetuneSpec(name, opts, (train_layers or {}).get(label),
                                    train or TrainOptions(),
                                    n_splits, n_boot)
    return FinetunePlan(specs, pd.DataFrame(skipped, columns=["model", "reason"]))


def run_plan(plan: FinetunePlan, tracks: pd.DataFrame, store: EmbeddingStore
             ) -> dict[str, FinetuneReport]:
    """Run every spec of ``plan``; a model whose weights are missing moves to ``skipped``."""
    out = {}
    for label, spec in plan.specs.items():
        try:
            out[label] = finetune_collection(tracks, spec, store=store, workdir=None)
        except (WeightsUnavailableError, ModelLoadError, ExtractorConfigError) as exc:
            why = " ".join(str(exc).split())
            plan.skipped.loc[len(plan.skipped)] = [label, why[:300]]
    return out


def _ci(value: float, low: float, high: float, *, sign: bool = False) -> str:
    f = "+.1f" if sign else ".1f"
    return f"{100 * value:{f}} [{100 * low:{f}}, {100 * high:{f}}]"


def gain_table(reports: Mapping[str, FinetuneReport]) -> pd.DataFrame:
    """One row per model: trained part, frozen and fine-tuned accuracy (%, 95% CI), gain in
    points with its CI, p, n tracks / groups, chosen lr and epochs per fold, seconds, and
    where and how it trained (device, precision, batch size)."""
    rows = []
    for label, r in reports.items():
        s, c = r.summary(), r.comparison
        fa, ta = s["frozen_accuracy"], s["finetuned_accuracy"]
        rows.append({
            "model": label, "trained": r.split.details.get("trainable"),
            "frozen probe accuracy % [95% CI]": _ci(fa["value"], fa["ci_low"], fa["ci_high"]),
            "fine-tuned accuracy % [95% CI]": _ci(ta["value"], ta["ci_low"], ta["ci_high"]),
            "gain, points [95% CI]": _ci(c["gain"], c["ci_low"], c["ci_high"], sign=True),
            "p": round(c["p_value"], 4), "n tracks": c["n_tracks"], "n groups": c["n_groups"],
            "lr, epochs per fold": ", ".join(f"{f['lr']:g}/{f['epochs']}"
                                              for f in s["folds"]),
            "training s": round(s["seconds"]["finetune"], 1),
            "device, precision, batch": f"{s['device']}, {s['precision']}, "
                                        f"{'/'.join(map(str, s['batch_size']))}"})
    return pd.DataFrame(rows)


def answer(reports: Mapping[str, FinetuneReport], *, alpha: float = 0.05) -> str:
    """The answer in one sentence per model: the gain, its CI, p and n."""
    if not reports:
        return ("No model was fine-tuned in this run: only musicnn, MERT and VGGish have "
                "trainable layers, and any of them in the run is listed below with the reason "
                "it was skipped.")
    parts = []
    for label, r in reports.items():
        c = r.comparison
        verdict = ("a significant gain" if c["p_value"] < alpha and c["gain"] > 0 else
                   "a significant loss" if c["p_value"] < alpha else "no significant difference")
        parts.append(f"**{label}** ({r.split.details.get('trainable')} trained): fine-tuning "
                     f"changed accuracy by {_ci(c['gain'], c['ci_low'], c['ci_high'], sign=True)}"
                     f" points against its frozen probe (p = {c['p_value']:.3g}, "
                     f"{c['n_tracks']} test tracks in {c['n_groups']} groups): {verdict}.")
    return " ".join(parts)


def loss_curves(report: FinetuneReport) -> pd.DataFrame:
    """Per fold, the chosen learning rate's training and validation loss by epoch
    (``fold, epoch, train_loss, valid_loss, chosen_epoch``)."""
    h = report.tuned.history
    chosen = report.tuned.folds.set_index("fold")
    sel = h[h["phase"] == "select"]
    keep = sel["lr"].to_numpy() == chosen.loc[sel["fold"], "lr"].to_numpy()
    out = sel[keep][["fold", "epoch", "train_loss", "valid_loss"]].copy()
    out["chosen_epoch"] = chosen.loc[out["fold"], "epochs"].to_numpy()
    return out.reset_index(drop=True)


def plot_loss_curves(report: FinetuneReport, label: str):
    """Training (solid) and validation (dashed) loss by epoch, one colour per fold, the
    epoch chosen on validation marked; returns the figure."""
    import matplotlib.pyplot as plt  # plotting only in notebooks

    curves = loss_curves(report)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (fold, d) in enumerate(curves.groupby("fold", sort=False)):
        colour = f"C{i}"
        ax.plot(d["epoch"], d["train_loss"], color=colour, label=f"{fold} train")
        ax.plot(d["epoch"], d["valid_loss"], color=colour, ls="--", label=f"{fold} valid")
        best = d[d["epoch"] == d["chosen_epoch"].iloc[0]]
        ax.scatter(best["epoch"], best["valid_loss"], color=colour, marker="*", s=90, zorder=3)
    n_valid = int(report.tuned.folds["n_valid"].sum())
    ax.set(xlabel="epoch", ylabel="cross-entropy",
           title=f"{label}: loss by epoch at the chosen lr (star: chosen epoch; "
                 f"valid n = {n_valid} tracks over folds)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_gains(reports: Mapping[str, FinetuneReport]):
    """Gain in accuracy points per model with its 95% CI and n; returns the figure."""
    import matplotlib.pyplot as plt  # plotting only in notebooks

    labels = list(reports)
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.5 * max(len(labels), 1)))
    for i, label in enumerate(labels):
        c = reports[label].comparison
        ax.errorbar(100 * c["gain"], i, xerr=[[100 * (c["gain"] - c["ci_low"])],
                                               [100 * (c["ci_high"] - c["gain"])]],
                    fmt="o", capsize=4, color="C0")
        ax.annotate(f"n = {c['n_tracks']}, p = {c['p_value']:.2g}", (100 * c["ci_high"], i),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.axvline(0, color="grey", lw=1)
    ax.set(yticks=range(len(labels)), yticklabels=labels,
           xlabel="fine-tuned minus frozen-probe accuracy (points, 95% CI)")
    ax.set_ylim(-0.6, len(labels) - 0.4)
    fig.tight_layout()
    return fig


#: The file notebook 09 leaves beside the run record (read by notebook 08's claims audit).
RECORD = "finetune.json"
_META = ("model", "weights_kind", "hidden_size", "n_layers", "device", "dtype")


def finetune_record(reports: Mapping[str, FinetuneReport], tracks: pd.DataFrame,
                    skipped: pd.DataFrame | None = None) -> dict[str, Any]:
    """What notebook 09 measured, JSON-ready: per model its summary (gain, CI, p, n, the
    part trained, device, precision, seconds, segment passes) with the extractor's facts
    (``meta``: model, weights kind, width), the audio it trained on (``audio_seconds``,
    ``n_segments``: trunk segments of every labelled track), and the models skipped."""
    lab = tracks[tracks["label"].notna()] if "label" in tracks else tracks
    seconds = float(pd.to_numeric(lab["duration"], errors="coerce").fillna(0).sum()) \
        if "duration" in lab else None
    models = {}
    for label, r in reports.items():
        meta = r.extractor.metadata()
        models[label] = {**r.summary(), "meta": {k: meta.get(k) for k in _META if k in meta},
                         "n_segments": int(sum(len(t) for t in r.job.trunks)),
                         "audio_seconds": seconds,
                         "epochs": [int(f["epochs"]) for f in r.summary()["folds"]]}
    rows = [] if skipped is None else skipped.to_dict(orient="records")
    return {"format": "mtbc-finetune-record/1", "models": models, "skipped": rows}


def write_record(run_record: str | None, reports: Mapping[str, FinetuneReport],
                 tracks: pd.DataFrame, skipped: pd.DataFrame | None = None) -> Path | None:
    """Write :func:`finetune_record` as ``finetune.json`` beside the run record (atomically);
    ``None`` without a run (a notebook opened by hand)."""
    if run_record is None:
        return None
    path = Path(run_record).parent / RECORD
    text = json.dumps(finetune_record(reports, tracks, skipped), indent=1, default=str).encode()
    atomic_write(path, lambda f: f.write(text))
    return path
