"""What the evaluation protocol returns: :class:`ProbeResult` (built by :func:`build_result` from a
:class:`FoldOutcome` and its :class:`Provenance`), comparison tables, layer curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mtbc.analysis import evaluation
from mtbc.analysis.selection import ProbeData, track_ids
from mtbc.data import splits


def layer_text(layer: Any) -> str:
    """A chosen layer, or one per model for fused systems (``mert 7 + vggish 0``)."""
    if isinstance(layer, Mapping):
        return " + ".join(f"{model} {value}" for model, value in layer.items())
    return str(layer)


@dataclass
class ProbeResult:
    """Out-of-fold (or test-split) track predictions of one system, with how they were made.

    ``predictions``: index ``track_id``; columns ``label, predicted, correct, fold``.
    ``probabilities``: same index, one column per class (mean of segment probabilities).
    ``folds``: one row per outer fold: chosen ``layer``, ``param``/``value`` (``C`` or
    ``epochs``), validation accuracy of the choice, track counts.
    ``layer_scores``: validation accuracy per candidate layer (``layer`` is an int or
    ``"mean"``) with a bootstrap 95% CI over validation tracks, and which ``scorer`` measured it.
    ``metrics``: ``metric, value, ci_low, ci_high`` on the predicted tracks.
    """

    name: str
    predictions: pd.DataFrame
    probabilities: pd.DataFrame
    folds: pd.DataFrame
    layer_scores: pd.DataFrame
    metrics: pd.DataFrame
    confusion: pd.DataFrame
    classes: list
    seed: int
    probe: str
    layer: Any
    selection: str
    split: str
    n_tracks: int
    n_boot: int
    fingerprint: Any = None
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        acc = self.metrics.set_index("metric").loc["accuracy"]
        return (f"ProbeResult({self.name!r}: accuracy {acc.value:.3f} "
                f"[{acc.ci_low:.3f}, {acc.ci_high:.3f}] on {self.n_tracks} tracks, "
                f"{self.probe} probe, layer={self.layer!r}, seed={self.seed}; {self.split})")

    def metric(self, name: str = "accuracy") -> float:
        return float(self.metrics.set_index("metric").loc[name, "value"])

    def chosen_layers(self) -> str:
        """The layer chosen in each outer fold, counted: ``7 (x4), 8 (x1)``; one per model
        for fused systems (``mert 7 + vggish 0 (x5)``); ``-`` without folds."""
        folds = self.folds
        if not len(folds):
            return "-"
        if "model" in folds:  # late fusion: each model's own choices
            texts = [f"{m} {v}" for m, v in zip(folds["model"], folds["layer"], strict=True)]
        else:
            texts = [layer_text(v) for v in folds["layer"]]
        counts = pd.Series(texts).value_counts()
        return ", ".join(f"{k} (x{v})" for k, v in counts.items())

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


def summarize(results: Sequence[ProbeResult]) -> pd.DataFrame:
    """One row per result (see :meth:`ProbeResult.summary`)."""
    return pd.DataFrame([r.summary() for r in results])


def compare(results: Sequence[ProbeResult]) -> pd.DataFrame:
    """Paired test between every pair of results, on the tracks all of them predicted, with
    Holm's adjustment across the table. Groups (artist, duplicates) are the unit: McNemar's
    exact test when every group is one track, else a sign-flip permutation test on per-group
    differences (:func:`mtbc.analysis.evaluation.paired_test`)."""
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"results need distinct names to be compared, got {names}")
    truth = results[0].predictions["label"]
    groups = results[0].predictions["group"] if "group" in results[0].predictions else None
    return evaluation.pairwise_tests({r.name: r.predictions["predicted"] for r in results}, truth,
                                     groups=groups, seed=results[0].seed)


def layer_score_table(records: dict, test_records: dict, n_boot: int, seed: int,
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
        low, high = evaluation.bootstrap_mean_ci(per_track.to_numpy(), groups=g, n_boot=n_boot,
                                                 seed=seed)
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


@dataclass
class FoldOutcome:
    """What :func:`run_folds` returns: the test ``rows`` (track positions) with their
    ``proba`` (track probabilities) and ``fold_names``; one ``fold_rows`` entry per outer fold
    (choice, counts, convergence warnings); the validation (``layer_records``) and test
    (``test_records``) correctness per candidate, for the layer curve."""

    rows: np.ndarray
    proba: np.ndarray
    fold_names: list
    fold_rows: list
    layer_records: dict
    test_records: dict


@dataclass
class Provenance:
    """How a result was made, as :class:`~mtbc.analysis.results.ProbeResult` records it."""

    name: str
    probe: str
    layer: Any
    selection: str
    scorer: str
    split: str
    seed: int = 0
    n_boot: int = 1000
    fingerprint: Any = None
    params: dict = field(default_factory=dict)


def build_result(tracks: pd.DataFrame, data: ProbeData, outcome: FoldOutcome,
                 how: Provenance) -> ProbeResult:
    """Track predictions, probabilities, metrics with CIs and the layer curve of one system."""
    ids = track_ids(tracks)[outcome.rows]
    cls = np.asarray(data.classes, dtype=object)
    truth = cls[data.y[outcome.rows]]
    predicted = cls[outcome.proba.argmax(axis=1)]
    index = pd.Index(ids, name="track_id")
    all_groups = splits.track_groups(tracks)
    groups = all_groups[outcome.rows]
    predictions = pd.DataFrame({"label": truth, "predicted": predicted,
                                "correct": truth == predicted, "fold": outcome.fold_names,
                                "group": groups}, index=index)
    probabilities = pd.DataFrame(outcome.proba, index=index,
                                 columns=pd.Index(data.classes, name="class"))
    return ProbeResult(
        name=how.name, predictions=predictions, probabilities=probabilities,
        folds=pd.DataFrame(outcome.fold_rows),
        layer_scores=layer_score_table(outcome.layer_records, outcome.test_records,
                                       how.n_boot, how.seed, how.scorer, groups=all_groups),
        metrics=evaluation.metrics_table(truth, predicted, groups=groups, n_boot=how.n_boot,
                                         seed=how.seed),
        confusion=evaluation.confusion_frame(truth, predicted, labels=list(data.classes)),
        classes=list(data.classes), seed=how.seed, probe=how.probe, layer=how.layer,
        selection=how.selection, split=how.split, n_tracks=len(outcome.rows),
        n_boot=how.n_boot, fingerprint=how.fingerprint, params=how.params)
