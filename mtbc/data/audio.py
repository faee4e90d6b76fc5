"""Decode, validate, resample and chunk audio.

Every failure to produce usable audio raises :class:`AudioError`, whose message starts with
the file and says the reason, so one bad file can be listed and skipped rather than stop a run.

Silence policy: an all-silent file is valid audio (an intro, a pause, a test tone that was
muted) and every model gives a defined output for it, so by default it only raises an
:class:`AudioWarning`; pass ``on_silence="error"`` to refuse it instead.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

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


#: Longest audio a file may claim by default (seconds): 3 hours. Checked on the header,
#: before any sample is decoded, so a lying header never allocates memory.
DEFAULT_MAX_DURATION = 3 * 3600.0
#: Lowest sample rate accepted (Hz). Below it a file holds no usable music, and its few
#: bytes could claim hours of audio that resampling to a model's rate would blow up in memory
#: (a 20 KB file at 1 Hz is 2.8 h); at or above it, memory is bounded by the duration at the
#: model's rate and the resampling ratio by 48 kHz / 4 kHz.
MIN_SAMPLE_RATE = 4000
#: Largest sample magnitude accepted; float files hold ~[-1, 1], so beyond this is garbage.
MAX_ABS_SAMPLE = 1e6
#: Frames decoded per block while streaming or validating a file.
BLOCK_FRAMES = 1 << 18
#: Containers whose samples are stored uncompressed (size bounds the frame count).
_UNCOMPRESSED_FORMATS = {"WAV", "WAVEX", "AIFF", "AU", "W64", "RF64", "CAF", "NIST", "IRCAM",
                         "RAW"}
_SUBTYPE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
                  "DOUBLE": 8, "ULAW": 1, "ALAW": 1}
#: Even silence does not compress below this many frames per byte (FLAC constant blocks).
_MAX_FRAMES_PER_BYTE = 1 << 14
_LIBSNDFILE_PIPE = "File does not exist or is not a regular file (possibly a pipe?)."


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_file(path: str | Path) -> int:
    """Refuse what is not a non-empty regular file (before opening it); return its size.

    A FIFO, device (e.g. a link to ``/dev/urandom``) or socket is refused by kind: opening
    one could block forever or never end.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(path, "file not found"
                         + (" (broken symlink)" if path.is_symlink() else "")) from None
    except OSError as exc:
        raise AudioError(path, f"cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        via = f" (symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise AudioError(path, f"is {_file_kind(st.st_mode)}{via}, not a regular file; "
                               f"give a regular audio file")
    if st.st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    return st.st_size


_check_path = check_file  # the old private name


def sf_path(path: str | os.PathLike) -> bytes:
    """``path`` as bytes for libsndfile: a file name that is not valid UTF-8 (held by Python
    as surrogate escapes) opens as it is on disk instead of failing to encode."""
    return os.fsencode(path)


def _decode_error(path: Path, exc: BaseException) -> AudioError:
    reason = str(exc)
    for shown in (repr(str(path)), repr(os.fsencode(path))):
        reason = reason.replace(f"Error opening {shown}: ", "")
    reason = reason.strip()
    if _LIBSNDFILE_PIPE in reason:
        reason = "libsndfile does not recognise this file's format or encoding variant"
    return AudioError(path, f"cannot decode as audio ({reason or type(exc).__name__})")


def _check_header(path: Path, f: sf.SoundFile, size: int, max_duration: float) -> AudioInfo:
    info = AudioInfo(str(path), int(f.samplerate), int(f.channels), int(f.frames), f.format,
                     f.subtype)
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioError(path, f"header is corrupt ({info.sample_rate} Hz, "
                               f"{info.channels} channels)")
    if info.sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(path, f"sample rate {info.sample_rate} Hz is below the minimum usable "
                               f"{MIN_SAMPLE_RATE} Hz (no model hears music below that); "
                               f"skipped")
    if info.frames < 0 or info.frames >= 2**62:
        raise AudioError(path, "header gives no usable length (corrupt or a stream)")
    if info.duration > max_duration:
        raise AudioError(path, f"header claims {info.duration / 3600:.2f} h of audio, more "
                               f"than max_duration={max_duration:g} s; raise max_duration if "
                               f"the file is really that long")
    width = _SUBTYPE_BYTES.get(info.subtype) if info.format in _UNCOMPRESSED_FORMATS else None
    bound = size // (width * info.channels) if width else size * _MAX_FRAMES_PER_BYTE
    if info.frames > bound:
        raise AudioError(path, f"header claims {info.frames} frames, more than a file of "
                               f"{size} bytes can hold: truncated or corrupt")
    return info


def _ogg_complete(path: Path, size: int) -> bool:
    """Whether the last Ogg page is whole and marks the end of the stream (EOS flag)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 70000))
        tail = fh.read()
    start = tail.rfind(b"OggS")
    if start < 0 or len(tail) - start < 27:
        return False
    n_seg = tail[start + 26]
    if len(tail) - start < 27 + n_seg:
        return False
    body = sum(tail[start + 27:start + 27 + n_seg])
    return bool(tail[start + 5] & 0x04) and start + 27 + n_seg + body == len(tail)


def _finish_checks(path: Path, info: AudioInfo, extra: str, decoded: int, size: int) -> None:
    match = _WAV_TRUNCATED.search(extra or "")
    if match and int(match.group(2)) < int(match.group(1)):
        raise AudioError(path, f"truncated or corrupt: the header announces {match.group(1)} "
                               f"bytes of audio but only {match.group(2)} are present")
    if decoded < info.frames:
        raise AudioError(path, f"truncated or corrupt: decoded {decoded} of "
                               f"{info.frames} frames the header announces")
    if info.format == "OGG" and not _ogg_complete(path, size):
        raise AudioError(path, f"truncated: the Ogg stream ends without its last page "
                               f"(decoded {decoded / info.sample_rate:.2f} s)")
    if decoded == 0:
        raise AudioError(path, "contains no samples (zero-length audio)")


def _check_samples(path: Path, data: np.ndarray, what: str = "samples") -> None:
    if not np.isfinite(data).all():
        raise AudioError(path, f"contains non-finite {what} (NaN or inf)")
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(path, f"sample values reach {peak:.3g}, far outside [-1, 1]: "
                               f"not usable audio (corrupt float data)")


def _mono(path: Path, data: np.ndarray) -> np.ndarray:
    _check_samples(path, data)
    if data.shape[1] == 1:
        return data[:, 0]
    wave = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    _check_samples(path, wave, "samples after the downmix to mono")
    return wave


def iter_blocks(path: str | Path, *, max_duration: float = DEFAULT_MAX_DURATION,
                block_frames: int = BLOCK_FRAMES):
    """Decode a file block by block: yields its :class:`AudioInfo`, then
    ``(frames, channels)`` float32 blocks; validates header, samples and length.

    Raises :class:`AudioError` (naming the file) for every problem, including a truncated
    file, which is detected only after its last block.
    """
    path = Path(path)
    size = check_file(path)
    decoded = 0
    try:
        with sf.SoundFile(sf_path(path)) as f:
            info = _check_header(path, f, size, max_duration)
            extra = f.extra_info
            yield info
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                _check_samples(path, block)
                decoded += len(block)
                if decoded > max_duration * info.sample_rate:
                    raise AudioError(path, f"decodes to more than max_duration="
                                           f"{max_duration:g} s")
                yield block
    except AudioError:
        raise
    except MemoryError as exc:
        raise AudioError(path, "too large to decode in memory") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's
        raise _decode_error(path, exc) from exc
    _finish_checks(path, info, extra, decoded, size)


def probe_audio(path: str | Path, *, max_duration: float = DEFAULT_MAX_DURATION) -> AudioInfo:
    """Validate a whole file by decoding it block by block (little memory); its info."""
    blocks = iter_blocks(path, max_duration=max_duration)
    info = next(blocks)
    frames = sum(len(b) for b in blocks)
    return AudioInfo(info.path, info.sample_rate, info.channels, frames, info.format,
                     info.subtype)


def read_audio(path: str | Path, *, max_duration: float = DEFAULT_MAX_DURATION
               ) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file at its native rate: ``(frames, channels)`` float32 and its info.

    Raises :class:`AudioError` for what is not a regular file, a missing, empty,
    undecodable, truncated or zero-length file, a header claiming more than
    ``max_duration`` seconds or more samples than the file can hold, and samples that are
    NaN, infinite or absurdly large.
    """
    blocks = iter_blocks(path, max_duration=max_duration)
    info = next(blocks)
    data = np.concatenate(list(blocks))
    return data, AudioInfo(info.path, info.sample_rate, info.channels, len(data),
                           info.format, info.subtype)


def _resample(path: Path, wave: np.ndarray, sr_in: int, sr: int, res_type: str) -> np.ndarray:
    # librosa (numba, scipy) only when a file needs resampling: the command line answers a
    # bad argument or params file without loading the audio stack
    import librosa

    if res_type.startswith("kaiser"):
        # librosa imports resampy lazily through a module proxy that is not thread-safe:
        # decode workers resampling at once saw "module 'resampy' has no attribute
        # 'resample'". A real import first (serialised by the import lock) avoids that.
        import resampy  # noqa: F401
    try:
        out = librosa.resample(wave, orig_sr=sr_in, target_sr=sr, res_type=res_type)
    except MemoryError as exc:
        raise AudioError(path, "too large to resample in memory") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. a 1-sample signal
        raise AudioError(path, f"cannot resample {len(wave)} samples from {sr_in} to {sr} Hz "
                               f"({exc})") from exc
    _check_samples(path, out, "samples after resampling")
    return out


def _check_silence(path, wave: np.ndarray, on_silence: str) -> None:
    if not np.any(wave):
        if on_silence == "error":
            raise AudioError(path, "all samples are zero (silent)")
        if on_silence == "warn":
            warnings.warn(f"{path}: all samples are zero (silent)", AudioWarning, stacklevel=3)


def load_audio(
    path: str | Path,
    sr: int | None,
    *,
    min_duration: float = 0.0,
    on_silence: str = "warn",
    res_type: str = DEFAULT_RES_TYPE,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> np.ndarray:
    """Load a file as mono float32 at ``sr`` Hz (``None`` keeps the native rate).

    Parameters
    ----------
    path : file to read (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...; any rate and channel count).
    sr : target sample rate in Hz; channels are averaged to mono before resampling.
    min_duration : shortest acceptable length in seconds; shorter raises ``AudioError``.
    on_silence : ``"warn"`` (default), ``"error"`` or ``"ignore"`` for all-zero audio.
    res_type : librosa resampler (``"soxr_hq"`` default; ``"kaiser_best"`` is resampy's).
    max_duration : longest acceptable length in seconds (checked on the header first).

    Returns
    -------
    np.ndarray, shape ``(n_samples,)``, float32.

    Raises
    ------
    AudioError
        Naming the file, for anything that makes it unusable (see :func:`read_audio`),
        including a resampler failure.
    """
    if on_silence not in ("warn", "error", "ignore"):
        raise ValueError(f"on_silence must be 'warn', 'error' or 'ignore', not {on_silence!r}")
    path = Path(path)
    data, info = read_audio(path, max_duration=max_duration)
    if info.duration < min_duration:
        raise AudioError(path, f"too short: {info.duration:.3f} s, the minimum is "
                               f"{min_duration:.3f} s")
    _check_silence(path, data, on_silence)
    wave = _mono(path, data)
    del data
    if sr is not None and sr != info.sample_rate:
        wave = _resample(path, wave, info.sample_rate, sr, res_type)
    return np.ascontiguousarray(wave, dtype=np.float32)


def stream_audio(path: str | Path, sr: int | None, *, res_type: str = DEFAULT_RES_TYPE,
                 block_seconds: float = 60.0, max_duration: float = DEFAULT_MAX_DURATION):
    """Mono float32 pieces at ``sr`` Hz whose concatenation is (to resampler rounding at the
    block edges) :func:`load_audio`'s wave, holding only about ``block_seconds`` at a time.

    Each block is resampled with one second of input context on both sides, then trimmed,
    so the resampler's edge effects never reach the kept samples. Raises :class:`AudioError`
    like :func:`load_audio`; a truncated file raises after its last piece.
    """
    path = Path(path)
    blocks = iter_blocks(path, max_duration=max_duration)
    info = next(blocks)
    sr_in = info.sample_rate
    if sr is None or sr == sr_in:
        for block in blocks:
            yield _mono(path, block)
        return
    step = max(1, int(block_seconds)) * sr_in  # block edges on whole seconds: integer outputs
    ctx = sr_in
    buf = np.zeros(0, np.float32)
    buf_start = 0  # input index of buf[0] (a multiple of sr_in)
    out_start = 0  # input index where the next output starts (a multiple of sr_in)
    pending = []
    eof = False
    while not eof:
        try:
            block = next(blocks)
            pending.append(_mono(path, block))
            if sum(len(p) for p in pending) < step + ctx:
                continue
        except StopIteration:
            eof = True
        buf = np.concatenate([buf, *pending])
        pending = []
        avail = buf_start + len(buf)
        end = avail if eof else ((avail - ctx) // sr_in) * sr_in
        if end <= out_start:
            continue
        seg_lo = max(buf_start, out_start - ctx)
        seg_hi = avail if eof else min(end + ctx, avail)
        y = _resample(path, buf[seg_lo - buf_start:seg_hi - buf_start], sr_in, sr, res_type)
        off = (out_start - seg_lo) * sr // sr_in
        yield y[off:] if eof else y[off:off + (end - out_start) * sr // sr_in]
        out_start = end
        keep = max(buf_start, out_start - ctx)
        buf, buf_start = buf[keep - buf_start:], keep


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
