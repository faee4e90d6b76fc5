"""Embedding extractors behind one interface (:class:`mtbc.extractors.base.Extractor`).

``get_extractor(name, **options)`` builds one by name; models are imported lazily so that
importing mtbc stays cheap. One module per model: ``mert``, ``vggish``, ``mfcc``, ``musicnn``,
``hf`` (any supported Hugging Face encoder, and ``clap``). Installed packages add more through
the ``mtbc.extractors`` entry-point group (:func:`_load_plugins`).
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

__all__ = ["FIXTURE_MARKER", "PLUGIN_GROUP", "Extractor", "ExtractorConfigError", "ModelLoadError",
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


#: Entry-point group through which an installed package adds extractors (``docs/extractors.md``).
PLUGIN_GROUP = "mtbc.extractors"


def _load_plugins() -> dict[str, str]:
    """Name -> ``"module:Class"`` of the extractors installed packages declare in the
    :data:`PLUGIN_GROUP` entry-point group (read from package metadata on each call, so a
    package installed while Python runs is seen; nothing is imported here). A plugin may not
    take a built-in name: such an entry is skipped with a warning."""
    import warnings
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in _REGISTRY:
            warnings.warn(f"extractor plugin {ep.name!r} ({ep.value}) ignored: {ep.name!r} is a "
                          "built-in extractor; give the plugin another name", stacklevel=2)
            continue
        found.setdefault(ep.name, ep.value)
    return found


def available_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor`: the built-ins and installed plugins."""
    return sorted({*_REGISTRY, *_load_plugins()})


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

    target = _REGISTRY.get(name) if isinstance(name, str) else None
    if target is None and isinstance(name, str):
        target = _load_plugins().get(name)
    if target is None:
        raise ExtractorConfigError(
            f"unknown extractor {name!r}; choose one of {', '.join(available_extractors())}")
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ExtractorConfigError(f"extractor {name}: cannot import {target} "
                                   f"({type(exc).__name__}: {exc}); reinstall the package that "
                                   "provides it") from exc
    if not (isinstance(cls, type) and issubclass(cls, Extractor)):
        raise ExtractorConfigError(f"extractor {name}: {target} is not a subclass of "
                                   "mtbc.extractors.Extractor")
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
