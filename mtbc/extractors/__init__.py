"""Embedding extractors behind one interface (:class:`mtbc.extractors.base.Extractor`).

``get_extractor(name, **options)`` builds one by name; models are imported lazily so that
importing mtbc stays cheap. One module per model: ``mert``, ``vggish``, ``mfcc``, ``musicnn``,
``hf`` (any supported Hugging Face encoder, and ``clap``).

The registry
------------
:data:`EXTRACTORS` is the one list of extractor names in mtbc: a dict ``name ->
"module:Class"`` (or the class itself), imported on first use. The CLI's ``--extractor``
choices, ``mtbc bench --models`` (each class's :meth:`Extractor.bench_keys`) and run
parameters all read it. A new extractor is one entry::

    from mtbc.extractors import register_extractor
    register_extractor("mymodel", "mypackage.extractor:MyExtractor")

Installed packages add more through the ``mtbc.extractors`` entry-point group
(:data:`PLUGIN_GROUP`, ``docs/extractors.md``): they are found when a name is looked up.
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

__all__ = ["EXTRACTORS", "FIXTURE_MARKER", "PLUGIN_GROUP", "Extractor", "ExtractorConfigError",
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
    "hf": "mtbc.extractors.hf:HfExtractor",
    "clap": "mtbc.extractors.hf:ClapExtractor",
}

#: Entry-point group through which an installed package adds extractors (``docs/extractors.md``).
PLUGIN_GROUP = "mtbc.extractors"


def plugin_extractors() -> dict[str, str]:
    """Name -> ``"module:Class"`` of the extractors installed packages declare in the
    :data:`PLUGIN_GROUP` entry-point group (read from package metadata on each call, so a
    package installed while Python runs is seen; nothing is imported here). A plugin may not
    take a registered name: such an entry is skipped with a warning."""
    import warnings
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in EXTRACTORS:
            warnings.warn(f"extractor plugin {ep.name!r} ({ep.value}) ignored: {ep.name!r} is a "
                          "built-in extractor; give the plugin another name", stacklevel=2)
            continue
        found.setdefault(ep.name, ep.value)
    return found


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
    """Names accepted by :func:`get_extractor`, sorted: the registry and installed plugins."""
    return sorted({*EXTRACTORS, *plugin_extractors()})


def extractor_class(name: str) -> type[Extractor]:
    """The :class:`Extractor` subclass registered as ``name`` (its module imported now).

    Raises :class:`ExtractorConfigError` for an unknown name.
    """
    target = EXTRACTORS.get(name) if isinstance(name, str) else None
    if target is None and isinstance(name, str):
        target = plugin_extractors().get(name)
    if target is None:
        raise ExtractorConfigError(
            f"unknown extractor {name!r}; choose one of {', '.join(available_extractors())}")
    if isinstance(target, str):
        module_name, _, class_name = target.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ExtractorConfigError(f"extractor {name}: cannot import {target} "
                                       f"({type(exc).__name__}: {exc}); reinstall the package "
                                       "that provides it") from exc
    if not (isinstance(target, type) and issubclass(target, Extractor)):
        raise ExtractorConfigError(f"extractor {name}: {target} is not a subclass of "
                                   "mtbc.extractors.Extractor")
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
