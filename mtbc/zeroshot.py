"""Zero-shot classification and text search in CLAP's joint audio-text space.

Nothing is fitted: each class label becomes a prompt (``"This is a {label} song."`` by
default), the prompts' text embeddings are compared with each track's audio embedding by
cosine, and the closest prompt's class wins. :class:`ZeroShotClassifier` has the shape of a
system of the evaluation engine (``fit`` does nothing, ``predict_proba`` gives per-class
scores for track embeddings), so it runs on the same test tracks as the probes and is compared
with them by the same group-aware paired test (:meth:`ZeroShotResult.paired_test`).

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

from mtbc.stats import bootstrap_mean_ci, paired_test

#: The default prompt template (a params option: ``zero_shot_template``).
DEFAULT_TEMPLATE = "This is a {label} song."
#: Softmax temperature turning cosines into probabilities (CLAP's and CLIP's initial logit
#: scale is 1/0.07, about 14; trained models end near 100). Only probabilities depend on it;
#: the ranking, and so the predicted class, does not.
DEFAULT_SCALE = 100.0


def prompts_for(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per label: ``template.format(label=label)``.

    Raises ``ValueError`` when the template has no ``{label}`` field.
    """
    if "{label}" not in template:
        raise ValueError(f"zero-shot template {template!r} has no {{label}} field; write e.g. "
                         f"{DEFAULT_TEMPLATE!r}")
    return [template.format(label=str(label)) for label in labels]


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
