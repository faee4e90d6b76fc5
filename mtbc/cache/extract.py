"""Run an extractor over a collection into the embedding cache.

Cached tracks are skipped (no audio decoded, no model run), so a killed run resumes where it
stopped. Audio is decoded in background threads while the model works on the previous batch.
A track that fails (undecodable, too short for the model, model error) is listed in
``failed`` and never stops the others. ``shard=(i, n)`` takes every n-th track by content
hash, so several processes or machines can split one collection and share one cache.

Memory is bounded whatever the collection: decoding runs at most :data:`AHEAD_SECONDS` of
audio ahead of the model (not a number of tracks), and a file longer than
:data:`STREAM_SECONDS` is read, resampled and embedded block by block
(:func:`embed_streamed`). A cached entry counts only when it verifies
(:meth:`EmbeddingStore.problem`); a bad one is recomputed and reported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from mtbc.cache.store import EmbeddingStore
from mtbc.data.audio import (
    DEFAULT_MAX_DURATION,
    AudioError,
    check_file,
    load_audio,
    stream_audio,
)
from mtbc.extractors import Extractor, ModelLoadError, WeightsUnavailableError
from mtbc.files import StorageError

FAILED_COLUMNS = ["track_id", "path", "reason"]


@dataclass
class ExtractionReport:
    """What one extraction run did."""

    fingerprint: str
    extracted: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    #: (track_id, cache entry, what was wrong) for each bad entry recomputed.
    repaired: list[tuple[str, str, str]] = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILED_COLUMNS))
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def __str__(self) -> str:
        text = (f"{self.fingerprint}: {len(self.extracted)} extracted, {len(self.cached)} "
                f"cached, {len(self.failed)} failed")
        if self.repaired:
            text += f", {len(self.repaired)} bad cache entries recomputed"
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


#: Files longer than this (audio seconds) are decoded and embedded block by block.
STREAM_SECONDS = 600.0
#: Audio seconds of each block when streaming a long file.
STREAM_BLOCK_SECONDS = 60.0
#: Audio seconds decoded ahead of the model, whatever the number of tracks (bounds memory).
AHEAD_SECONDS = 1200.0


def load_for(extractor: Extractor, path: str | Path, *,
             max_duration: float = DEFAULT_MAX_DURATION) -> np.ndarray:
    """The mono wave ``extractor`` embeds: its rate and resampler, long enough for it."""
    wave = load_audio(path, extractor.sample_rate, res_type=extractor.res_type,
                      max_duration=max_duration)
    if len(wave) < extractor.min_samples:
        need = extractor.min_samples / extractor.sample_rate
        raise AudioError(path, f"too short for {extractor.name}: "
                               f"{len(wave) / extractor.sample_rate:.3f} s, needs {need:.3f} s")
    return wave


def _header_seconds(path: str | Path) -> float:
    """Duration the header announces (0 when unknown; validation happens when decoding)."""
    check_file(path)
    try:
        return float(sf.info(os.fsencode(path)).duration)
    except Exception:  # noqa: BLE001 - the decoder will say what is wrong
        return 0.0


def _checked(extractor: Extractor, out, path) -> np.ndarray:
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"{extractor.name} returned shape {arr.shape} for {path}, expected "
                         f"(n_segments, n_layers, dim)")
    if not np.isfinite(arr).all():
        raise ValueError(f"{extractor.name} returned non-finite values for {path}")
    return arr


def streams(extractor: Extractor, seconds: float | None) -> bool:
    """Whether a file of ``seconds`` is embedded block by block by ``extractor``."""
    return bool(getattr(extractor, "stream_unit", None)) and (seconds or 0.0) > STREAM_SECONDS


def embed_streamed(extractor: Extractor, path: str | Path, *,
                   max_duration: float = DEFAULT_MAX_DURATION) -> tuple[np.ndarray, int]:
    """Embed a long file block by block: ``(embedding, n_samples)``.

    The file is read in blocks, resampled per block (:func:`mtbc.data.audio.stream_audio`)
    and cut at multiples of ``extractor.stream_unit``, so memory stays bounded by the block
    size and the result equals embedding the whole wave (to resampler rounding).
    """
    sr, unit = extractor.sample_rate, int(extractor.stream_unit)
    overlap = int(getattr(extractor, "stream_overlap", 0))
    block = unit * max(1, math.ceil(STREAM_BLOCK_SECONDS * sr / unit))
    parts, buf, n = [], np.zeros(0, np.float32), 0
    for piece in stream_audio(path, sr, res_type=extractor.res_type,
                              block_seconds=STREAM_BLOCK_SECONDS, max_duration=max_duration):
        buf = np.concatenate([buf, piece]) if len(buf) else piece
        n += len(piece)
        while len(buf) >= 2 * block + overlap:
            parts.append(_checked(extractor, extractor.embed(buf[:block + overlap]), path))
            buf = buf[block:]
    if len(buf) < extractor.min_samples and not parts:
        raise AudioError(path, f"too short for {extractor.name}")
    if len(buf):
        parts.append(_checked(extractor, extractor.embed(buf), path))
    return np.concatenate(parts), n


def embed_file(extractor: Extractor, path: str | Path, *, seconds: float | None = None,
               max_duration: float = DEFAULT_MAX_DURATION) -> tuple[np.ndarray, int]:
    """Embed one file as ``extract`` does: ``(embedding, n_samples at the model rate)``.

    Uses the extractor's own resampler (``res_type``); files longer than
    :data:`STREAM_SECONDS` are streamed (:func:`embed_streamed`). ``seconds``: the known
    duration (else read from the header). Raises :class:`AudioError` or the model's error.
    """
    if seconds is None:
        seconds = _header_seconds(path)
    if streams(extractor, seconds):
        return embed_streamed(extractor, path, max_duration=max_duration)
    wave = load_for(extractor, path, max_duration=max_duration)
    return _checked(extractor, extractor.embed(wave), path), len(wave)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AudioError):
        return exc.reason
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


def _decoded(extractor: Extractor, rows: list[dict], workers: int, ahead_seconds: float,
             max_duration: float = DEFAULT_MAX_DURATION
             ) -> Iterator[tuple[dict, np.ndarray | Exception | None]]:
    """Yield (row, wave or the exception, or ``None`` for a file to stream) in order,
    decoding ahead in threads at most ``ahead_seconds`` of audio (at least one file)."""
    def load(row):
        try:
            return load_for(extractor, row["path"], max_duration=max_duration)
        except Exception as exc:  # noqa: BLE001 - any failure is this file's
            return exc

    def seconds(row):
        return float(row.get("duration") or 0.0)

    with ThreadPoolExecutor(workers) as pool:
        pending: dict[int, object] = {}
        nxt, ahead = 0, 0.0
        for i, row in enumerate(rows):
            while nxt < len(rows) and (nxt <= i or ahead + seconds(rows[nxt]) <= ahead_seconds):
                if not streams(extractor, seconds(rows[nxt])):
                    pending[nxt] = pool.submit(load, rows[nxt])
                    ahead += seconds(rows[nxt])
                nxt += 1
            future = pending.pop(i, None)
            if future is None:
                yield row, None
                continue
            ahead -= seconds(row)
            yield row, future.result()
            del future  # free the wave


def load_model(extractor: Extractor) -> None:
    """Load the model now (when it loads lazily), so broken model files stop the run once
    with a message naming them, instead of failing every track."""
    load = getattr(extractor, "load", None)
    if not callable(load):
        return
    try:
        load()
    except (WeightsUnavailableError, ModelLoadError):
        raise
    except Exception as exc:  # noqa: BLE001 - reported once, naming the files
        raise ModelLoadError(f"{extractor.name}: cannot load the model ({exc})") from exc


def extract_collection(
    tracks: pd.DataFrame,
    extractor: Extractor,
    store: EmbeddingStore,
    *,
    batch_tracks: int = 8,
    shard: tuple[int, int] | None = None,
    decode_workers: int | None = None,
    progress: bool = True,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> ExtractionReport:
    """Embed every track of ``tracks`` not yet validly cached for ``extractor`` and store it.

    ``tracks`` needs ``track_id``, ``path`` and ``content_hash`` (a scanned collection).
    The progress bar counts audio seconds, so its rate reads as audio-seconds per second.
    A cache entry that does not verify (truncated, wrong shape, dtype or layer count,
    non-finite) is recomputed and listed in ``repaired``. Any failure of one file (decoding,
    validation, resampling, the model, its output) makes it a ``failed`` row; the run goes on.
    A model whose files cannot be loaded raises :class:`ModelLoadError` before any track.
    """
    if not isinstance(batch_tracks, int) or batch_tracks < 1:
        raise ValueError(f"batch_tracks must be a positive integer, not {batch_tracks!r}")
    load_model(extractor)
    if decode_workers is None:  # sized to the device (mtbc.cache.devices)
        from mtbc.cache.devices import decode_workers_for
        decode_workers = decode_workers_for(extractor)
    fp = extractor.fingerprint
    report = ExtractionReport(fingerprint=fp)
    store.write_info(fp, extractor.metadata())
    companions = extractor.companions()
    for cfp, companion in companions.items():
        store.write_info(cfp, companion.metadata())
    # temp files of killed writers; an hour's margin keeps those of concurrent writers in
    # flight (other shards, devices or Slurm tasks started earlier share this cache)
    store.remove_stale_temp(fp)
    tracks = select_shard(tracks, shard)
    todo, failed = [], []
    for row in tracks.to_dict("records"):
        problem = store.problem(row["content_hash"], fp)
        if problem is None:
            report.cached.append(row["track_id"])
            continue
        if problem != "absent":
            report.repaired.append((row["track_id"], str(store.path_for(row["content_hash"], fp)),
                                    problem))
        todo.append(row)
    total = float(sum(r.get("duration") or 0.0 for r in todo))
    start = time.perf_counter()
    bar = tqdm(total=round(total, 1), unit="s", unit_scale=True, disable=not progress,
               desc=f"extract {extractor.name}", dynamic_ncols=True)

    def fail(row, reason):
        failed.append((row["track_id"], row["path"], reason))

    def done(row, out, n_samples):
        try:
            arr = _checked(extractor, out, row["path"])
            store.put(row["content_hash"], fp, arr)
        except StorageError as exc:  # the machine's fault, not the track's: stop the run
            left = len(todo) - len(report.extracted) - len(failed)
            bar.close()
            raise exc.with_hint(exc.hint, need=left * (arr.size * 4 + 128)) from None
        except Exception as exc:  # noqa: BLE001 - a bad output is this track's
            fail(row, f"{extractor.name} failed: {_reason(exc)}")
        else:
            report.extracted.append(row["track_id"])
            report.audio_seconds += n_samples / extractor.sample_rate

    def keep_companions(row, arrays):
        """Cache what the same pass computed for other fingerprints (best effort: a bad or
        unwritable companion is computed again by its own extraction when needed)."""
        for cfp, arr in arrays.items():
            if store.problem(row["content_hash"], cfp) is None:
                continue
            try:
                store.put(row["content_hash"], cfp, _checked(companions[cfp], arr, row["path"]))
            except Exception:  # noqa: BLE001, S112 - optional: its own extraction redoes it
                continue

    def flush(batch):
        if not batch:
            return
        try:
            outs = extractor.embed_many([w for _, w in batch])
            extra = getattr(extractor, "last_companions", None) or {}
        except Exception:  # noqa: BLE001 - isolate the failing track: embed one by one
            extra = {}  # the one-by-one outputs have no batch-aligned companions
            outs = []
            for _, wave in batch:
                try:
                    outs.append(extractor.embed(wave))
                except Exception as exc:  # noqa: BLE001 - any model error is one track's
                    outs.append(exc)
        for i, ((row, wave), out) in enumerate(zip(batch, outs, strict=True)):
            if isinstance(out, Exception):
                fail(row, f"{extractor.name} failed: {_reason(out)}")
            else:
                done(row, out, len(wave))
                keep_companions(row, {cfp: arrays[i] for cfp, arrays in extra.items()})
            bar.update(round(row.get("duration") or 0.0, 1))
        batch.clear()

    batch: list[tuple[dict, np.ndarray]] = []
    batch_seconds = 0.0
    for row, wave in _decoded(extractor, todo, decode_workers, AHEAD_SECONDS, max_duration):
        if isinstance(wave, Exception):
            fail(row, _reason(wave))
            bar.update(round(row.get("duration") or 0.0, 1))
            continue
        if wave is None:  # a long file: embedded block by block, on its own
            flush(batch)
            batch_seconds = 0.0
            try:
                out, n = embed_streamed(extractor, row["path"], max_duration=max_duration)
            except Exception as exc:  # noqa: BLE001 - any failure is this file's
                fail(row, _reason(exc) if isinstance(exc, AudioError | OSError)
                     else f"{extractor.name} failed: {_reason(exc)}")
            else:
                done(row, out, n)
            bar.update(round(row.get("duration") or 0.0, 1))
            continue
        batch.append((row, wave))
        batch_seconds += len(wave) / extractor.sample_rate
        if len(batch) >= batch_tracks or batch_seconds >= AHEAD_SECONDS:
            flush(batch)
            batch_seconds = 0.0
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
