"""The frozen trunk's output, computed once per track and kept in the verified cache.

Entries live in the embedding cache (:class:`mtbc.cache.store.EmbeddingStore`) under their
own fingerprint, :func:`trunk_fingerprint`: the extractor's fingerprint (model, revision or
weights hash, precision, preprocessing) plus the split point and, when the trunk runs under
bf16 autocast (the training precision, :mod:`mtbc.finetune.device`), that precision, so a
different split point, model or precision never reads another's entries. Each entry is the ``(n_segments, a, b)``
float32 array ``Split.trunk`` returns, written atomically and verified on read (shape, dtype,
finite values); an entry that does not verify is recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from mtbc.cache.extract import load_for
from mtbc.cache.store import EmbeddingStore
from mtbc.extractors.base import Extractor, make_fingerprint
from mtbc.extractors.partial import Split
from mtbc.finetune.device import autocast


def trunk_fingerprint(extractor: Extractor, split: Split, precision: str = "float32") -> str:
    """Cache key of the trunk output: extractor fingerprint + split point (+ the autocast
    precision the trunk ran under, when not float32: float32 keys are those of earlier
    releases).

    Example
    -------
    >>> trunk_fingerprint(ext, ext.trunk_and_top(1))  # doctest: +SKIP
    'musicnn-trunk-1f0c...'
    """
    extra = {} if precision == "float32" else {"precision": precision}
    return make_fingerprint(f"{extractor.name}-trunk", extractor=extractor.fingerprint,
                            split=split.point, trunk_version=1, **extra)


def trunk_outputs(tracks: pd.DataFrame, extractor: Extractor, split: Split,
                  store: EmbeddingStore, *, progress: bool = False,
                  precision: str = "float32") -> list[np.ndarray]:
    """The trunk output of every track (``tracks`` needs ``path`` and ``content_hash``).

    Returns one float32 ``(n_segments, a, b)`` array per row of ``tracks``, read from the
    cache when a valid entry exists, else computed and stored first: rearranged from the
    extractor's cached embedding when the split's trunk output is that embedding
    (``Split.from_embedding``, e.g. musicnn's ``pool`` at ``train_layers=1``) and was made
    in ``precision``, else from the audio under ``precision``'s autocast.
    """
    fp = trunk_fingerprint(extractor, split, precision)
    reuse = split.from_embedding is not None \
        and getattr(extractor, "dtype", "float32") == precision
    device = getattr(extractor, "device", "cpu")
    if not store.read_info(fp):
        # the extractor's n_layers / dim describe its embedding, not the trunk output
        meta = {k: v for k, v in extractor.metadata().items()
                if k not in ("n_layers", "dim", "hidden_size", "embedding_size")}
        store.write_info(fp, {**meta, "fingerprint": fp, "trunk_of": extractor.fingerprint,
                              "split_point": split.point, "trunk_precision": precision,
                              **split.details})
    out: list[np.ndarray] = []
    rows = list(zip(tracks["path"], tracks["content_hash"], strict=True))
    for path, h in tqdm(rows, desc=f"{extractor.name} trunk", unit="track",
                        disable=not progress):
        arr = store.get(h, fp)
        if arr is None:
            emb = store.get(h, extractor.fingerprint) if reuse else None
            if emb is not None:
                arr = split.from_embedding(np.asarray(emb))
            else:
                wave = load_for(extractor, path)
                with autocast(precision, device):
                    arr = split.trunk(wave)
            arr = np.ascontiguousarray(arr, np.float32)
            store.put(h, fp, arr)
        out.append(np.asarray(arr, np.float32))
    return out


def stack_segments(trunks: Sequence[np.ndarray], rows: Sequence[int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Segments of the tracks at ``rows``: ``(X (N, a, b), owner (N,))``, ``owner[i]`` the
    position in ``rows`` of segment ``i``'s track."""
    parts = [trunks[r] for r in rows]
    owner = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return np.concatenate(parts), owner
