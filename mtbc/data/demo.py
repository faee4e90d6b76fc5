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
import math
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from mtbc import __version__
from mtbc.config import demo_dir
from mtbc.data.collection import CollectionError
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

#: GM programs (0-based) a clip may be played on; the same pool for every class.
INSTRUMENT_POOL: tuple[int, ...] = (0, 6, 11, 19, 21, 24, 40, 46, 48, 52, 71, 73)
#: Tempi in quarter notes per minute; the same pool for every class.
TEMPO_POOL_BPM: tuple[int, ...] = (72, 84, 96, 108, 120, 132, 144)
#: Transpositions in semitones; the same pool for every class.
TRANSPOSE_POOL: tuple[int, ...] = tuple(range(-5, 7))

#: Target peak level of every clip, dB relative to full scale.
PEAK_DBFS = -1.0
#: Rate midirenderer renders at (it has no rate option); clips are resampled from it.
RENDER_SAMPLE_RATE = 48000
#: Bumped whenever the recipe changes the audio, so old builds are rebuilt (2: 1-4 voices
#: per clip with their own instruments, and instrument ``tags`` in the manifest).
RECIPE_VERSION = 2
#: Most instruments a clip is played on (each clip draws 1..MAX_VOICES, uniformly).
MAX_VOICES = 4
#: Tag name of each GM program of :data:`INSTRUMENT_POOL` (others: the GM name, lower case).
INSTRUMENT_TAGS: dict[int, str] = {
    0: "piano", 6: "harpsichord", 11: "vibraphone", 19: "organ", 21: "accordion",
    24: "guitar", 40: "violin", 46: "harp", 48: "strings", 52: "choir", 71: "clarinet",
    73: "flute"}

SOUNDFONT_NAME = "TimGM6mb.sf2"
DEFAULT_CLASSES: tuple[str, ...] = ("bach", "palestrina", "han", "german", "fiddle")
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "label", "tags", "track_id", "source", "number", "title",
    "program", "instrument", "tempo_bpm", "transpose", "loops", "seed",
)

_VELOCITY = 100
_VOLUMES = (127, 96, 64)  # channel volume (CC7); a lower one is tried if the render clips
_MIN_NOTES = 8
_GAP_QUARTERS = 1.0
_FADE_IN_S, _FADE_OUT_S = 0.005, 0.05
_SILENT_PEAK = 1e-4

_ESSEN_HAN = ("essenFolksong/han1.abc", "essenFolksong/han2.abc")
_ESSEN_GERMAN = tuple(
    f"essenFolksong/{name}.abc"
    for name in ("altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "ballad40",
                 "ballad50", "ballad60", "ballad70", "ballad80", "boehme10", "boehme20",
                 "dva0", "erk10", "erk20", "erk30", "fink0", "kinder0", "zuccal0")
)

#: Style classes: label -> what it holds.
CLASSES: dict[str, str] = {
    "bach": "J.S. Bach four-part chorales (the 371 Riemenschneider chorales)",
    "palestrina": "Palestrina mass movements (Humdrum)",
    "han": "Han Chinese folk songs (Essen Folksong Collection, han1/han2)",
    "german": "German folk songs (Essen Folksong Collection, deutschl subsets)",
    "fiddle": "Fiddle tunes from Ryan's Mammoth Collection (1883)",
    "monteverdi": "Monteverdi madrigals (books 3-5), optional",
}


@dataclass(frozen=True)
class RenderParams:
    """How one clip is played: distinct GM programs (0-127) of its instruments, tempo
    (quarter notes/min), semitones."""

    programs: tuple[int, ...]
    tempo_bpm: int
    transpose: int


def draw_render_params(rng: np.random.Generator) -> RenderParams:
    """Draw 1..:data:`MAX_VOICES` distinct programs, a tempo and a transposition from the
    shared pools (no class input)."""
    n = int(rng.integers(1, min(MAX_VOICES, len(INSTRUMENT_POOL)) + 1))
    return RenderParams(
        programs=tuple(int(p) for p in rng.choice(INSTRUMENT_POOL, size=n, replace=False)),
        tempo_bpm=int(rng.choice(TEMPO_POOL_BPM)),
        transpose=int(rng.choice(TRANSPOSE_POOL)),
    )


def instrument_tag(program: int) -> str:
    """The tag name of a GM program (:data:`INSTRUMENT_TAGS`, else its GM name)."""
    import pretty_midi

    return INSTRUMENT_TAGS.get(int(program),
                               pretty_midi.program_to_instrument_name(int(program)).lower())


def soundfont_path() -> Path:
    """The General MIDI soundfont shipped inside the installed pretty_midi package."""
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"pretty_midi is not installed; it ships {SOUNDFONT_NAME}. Run `pip install pretty_midi`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOUNDFONT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; reinstall pretty_midi (it ships {SOUNDFONT_NAME}).")
    return path


def render_midi(midi_bytes: bytes, *, soundfont: bytes) -> tuple[np.ndarray, int]:
    """Render a Standard MIDI File with midirenderer.

    Returns ``(frames, channels)`` float32 in [-1, 1] and the sample rate (48000 Hz).
    """
    import midirenderer
    import soundfile as sf

    wav = midirenderer.render_wave_from(soundfont, midi_bytes)
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return audio, int(sr)


# --------------------------------------------------------------------------- candidates


@lru_cache(maxsize=1)
def _corpus_files() -> tuple[str, ...]:
    """Every file of music21's core corpus, relative to the corpus folder, sorted."""
    from music21 import common, corpus

    root = Path(common.getCorpusFilePath())
    return tuple(sorted(Path(p).relative_to(root).as_posix()
                        for p in corpus.corpora.CoreCorpus().getPaths()))


_ABC_REFERENCE = re.compile(r"^X:\s*(\d+)", flags=re.MULTILINE)


@cache
def _abc_numbers(source: str) -> tuple[int, ...]:
    """Reference numbers (``X:`` fields) of the tunes in a corpus ``.abc`` file.

    A text scan (milliseconds) instead of a parse of the whole file (about a minute for an
    Essen file); it gives the same numbers as music21's corpus metadata (checked for every
    Essen file in music21 10.5).
    """
    from music21 import common

    text = (Path(common.getCorpusFilePath()) / source).read_text(encoding="latin-1")
    return tuple(sorted({int(m) for m in _ABC_REFERENCE.findall(text)}))


@lru_cache(maxsize=1)
def _bach_chorales() -> dict[str, str]:
    """Riemenschneider chorale stems ('bach/bwv269') -> title."""
    from music21.corpus import chorales

    titles = {f"bach/bwv{c['bwv']}": c["title"]
              for c in chorales.ChoraleListRKBWV().byRiemenschneider.values()}
    return {stem: titles.get(stem, "") for stem in chorales.Iterator(returnType="filename")}


def candidates(label: str) -> list[tuple[str, int | None]]:
    """Pieces a class may draw from: ``(corpus source path, tune number or None)``, sorted.

    Cheap (no score is parsed). Counts in music21 10.5: bach 349 distinct chorale files,
    palestrina 1318, han 1224, german 5952, fiddle 1059, monteverdi 49.
    """
    files = _corpus_files()
    if label == "bach":
        stems = _bach_chorales()
        picked: dict[str, str] = {}
        for path in files:
            stem, ext = os.path.splitext(path)
            if stem in stems and ext in (".mxl", ".xml"):
                picked.setdefault(stem, path)
        return sorted((path, None) for path in picked.values())
    if label in ("han", "german"):
        sources = _ESSEN_HAN if label == "han" else _ESSEN_GERMAN
        return [(src, n) for src in sources if src in files for n in _abc_numbers(src)]
    prefix, ext = {"palestrina": ("palestrina/", ".krn"), "fiddle": ("ryansMammoth/", ".abc"),
                   "monteverdi": ("monteverdi/", ".mxl")}.get(label, (None, None))
    if prefix is None:
        raise ValueError(f"unknown demo class {label!r}; choose from {sorted(CLASSES)}")
    return [(path, None) for path in files if path.startswith(prefix) and path.endswith(ext)]


# --------------------------------------------------------------------------- score -> MIDI

Event = tuple[float, float, tuple[int, ...]]  # onset (quarters), duration (quarters), MIDI pitches


def _fix_title(title: str | None) -> str:
    """Essen titles carry DOS code page 437 umlauts read as latin-1; repair them."""
    if not title:
        return ""
    if any("\x80" <= c <= "\x9f" for c in title):
        try:
            title = title.encode("latin-1").decode("cp437")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return "".join(c if c.isprintable() else "?" for c in title).strip()


def _parse(source: str, number: int | None):
    from music21 import corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if number is None:
            return corpus.parse(source, forceSource=True)
        return corpus.parse(source, number=number, forceSource=True)


def _score_events(score) -> tuple[list[list[Event]], float]:
    """Notes of each part with ties merged, and the piece's length in quarter notes."""
    from music21 import harmony

    parts = list(score.parts) or [score]
    tracks: list[list[Event]] = []
    for part in parts:
        events = []
        for n in part.stripTies().flatten().notes:
            if isinstance(n, harmony.Harmony) or n.quarterLength <= 0:
                continue  # chord symbols and grace notes
            pitches = tuple(int(p.midi) for p in n.pitches)
            if pitches:
                events.append((float(n.offset), float(n.quarterLength), pitches))
        if events:
            tracks.append(events)
    length = max((o + d for ev in tracks for o, d, _ in ev), default=0.0)
    return tracks, float(length)


def _fold(pitch: int) -> int:
    while pitch > 108:
        pitch -= 12
    while pitch < 21:
        pitch += 12
    return pitch


def _to_midi(tracks: Sequence[Sequence[Event]], length: float, params: RenderParams, *,
             clip_seconds: float, volume: int) -> tuple[bytes, int, tuple[int, ...]]:
    """A Standard MIDI File playing the piece (repeated if short) with the parts dealt to the
    instruments (module docstring); returns (bytes, passes, programs that sound)."""
    import pretty_midi

    spq = 60.0 / params.tempo_bpm
    period = length + _GAP_QUARTERS
    loops = max(1, math.ceil(clip_seconds / (period * spq)))
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(params.tempo_bpm))
    insts = [pretty_midi.Instrument(program=p) for p in params.programs]
    for inst in insts:
        inst.control_changes.append(pretty_midi.ControlChange(7, volume, 0.0))
    n_voices = max(len(tracks), len(insts))
    for v in range(n_voices):
        events, inst = tracks[v % len(tracks)], insts[v % len(insts)]
        for k in range(loops):
            for onset, dur, pitches in events:
                start = (k * period + onset) * spq
                if start >= clip_seconds:
                    continue
                for p in pitches:
                    inst.notes.append(pretty_midi.Note(
                        velocity=_VELOCITY, pitch=_fold(p + params.transpose),
                        start=start, end=start + dur * spq))
    pm.instruments.extend(inst for inst in insts if inst.notes)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue(), loops, tuple(inst.program for inst in insts if inst.notes)


def _finish(audio: np.ndarray, sr_in: int, *, sample_rate: int, clip_seconds: float) -> np.ndarray:
    """Mono, exact length, resampled, faded, peak-normalised; float64 in [-1, 1]."""
    import soxr

    mono = audio.astype(np.float64).mean(axis=1)
    n_in = int(round(clip_seconds * sr_in))
    mono = np.pad(mono[:n_in], (0, max(0, n_in - len(mono))))
    if sample_rate != sr_in:
        mono = soxr.resample(mono, sr_in, sample_rate, quality="HQ")
    n = int(round(clip_seconds * sample_rate))
    mono = np.pad(mono[:n], (0, max(0, n - len(mono))))
    for seconds, sl in ((_FADE_IN_S, slice(None)), (_FADE_OUT_S, slice(None, None, -1))):
        k = min(n, max(1, int(round(seconds * sample_rate))))
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        mono[sl][:k] *= ramp
    peak = float(np.max(np.abs(mono))) if n else 0.0
    if peak < _SILENT_PEAK:
        return mono * 0.0
    return mono * (10.0 ** (PEAK_DBFS / 20.0) / peak)


def _render_clip(source: str, number: int | None, params: RenderParams, *, soundfont: bytes,
                 sample_rate: int, clip_seconds: float) -> tuple[np.ndarray, dict] | str:
    """int16 mono clip and its provenance, or the reason the piece was refused."""
    try:
        score = _parse(source, number)
    except Exception as exc:  # a corpus file music21 cannot read: pick another piece
        return f"parse failed: {type(exc).__name__}: {exc}"[:200]
    tracks, length = _score_events(score)
    n_notes = sum(len(ev) for ev in tracks)
    if n_notes < _MIN_NOTES or length <= 0:
        return f"too little material ({n_notes} notes)"
    for volume in _VOLUMES:
        midi, loops, sounding = _to_midi(tracks, length, params, clip_seconds=clip_seconds,
                                         volume=volume)
        audio, sr_in = render_midi(midi, soundfont=soundfont)
        if not np.any(np.abs(audio) >= 32767 / 32768):
            break
    else:
        return "render clips even at the lowest channel volume"
    if not sounding:
        return "no note inside the clip"
    wave = _finish(audio, sr_in, sample_rate=sample_rate, clip_seconds=clip_seconds)
    if not np.any(wave):
        return "silent render"
    pcm = np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)
    if source.startswith("bach/"):
        title = _bach_chorales().get(os.path.splitext(source)[0], "")
    else:
        md = score.metadata
        title = (md.title or md.movementName) if md is not None else None
    info = {"source": source, "number": "" if number is None else number,
            "title": _fix_title(title), "loops": loops, "programs": sounding}
    return pcm, info


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
            return data
    except (OSError, ValueError):
        pass
    # a build made before the record existed: its build.json, manifest and listed clips
    try:
        json.loads((out_dir / "build.json").read_text(encoding="utf-8"))["params"]
        rows = _read_manifest(out_dir / "manifest.csv")
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    names = ["build.json", "manifest.csv",
             *(r["path"] for r in rows if _CLIP_PATH.match(r.get("path") or ""))]
    return {n: content_hash(out_dir / n) for n in names if (out_dir / n).is_file()}


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
        if foreign and not self.owned:
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

    import pretty_midi

    owner = _Owner(out_dir)  # refuses a foreign folder before anything is written
    for rel in ("build.json", "manifest.csv"):
        owner.check(rel)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Invalidate first: a build killed from here on leaves no build.json, so it is redone.
    owner.remove("build.json")
    owner.remove("manifest.csv")
    soundfont = sf2_path.read_bytes()
    width = max(2, len(str(n_per_class)))
    rows: list[dict] = []
    refused: list[str] = []
    bar = tqdm(total=len(labels) * n_per_class, desc="demo corpus", unit="clip",
               disable=not progress)
    try:
        for label in labels:
            pool = candidates(label)
            order = np.random.default_rng([int(seed), _stable_id(label)]).permutation(len(pool))
            (out_dir / label).mkdir(exist_ok=True)
            tried = iter(order)
            for i in range(n_per_class):
                rng = np.random.default_rng([int(seed), _stable_id(label), i + 1])
                choice = draw_render_params(rng)
                for j in tried:
                    source, number = pool[int(j)]
                    bar.set_postfix_str(f"{label} {source}" + (f" #{number}" if number else ""))
                    result = _render_clip(source, number, choice, soundfont=soundfont,
                                          sample_rate=int(sample_rate), clip_seconds=float(clip_seconds))
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
                owner.write(rel, _wav_bytes(pcm, int(sample_rate)))
                programs = info.pop("programs")
                rows.append({"path": rel, "label": label, "track_id": track_id, **info,
                             "tags": ";".join(instrument_tag(p) for p in programs),
                             "program": ";".join(map(str, programs)),
                             "instrument": ";".join(pretty_midi.program_to_instrument_name(p)
                                                    for p in programs),
                             "tempo_bpm": choice.tempo_bpm, "transpose": choice.transpose,
                             "seed": int(seed)})
                bar.update(1)
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
