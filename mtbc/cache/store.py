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
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc import __version__, config
from mtbc.files import StorageError, atomic_write

#: The file that marks a folder as an mtbc cache (written with the first entry or info).
MARKER = ".mtbc-cache"
_HASH_NAME = re.compile(r"^[0-9a-f]{64}$")
_FINGERPRINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Temp files of our own atomic writes: ``.<hash>.npy.<random>.tmp``, ``.info.json.<random>.tmp``.
_OUR_TEMP = re.compile(r"^\.(?:[0-9a-f]{64}\.npy|info\.json)\.[A-Za-z0-9_]+\.tmp$")
_CACHE_HINT = ("give a writable cache folder with `cache_dir:` in the params file, "
               "--cache, or MTBC_CACHE")


class NotACacheError(ValueError):
    """A folder that mtbc did not make a cache of; nothing in it was touched."""


class EmbeddingStore:
    """Embeddings on disk, keyed by (track content hash, extractor fingerprint).

    The store deletes only what it can prove it wrote: entries named by its hash scheme
    (``<fp>/<hash[:2]>/<hash>.npy``, 64 hex digits) inside fingerprint folders holding an
    ``info.json`` it wrote, in a root marked by :data:`MARKER`.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else config.cache_dir()
        self._expected: dict[str, dict[str, int]] = {}
        # entries found valid, by (size, mtime, inode): a file changed since is checked again
        self._valid: dict[Path, tuple[int, int, int]] = {}

    # -- ownership -----------------------------------------------------------------
    def is_cache(self) -> bool:
        """Whether :attr:`root` is an mtbc cache: the marker, or (caches made before the
        marker existed) a fingerprint folder holding an ``info.json`` mtbc wrote."""
        return (self.root / MARKER).is_file() or bool(self.owned_fingerprints())

    def owned_fingerprints(self) -> list[str]:
        """Fingerprint folders whose ``info.json`` mtbc wrote (it names an mtbc version)."""
        return [fp for fp in self.fingerprints()
                if _FINGERPRINT_NAME.match(fp) and "mtbc_version" in self.read_info(fp)]

    def _mark(self) -> None:
        marker = self.root / MARKER
        if marker.is_file():
            return
        text = json.dumps({"mtbc_cache": 1, "mtbc_version": __version__}).encode()
        self._write(marker, lambda f: f.write(text))

    def _write(self, path: Path, write) -> None:
        try:
            atomic_write(path, write)
        except StorageError as exc:
            raise exc.with_hint(_CACHE_HINT, folder=self.root) from None

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r})"

    # -- single entries -------------------------------------------------------------
    def path_for(self, content_hash: str, fingerprint: str) -> Path:
        """Where the entry lives (whether or not it exists)."""
        if not content_hash or "/" in content_hash or "/" in fingerprint:
            raise ValueError(f"bad cache key ({content_hash!r}, {fingerprint!r})")
        return self.root / fingerprint / content_hash[:2] / f"{content_hash}.npy"

    def has(self, content_hash: str, fingerprint: str) -> bool:
        """Whether a *valid* entry exists (see :meth:`problem`)."""
        return self.problem(content_hash, fingerprint) is None

    def expected(self, fingerprint: str) -> dict[str, int]:
        """``n_layers`` and ``dim`` the fingerprint's ``info.json`` promises (those known)."""
        if fingerprint not in self._expected:
            info = self.read_info(fingerprint)
            out = {}
            for key, names in (("n_layers", ("n_layers",)),
                               ("dim", ("dim", "hidden_size", "embedding_size"))):
                value = next((info[n] for n in names if isinstance(info.get(n), int)), None)
                if value is not None:
                    out[key] = value
            self._expected[fingerprint] = out
        return self._expected[fingerprint]

    def problem(self, content_hash: str, fingerprint: str) -> str | None:
        """``None`` for a valid entry, ``"absent"``, or what is wrong with the stored one.

        Valid: loads as a float32 ``(n_segments, n_layers, dim)`` array with at least one
        segment, with the layer count and dimension its fingerprint's info promises, and
        finite everywhere.
        """
        path = self.path_for(content_hash, fingerprint)
        try:
            st = path.stat()
        except OSError:
            return "absent"
        if not path.is_file():
            return "absent"
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._valid.get(path) == stamp:  # checked in this session and unchanged since
            return None
        why = self._check(path, fingerprint)
        if why is None:
            self._valid[path] = stamp
        return why

    def _check(self, path: Path, fingerprint: str) -> str | None:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - truncated, garbage, pickled: all unreadable
            return f"unreadable ({type(exc).__name__}: {exc})"
        if arr.dtype != np.float32:
            return f"dtype {arr.dtype}, expected float32"
        if arr.ndim != 3 or 0 in arr.shape:
            return f"shape {arr.shape}, expected (n_segments, n_layers, dim)"
        want = self.expected(fingerprint)
        for axis, key in ((1, "n_layers"), (2, "dim")):
            if key in want and arr.shape[axis] != want[key]:
                return f"{arr.shape[axis]} {key.replace('n_', '')}, expected {want[key]}"
        try:
            finite = all(np.isfinite(arr[i:i + 256]).all() for i in range(0, len(arr), 256))
        except Exception as exc:  # noqa: BLE001 - a file cut short under the mmap
            return f"unreadable ({type(exc).__name__}: {exc})"
        return None if finite else "holds NaN or infinite values"

    def _entries(self, fp: str) -> list[Path]:
        """Files of ``fp`` named by the hash scheme (``<hash[:2]>/<64 hex>.npy``)."""
        return [p for p in sorted((self.root / fp).glob("??/*.npy"))
                if _HASH_NAME.match(p.stem) and p.parent.name == p.stem[:2]
                and p.is_file() and not p.is_symlink()]

    def verify(self, fingerprint: str | None = None) -> pd.DataFrame:
        """Every bad entry: ``fingerprint, content_hash, path, problem``. Only files named by
        the hash scheme in fingerprint folders mtbc wrote are entries; nothing else is
        looked at."""
        rows = []
        owned = self.owned_fingerprints()
        for fp in [fingerprint] if fingerprint else owned:
            if fp not in owned:
                continue
            for path in self._entries(fp):
                why = self.problem(path.stem, fp)
                if why is not None:
                    rows.append({"fingerprint": fp, "content_hash": path.stem,
                                 "path": str(path), "problem": why})
        return pd.DataFrame(rows, columns=["fingerprint", "content_hash", "path", "problem"])

    def remove_bad(self) -> tuple[pd.DataFrame, list[Path]]:
        """Delete the bad entries :meth:`verify` lists and stale temp files of our writes:
        ``(verify's table of the entries removed, temp files removed)``.

        Raises :class:`NotACacheError` (nothing removed) when :attr:`root` is not an mtbc
        cache (:meth:`is_cache`).
        """
        if not self.is_cache():
            raise NotACacheError(f"{self.root} is not an mtbc cache (no {MARKER} marker and "
                                 f"no extractor folder with an info.json mtbc wrote): nothing "
                                 f"removed; give the cache folder (--cache or MTBC_CACHE)")
        bad = self.verify()
        for path in bad["path"]:
            Path(path).unlink(missing_ok=True)
        return bad, self.remove_stale_temp()

    def remove_stale_temp(self, fingerprint: str | None = None, *,
                          older_than: float | None = None) -> list[Path]:
        """Delete temp files left by our killed writers (``.<hash>.npy.*.tmp``,
        ``.info.json.*.tmp``) older than ``older_than`` (a ``time.time()``; default: an hour
        ago, so a concurrent writer's file is kept), in fingerprint folders mtbc wrote."""
        cutoff = time.time() - 3600 if older_than is None else older_than
        removed = []
        owned = self.owned_fingerprints()
        for fp in [fingerprint] if fingerprint else owned:
            if fp not in owned:
                continue
            folder = self.root / fp
            for tmp in [*folder.glob(".*.tmp"), *folder.glob("??/.*.tmp")]:
                if not _OUR_TEMP.match(tmp.name) or tmp.is_symlink():
                    continue
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                        removed.append(tmp)
                except OSError:
                    pass
        return removed

    def put(self, content_hash: str, fingerprint: str, embedding: np.ndarray) -> Path:
        """Store one ``(n_segments, n_layers, dim)`` array atomically."""
        arr = np.asarray(embedding)
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueError(f"embedding must be (n_segments, n_layers, dim), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"embedding for {content_hash} has non-finite values")
        path = self.path_for(content_hash, fingerprint)
        self._mark()
        self._write(path, lambda f: np.save(f, arr.astype(np.float32, copy=False)))
        return path

    def get(self, content_hash: str, fingerprint: str, *, mmap: bool = False) -> np.ndarray | None:
        """The stored array, or ``None`` when absent or invalid (never a partial one; an
        invalid entry warns, naming the file and what is wrong)."""
        path = self.path_for(content_hash, fingerprint)
        why = self.problem(content_hash, fingerprint)
        if why == "absent":
            return None
        if why is not None:
            warnings.warn(f"{path}: bad cache entry ignored ({why}); `mtbc extract` "
                          f"recomputes it", stacklevel=2)
            return None
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

    # -- per-fingerprint info -------------------------------------------------------
    def write_info(self, fingerprint: str, info: dict[str, Any]) -> None:
        """Record what produced the entries of ``fingerprint`` (atomic JSON), with the mtbc
        version that wrote them. An unchanged ``info.json`` is not rewritten, so a fully
        cached run works on a read-only cache."""
        info = {"mtbc_version": __version__, **info}
        text = json.dumps(info, indent=2, sort_keys=True, default=str).encode()
        path = self.root / fingerprint / "info.json"
        try:
            if path.read_bytes() == text:
                return
        except OSError:
            pass
        self._expected.pop(fingerprint, None)
        self._mark()
        self._write(path, lambda f: f.write(text))

    def read_info(self, fingerprint: str) -> dict[str, Any]:
        """The ``info.json`` of ``fingerprint`` (``{}`` when absent or not a JSON object)."""
        path = self.root / fingerprint / "info.json"
        try:
            info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    # -- listing and bulk loading --------------------------------------------------
    def fingerprints(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def list(self, fingerprint: str | None = None) -> pd.DataFrame:
        """One row per cached entry: fingerprint, content_hash, n_segments, n_layers, dim, bytes."""
        rows = []
        for fp in [fingerprint] if fingerprint else self.fingerprints():
            for path in self._entries(fp):
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
            why = self.problem(h, fingerprint)
            if why == "absent":
                raise KeyError(f"no cached embedding for track {h} with extractor {fingerprint}; "
                               f"run `mtbc extract` first")
            if why is not None:
                raise KeyError(f"{self.path_for(h, fingerprint)}: bad cache entry ({why}); "
                               f"run `mtbc extract` to recompute it")
            arr = np.load(self.path_for(h, fingerprint), mmap_mode="r", allow_pickle=False)
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
