"""Which models a benchmark times, and how: bench keys from the extractor registry, a run's
extractors mapped to them, and :class:`BenchOptions` (the workload every model gets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mtbc.extractors import available_extractors, bench_keys, extractor_class

#: The columns every row carries (``mtbc bench --json`` writes them; tests check them).
ROW_FIELDS = ("model", "device", "dtype", "batch_size", "seconds_per_clip", "audio_s_per_s",
              "tflops", "peak_fraction", "peak_rss_mib", "peak_vram_mib", "load_s",
              "weights_kind")
#: ``weights_kind`` of full-size random weights made for timing (their outputs mean nothing).
RANDOM = "random (speed only)"


@dataclass(frozen=True)
class BenchOptions:
    """The workload and precision every model of one benchmark gets.

    Parameters
    ----------
    device : torch device (``"auto"``: CUDA, else MPS, else CPU).
    dtypes : precisions to time; ``"auto"`` is what the extractor's own ``dtype="auto"``
        picks there (timed first).
    batch_sizes : clips per batch, one timing each.
    clip_seconds : length of each synthetic clip (s).
    repeats : best of this many timings.
    budget_s : per model, seconds the timings may take; a batch size estimated (from the
        last one timed) to exceed what is left is skipped and its row says so. ``None``: no
        limit.
    agreement_paths : audio files embedded in float32 and in every other precision for the
        per-layer agreement figures.
    seed : seeds the random weights and the synthetic clip.

    Examples
    --------
    >>> BenchOptions(device="cpu", dtypes=["float32"], batch_sizes=[1]).batch_sizes
    (1,)
    """

    device: str = "auto"
    dtypes: Sequence[str] = ("auto",)
    batch_sizes: Sequence[int] = (1, 8)
    clip_seconds: float = 30.0
    repeats: int = 1
    budget_s: float | None = None
    agreement_paths: Sequence[str] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        fix = object.__setattr__  # frozen: normalise once, here
        fix(self, "dtypes", tuple(str(d).strip() for d in self.dtypes))
        fix(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        fix(self, "agreement_paths", tuple(str(p) for p in self.agreement_paths))
        fix(self, "clip_seconds", float(self.clip_seconds))
        fix(self, "repeats", int(self.repeats))
        if not self.dtypes or not self.batch_sizes:
            raise ValueError("BenchOptions needs at least one dtype and one batch size")
        if min(self.batch_sizes) < 1 or self.repeats < 1 or not self.clip_seconds > 0:
            raise ValueError(f"batch sizes and repeats must be >= 1 and clip_seconds > 0, "
                             f"not {self.batch_sizes}, {self.repeats}, {self.clip_seconds}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the worker subprocess rebuilds the options from them)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def model_keys() -> dict[str, str]:
    """``mtbc bench`` model key -> extractor name, for every registered extractor."""
    return bench_keys()


def _check_key(key: str) -> str:
    keys = model_keys()
    if key not in keys:
        raise ValueError(f"unknown model {key!r}; choose among {', '.join(keys)}")
    return keys[key]


def model_key(name: str, options: Mapping[str, Any] | None = None) -> str:
    """The bench key of a run's extractor ``name`` with its ``options`` (e.g. ``mert`` with
    ``model=m-a-p/MERT-v1-95M`` -> ``mert-95m``); the extractor decides."""
    if name not in available_extractors():
        raise ValueError(f"unknown model {name!r}; choose among {', '.join(model_keys())}")
    return extractor_class(name).bench_key(dict(options or {}))


def models_for_run(extractors: Mapping[str, Mapping[str, Any]], *,
                   extra: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Label -> ``{"key", "name", "options"}`` for every extractor the run used (its own
    weights), then each key in ``extra`` the run did not use (``options`` ``None``: the
    extractor's full-size random weights, or its default options when it ships its
    weights or has none).

    Examples
    --------
    >>> models_for_run({"m": {"name": "mfcc"}}, extra=["mfcc"])["m"]["key"]
    'mfcc'
    """
    out: dict[str, dict[str, Any]] = {}
    for label, opts in extractors.items():
        opts = dict(opts)
        name = opts.pop("name", label)
        out[label] = {"key": model_key(name, opts), "name": name, "options": opts}
    used = {m["key"] for m in out.values()}
    for key in extra:
        name = _check_key(key)
        if key not in used and key not in out:
            out[key] = {"key": key, "name": name, "options": None}
    return out
