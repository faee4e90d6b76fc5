"""Nearest-neighbour indexes over track embeddings (faiss), optional whitening, safe files.

- Vectors are L2-normalised float32, so inner product is cosine similarity.
- :func:`build_index`: ``faiss.IndexFlatIP`` (exact) by default; above
  :attr:`IndexOptions.approximate_above` vectors an HNSW graph (``IndexHNSWFlat`` with inner
  product) or an IVF index (``IndexIVFFlat``), whose agreement with the exact index is
  measured by :func:`recall_at_k`.
- :class:`Whitener`: shrunk PCA whitening fitted on *training* vectors only, then
  re-normalised.
- :func:`save_index` / :func:`load_index`: ``faiss.serialize_index`` bytes (faiss's own binary
  format, no pickle) and a JSON header with the cache fingerprint, the tracks' content hashes
  and the index's sha256; :func:`cached_index` rebuilds when any of them changes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from threadpoolctl import threadpool_limits

from mtbc import __version__
from mtbc.files import atomic_write

FORMAT = "mtbc-similarity-index/1"
KINDS = ("auto", "exact", "hnsw", "ivf")


@dataclass(frozen=True)
class IndexOptions:
    """How an index is built.

    Attributes
    ----------
    kind : {"auto", "exact", "hnsw", "ivf"}
        ``"auto"``: exact up to ``approximate_above`` vectors, HNSW above.
    approximate_above : int
        Vector count above which ``"auto"`` builds an approximate index.
    hnsw_m, ef_construction, ef_search : int
        HNSW graph degree, build-time and query-time beam widths.
    nlist, nprobe : int or None, int
        IVF cells (``None``: ``4 * sqrt(n)``) and cells visited per query.
    threads : int or None
        faiss OpenMP threads (``None``: faiss's default).
    """

    kind: str = "auto"
    approximate_above: int = 100_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 16
    threads: int | None = None

    def resolved_kind(self, n: int) -> str:
        if self.kind not in KINDS:
            raise ValueError(f"index kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "auto":
            return "hnsw" if n > self.approximate_above else "exact"
        return self.kind


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """BLAS and faiss (OpenMP) threads limited to ``n`` inside the block (``None``: as is).

    Many small searches and whitening fits (notebook 10) run faster on one thread than with
    threads spinning against each other on a busy machine.
    """
    if n is None:
        yield
        return
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        faiss.omp_set_num_threads(old)


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as C-contiguous float32 ``(n, dim)`` (zero rows stay 0).

    Examples
    --------
    >>> normalise(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]], dtype=float32)
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"vectors must be (n, dim), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("vectors hold NaN or infinite values")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@dataclass
class Whitener:
    """Shrunk PCA whitening of L2-normalised vectors, fitted on training tracks only.

    ``fit`` centres the (normalised) training vectors and estimates their covariance shrunk
    towards a multiple of the identity, ``C = (1 - b) S + b t I`` (``S`` the sample
    covariance, ``t`` its mean eigenvalue, ``b`` the Ledoit-Wolf shrinkage of
    :func:`sklearn.covariance.ledoit_wolf_shrinkage`); ``transform`` applies ``C^(-1/2)``
    and normalises again (cosine similarity in the whitened space). Plain PCA whitening with
    fewer training tracks than dimensions maps the training tracks onto a regular simplex and
    drops every direction they do not span, so a new track would be compared on other terms
    than a training one; the shrinkage keeps all directions and whitens only as far as the
    data support. At most ``max_rows`` training rows (a seeded sample) are used.

    Examples
    --------
    >>> w = Whitener().fit(np.random.default_rng(0).normal(size=(50, 8)))
    >>> w.transform(np.ones((2, 8))).shape
    (2, 8)
    """

    max_rows: int = 20_000
    mean_: np.ndarray | None = field(default=None, repr=False)
    components_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)
    residual_scale_: float = 0.0
    shrinkage_: float = float("nan")

    def fit(self, X: np.ndarray) -> Whitener:
        Xn = normalise(X)
        if len(Xn) < 2:
            raise ValueError(f"whitening needs at least 2 training tracks, got {len(Xn)}")
        if len(Xn) > self.max_rows:
            rows = np.random.default_rng(0).choice(len(Xn), self.max_rows, replace=False)
            Xn = Xn[np.sort(rows)]
        X64 = Xn.astype(np.float64)
        mean = X64.mean(axis=0)
        Xc = X64 - mean
        _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
        lam = S ** 2 / (len(Xc) - 1)
        keep = lam > 1e-12 * max(float(lam[0]), 1e-30)
        tau = float(lam.sum()) / Xn.shape[1]
        b = float(ledoit_wolf_shrinkage(Xn.astype(np.float64)))
        floor = b * tau
        self.mean_ = mean.astype(np.float32)
        self.components_ = Vt[keep].astype(np.float32)
        self.scale_ = (1.0 / np.sqrt((1 - b) * lam[keep] + floor)).astype(np.float32)
        self.residual_scale_ = float(1.0 / np.sqrt(floor)) if floor > 1e-12 else 0.0
        self.shrinkage_ = b
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.components_ is None:
            raise ValueError("Whitener is not fitted; call fit on training vectors first")
        Xc = normalise(X) - self.mean_
        P = Xc @ self.components_.T
        Z = Xc * self.residual_scale_ + (P * (self.scale_ - self.residual_scale_)) @ \
            self.components_
        return normalise(Z)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "components": self.components_, "scale": self.scale_,
                "residual_scale": np.array([self.residual_scale_, self.shrinkage_])}

    @classmethod
    def from_arrays(cls, arrays) -> Whitener:
        residual, shrinkage = np.asarray(arrays["residual_scale"], np.float64)
        return cls(mean_=np.asarray(arrays["mean"], np.float32),
                   components_=np.asarray(arrays["components"], np.float32),
                   scale_=np.asarray(arrays["scale"], np.float32),
                   residual_scale_=float(residual), shrinkage_=float(shrinkage))


@dataclass
class VectorIndex:
    """A faiss index over L2-normalised vectors; row ``i`` of the build is position ``i``."""

    index: faiss.Index
    kind: str
    dim: int
    options: IndexOptions = field(default_factory=IndexOptions)

    @property
    def n(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest positions of each query.

        Parameters
        ----------
        queries : numpy.ndarray of shape (n_queries, dim)
            Query vectors (normalised here).
        k : int
            Neighbours per query (capped at the index size).

        Returns
        -------
        scores, positions : numpy.ndarray of shape (n_queries, k)
            Cosine similarity (best first) and row positions; ``-1`` where fewer exist.
        """
        Q = normalise(queries)
        if Q.shape[1] != self.dim:
            raise ValueError(f"queries have {Q.shape[1]} dimensions, the index {self.dim}")
        k = min(int(k), self.n)
        if k < 1:
            return np.zeros((len(Q), 0), np.float32), np.zeros((len(Q), 0), np.int64)
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.options.ef_search, k)
        elif self.kind == "ivf":
            self.index.nprobe = self.options.nprobe
        return self.index.search(Q, k)


def build_index(X: np.ndarray, *, options: IndexOptions | None = None) -> VectorIndex:
    """An index over the rows of ``X``.

    Parameters
    ----------
    X : numpy.ndarray of shape (n, dim)
        Vectors (any float; normalised here).
    options : IndexOptions
        Kind and parameters (default: exact up to 100,000 vectors, HNSW above).

    Returns
    -------
    VectorIndex

    Examples
    --------
    >>> X = np.eye(4)
    >>> build_index(X).search(X[:1], 2)[1]
    array([[0, 1]])
    """
    options = options or IndexOptions()
    Xn = normalise(X)
    n, dim = Xn.shape
    if options.threads:
        faiss.omp_set_num_threads(int(options.threads))
    kind = options.resolved_kind(n)
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, options.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = options.ef_construction
    else:
        nlist = options.nlist or max(1, int(4 * np.sqrt(n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, min(nlist, n),
                                   faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        train = Xn[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.train(train)
    index.add(Xn)
    return VectorIndex(index, kind, dim, options)


def recall_at_k(approximate: VectorIndex, exact: VectorIndex, queries: np.ndarray, *,
                k: int = 10) -> float:
    """Mean share of the exact top ``k`` that the approximate index also returns.

    Parameters
    ----------
    approximate, exact : VectorIndex
        Built over the same vectors in the same order.
    queries : numpy.ndarray of shape (n_queries, dim)
    k : int

    Returns
    -------
    float
        In [0, 1]; 1 means identical neighbour sets.
    """
    _, a = approximate.search(queries, k)
    _, e = exact.search(queries, k)
    hits = [len(set(ai[ai >= 0]) & set(ei[ei >= 0])) / max(1, (ei >= 0).sum())
            for ai, ei in zip(a, e, strict=True)]
    return float(np.mean(hits))


# ------------------------------------------------------------------------ files

@dataclass(frozen=True)
class IndexKey:
    """What an index file was built from: it is reused only while all of it is unchanged."""

    fingerprint: str
    layer: int | str
    whiten: bool
    content_hashes: tuple[str, ...]
    kind: str = "auto"

    def digest(self) -> str:
        text = json.dumps([self.fingerprint, str(self.layer), self.whiten, self.kind,
                           list(self.content_hashes)])
        return hashlib.sha256(text.encode()).hexdigest()


def save_index(vindex: VectorIndex, path: str | Path, *, key: IndexKey,
               whitener: Whitener | None = None) -> Path:
    """Write ``<path>.faiss`` (faiss binary), ``<path>.npz`` (whitening, no pickle) and
    ``<path>.json`` (header), each atomically. Returns the JSON path."""
    path = Path(path)
    blob = faiss.serialize_index(vindex.index).tobytes()
    atomic_write(path.with_suffix(".faiss"), lambda f: f.write(blob))
    white_sha = None
    if whitener is not None:
        buf = io.BytesIO()
        np.savez(buf, **whitener.arrays())
        data = buf.getvalue()
        atomic_write(path.with_suffix(".npz"), lambda f: f.write(data))
        white_sha = hashlib.sha256(data).hexdigest()
    header = {"format": FORMAT, "mtbc_version": __version__, "kind": vindex.kind,
              "dim": vindex.dim, "n": vindex.n, "options": asdict(vindex.options),
              "fingerprint": key.fingerprint, "layer": key.layer, "whiten": key.whiten,
              "key": key.digest(), "index_sha256": hashlib.sha256(blob).hexdigest(),
              "whitening_sha256": white_sha}
    text = json.dumps(header, indent=2).encode()
    atomic_write(path.with_suffix(".json"), lambda f: f.write(text))
    return path.with_suffix(".json")


def load_index(path: str | Path, *, key: IndexKey | None = None
               ) -> tuple[VectorIndex, Whitener | None] | None:
    """Read what :func:`save_index` wrote; ``None`` when absent, damaged (checksums differ)
    or built from something else than ``key`` (another cache fingerprint, layer or track set)."""
    path = Path(path)
    try:
        header = json.loads(path.with_suffix(".json").read_text())
        if header.get("format") != FORMAT or (key is not None and header["key"] != key.digest()):
            return None
        blob = path.with_suffix(".faiss").read_bytes()
        if hashlib.sha256(blob).hexdigest() != header["index_sha256"]:
            return None
        whitener = None
        if header.get("whitening_sha256"):
            data = path.with_suffix(".npz").read_bytes()
            if hashlib.sha256(data).hexdigest() != header["whitening_sha256"]:
                return None
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                whitener = Whitener.from_arrays(arrays)
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        options = IndexOptions(**header["options"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return VectorIndex(index, header["kind"], int(header["dim"]), options), whitener


def cached_index(X: np.ndarray, path: str | Path, *, key: IndexKey,
                 options: IndexOptions | None = None,
                 train_rows: Sequence[int] | None = None) -> tuple[VectorIndex, Whitener | None,
                                                                   bool]:
    """The index at ``path`` if it was built from ``key``, else one built from ``X`` and saved.

    ``train_rows``: the rows whitening is fitted on (all rows when ``None``); only used with
    ``key.whiten``. Returns ``(index, whitener or None, reused)``.
    """
    options = options or IndexOptions()
    loaded = load_index(path, key=key)
    if loaded is not None:
        return (*loaded, True)
    whitener = None
    vectors = X
    if key.whiten:
        rows = np.arange(len(X)) if train_rows is None else np.asarray(train_rows)
        whitener = Whitener().fit(X[rows])
        vectors = whitener.transform(X)
    vindex = build_index(vectors, options=options)
    save_index(vindex, path, key=key, whitener=whitener)
    return vindex, whitener, False
