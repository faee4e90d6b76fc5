"""Embedding extractors behind one interface (:class:`mtbc.extractors.base.Extractor`).

``get_extractor(name, **options)`` builds one by name; models are imported lazily so that
importing mtbc stays cheap. One module per model: ``mert``, ``vggish``, ``mfcc``, ``musicnn``.

The registry
------------
:data:`EXTRACTORS` is the one list of extractor names in mtbc: a dict ``name ->
"module:Class"`` (or the class itself), imported on first use. The CLI's ``--extractor``
choices, ``mtbc bench --models`` (each class's :meth:`Extractor.bench_keys`) and run
parameters all read it. A new extractor is one entry::

    from mtbc.extractors import register_extractor
    register_extractor("mymodel", "mypackage.extractor:MyExtractor")
"""

from __future__ import annotations

import importlib
import inspect
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

__all__ = ["EXTRACTORS", "FIXTURE_MARKER", "Extractor", "ExtractorConfigError",
           "ModelLoadError", "WeightsUnavailableError", "available_extractors", "bench_keys",
           "build_extractors", "extractor_class", "get_extractor", "make_fingerprint",
           "register_extractor", "weights_kind"]

#: name -> ``"module:Class"`` (imported lazily, so that importing mtbc stays cheap) or the
#: :class:`Extractor` subclass itself. Change it through :func:`register_extractor`.
EXTRACTORS: dict[str, str | type[Extractor]] = {
    "mert": "mtbc.extractors.mert:MertExtractor",
    "vggish": "mtbc.extractors.vggish:VGGishExtractor",
    "musicnn": "mtbc.extractors.musicnn:MusicnnExtractor",
    "mfcc": "mtbc.extractors.mfcc:MfccExtractor",
}


def register_extractor(name: str, target: str | type[Extractor], *,
                       replace: bool = False) -> None:
    """Add an extractor to :data:`EXTRACTORS` under ``name``.

    Parameters
    ----------
    name : the name runs, the CLI and :func:`get_extractor` use (lower case, no spaces).
    target : ``"module:Class"`` (imported on first use) or an :class:`Extractor` subclass.
    replace : allow replacing an existing entry (otherwise ``ValueError``).

    Examples
    --------
    >>> from mtbc.extractors.mfcc import MfccExtractor
    >>> register_extractor("mfcc13", MfccExtractor)
    >>> "mfcc13" in available_extractors()
    True
    >>> del EXTRACTORS["mfcc13"]
    """
    if not isinstance(name, str) or not name or name != name.strip().lower() or " " in name:
        raise ValueError(f"extractor name must be a lower-case word, not {name!r}")
    if isinstance(target, str):
        if target.count(":") != 1 or not all(target.split(":")):
            raise ValueError(f"extractor {name}: target must be 'module:Class', not {target!r}")
    elif not (isinstance(target, type) and issubclass(target, Extractor)):
        raise ValueError(f"extractor {name}: {target!r} is not an Extractor subclass")
    if name in EXTRACTORS and not replace and EXTRACTORS[name] != target:
        raise ValueError(f"extractor {name!r} is already registered ({EXTRACTORS[name]}); "
                         f"pass replace=True to replace it")
    EXTRACTORS[name] = target


def available_extractors() -> list[str]:
    """Names accepted by :func:`get_extractor`, sorted."""
    return sorted(EXTRACTORS)


def extractor_class(name: str) -> type[Extractor]:
    """The :class:`Extractor` subclass registered as ``name`` (its module imported now).

    Raises :class:`ExtractorConfigError` for an unknown name.
    """
    try:
        target = EXTRACTORS[name]
    except (KeyError, TypeError):
        raise ExtractorConfigError(
            f"unknown extractor {name!r}; choose one of {', '.join(available_extractors())}"
        ) from None
    if isinstance(target, str):
        module_name, class_name = target.split(":")
        target = getattr(importlib.import_module(module_name), class_name)
    return target


def bench_keys() -> dict[str, str]:
    """Every ``mtbc bench --models`` key of the registered extractors -> extractor name
    (imports every extractor module)."""
    return {key: name for name in EXTRACTORS for key in extractor_class(name).bench_keys()}


def get_extractor(name: str, **options: Any) -> Extractor:
    """Build the extractor called ``name`` with its keyword ``options``.

    Raises
    ------
    ExtractorConfigError
        Unknown extractor, unknown option or a bad option value (one line naming it).
    WeightsUnavailableError
        Model files missing (the message says how to get them).
    """
    cls = extractor_class(name)
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
