"""Deformed tracks through the embedding cache: a rerun decodes, deforms and embeds nothing.

A deformed track is stored like any other cache entry (:class:`mtbc.cache.store.EmbeddingStore`,
verified on read, written atomically), under the track's content hash and a fingerprint made of
the clean extractor's fingerprint plus a suffix naming the deformation, its strength and seed
(:func:`deformed_fingerprint`); the suffix's hash also covers :data:`DEFORM_VERSION` and the
audiomentations version. Nothing in the cache's code changes.

How a missing entry is made: the file is decoded at its native rate (mono, as extraction does),
deformed once (:func:`mtbc.robustness.deform.deform`, seeded per track from the run seed and
the content hash), written as a float WAV into a temporary folder mtbc creates and removes, and
every model that lacks it embeds it through :func:`mtbc.cache.extract.extract_collection`, so
resampling, batching, failure handling and cache writes are the clean extraction's own. The
same deformed audio therefore reaches every model (an MP3 at 32 kbps is one MP3, not one per
model rate).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.data.audio import load_audio
from mtbc.extractors import Extractor
from mtbc.robustness.deform import DEFORM_VERSION, DEFORMATIONS, check, deform, label


def _lib_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def track_seed(seed: int, content_hash: str) -> int:
    """The seed one track's deformation uses: from the run ``seed`` and its content hash, so
    tracks get independent noise and a rerun the same noise."""
    return int(hashlib.sha256(f"{int(seed)}:{content_hash}".encode()).hexdigest()[:8], 16)


def deformed_fingerprint(clean: str, name: str, strength: float, seed: int) -> str:
    """Cache key of ``clean``'s embeddings of deformed tracks, e.g.
    ``mfcc-8a7e...~noise0.1-s0-1f2e3d4c``."""
    check(name, strength)
    payload = json.dumps({"clean": clean, "name": name, "strength": float(strength),
                          "seed": int(seed), "version": DEFORM_VERSION,
                          "audiomentations": _lib_version("audiomentations"),
                          "lameenc": _lib_version("lameenc") if name == "mp3" else None},
                         sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
    return f"{clean}~{name}{float(strength):g}-s{int(seed)}-{digest}"


class DeformedExtractor:
    """``extractor`` under another cache key: same model, same inputs, the entries of deformed
    audio. Everything but :attr:`fingerprint` and :meth:`metadata` is the wrapped
    extractor's (it embeds the deformed files :func:`embed_deformed` writes)."""

    def __init__(self, extractor: Extractor, name: str, strength: float, seed: int):
        self.base = extractor
        self.deformation = (name, float(strength), int(seed))
        self._fingerprint = deformed_fingerprint(extractor.fingerprint, name, strength, seed)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.base, attr)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def metadata(self) -> dict[str, Any]:
        name, strength, seed = self.deformation
        d = DEFORMATIONS[name]
        return {**self.base.metadata(), "fingerprint": self._fingerprint,
                "clean_fingerprint": self.base.fingerprint,
                "deformation": {"name": name, "strength": strength, "unit": d.unit,
                                "label": label(name, strength), "seed": seed, "via": d.via,
                                "version": DEFORM_VERSION,
                                "audiomentations": _lib_version("audiomentations")}}


def _write_deformed(rows: list[dict], folder: Path, name: str, strength: float, seed: int
                    ) -> tuple[dict[str, tuple[str, float]], dict[str, tuple[str, str]]]:
    """Deform each row's file into ``folder``: content hash -> (path, seconds), and content
    hash -> (track id, reason) for the files that could not be read or deformed."""
    written, failed = {}, {}
    for i, row in enumerate(rows):
        try:
            wave = load_audio(row["path"], None, on_silence="ignore")
            sr = int(sf.info(str(row["path"])).samplerate)
            out = deform(wave, sr, name, strength, track_seed(seed, row["content_hash"]))
            path = folder / f"{i:06d}.wav"
            sf.write(str(path), out, sr, subtype="FLOAT")
        except Exception as exc:  # noqa: BLE001 - one file's failure, reported, run goes on
            failed[row["content_hash"]] = (row["track_id"], f"{type(exc).__name__}: {exc}")
            continue
        written[row["content_hash"]] = (str(path), len(out) / sr)
    return written, failed


def embed_deformed(
    tracks: pd.DataFrame,
    extractors: Mapping[str, Extractor],
    store: EmbeddingStore,
    deformations: Sequence[tuple[str, float]],
    *,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Embed every track of ``tracks`` under every deformation with every extractor, through
    the cache; what is cached (and verifies) is not recomputed.

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``track_id``, ``path``, ``content_hash`` (a scanned collection).
    extractors : mapping of str to Extractor
        Label -> the clean extractor.
    store : EmbeddingStore
        The cache the clean embeddings live in.
    deformations : sequence of (name, strength)
        Keys of :data:`~mtbc.robustness.deform.DEFORMATIONS` with a strength.
    seed : int
        Run seed (each track's deformation seed derives from it and its content hash).

    Returns
    -------
    pandas.DataFrame
        One row per (deformation, model): ``deformation, name, strength, model, fingerprint,
        extracted, cached, failed, reasons, seconds``: tracks embedded now, found in the
        cache, and that could not be deformed or embedded (the first reasons), and the wall
        time since the deformation started. Tracks without a clean entry for a model are
        left out for that model.

    Example
    -------
    >>> report = embed_deformed(study.tracks, study.models, study.store,
    ...                         [("noise", 0.1), ("mp3", 32)], seed=0)  # doctest: +SKIP
    """
    rows_out = []
    records = tracks.to_dict("records")
    for name, strength in deformations:
        check(name, strength)
        start = time.perf_counter()
        wrapped = {m: DeformedExtractor(e, name, strength, seed) for m, e in extractors.items()}
        # only tracks the clean model embedded (a file it failed on is not tried again)
        clean = {m: [r["content_hash"] for r in records if store.has(r["content_hash"],
                                                                      e.fingerprint)]
                 for m, e in extractors.items()}
        missing = {m: set(store.missing(clean[m], w.fingerprint)) for m, w in wrapped.items()}
        need = set().union(*missing.values()) if missing else set()
        written: dict[str, tuple[str, float]] = {}
        failed: dict[str, tuple[str, str]] = {}
        with tempfile.TemporaryDirectory(prefix="mtbc-deformed-") as tmp:
            if need:
                todo = [r for r in records if r["content_hash"] in need]
                written, failed = _write_deformed(todo, Path(tmp), name, strength, seed)
            for model, w in wrapped.items():
                todo = [dict(r, path=written[r["content_hash"]][0],
                             duration=written[r["content_hash"]][1])
                        for r in records if r["content_hash"] in missing[model]
                        and r["content_hash"] in written]
                n_cached = len(clean[model]) - len(missing[model])
                bad = [v for h, v in failed.items() if h in missing[model]]
                extracted = 0
                if todo:
                    rep = extract_collection(pd.DataFrame(todo), w, store, progress=progress)
                    extracted = len(rep.extracted)
                    bad += list(zip(rep.failed["track_id"], rep.failed["reason"], strict=True))
                rows_out.append({
                    "deformation": label(name, strength), "name": name,
                    "strength": float(strength), "model": model, "fingerprint": w.fingerprint,
                    "extracted": extracted, "cached": n_cached, "failed": len(bad),
                    "reasons": "; ".join(f"{t}: {why}" for t, why in bad[:3]),
                    "seconds": round(time.perf_counter() - start, 2)})
    return pd.DataFrame(rows_out, columns=["deformation", "name", "strength", "model",
                                           "fingerprint", "extracted", "cached", "failed",
                                           "reasons", "seconds"])


def load_pair(tracks: pd.DataFrame, store: EmbeddingStore, clean: str, deformed: str, *,
              layer: int | str = "mean", reduce: str | None = "mean"):
    """Clean and deformed embeddings of the tracks that have both.

    Returns ``(subset, clean_X, deformed_X)``: with ``reduce="mean"`` arrays ``(n, dim)`` (the
    track mean of ``layer``, an int or ``"mean"`` of layers); with ``reduce=None`` each is
    ``(segments (N, n_layers, dim), track_index (N,))`` as the probe protocol takes them.
    """
    have = np.array([store.has(h, clean) and store.has(h, deformed)
                     for h in tracks["content_hash"]], dtype=bool)
    subset = tracks.loc[have].reset_index(drop=True)
    if not len(subset):
        raise KeyError(f"no track has both {clean} and {deformed} cached; run "
                       f"embed_deformed first")
    hashes = list(subset["content_hash"])
    if reduce is None:
        return (subset, store.load_many(hashes, clean, reduce=None),
                store.load_many(hashes, deformed, reduce=None))
    out = []
    for fp in (clean, deformed):
        X = store.load_many(hashes, fp, reduce="mean")
        out.append(X.mean(axis=1) if isinstance(layer, str) else X[:, int(layer)])
    return subset, out[0], out[1]
