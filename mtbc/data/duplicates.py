"""Exact and near duplicates, label conflicts and label confounds of a tracks table.

Near duplicates are the same recording stored twice in a different way: re-encoded (WAV ->
OGG/MP3/FLAC), trimmed by a few seconds at the start or end, resampled, or played louder or
softer. They have different bytes, so the content hash of :func:`mtbc.data.collection.scan`
cannot see them, and one copy in train with the other in test inflates every score.

The fingerprint (:func:`fingerprint_wave`)
------------------------------------------
Each file is decoded once, its first :data:`MAX_SECONDS` (60 s, so a long file costs no more
than a minute of audio) mixed to mono and resampled to :data:`FP_SAMPLE_RATE` (8 kHz: every
codec and sample rate in use keeps the band below 4 kHz, and it is 3-6x cheaper than the
native rate). A mel spectrogram of :data:`N_BANDS` bands between 300 and 2000 Hz (the band
Haitsma and Kalker 2002 chose: the most robust to coding, far above rumble and below where
lossy codecs cut) with a 256 ms window every 16 ms gives two things:

- a **descriptor**: the mean (less its own average over bands, so gain drops out) and the
  standard deviation over time of each band's log energy, z-scored. It ignores time, so a
  trimmed copy has almost the same descriptor; cosine similarity between all pairs is one
  matrix product and picks the **candidate** pairs (cosine >= :data:`MIN_COSINE`, at most
  :data:`MAX_CANDIDATES` per track);
- a Haitsma-Kalker **binary fingerprint**: bit ``(t, m)`` is the sign of
  ``(E[t, m] - E[t, m+1]) - (E[t-1, m] - E[t-1, m+1])`` on log band energies, 32 bits per
  frame. A gain change cancels (differences of logs), resampling and coding move energies by
  far less than these differences, and trimming only shifts the frames.

A candidate is **confirmed** by its bit error rate (BER) at the best frame offset within
+-:data:`MAX_OFFSET_SECONDS` (8 s; all offsets at once by FFT cross-correlation of the +-1
bit planes), over at least :data:`MIN_OVERLAP_SECONDS` of overlap: BER <= :data:`MAX_BER`
links the two tracks. Unrelated music sits near 0.5 (independent bits); see
``docs/protocol.md`` for the measured separation and the margin of the thresholds. Tracks
shorter than :data:`MIN_SECONDS` or (nearly) silent or steady (no change between frames, e.g.
a test tone) get no fingerprint: their bits would be noise, so they are only matched exactly.

What happens to duplicates (:func:`link_duplicates`)
----------------------------------------------------
- Exact duplicates (same content hash) stay as before: kept once, the others skipped.
- Near duplicates stay in the table, linked by a shared ``duplicate_group`` (the track id of
  the group's first member), which :func:`mtbc.data.splits.track_groups` links, so a group
  never straddles a split. With a predefined split, members in a later split than the first
  (train < valid < test) are skipped like exact duplicates ("near duplicate of ...").
- A duplicate (exact or near) with a **different label** is a label conflict: both (all
  members of the group) lose their label, so they neither train nor test a classifier, and
  :attr:`Collection.conflicts` lists every disagreeing pair with both labels.

Confounds (:func:`confound_warnings`) flag manifest columns that predict the label exactly.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import fftconvolve

from mtbc.data.core import (
    CONFLICT_COLUMNS,
    DUPLICATE_COLUMNS,
    SKIPPED_COLUMNS,
    SPLIT_ORDER,
    Collection,
)
from mtbc.data.splits import GROUP_KEYS, track_groups

#: Rate the fingerprint is computed at, Hz.
FP_SAMPLE_RATE = 8000
#: Analysis window and hop, samples at :data:`FP_SAMPLE_RATE` (256 ms and 16 ms).
N_FFT, HOP = 2048, 128
#: Mel bands (33 give Haitsma-Kalker's 32 bits per frame) and their range, Hz.
N_BANDS, FMIN, FMAX = 33, 300.0, 2000.0
#: Audio read per file, s (the start of the file).
MAX_SECONDS = 60.0
#: Shortest file that gets a fingerprint, s.
MIN_SECONDS = 5.0
#: Widest misalignment (trim) searched, s.
MAX_OFFSET_SECONDS = 8.0
#: Least overlap at the chosen offset, s.
MIN_OVERLAP_SECONDS = 4.0
#: Candidate pairs: descriptor cosine at least this.
MIN_COSINE = 0.8
#: Candidate pairs per track at most (its most similar ones).
MAX_CANDIDATES = 10
#: A confirmed near duplicate has a bit error rate at most this.
MAX_BER = 0.28
#: Frames whose band energy is below this many dB under the file's loudest frame carry no bits.
SILENCE_DB = 60.0
#: An offset needs at least this share of its bits strong in both tracks.
MIN_STRONG_SHARE = 0.05
#: Band energies are floored this many dB under the file's loudest band (codec noise below).
FLOOR_DB = 50.0
#: Only the strongest half of a track's bits count (|difference| above its median).
STRONG_QUANTILE = 0.5

#: Columns never tested as confounds (identifiers and continuous measurements).
NOT_CONFOUNDS = ("track_id", "path", "content_hash", "label", "split", "duration",
                 "duplicate_group")


@dataclass(frozen=True)
class Fingerprint:
    """One track's fingerprint.

    Attributes
    ----------
    bits : ``(n_frames, N_BANDS - 1)`` bool, Haitsma-Kalker bits, one row per 16 ms frame.
    strong : ``(n_frames, N_BANDS - 1)`` bool, bits that count (clear sign, loud frame).
    descriptor : ``(2 * N_BANDS,)`` float, unit-norm time-invariant descriptor.
    seconds : float, audio the fingerprint covers, s.
    """

    bits: np.ndarray
    strong: np.ndarray
    descriptor: np.ndarray
    seconds: float


@cache
def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=FP_SAMPLE_RATE, n_fft=N_FFT, n_mels=N_BANDS, fmin=FMIN,
                               fmax=FMAX)


def frame_seconds() -> float:
    """Hop between fingerprint frames, s."""
    return HOP / FP_SAMPLE_RATE


def fingerprint_wave(wave: np.ndarray, sr: int, *, min_seconds: float = MIN_SECONDS
                     ) -> Fingerprint | None:
    """Fingerprint a mono wave (``(n_samples,)`` float at ``sr`` Hz).

    Returns ``None`` for a wave shorter than ``min_seconds`` (s), silent, or without change
    between frames (steady tones): its bits would be noise.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if sr != FP_SAMPLE_RATE:
        wave = librosa.resample(wave, orig_sr=sr, target_sr=FP_SAMPLE_RATE, res_type="soxr_hq")
    seconds = len(wave) / FP_SAMPLE_RATE
    if seconds < min_seconds or not np.any(wave):
        return None
    spec = np.abs(librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, center=False)) ** 2
    mel = _mel_basis() @ spec                        # (bands, frames) power
    frame_db = 10 * np.log10(mel.sum(axis=0) + 1e-20)
    valid = frame_db > frame_db.max() - SILENCE_DB
    log_e = np.log(mel + 10 ** (-FLOOR_DB / 10) * mel.max() + 1e-30)  # (bands, frames)
    df = log_e[:-1] - log_e[1:]                      # energy difference across bands
    d = df[:, 1:] - df[:, :-1]                       # ... and across frames
    frames_ok = valid[1:] & valid[:-1]
    strength = np.abs(d[:, frames_ok])
    if frames_ok.sum() < 2 or np.median(strength) < 1e-3:
        return None                                  # silent or steady: no usable bits
    strong = (np.abs(d) >= np.quantile(strength, STRONG_QUANTILE)) & frames_ok[None, :]
    active = log_e[:, valid]
    desc = np.concatenate([active.mean(axis=1) - active.mean(), active.std(axis=1)])
    desc = (desc - desc.mean()) / (desc.std() + 1e-12)
    desc /= np.linalg.norm(desc) + 1e-12
    return Fingerprint(bits=(d > 0).T, strong=strong.T, descriptor=desc, seconds=seconds)


def read_wave(path: str | os.PathLike, *, max_seconds: float = MAX_SECONDS
              ) -> tuple[np.ndarray, int]:
    """The first ``max_seconds`` (s) of a file as mono float32 and its rate (Hz)."""
    with sf.SoundFile(os.fsencode(path)) as f:  # bytes: a non-UTF-8 name opens too
        sr = int(f.samplerate)
        data = f.read(frames=int(max_seconds * sr), dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def fingerprint_file(path: str | os.PathLike, *, max_seconds: float = MAX_SECONDS,
                     min_seconds: float = MIN_SECONDS) -> Fingerprint | None:
    """:func:`fingerprint_wave` of the first ``max_seconds`` (s) of a file; ``None`` if it
    cannot be read or gets no fingerprint."""
    try:
        wave, sr = read_wave(path, max_seconds=max_seconds)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError):
        return None
    if not np.isfinite(wave).all():
        return None
    return fingerprint_wave(wave, sr, min_seconds=min_seconds)


def best_alignment(a: Fingerprint, b: Fingerprint, *, max_offset_seconds: float =
                   MAX_OFFSET_SECONDS, min_overlap_seconds: float = MIN_OVERLAP_SECONDS
                   ) -> tuple[float, float]:
    """Lowest bit error rate of ``b`` against ``a`` over frame offsets, and that offset.

    Offsets run over +-``max_offset_seconds`` (s); a frame counts when it is loud in both
    tracks, and an offset needs ``min_overlap_seconds`` (s) of such frames.
    Returns ``(ber, offset_s)``; ``ber`` is 1.0 when no offset overlaps enough. A positive
    offset means ``b`` starts that many seconds into ``a`` (``b`` was trimmed at the start).
    """
    fs = frame_seconds()
    sa = np.where(a.strong, 2.0 * a.bits - 1.0, 0.0)
    sb = np.where(b.strong, 2.0 * b.bits - 1.0, 0.0)
    # agreements minus disagreements for every lag, over bits strong in both: FFTs per bit
    corr = fftconvolve(sa, sb[::-1], mode="full", axes=0).sum(axis=1)
    both = fftconvolve(a.strong.astype(float), b.strong[::-1].astype(float), mode="full",
                       axes=0).sum(axis=1)
    na, nb = len(sa), len(sb)
    lags = np.arange(-(nb - 1), na)                    # lag k: b[j] aligns with a[j + k]
    frames = np.minimum(na, lags + nb) - np.maximum(0, lags)
    n_bits = a.bits.shape[1]
    keep = ((np.abs(lags) * fs <= max_offset_seconds) & (frames * fs >= min_overlap_seconds)
            & (both >= MIN_STRONG_SHARE * n_bits * frames))
    if not keep.any():
        return 1.0, 0.0
    ber = 0.5 - corr[keep] / (2.0 * both[keep])
    i = int(np.argmin(ber))
    return float(np.clip(ber[i], 0.0, 1.0)), float(lags[keep][i] * fs)


def candidate_pairs(descriptors: np.ndarray, *, min_cosine: float = MIN_COSINE,
                    max_candidates: int = MAX_CANDIDATES) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)``, ``i < j``, of rows of ``(n, d)`` unit ``descriptors`` with
    cosine >= ``min_cosine``, each row keeping at most ``max_candidates`` partners."""
    n = len(descriptors)
    if n < 2:
        return []
    sim = descriptors @ descriptors.T
    np.fill_diagonal(sim, -np.inf)
    k = min(max_candidates, n - 1)
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    pairs = {}
    for i in range(n):
        for j in top[i]:
            if sim[i, j] >= min_cosine:
                pairs[(min(i, j), max(i, j))] = float(sim[i, j])
    return [(i, j, c) for (i, j), c in sorted(pairs.items())]


def _fingerprints(paths: list[str], *, workers: int | None, progress: bool
                  ) -> list[Fingerprint | None]:
    from tqdm import tqdm

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(fingerprint_file, paths), total=len(paths),
                         desc="fingerprint", unit="file", disable=not progress))


def find_near_duplicates(tracks: pd.DataFrame, *, max_ber: float = MAX_BER,
                         min_cosine: float = MIN_COSINE, workers: int | None = None,
                         progress: bool = False) -> pd.DataFrame:
    """Confirmed near-duplicate pairs among the rows of ``tracks`` (needs ``track_id``, ``path``).

    Parameters
    ----------
    tracks : tracks table; each file is decoded once (its first :data:`MAX_SECONDS` s).
    max_ber : highest bit error rate (0..1) that links a pair.
    min_cosine : lowest descriptor cosine (-1..1) that makes a pair a candidate.
    workers : decoding threads (default up to 4).
    progress : show a tqdm bar.

    Returns
    -------
    pd.DataFrame with :data:`DUPLICATE_COLUMNS`: ``track_id`` the later row, ``duplicate_of``
    the earlier one, ``kind`` ``"near"``, ``ber`` (0..1), ``offset_s`` (s, where the later
    track starts in the earlier one) and ``cosine``.
    """
    fps = _fingerprints(list(tracks["path"]), workers=workers, progress=progress)
    have = [i for i, fp in enumerate(fps) if fp is not None]
    rows = []
    if len(have) >= 2:
        desc = np.stack([fps[i].descriptor for i in have])
        ids = tracks["track_id"].to_numpy()
        for i, j, cos in candidate_pairs(desc, min_cosine=min_cosine):
            a, b = have[i], have[j]
            ber, offset = best_alignment(fps[a], fps[b])
            if ber <= max_ber:
                rows.append({"track_id": ids[b], "duplicate_of": ids[a], "kind": "near",
                             "ber": round(ber, 4), "offset_s": round(offset, 3),
                             "cosine": round(cos, 4)})
    return pd.DataFrame(rows, columns=DUPLICATE_COLUMNS)


def _components(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find: node -> the first node (in ``nodes`` order) of its component."""
    rank = {n: k for k, n in enumerate(nodes)}
    parent = {n: n for n in nodes}

    def root(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            first, other = (ra, rb) if rank[ra] < rank[rb] else (rb, ra)
            parent[other] = first
    return {n: root(n) for n in nodes}


def link_duplicates(coll: Collection, *, exact: pd.DataFrame | None = None, near: bool = True,
                    max_ber: float = MAX_BER, workers: int | None = None,
                    progress: bool = False) -> Collection:
    """Link near duplicates, list exact and near pairs and label conflicts (module docstring).

    Parameters
    ----------
    coll : a scanned collection (exact duplicates already dropped to ``skipped``).
    exact : the dropped exact-duplicate rows (``track_id``, ``label``, ``content_hash``).
    near : look for near duplicates (decodes every track once more, first 60 s).
    max_ber : highest bit error rate (0..1) that links a near pair.
    workers, progress : decoding threads; tqdm bar.

    Returns
    -------
    A new :class:`Collection` whose ``tracks`` have a ``duplicate_group`` column, with
    ``duplicates`` and ``conflicts`` tables; conflicting tracks have no label and near
    duplicates in a later predefined split than their group's first member are skipped.
    """
    tracks = coll.tracks.reset_index(drop=True).copy()
    skipped = coll.skipped.copy()
    exact = exact if exact is not None else pd.DataFrame(columns=["track_id", "label",
                                                                  "content_hash"])
    keep_of = dict(zip(tracks["content_hash"], tracks["track_id"], strict=False))
    pairs = [{"track_id": r["track_id"], "duplicate_of": keep_of.get(r["content_hash"]),
              "kind": "exact", "ber": 0.0, "offset_s": 0.0, "cosine": 1.0}
             for _, r in exact.iterrows() if r["content_hash"] in keep_of]
    near_pairs = (find_near_duplicates(tracks, max_ber=max_ber, workers=workers,
                                       progress=progress)
                  if near and len(tracks) > 1 else pd.DataFrame(columns=DUPLICATE_COLUMNS))
    dups = pd.DataFrame(pairs + near_pairs.to_dict("records"), columns=DUPLICATE_COLUMNS)

    # split order first, then table order: the first member is the one that stays
    order = tracks["split"].map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(len(SPLIT_ORDER))
    ranked = list(tracks.assign(_o=order, _p=np.arange(len(tracks)))
                  .sort_values(["_o", "_p"])["track_id"])
    near_root = _components(ranked, list(zip(near_pairs["track_id"], near_pairs["duplicate_of"],
                                             strict=True)))
    size = pd.Series(near_root).value_counts()
    tracks["duplicate_group"] = [near_root[t] if size[near_root[t]] > 1 else None
                                 for t in tracks["track_id"]]

    # label conflicts over exact and near links together
    label = dict(zip(exact["track_id"], exact["label"], strict=True))
    label.update(zip(tracks["track_id"], tracks["label"], strict=True))
    kept = set(ranked)
    root = _components(ranked + [t for t in exact["track_id"] if t not in kept],
                       list(zip(dups["track_id"], dups["duplicate_of"], strict=True)))
    kind_of = {frozenset(p): k for *p, k in dups[["track_id", "duplicate_of", "kind"]]
               .itertuples(index=False)}
    members: dict[str, list[str]] = {}
    for t, r in root.items():
        members.setdefault(r, []).append(t)
    conflicts, dropped = [], set()
    for group in members.values():
        labels = {label[t] for t in group if pd.notna(label[t])}
        if len(labels) < 2:
            continue
        dropped.update(group)
        for a_i, a in enumerate(group):
            for b in group[a_i + 1:]:
                if pd.notna(label[a]) and pd.notna(label[b]) and label[a] != label[b]:
                    conflicts.append({"track_id": a, "label": label[a], "other_track_id": b,
                                      "other_label": label[b],
                                      "kind": kind_of.get(frozenset((a, b)), "linked"),
                                      "action": "labels dropped: neither trains nor tests"})
    in_conflict = tracks["track_id"].isin(dropped)
    tracks.loc[in_conflict, "label"] = None
    hit = skipped["track_id"].isin(dropped)
    if hit.any():
        skipped.loc[hit, "reason"] = [f"{r}; its label disagrees (see conflicts)"
                                      for r in skipped.loc[hit, "reason"]]

    # a predefined split keeps a near-duplicate group on the side of its first member
    split = dict(zip(tracks["track_id"], tracks["split"], strict=True))
    later = [t for t in tracks.loc[tracks["duplicate_group"].notna() & ~in_conflict, "track_id"]
             if pd.notna(split[t]) and pd.notna(split[near_root[t]])
             and split[t] != split[near_root[t]]]
    if later:
        rows = tracks.loc[tracks["track_id"].isin(later), ["track_id", "path", "label"]].copy()
        rows["reason"] = [f"near duplicate of {near_root[t]} (in {split[near_root[t]]}), "
                          f"kept out of {split[t]}" for t in rows["track_id"]]
        skipped = pd.concat([skipped, rows])
        tracks = tracks.loc[~tracks["track_id"].isin(later)].reset_index(drop=True)
    return Collection(tracks=tracks, skipped=skipped[SKIPPED_COLUMNS].reset_index(drop=True),
                      name=coll.name, source=coll.source, duplicates=dups,
                      conflicts=pd.DataFrame(conflicts, columns=CONFLICT_COLUMNS))


def _continuous(values: pd.Series) -> bool:
    num = pd.to_numeric(values, errors="coerce")
    return bool(num.notna().all() and (num % 1 != 0).any())


def _predictive_columns(tracks: pd.DataFrame) -> list[tuple[str, int, bool]]:
    """``(column, n_values, is_grouping)`` for every column that predicts the label exactly
    (see :func:`confound_warnings`); ``is_grouping``: the column is one of the split's own
    grouping keys, or each of its values lies within one group of the split (an ``artist``
    that is the grouping unit), so no value is ever on both sides of a split."""
    lab_rows = tracks["label"].notna().to_numpy()
    lab = tracks.loc[lab_rows]
    if lab["label"].nunique() < 2:
        return []
    groups = pd.Series(track_groups(tracks)[lab_rows], index=lab.index)
    out = []
    for col in lab.columns:
        if col in NOT_CONFOUNDS or lab[col].isna().any():
            continue
        values = lab[col].astype(str)
        n_values = values.nunique()
        if not 1 < n_values < len(lab) or _continuous(lab[col]):
            continue
        if (lab.groupby(values)["label"].nunique() > 1).any():
            continue
        shared = values.map(values.value_counts()) > 1
        if shared.sum() * 2 < len(lab):
            continue
        grouping = col in GROUP_KEYS or bool((groups.groupby(values).nunique() == 1).all())
        out.append((col, n_values, grouping))
    return out


def confound_warnings(tracks: pd.DataFrame) -> list[str]:
    """Columns of ``tracks`` that predict the label exactly, one warning sentence each.

    A column is tested when it is not an identifier or a continuous measurement
    (:data:`NOT_CONFOUNDS`, non-integer numbers), every labelled track has a value, and it has
    more than one and fewer distinct values than labelled tracks. It warns when every value
    belongs to one label and at least half the labelled tracks share their value with
    another track (a column of mostly one-off values, such as a title, predicts nothing
    beyond the track itself). The split's own grouping columns are skipped: a ``group`` (or
    an ``artist`` that is the grouping unit) holds one label by construction and never sits
    on both sides of a split; :func:`grouping_notes` says so.
    """
    return [f"The labels are fully predictable from the column '{col}' ({n_values} values, "
            f"each with a single label): a classifier can learn what '{col}' stands for "
            f"(a recording source, an album's sound, a format) instead of the style. Splits "
            f"do not group by '{col}': to test on unseen values, give the manifest a 'group' "
            f"column holding it."
            for col, n_values, grouping in _predictive_columns(tracks) if not grouping]


def grouping_notes(tracks: pd.DataFrame) -> list[str]:
    """One sentence per column that predicts the label but is the split's grouping unit
    (skipped by :func:`confound_warnings`): not a confound, since each value stays on one
    side of every split."""
    return [f"'{col}' ({n_values} values) is the grouping unit of the splits: each value stays "
            f"on one side of every split, so test tracks always come from {col} values never "
            f"seen in training; that it predicts the label is expected, not a confound."
            for col, n_values, grouping in _predictive_columns(tracks) if grouping]


def duplicate_groups(coll: Collection) -> pd.DataFrame:
    """One row per linked set of duplicates: its first track (the one kept), the kinds of
    link (exact, near), the number of tracks, every member, and the labels they carried."""
    d = coll.duplicates
    if d.empty:
        return pd.DataFrame(columns=["first", "kinds", "tracks", "members", "labels"])
    ids = list(dict.fromkeys(list(coll.tracks["track_id"]) + list(d["duplicate_of"])
                             + list(d["track_id"])))
    root = _components(ids, list(zip(d["track_id"], d["duplicate_of"], strict=True)))
    label = dict(zip(coll.skipped["track_id"], coll.skipped["label"], strict=True))
    label.update(zip(coll.tracks["track_id"], coll.tracks["label"], strict=True))
    for c in coll.conflicts.itertuples(index=False):   # labels dropped for training
        label[c.track_id], label[c.other_track_id] = c.label, c.other_label
    rows = []
    for first, members in pd.Series(root).groupby(pd.Series(root)).groups.items():
        if len(members) < 2:
            continue
        kinds = d.loc[d["duplicate_of"].map(root) == first, "kind"]
        rows.append({"first": first, "kinds": ", ".join(sorted(set(kinds))),
                     "tracks": len(members), "members": ", ".join(members),
                     "labels": ", ".join(sorted({str(label.get(m)) for m in members
                                                 if pd.notna(label.get(m))}))})
    return pd.DataFrame(rows).sort_values("first", ignore_index=True)
