"""The ``mtbc similar`` and ``mtbc playlist`` commands (``mtbc.cli`` adds them).

Every bad value raises :class:`~mtbc.similarity.collection.SimilarityInputError`, which the
command line reports as one line with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtbc.cli_args import int_at_least, parse_options
from mtbc.similarity.errors import SimilarityInputError


def open_index(args):
    """The :class:`~mtbc.similarity.collection.CollectionIndex` the options describe."""
    # heavy imports (faiss, the extractors) only when a command runs, not for --help
    from mtbc.extractors import ExtractorConfigError
    from mtbc.similarity.collection import CollectionIndex, SearchOptions
    from mtbc.similarity.index import IndexOptions

    opts = SearchOptions(collection=args.collection, extractor=args.extractor,
                         extractor_options=parse_options(args.option),
                         cache=str(args.cache) if args.cache else None, layer=args.layer,
                         whiten=args.whiten,
                         index_dir=str(args.index_dir) if args.index_dir else None,
                         index=IndexOptions(kind=args.index),
                         text=getattr(args, "text", None) is not None)
    try:
        return CollectionIndex.open(opts)
    except (ExtractorConfigError, KeyError) as exc:  # unknown extractor, bad cache entry
        raise SimilarityInputError(str(exc).strip("'\"")) from None


def _show(args, title: str, index, query, table, extra: dict, *, header: str | None = None
          ) -> int:
    from mtbc.similarity.collection import table_records, write_json

    print(header or index.describe())
    print(f"\n{title} for {query.name}:")
    shown = table if args.paths else table.drop(columns=["path"])
    print(shown.to_string(index=False) if len(shown) else "(none)")
    if args.json:
        write_json(args.json, {"query": query.name, "collection": args.collection,
                               "extractor": args.extractor,
                               "fingerprint": index.extractor.fingerprint,
                               "layer": index.layer, "whiten": args.whiten,
                               "index": index.index.kind, **extra,
                               "results": table_records(table)})
        print(f"\nwritten to {args.json}")
    return 0


def cmd_similar(args) -> int:
    if args.text is not None:
        return cmd_text(args)
    index = open_index(args)
    query, table = index.similar(args.query, k=args.k, include_duplicates=args.include_duplicates)
    return _show(args, "most similar tracks", index, query, table,
                 {"k": args.k, "include_duplicates": args.include_duplicates})


def cmd_text(args) -> int:
    """``mtbc similar --text``: the tracks closest to a text in CLAP's joint space."""
    if args.include_duplicates:
        raise SimilarityInputError("--include-duplicates: a text query has no track or group "
                                   "of its own; leave it out")
    index = open_index(args)
    query, table = index.by_text(args.text, k=args.k)
    header = (f"{args.extractor} ({index.extractor.fingerprint}), joint space (layer "
              f"{index.layer}): exact cosine search by text over {len(index.tracks)} tracks"
              + (f"; {index.n_missing} tracks without cached embeddings left out"
                 if index.n_missing else ""))
    return _show(args, "closest tracks", index, query, table, {"k": args.k, "text": args.text},
                 header=header)


def cmd_playlist(args) -> int:
    index = open_index(args)
    query, table = index.playlist(args.seed, length=args.length, to=args.to)
    title = f"playlist (smooth path to {args.to})" if args.to else "playlist (nearest-neighbour walk)"
    return _show(args, title, index, query, table, {"length": args.length, "to": args.to})


def _common(p: argparse.ArgumentParser, coll_help: str) -> None:
    p.add_argument("--collection", "-c", required=True, help=coll_help)
    p.add_argument("--extractor", "-e", default="musicnn",
                   help="extractor whose cached embeddings are searched (default musicnn)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor option, as given to `mtbc extract` (it sets the cache key)")
    p.add_argument("--layer", type=int_at_least(0, "at least 0"), default=None,
                   help="layer searched (default: the last one)")
    p.add_argument("--whiten", action="store_true",
                   help="PCA-whiten the collection's vectors (fitted on all of them) first")
    p.add_argument("--cache", type=Path, default=None,
                   help="embedding cache folder (default data/cache)")
    p.add_argument("--index-dir", type=Path, default=None,
                   help="where index files go (default data/models/similarity)")
    p.add_argument("--index", choices=["auto", "exact", "hnsw", "ivf"], default="auto",
                   help="index kind (default auto: exact up to 100,000 tracks, HNSW above)")
    p.add_argument("--paths", action="store_true", help="show file paths in the table")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the results to FILE as JSON")


def add_parsers(sub, coll_help: str) -> None:
    """Add ``similar`` and ``playlist`` to the ``mtbc`` sub-command parsers ``sub``."""
    p = sub.add_parser("similar", help="the tracks of a collection that sound most like a song",
                       description="List the k tracks nearest to QUERY (cosine similarity of "
                                   "cached embeddings; an exact faiss index, approximate above "
                                   "100,000 tracks). The query's own track, its near "
                                   "duplicates and its group (artist) are left out unless "
                                   "--include-duplicates.",
                       epilog="examples: mtbc similar bach_01 --collection demo -e mfcc; "
                              "mtbc similar --text 'calm piano' --collection C -e clap")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("query", nargs="?", default=None,
                      help="an audio file (embedded through the cache when needed) or a track "
                           "id of the collection")
    what.add_argument("--text", default=None, metavar="WORDS",
                      help="search by text instead (an extractor with a text tower: CLAP): "
                           "the tracks whose joint-space embedding is closest to the text's")
    _common(p, coll_help)
    p.add_argument("--k", type=int_at_least(1, "at least 1"), default=10, help="results (default 10)")
    p.add_argument("--include-duplicates", action="store_true",
                   help="keep the query's own track, near duplicates and group, flagged")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("playlist", help="a playlist of nearest neighbours, or a path to a song",
                       description="A walk of nearest neighbours from SEED with no repeats and "
                                   "no two tracks of one group; with --to, a smooth path from "
                                   "SEED to that track.",
                       epilog="example: mtbc playlist bach_01 --collection demo --length 8")
    p.add_argument("seed", help="an audio file or a track id of the collection")
    _common(p, coll_help)
    p.add_argument("--length", type=int_at_least(2, "at least 2"), default=10,
                   help="tracks in the playlist (default 10)")
    p.add_argument("--to", default=None, metavar="SONG",
                   help="end on this track (id or file of the collection): a smooth path")
    p.set_defaults(func=cmd_playlist)
