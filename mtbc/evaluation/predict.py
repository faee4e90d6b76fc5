"""Train a final probe, keep it in one file, and label new audio files with it.

A model file holds a :class:`ProbeBundle` -- the fitted pipeline (layer choice, scaler,
probe), the label set, the extractor's name, options and fingerprint, the seed and how it was
trained -- as data only: a NumPy ``.npz`` archive of the learned arrays, read with
``allow_pickle=False``, plus a JSON header (``header.json``, stored as bytes) describing the
estimators by name and their parameters. Loading rebuilds only the estimators of
:data:`ESTIMATORS` from those arrays and values, so a model file cannot run code. Pickle and
joblib files are refused, never unpickled.

:func:`predict_files` refuses a model whose extractor fingerprint differs from the extractor it
is given (embeddings of another model, revision or option set would be silently wrong),
embeds what the cache lacks, and reports every file -- a file that fails gets its error in
the ``error`` column and the others go on.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from mtbc import __version__
from mtbc.cache.extract import embed_file, load_model
from mtbc.cache.store import EmbeddingStore
from mtbc.data import splits
from mtbc.data.audio import check_file
from mtbc.evaluation.data import (
    Design,
    candidate_layers,
    check_features,
    layer_view,
    limit_threads,
)
from mtbc.evaluation.estimators import BlockStandardizer, LayerSelector, LinearProbe, MLPProbe
from mtbc.evaluation.options import EvalOptions, ProbeOptions, split_options
from mtbc.evaluation.selection import Search, fit_fold
from mtbc.evaluation.specs import resolve_selection
from mtbc.evaluation.tasks import Classification
from mtbc.extractors import Extractor, get_extractor
from mtbc.files import atomic_write, content_hash

FORMAT = "mtbc-probe-bundle/2"
_HEADER = "header.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]*_$", re.IGNORECASE)
_PICKLE_MAGIC = (b"\x80", b"x\x9c", b"x\x01", b"x\xda", b"\x1f\x8b", b"BZh", b"\xfd7zXZ",
                 b"ZF\x00")


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
        """Write the bundle to ``path`` (``.npz`` + JSON header; temp file + rename)."""
        return save_bundle(self, path)


def _estimators() -> dict[str, type]:
    return {c.__name__: c for c in (Pipeline, LayerSelector, LinearProbe, MLPProbe,
                                    StandardScaler, BlockStandardizer, LogisticRegression)}


#: The only estimator classes a model file may name (rebuilt from arrays and values).
ESTIMATORS = ("Pipeline", "LayerSelector", "LinearProbe", "MLPProbe", "StandardScaler",
              "BlockStandardizer", "LogisticRegression")


def _plain(value: Any) -> Any:
    """JSON-safe copy of ``value`` (numpy scalars to Python), or ``TypeError``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a model file")


class _Writer:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, arr: np.ndarray) -> dict:
        arr = np.asarray(arr)
        if arr.dtype == object:
            arr = arr.astype(str)
        key = f"a{len(self.arrays)}"
        self.arrays[key] = arr
        return {"array": key}

    def value(self, v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return self.array(v)
        if hasattr(v, "get_params") and hasattr(v, "fit"):
            return self.estimator(v)
        if isinstance(v, list | tuple) and v and all(isinstance(x, np.ndarray) for x in v):
            return {"arrays": [self.array(x) for x in v]}
        return {"value": _plain(v)}

    def estimator(self, est) -> dict:
        name = type(est).__name__
        if name not in ESTIMATORS:
            raise TypeError(f"cannot store a {name} in a model file (allowed: "
                            f"{', '.join(ESTIMATORS)})")
        if isinstance(est, Pipeline):
            return {"estimator": name, "steps": [[n, self.estimator(e)] for n, e in est.steps]}
        params = {k: self.value(v) for k, v in est.get_params(deep=False).items()}
        learned = {k: self.value(v) for k, v in vars(est).items()
                   if _NAME.match(k) and k != "eval_proba_" and v is not None}
        return {"estimator": name, "params": params, "learned": learned}


class _Reader:
    def __init__(self, path: Path, arrays):
        self.path, self.arrays = path, arrays

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: corrupt model file ({what}); re-save it with "
                          f"save_bundle")

    def value(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or len(spec) != 1:
            raise self.fail(f"bad value {str(spec)[:60]!r}")
        (kind, v), = spec.items()
        if kind == "value":
            return v
        if kind == "array":
            if v not in self.arrays.files:
                raise self.fail(f"missing array {v!r}")
            try:  # an object array (pickle) or a damaged member: refused naming the file
                return self.arrays[v]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise self.fail(f"array {v!r} cannot be read: {exc}") from None
        if kind == "arrays":
            return [self.value(x) for x in v]
        if kind == "estimator":
            return self.estimator(spec)
        raise self.fail(f"unknown entry {kind!r}")

    def estimator(self, spec: Any):
        if not isinstance(spec, dict):
            raise self.fail("estimator spec is not a mapping")
        if "estimator" in spec and set(spec) - {"estimator", "params", "learned", "steps"}:
            raise self.fail("unexpected keys in an estimator spec")
        name = spec.get("estimator")
        classes = _estimators()
        if name not in ESTIMATORS or name not in classes:
            raise self.fail(f"estimator {name!r} is not one of {', '.join(ESTIMATORS)}")
        cls = classes[name]
        if name == "Pipeline":
            return Pipeline([(str(n), self.estimator(e)) for n, e in spec.get("steps", [])])
        allowed = set(cls().get_params(deep=False))
        params = spec.get("params", {})
        if not set(params) <= allowed:
            raise self.fail(f"{name} has no parameter(s) {sorted(set(params) - allowed)}")
        est = cls(**{k: self.nested(v) for k, v in params.items()})
        for key, v in spec.get("learned", {}).items():
            if not _NAME.match(key):
                raise self.fail(f"bad attribute name {key!r}")
            setattr(est, key, self.nested(v))
        return est

    def nested(self, v: Any) -> Any:
        if isinstance(v, dict) and "estimator" in v:
            return self.estimator(v)
        return self.value(v)


def save_bundle(bundle: ProbeBundle, path: str | Path) -> Path:
    """Write ``bundle`` to one model file atomically (``.npz`` arrays + JSON header, no
    pickle); returns the path."""
    path = Path(path)
    writer = _Writer()
    header = {"format": FORMAT, "pipeline": writer.estimator(bundle.pipeline),
              "classes": _plain(list(bundle.classes)), "layer": _plain(bundle.layer),
              "probe": bundle.probe, "extractor": bundle.extractor,
              "extractor_options": _plain(bundle.extractor_options),
              "fingerprint": bundle.fingerprint,
              "extractor_metadata": _plain(bundle.extractor_metadata), "seed": int(bundle.seed),
              "training": _plain(bundle.training)}
    text = json.dumps(header, allow_nan=True)
    arrays = {**writer.arrays, _HEADER.removesuffix(".json"):
              np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}

    def write(f):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        f.write(buf.getvalue())

    atomic_write(path, write)
    return path


def load_bundle(path: str | Path) -> ProbeBundle:
    """Load a model file written by :func:`save_bundle`.

    Only data is read (``np.load(allow_pickle=False)`` and JSON) and only the estimators of
    :data:`ESTIMATORS` are rebuilt, so loading a model file cannot run code. A pickle or
    joblib file (the old format, or anything else) is refused with ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file; train one with notebook 04 "
                                f"(models are saved under data/models/<run>/)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic.startswith(b"PK"):
        kind = ("a pickle/joblib file" if magic.startswith(_PICKLE_MAGIC)
                else "not an mtbc model file")
        raise ValueError(f"{path}: {kind}; mtbc never unpickles model files (unpickling runs "
                         f"code); re-train with notebook 04 to get a {FORMAT} model file")
    try:
        arrays = np.load(path, allow_pickle=False)
        header = json.loads(bytes(arrays[_HEADER.removesuffix(".json")]).decode("utf-8"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not an mtbc probe model ({FORMAT}): {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path}: not an mtbc probe model ({FORMAT}); got {got!r}")
    reader = _Reader(path, arrays)
    pipeline = reader.estimator(header.get("pipeline"))
    if not isinstance(pipeline, Pipeline):
        raise reader.fail("the model is not a pipeline")
    try:
        return ProbeBundle(
            pipeline=pipeline, classes=list(header["classes"]), layer=header["layer"],
            probe=header["probe"], extractor=header["extractor"],
            extractor_options=dict(header["extractor_options"] or {}),
            fingerprint=header["fingerprint"],
            extractor_metadata=dict(header["extractor_metadata"] or {}), seed=header["seed"],
            training=dict(header.get("training") or {}))
    except (KeyError, TypeError) as exc:
        raise reader.fail(f"header lacks {exc}") from None


def train_final_probe(features: np.ndarray, track_index: np.ndarray, tracks: pd.DataFrame, *,
                      extractor: Extractor | None = None, extractor_options: dict | None = None,
                      probe_options: ProbeOptions | None = None,
                      eval_options: EvalOptions | None = None, **overrides) -> ProbeBundle:
    """Fit a probe on every labelled track, for saving and predicting new files.

    Layer and hyperparameter are chosen by grouped ``n_splits``-fold CV over all labelled
    tracks (any ``split`` column is ignored: every labelled track trains the final model);
    then the probe is fit on all of them. ``extractor`` names the model (its name,
    fingerprint and metadata are recorded; without it ``probe_options.fingerprint`` is);
    ``extractor_options`` are what ``get_extractor(name, **options)`` needs to rebuild it at
    prediction time. ``probe_options``: probe, layer, selection, ``Cs``, ``probe_params``
    (:class:`~mtbc.evaluation.options.ProbeOptions`); ``eval_options``: ``n_splits``,
    ``seed``, ``n_threads`` (:class:`~mtbc.evaluation.options.EvalOptions`); ``overrides``:
    fields of either by name. Returns a :class:`ProbeBundle`.

    Example
    -------
    >>> bundle = train_final_probe(feats, index, tracks, extractor=ext,
    ...                            extractor_options={"model": "MTT_musicnn"})  # doctest: +SKIP
    >>> bundle.save("models/musicnn.npz")  # doctest: +SKIP
    """
    opts, e = split_options(probe_options, eval_options, overrides)
    n_splits, seed, n_threads = e.n_splits, e.seed, e.n_threads
    probe, layer = opts.probe, opts.layer
    selection = resolve_selection(probe, opts.selection)
    features, track_index = check_features(features, track_index, tracks)
    task = Classification(tracks)
    task.check_covered(track_index)
    classes, y = task.classes, task.y
    fingerprint, extractor_name, metadata = opts.fingerprint, None, {}
    if extractor is not None:
        extractor_name = extractor.name
        fingerprint = fingerprint or extractor.fingerprint
        metadata = extractor.metadata()
        if fingerprint != extractor.fingerprint:
            raise ValueError(f"fingerprint {fingerprint} does not match the extractor's "
                             f"{extractor.fingerprint}")
    labelled = np.flatnonzero(y >= 0)
    n_splits = splits.fold_count(pd.Series(y[labelled]), n_splits)  # e.g. GTZAN's 5 folds
    if n_splits < 2:
        raise ValueError("every label needs at least 2 tracks to choose the layer and "
                         "regularisation of a final probe by cross-validation")
    table = tracks.drop(columns=["split"], errors="ignore")
    inner = splits.inner_splits(table, labelled, n_splits=n_splits, seed=seed)
    params = dict(opts.probe_params or {})
    spec = task.spec(probe, seed=seed, params=params, Cs=opts.Cs)
    search = Search(task, Design(track_index, len(tracks)), layer_view(features), inner)
    with limit_threads(n_threads, torch_too=probe == "mlp"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fitted, lc, pc = fit_fold(search, candidate_layers(layer, features.shape[1]),
                                  labelled, spec, spec.ranker(selection))
    selector = LayerSelector(layer=lc.candidate).fit(features[:1])
    segs, _ = search.design.segments(labelled)
    training = {
        "n_tracks": len(labelled), "n_segments": len(segs),
        "label_counts": pd.Series(np.asarray(classes)[y[labelled]]).value_counts().to_dict(),
        "layer": lc.candidate, "layer_requested": layer, "selection": selection,
        "param": spec.param, "value": pc.value, "cv_accuracy": pc.score,
        "layer_cv_accuracy": {str(k): v.score for k, v in lc.by_candidate.items()},
        "n_splits": n_splits, "Cs": list(opts.Cs), "probe_params": params,
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
    the file exactly as ``mtbc extract`` does (:func:`mtbc.cache.extract.embed_file`: the
    extractor's own resampler, long files streamed) and stored under the file's content hash.

    Columns: ``path, content_hash, label, confidence, n_segments, error`` and ``p_<class>``
    per class. A file that fails has ``label`` missing and its reason in ``error``.
    """
    bundle = load_bundle(model_path)
    if extractor is None:
        if not bundle.extractor:
            raise ValueError(f"{model_path}: the model records no extractor name, so the "
                             f"songs cannot be embedded like its training data; re-train it "
                             f"with notebook 04")
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
    load_model(extractor)
    fp = extractor.fingerprint
    if not store.read_info(fp):
        store.write_info(fp, extractor.metadata())
    hasher = content_hash
    prob_cols = [f"p_{c}" for c in bundle.classes]
    rows = []
    for path in tqdm(list(paths), desc="predict", unit="file", disable=not progress):
        row: dict[str, Any] = {"path": str(path), "content_hash": None, "label": None,
                               "confidence": np.nan, "n_segments": 0, "error": None}
        try:
            check_file(path)  # a FIFO or device is refused before hashing (never blocks)
            row["content_hash"] = h = hasher(path)
            emb = store.get(h, fp)
            if emb is None:
                emb, _ = embed_file(extractor, path)
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
