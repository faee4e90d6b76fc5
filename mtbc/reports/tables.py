"""Small display helpers that keep the numbered notebooks thin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mtbc import __version__
from mtbc.data.splits import fold_count, has_predefined_split


def listen(path: str | Path, *, seconds: float = 10.0, sr: int = 16000):
    """An audio player for the first ``seconds`` of a file (embedded, so HTML stays portable)."""
    from IPython.display import Audio

    from mtbc.data.audio import load_audio

    wave = load_audio(path, sr, on_silence="ignore")[: int(seconds * sr)]
    return Audio(wave, rate=sr, normalize=True)


def extractor_table(metadata: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per extractor label: model, revision/weights, kind of weights, fingerprint."""
    rows = []
    for label, meta in metadata.items():
        revision = meta.get("commit") or meta.get("weights_sha256") or ""
        rows.append({
            "extractor": label,
            "model": meta.get("model") or meta.get("weights_file") or meta.get("extractor"),
            "revision": revision.removeprefix("sha256-")[:12] or "-",
            "weights": meta.get("weights_kind", "unknown"),
            "sample rate (Hz)": meta.get("sample_rate"),
            "fingerprint": meta.get("fingerprint"),
        })
    return pd.DataFrame(rows).set_index("extractor")


def describe_weights(extractor) -> str:
    """``model @ revision (weights kind)`` for a provenance table."""
    meta = extractor.metadata()
    model = meta.get("model") or meta.get("weights_file") or meta.get("extractor")
    revision = meta.get("commit") or (meta.get("weights_sha256") or "")[:12]
    return f"{model}" + (f" @ {revision}" if revision else "") + \
        f" ({meta.get('weights_kind', 'unknown')}; fingerprint {extractor.fingerprint})"


def model_provenance(models: Mapping[str, Any]) -> dict[str, str]:
    """Label -> :func:`describe_weights` for every extractor of a run."""
    return {f"{label}": describe_weights(ext) for label, ext in models.items()}


def provenance(**values: Any) -> pd.DataFrame:
    """The closing provenance table: the values given plus the mtbc version."""
    rows = [(k, v if isinstance(v, str) else repr(v)) for k, v in values.items()]
    rows.append(("mtbc version", __version__))
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def classification_plan(tracks: pd.DataFrame, *, n_splits: int = 5) -> tuple[pd.DataFrame, int,
                                                                                str | None]:
    """The labelled tracks a probe can use, the number of folds, and why not if it can't.

    Returns ``(labelled_tracks, n_splits, reason)``; ``reason`` is ``None`` when a probe can
    be evaluated. Without a predefined split, folds are capped by the smallest class so that
    every fold's test part can hold each class.
    """
    labelled = tracks.loc[tracks["label"].notna()].reset_index(drop=True)
    counts = labelled["label"].value_counts()
    if len(counts) < 2:
        return labelled, 0, (f"{len(counts)} label(s) among {len(labelled)} labelled tracks: "
                             f"classification needs at least 2 labels")
    if has_predefined_split(labelled):
        return labelled, n_splits, None
    folds = fold_count(labelled["label"], n_splits)
    if folds < 2:
        small = ", ".join(counts[counts < 2].index.astype(str))
        return labelled, 0, (f"label(s) {small} have a single track: cross-validation needs "
                             f"at least 2 tracks per label")
    return labelled, folds, None


def _with_ci(value: float, low: float, high: float) -> str:
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def results_table(results) -> pd.DataFrame:
    """A readable comparison of probe results: metrics in % with bootstrap 95% CIs."""
    rows = []
    for r in results:
        m = r.metrics.set_index("metric")
        row = {"system": r.name}
        for metric, title in [("accuracy", "accuracy % [95% CI]"),
                              ("f1_macro", "macro F1 % [95% CI]"),
                              ("precision_macro", "macro precision %"),
                              ("recall_macro", "macro recall %")]:
            if metric in m.index:
                if "CI" in title:
                    row[title] = _with_ci(m.loc[metric, "value"], m.loc[metric, "ci_low"],
                                          m.loc[metric, "ci_high"])
                else:
                    row[title] = round(100 * m.loc[metric, "value"], 1)
        row["layer(s) chosen"] = r.chosen_layers()
        row["tracks"] = r.n_tracks
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


def comparison_frame(results) -> pd.DataFrame:
    """``system, accuracy, ci_low, ci_high`` (fractions) for :func:`mtbc.reports.plots.plot_model_comparison`."""
    rows = []
    for r in results:
        m = r.metrics.set_index("metric").loc["accuracy"]
        rows.append({"system": r.name, "accuracy": m["value"], "ci_low": m["ci_low"],
                     "ci_high": m["ci_high"]})
    return pd.DataFrame(rows)


def answer(results, tests: pd.DataFrame | None = None) -> str:
    """One sentence: which system classifies best, by how much, and whether it is significant.

    ``tests`` is :func:`mtbc.analysis.results.compare` output (McNemar, Holm-adjusted ``p_holm``).
    """
    ranked = sorted(results, key=lambda r: r.metric(), reverse=True)
    top = ranked[0]
    m = top.metrics.set_index("metric").loc["accuracy"]
    text = (f"On these {top.n_tracks} tracks, **{top.name}** classifies best with "
            f"{100 * m['value']:.1f}% accuracy (95% CI {100 * m['ci_low']:.1f} to "
            f"{100 * m['ci_high']:.1f})")
    if len(ranked) > 1:
        second = ranked[1]
        text += f", ahead of {second.name} ({100 * second.metric():.1f}%)"
        if tests is not None and len(tests):
            pair = tests[((tests["system_a"] == top.name) & (tests["system_b"] == second.name))
                         | ((tests["system_a"] == second.name) & (tests["system_b"] == top.name))]
            if len(pair):
                p = float(pair["p_holm"].iloc[0])
                text += (f"; the difference is {'' if p < 0.05 else 'not '}significant "
                         f"(McNemar exact test, Holm-adjusted p = {p:.3g})")
    return text + "."
