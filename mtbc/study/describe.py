"""Notebook 03 (embedding statistics): per-track and per-label statistics, similarity,
projections and label separability of one model (:class:`ModelDescription`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from threadpoolctl import threadpool_limits

from mtbc.cache.store import load_embeddings
from mtbc.evaluation.parallel import parallel_map
from mtbc.stats import descriptive as stats
from mtbc.study.common import Study


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


def describe_models(study: Study, labels: list[str] | None = None, *, layer: int | None = None,
                    seed: int = 0) -> list[ModelDescription]:
    """:func:`describe_model` of every model (``labels``; default: the study's), side by
    side on threads: t-SNE, most of the time, runs in compiled code that releases the GIL.
    Each projection keeps one OpenMP thread; the results are those of one model at a time."""
    labels = list(study.models) if labels is None else list(labels)
    with threadpool_limits(limits=1):
        return parallel_map(lambda _, label: describe_model(study, label, layer=layer,
                                                            seed=seed), labels)


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
