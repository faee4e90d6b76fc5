"""Systems on one model's embeddings, and the evaluation entry points built on them.

- :class:`LayerProbe`: a probe (linear or MLP) on one model's segments, at a layer chosen
  on validation tracks (each layer and the mean of layers) or a fixed one. Segments train
  the probe; a track's prediction is the mean of its segments' predictions.
- :class:`MajorityClass`: the majority-class baseline (no features, no choices).
- :func:`evaluate_probe` / :func:`evaluate_tagging` / :func:`evaluate_majority`: one call
  each, with :class:`ProbeOptions` and :class:`~mtbc.evaluation.engine.EvalOptions` (or
  their fields as keywords).

How candidates are scored (``selection``): ``"probe"``: the probe itself over its whole
grid, for every layer; ``"linear"``: the linear probe ranks the layers, the probe's own
hyperparameter is then chosen on the chosen layer; ``"auto"`` (default): ``"probe"`` for the
linear probe, ``"linear"`` for the MLP; ``"ridge"`` (classification only): a closed-form
ridge classifier ranks the layers (cheaper; the layer curve then shows its accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtbc.evaluation.data import (
    Design,
    candidate_layers,
    check_features,
    layer_view,
    track_means,
)
from mtbc.evaluation.engine import Evaluation, FoldData, FoldPrediction, System, evaluate
from mtbc.evaluation.estimators import mlp_device
from mtbc.evaluation.marble import evaluate_marble
from mtbc.evaluation.memo import digest, encode
from mtbc.evaluation.options import EvalOptions, ProbeOptions, split_options
from mtbc.evaluation.ranking import ridge_predict
from mtbc.evaluation.results import MAJORITY, PROBE, ProbeResult, Provenance, TaggingResult
from mtbc.evaluation.selection import Search, fit_fold, predict_tracks
from mtbc.evaluation.specs import resolve_selection
from mtbc.evaluation.tasks import Classification, Tagging, Task


class LayerProbe(System):
    """A probe on one model's segment ``features (N_seg, n_layers, dim)`` with their
    ``track_index (N_seg,)`` into the task's tracks, configured by :class:`ProbeOptions`."""

    def __init__(self, features, track_index, options: ProbeOptions | None = None):
        self.features, self.track_index = np.asarray(features), np.asarray(track_index)
        self.options = options or ProbeOptions()
        self.uses_torch = self.options.probe == "mlp"
        self.label = f"probe {self.options.probe}"

    def identity(self) -> dict | None:
        o = self.options
        options = {"probe": o.probe, "layer": o.layer, "selection": self.selection,
                   "Cs": list(o.Cs), "probe_params": self.params,
                   "per_layer_test": bool(o.per_layer_test)}
        return probe_identity(self, options, features=digest(self.features, self.track_index))

    def prepare(self, task: Task, options: EvalOptions) -> None:
        o = self.options
        self.seed = options.seed
        self.selection = resolve_selection(o.probe, o.selection, allowed=task.selections)
        if o.per_layer_test and task.name != "classification":
            raise ValueError("per_layer_test is for classification only")
        self.features, self.track_index = check_features(self.features, self.track_index,
                                                         task.tracks)
        task.check_covered(self.track_index)
        self.design = Design(self.track_index, len(task.tracks))
        self.view = layer_view(self.features)
        self.candidates = candidate_layers(o.layer, self.features.shape[1])
        self.params = dict(o.probe_params or {})
        self.means = self.keep = None
        if self.selection == "ridge" and len(self.candidates) > 1:
            # track means once, for the ranking of every fold (ranking module docstring)
            means = track_means(self.features, self.track_index, len(task.tracks))
            self.means = layer_view(means)
            if self.memo is not None:
                self.keep = (self.memo, digest(means))

    def specs(self, task: Task, seed: int):
        spec = task.spec(self.options.probe, seed=seed, params=self.params, Cs=self.options.Cs)
        return spec, spec.ranker(self.selection)

    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        spec, ranker = self.specs(task, self.seed)
        search = Search(task, self.design, self.view, data.inner, self.means, self.keep)
        holdout = early_stopping_holdout(task, data) if spec.kind == "mlp" else None
        probe, lc, pc = fit_fold(search, self.candidates, data.refit_rows, spec, ranker,
                                 holdout)
        test = data.fold.test
        scores = predict_tracks(probe, spec, search, lc.candidate, test)
        tests = {}
        if self.options.per_layer_test and ranker.kind == "ridge":
            # the ranking's own ridge at each layer's validation-chosen strength
            preds = ridge_predict(search.track_means(),
                                  {c: e.value for c, e in lc.by_candidate.items()},
                                  data.refit_rows, test, task.ridge_targets,
                                  classes=task.name == "classification")
            tests = {c: task.test_record(test, p) for c, p in preds.items()}
        elif self.options.per_layer_test:
            segs, _ = self.design.segments(data.refit_rows)
            targets = task.targets(self.design.seg_track[segs])
            for cand, entry in lc.by_candidate.items():
                if cand == lc.candidate:
                    p = scores
                else:
                    other = spec.estimator(entry.value if ranker.kind == spec.kind
                                           else pc.value)
                    spec.fit(other, self.view(cand, segs), targets)
                    p = predict_tracks(other, spec, search, cand, test)
                tests[cand] = task.test_record(test, p)
        return FoldPrediction(
            scores=scores, layer=lc.candidate, param=spec.param, value=pc.value,
            val_score=pc.score, layer_val_score=lc.score, n_valid=len(lc.val_rows),
            layer_records={c: task.record(lc.val_rows, e.score, e.evidence)
                           for c, e in lc.by_candidate.items()},
            test_records=tests,
            n_train=len(holdout[0]) if holdout is not None and ranker.kind != "mlp" else None)

    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        o = self.options
        _, ranker = self.specs(task, options.seed)
        params = {"Cs": list(o.Cs), "n_splits": options.n_splits, "n_inner": options.n_inner,
                  "refit": options.refit, "probe_params": self.params,
                  "n_layers": self.features.shape[1], "dim": self.features.shape[2]}
        if task.name == "classification":
            params["n_segments"] = int(len(self.features))
            name = o.name or f"{o.probe} probe"
        else:
            params["selection"] = o.selection
            name = o.name or f"{o.probe} tagging probe"
        return Provenance(name=name, task=task.name, system=PROBE, probe=o.probe, layer=o.layer,
                          selection=self.selection, scorer=ranker.kind, split=split,
                          seed=options.seed, n_boot=options.n_boot, fingerprint=o.fingerprint,
                          params=params)


#: The MLP's early-stopping holdout: 1 / 10 of a fold's training tracks (scikit-learn's
#: ``validation_fraction``), grouped and stratified; fewer folds when a label is smaller.
EARLY_STOPPING_FOLDS = 10


def early_stopping_holdout(task: Task, data: FoldData) -> tuple[np.ndarray, np.ndarray]:
    """Where the MLP learns and where it stops: a predefined split's train and valid parts;
    else a grouped holdout of :data:`EARLY_STOPPING_FOLDS` of the fold's training tracks."""
    if data.fold.valid is not None:
        return data.inner[0]
    return task.holdout(data.refit_rows, n_splits=EARLY_STOPPING_FOLDS, seed=data.seed + 1)


def probe_identity(system: System, options: dict, **inputs) -> dict | None:
    """The key of a probe system's kept evaluations (:meth:`System.identity`): its class,
    its ``options`` (``None`` when they are not plain data, e.g. a scaler object among the
    probe's parameters: then nothing is kept), the MLP's device (a GPU rounds differently)
    and its ``inputs`` by content."""
    try:
        encode(options)
    except TypeError:
        return None
    params = options.get("probe_params") or {}
    device = (str(mlp_device(params.get("device", "auto"))) if options["probe"] == "mlp"
              else None)
    return {"system": f"{type(system).__module__}.{type(system).__qualname__}",
            "options": options, "device": device, **inputs}


class MajorityClass(System):
    """Each test track gets the label most frequent among the fold's training tracks (ties:
    the first in sorted order), with the training label frequencies as its probabilities."""

    label = "majority"
    uses_validation = False

    def __init__(self, name: str = "majority class (baseline)"):
        self.name = name

    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        freq = np.bincount(task.y[data.fold.train], minlength=len(task.names)).astype(float)
        freq /= freq.sum()
        return FoldPrediction(scores=np.tile(freq, (len(data.fold.test), 1)))

    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        return Provenance(name=self.name, task=task.name, system=MAJORITY, probe="majority",
                          layer="-", selection="none", scorer="none", split=split,
                          seed=options.seed, n_boot=options.n_boot)


def evaluate_probe(features: np.ndarray, track_index: np.ndarray, tracks: pd.DataFrame,
                   probe_options: ProbeOptions | None = None,
                   eval_options: EvalOptions | None = None, **overrides) -> ProbeResult:
    """Probe segment embeddings for a label; track-level, out-of-sample predictions.

    Parameters
    ----------
    features : ``(N_seg, n_layers, dim)`` (or ``(N_seg, dim)``) segment embeddings.
    track_index : ``(N_seg,)`` row position in ``tracks`` of each segment (what
        ``EmbeddingStore.load_many(tracks.content_hash, fp, reduce=None)`` returns).
    tracks : table with ``label`` (missing = unlabelled, ignored), ``track_id``, optional
        ``group``/``content_hash`` (kept together) and ``split`` (train/valid/test).
    probe_options, eval_options : :class:`ProbeOptions` and
        :class:`~mtbc.evaluation.engine.EvalOptions`; ``overrides``: any of their fields
        by name (``probe="mlp"``, ``seed=3``...).

    Example
    -------
    >>> import numpy as np, pandas as pd
    >>> tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(60)],
    ...                        "label": ["a", "b", "c"] * 20})
    >>> X = np.random.default_rng(0).standard_normal((120, 2, 4)).astype(np.float32)
    >>> X[:, 1, 0] += np.repeat(np.tile([0.0, 10.0, 20.0], 20), 2)  # two segments per track
    >>> r = evaluate_probe(X, np.repeat(np.arange(60), 2), tracks, n_splits=3, n_boot=0)
    >>> r.metric("accuracy") > 0.9, r.name
    (True, 'linear probe')
    """
    p, e = split_options(probe_options, eval_options, overrides)
    if p.protocol == "marble":
        return evaluate_marble(features, track_index, tracks, probe_options=p, eval_options=e)
    ev = probe_evaluation(features, track_index, tracks, p, e)
    return evaluate(ev.task, ev.system, ev.options)


def probe_evaluation(features: np.ndarray, track_index: np.ndarray, tracks: pd.DataFrame,
                     probe_options: ProbeOptions | None = None,
                     eval_options: EvalOptions | None = None, **overrides) -> Evaluation:
    """What :func:`evaluate_probe` evaluates (default protocol), to run with others in one
    :func:`~mtbc.evaluation.engine.evaluate_all`."""
    p, e = split_options(probe_options, eval_options, overrides)
    if p.protocol != "default":
        raise ValueError(f"protocol must be 'default' (here) or 'marble' (evaluate_probe), "
                         f"not {p.protocol!r}")
    check_features(features, track_index, tracks)
    return Evaluation(Classification(tracks), LayerProbe(features, track_index, p), e)


def evaluate_tagging(features, track_index, tracks: pd.DataFrame,
                     probe_options: ProbeOptions | None = None,
                     eval_options: EvalOptions | None = None, *,
                     tags: Sequence[str] | None = None, **overrides) -> TaggingResult:
    """Probe segment embeddings for tags (:class:`~mtbc.evaluation.tasks.Tagging`); the
    options are :func:`evaluate_probe`'s (``selection`` ``"ridge"``, ``per_layer_test``
    and ``protocol="marble"`` do not apply). ``tracks`` carries ``tags`` / ``tags_negative``
    (:mod:`mtbc.data.tags`); ``tags``: the tags to use (default: every tag with a known
    positive and negative)."""
    ev = tagging_evaluation(features, track_index, tracks, probe_options, eval_options,
                            tags=tags, **overrides)
    return evaluate(ev.task, ev.system, ev.options)


def tagging_evaluation(features, track_index, tracks: pd.DataFrame,
                       probe_options: ProbeOptions | None = None,
                       eval_options: EvalOptions | None = None, *,
                       tags: Sequence[str] | None = None, **overrides) -> Evaluation:
    """What :func:`evaluate_tagging` evaluates, to run with others in one
    :func:`~mtbc.evaluation.engine.evaluate_all`."""
    p, e = split_options(probe_options, eval_options, overrides)
    if p.protocol != "default":
        raise ValueError("tagging has no MARBLE protocol")
    check_features(features, track_index, tracks)
    return Evaluation(Tagging(tracks, tags=tags), LayerProbe(features, track_index, p), e)


def evaluate_majority(tracks: pd.DataFrame, *, name: str = "majority class (baseline)",
                      **options) -> ProbeResult:
    """The majority-class baseline on the classification folds (``options``:
    :class:`~mtbc.evaluation.engine.EvalOptions` fields)."""
    return evaluate(Classification(tracks), MajorityClass(name), EvalOptions(**options))
