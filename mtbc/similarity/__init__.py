"""Similarity search, playlists and retrieval evaluation over cached track embeddings.

- :mod:`mtbc.similarity.index`: faiss indexes (exact, HNSW, IVF), whitening, safe index files.
- :mod:`mtbc.similarity.search`: k nearest tracks with the query's own group left out;
  playlists (nearest-neighbour walk, smooth path between two songs).
- :mod:`mtbc.similarity.metrics`: P@k, AP@k, nDCG@k per query.
- :mod:`mtbc.similarity.retrieval`: :class:`RetrievalSystem` (fit / choose / score).
- :mod:`mtbc.similarity.study`: notebook 10's steps (imported on demand: it loads the cache).
- :mod:`mtbc.similarity.collection`: the ``mtbc similar`` / ``mtbc playlist`` commands' work.
- :mod:`mtbc.similarity.scale`: index build time and query latency on synthetic vectors.
"""

from mtbc.similarity.index import (
    IndexKey,
    IndexOptions,
    VectorIndex,
    Whitener,
    build_index,
    cached_index,
    load_index,
    normalise,
    recall_at_k,
    save_index,
)
from mtbc.similarity.metrics import (
    METRIC_NAMES,
    average_precision_at_k,
    jaccard,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
)
from mtbc.similarity.retrieval import Candidate, RetrievalSystem, score_queries
from mtbc.similarity.search import Neighbours, neighbours, playlist_path, playlist_walk

__all__ = [
    "METRIC_NAMES", "Candidate", "IndexKey", "IndexOptions", "Neighbours", "RetrievalSystem",
    "VectorIndex", "Whitener", "average_precision_at_k", "build_index", "cached_index",
    "jaccard", "load_index", "ndcg_at_k", "neighbours", "normalise", "playlist_path",
    "playlist_walk", "precision_at_k", "query_metrics", "recall_at_k", "save_index",
    "score_queries",
]
