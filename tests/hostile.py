"""Writers of hostile audio files (one per way a file can be bad) for the reliability tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


def _tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _truncate(path: Path, fraction: float = 1 / 3) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_hostile(folder: Path) -> dict[str, str]:
    """Write every hostile case into ``folder``; returns file name -> a phrase its reason holds
    (at scan time, or at extraction for ``one_sample.wav``, which decodes but cannot be
    resampled or embedded)."""
    folder.mkdir(parents=True, exist_ok=True)
    sr = 44100
    cases = {}
    sf.write(folder / "one_sample.wav", np.array([0.5], np.float32), sr)
    cases["one_sample.wav"] = "one_sample"  # fails at extraction (checked separately)
    huge = np.full((sr // 2, 2), 3e38, np.float32)
    huge[::2] *= -1
    sf.write(folder / "huge_float.wav", huge, sr, subtype="FLOAT")
    cases["huge_float.wav"] = "far outside [-1, 1]"
    nan = _tone(0.5, sr)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, sr, subtype="FLOAT")
    cases["nan.wav"] = "non-finite"
    sf.write(folder / "lying.flac", _tone(1.0, sr), sr)
    data = bytearray((folder / "lying.flac").read_bytes())
    field = int.from_bytes(data[18:26], "big")  # STREAMINFO: rate, channels, bits, 36-bit total
    data[18:26] = ((field & ~((1 << 36) - 1)) | ((1 << 36) - 1)).to_bytes(8, "big")
    (folder / "lying.flac").write_bytes(bytes(data))
    cases["lying.flac"] = "header claims"
    os.mkfifo(folder / "fifo.wav")
    cases["fifo.wav"] = "FIFO"
    os.symlink("/dev/urandom", folder / "urandom.wav")
    cases["urandom.wav"] = "character device"
    sf.write(folder / "truncated.ogg", _tone(10.0, sr), sr, format="OGG", subtype="VORBIS")
    _truncate(folder / "truncated.ogg")
    cases["truncated.ogg"] = "truncated"
    sf.write(folder / "truncated.mp3", _tone(3.0, sr), sr, format="MP3",
             subtype="MPEG_LAYER_III")
    _truncate(folder / "truncated.mp3")
    cases["truncated.mp3"] = "truncated"
    (folder / "empty.wav").write_bytes(b"")
    cases["empty.wav"] = "empty"
    (folder / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    cases["garbage.wav"] = "cannot decode"
    return cases


def tree_checksums(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (links not followed), hidden
    files included: compare before and after a command to prove nothing was touched."""
    import hashlib

    out = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
