"""Rendering one demo clip: a music21 score -> MIDI with drawn instruments, tempo and
transposition -> audio through the General MIDI soundfont that ships in pretty_midi
(``midirenderer``) -> a level-normalised mono clip. :mod:`mtbc.data.demo` builds the corpus
from these clips (``docs/demo.md``).
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

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


def render_clip(source: str, number: int | None, params: RenderParams, *, soundfont: bytes,
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


