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
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtbc.data.audio import DEFAULT_RES_TYPE

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: Any = "auto"):
    """A ``torch.device``: ``"auto"`` is CUDA when available, else Apple's MPS, else the CPU.

    Raises ``ValueError`` naming a malformed device (``"cuda:x"``, ``"gpu"``).
    """
    import torch

    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device; use 'auto', 'cpu', "
                         f"'cuda', 'cuda:N' or 'mps'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here; use device=cpu or auto")
    return dev


def cpu_bf16_capability() -> dict[str, bool]:
    """What this CPU and torch build offer for bfloat16: ``avx512_bf16`` and ``amx_bf16``
    (native bf16 instructions, as torch reports them), ``mkldnn_bf16`` (oneDNN's own check)
    and ``native`` (oneDNN is available and says bf16 is supported, with AVX512-BF16 or AMX).

    Without native instructions oneDNN emulates bf16, which is slower than fp32; this is the
    check ``resolve_dtype`` uses to decide whether ``"auto"`` may pick bf16 on the CPU.
    """
    import torch

    def ask(fn) -> bool:
        try:
            return bool(fn())
        except (AttributeError, RuntimeError):
            return False

    caps = {
        "avx512_bf16": ask(lambda: torch.cpu._is_avx512_bf16_supported()),
        "amx_bf16": ask(lambda: torch.cpu._is_amx_tile_supported()),
        "mkldnn_bf16": ask(lambda: torch.backends.mkldnn.is_available()
                           and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }
    caps["native"] = caps["mkldnn_bf16"] and (caps["avx512_bf16"] or caps["amx_bf16"])
    return caps


#: Environment variable overriding the CPU check: ``0`` keeps ``"auto"`` at fp32 on every
#: CPU (the test suite sets it, so its results do not depend on the machine), ``1`` lets
#: ``"auto"`` pick bf16 as if the CPU had native support.
CPU_BF16_ENV = "MTBC_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether ``"auto"`` may use bf16 on this CPU: native bf16 instructions (see
    :func:`cpu_bf16_capability`), unless :data:`CPU_BF16_ENV` says otherwise."""
    override = os.environ.get(CPU_BF16_ENV, "").strip()
    if override in ("0", "1"):
        return override == "1"
    return cpu_bf16_capability()["native"]


def resolve_dtype(dtype: str, device, *, cpu_bf16: bool = False) -> str:
    """The compute precision actually used (never ``"auto"``).

    ``"auto"`` is bf16 on CUDA (fp16 on GPUs without bf16); on a CPU with native bf16
    (:func:`cpu_has_native_bf16`) it is bf16 when the caller passes ``cpu_bf16=True`` (the
    extractors whose bf16 speed-up and agreement with fp32 were measured: MERT, VGGish; see
    ``docs/compute.md``); fp32 everywhere else (MPS included). An explicit ``"float32"``,
    ``"bfloat16"`` or ``"float16"`` is kept, so ``dtype: float32`` forces fp32.
    """
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))}, not {dtype!r}")
    if dtype != "auto":
        return dtype
    kind = torch.device(device).type
    if kind == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if kind == "cpu" and cpu_bf16 and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


#: A file of this name beside model weights marks them as random test fixtures.
FIXTURE_MARKER = "MTBC_FIXTURE.txt"


def weights_kind(folder: str | Path) -> str:
    """``"fixture"`` when ``folder`` holds :data:`FIXTURE_MARKER`, else ``"pretrained"``."""
    return "fixture" if (Path(folder) / FIXTURE_MARKER).is_file() else "pretrained"


class WeightsUnavailableError(RuntimeError):
    """Model weights are not on this machine and cannot be fetched; the message says how to
    fix it, and ``fix`` says it in one line (``None``: the message is the fix)."""

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


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
    #: Resampler ``mtbc.data.audio.load_audio`` uses to bring a file to ``sample_rate``.
    res_type: str = DEFAULT_RES_TYPE
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

    def embed_many(self, waves: Sequence[np.ndarray], *, progress: bool = False
                   ) -> list[np.ndarray]:
        """Embed several waveforms; extractors override this to batch across tracks."""
        return [self.embed(w) for w in waves]

    def load(self) -> Extractor:
        """Load the model now rather than on first use (no-op without weights); returns self.
        """
        return self

    def companions(self) -> dict[str, Extractor]:
        """Other extractors (by fingerprint) whose outputs the same forward pass computes, so
        extraction caches them too (musicnn's tags beside its embedding); none by default.
        After :meth:`embed_many`, ``last_companions`` maps each fingerprint to one array per
        wave."""
        return {}

    def check_wave(self, wave: np.ndarray, *, index: int | None = None) -> np.ndarray:
        """``wave`` as float32 if it is mono 1-D, floating, finite and at least ``min_samples``
        long; else ``ValueError`` saying which wave (``index``) and what is wrong."""
        what = "wave" if index is None else f"wave {index}"
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise ValueError(f"{what}: expected mono 1-D audio, got shape {wave.shape}")
        if not np.issubdtype(wave.dtype, np.floating):
            raise ValueError(f"{what}: expected float samples in [-1, 1], got dtype {wave.dtype}")
        if wave.size == 0:
            raise ValueError(f"{what}: empty (0 samples)")
        if len(wave) < self.min_samples:
            raise ValueError(f"{what}: too short: {len(wave)} samples, {self.name} needs at least "
                             f"{self.min_samples} ({self.min_samples / self.sample_rate:.3f} s at "
                             f"{self.sample_rate} Hz)")
        if not np.isfinite(wave).all():
            raise ValueError(f"{what}: contains non-finite samples (NaN or inf)")
        return wave.astype(np.float32, copy=False)

    def metadata(self) -> dict[str, Any]:
        """What a report or cache entry records about this extractor (JSON-serialisable)."""
        return {"extractor": self.name, "sample_rate": self.sample_rate,
                "fingerprint": self.fingerprint}

    def layer_names(self, n_layers: int) -> list[str]:
        """Human names of the layer axis (``layer 0`` ... by default)."""
        return [f"layer {i}" for i in range(n_layers)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fingerprint={self.fingerprint!r})"

    # ----------------------------------------------------------------- cost model
    # What running the extractor costs, and how to time it: :mod:`mtbc.benchmark` asks
    # these and never switches on an extractor's name. The defaults describe an extractor
    # without a network (MFCC): one bench key, its default options, float32 only, no FLOPs.

    @classmethod
    def bench_keys(cls) -> tuple[str, ...]:
        """The ``mtbc bench --models`` keys of this extractor, one per size it comes in.

        Examples
        --------
        >>> from mtbc.extractors import extractor_class
        >>> extractor_class("mert").bench_keys()
        ('mert-95m', 'mert-330m')
        """
        return (cls.name,)

    @classmethod
    def bench_key(cls, options: Mapping[str, Any]) -> str:
        """Which of :meth:`bench_keys` a run's extractor with these ``options`` is."""
        return cls.bench_keys()[0]

    @classmethod
    def prepare_imports(cls) -> None:
        """Import the libraries loading will need, so that a timed load measures loading
        only (nothing by default: the extractor's module imported them)."""
        return None

    @classmethod
    def write_random_weights(cls, key: str, folder: Path, *, seed: int = 0
                             ) -> dict[str, Any] | None:
        """Write full-size random weights for bench key ``key`` into ``folder`` (speed-only
        timing when the real ones are not here) and return the options that load them;
        ``None`` when nothing is written (no network, shipped weights, or
        :meth:`random_full_size` builds them in memory)."""
        return None

    @classmethod
    def random_full_size(cls, key: str, *, device: str, seed: int = 0) -> Extractor | None:
        """The extractor at full size with random weights built in memory, loaded, in
        float32 (speed-only timing); ``None`` when the default options are what to time."""
        return None

    @property
    def network(self):
        """The ``torch.nn.Module`` that does the work (loaded on access); ``None`` without one."""
        return None

    def n_params(self) -> int:
        """Parameters of :attr:`network` (0 without one)."""
        net = self.network
        return 0 if net is None else int(sum(p.numel() for p in net.parameters()))

    def weights_files(self) -> list[Path]:
        """The files the weights were read from (empty: none, or built in memory)."""
        return []

    def auto_dtype(self) -> str:
        """What ``dtype="auto"`` resolves to for this extractor on its device."""
        return "float32"

    def with_dtype(self, dtype: str) -> Extractor:
        """This extractor computing in ``dtype`` (``"float32"``, ``"bfloat16"``, ...), sharing
        the loaded network; ``self`` when it has no precision to change."""
        return self

    def fit_batch(self, n_clips: int, clip: np.ndarray) -> None:
        """Set the batch size so that ``n_clips`` clips like ``clip`` run in one forward pass
        (nothing to set by default)."""
        return None

    def flops_per_clip(self, clip: np.ndarray) -> float | None:
        """Network FLOPs (2 per multiply-add) to embed ``clip`` (mono, at ``sample_rate``);
        ``None`` without a network."""
        return None

    def chunk_bytes(self, n_samples: int) -> int | None:
        """Peak activation memory (bytes) of one forward pass over one input of ``n_samples``
        in this extractor's precision; ``None`` when not modelled."""
        return None
