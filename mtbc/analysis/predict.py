"""Train a final probe, keep it in one file, and label new audio files with it.

A model file is a joblib pickle of a :class:`ProbeBundle`: the fitted pipeline (layer choice,
scaler, probe), the label set, the extractor's name, options and fingerprint, the seed and how
it was trained. Loading a pickle runs code stored in it, so model files are trusted files:
load only those you made or got from someone you trust.

:func:`predict_files` refuses a model whose extractor fingerprint differs from the extractor it
is given (embeddings of another model, revision or option set would be silently wrong),
embeds what the cache lacks, and reports every file -- a file that fails gets its error in
the ``error`` column and the others go on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from mtbc import __version__
from mtbc.analysis.probes import DEFAULT_CS, LayerSelector
from mtbc.analysis.selection import (
    Design,
    ProbeSpec,
    candidate_layers,
    fit_fold,
    layer_scorer,
    layer_view,
    limit_threads,
    prepare_data,
    resolve_selection,
)
from mtbc.cache.store import EmbeddingStore
from mtbc.data import splits
from mtbc.data.audio import load_audio
from mtbc.extractors import Extractor, get_extractor
from mtbc.files import atomic_write, content_hash

FORMAT = "mtbc-probe-bundle/1"


@dataclass
class ProbeBundle:
    """A trained probe with everything needed to use it on new audio."""

    pipeline: Pipeline
    classes: list
    layer: Any
    probe: str
    extractor: str | None
    extractor_options: dict
    fingerprint: str | None
    extractor_metadata: dict
    seed: int
    training: dict = field(default_factory=dict)
    format: str = FORMAT

    def predict_proba(self, embedding: np.ndarray) -> np.ndarray:
        """Track probabilities ``(n_classes,)`` of one ``(n_segments, n_layers, dim)`` embedding
        (the mean of its segments' probabilities)."""
        emb = np.asarray(embedding)
        if emb.ndim != 3 or len(emb) == 0:
            raise ValueError(f"expected one (n_segments, n_layers, dim) embedding, got {emb.shape}")
        proba = self.pipeline.predict_proba(emb)
        out = np.zeros(len(self.classes))
        out[self.pipeline[-1].classes_] = proba.mean(axis=0)
        return out

    def predict(self, embedding: np.ndarray):
        return self.classes[int(np.argmax(self.predict_proba(embedding)))]

    def save(self, path: str | Path) -> Path:
        """Write the bundle to ``path`` (joblib; temp file + rename)."""
        return save_bundle(self, path)


def save_bundle(bundle: ProbeBundle, path: str | Path) -> Path:
    """Write ``bundle`` to one joblib file atomically; returns the path."""
    path = Path(path)
    atomic_write(path, lambda f: joblib.dump(bundle, f))
    return path


def load_bundle(path: str | Path) -> ProbeBundle:
    """Load a model file written by :func:`save_bundle` (a trusted file: it is a pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file; train one with train_final_probe")
    obj = joblib.load(path)
    if not isinstance(obj, ProbeBundle) or getattr(obj, "format", None) != FORMAT:
        raise ValueError(f"{path}: not an mtbc probe model ({FORMAT}); "
                         f"got {type(obj).__name__}")
    return obj


def train_final_probe(
    features: np.ndarray,
    track_index: np.ndarray,
    tracks: pd.DataFrame,
    *,
    extractor: Extractor | None = None,
    extractor_name: str | None = None,
    extractor_options: dict | None = None,
    fingerprint: str | None = None,
    probe: str = "linear",
    layer: int | str = "select",
    selection: str = "auto",
    seed: int = 0,
    n_splits: int = 5,
    Cs: Sequence[float] = DEFAULT_CS,
    probe_params: dict | None = None,
    n_threads: int | None = 1,
    progress: bool = False,
) -> ProbeBundle:
    """Fit a probe on every labelled track, for saving and predicting new files.

    Layer and hyperparameter are chosen by grouped ``n_splits``-fold CV over all labelled
    tracks (any ``split`` column is ignored: every labelled track trains the final model);
    then the probe is fit on all of them. Name the extractor by passing it (``extractor``) or
    by ``extractor_name``/``fingerprint``; ``extractor_options`` are what
    ``get_extractor(name, **options)`` needs to rebuild it at prediction time.
    Other arguments as in :func:`mtbc.analysis.protocol.evaluate_probe`. Returns a :class:`ProbeBundle`.
    """
    selection = resolve_selection(probe, selection)
    data = prepare_data(features, track_index, tracks)
    features, classes, y = data.features, data.classes, data.y
    if extractor is not None:
        extractor_name = extractor_name or extractor.name
        fingerprint = fingerprint or extractor.fingerprint
        metadata = extractor.metadata()
        if fingerprint != extractor.fingerprint:
            raise ValueError(f"fingerprint {fingerprint} does not match the extractor's "
                             f"{extractor.fingerprint}")
    else:
        metadata = {}
    labelled = np.flatnonzero(y >= 0)
    n_splits = splits.fold_count(pd.Series(y[labelled]), n_splits)  # e.g. GTZAN's 5 folds
    if n_splits < 2:
        raise ValueError("every label needs at least 2 tracks to choose the layer and "
                         "regularisation of a final probe by cross-validation")
    table = tracks.drop(columns=["split"], errors="ignore")
    inner = splits.inner_splits(table, labelled, n_splits=n_splits, seed=seed)
    design = Design(data.track_index, len(tracks), y)
    params = dict(probe_params or {})
    spec = ProbeSpec(probe, len(classes), seed, params, tuple(Cs))
    scorer = layer_scorer(spec, selection, params)
    view = layer_view(features)
    with limit_threads(n_threads, torch_too=probe == "mlp"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fitted, lc, pc = fit_fold(design, view, candidate_layers(layer, features.shape[1]), inner,
                                   labelled, spec, scorer)
    selector = LayerSelector(layer=lc.candidate).fit(features[:1])
    segs, _ = design.segments(labelled)
    training = {
        "n_tracks": len(labelled), "n_segments": len(segs),
        "label_counts": pd.Series(np.asarray(classes)[y[labelled]]).value_counts().to_dict(),
        "layer": lc.candidate, "layer_requested": layer, "selection": selection,
        "param": spec.param, "value": pc.value, "cv_accuracy": pc.accuracy,
        "layer_cv_accuracy": {str(k): v[0] for k, v in lc.by_candidate.items()},
        "n_splits": n_splits, "Cs": list(Cs), "probe_params": params,
        "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
        "n_layers": features.shape[1], "dim": features.shape[2],
        "mtbc_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return ProbeBundle(
        pipeline=Pipeline([("layer", selector), ("probe", fitted)]), classes=list(classes),
        layer=lc.candidate, probe=probe, extractor=extractor_name,
        extractor_options=dict(extractor_options or {}), fingerprint=fingerprint,
        extractor_metadata=metadata, seed=seed, training=training)


def predict_files(
    model_path: str | Path,
    paths: Sequence[str | Path],
    *,
    store: EmbeddingStore | str | Path | None,
    extractor_factory: Callable[..., Extractor] = get_extractor,
    extractor_options: dict | None = None,
    extractor: Extractor | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Label audio files with a saved probe; one row per file.

    The extractor is ``extractor`` if given, else ``extractor_factory(name, **options)`` with
    the options recorded in the model updated by ``extractor_options`` (e.g. a device). Its
    fingerprint must equal the model's. Embeddings missing from ``store`` (an
    :class:`EmbeddingStore`, a folder, or ``None`` for the default cache) are computed from
    ``load_audio(path, extractor.sample_rate)`` and stored under the file's content hash.

    Columns: ``path, content_hash, label, confidence, n_segments, error`` and ``p_<class>``
    per class. A file that fails has ``label`` missing and its reason in ``error``.
    """
    bundle = load_bundle(model_path)
    if extractor is None:
        if not bundle.extractor:
            raise ValueError(f"{model_path}: the model records no extractor name; pass "
                             f"extractor= the one it was trained with")
        options = {**bundle.extractor_options, **(extractor_options or {})}
        options.pop("name", None)  # a run's extractor entry carries its name
        extractor = extractor_factory(bundle.extractor, **options)
    if extractor.fingerprint != bundle.fingerprint:
        raise ValueError(
            f"{model_path}: the model was trained on {bundle.extractor} embeddings with "
            f"fingerprint {bundle.fingerprint}, but the extractor given has fingerprint "
            f"{extractor.fingerprint}; build the extractor with the options used in training "
            f"(recorded: {bundle.extractor_options}, metadata: {bundle.extractor_metadata})")
    if not isinstance(store, EmbeddingStore):
        store = EmbeddingStore(store)
    fp = extractor.fingerprint
    if not store.read_info(fp):
        store.write_info(fp, extractor.metadata())
    hasher = content_hash
    min_duration = extractor.min_samples / extractor.sample_rate
    prob_cols = [f"p_{c}" for c in bundle.classes]
    rows = []
    for path in tqdm(list(paths), desc="predict", unit="file", disable=not progress):
        row: dict[str, Any] = {"path": str(path), "content_hash": None, "label": None,
                               "confidence": np.nan, "n_segments": 0, "error": None}
        try:
            row["content_hash"] = h = hasher(path)
            emb = store.get(h, fp)
            if emb is None:
                wave = load_audio(path, extractor.sample_rate, min_duration=min_duration)
                emb = np.asarray(extractor.embed(wave), dtype=np.float32)
                store.put(h, fp, emb)
            proba = bundle.predict_proba(emb)
            row.update({"label": bundle.classes[int(np.argmax(proba))],
                        "confidence": float(proba.max()), "n_segments": int(len(emb))})
            row.update(dict(zip(prob_cols, proba.tolist(), strict=True)))
        except Exception as exc:  # noqa: BLE001 -- one bad file never stops the others
            row["error"] = str(exc) if str(exc) else type(exc).__name__
        rows.append(row)
    columns = ["path", "content_hash", "label", "confidence", "n_segments", "error", *prob_cols]
    return pd.DataFrame(rows).reindex(columns=columns)
