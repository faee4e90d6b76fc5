"""The embedding cache (format: ``docs/cache.md``).

Layout: ``<root>/<fingerprint>/info.json`` (what the extractor was: model, revision, sample
rate, chunking, mtbc version) and ``<root>/<fingerprint>/<hash[:2]>/<hash>.npy``, one
``(n_segments, n_layers, dim)`` float32 array per track content hash.

Why one ``.npy`` per entry: each write is a single atomic rename, so a killed extraction
loses at most the entry in flight and resumes where it stopped; shards written by several
processes or machines merge by copying folders; and ``np.load(mmap_mode="r")`` reads only the
layers asked for, so loading 1,000 tracks x 25 layers x 1024 for analysis takes seconds.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc import __version__, config
from mtbc.files import atomic_write


class EmbeddingStore:
    """Embeddings on disk, keyed by (track content hash, extractor fingerprint)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else config.cache_dir()

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r})"

    # -- single entries -------------------------------------------------------------
    def path_for(self, content_hash: str, fingerprint: str) -> Path:
        """Where the entry lives (whether or not it exists)."""
        if not content_hash or "/" in content_hash or "/" in fingerprint:
            raise ValueError(f"bad cache key ({content_hash!r}, {fingerprint!r})")
        return self.root / fingerprint / content_hash[:2] / f"{content_hash}.npy"

    def has(self, content_hash: str, fingerprint: str) -> bool:
        return self.path_for(content_hash, fingerprint).is_file()

    def put(self, content_hash: str, fingerprint: str, embedding: np.ndarray) -> Path:
        """Store one ``(n_segments, n_layers, dim)`` array atomically."""
        arr = np.asarray(embedding)
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueError(f"embedding must be (n_segments, n_layers, dim), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"embedding for {content_hash} has non-finite values")
        path = self.path_for(content_hash, fingerprint)
        atomic_write(path, lambda f: np.save(f, arr.astype(np.float32, copy=False)))
        return path

    def get(self, content_hash: str, fingerprint: str, *, mmap: bool = False) -> np.ndarray | None:
        """The stored array, or ``None`` when absent or unreadable (never a partial one)."""
        path = self.path_for(content_hash, fingerprint)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            warnings.warn(f"{path}: unreadable cache entry ignored ({exc})", stacklevel=2)
            return None
        if arr.ndim != 3:
            warnings.warn(f"{path}: cache entry has shape {arr.shape}, ignored", stacklevel=2)
            return None
        return arr

    # -- per-fingerprint info -------------------------------------------------------
    def write_info(self, fingerprint: str, info: dict[str, Any]) -> None:
        """Record what produced the entries of ``fingerprint`` (atomic JSON), with the mtbc
        version that wrote them."""
        info = {"mtbc_version": __version__, **info}
        text = json.dumps(info, indent=2, sort_keys=True, default=str).encode()
        atomic_write(self.root / fingerprint / "info.json", lambda f: f.write(text))

    def read_info(self, fingerprint: str) -> dict[str, Any]:
        path = self.root / fingerprint / "info.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    # -- listing and bulk loading --------------------------------------------------
    def fingerprints(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def list(self, fingerprint: str | None = None) -> pd.DataFrame:
        """One row per cached entry: fingerprint, content_hash, n_segments, n_layers, dim, bytes."""
        rows = []
        for fp in [fingerprint] if fingerprint else self.fingerprints():
            for path in sorted((self.root / fp).glob("??/*.npy")):
                arr = self.get(path.stem, fp, mmap=True)
                if arr is None:
                    continue
                rows.append({"fingerprint": fp, "content_hash": path.stem,
                             "n_segments": arr.shape[0], "n_layers": arr.shape[1],
                             "dim": arr.shape[2], "bytes": path.stat().st_size})
        return pd.DataFrame(rows, columns=["fingerprint", "content_hash", "n_segments",
                                           "n_layers", "dim", "bytes"])

    def missing(self, content_hashes: Iterable[str], fingerprint: str) -> list[str]:
        """The hashes with no entry for ``fingerprint``."""
        return [h for h in content_hashes if not self.has(h, fingerprint)]

    def load_many(
        self,
        content_hashes: Sequence[str],
        fingerprint: str,
        *,
        layers: int | Sequence[int] | None = None,
        reduce: str | None = "mean",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Load many tracks into one array.

        ``reduce="mean"`` averages segments: ``(n_tracks, n_layers, dim)``.
        ``reduce=None`` keeps segments: ``(segments (N, n_layers, dim), track_index (N,))``
        where ``track_index[i]`` is the position in ``content_hashes`` of segment ``i``.
        ``layers`` selects layers while reading (memory-mapped), so unused layers stay on disk.
        A missing entry raises ``KeyError`` naming the hash.
        """
        if reduce not in ("mean", None):
            raise ValueError(f"reduce must be 'mean' or None, not {reduce!r}")
        layer_index = [layers] if isinstance(layers, int | np.integer) else layers
        parts, index = [], []
        for i, h in enumerate(content_hashes):
            arr = self.get(h, fingerprint, mmap=True)
            if arr is None:
                raise KeyError(f"no cached embedding for track {h} with extractor {fingerprint}; "
                               f"run `mtbc extract` first")
            if layer_index is not None:
                arr = arr[:, layer_index]
            if reduce == "mean":
                parts.append(arr.mean(axis=0, dtype=np.float64).astype(np.float32))
            else:
                parts.append(np.asarray(arr, dtype=np.float32))
                index.append(np.full(len(arr), i))
        if not parts:
            raise ValueError("no tracks to load")
        if reduce == "mean":
            return np.stack(parts)
        return np.concatenate(parts), np.concatenate(index)


def load_embeddings(tracks: pd.DataFrame, store: EmbeddingStore, fingerprint: str, *,
                    layers: int | Sequence[int] | None = None, reduce: str | None = "mean"):
    """The tracks that have an entry for ``fingerprint`` and their embeddings.

    Returns ``(tracks_subset, X)`` with ``X`` as :meth:`EmbeddingStore.load_many` gives it
    (``(n, L, D)`` for ``reduce="mean"``, ``(segments, track_index)`` for ``reduce=None``).
    Tracks without an entry (failed extraction) are left out of ``tracks_subset``.
    """
    have = [store.has(h, fingerprint) for h in tracks["content_hash"]]
    subset = tracks.loc[have].reset_index(drop=True)
    if not len(subset):
        raise KeyError(f"no cached embeddings for extractor {fingerprint} among these "
                       f"{len(tracks)} tracks; run `mtbc extract` first")
    return subset, store.load_many(list(subset["content_hash"]), fingerprint, layers=layers,
                                   reduce=reduce)


def load_aligned(tracks: pd.DataFrame, store: EmbeddingStore, fingerprints: dict[str, str]
                 ) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Segments of several extractors over the tracks that *every* one of them has.

    Returns ``(common_tracks, {label: (segments, track_index)})`` with every ``track_index``
    pointing into ``common_tracks``, so models can be compared and fused on the same tracks.
    """
    have = np.ones(len(tracks), dtype=bool)
    for fp in fingerprints.values():
        have &= np.array([store.has(h, fp) for h in tracks["content_hash"]], dtype=bool)
    common = tracks.loc[have].reset_index(drop=True)
    if not len(common):
        raise KeyError("no track has cached embeddings for every extractor; run `mtbc extract`")
    hashes = list(common["content_hash"])
    return common, {label: store.load_many(hashes, fp, reduce=None)
                    for label, fp in fingerprints.items()}
