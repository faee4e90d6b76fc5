"""The one interface every embedding extractor implements (see ``docs/extractors.md``).

An :class:`Extractor` has

- ``sample_rate``: the rate ``embed`` expects its mono float32 input at,
- ``fingerprint``: a short hash that changes whenever weights, revision or any option
  that changes outputs changes (it keys the embedding cache),
- ``embed(wave) -> (n_segments, n_layers, dim)`` float32 array.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: A file of this name beside model weights marks them as random test fixtures.
FIXTURE_MARKER = "MTBC_FIXTURE.txt"


def weights_kind(folder: str | Path) -> str:
    """``"fixture"`` when ``folder`` holds :data:`FIXTURE_MARKER`, else ``"pretrained"``."""
    return "fixture" if (Path(folder) / FIXTURE_MARKER).is_file() else "pretrained"


class WeightsUnavailableError(RuntimeError):
    """Model weights are not on this machine and cannot be fetched; the message says how to fix it."""


class ExtractorConfigError(ValueError):
    """An unknown extractor or a bad option value; the message says which and how to fix it."""


class ModelLoadError(RuntimeError):
    """Model files exist but cannot be loaded; the message names the file and the fix."""


def make_fingerprint(name: str, **fields: Any) -> str:
    """Stable 16-hex-digit hash of an extractor name and the fields that change its output."""
    payload = json.dumps({"extractor": name, **fields}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


class Extractor(abc.ABC):
    """Base class: subclasses set ``name`` and ``sample_rate`` and implement ``embed``."""

    name: str
    sample_rate: int
    #: Shortest input (in samples) ``embed`` accepts; shorter input is the caller's to refuse.
    min_samples: int = 1
    #: Long files are embedded block by block when set: a wave may be cut at any multiple of
    #: ``stream_unit`` samples and the parts' outputs concatenated give the whole wave's
    #: (``None``: always embed the whole wave).
    stream_unit: int | None = None
    #: Samples past a cut that the segments before it still read (e.g. an STFT window).
    stream_overlap: int = 0

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Short hash of everything that changes outputs."""

    @abc.abstractmethod
    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed one mono float32 waveform at ``sample_rate``: ``(n_segments, n_layers, dim)``."""

    def embed_many(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Embed several waveforms; extractors override this to batch across tracks."""
        return [self.embed(w) for w in waves]

    def metadata(self) -> dict[str, Any]:
        """What a report or cache entry records about this extractor (JSON-serialisable)."""
        return {"extractor": self.name, "sample_rate": self.sample_rate,
                "fingerprint": self.fingerprint}

    def layer_names(self, n_layers: int) -> list[str]:
        """Human names of the layer axis (``layer 0`` ... by default)."""
        return [f"layer {i}" for i in range(n_layers)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fingerprint={self.fingerprint!r})"
