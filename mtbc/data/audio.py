"""Decode, validate, resample and chunk audio.

Every failure to produce usable audio raises :class:`AudioError`, whose message starts with
the file and says the reason, so one bad file can be listed and skipped rather than stop a run.

Silence policy: an all-silent file is valid audio (an intro, a pause, a test tone that was
muted) and every model gives a defined output for it, so by default it only raises an
:class:`AudioWarning`; pass ``on_silence="error"`` to refuse it instead.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

#: File extensions a folder scan treats as audio.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au")

#: Default resampler: SoX VHQ-class quality through librosa's soxr backend.
DEFAULT_RES_TYPE = "soxr_hq"

_WAV_TRUNCATED = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class AudioWarning(UserWarning):
    """Usable but suspicious audio (e.g. all silent)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read while validating it."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "file not found" + (" (broken symlink)" if path.is_symlink() else ""))
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")


def read_audio(path: str | Path) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file at its native rate: ``(frames, channels)`` float32 and its info.

    Raises :class:`AudioError` for a missing, empty, undecodable, truncated or zero-length
    file, or one holding NaN or infinite samples.
    """
    path = Path(path)
    _check_path(path)
    try:
        with sf.SoundFile(path) as f:
            info = AudioInfo(str(path), int(f.samplerate), int(f.channels), int(f.frames),
                             f.format, f.subtype)
            extra = f.extra_info
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).replace(f"Error opening {str(path)!r}: ", "").strip()
        raise AudioError(path, f"cannot decode as audio ({reason})") from exc
    match = _WAV_TRUNCATED.search(extra or "")
    if match and int(match.group(2)) < int(match.group(1)):
        raise AudioError(path, f"truncated or corrupt: the header announces {match.group(1)} "
                               f"bytes of audio but only {match.group(2)} are present")
    if len(data) < info.frames:
        raise AudioError(path, f"truncated or corrupt: decoded {len(data)} of "
                               f"{info.frames} frames")
    if len(data) == 0:
        raise AudioError(path, "contains no samples (zero-length audio)")
    if not np.isfinite(data).all():
        raise AudioError(path, "contains non-finite samples (NaN or inf)")
    return data, AudioInfo(str(path), info.sample_rate, info.channels, len(data),
                           info.format, info.subtype)


def load_audio(
    path: str | Path,
    sr: int | None,
    *,
    min_duration: float = 0.0,
    on_silence: str = "warn",
    res_type: str = DEFAULT_RES_TYPE,
) -> np.ndarray:
    """Load a file as mono float32 at ``sr`` Hz (``None`` keeps the native rate).

    Parameters
    ----------
    path : file to read (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...; any rate and channel count).
    sr : target sample rate in Hz; channels are averaged to mono before resampling.
    min_duration : shortest acceptable length in seconds; shorter raises ``AudioError``.
    on_silence : ``"warn"`` (default), ``"error"`` or ``"ignore"`` for all-zero audio.
    res_type : librosa resampler (``"soxr_hq"`` default; ``"kaiser_best"`` is resampy's).

    Returns
    -------
    np.ndarray, shape ``(n_samples,)``, float32.
    """
    data, info = read_audio(path)
    if info.duration < min_duration:
        raise AudioError(path, f"too short: {info.duration:.3f} s, the minimum is "
                               f"{min_duration:.3f} s")
    if on_silence not in ("warn", "error", "ignore"):
        raise ValueError(f"on_silence must be 'warn', 'error' or 'ignore', not {on_silence!r}")
    if not np.any(data):
        if on_silence == "error":
            raise AudioError(path, "all samples are zero (silent)")
        if on_silence == "warn":
            warnings.warn(f"{path}: all samples are zero (silent)", AudioWarning, stacklevel=2)
    wave = data.mean(axis=1, dtype=np.float32) if info.channels > 1 else data[:, 0]
    if sr is not None and sr != info.sample_rate:
        wave = librosa.resample(wave, orig_sr=info.sample_rate, target_sr=sr, res_type=res_type)
    return np.ascontiguousarray(wave, dtype=np.float32)


def chunk_wave(wave: np.ndarray, chunk_samples: int, *, min_last: int = 1) -> list[np.ndarray]:
    """Cut a 1-D wave into equal chunks of ``chunk_samples`` plus a shorter remainder.

    Remainder policy: the samples after the last full chunk form one shorter chunk when there
    are at least ``min_last`` of them, and are dropped otherwise. A wave shorter than one chunk
    is returned whole (one chunk) whatever its length, so no track ever yields nothing.
    No chunk is zero-padded. The chunks are views of ``wave``.
    """
    if chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be positive, not {chunk_samples}")
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D wave, got shape {wave.shape}")
    n_full = len(wave) // chunk_samples
    chunks = [wave[i * chunk_samples:(i + 1) * chunk_samples] for i in range(n_full)]
    rest = wave[n_full * chunk_samples:]
    if len(rest) and (len(rest) >= min_last or not chunks):
        chunks.append(rest)
    return chunks
