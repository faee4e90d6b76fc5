"""Notebook 04 (train classifiers): linear and MLP probes per model; the probe that
represents a model is chosen by **validation** accuracy only; one probe per model refit on
every labelled track for ``mtbc predict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc import config
from mtbc.cache.store import load_embeddings
from mtbc.evaluation import (
    EvalOptions,
    ProbeOptions,
    ProbeResult,
    evaluate_all,
    evaluate_majority,
    evaluate_probe,
    probe_evaluation,
)
from mtbc.evaluation.predict import save_bundle, train_final_probe
from mtbc.study.common import (
    ClassificationPlan,
    Study,
    choose_by_validation,
    per_layer_test,
    plan_classification,
    system_name,
)
from mtbc.study.zeroshot import DEFAULT_TEMPLATE, zero_shot_results


@dataclass
class Classification:
    """Notebook 04's results: every (model, probe) result, the probe chosen per model on
    validation data (``representative``), and each model's segments (for refitting)."""

    plan: ClassificationPlan
    results: dict[tuple[str, str], ProbeResult] = field(default_factory=dict)
    representative: dict[str, ProbeResult] = field(default_factory=dict)
    segments: dict[str, tuple] = field(default_factory=dict)
    baseline: ProbeResult | None = None

    def all_results(self) -> list[ProbeResult]:
        """Every result, the majority-class baseline last."""
        return [*self.results.values(), *([self.baseline] if self.baseline else [])]

    def layer_curves(self) -> list[tuple[str, ProbeResult]]:
        """``(model, linear-probe result)`` for every multi-layer model."""
        return [(label, r) for (label, probe), r in self.results.items()
                if probe == "linear" and r.params.get("n_layers", 1) > 1]


def classify_models(study: Study, *, probes: list[str], seed: int = 0, n_splits: int = 5,
                    n_boot: int = 1000, protocol: str = "default",
                    zero_shot_template: str = DEFAULT_TEMPLATE) -> Classification:
    """Evaluate every probe on every model (same folds for all); pick each model's
    representative probe by validation accuracy. Multi-layer models also get each layer's
    held-out test accuracy, for display only. ``protocol="marble"`` runs MARBLE's MLP probe
    (predefined split only) in place of ``probes``. A CLAP model also gets its zero-shot
    result (``(label, "zero-shot")``, prompts from ``zero_shot_template``; never chosen)."""
    plan = plan_classification(study.tracks, n_splits=n_splits)
    out = Classification(plan)
    if plan.why_not:
        return out
    names = ["marble"] if protocol == "marble" else probes
    pending = {}  # (label, probe) -> Evaluation: every model's probes in one queue of folds
    for label, ext in study.models.items():
        sub, (feats, index) = load_embeddings(plan.tracks, study.store, ext.fingerprint,
                                              reduce=None)
        out.segments[label] = (sub, feats, index)
        for probe in names:
            opts = {"seed": seed, "n_splits": plan.n_folds, "n_boot": n_boot,
                    "reuse_dir": study.reuse_dir,
                    "fingerprint": ext.fingerprint, "name": system_name(label, probe)}
            out.results[label, probe] = None  # keeps the table's order
            if probe == "marble":
                out.results[label, probe] = evaluate_probe(feats, index, sub, protocol="marble",
                                                           **opts)
                continue
            # the linear probe first: the MLP then reuses its kept layer ranking
            pending[label, probe] = probe_evaluation(
                feats, index, sub, probe=probe, per_layer_test=per_layer_test(feats, probe),
                **opts)
    out.results.update(zip(pending, evaluate_all(list(pending.values())), strict=True))
    for label, (sub, feats, index) in out.segments.items():
        chosen = choose_by_validation([out.results[label, p] for p in names])
        if chosen is not None:
            out.representative[label] = chosen
        for z in zero_shot_results(study, sub, {label: (feats, index)}, seed=seed, n_boot=n_boot,
                                   n_splits=plan.n_folds, template=zero_shot_template):
            out.results[label, "zero-shot"] = z
    out.baseline = evaluate_majority(plan.tracks, seed=seed, n_splits=plan.n_folds,
                                     n_boot=n_boot)
    return out


def save_final_models(study: Study, classification: Classification, *, out_dir: str | Path,
                      extractors: dict, seed: int = 0) -> pd.DataFrame:
    """Refit each model's linear probe on every labelled track and save it for
    ``mtbc predict``; one row per saved model with the full command line. The layer is the
    one with the best validation accuracy over every outer fold's inner folds (the layer
    curve of notebook 04, :func:`final_layer`); ``C`` is then chosen on grouped inner folds
    over every labelled track (as many as the evaluation's, ``EvalOptions.n_inner``)."""
    out_dir = Path(out_dir)
    rows = []
    n_splits = min(classification.plan.n_folds, EvalOptions().n_inner)
    for label, (sub, feats, index) in classification.segments.items():
        layer = final_layer(classification.results.get((label, "linear")))
        bundle = train_final_probe(feats, index, sub, extractor=study.models[label],
                                   extractor_options=extractors[label],
                                   probe_options=ProbeOptions(probe="linear", layer=layer),
                                   seed=seed, n_splits=n_splits)
        path = save_bundle(bundle, out_dir / f"{label}.npz")
        rows.append({"model": label, "layer": bundle.layer, "classes": len(bundle.classes),
                     "classify new songs with": f"mtbc predict {path} song1.mp3 song2.wav"})
    return pd.DataFrame(rows, columns=["model", "layer", "classes",
                                       "classify new songs with"]).set_index("model")


def final_layer(result: ProbeResult | None):
    """The candidate (a layer or ``"mean"``) with the best validation accuracy over every
    outer fold's inner folds -- what the layer curve shows, computed on validation tracks
    only; ties go to the earlier candidate. ``"select"`` (choose again) when ``result`` has
    no layer curve (one layer, or no linear probe)."""
    scores = None if result is None else result.layer_scores
    if scores is None or not len(scores) or "accuracy" not in scores:
        return "select"
    values = scores["accuracy"].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return "select"
    best = scores["layer"].iloc[int(np.nanargmax(values))]
    return best if isinstance(best, str) else int(best)


def default_models_dir(run: str) -> Path:
    """Where a run's trained probes go: ``data/models/<run>``."""
    return config.data_dir() / "models" / run
