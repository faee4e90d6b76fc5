"""Run an extractor over a collection into the embedding cache.

Cached tracks are skipped (no audio decoded, no model run), so a killed run resumes where it
stopped. Audio is decoded in background threads while the model works on the previous batch.
A track that fails (undecodable, too short for the model, model error) is listed in
``failed`` and never stops the others. ``shard=(i, n)`` takes every n-th track by content
hash, so several processes or machines can split one collection and share one cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from mtbc.cache.store import EmbeddingStore
from mtbc.data.audio import AudioError, load_audio
from mtbc.extractors import Extractor

FAILED_COLUMNS = ["track_id", "path", "reason"]


@dataclass
class ExtractionReport:
    """What one extraction run did."""

    fingerprint: str
    extracted: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILED_COLUMNS))
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def __str__(self) -> str:
        text = (f"{self.fingerprint}: {len(self.extracted)} extracted, {len(self.cached)} "
                f"cached, {len(self.failed)} failed")
        if self.extracted and self.seconds:
            text += (f"; {self.audio_seconds:.0f} s of audio in {self.seconds:.1f} s "
                     f"({self.audio_seconds / self.seconds:.1f} audio-s/s)")
        return text


def select_shard(tracks: pd.DataFrame, shard: tuple[int, int] | None) -> pd.DataFrame:
    """Rows of shard ``i`` of ``n`` (by content hash, so shards are stable across machines)."""
    if shard is None:
        return tracks
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, not {i}/{n}")
    keep = [int(h[:12], 16) % n == i for h in tracks["content_hash"]]
    return tracks.loc[keep]


def _load_for(extractor: Extractor, path: str) -> np.ndarray:
    wave = load_audio(path, extractor.sample_rate,
                      res_type=extractor.res_type)
    if len(wave) < extractor.min_samples:
        need = extractor.min_samples / extractor.sample_rate
        raise AudioError(path, f"too short for {extractor.name}: "
                               f"{len(wave) / extractor.sample_rate:.3f} s, needs {need:.3f} s")
    return wave


def _decoded(extractor: Extractor, rows: list[dict], workers: int, lookahead: int
             ) -> Iterator[tuple[dict, np.ndarray | Exception]]:
    """Yield (row, wave or the exception) in order, decoding ahead in threads."""
    def load(row):
        try:
            return _load_for(extractor, row["path"])
        except (AudioError, OSError) as exc:
            return exc

    with ThreadPoolExecutor(workers) as pool:
        pending = [pool.submit(load, r) for r in rows[:lookahead]]
        for i, row in enumerate(rows):
            if i + lookahead < len(rows):
                pending.append(pool.submit(load, rows[i + lookahead]))
            yield row, pending[i].result()
            pending[i] = None  # free the wave


def extract_collection(
    tracks: pd.DataFrame,
    extractor: Extractor,
    store: EmbeddingStore,
    *,
    batch_tracks: int = 8,
    shard: tuple[int, int] | None = None,
    decode_workers: int | None = None,
    progress: bool = True,
) -> ExtractionReport:
    """Embed every track of ``tracks`` not yet cached for ``extractor`` and store it.

    ``tracks`` needs ``track_id``, ``path`` and ``content_hash`` (a scanned collection).
    The progress bar counts audio seconds, so its rate reads as audio-seconds per second.
    """
    if decode_workers is None:  # sized to the device (mtbc.cache.devices)
        from mtbc.cache.devices import decode_workers_for
        decode_workers = decode_workers_for(extractor)
    fp = extractor.fingerprint
    report = ExtractionReport(fingerprint=fp)
    store.write_info(fp, extractor.metadata())
    tracks = select_shard(tracks, shard)
    todo, failed = [], []
    for row in tracks.to_dict("records"):
        (report.cached if store.has(row["content_hash"], fp) else todo).append(row)
    total = float(sum(r.get("duration") or 0.0 for r in todo))
    start = time.perf_counter()
    bar = tqdm(total=round(total, 1), unit="s", unit_scale=True, disable=not progress,
               desc=f"extract {extractor.name}", dynamic_ncols=True)

    def flush(batch):
        if not batch:
            return
        try:
            outs = extractor.embed_many([w for _, w in batch])
        except Exception:  # isolate the failing track: embed one by one
            outs = []
            for _, wave in batch:
                try:
                    outs.append(extractor.embed(wave))
                except Exception as exc:  # noqa: BLE001 - any model error is one track's
                    outs.append(exc)
        for (row, wave), out in zip(batch, outs, strict=True):
            if isinstance(out, Exception):
                failed.append((row["track_id"], row["path"],
                               f"{extractor.name} failed: {type(out).__name__}: {out}"))
            else:
                store.put(row["content_hash"], fp, out)
                report.extracted.append(row["track_id"])
                report.audio_seconds += len(wave) / extractor.sample_rate
            bar.update(round(row.get("duration") or 0.0, 1))
        batch.clear()

    batch: list[tuple[dict, np.ndarray]] = []
    for row, wave in _decoded(extractor, todo, decode_workers, lookahead=2 * batch_tracks):
        if isinstance(wave, Exception):
            reason = wave.reason if isinstance(wave, AudioError) else str(wave)
            failed.append((row["track_id"], row["path"], reason))
            bar.update(round(row.get("duration") or 0.0, 1))
            continue
        batch.append((row, wave))
        if len(batch) >= batch_tracks:
            flush(batch)
    flush(batch)
    bar.close()
    report.seconds = time.perf_counter() - start
    report.failed = pd.DataFrame(failed, columns=FAILED_COLUMNS)
    return report


def reports_table(reports: dict[str, ExtractionReport], store: EmbeddingStore) -> pd.DataFrame:
    """One row per extractor label: what the run did and the shape of what is cached."""
    rows = []
    for label, rep in reports.items():
        listing = store.list(rep.fingerprint)
        rows.append({
            "extractor": label, "extracted": len(rep.extracted), "cached before": len(rep.cached),
            "failed": len(rep.failed),
            "layers": int(listing["n_layers"].iloc[0]) if len(listing) else None,
            "dim": int(listing["dim"].iloc[0]) if len(listing) else None,
            "segments per track": round(float(listing["n_segments"].mean()), 1)
            if len(listing) else None,
            "audio-s per s": round(rep.audio_seconds / rep.seconds, 1) if rep.extracted
            and rep.seconds else "-",
        })
    return pd.DataFrame(rows).set_index("extractor")
