"""Index build time and query latency on synthetic vectors (``docs/similarity.md``).

``python -m mtbc.similarity.scale --sizes 10000,1000000`` times, for each collection size,
the exact index (``IndexFlatIP``) and the approximate ones (HNSW, IVF): build seconds, the
latency of one query at a time (median and 95th percentile, ms), the time per query when
queries come in one batch, recall@10 against the exact index, and the index size in MiB.

The vectors are clustered like embeddings of music (``n_clusters`` Gaussian clusters of
unit-norm centres plus isotropic noise), not uniform noise, on which every approximate index
does badly and no music collection looks like. They are generated in chunks of ``chunk`` rows
from a seed, so 1,000,000 x 1024 float32 (4 GB) never sits in memory twice: each index is
built from a fresh stream of the same vectors, one index at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import faiss
import numpy as np
import pandas as pd

from mtbc.similarity.index import IndexOptions, VectorIndex, normalise


@dataclass(frozen=True)
class ScaleOptions:
    """What :func:`bench_similarity` measures.

    Attributes
    ----------
    sizes : tuple of int
        Collection sizes (vectors).
    dim : int
        Dimensions (1024: MERT-v1-330M's width).
    kinds : tuple of str
        Index kinds: ``exact``, ``hnsw``, ``ivf``.
    hnsw_max : int
        Largest size an HNSW graph is built for (its build is the slowest by far on few cores).
    n_queries : int
        Queries timed (held-out vectors of the same clusters).
    k : int
        Neighbours per query.
    n_clusters, noise : int, float
        Clusters of the synthetic data and the noise's standard deviation per dimension
        (relative to unit-norm centres).
    chunk : int
        Rows generated and added at a time.
    seed : int
    index : IndexOptions
        HNSW and IVF parameters.
    """

    sizes: tuple[int, ...] = (10_000, 1_000_000)
    dim: int = 1024
    kinds: tuple[str, ...] = ("exact", "hnsw", "ivf")
    hnsw_max: int = 1_000_000
    n_queries: int = 100
    k: int = 10
    n_clusters: int = 1000
    noise: float = 0.02
    chunk: int = 50_000
    seed: int = 0
    index: IndexOptions = IndexOptions()  # noqa: RUF009 - frozen, so one shared default is safe


def synthetic_chunks(n: int, opts: ScaleOptions, *, stream: int = 0) -> Iterator[np.ndarray]:
    """``n`` clustered vectors ``(rows, dim)`` float32 in chunks; the same ``stream`` always
    gives the same vectors (the queries use another stream of the same clusters)."""
    centres = normalise(np.random.default_rng((opts.seed, 0)).standard_normal(
        (opts.n_clusters, opts.dim), dtype=np.float32))
    rng = np.random.default_rng((opts.seed, 1, stream))
    for start in range(0, n, opts.chunk):
        m = min(opts.chunk, n - start)
        which = rng.integers(0, opts.n_clusters, m)
        noise = rng.standard_normal((m, opts.dim), dtype=np.float32)
        yield normalise(centres[which] + opts.noise * noise)


def _empty(kind: str, n: int, opts: ScaleOptions) -> faiss.Index:
    o = opts.index
    if kind == "exact":
        return faiss.IndexFlatIP(opts.dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(opts.dim, o.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = o.ef_construction
        return index
    nlist = o.nlist or max(1, int(np.sqrt(n)))  # sqrt(n) cells: k-means stays affordable
    return faiss.IndexIVFFlat(faiss.IndexFlatIP(opts.dim), opts.dim, nlist,
                              faiss.METRIC_INNER_PRODUCT)


def _build(kind: str, n: int, opts: ScaleOptions) -> tuple[VectorIndex, float]:
    """The index and the seconds spent in faiss (train and add; generating the synthetic
    vectors is not counted)."""
    index = _empty(kind, n, opts)
    spent = 0.0
    if kind == "ivf":  # k-means on 64 vectors per cell (another stream of the same clusters)
        train = np.concatenate(list(synthetic_chunks(min(n, 64 * index.nlist), opts,
                                                     stream=2)))
        t0 = time.perf_counter()
        index.train(train)
        spent += time.perf_counter() - t0
        del train
    for chunk in synthetic_chunks(n, opts):
        t0 = time.perf_counter()
        index.add(chunk)
        spent += time.perf_counter() - t0
    return VectorIndex(index, kind, opts.dim, opts.index), spent


def _latency(vindex: VectorIndex, queries: np.ndarray, k: int) -> dict[str, float]:
    vindex.search(queries[:2], k)  # warm up
    single = []
    for q in queries:
        t0 = time.perf_counter()
        vindex.search(q[None, :], k)
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    vindex.search(queries, k)
    batch = (time.perf_counter() - t0) / len(queries)
    return {"query_ms_median": 1e3 * float(np.median(single)),
            "query_ms_p95": 1e3 * float(np.percentile(single, 95)),
            "batch_ms_per_query": 1e3 * batch}


def bench_similarity(opts: ScaleOptions | None = None, *, log=print) -> pd.DataFrame:
    """Build every index kind at every size and time it (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per (n, kind): ``n, dim, kind, build_s, query_ms_median, query_ms_p95,
        batch_ms_per_query, recall_at_k, k, index_mib, threads, note``.
    """
    opts = opts or ScaleOptions()
    rows = []
    queries = next(synthetic_chunks(opts.n_queries, opts, stream=1))
    for n in opts.sizes:
        exact_ids = None
        for kind in ("exact", *[k for k in opts.kinds if k != "exact"]):
            row = {"n": n, "dim": opts.dim, "kind": kind, "k": opts.k,
                   "threads": faiss.omp_get_max_threads(), "note": ""}
            if kind == "hnsw" and n > opts.hnsw_max:
                rows.append({**row, "note": f"not built above {opts.hnsw_max:,} vectors"})
                continue
            vindex, build_s = _build(kind, n, opts)
            row.update(build_s=build_s, **_latency(vindex, queries, opts.k))
            _, ids = vindex.search(queries, opts.k)
            if kind == "exact":
                exact_ids = ids
            row["recall_at_k"] = float(np.mean([len(set(a) & set(e)) / opts.k
                                                for a, e in zip(ids, exact_ids, strict=True)]))
            row["index_mib"] = faiss.serialize_index(vindex.index).nbytes / 2**20 \
                if n * opts.dim <= 50_000_000 else _size_estimate(kind, n, opts, vindex)
            if kind == "hnsw":
                row["note"] = (f"M {opts.index.hnsw_m}, efConstruction "
                               f"{opts.index.ef_construction}, efSearch {opts.index.ef_search}")
            elif kind == "ivf":
                row["note"] = f"nlist {vindex.index.nlist}, nprobe {opts.index.nprobe}"
            rows.append(row)
            log(f"n={n:,} {kind}: build {build_s:.1f} s, one query "
                f"{row['query_ms_median']:.2f} ms (p95 {row['query_ms_p95']:.2f}), batch "
                f"{row['batch_ms_per_query']:.3f} ms/query, recall@{opts.k} "
                f"{row['recall_at_k']:.3f}")
            del vindex
    return pd.DataFrame(rows)


def _size_estimate(kind: str, n: int, opts: ScaleOptions, vindex: VectorIndex) -> float:
    vectors = n * opts.dim * 4
    if kind == "hnsw":
        vectors += n * opts.index.hnsw_m * 2 * 4  # level-0 links, 4 bytes each
    elif kind == "ivf":
        vectors += n * 8 + vindex.index.nlist * opts.dim * 4  # ids and centroids
    return vectors / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtbc.similarity.scale",
                                     description="Time similarity indexes on synthetic vectors.")
    parser.add_argument("--sizes", default="10000,1000000", help="collection sizes")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--kinds", default="exact,hnsw,ivf")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", default=None, help="write the rows and the machine here")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: give whole numbers separated by commas")
    opts = ScaleOptions(sizes=sizes, dim=args.dim, kinds=tuple(args.kinds.split(",")),
                        hnsw_max=args.hnsw_max, n_queries=args.queries)
    table = bench_similarity(opts)
    print(table.round(3).to_string(index=False))
    if args.json:
        payload = {"options": {k: v for k, v in asdict(opts).items() if k != "index"}
                   | {"index": asdict(opts.index)},
                   "machine": {"cpus": os.cpu_count(), "processor": platform.processor(),
                               "faiss": faiss.__version__},
                   "rows": json.loads(table.to_json(orient="records"))}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
