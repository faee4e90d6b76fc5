"""A hand-crafted baseline: MFCC, chroma and spectral-contrast statistics per segment.

The wave is cut into ``segment_seconds`` segments by :func:`mtbc.data.audio.chunk_wave`.
Remainder policy: the samples after the last full segment form one shorter segment when they
last at least ``min_last_seconds`` (1 s by default) and are dropped otherwise; a wave shorter
than one segment is one segment whatever its length. A segment shorter than ``n_fft`` is
zero-padded to ``n_fft`` samples so that every feature has at least one frame.

Per segment, one magnitude STFT (``n_fft``/``hop_length``, Hann, centred) feeds

- ``n_mfcc`` MFCCs (from an ``n_mels`` mel power spectrogram in dB) and their first and second
  time derivatives (``librosa.feature.delta``, width 9; edge frames repeated when a segment has fewer),
- 12 chroma bins (``chroma_stft`` on the power spectrogram, tuning fixed at A440),
- ``n_bands + 1`` spectral-contrast values (``fmin`` Hz lowest band edge),

and the segment vector is the mean over frames of every feature followed by its standard
deviation over frames: ``dim = 2 * (3 * n_mfcc + 12 + n_bands + 1)`` (158 by default).
``embed`` returns ``(n_segments, 1, dim)`` float32; see :meth:`MfccExtractor.feature_names`.
"""

from __future__ import annotations

from typing import Any

import librosa
import numpy as np

from mtbc.data.audio import chunk_wave
from mtbc.extractors.base import Extractor, make_fingerprint

#: Bumped whenever the feature recipe changes in a way the options do not capture.
FEATURE_VERSION = 1
_N_CHROMA = 12
_DELTA_WIDTH = 9


def _librosa_version() -> str:
    """librosa's ``major.minor`` (patch releases do not change these features)."""
    return ".".join(librosa.__version__.split(".")[:2])


class MfccExtractor(Extractor):
    """MFCC + delta + delta-delta, chroma and spectral-contrast statistics per segment.

    Parameters
    ----------
    sample_rate : input rate in Hz (int); waves must already be at this rate.
    segment_seconds : segment length in s (3.0).
    min_last_seconds : shortest remainder in s kept as its own segment (1.0).
    n_mfcc : number of MFCCs (20).
    n_mels : mel bands the MFCCs are computed from (128, librosa's default).
    n_fft : STFT window length in samples (2048, ~93 ms at 22.05 kHz).
    hop_length : STFT hop in samples (512, ~23 ms at 22.05 kHz).
    fmin : lower edge in Hz of the first spectral-contrast band (200.0).
    n_bands : spectral-contrast bands above ``fmin`` (6; gives 7 values).
    """

    name = "mfcc"

    def __init__(
        self,
        *,
        sample_rate: int = 22050,
        segment_seconds: float = 3.0,
        min_last_seconds: float = 1.0,
        n_mfcc: int = 20,
        n_mels: int = 128,
        n_fft: int = 2048,
        hop_length: int = 512,
        fmin: float = 200.0,
        n_bands: int = 6,
    ):
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, not {sample_rate!r}")
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, not {segment_seconds!r}")
        if min_last_seconds < 0:
            raise ValueError(f"min_last_seconds must be >= 0, not {min_last_seconds!r}")
        for key, value in (("n_mfcc", n_mfcc), ("n_mels", n_mels), ("n_fft", n_fft),
                           ("hop_length", hop_length), ("n_bands", n_bands)):
            if int(value) != value or value <= 0:
                raise ValueError(f"{key} must be a positive integer, not {value!r}")
        if not 0 < fmin * 2 ** (n_bands - 1) < sample_rate / 2:  # librosa's band-edge check
            raise ValueError(f"spectral-contrast band edges fmin={fmin} Hz x 2**(n_bands - 1) "
                             f"with n_bands={n_bands} reach the Nyquist frequency "
                             f"{sample_rate / 2} Hz; lower fmin or n_bands")
        self.sample_rate = int(sample_rate)
        self.segment_seconds = float(segment_seconds)
        self.min_last_seconds = float(min_last_seconds)
        self.n_mfcc = int(n_mfcc)
        self.n_mels = int(n_mels)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.fmin = float(fmin)
        self.n_bands = int(n_bands)

    # -- description ---------------------------------------------------------------
    @property
    def segment_samples(self) -> int:
        return max(1, round(self.segment_seconds * self.sample_rate))

    @property
    def stream_unit(self) -> int:
        """Segments are independent: a wave may be cut at any segment boundary."""
        return self.segment_samples

    @property
    def dim(self) -> int:
        return 2 * (3 * self.n_mfcc + _N_CHROMA + self.n_bands + 1)

    def _options(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "segment_seconds": self.segment_seconds,
                "min_last_seconds": self.min_last_seconds, "n_mfcc": self.n_mfcc,
                "n_mels": self.n_mels, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "fmin": self.fmin, "n_bands": self.n_bands}

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, **self._options(), librosa=_librosa_version(),
                                feature_version=FEATURE_VERSION)

    def feature_names(self) -> list[str]:
        """Name of each of the ``dim`` output dimensions, e.g. ``"mean mfcc_3"``."""
        base = ([f"mfcc_{i}" for i in range(self.n_mfcc)]
                + [f"d_mfcc_{i}" for i in range(self.n_mfcc)]
                + [f"dd_mfcc_{i}" for i in range(self.n_mfcc)]
                + [f"chroma_{i}" for i in range(_N_CHROMA)]
                + [f"contrast_{i}" for i in range(self.n_bands + 1)])
        return [f"mean {b}" for b in base] + [f"std {b}" for b in base]

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), **self._options(), "dim": self.dim, "n_layers": 1,
                "librosa": librosa.__version__, "feature_version": FEATURE_VERSION,
                "weights_kind": "none",
                "remainder_policy": f"last segment kept if >= {self.min_last_seconds} s"}

    def layer_names(self, n_layers: int) -> list[str]:
        return ["mfcc statistics"] * n_layers

    # -- computation -----------------------------------------------------------------
    def _segment_features(self, seg: np.ndarray) -> np.ndarray:
        if len(seg) < self.n_fft:
            seg = np.pad(seg, (0, self.n_fft - len(seg)))
        sr = self.sample_rate
        mag = np.abs(librosa.stft(seg, n_fft=self.n_fft, hop_length=self.hop_length))
        power = mag ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=self.n_mels)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=self.n_mfcc)
        # too few frames to interpolate the edges (short segments): repeat the edge frames
        mode = "interp" if mfcc.shape[1] >= _DELTA_WIDTH else "nearest"
        d1 = librosa.feature.delta(mfcc, width=_DELTA_WIDTH, order=1, mode=mode)
        d2 = librosa.feature.delta(mfcc, width=_DELTA_WIDTH, order=2, mode=mode)
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=self.n_fft, tuning=0.0,
                                             n_chroma=_N_CHROMA)
        contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=self.n_fft,
                                                     fmin=self.fmin, n_bands=self.n_bands)
        feats = np.concatenate([mfcc, d1, d2, chroma, contrast], axis=0)
        return np.concatenate([feats.mean(axis=1), feats.std(axis=1)])

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed a mono wave at ``sample_rate``: ``(n_segments, 1, dim)`` float32."""
        wave = self.check_wave(wave)
        min_last = max(1, round(self.min_last_seconds * self.sample_rate))
        segments = chunk_wave(wave, self.segment_samples, min_last=min_last)
        out = np.stack([self._segment_features(s) for s in segments])[:, None, :]
        return out.astype(np.float32)
