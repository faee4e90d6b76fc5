"""The tables notebooks show (percentages with CIs and n), and small display helpers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc import __version__


def listen(path: str | Path, *, seconds: float = 10.0, sr: int = 16000):
    """An audio player for the first ``seconds`` of a file (embedded, so HTML stays portable)."""
    from IPython.display import Audio

    from mtbc.data.audio import load_audio

    wave = load_audio(path, sr, on_silence="ignore")[: int(seconds * sr)]
    return Audio(wave, rate=sr, normalize=True)


def extractor_table(metadata: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per extractor label: model, revision/weights, kind of weights, the weights'
    licence (as the model card states it), fingerprint."""
    rows = []
    for label, meta in metadata.items():
        revision = meta.get("commit") or meta.get("weights_sha256") or ""
        rows.append({
            "extractor": label,
            "model": meta.get("model") or meta.get("weights_file") or meta.get("extractor"),
            "revision": revision.removeprefix("sha256-")[:12] or "-",
            "weights": meta.get("weights_kind", "unknown"),
            "licence": meta.get("licence") or "-",
            "sample rate (Hz)": meta.get("sample_rate"),
            "fingerprint": meta.get("fingerprint"),
        })
    return pd.DataFrame(rows).set_index("extractor")


def describe_weights(extractor) -> str:
    """``model @ revision (weights kind)`` for a provenance table."""
    meta = extractor.metadata()
    model = meta.get("model") or meta.get("weights_file") or meta.get("extractor")
    revision = meta.get("commit") or (meta.get("weights_sha256") or "")[:12]
    licence = f"; licence {meta['licence']}" if meta.get("licence") else ""
    return f"{model}" + (f" @ {revision}" if revision else "") + \
        f" ({meta.get('weights_kind', 'unknown')}{licence}; fingerprint {extractor.fingerprint})"


def model_provenance(models: Mapping[str, Any]) -> dict[str, str]:
    """Label -> :func:`describe_weights` for every extractor of a run."""
    return {f"{label}": describe_weights(ext) for label, ext in models.items()}


def provenance(**values: Any) -> pd.DataFrame:
    """The closing provenance table: the values given plus the mtbc version."""
    rows = [(k, v if isinstance(v, str) else repr(v)) for k, v in values.items()]
    rows.append(("mtbc version", __version__))
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def _with_ci(value: float, low: float, high: float) -> str:
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def results_table(results, *, chosen=()) -> pd.DataFrame:
    """A readable comparison of probe results: accuracy and macro F1 in % with group-bootstrap
    95% CIs, and n tracks (groups). Precision and recall are in the run's ``results.csv``.

    ``validation %`` is the accuracy on validation tracks that drove each result's choices
    (blank for late fusion, which chooses nothing); ``chosen`` marks the results picked on
    validation data; ``fold range %`` the lowest and highest outer-fold accuracy;
    ``warnings`` the solver's convergence warnings.
    """
    chosen = {getattr(r, "name", r) for r in chosen}
    rows = []
    for r in results:
        m = r.metrics.set_index("metric")
        row = {"system": r.name}
        for metric, title in [("accuracy", "accuracy % [95% CI]"),
                              ("f1_macro", "macro F1 % [95% CI]")]:
            if metric in m.index:
                row[title] = _with_ci(m.loc[metric, "value"], m.loc[metric, "ci_low"],
                                      m.loc[metric, "ci_high"])
        val = r.validation_score()
        row["validation %"] = round(100 * val, 1) if np.isfinite(val) else ""
        if chosen:
            row["chosen"] = "yes" if r.name in chosen else ""
        row["layer(s) chosen"] = r.chosen_layers()
        row["fold range %"] = fold_spread(r)
        if "convergence_warnings" in r.folds:
            row["warnings"] = int(r.folds["convergence_warnings"].sum())
        groups = int(m.loc["accuracy", "n_groups"]) if "n_groups" in m.columns else None
        row["n tracks (groups)"] = f"{r.n_tracks} ({groups})" if groups else str(r.n_tracks)
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


def fold_spread(result) -> str:
    """Lowest and highest test accuracy over the outer folds, in % (``-`` with one fold)."""
    per_fold = result.predictions.groupby("fold")["correct"].mean()
    if len(per_fold) < 2:
        return "-"
    return f"{100 * per_fold.min():.1f}-{100 * per_fold.max():.1f}"


def layer_curve_frame(result) -> pd.DataFrame:
    """The layer curve of a multi-layer result, for :func:`mtbc.reports.plots.plot_layer_curve`:
    the validation accuracy that chose the layer, and (when the result has it) each layer's
    held-out test accuracy, which is shown only and used for nothing."""
    scores = result.layer_scores[result.layer_scores["layer"].map(
        lambda v: not isinstance(v, str))].astype({"layer": int})
    parts = [scores[["layer", "accuracy", "ci_low", "ci_high"]].assign(
        system="validation (chose the layer)")]
    if "test_accuracy" in scores:
        test = scores[["layer", "test_accuracy", "test_ci_low", "test_ci_high"]].rename(
            columns={"test_accuracy": "accuracy", "test_ci_low": "ci_low",
                     "test_ci_high": "ci_high"})
        parts.append(test.assign(system="held-out test (not used for selection)"))
    return pd.concat(parts, ignore_index=True)


def comparison_frame(results) -> pd.DataFrame:
    """``system, accuracy, ci_low, ci_high`` (fractions) for :func:`mtbc.reports.plots.plot_model_comparison`."""
    rows = []
    for r in results:
        m = r.metrics.set_index("metric").loc["accuracy"]
        rows.append({"system": r.name, "accuracy": m["value"], "ci_low": m["ci_low"],
                     "ci_high": m["ci_high"]})
    return pd.DataFrame(rows)
