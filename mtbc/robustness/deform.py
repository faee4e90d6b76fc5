"""Named audio deformations with a strength and a seed (``docs/robustness.md``).

Every deformation but reverb goes through ``audiomentations`` with its random range pinned to
the requested strength (``min == max``, ``p=1``), so the only randomness left is the noise
itself, drawn under a seed. MP3 uses audiomentations' ``lameenc`` backend (LAME encoder,
decoded back by librosa). Reverb convolves with an impulse response mtbc synthesises
(exponentially decaying Gaussian noise after a direct-path impulse, seeded) using
:func:`scipy.signal.fftconvolve`: audiomentations' ``ApplyImpulseResponse`` only reads
impulse responses from files, so it would need a temporary file per call for the same
convolution; nothing is downloaded either way.

Strength 0 is the identity for every deformation: :func:`deform` returns the input array
itself (same values, no copy made by a library). Strengths are chosen so that 0 means "not
deformed": noise is given as the noise-to-signal *power ratio* (0.1 = 10 dB SNR), MP3 as the
bitrate in kbps, the low-pass filter as its cut-off in Hz.
"""

from __future__ import annotations

import math
import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve

#: Bump when a deformation's implementation changes output (it keys the cache).
DEFORM_VERSION = 1


@dataclass(frozen=True)
class Deformation:
    """One entry of :data:`DEFORMATIONS`: what it does, its strengths and their unit."""

    name: str
    description: str
    strengths: tuple[float, ...]
    unit: str
    via: str

    def label(self, strength: float) -> str:
        """Short text for tables, e.g. ``"noise 10 dB SNR"``, ``"mp3 32 kbps"``."""
        return label(self.name, strength)


DEFORMATIONS: dict[str, Deformation] = {d.name: d for d in (
    Deformation("noise", "white Gaussian noise added at a signal-to-noise ratio "
                "(0.01 / 0.1 / 1 = 20 / 10 / 0 dB SNR)", (0.01, 0.1, 1.0),
                "noise-to-signal power ratio", "audiomentations.AddGaussianSNR"),
    Deformation("mp3", "MP3 encode and decode at a constant bitrate (LAME)", (64, 32),
                "kbps", "audiomentations.Mp3Compression (lameenc)"),
    Deformation("gain", "level change", (-12, 12), "dB", "audiomentations.Gain"),
    Deformation("pitch", "pitch shift, duration kept", (-2, -1, 1, 2), "semitones",
                "audiomentations.PitchShift (signalsmith)"),
    Deformation("stretch", "time stretch, pitch kept (-10 = rate 0.9, slower)", (-10, 10),
                "% tempo change", "audiomentations.TimeStretch (signalsmith)"),
    Deformation("lowpass", "Butterworth low-pass filter, 24 dB/octave", (4000,),
                "Hz cut-off", "audiomentations.LowPassFilter"),
    Deformation("clipping", "hard clipping of the loudest samples (that share of all "
                "samples, split between the two signs)", (10, 30), "% of samples",
                "audiomentations.ClippingDistortion"),
    Deformation("reverb", "convolution with a synthetic room response (direct sound plus "
                "an exponentially decaying noise tail, equal energy), level kept",
                (0.5, 1.5), "s RT60", "scipy.signal.fftconvolve"),
)}

#: The notebook's default: one level of the deformations a collection most often meets.
DEFAULT_SET: tuple[tuple[str, float], ...] = (("noise", 0.1), ("mp3", 32))


def label(name: str, strength: float) -> str:
    """Readable name of a deformation at a strength (``"noise 10 dB SNR"``)."""
    if name == "noise" and strength > 0:
        return f"noise {-10 * math.log10(strength) + 0.0:g} dB SNR"
    if name == "noise":
        return "noise none"
    d = DEFORMATIONS[name]
    unit = {"% tempo change": "%", "% of samples": "% clipped", "Hz cut-off": "Hz"}.get(d.unit,
                                                                                      d.unit)
    sign = "+" if name in ("gain", "pitch", "stretch") and strength > 0 else ""
    return f"{name} {sign}{strength:g} {unit}"


def full_set() -> list[tuple[str, float]]:
    """Every (name, strength) of :data:`DEFORMATIONS`."""
    return [(d.name, s) for d in DEFORMATIONS.values() for s in d.strengths]


def deformations_table() -> pd.DataFrame:
    """:data:`DEFORMATIONS` as a table: name, description, strengths, unit, implementation."""
    return pd.DataFrame([{"name": d.name, "description": d.description,
                          "strengths": ", ".join(f"{s:g}" for s in d.strengths),
                          "unit": d.unit, "via": d.via} for d in DEFORMATIONS.values()]
                        ).set_index("name")


def check(name: str, strength: float) -> None:
    """Raise ``ValueError`` naming a deformation that does not exist or a bad strength."""
    if name not in DEFORMATIONS:
        raise ValueError(f"deformation {name!r} does not exist; choose one of "
                         f"{', '.join(DEFORMATIONS)}")
    s = float(strength)
    bad = (not math.isfinite(s)
           or (name == "noise" and s < 0)
           or (name == "mp3" and s != 0 and s not in _MP3_RATES)
           or (name == "lowpass" and s < 0)
           or (name == "clipping" and not 0 <= s < 100)
           or (name == "reverb" and s < 0)
           or (name == "stretch" and s <= -100))
    if bad:
        hint = {"mp3": f"one of {_MP3_RATES}", "clipping": "in [0, 100)",
                "stretch": "above -100"}.get(name, "finite and >= 0")
        raise ValueError(f"strength {strength!r} is not valid for {name!r}: use a value "
                         f"{hint} ({DEFORMATIONS[name].unit}; 0 = unchanged)")


_MP3_RATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320)


@contextmanager
def _seeded(seed: int):
    """audiomentations draws from the global ``random`` and ``np.random`` streams: seed them
    for the call and put the caller's state back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def impulse_response(sr: int, rt60: float, *, seed: int = 0) -> np.ndarray:
    """A synthetic room response: a unit direct-path impulse, then Gaussian noise decaying by
    60 dB over ``rt60`` seconds, scaled to the direct sound's energy; length ``rt60`` s.

    Returns ``(n,)`` float64 with ``n = max(2, round(rt60 * sr))``.

    Example
    -------
    >>> ir = impulse_response(16000, 0.5, seed=0)
    >>> ir.shape, ir[0]
    ((8000,), 1.0)
    """
    n = max(2, int(round(rt60 * sr)))
    t = np.arange(1, n) / sr
    tail = np.random.default_rng(seed).standard_normal(n - 1) * 10 ** (-3 * t / rt60)
    tail /= np.sqrt(np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def _transform(name: str, s: float):
    # audiomentations is imported here only: a heavy optional import for this one module.
    import audiomentations as am

    if name == "noise":
        snr = -10 * math.log10(s)
        return am.AddGaussianSNR(min_snr_db=snr, max_snr_db=snr, p=1.0)
    if name == "mp3":
        with warnings.catch_warnings():  # "lameenc backend is deprecated": chosen on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            return am.Mp3Compression(min_bitrate=int(s), max_bitrate=int(s), backend="lameenc",
                                     preserve_delay=True, p=1.0)
    if name == "gain":
        return am.Gain(min_gain_db=s, max_gain_db=s, p=1.0)
    if name == "pitch":
        return am.PitchShift(min_semitones=s, max_semitones=s, method="signalsmith_stretch",
                             p=1.0)
    if name == "stretch":
        rate = 1 + s / 100
        return am.TimeStretch(min_rate=rate, max_rate=rate, leave_length_unchanged=False,
                              method="signalsmith_stretch", p=1.0)
    if name == "lowpass":
        return am.LowPassFilter(min_cutoff_freq=s, max_cutoff_freq=s, min_rolloff=24,
                                max_rolloff=24, zero_phase=False, p=1.0)
    if name == "clipping":
        return am.ClippingDistortion(min_percentile_threshold=int(round(s)),
                                     max_percentile_threshold=int(round(s)), p=1.0)
    raise AssertionError(name)


def deform(wave: np.ndarray, sr: int, name: str, strength: float, seed: int = 0
           ) -> np.ndarray:
    """Apply deformation ``name`` at ``strength`` to a mono wave.

    Parameters
    ----------
    wave : np.ndarray, shape ``(n_samples,)``
        Mono audio, float (converted to float32).
    sr : int
        Its sample rate in Hz.
    name : str
        A key of :data:`DEFORMATIONS`.
    strength : float
        In the deformation's unit (:data:`DEFORMATIONS`); 0 returns ``wave`` unchanged (the
        very array).
    seed : int
        Seeds the noise (noise, reverb's impulse response). Same inputs and seed, same output.

    Returns
    -------
    np.ndarray, shape ``(m,)``, float32
        ``m == n_samples`` except for ``stretch`` (about ``n / rate``) and ``mp3`` (the
        encoder's delay and padding kept, a few tens of ms).

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(16000).astype("float32") * 0.1
    >>> y = deform(x, 16000, "noise", 0.1, seed=1)   # 10 dB SNR
    >>> deform(x, 16000, "noise", 0, seed=1) is x
    True
    """
    check(name, strength)
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"deform expects a mono wave (n_samples,), got shape {wave.shape}")
    if float(strength) == 0:
        return wave
    x = np.ascontiguousarray(wave, dtype=np.float32)
    s = float(strength)
    if name == "reverb":
        wet = fftconvolve(x.astype(np.float64), impulse_response(sr, s, seed=seed))[:len(x)]
        rms_in, rms_out = np.sqrt(np.mean(x.astype(np.float64) ** 2)), np.sqrt(np.mean(wet ** 2))
        scale = rms_in / rms_out if rms_out > 0 else 1.0
        return (wet * scale).astype(np.float32)
    with _seeded(seed):
        out = _transform(name, s)(samples=x, sample_rate=int(sr))
    return np.ascontiguousarray(out, dtype=np.float32)
