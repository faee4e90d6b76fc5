"""Embedding extractors behind one interface (:class:`mtbc.extractors.base.Extractor`).

``get_extractor(name, **options)`` builds one by name; models are imported lazily so that
importing mtbc stays cheap. One module per model: ``mert``, ``vggish``, ``mfcc``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from mtbc.extractors.base import (
    FIXTURE_MARKER,
    Extractor,
    ExtractorConfigError,
    ModelLoadError,
    WeightsUnavailableError,
    make_fingerprint,
    weights_kind,
)

__all__ = ["FIXTURE_MARKER", "Extractor", "ExtractorConfigError", "ModelLoadError",
           "WeightsUnavailableError", "available_extractors", "build_extractors",
           "get_extractor", "make_fingerprint", "weights_kind"]

#: name -> "module:Class", imported lazily so that importing mtbc stays cheap.
_REGISTRY: dict[str, str] = {
    "mert": "mtbc.extractors.mert:MertExtractor",
    "vggish": "mtbc.extractors.vggish:VGGishExtractor",
    "mfcc": "mtbc.extractors.mfcc:MfccExtractor",
    "musicnn": "mtbc.extractors.musicnn:MusicnnExtractor",
    "hf": "mtbc.extractors.hf:HfExtractor",
    "clap": "mtbc.extractors.hf:ClapExtractor",
}


def available_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor`."""
    return sorted(_REGISTRY)


def get_extractor(name: str, **options: Any) -> Extractor:
    """Build the extractor called ``name`` with its keyword ``options``.

    Raises
    ------
    ExtractorConfigError
        Unknown extractor, unknown option or a bad option value (one line naming it).
    WeightsUnavailableError
        Model files missing (the message says how to get them).
    """
    import inspect

    try:
        target = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ExtractorConfigError(
            f"unknown extractor {name!r}; choose one of {', '.join(available_extractors())}"
        ) from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ExtractorConfigError(f"extractor {name}: unknown option(s) {', '.join(unknown)}; "
                                   f"its options are {', '.join(accepted)}")
    try:
        return cls(**options)
    except (WeightsUnavailableError, ModelLoadError):
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ExtractorConfigError(f"extractor {name}: {text}") from exc


def build_extractors(extractors: Mapping[str, Mapping[str, Any]]) -> dict[str, Extractor]:
    """Label -> extractor for a run's ``extractors`` (label -> options with a ``name``; a
    missing name is the label). Models load lazily, on first use."""
    out = {}
    for label, options in extractors.items():
        opts = dict(options)
        out[label] = get_extractor(opts.pop("name", label), **opts)
    return out
