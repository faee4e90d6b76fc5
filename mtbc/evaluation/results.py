"""What an evaluation returns: one result type per task, each carrying its provenance.

- :class:`Provenance`: how a result was made (task, system, probe, layer request, selection,
  split, seed, bootstrap resamples, fingerprints, options). Results hold it once and expose
  its fields as read-only attributes (``result.probe``, ``result.split``...).
- :class:`Result`: the common part: ``folds`` (one row per outer fold: the choices made on
  validation and the track counts), ``layer_scores`` (validation score per candidate) and
  ``metrics`` (``metric, value, ci_low, ci_high, n_tracks, n_groups``).
- :class:`ProbeResult` (classification): per-track ``predictions`` and ``probabilities``,
  ``confusion``; :class:`TaggingResult` (tagging): per-track ``scores`` and ``truth``,
  ``per_tag`` AUCs. Both keep each track's ``group``, the unit of the bootstrap and of the
  paired tests (:func:`compare`, :func:`mtbc.stats.multilabel_paired_test`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mtbc.evaluation.memo import keepable
from mtbc.stats import (
    bootstrap_mean_ci,
    confusion_frame,
    fold_ranks,
    metrics_table,
    pairwise_tests,
    tagging_metrics_table,
)

#: ``Provenance.system`` of the systems mtbc evaluates.
PROBE, CONCATENATION, LATE_FUSION = "probe", "concatenation", "late fusion"
MAJORITY, MARBLE, ZERO_SHOT = "majority", "marble", "zero-shot"


def layer_text(layer: Any) -> str:
    """A chosen layer, or one per model for fused systems (``mert 7 + vggish 0``)."""
    if isinstance(layer, Mapping):
        return " + ".join(f"{model} {value}" for model, value in layer.items())
    return str(layer)


@dataclass(frozen=True)
class Provenance:
    """How a result was made.

    ``task``: ``"classification"`` or ``"tagging"``; ``system``: :data:`PROBE`,
    :data:`CONCATENATION`, :data:`LATE_FUSION`, :data:`MAJORITY`, :data:`MARBLE` or
    :data:`ZERO_SHOT`; ``probe``: the probe (``linear``, ``mlp``...); ``layer``: the layer
    asked for (``"select"``, an int, ``"mean"``, or one per model); ``selection`` /
    ``scorer``: what ranked the layers; ``split``: the folds, in words.
    """

    name: str
    task: str
    system: str
    probe: str
    layer: Any
    selection: str
    scorer: str
    split: str
    seed: int = 0
    n_boot: int = 1000
    fingerprint: Any = None
    params: dict = field(default_factory=dict)


@keepable
@dataclass
class FoldRecord:
    """One outer fold: the chosen ``layer`` and hyperparameter (``param`` = ``value``), the
    validation score of that choice (``val_score``) and of the layer's ranking
    (``layer_val_score``), track counts and convergence warnings. ``None``: not applicable
    (nothing chosen, as for the majority baseline)."""

    fold: str
    layer: Any
    param: str
    value: Any
    n_train: int
    n_test: int
    val_score: float | None = None
    layer_val_score: float | None = None
    n_valid: int | None = None
    convergence_warnings: int = 0

    def row(self, metric: str) -> dict:
        """The ``folds`` table row; the scores are named ``val_<metric>`` and
        ``layer_val_<metric>``."""
        row = {"fold": self.fold, "layer": self.layer, "param": self.param, "value": self.value}
        if self.val_score is not None:
            row[f"val_{metric}"] = self.val_score
        if self.layer_val_score is not None:
            row[f"layer_val_{metric}"] = self.layer_val_score
        row["n_train"] = self.n_train
        if self.n_valid is not None:
            row["n_valid"] = self.n_valid
        row["n_test"] = self.n_test
        row["convergence_warnings"] = self.convergence_warnings
        return row


@keepable
@dataclass
class FoldOutcome:
    """What the fold loop returns: the test ``rows`` (track positions) with their ``scores``
    (class probabilities or tag scores) and ``fold_names``; one :class:`FoldRecord` per outer
    fold; the validation (``layer_records``) and test (``test_records``) evidence per
    candidate, for the layer curve."""

    rows: np.ndarray
    scores: np.ndarray
    fold_names: list
    records: list[FoldRecord]
    layer_records: dict
    test_records: dict

    def folds_table(self, metric: str) -> pd.DataFrame:
        return pd.DataFrame([r.row(metric) for r in self.records])


@dataclass
class Result:
    """Common part of every result: its :class:`Provenance` (fields readable as
    attributes), ``folds``, ``layer_scores`` and ``metrics``."""

    provenance: Provenance
    folds: pd.DataFrame
    layer_scores: pd.DataFrame
    metrics: pd.DataFrame

    MAIN_METRIC: ClassVar[str] = "accuracy"
    VAL_COLUMN: ClassVar[str] = "val_accuracy"

    name = property(lambda self: self.provenance.name)
    task = property(lambda self: self.provenance.task)
    system = property(lambda self: self.provenance.system)
    probe = property(lambda self: self.provenance.probe)
    layer = property(lambda self: self.provenance.layer)
    selection = property(lambda self: self.provenance.selection)
    split = property(lambda self: self.provenance.split)
    seed = property(lambda self: self.provenance.seed)
    n_boot = property(lambda self: self.provenance.n_boot)
    fingerprint = property(lambda self: self.provenance.fingerprint)
    params = property(lambda self: self.provenance.params)

    def metric(self, name: str | None = None) -> float:
        """One metric's value (default: accuracy, or macro ROC-AUC for tagging)."""
        return float(self.metrics.set_index("metric").loc[name or self.MAIN_METRIC, "value"])

    def validation_score(self) -> float:
        """The validation score behind the result's choices: the mean over outer folds of
        the chosen candidate's validation score, weighted by validation tracks. NaN when
        nothing was chosen (late fusion averages scores; baselines; zero-shot)."""
        f = self.folds
        if self.system == LATE_FUSION or self.VAL_COLUMN not in f or not len(f):
            return float("nan")
        w = f["n_valid"].to_numpy(float)
        v = f[self.VAL_COLUMN].to_numpy(float)
        ok = np.isfinite(v) & (w > 0)
        return float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")

    def chosen_layers(self) -> str:
        """The layer chosen in each outer fold, counted: ``7 (x4), 8 (x1)``; one per model
        for fused systems (``mert 7 + vggish 0 (x5)``); ``-`` without folds."""
        folds = self.folds
        if not len(folds) or "layer" not in folds:
            return "-"
        texts = [layer_text(v) for v in folds["layer"]]
        if self.system == LATE_FUSION:  # each member's own choices
            texts = [f"{m} {t}" for m, t in zip(folds["model"], texts, strict=True)]
        counts = pd.Series(texts).value_counts()
        return ", ".join(f"{k} (x{v})" for k, v in counts.items())

    @property
    def protocol(self) -> str:
        """How the figures were made, in words (``results.csv``'s ``protocol`` column)."""
        return self.split


@dataclass
class ProbeResult(Result):
    """Out-of-fold (or test-split) track predictions of one classification system.

    ``predictions``: index ``track_id``; columns ``label, predicted, correct, fold, group``.
    ``probabilities``: same index, one column per class (mean of segment probabilities).
    ``folds``: one row per outer fold: chosen ``layer``, ``param``/``value`` (``C`` or
    ``epochs``), ``val_accuracy`` of the choice, track counts.
    ``layer_scores``: validation accuracy per candidate layer (``layer`` is an int or
    ``"mean"``) with a bootstrap 95% CI over validation tracks, and which ``scorer`` measured it.
    ``metrics``: ``metric, value, ci_low, ci_high, n_tracks, n_groups`` on the predicted tracks.
    """

    predictions: pd.DataFrame = None
    probabilities: pd.DataFrame = None
    confusion: pd.DataFrame = None
    classes: list = field(default_factory=list)

    @property
    def n_tracks(self) -> int:
        return len(self.predictions)

    def __repr__(self) -> str:
        acc = self.metrics.set_index("metric").loc["accuracy"]
        return (f"ProbeResult({self.name!r}: accuracy {acc.value:.3f} "
                f"[{acc.ci_low:.3f}, {acc.ci_high:.3f}] on {self.n_tracks} tracks, "
                f"{self.probe} probe, layer={self.layer!r}, seed={self.seed}; {self.split})")

    def summary(self) -> dict:
        """One row for a comparison table (metrics with CIs, plus how the result was made)."""
        row: dict[str, Any] = {"system": self.name}
        for r in self.metrics.itertuples():
            row[r.metric] = r.value
            row[f"{r.metric}_ci_low"] = r.ci_low
            row[f"{r.metric}_ci_high"] = r.ci_high
        row.update({"probe": self.probe, "layer": self.layer,
                    "chosen_layers": self.chosen_layers(),
                    "selection": self.selection, "n_tracks": self.n_tracks, "seed": self.seed,
                    "split": self.split, "fingerprint": self.fingerprint})
        return row


@dataclass
class TaggingResult(Result):
    """Out-of-fold (or test-split) tag scores of one tagging system.

    ``scores``: index ``track_id``, one column per tag (mean of segment probabilities);
    ROC-AUC and PR-AUC are computed on their within-fold ranks
    (:func:`mtbc.stats.fold_ranks`). ``truth``: same shape, 1 / 0, NaN where unknown
    (masked). ``groups`` / ``fold``: per track. ``metrics``: ``roc_auc_macro, pr_auc_macro,
    roc_auc_micro, top1, top3`` with group-bootstrap CIs. ``per_tag``: ROC-AUC, PR-AUC and
    known counts per tag. ``folds``: per outer fold the chosen ``layer``, ``param`` /
    ``value``, ``val_roc_auc`` and track counts. ``layer_scores``: validation macro ROC-AUC
    per candidate layer, averaged over folds.
    """

    tags: list = field(default_factory=list)
    scores: pd.DataFrame = None
    truth: pd.DataFrame = None
    groups: pd.Series = None
    fold: pd.Series = None
    per_tag: pd.DataFrame = None

    MAIN_METRIC: ClassVar[str] = "roc_auc_macro"
    VAL_COLUMN: ClassVar[str] = "val_roc_auc"

    @property
    def mask(self) -> np.ndarray:
        return self.truth.notna().to_numpy()

    @property
    def n_tracks(self) -> int:
        return len(self.scores)

    @property
    def protocol(self) -> str:
        return f"{self.probe}; {self.split}"

    def metric_scores(self) -> np.ndarray:
        """The scores ROC-AUC / PR-AUC are computed on: :func:`fold_ranks` of ``scores``."""
        return fold_ranks(self.scores.to_numpy(), self.fold.to_numpy())

    def __repr__(self) -> str:
        m = self.metrics.set_index("metric").loc["roc_auc_macro"]
        return (f"TaggingResult({self.name!r}: macro ROC-AUC {m.value:.3f} "
                f"[{m.ci_low:.3f}, {m.ci_high:.3f}] on {self.n_tracks} tracks, "
                f"{len(self.tags)} tags, {self.probe}; {self.split})")


def classification_result(track_ids: np.ndarray, groups: np.ndarray, classes: list,
                          truth_codes: np.ndarray, outcome: FoldOutcome, how: Provenance,
                          layer_scores: pd.DataFrame) -> ProbeResult:
    """Track predictions, probabilities and metrics with CIs of one classification system
    (``track_ids`` / ``groups`` / ``truth_codes`` of ``outcome.rows``)."""
    cls = np.asarray(classes, dtype=object)
    truth = cls[truth_codes]
    predicted = cls[outcome.scores.argmax(axis=1)]
    index = pd.Index(track_ids, name="track_id")
    predictions = pd.DataFrame({"label": truth, "predicted": predicted,
                                "correct": truth == predicted, "fold": outcome.fold_names,
                                "group": groups}, index=index)
    probabilities = pd.DataFrame(outcome.scores, index=index,
                                 columns=pd.Index(classes, name="class"))
    return ProbeResult(
        provenance=how, folds=outcome.folds_table("accuracy"), layer_scores=layer_scores,
        metrics=metrics_table(truth, predicted, groups=groups, n_boot=how.n_boot,
                              seed=how.seed),
        predictions=predictions, probabilities=probabilities,
        confusion=confusion_frame(truth, predicted, labels=list(classes)),
        classes=list(classes))


@dataclass(frozen=True)
class TagScores:
    """Tag scores of some tracks: ``track_ids (n,)``, truth ``Y (n, T)`` (1 / 0, anything
    where unknown), scores ``S (n, T)``, ``mask (n, T)`` (True where known), ``groups (n,)``
    and ``fold (n,)`` (the fold that scored each track)."""

    track_ids: Any
    Y: np.ndarray
    S: np.ndarray
    mask: np.ndarray
    groups: Any
    fold: Any


def tagging_result(scores: TagScores, tags: list, how: Provenance, *,
                   folds: pd.DataFrame | None = None,
                   layer_scores: pd.DataFrame | None = None) -> TaggingResult:
    """Assemble a :class:`TaggingResult` (metrics, CIs and per-tag table computed here)."""
    mask = scores.mask
    index = pd.Index(list(scores.track_ids), name="track_id")
    columns = pd.Index(list(tags), name="tag")
    Y = np.where(mask, scores.Y, np.nan)
    metrics, raw = tagging_metrics_table(Y, scores.S, mask, fold=scores.fold,
                                         groups=scores.groups, n_boot=how.n_boot, seed=how.seed)
    per_tag = pd.DataFrame({"roc_auc": raw["per_tag_roc_auc"], "pr_auc": raw["per_tag_pr_auc"],
                            "positive": ((Y == 1) & mask).sum(axis=0),
                            "negative": ((Y == 0) & mask).sum(axis=0),
                            "unknown": (~mask).sum(axis=0)}, index=columns)
    return TaggingResult(
        provenance=how, folds=pd.DataFrame() if folds is None else folds,
        layer_scores=pd.DataFrame() if layer_scores is None else layer_scores, metrics=metrics,
        tags=list(tags), scores=pd.DataFrame(scores.S, index=index, columns=columns),
        truth=pd.DataFrame(Y, index=index, columns=columns),
        groups=pd.Series(np.asarray(scores.groups), index=index, name="group"),
        fold=pd.Series(list(scores.fold), index=index, name="fold"), per_tag=per_tag)


def layer_score_table(records: dict, test_records: dict, *, n_boot: int, seed: int,
                      scorer: str, groups: np.ndarray | None = None) -> pd.DataFrame:
    """Per candidate: accuracy over (fold, track) pairs and a group-bootstrap CI.

    ``records[key]`` is a list of ``(val_rows, correct)`` over folds; ``test_records`` likewise
    for test tracks (optional). A key is a layer, or ``(model, layer)`` in early fusion.
    ``groups``: group id per track row (resampled as units; ``None``: every track alone).
    """

    def summarise(parts):
        rows = np.concatenate([r for r, _ in parts])
        correct = np.concatenate([c for _, c in parts]).astype(float)
        per_track = pd.Series(correct).groupby(rows).mean()
        g = None if groups is None else np.asarray(groups)[per_track.index.to_numpy()]
        low, high = bootstrap_mean_ci(per_track.to_numpy(), groups=g, n_boot=n_boot, seed=seed)
        return float(correct.mean()), low, high, len(per_track)

    columns = ["layer", "accuracy", "ci_low", "ci_high", "n_tracks", "scorer"]
    out = []
    for key, parts in records.items():
        row = dict(zip(["model", "layer"], key, strict=True)) if isinstance(key, tuple) else {
            "layer": key}
        acc, low, high, n = summarise(parts)
        row.update({"accuracy": acc, "ci_low": low, "ci_high": high, "n_tracks": n,
                    "scorer": scorer})
        if test_records.get(key):
            acc, low, high, n = summarise(test_records[key])
            row.update({"test_accuracy": acc, "test_ci_low": low, "test_ci_high": high,
                        "n_test_tracks": n})
        out.append(row)
    table = pd.DataFrame(out)
    if len(out) == 0:
        return pd.DataFrame(columns=columns)
    lead = (["model"] if "model" in table.columns else []) + columns
    return table[lead + [c for c in table.columns if c not in lead]]


def tag_layer_table(records: dict) -> pd.DataFrame:
    """Per candidate: validation macro ROC-AUC averaged over folds (``n_folds``)."""
    out = []
    for key, values in records.items():
        row = dict(zip(["model", "layer"], key, strict=True)) if isinstance(key, tuple) else {
            "layer": key}
        row.update({"val_roc_auc": float(np.mean(values)), "n_folds": len(values)})
        out.append(row)
    return pd.DataFrame(out)


def compare(results: Sequence[ProbeResult]) -> pd.DataFrame:
    """Paired test between every pair of results, on the tracks all of them predicted, with
    Holm's adjustment across the table. Groups (artist, duplicates) are the unit: McNemar's
    exact test when every group is one track, else a sign-flip permutation test on per-group
    differences (:func:`mtbc.stats.paired_test`)."""
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"results need distinct names to be compared, got {names}")
    truth = results[0].predictions["label"]
    groups = results[0].predictions["group"] if "group" in results[0].predictions else None
    return pairwise_tests({r.name: r.predictions["predicted"] for r in results}, truth,
                          groups=groups, seed=results[0].seed)
