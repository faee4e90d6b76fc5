"""What the numbered notebooks compute, one call per step, so the notebooks stay thin.

- :func:`open_study`: the scanned collection, the cache and the run's extractors.
- :func:`describe_model` (notebook 03): per-track and per-label statistics, similarity,
  projections and label separability of one model (:class:`ModelDescription`).
- :func:`classify_models` (04): linear and MLP probes per model; the probe that represents a
  model is chosen by **validation** accuracy only (:func:`validation_accuracy`).
- :func:`save_final_models` (04): one probe per model refit on every labelled track.
- :func:`compare_systems` (05): single models, concatenation and late fusion on the same tracks
  and folds, paired tests, the system chosen on validation data and the answer sentence.

Nothing here is chosen by looking at test data: test results of every candidate are returned
in full, and every choice reads validation scores (``docs/protocol.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc import config
from mtbc.analysis import stats
from mtbc.analysis.ensemble import evaluate_early_fusion, late_fusion
from mtbc.analysis.protocol import evaluate_majority, evaluate_probe
from mtbc.analysis.results import ProbeResult, compare
from mtbc.cache.store import EmbeddingStore, load_aligned, load_embeddings
from mtbc.data.collection import Collection, open_collection
from mtbc.data.splits import fold_count, has_predefined_split
from mtbc.extractors import Extractor, build_extractors


@dataclass
class Study:
    """A run as notebooks see it: the scanned ``collection``, the embedding ``store`` and the
    run's ``models`` (label -> extractor, not loaded until used)."""

    collection: Collection
    store: EmbeddingStore
    models: dict[str, Extractor]

    @property
    def tracks(self) -> pd.DataFrame:
        return self.collection.tracks

    def metadata(self) -> dict[str, dict]:
        """Label -> extractor metadata (weights, revision, fingerprint)."""
        return {label: ext.metadata() for label, ext in self.models.items()}


def open_study(collection: str, extractors: dict, *, cache_dir: str | None = None) -> Study:
    """The run's collection (cached scan), embedding store and extractors."""
    return Study(open_collection(collection, cache_dir=cache_dir, progress=False),
                 EmbeddingStore(config.cache_dir(cache_dir)), build_extractors(extractors))


# -------------------------------------------------------------------------- 03: describe

@dataclass
class ModelDescription:
    """Notebook 03's view of one model at one ``layer`` (of ``n_layers``, ``dim`` wide):
    ``per_track`` statistics (mean, std, min, max, range over segments and dimensions),
    their ``per_label`` means, the track x track cosine ``similarity`` (tracks sorted by
    label, ``similarity_labels`` in the same order), 2-D ``projections`` (``pca``, ``tsne``)
    and the label ``separability`` at every layer."""

    label: str
    layer: int
    n_layers: int
    dim: int
    per_track: pd.DataFrame
    per_label: pd.DataFrame
    similarity: pd.DataFrame
    similarity_labels: pd.Series
    projections: dict[str, pd.DataFrame]
    separability: pd.DataFrame

    @property
    def n_tracks(self) -> int:
        return len(self.per_track)


def describe_model(study: Study, label: str, *, layer: int | None = None,
                   seed: int = 0) -> ModelDescription:
    """Describe model ``label``'s embeddings at ``layer`` (``None``: the last layer)."""
    ext = study.models[label]
    tracks, X = load_embeddings(study.tracks, study.store, ext.fingerprint)
    n_layers, dim = X.shape[1:]
    k = n_layers - 1 if layer is None else int(layer)
    if not 0 <= k < n_layers:
        raise ValueError(f"layer {layer} does not exist: {label} has {n_layers} layers")
    _, (segments, index) = load_embeddings(tracks, study.store, ext.fingerprint, layers=[k],
                                           reduce=None)
    per_track = stats.track_stats(segments, index, tracks, model=label, layer=0)
    per_track["layer"] = k
    per_label = per_track.groupby("label")[["n_segments", "mean", "std", "min", "max",
                                            "range"]].mean()
    order = tracks.sort_values(["label", "track_id"]).index
    sim = stats.cosine_similarity_matrix(X[order], tracks.loc[order], layer=k)
    projections = {m: stats.project_2d(X, tracks, method=m, layer=k, seed=seed)
                   for m in ("pca", "tsne")}
    return ModelDescription(
        label=label, layer=k, n_layers=n_layers, dim=dim, per_track=per_track,
        per_label=per_label, similarity=sim,
        similarity_labels=tracks.loc[order, "label"].reset_index(drop=True),
        projections=projections,
        separability=stats.layer_separability(X, tracks["label"]).assign(model=label))


def separability_summary(descriptions: list[ModelDescription]) -> pd.DataFrame:
    """Each model at its layer of best silhouette (descriptive geometry, not a choice that any
    later result depends on)."""
    rows = []
    for d in descriptions:
        s = d.separability
        rows.append(s.loc[s["silhouette"].idxmax()] if s["silhouette"].notna().any()
                    else s.iloc[-1])
    columns = ["layer", "silhouette", "ratio", "n_tracks", "n_classes", "note"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows).set_index("model")[columns]


# -------------------------------------------------------------------------- 04: classify

@dataclass(frozen=True)
class ClassificationPlan:
    """The labelled ``tracks`` a probe can use, the number of outer folds, and ``why_not``
    (``None`` when probes can be evaluated)."""

    tracks: pd.DataFrame
    n_folds: int
    why_not: str | None

    @property
    def predefined(self) -> bool:
        return self.why_not is None and has_predefined_split(self.tracks)

    def describe(self) -> str:
        n = f"{len(self.tracks)} labelled tracks in {self.tracks['label'].nunique()} labels; "
        if self.why_not:
            return n + f"**no classification**: {self.why_not}."
        if self.predefined:
            return n + "predefined train/valid/test split."
        return n + f"{self.n_folds}-fold stratified group cross-validation."


def plan_classification(tracks: pd.DataFrame, *, n_splits: int = 5) -> ClassificationPlan:
    """Which tracks and how many folds; without a predefined split the folds are capped by
    the smallest label (each test fold must hold every label)."""
    labelled = tracks.loc[tracks["label"].notna()].reset_index(drop=True)
    counts = labelled["label"].value_counts()
    if len(counts) < 2:
        return ClassificationPlan(labelled, 0, f"{len(counts)} label(s) among {len(labelled)} "
                                               f"labelled tracks: classification needs at "
                                               f"least 2 labels")
    if has_predefined_split(labelled):
        return ClassificationPlan(labelled, n_splits, None)
    folds = fold_count(labelled["label"], n_splits)
    if folds < 2:
        small = ", ".join(counts[counts < 2].index.astype(str))
        return ClassificationPlan(labelled, 0, f"label(s) {small} have a single track: "
                                               f"cross-validation needs at least 2 tracks per "
                                               f"label")
    return ClassificationPlan(labelled, folds, None)


def validation_accuracy(result: ProbeResult) -> float:
    """The validation accuracy behind a result's choices: the mean over outer folds of the
    chosen candidate's validation accuracy, weighted by validation tracks. NaN when the
    result has none (late fusion averages probabilities and chooses nothing)."""
    folds = result.folds
    if "val_accuracy" not in folds or "model" in folds or not len(folds):
        return float("nan")
    weights = folds["n_valid"].to_numpy(float)
    values = folds["val_accuracy"].to_numpy(float)
    return float(np.average(values, weights=weights)) if weights.sum() else float("nan")


def choose_by_validation(results: list[ProbeResult]) -> ProbeResult | None:
    """The result with the best :func:`validation_accuracy` (ties: the earlier one); ``None``
    when no result has a validation score. Test scores are never read."""
    scored = [(validation_accuracy(r), i, r) for i, r in enumerate(results)]
    scored = [s for s in scored if np.isfinite(s[0])]
    if not scored:
        return None
    return max(scored, key=lambda s: (s[0], -s[1]))[2]


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
                    n_boot: int = 1000, protocol: str = "default") -> Classification:
    """Evaluate every probe on every model (same folds for all); pick each model's
    representative probe by validation accuracy. Multi-layer models also get each layer's
    held-out test accuracy, for display only. ``protocol="marble"`` runs MARBLE's MLP probe
    (predefined split only) in place of ``probes``."""
    plan = plan_classification(study.tracks, n_splits=n_splits)
    out = Classification(plan)
    if plan.why_not:
        return out
    for label, ext in study.models.items():
        sub, (feats, index) = load_embeddings(plan.tracks, study.store, ext.fingerprint,
                                              reduce=None)
        out.segments[label] = (sub, feats, index)
        names = ["marble"] if protocol == "marble" else probes
        for probe in names:
            out.results[label, probe] = evaluate_probe(
                feats, index, sub, probe="mlp" if probe == "marble" else probe, seed=seed,
                n_splits=plan.n_folds, n_boot=n_boot, fingerprint=ext.fingerprint,
                name=f"{label} · {probe}", protocol=protocol,
                per_layer_test=feats.shape[1] > 1 and probe == "linear")
        chosen = choose_by_validation([out.results[label, p] for p in names])
        if chosen is not None:
            out.representative[label] = chosen
    out.baseline = evaluate_majority(plan.tracks, seed=seed, n_splits=plan.n_folds,
                                     n_boot=n_boot)
    return out


def save_final_models(study: Study, classification: Classification, *, out_dir: str | Path,
                      extractors: dict, seed: int = 0) -> pd.DataFrame:
    """Refit each model's linear probe on every labelled track and save it for
    ``mtbc predict``; one row per saved model with the full command line."""
    from mtbc.analysis.predict import save_bundle, train_final_probe

    out_dir = Path(out_dir)
    rows = []
    for label, (sub, feats, index) in classification.segments.items():
        bundle = train_final_probe(feats, index, sub, extractor=study.models[label],
                                   extractor_options=extractors[label], probe="linear",
                                   seed=seed, n_splits=classification.plan.n_folds)
        path = save_bundle(bundle, out_dir / f"{label}.npz")
        rows.append({"model": label, "layer": bundle.layer, "classes": len(bundle.classes),
                     "classify new songs with": f"mtbc predict {path} song1.mp3 song2.wav"})
    return pd.DataFrame(rows, columns=["model", "layer", "classes",
                                       "classify new songs with"]).set_index("model")


def default_models_dir(run: str) -> Path:
    """Where a run's trained probes go: ``data/models/<run>``."""
    return config.data_dir() / "models" / run


# -------------------------------------------------------------------------- 05: compare

def default_ensembles(models: dict[str, Extractor]) -> list[list[str]]:
    """The learned models together, then every model; each fused set once, two or more."""
    learned = [label for label, ext in models.items() if ext.name != "mfcc"]
    out: list[list[str]] = []
    for combo in (learned, list(models)):
        if len(combo) > 1 and combo not in out:
            out.append(combo)
    return out


@dataclass
class Comparison:
    """Notebook 05's results on the tracks every model embedded (``tracks``; ``n_left_out``
    others): every ``system``, the pairwise ``tests`` (Holm-adjusted), the system
    ``chosen`` on validation data, and the ``answer`` sentence."""

    plan: ClassificationPlan
    tracks: pd.DataFrame | None = None
    n_left_out: int = 0
    ensembles: list[list[str]] = field(default_factory=list)
    systems: list[ProbeResult] = field(default_factory=list)
    tests: pd.DataFrame | None = None
    chosen: ProbeResult | None = None
    answer: str = ""
    baseline: ProbeResult | None = None

    def all_results(self) -> list[ProbeResult]:
        """Every system, the majority-class baseline last."""
        return [*self.systems, *([self.baseline] if self.baseline else [])]

    def describe(self) -> str:
        combos = ", ".join(" + ".join(c) for c in self.ensembles) or "none (one model)"
        return (f"{len(self.tracks)} tracks embedded by every model ({self.n_left_out} left "
                f"out); ensembles: {combos}.")


def compare_systems(study: Study, *, ensembles: list[list[str]] | None = None, seed: int = 0,
                    n_splits: int = 5, n_boot: int = 1000,
                    protocol: str = "default") -> Comparison:
    """Every model alone (linear probe; MARBLE's MLP with ``protocol="marble"``),
    concatenation (linear probe) and late fusion of each ensemble, on the same tracks and
    folds; paired tests; the validation-chosen system; the answer."""
    plan = plan_classification(study.tracks, n_splits=n_splits)
    out = Comparison(plan, ensembles=ensembles if ensembles is not None
                     else default_ensembles(study.models))
    if plan.why_not:
        out.answer = f"No comparison: {plan.why_not}."
        return out
    common, blocks = load_aligned(plan.tracks, study.store,
                                  {label: e.fingerprint for label, e in study.models.items()})
    out.tracks, out.n_left_out = common, len(plan.tracks) - len(common)
    singles = {label: evaluate_probe(*blocks[label], common, probe="linear", seed=seed,
                                     n_splits=plan.n_folds, n_boot=n_boot, name=label,
                                     fingerprint=study.models[label].fingerprint,
                                     protocol=protocol)
               for label in study.models}
    out.systems = list(singles.values())
    for combo in out.ensembles:
        name = " + ".join(combo)
        out.systems.append(evaluate_early_fusion({m: blocks[m] for m in combo}, common,
                                                 seed=seed, n_splits=plan.n_folds,
                                                 n_boot=n_boot, name=f"concat({name})"))
        out.systems.append(late_fusion([singles[m] for m in combo], name=f"late({name})"))
    if len(out.systems) > 1:
        out.tests = compare(out.systems)
    out.chosen = choose_by_validation(out.systems)
    out.answer = answer_sentence(out.systems, out.tests, out.chosen)
    out.baseline = evaluate_majority(common, seed=seed, n_splits=plan.n_folds, n_boot=n_boot)
    return out


def _pct_ci(result: ProbeResult) -> str:
    m = result.metrics.set_index("metric").loc["accuracy"]
    return (f"{100 * m['value']:.1f}% test accuracy (95% CI {100 * m['ci_low']:.1f} to "
            f"{100 * m['ci_high']:.1f}, n = {result.n_tracks} tracks)")


def answer_sentence(systems: list[ProbeResult], tests: pd.DataFrame | None,
                    chosen: ProbeResult | None) -> str:
    """The answer, led by the system chosen on validation data; it says plainly when that
    system is not significantly better than the others (Holm-adjusted paired tests)."""
    if not systems:
        return "No system could be evaluated."
    if chosen is None:
        chosen = systems[0]
    if len(systems) == 1 or tests is None or not len(tests):
        return f"Only **{chosen.name}** was evaluated: {_pct_ci(chosen)}."
    mine = tests[(tests["system_a"] == chosen.name) | (tests["system_b"] == chosen.name)]
    better, not_better, worse = [], [], []
    for row in mine.itertuples():
        other = row.system_b if row.system_a == chosen.name else row.system_a
        diff = row.accuracy_a - row.accuracy_b
        diff = diff if row.system_a == chosen.name else -diff
        (better if row.p_holm < 0.05 and diff > 0 else
         worse if row.p_holm < 0.05 else not_better).append(other)
    any_sig = bool((tests["p_holm"] < 0.05).any())
    lead = (f"**{chosen.name}**, the system chosen on validation data, reached "
            f"{_pct_ci(chosen)}")
    if not any_sig:
        return (f"No system is significantly better than another (Holm-adjusted paired tests, "
                f"all p ≥ 0.05). {lead}.")
    parts = []
    if better:
        parts.append(f"it is significantly better than {', '.join(better)} (p < 0.05)")
    if worse:
        parts.append(f"significantly worse than {', '.join(worse)} (p < 0.05)")
    if not_better:
        parts.append(f"not significantly different from {', '.join(not_better)} (p ≥ 0.05)")
    if not better and not worse:
        parts[-1] = "it is " + parts[-1]
    return f"{lead}; " + "; ".join(parts) + " (Holm-adjusted paired tests)."


def comparison_matrix(tests: pd.DataFrame, names: list[str], *, value: str = "p_holm"
                      ) -> pd.DataFrame:
    """A square system x system table of one column of the pairwise tests (symmetric;
    diagonal NaN), for a heat map in place of a long list."""
    mat = pd.DataFrame(np.nan, index=pd.Index(names, name="system"), columns=names)
    for row in tests.itertuples():
        v = getattr(row, value)
        mat.loc[row.system_a, row.system_b] = v
        mat.loc[row.system_b, row.system_a] = v
    return mat


def accuracy_difference_matrix(systems: list[ProbeResult]) -> pd.DataFrame:
    """Row system's test accuracy minus column system's, in percentage points."""
    acc = {r.name: r.metric() for r in systems}
    names = list(acc)
    return pd.DataFrame([[100 * (acc[a] - acc[b]) if a != b else np.nan for b in names]
                         for a in names], index=pd.Index(names, name="system"), columns=names)



# -------------------------------------------------------------------------- musicnn's own tags

@dataclass
class AutoTags:
    """musicnn's own tag predictions for every track (``scores``: track x tag, the mean of
    its patches' sigmoid outputs; ``top``: each track's ``top_k`` tags with probabilities)."""

    label: str
    model: str
    scores: pd.DataFrame
    top: pd.DataFrame


def musicnn_labels(study: Study) -> list[str]:
    """Labels of the run's musicnn extractors (whose models have their own tags)."""
    return [label for label, ext in study.models.items() if ext.name == "musicnn"]


def auto_tags(study: Study, label: str, *, top_k: int = 5) -> AutoTags:
    """The tags musicnn model ``label`` predicts for each track (cached like embeddings)."""
    from mtbc.cache.extract import extract_collection
    from mtbc.extractors.musicnn import MusicnnExtractor

    ext = study.models[label]
    tagger = MusicnnExtractor(model=ext.model_name, layer="tags", device=ext.device)
    extract_collection(study.tracks, tagger, study.store, progress=False)
    tracks, X = load_embeddings(study.tracks, study.store, tagger.fingerprint)
    scores = pd.DataFrame(X[:, 0, :], index=pd.Index(tracks["track_id"], name="track_id"),
                          columns=tagger.tag_names)
    top = []
    for (tid, row), lab in zip(scores.iterrows(), tracks["label"], strict=True):
        best = row.nlargest(top_k)
        top.append({"track_id": tid, "label": lab,
                    "top tags (probability %)": ", ".join(f"{t} ({100 * p:.0f})"
                                                          for t, p in best.items())})
    return AutoTags(label=label, model=ext.model_name, scores=scores,
                    top=pd.DataFrame(top).set_index("track_id"))
