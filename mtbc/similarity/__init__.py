"""Similarity search, playlists and retrieval evaluation over cached track embeddings.

- :mod:`mtbc.similarity.index`: faiss indexes (exact, HNSW, IVF), whitening, safe index files.
- :mod:`mtbc.similarity.search`: k nearest tracks with the query's own group left out;
  playlists (nearest-neighbour walk, smooth path between two songs).
- :mod:`mtbc.similarity.metrics`: P@k, AP@k, nDCG@k per query.
- :mod:`mtbc.similarity.retrieval`: :class:`RetrievalSystem` (fit / choose / score).
- :mod:`mtbc.similarity.study`: notebook 10's steps (imported on demand: it loads the cache).
- :mod:`mtbc.similarity.report`: notebook 10's tables and figure.
- :mod:`mtbc.similarity.collection` and :mod:`mtbc.similarity.commands`: ``mtbc similar`` and
  ``mtbc playlist``.
- :mod:`mtbc.similarity.scale`: index build time and query latency on synthetic vectors.
"""

import importlib

#: Public name -> submodule; loaded on first use (faiss and scikit-learn take seconds to
#: import, and ``mtbc --help`` must not wait for them), as librosa's lazy stubs do.
_PUBLIC = {
    "index": ("IndexKey", "IndexOptions", "VectorIndex", "Whitener", "build_index",
              "cached_index", "load_index", "normalise", "recall_at_k", "save_index"),
    "metrics": ("METRIC_NAMES", "average_precision_at_k", "jaccard", "ndcg_at_k",
                "precision_at_k", "query_metrics"),
    "retrieval": ("Candidate", "RetrievalSystem", "score_queries"),
    "search": ("KeepGroup", "Neighbours", "neighbours", "playlist_path", "playlist_walk"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mtbc.similarity' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mtbc.similarity.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
