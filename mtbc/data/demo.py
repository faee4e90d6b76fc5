"""The demo corpus: music21 corpus scores rendered to audio on the user's machine.

Five style classes (``bach`` chorales, ``palestrina`` mass movements, ``han`` Chinese folk
songs and ``german`` folk songs from the Essen collection, ``fiddle`` tunes from Ryan's Mammoth
Collection; ``monteverdi`` madrigals on request) are drawn from the scores that ship with
music21 and rendered with the General MIDI soundfont ``TimGM6mb.sf2`` found inside pretty_midi.
Each clip gets 1-4 GM instruments (:data:`MAX_VOICES`), a tempo and a transposition drawn
from pools shared by every class (:data:`INSTRUMENT_POOL`, :data:`TEMPO_POOL_BPM`,
:data:`TRANSPOSE_POOL`), so a label can't be read off timbre, tempo or key; only the music
itself tells the classes apart. The instruments that sound in a clip are its ``tags``
(:data:`INSTRUMENT_TAGS` names), a multi-label task beside the style labels.

Voices: the score's parts are dealt to the clip's instruments round-robin (part ``i`` is
played by instrument ``i mod n``); when the score has fewer parts than instruments, the extra
instruments double parts in unison (instrument ``j`` plays part ``j mod n_parts``), so a
one-part folk tune can have four instruments and the number of instruments says nothing
about the class. An instrument is tagged only if it has a note inside the clip.

Renderer: we use the ``midirenderer`` wheel rather than ``tinysoundfont``.
``midirenderer`` is MIT licensed, has prebuilt wheels and no dependencies, so it installs
with the rest of mtbc; ``tinysoundfont`` declares ``pyaudio``, which needs PortAudio headers to
build, so it would need ``pip install --no-deps``. Both play the same soundfont.

Signal chain (all deterministic, no dither): score -> MIDI (one track per instrument,
velocity 100, channel volume 127; a piece shorter than the clip is repeated after a
one-beat rest) -> ``midirenderer`` (48 kHz stereo 16-bit) -> mono mean -> first
``clip_seconds`` -> soxr resample to ``sample_rate`` -> 5 ms fade-in, 50 ms fade-out -> peak
normalised to :data:`PEAK_DBFS` (-1 dBFS) -> 16-bit PCM WAV. Repeats in the score are not
expanded and dynamics are ignored; a clip starts at the beginning of its piece.

Licensing: see :data:`LICENSE_NOTE`. The corpus is rendered locally and never redistributed.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import multiprocessing
import re
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mtbc import __version__
from mtbc.config import available_cores, demo_dir
from mtbc.data.collection import CollectionError
from mtbc.data.demo_render import (
    CLASSES,
    DEFAULT_CLASSES,
    INSTRUMENT_POOL,
    MANIFEST_COLUMNS,
    MAX_VOICES,
    PEAK_DBFS,
    RECIPE_VERSION,
    RENDER_SAMPLE_RATE,
    SOUNDFONT_NAME,
    TEMPO_POOL_BPM,
    TRANSPOSE_POOL,
    candidates,
    draw_render_params,
    instrument_tag,
    render_clip,
    soundfont_path,
)
from mtbc.files import atomic_write, content_hash

LICENSE_NOTE = (
    "The demo corpus is rendered on your machine from the scores that ship with music21 and "
    "is never redistributed by mtbc. Its sources carry their own terms: the Essen Folksong "
    "Collection (the 'han' and 'german' classes) is licensed for non-commercial use only; "
    "the Bach chorales, Palestrina, Monteverdi and Ryan's Mammoth Collection scores come from "
    "music21's corpus (see music21's corpus documentation for each source's terms); the "
    "TimGM6mb.sf2 soundfont (Tim Brechbill) ships with pretty_midi. Do not publish the "
    "rendered audio or use it commercially without checking those terms."
)
"""Licensing note to quote in the README and to show when the corpus is built."""

# --------------------------------------------------------------------------- build


def _stable_id(label: str) -> int:
    return zlib.crc32(label.encode("utf-8"))


def _normalise_classes(classes: Iterable[str] | None) -> list[str]:
    if classes is None:
        return list(DEFAULT_CLASSES)
    if isinstance(classes, str):
        classes = [classes]
    wanted = list(dict.fromkeys(classes))
    unknown = [c for c in wanted if c not in CLASSES]
    if unknown or not wanted:
        raise ValueError(f"unknown or empty demo classes {unknown or wanted}; choose from {sorted(CLASSES)}")
    return [c for c in CLASSES if c in wanted]


def _versions() -> dict[str, str]:
    def v(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"mtbc": __version__, "music21": v("music21"), "midirenderer": v("midirenderer"),
            "pretty_midi": v("pretty_midi")}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _wav_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


#: The record of every file a build wrote (relative path -> sha256), kept in the folder.
OWNED_RECORD = ".mtbc-demo-owned.json"


class DemoFolderError(CollectionError):
    """The output folder holds files the demo build did not write; nothing was touched."""


def _owned(out_dir: Path) -> dict[str, str]:
    """Relative path -> sha256 of the files earlier builds wrote into ``out_dir``."""
    record = out_dir / OWNED_RECORD
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return _trusted(out_dir, data)
    except (OSError, ValueError):
        pass
    # a build made before the record existed: its build.json, manifest and listed clips
    try:
        json.loads((out_dir / "build.json").read_text(encoding="utf-8"))["params"]["recipe"]
        rows = _read_manifest(out_dir / "manifest.csv")
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    names = ["build.json", "manifest.csv", *(r.get("path") or "" for r in rows)]
    return {n: content_hash(out_dir / n) for n in names
            if _generated(out_dir, n) and (out_dir / n).is_file()
            and not (out_dir / n).is_symlink()}


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _generated(out_dir: Path, rel: str) -> bool:
    """Whether ``rel`` is a path a build writes (and, for a clip on disk, starts as a WAV)."""
    if rel in ("build.json", "manifest.csv"):
        return True
    if not _CLIP_PATH.match(rel):
        return False
    try:
        with open(out_dir / rel, "rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def _trusted(out_dir: Path, record: dict) -> dict[str, str | list[str]]:
    """The entries of a record that can be trusted: paths a build generates, with sha256
    values, whose file is absent or still holds those bytes. A stray or edited record thus
    never makes a user's file ours."""
    out: dict[str, str | list[str]] = {}
    for rel, value in record.items():
        known = value if isinstance(value, list) else [value]
        if (not isinstance(rel, str) or not known
                or not all(isinstance(v, str) and _SHA256.match(v) for v in known)
                or not _generated(out_dir, rel)):
            continue
        path = out_dir / rel
        if path.is_symlink() or (path.exists() and not _is_ours(out_dir, rel, {rel: known})):
            continue
        out[rel] = value
    return out


def _is_ours(out_dir: Path, rel: str, owned: dict[str, str]) -> bool:
    path = out_dir / rel
    if rel not in owned or not path.is_file() or path.is_symlink():
        return False
    known = owned[rel] if isinstance(owned[rel], list) else [owned[rel]]
    return content_hash(path) in known


def _foreign(out_dir: Path, owned: dict[str, str]) -> list[str]:
    """Files (relative paths) under ``out_dir`` that no build of ours wrote."""
    out = []
    for p in sorted(out_dir.rglob("*")):
        rel = p.relative_to(out_dir).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if rel == OWNED_RECORD or _OUR_TEMP.match(p.name) or _is_ours(out_dir, rel, owned):
            continue
        out.append(rel)
    return out


class _Owner:
    """Writes files into the demo folder, refusing to replace any file it did not write,
    and keeps the record of what it owns up to date."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.owned = _owned(out_dir) if out_dir.is_dir() else {}
        if out_dir.exists() and not out_dir.is_dir():
            raise DemoFolderError(f"{out_dir}: exists and is not a folder; choose another "
                                  f"--out / demo.out_dir")
        foreign = _foreign(out_dir, self.owned) if out_dir.is_dir() else []
        present = [rel for rel in self.owned if (out_dir / rel).is_file()]
        if foreign and not present:  # a record naming no file of ours proves nothing
            raise DemoFolderError(
                f"{out_dir}: the folder is not empty and was not made by `mtbc demo` (it "
                f"holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}"
                f"); nothing was changed; choose an empty or new folder for --out / "
                f"demo.out_dir")
        self.foreign = set(foreign)

    def _save(self) -> None:
        text = json.dumps(self.owned, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(self.out_dir / OWNED_RECORD, lambda f: f.write(text))

    def check(self, rel: str) -> None:
        path = self.out_dir / rel
        if (path.exists() or path.is_symlink()) and not _is_ours(self.out_dir, rel, self.owned):
            raise DemoFolderError(f"{path}: a file mtbc did not write is in the way; nothing "
                                  f"of it was changed; move it or choose another --out")

    def write(self, rel: str, data: bytes) -> None:
        self.check(rel)
        new = hashlib.sha256(data).hexdigest()
        old = self.owned.get(rel)
        # both contents are ours while the file is replaced: a build killed in between
        # still owns whichever one is on disk
        self.owned[rel] = [*(old if isinstance(old, list) else [old] if old else []), new]
        self._save()
        _atomic_write_bytes(self.out_dir / rel, data)
        self.owned[rel] = new
        self._save()

    def remove(self, rel: str) -> None:
        if _is_ours(self.out_dir, rel, self.owned):
            (self.out_dir / rel).unlink()
        self.owned.pop(rel, None)
        self._save()


def _is_built(out_dir: Path, params: dict) -> bool:
    build, manifest = out_dir / "build.json", out_dir / "manifest.csv"
    try:
        if json.loads(build.read_text(encoding="utf-8")).get("params") != params:
            return False
        rows = _read_manifest(manifest)
    except (OSError, ValueError):
        return False
    return bool(rows) and all((out_dir / r["path"]).is_file() for r in rows)


def build_demo(out_dir: str | Path | None = None, *, seed: int = 0, n_per_class: int = 12,
               clip_seconds: float = 15.0, sample_rate: int = 24000,
               classes: Iterable[str] | None = None, progress: bool = True,
               force: bool = False) -> Path:
    """Render the demo corpus and return the path of its manifest CSV.

    Parameters
    ----------
    out_dir : folder to write to (default :func:`mtbc.config.demo_dir`). Clips land in
        ``out_dir/<label>/<label>_<NN>.wav``; ``manifest.csv`` (paths relative to it, label,
        ``tags`` (the instruments that sound, ``;``-separated), track_id and provenance) and ``build.json`` (parameters and versions) next to them.
    seed : non-negative int; the same seed gives byte-identical files.
    n_per_class : clips per class.
    clip_seconds : length of every clip, s.
    sample_rate : Hz, 24000 to 48000 (midirenderer renders at 48 kHz).
    classes : labels from :data:`CLASSES` (default :data:`DEFAULT_CLASSES`).
    progress : show a tqdm bar.
    force : rebuild even when ``build.json`` matches and every clip exists.

    Examples
    --------
    >>> manifest = build_demo(seed=0)  # doctest: +SKIP
    """
    from tqdm import tqdm

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class!r}")
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be > 0, got {clip_seconds!r}")
    if not 24000 <= int(sample_rate) <= RENDER_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be 24000..{RENDER_SAMPLE_RATE} Hz (MERT needs 24 kHz; "
                         f"the renderer runs at 48 kHz), got {sample_rate!r}")
    labels = _normalise_classes(classes)
    out_dir = Path(out_dir) if out_dir is not None else demo_dir()
    sf2_path = soundfont_path()
    params = {
        "recipe": RECIPE_VERSION, "seed": int(seed), "n_per_class": int(n_per_class),
        "clip_seconds": float(clip_seconds), "sample_rate": int(sample_rate), "classes": labels,
        "pools": {"program": list(INSTRUMENT_POOL), "tempo_bpm": list(TEMPO_POOL_BPM),
                  "transpose": list(TRANSPOSE_POOL), "max_voices": MAX_VOICES},
        "peak_dbfs": PEAK_DBFS, "soundfont": {"file": SOUNDFONT_NAME, "sha256": content_hash(sf2_path)},
        "versions": _versions(),
    }
    manifest_path = out_dir / "manifest.csv"
    if not force and _is_built(out_dir, params):
        return manifest_path


    owner = _Owner(out_dir)  # refuses a foreign folder before anything is written
    for rel in ("build.json", "manifest.csv"):
        owner.check(rel)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Invalidate first: a build killed from here on leaves no build.json, so it is redone.
    owner.remove("build.json")
    owner.remove("manifest.csv")
    width = max(2, len(str(n_per_class)))
    rows: list[dict] = []
    refused: list[str] = []
    bar = tqdm(total=len(labels) * n_per_class, desc="demo corpus", unit="clip",
               disable=not progress)
    jobs = [(label, int(seed), int(n_per_class), width, str(sf2_path), int(sample_rate),
             float(clip_seconds)) for label in labels]
    try:
        for label, (clips, why_not) in zip(labels, _render_labels(jobs), strict=True):
            (out_dir / label).mkdir(exist_ok=True)
            for rel, pcm, row in clips:
                owner.write(rel, _wav_bytes(pcm, int(sample_rate)))
                rows.append(row)
            refused += why_not
            bar.set_postfix_str(label)
            bar.update(len(clips))
    finally:
        bar.close()

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    owner.write("manifest.csv", buf.getvalue().encode("utf-8"))
    record = {"params": params, "n_clips": len(rows),
              "counts": {lb: sum(r["label"] == lb for r in rows) for lb in labels},
              "refused": refused, "license": LICENSE_NOTE}
    owner.write("build.json",
                (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    _prune(out_dir, {r["path"] for r in rows}, owner)
    return manifest_path


def _render_labels(jobs: list[tuple]) -> Iterator[tuple[list, list]]:
    """:func:`_render_label` of every job, in order. Labels are independent (each has its
    own seeds and candidate order), so with more than one core they render in separate
    processes (music21 and the renderer hold the GIL): the clips are the same bytes."""
    workers = min(len(jobs), available_cores())
    if workers < 2 or sum(job[2] for job in jobs) < 20:  # small builds: no start-up cost
        for job in jobs:
            yield _render_label(*job)
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold torch
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_render_label, *job) for job in jobs]
        for f in futures:
            yield f.result()


def _render_label(label: str, seed: int, n_per_class: int, width: int, sf2_path: str,
                  sample_rate: int, clip_seconds: float) -> tuple[list, list]:
    """One class's clips: ``([(relative path, int16 pcm, manifest row)], [refusals])``."""
    import pretty_midi

    soundfont = Path(sf2_path).read_bytes()
    pool = candidates(label)
    order = np.random.default_rng([seed, _stable_id(label)]).permutation(len(pool))
    tried = iter(order)
    clips, refused = [], []
    for i in range(n_per_class):
        rng = np.random.default_rng([seed, _stable_id(label), i + 1])
        choice = draw_render_params(rng)
        for j in tried:
            source, number = pool[int(j)]
            result = render_clip(source, number, choice, soundfont=soundfont,
                                  sample_rate=sample_rate, clip_seconds=clip_seconds)
            if isinstance(result, str):
                refused.append(f"{source}#{number}: {result}")
                continue
            pcm, info = result
            break
        else:
            raise RuntimeError(f"demo class {label!r}: only {i} of {n_per_class} pieces "
                               f"usable among {len(pool)} candidates; lower n_per_class")
        track_id = f"{label}_{i + 1:0{width}d}"
        rel = f"{label}/{track_id}.wav"
        programs = info.pop("programs")
        clips.append((rel, pcm, {
            "path": rel, "label": label, "track_id": track_id, **info,
            "tags": ";".join(instrument_tag(p) for p in programs),
            "program": ";".join(map(str, programs)),
            "instrument": ";".join(pretty_midi.program_to_instrument_name(p)
                                   for p in programs),
            "tempo_bpm": choice.tempo_bpm, "transpose": choice.transpose, "seed": seed}))
    return clips, refused


_CLIP_PATH = re.compile(r"^(?P<label>[a-z]+)/(?P=label)_\d+\.wav$")
#: Temp files of our own atomic writes (``.<name>.<random>.tmp``).
_OUR_TEMP = re.compile(r"^\.(?:[a-z]+_\d+\.wav|manifest\.csv|build\.json|"
                       + re.escape(OWNED_RECORD) + r")\.[^/]+\.tmp$")


def _prune(out_dir: Path, keep: set[str], owner: _Owner) -> None:
    """Remove clips of earlier builds that this folder's record says we wrote (unchanged
    since), and temp files of our own killed writes; never any other file."""
    for rel in sorted(owner.owned):
        if _CLIP_PATH.match(rel) and rel not in keep:
            owner.remove(rel)
    for f in [*out_dir.glob(".*.tmp"), *out_dir.glob("*/.*.tmp")]:
        if _OUR_TEMP.match(f.name) and f.is_file() and not f.is_symlink():
            f.unlink(missing_ok=True)
