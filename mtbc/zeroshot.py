"""Zero-shot classification and text search in CLAP's joint audio-text space.

Nothing is fitted: each class label becomes a prompt (``"This is a {label} song."`` by
default), the prompts' text embeddings are compared with each track's audio embedding by
cosine, and the closest prompt's class wins. :class:`ZeroShotClassifier` scores track
embeddings (``fit`` does nothing, ``predict_proba`` gives per-class scores);
:class:`ZeroShot` is the system of the evaluation engine built on it: run by
:func:`mtbc.evaluation.evaluate` on a :class:`~mtbc.evaluation.Classification` or
:class:`~mtbc.evaluation.Tagging` task, it predicts each fold's test tracks (nothing is fitted
on the training part) and gives a normal ``ProbeResult`` / ``TaggingResult`` on the same folds
and test tracks as the probes, with group-bootstrap CIs, that :func:`mtbc.evaluation.compare`
(paired tests) takes beside them. :func:`evaluate_zero_shot` is the same accuracy on a given
set of tracks, without folds.

An extractor with a text tower (CLAP: ``has_text`` true) gives the prompts' embeddings
(:meth:`Prompts.from_extractor`, its ``embed_text``) in the joint space of its last output row.

Track embeddings come from cached CLAP segments: :func:`track_embeddings` takes the joint row
(the last layer of the ``clap`` extractor's output), averages a track's segments and
L2-normalises the mean.

Example
-------
>>> import numpy as np
>>> text = np.eye(3, 4, dtype=np.float32)                 # planted prompt embeddings
>>> audio = np.eye(3, 4, dtype=np.float32)[[0, 2, 1]]     # three tracks
>>> ZeroShotClassifier(text, ["jazz", "rock", "pop"]).fit().predict(audio).tolist()
['jazz', 'pop', 'rock']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mtbc.evaluation.data import track_ids
from mtbc.evaluation.engine import FoldData, FoldPrediction, System
from mtbc.evaluation.options import EvalOptions
from mtbc.evaluation.results import ZERO_SHOT, Provenance
from mtbc.evaluation.tasks import Task
from mtbc.stats import bootstrap_mean_ci, paired_test

#: The default prompt template (a params option: ``zero_shot_template``).
DEFAULT_TEMPLATE = "This is a {label} song."
#: Softmax temperature turning cosines into probabilities (CLAP's and CLIP's initial logit
#: scale is 1/0.07, about 14; trained models end near 100). Only probabilities depend on it;
#: the ranking, and so the predicted class, does not.
DEFAULT_SCALE = 100.0


def prompts_for(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per label: ``template.format(label=label)``.

    Raises ``ValueError`` when the template has no ``{label}`` field, or another field.
    """
    if "{label}" not in template:
        raise ValueError(f"zero-shot template {template!r} has no {{label}} field; write e.g. "
                         f"{DEFAULT_TEMPLATE!r}")
    try:
        return [template.format(label=str(label)) for label in labels]
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"zero-shot template {template!r}: {{label}} must be its only field "
                         f"({type(exc).__name__}: {exc}); write e.g. {DEFAULT_TEMPLATE!r}") from None


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n, dim), got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.isfinite(x).all() or (norm == 0).any():
        raise ValueError(f"{what}: every row must be finite and non-zero")
    return x / norm


def track_embeddings(features: np.ndarray, track_index: np.ndarray, n_tracks: int, *,
                     layer: int = -1, width: int | None = None) -> np.ndarray:
    """Per-track joint embeddings from segments: ``(N_seg, n_layers, W)`` -> ``(n_tracks, width)``.

    Takes ``features[:, layer, :width]`` (the ``clap`` extractor's joint row is the last, its
    true width ``projection_dim``), averages each track's segments and L2-normalises. A track
    without segments raises ``ValueError``.
    """
    features, track_index = np.asarray(features), np.asarray(track_index)
    rows = features[:, layer, :width] if features.ndim == 3 else features[:, :width]
    counts = np.bincount(track_index, minlength=n_tracks)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} track(s) have no segments, e.g. track "
                         f"{int(np.flatnonzero(counts == 0)[0])}")
    sums = np.zeros((n_tracks, rows.shape[1]))
    np.add.at(sums, track_index, rows)
    return _unit(sums / counts[:, None], "track embeddings").astype(np.float32)


class ZeroShotClassifier:
    """Cosine between track embeddings and one text embedding per class; nothing fitted.

    Parameters
    ----------
    text_embeddings : ``(n_classes, dim)`` prompt embeddings (normalised here).
    classes : the class names, in the rows' order.
    scale : softmax temperature of :meth:`predict_proba` (:data:`DEFAULT_SCALE`).
    """

    fitted_nothing = True

    def __init__(self, text_embeddings: np.ndarray, classes: Sequence[str], *,
                 scale: float = DEFAULT_SCALE, prompts: Sequence[str] | None = None):
        self.text = _unit(text_embeddings, "text embeddings")
        self.classes_ = np.asarray([str(c) for c in classes])
        if len(self.classes_) != len(self.text):
            raise ValueError(f"{len(self.classes_)} classes but {len(self.text)} text embeddings")
        self.scale = float(scale)
        self.prompts = list(prompts) if prompts is not None else None

    @classmethod
    def from_extractor(cls, extractor, labels: Sequence[str], *,
                       template: str = DEFAULT_TEMPLATE, scale: float = DEFAULT_SCALE
                       ) -> ZeroShotClassifier:
        """Prompts from ``template`` embedded by a CLAP extractor's ``embed_text``."""
        prompts = prompts_for(labels, template)
        return cls(extractor.embed_text(prompts), labels, scale=scale, prompts=prompts)

    def fit(self, X: Any = None, y: Any = None) -> ZeroShotClassifier:
        """Nothing is learned from training tracks; returns self."""
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Cosine of each track with each class prompt: ``(n_tracks, n_classes)``."""
        audio = _unit(X, "track embeddings")
        if audio.shape[1] != self.text.shape[1]:
            raise ValueError(f"track embeddings have {audio.shape[1]} dims, text embeddings "
                             f"{self.text.shape[1]}: use the joint row (track_embeddings)")
        return audio @ self.text.T

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-class scores summing to 1: softmax of ``scale * cosine``."""
        logits = self.scale * self.decision_function(X)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class of the closest prompt per track."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


@dataclass(frozen=True)
class ZeroShotResult:
    """Zero-shot accuracy on test tracks with a group-bootstrap CI (``n_tracks``, ``n_groups``)."""

    accuracy: float
    ci_low: float
    ci_high: float
    n_tracks: int
    n_groups: int
    y_true: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    groups: np.ndarray = field(repr=False)

    def paired_test(self, other_predictions: Sequence, **options):
        """Group-aware paired test of zero-shot against another system's predictions on the
        same tracks (:func:`mtbc.stats.paired_test`; ``diff`` = zero-shot minus
        other)."""
        return paired_test(self.y_true, self.predictions, np.asarray(other_predictions),
                           groups=self.groups, **options)


def evaluate_zero_shot(classifier: ZeroShotClassifier, embeddings: np.ndarray,
                       labels: Sequence[str], *, groups: Sequence | None = None,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> ZeroShotResult:
    """Accuracy of ``classifier`` on track ``embeddings`` ``(n, dim)`` with true ``labels``,
    and its percentile bootstrap CI resampling ``groups`` (each track its own when ``None``)."""
    y = np.asarray([str(v) for v in labels])
    pred = classifier.predict(embeddings)
    if len(y) != len(pred):
        raise ValueError(f"{len(y)} labels for {len(pred)} tracks")
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    correct = (pred == y).astype(float)
    low, high = bootstrap_mean_ci(correct, groups=g, n_boot=n_boot, seed=seed, level=level)
    return ZeroShotResult(accuracy=float(correct.mean()), ci_low=low, ci_high=high,
                          n_tracks=len(y), n_groups=len(pd.unique(g)), y_true=y,
                          predictions=pred, groups=g)


def text_search(query: np.ndarray, embeddings: np.ndarray, track_ids: Sequence[str], *,
                k: int = 10) -> pd.DataFrame:
    """The ``k`` tracks closest to a text embedding ``query`` ``(dim,)`` by cosine.

    Returns a table with ``rank`` (1 = closest), ``track_id`` and ``cosine``.
    """
    q = _unit(np.asarray(query).reshape(1, -1), "query")
    audio = _unit(embeddings, "track embeddings")
    if len(track_ids) != len(audio):
        raise ValueError(f"{len(track_ids)} track ids for {len(audio)} embeddings")
    cos = (audio @ q.T)[:, 0]
    order = np.argsort(-cos, kind="stable")[:k]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1),
                         "track_id": np.asarray(track_ids)[order], "cosine": cos[order]})


def search_by_text(extractor, text: str, embeddings: np.ndarray, track_ids: Sequence[str], *,
                   k: int = 10) -> pd.DataFrame:
    """:func:`text_search` for a query string embedded by a CLAP extractor (``embed_text``)."""
    return text_search(extractor.embed_text([text])[0], embeddings, track_ids, k=k)


# ------------------------------------------------------------------ the engine's system

def has_text(extractor) -> bool:
    """Whether ``extractor`` embeds text in the joint space of its last output row (CLAP's
    text tower: ``has_text`` true, ``embed_text``, ``projection_dim``)."""
    return bool(getattr(extractor, "has_text", False)) and callable(
        getattr(extractor, "embed_text", None))


def joint_rows(features: np.ndarray, extractor) -> np.ndarray:
    """The joint-space rows of an extractor's cached segments: ``(N_seg, n_layers, width)``
    -> ``(N_seg, projection_dim)`` (the last row, its zero padding cut)."""
    features = np.asarray(features)
    rows = features[:, -1] if features.ndim == 3 else features
    return rows[:, : int(extractor.projection_dim)]


@dataclass(frozen=True, eq=False)
class Prompts:
    """One prompt per class or tag name and its text embedding.

    ``names`` (classes or tags), ``prompts`` (the same order), ``embeddings``
    ``(len(names), dim)`` and the ``template`` they came from.
    """

    names: tuple
    prompts: tuple
    embeddings: np.ndarray = field(repr=False)
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self):
        if not (len(self.names) == len(self.prompts) == len(self.embeddings)):
            raise ValueError(f"{len(self.names)} names, {len(self.prompts)} prompts and "
                             f"{len(self.embeddings)} text embeddings: give one of each per name")

    @classmethod
    def from_extractor(cls, extractor, names: Sequence[str], *,
                       template: str = DEFAULT_TEMPLATE) -> Prompts:
        """Prompts of ``names`` from ``template`` embedded by ``extractor.embed_text``."""
        prompts = prompts_for(names, template)
        return cls(tuple(str(n) for n in names), tuple(prompts),
                   np.asarray(extractor.embed_text(prompts)), template)

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """The text embeddings of ``names``, in that order (``ValueError`` naming a missing
        one)."""
        where = {str(n): i for i, n in enumerate(self.names)}
        missing = [str(n) for n in names if str(n) not in where]
        if missing:
            raise ValueError(f"no prompt for {', '.join(map(repr, missing[:3]))}: the prompts "
                             f"cover {', '.join(map(repr, self.names[:5]))}")
        return np.asarray(self.embeddings)[[where[str(n)] for n in names]]


class ZeroShot(System):
    """Zero-shot classification or tagging from text prompts: a system of the evaluation
    engine that fits nothing.

    Each test track's score for a class or tag is the cosine between its joint-space
    embedding and the name's prompt embedding; for classification the softmax of ``scale``
    x cosine over the classes (the argmax, and so the accuracy, does not depend on
    ``scale``), for tagging the cosine itself (ROC-AUC and PR-AUC only rank the scores).

    Parameters
    ----------
    audio : ``(n_tracks, dim)`` per-track joint embeddings in the task's tracks order
        (:func:`track_embeddings`); rows of tracks that take no part may be NaN.
    prompts : :class:`Prompts` covering every class (or tag) of the task.
    name : the result's name; ``scale``: softmax temperature; ``fingerprint``: the
        extractor's, recorded in the provenance.

    Example
    -------
    >>> import numpy as np, pandas as pd
    >>> from mtbc.evaluation import Classification, EvalOptions, evaluate
    >>> tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(30)],
    ...                        "label": ["a", "b", "c"] * 10})
    >>> text = np.eye(3, 4)                                  # planted prompt embeddings
    >>> audio = text[np.tile([0, 1, 2], 10)]                 # each track at its class's prompt
    >>> prompts = Prompts(("a", "b", "c"), tuple(prompts_for("abc")), text)
    >>> r = evaluate(Classification(tracks), ZeroShot(audio, prompts),
    ...              EvalOptions(n_splits=3, n_boot=0))
    >>> r.metric("accuracy"), r.system
    (1.0, 'zero-shot')
    """

    label = "zero-shot"
    uses_validation = False  # nothing is chosen

    def __init__(self, audio: np.ndarray, prompts: Prompts, *, name: str = "zero-shot",
                 scale: float = DEFAULT_SCALE, fingerprint: str | None = None):
        self.audio = np.asarray(audio, dtype=np.float64)
        self.prompts, self.name, self.scale = prompts, name, float(scale)
        self.fingerprint = fingerprint

    def prepare(self, task: Task, options: EvalOptions) -> None:
        if task.name not in ("classification", "tagging"):
            raise ValueError(f"zero-shot scores classification or tagging, not {task.name}")
        if self.audio.ndim != 2 or len(self.audio) != len(task.tracks):
            raise ValueError(f"audio embeddings must be (n_tracks={len(task.tracks)}, dim), "
                             f"got shape {self.audio.shape}")
        used = task.used()
        norm = np.linalg.norm(np.nan_to_num(self.audio, nan=0.0), axis=1)
        bad = np.flatnonzero(used & (~np.isfinite(self.audio).all(axis=1) | (norm == 0)))
        if len(bad):
            ids = track_ids(task.tracks)[bad[:3]]
            raise ValueError(f"{len(bad)} {task.what} track(s) have no joint embedding "
                             f"(e.g. {', '.join(map(str, ids))})")
        self.names = [str(n) for n in task.names]
        self.classifier = ZeroShotClassifier(self.prompts.rows(self.names), self.names,
                                             scale=self.scale)
        if self.audio.shape[1] != self.classifier.text.shape[1]:
            raise ValueError(f"audio embeddings have {self.audio.shape[1]} dims, text "
                             f"embeddings {self.classifier.text.shape[1]}: use the joint row")

    def fold(self, task: Task, data: FoldData) -> FoldPrediction:
        X = self.audio[data.fold.test]
        scores = (self.classifier.predict_proba(X) if task.name == "classification"
                  else self.classifier.decision_function(X))
        return FoldPrediction(scores=scores, layer="joint", n_train=0)

    def provenance(self, task: Task, split: str, options: EvalOptions) -> Provenance:
        prompts = dict(zip(self.prompts.names, self.prompts.prompts, strict=True))
        return Provenance(
            name=self.name, task=task.name, system=ZERO_SHOT, probe="zero-shot", layer="joint",
            selection="none", scorer="none", split=split, seed=options.seed,
            n_boot=options.n_boot, fingerprint=self.fingerprint,
            params={"template": self.prompts.template, "scale": self.scale,
                    "prompts": {n: prompts[n] for n in self.names},
                    "dim": int(self.audio.shape[1])})
