"""Search one collection with one extractor: what ``mtbc similar`` and ``mtbc playlist`` do.

:meth:`CollectionIndex.open` scans the collection (the scan cached beside the embeddings),
loads the track means of one layer from the verified embedding cache, and loads or builds its
faiss index (``<index_dir>/<collection>/<fingerprint>-L<layer>[-white]``, rebuilt whenever
the extractor fingerprint, the layer, the whitening or the set of cached tracks changes).

A query is a track id of the collection or an audio file. A file of the collection (same
content hash) is that track; another file is embedded through the cache (computed and stored
when missing, exactly as ``mtbc extract`` does) and its near duplicates among the nearest
tracks are found with the audio fingerprint of :mod:`mtbc.data.duplicates`. The query's own
track, its near duplicates and its group (artist) are left out of the results unless asked.

A query may also be text (:meth:`CollectionIndex.by_text`, ``mtbc similar --text``) when the
extractor has a text tower (CLAP): the tracks are ranked by the cosine of their joint-space
embedding (the last layer) with the text's (:func:`mtbc.zeroshot.search_by_text`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc import config
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import open_collection
from mtbc.extractors import Extractor, get_extractor
from mtbc.files import atomic_write, content_hash
from mtbc.similarity.errors import SimilarityInputError
from mtbc.similarity.index import IndexKey, IndexOptions, VectorIndex, Whitener, cached_index
from mtbc.similarity.search import (
    KeepGroup,
    group_codes_of,
    neighbours,
    playlist_path,
    playlist_walk,
)
from mtbc.zeroshot import has_text, search_by_text


@dataclass(frozen=True)
class SearchOptions:
    """Which collection, extractor and space to search.

    Attributes
    ----------
    collection : str
        As ``mtbc scan`` takes it (``demo``, a folder, a CSV manifest, ``gtzan:<root>``).
    extractor : str
        Extractor name (``musicnn``, ``mfcc``, ``mert``, ``vggish``).
    extractor_options : dict
        Options for :func:`mtbc.extractors.get_extractor` (they set the fingerprint).
    cache : str or None
        Embedding cache folder (``None``: ``data/cache``).
    layer : int or None
        Layer searched (``None``: the last layer).
    whiten : bool
        PCA-whiten the collection (fitted on all its tracks) before searching.
    index_dir : str or None
        Where index files go (``None``: ``data/models/similarity``, beside trained models).
    index : IndexOptions
        Exact up to 100,000 tracks, HNSW above (default).
    text : bool
        Queries are text: the extractor must have a text tower (CLAP), the joint space (the
        last layer) is searched, unwhitened.
    """

    collection: str
    extractor: str = "musicnn"
    extractor_options: dict = field(default_factory=dict)
    cache: str | None = None
    layer: int | None = None
    whiten: bool = False
    index_dir: str | None = None
    index: IndexOptions = field(default_factory=IndexOptions)
    text: bool = False


@dataclass
class Query:
    """A resolved query: its ``row`` in the tracks table (``None`` outside the collection),
    ``vector`` in the searched space, ``name`` as shown, and rows to leave out
    (``exclude``: near duplicates of an outside song)."""

    name: str
    vector: np.ndarray
    row: int | None = None
    exclude: tuple[int, ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class SearchSpace:
    """The space a :class:`CollectionIndex` searches.

    Attributes
    ----------
    layer : int
        The extractor layer searched.
    vectors : numpy.ndarray of shape (n_tracks, dim)
        Track means at that layer, before any whitening.
    index : VectorIndex
        The faiss index over the (whitened) vectors.
    whitener : Whitener or None
        The PCA whitening fitted on the collection (``None``: not whitened).
    reused : bool
        Whether the index file was reused rather than built.
    """

    layer: int
    vectors: np.ndarray
    index: VectorIndex
    whitener: Whitener | None
    reused: bool


class CollectionIndex:
    """One collection's tracks, their vectors at one layer and the faiss index over them."""

    def __init__(self, opts: SearchOptions, tracks: pd.DataFrame, space: SearchSpace, *,
                 extractor: Extractor, store: EmbeddingStore, n_missing: int):
        self.opts, self.tracks, self.vectors = opts, tracks, space.vectors
        self.extractor, self.store, self.layer = extractor, store, space.layer
        self.index, self.whitener, self.reused = space.index, space.whitener, space.reused
        self.n_missing = n_missing
        self.groups = group_codes_of(tracks)

    @classmethod
    def open(cls, opts: SearchOptions) -> CollectionIndex:
        """Scan, load the cached track means and load or build the index."""
        extractor = get_extractor(opts.extractor, **opts.extractor_options)
        if opts.text:
            check_text_search(opts, extractor)
        store = EmbeddingStore(config.cache_dir(opts.cache))
        coll = open_collection(opts.collection, cache_dir=opts.cache, progress=False)
        fp = extractor.fingerprint
        have = np.array([store.has(h, fp) for h in coll.tracks["content_hash"]], bool)
        if not have.any():
            raise SimilarityInputError(
                f"no track of {opts.collection} has cached {opts.extractor} embeddings "
                f"(fingerprint {fp}); run `mtbc extract {opts.collection} -e {opts.extractor}` "
                f"first")
        tracks = coll.tracks.loc[have].reset_index(drop=True)
        X = store.load_many(list(tracks["content_hash"]), fp)
        layer = X.shape[1] - 1 if opts.layer is None else int(opts.layer)
        if not 0 <= layer < X.shape[1]:
            raise SimilarityInputError(f"--layer {opts.layer}: {opts.extractor} has "
                                       f"{X.shape[1]} layer(s), 0 to {X.shape[1] - 1}")
        if opts.text and layer != X.shape[1] - 1:
            raise SimilarityInputError(f"--layer {opts.layer}: --text searches the joint space, "
                                       f"the last layer ({X.shape[1] - 1}); leave --layer out")
        vectors = X[:, layer]
        key = IndexKey(fp, layer, opts.whiten, tuple(tracks["content_hash"]), opts.index.kind)
        root = Path(opts.index_dir) if opts.index_dir else config.data_dir() / "models" / \
            "similarity"
        name = f"{fp}-L{layer}{'-white' if opts.whiten else ''}"
        path = root / coll.name / name
        index, whitener, reused = cached_index(vectors, path, key=key, options=opts.index)
        return cls(opts, tracks, SearchSpace(layer, vectors, index, whitener, reused),
                   extractor=extractor, store=store, n_missing=int((~have).sum()))

    # ----------------------------------------------------------------- queries
    def _space(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float32)[None, :]
        return (self.whitener.transform(v) if self.whitener is not None else v)[0]

    def resolve(self, query: str, *, what: str = "query") -> Query:
        """A track id of the collection or an audio file (embedded through the cache)."""
        ids = self.tracks["track_id"].astype(str).to_numpy()
        hit = np.flatnonzero(ids == str(query))
        if len(hit):
            row = int(hit[0])
            return Query(ids[row], self._space(self.vectors[row]), row,
                         path=str(self.tracks.at[row, "path"]))
        path = Path(query)
        if path.is_dir():
            raise SimilarityInputError(f"{what} {query}: is a folder; give one audio file or "
                                       f"a track id of {self.opts.collection}")
        if not path.is_file():
            raise SimilarityInputError(
                f"{what} {query!r}: neither an audio file nor a track id of "
                f"{self.opts.collection} (e.g. {ids[0]})")
        from mtbc.data.audio import check_file

        check_file(path)
        h = content_hash(path)
        same = np.flatnonzero(self.tracks["content_hash"].to_numpy() == h)
        if len(same):
            row = int(same[0])
            return Query(str(path), self._space(self.vectors[row]), row, path=str(path))
        emb = self._embed(path, h)
        vector = self._space(emb[:, self.layer].mean(axis=0, dtype=np.float64))
        return Query(str(path), vector, None, path=str(path))

    def _embed(self, path: Path, h: str) -> np.ndarray:
        from mtbc.cache.extract import embed_file, load_model

        fp = self.extractor.fingerprint
        emb = self.store.get(h, fp)
        if emb is None:
            load_model(self.extractor)
            if not self.store.read_info(fp):
                self.store.write_info(fp, self.extractor.metadata())
            emb, _ = embed_file(self.extractor, path)
            self.store.put(h, fp, emb)
        return np.asarray(emb)

    def _near_duplicates(self, q: Query, rows: np.ndarray) -> tuple[int, ...]:
        """Rows among ``rows`` that are near duplicates of an outside query file (audio
        fingerprint, :mod:`mtbc.data.duplicates`), and their whole groups."""
        from mtbc.data.duplicates import MAX_BER, best_alignment, fingerprint_file

        if q.path is None or q.row is not None:
            return ()
        mine = fingerprint_file(q.path)
        if mine is None:
            return ()
        dup_groups = set()
        for r in rows:
            other = fingerprint_file(self.tracks.at[int(r), "path"])
            if other is not None and best_alignment(mine, other)[0] <= MAX_BER:
                dup_groups.add(self.groups[int(r)])
        return tuple(np.flatnonzero(np.isin(self.groups, list(dup_groups))).tolist())

    def similar(self, query: str, *, k: int = 10, include_duplicates: bool = False
                ) -> tuple[Query, pd.DataFrame]:
        """The ``k`` most similar tracks: ``rank, track_id, label, similarity, path`` (and
        ``relation`` with ``include_duplicates``: same track, near duplicate, same group)."""
        q = self.resolve(query)
        if q.row is None:
            near = neighbours(self.index, q.vector, k=k + 5, groups=self.groups)
            q.exclude = self._near_duplicates(q, near.positions)
        found = neighbours(self.index, q.vector, k=k, groups=self.groups,
                           query_group=None if q.row is None else self.groups[q.row],
                           exclude=q.exclude,
                           keep_group=KeepGroup(self.tracks, q.row) if include_duplicates
                           else None)
        table = self.tracks.iloc[found.positions][["track_id", "label", "path"]]
        table = table.reset_index(drop=True)
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        table.insert(3, "similarity", np.round(found.scores, 4))
        if include_duplicates:
            table["relation"] = found.relations
        return q, table

    def playlist(self, seed: str, *, length: int, to: str | None = None
                 ) -> tuple[Query, pd.DataFrame]:
        """A nearest-neighbour walk from ``seed`` (or a smooth path to ``to``): ``position,
        track_id, label, similarity_to_previous, path``; no repeats, one track per group."""
        q = self.resolve(seed, what="seed")
        V = self.whitener.transform(self.vectors) if self.whitener is not None else self.vectors
        start: int | np.ndarray = q.row if q.row is not None else q.vector
        start_group = None
        if q.row is None:
            near = neighbours(self.index, q.vector, k=10, groups=self.groups)
            dups = self._near_duplicates(q, near.positions)
            start_group = self.groups[dups[0]] if dups else None
        if to is None:
            order = playlist_walk(V, start, length=length, groups=self.groups,
                                  seed_group=start_group)
        else:
            end = self.resolve(to, what="--to")
            if end.row is None:
                raise SimilarityInputError(f"--to {to}: not a track of {self.opts.collection}; "
                                           f"a path ends on a track of the collection")
            if q.row is not None and q.row == end.row:
                raise SimilarityInputError(f"--to {to}: the same track as the seed")
            try:
                order = playlist_path(V, start, end.row, length=length, groups=self.groups,
                                      start_group=start_group)
            except ValueError as exc:
                raise SimilarityInputError(f"--to {to}: {exc}") from None
        Vn = V / np.linalg.norm(V, axis=1, keepdims=True).clip(1e-12)
        prev = [q.vector / max(np.linalg.norm(q.vector), 1e-12)] if q.row is None else []
        chain = prev + [Vn[i] for i in order]
        sims = [float(a @ b) for a, b in zip(chain, chain[1:], strict=False)]
        sims = sims if q.row is None else [np.nan, *sims]
        table = self.tracks.iloc[order][["track_id", "label", "path"]].reset_index(drop=True)
        table.insert(0, "position", np.arange(1, len(order) + 1))
        table.insert(3, "similarity_to_previous", np.round(sims, 4))
        return q, table

    def by_text(self, text: str, *, k: int = 10) -> tuple[Query, pd.DataFrame]:
        """The ``k`` tracks whose joint-space embedding is closest to ``text``'s (cosine):
        ``rank, track_id, label, similarity, path``. Needs ``SearchOptions.text``."""
        if not self.opts.text:
            raise SimilarityInputError("a text search needs SearchOptions(text=True)")
        text = str(text).strip()
        if not text:
            raise SimilarityInputError("--text: empty; give words such as 'calm piano'")
        width = int(self.extractor.projection_dim)
        hits = search_by_text(self.extractor, text, self.vectors[:, :width],
                              np.arange(len(self.tracks)), k=k)  # rows, named below
        rows = hits["track_id"].to_numpy()
        table = self.tracks.iloc[rows][["track_id", "label", "path"]].reset_index(drop=True)
        table.insert(0, "rank", hits["rank"].to_numpy())
        table.insert(3, "similarity", np.round(hits["cosine"].to_numpy(), 4))
        return Query(f"text {text!r}", np.zeros(width, np.float32)), table

    def describe(self) -> str:
        what = "reused" if self.reused else "built"
        return (f"{self.opts.extractor} ({self.extractor.fingerprint}), layer {self.layer}"
                f"{', whitened' if self.whitener is not None else ''}: {self.index.kind} index "
                f"over {self.index.n} tracks ({what})"
                + (f"; {self.n_missing} tracks without cached embeddings left out"
                   if self.n_missing else ""))


def check_text_search(opts: SearchOptions, extractor: Extractor) -> None:
    """``SimilarityInputError`` when a text search cannot run: no text tower, or whitening."""
    if not has_text(extractor):
        raise SimilarityInputError(
            f"--text: extractor {opts.extractor} has no text tower; text search needs a CLAP "
            f"model (-e clap, or -e hf -o model=<a CLAP checkpoint>)")
    if opts.whiten:
        raise SimilarityInputError("--text searches CLAP's joint space as it is; leave "
                                   "--whiten out")


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as JSON atomically (NaN as null)."""
    text = json.dumps(payload, indent=2, default=str, allow_nan=False).encode()
    atomic_write(path, lambda f: f.write(text))
    return Path(path)


def table_records(table: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts (NaN -> None)."""
    return json.loads(table.to_json(orient="records"))
