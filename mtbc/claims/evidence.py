"""The audit's evidence for a run: architecture facts, notebook 07's compute rows, per-track
statistics, the accuracy of MERT, VGGish, their concatenation and their paired margin, and
the records notebooks 09 (fine-tuning) and 11 (robustness) left in the run folder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc.cache.store import load_embeddings
from mtbc.claims.audit import Evidence
from mtbc.claims.facts import architecture_facts
from mtbc.stats import bootstrap_mean_ci
from mtbc.stats import descriptive as stats
from mtbc.study.common import Study, system_name
from mtbc.study.compare import compare_systems


def _mert_label(metadata: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The run's MERT-v1-330M (1024-d); else a fixture MERT (its figures are labelled and
    decide nothing); MERT-v1-95M is another model and is not used for 330M claims."""
    for label, meta in metadata.items():
        if meta.get("extractor") == "mert" and meta.get("hidden_size") == 1024:
            return label
    for label, meta in metadata.items():
        if meta.get("extractor") == "mert" and meta.get("weights_kind") != "pretrained":
            return label
    return None


def _vggish_label(metadata: Mapping[str, Mapping[str, Any]]) -> str | None:
    return next((label for label, m in metadata.items() if m.get("extractor") == "vggish"),
                None)


def _ci(result) -> tuple:
    m = result.metrics.set_index("metric").loc["accuracy"]
    return (float(m["value"]), float(m["ci_low"]), float(m["ci_high"]), int(result.n_tracks))


def _results_csv(path: Path, labels: Mapping[str, str]) -> dict[str, tuple]:
    """Accuracy figures from a run's ``results.csv`` (when another step wrote one)."""
    table = pd.read_csv(path)
    out = {}
    acc = table[table["metric"].astype(str).str.lower() == "accuracy"]
    for key, label in labels.items():
        hit = acc[acc["system"].astype(str) == label]
        if len(hit):
            r = hit.iloc[0]
            out[key] = (float(r["value"]), float(r["ci_low"]), float(r["ci_high"]),
                        int(r["n_tracks"]))
    return out


#: What notebooks 09 and 11 leave beside the run record (their own writers:
#: ``mtbc.finetune.report.write_record``, ``mtbc.robustness.record.write_record``).
RUN_FILES = {"finetune": "finetune.json", "robustness": "robustness.json"}


def run_files(run_record: str | None) -> dict[str, dict | None]:
    """``{"finetune": ..., "robustness": ...}``: the records notebooks 09 and 11 left beside
    ``run_record`` (``None`` for a file that is absent or not one of theirs)."""
    out: dict[str, dict | None] = {k: None for k in RUN_FILES}
    if run_record is None:
        return out
    for key, name in RUN_FILES.items():
        try:
            data = json.loads((Path(run_record).parent / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            out[key] = data
    return out


def run_files_note(evidence: Evidence) -> str:
    """One sentence: which of notebooks 09 and 11 left results the fine-tuning and stability
    claims are decided from."""
    found = {"09 (fine-tuning)": evidence.finetune, "11 (robustness)": evidence.robustness}
    have = [k for k, v in found.items() if v is not None]
    lacking = [k for k, v in found.items() if v is None]
    text = (f"Notebook{'s' if len(have) > 1 else ''} {' and '.join(have)} of this run left "
            f"results: their claims are decided from them." if have else "")
    if lacking:
        text += (f" Notebook{'s' if len(lacking) > 1 else ''} {' and '.join(lacking)} left no "
                 f"results for this notebook (not run, or run after it: notebooks run in "
                 f"number order); their claims are not testable here.")
    return text.strip()


def evidence_from_study(study, *, compute: Mapping[str, Any] | None = None,
                        run_record: str | None = None, seed: int = 0, n_splits: int = 5,
                        n_boot: int = 1000) -> Evidence:
    """Gather the audit's evidence for a run: architecture facts (the real 330M config when
    its snapshot is on this machine), 07's compute rows, per-track statistics (last layer)
    and the accuracy of MERT, VGGish, their concatenation and their paired difference on the
    run's tracks (from ``results.csv`` beside the run record when present, else computed
    here with :func:`mtbc.study.compare.compare_systems`), and what notebooks 09 and 11 of
    the run measured (:func:`run_files`)."""
    meta = study.metadata()
    mert, vgg = _mert_label(meta), _vggish_label(meta)
    config, source = None, None
    if mert is not None and meta[mert].get("hidden_size") == 1024 \
            and meta[mert].get("weights_kind") == "pretrained":
        ext = study.models[mert]
        config = ext.config
        source = f"config.json of {ext.snapshot.model_id} @ {ext.snapshot.commit[:12]}"
    ev = Evidence(facts=architecture_facts(config, source), collection=study.collection.source,
                  compute=list((compute or {}).get("rows", [])),
                  repo_root=Path(__file__).resolve().parents[2], **run_files(run_record))
    labels = {k: v for k, v in (("mert", mert), ("vggish", vgg)) if v is not None}
    for key, label in labels.items():
        ev.weights[key] = meta[label].get("weights_kind", "unknown")
        ext = study.models[label]
        tracks, X = load_embeddings(study.tracks, study.store, ext.fingerprint)
        if not len(tracks):
            continue
        last = X.shape[1] - 1
        _, (segments, index) = load_embeddings(tracks, study.store, ext.fingerprint,
                                               layers=[last], reduce=None)
        ev.stats[key] = stats.track_stats(segments, index, tracks, model=label, layer=0)
    if not labels:
        return ev
    csv = Path(run_record).parent / "results.csv" if run_record else None
    names = {key: system_name(label, "linear") for key, label in labels.items()}
    if len(labels) == 2:
        names["ensemble"] = system_name(f"concat({mert} + {vgg})", "linear")
    if csv is not None and csv.is_file():
        try:
            ev.accuracy.update(_results_csv(csv, names))
        except (KeyError, ValueError):
            pass
    if not all(k in ev.accuracy for k in names):
        sub = Study(study.collection, study.store, {v: study.models[v] for v in labels.values()},
                    study.reuse_dir)
        comp = compare_systems(sub, ensembles=[list(labels.values())] if len(labels) == 2
                               else [], seed=seed, n_splits=n_splits, n_boot=n_boot)
        by_name = {r.name: r for r in comp.systems}
        for key, name in names.items():
            if name in by_name:
                ev.accuracy[key] = _ci(by_name[name])
        if len(labels) == 2 and names["mert"] in by_name and names["vggish"] in by_name:
            a, b = by_name[names["mert"]].predictions, by_name[names["vggish"]].predictions
            joined = a.join(b, lsuffix="_m", rsuffix="_v", how="inner")
            diff = ((joined["predicted_m"] == joined["label_m"]).astype(float)
                    - (joined["predicted_v"] == joined["label_v"]).astype(float)).to_numpy()
            groups = joined["group_m"].to_numpy() if "group_m" in joined else None
            low, high = bootstrap_mean_ci(diff, groups=groups, n_boot=n_boot, seed=seed)
            ev.accuracy["margin"] = (float(np.mean(diff)), float(low), float(high), len(diff))
    return ev
