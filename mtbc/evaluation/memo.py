"""Evaluation work kept on disk, so that no notebook repeats another's (``docs/protocol.md``).

Notebooks 04, 05 and 06 run in separate kernels and evaluate some of the same things: 05's
single-model rows are 04's linear probes, 04's MLP ranks the layers exactly as its linear
probe does, 05's and 06's concatenations rank each model's layers as that model alone does,
and a second ``mtbc run`` repeats them all. A :class:`Memo` keeps two kinds of work under a
folder of the mtbc cache (``<cache>/evaluations``):

- ``outcome``: an engine evaluation's fold outcome (:class:`~mtbc.evaluation.results.
  FoldOutcome`: test scores, choices and validation records of every outer fold), keyed by
  the task's tracks and targets, the system's inputs and options, and the fold options;
- ``ranking``: the closed-form ranking of one model's layers in one outer fold
  (:class:`~mtbc.evaluation.selection.Choice`), keyed by the track means it read, the inner
  folds, the candidates and the grid.

Every key also holds the mtbc version, a hash of the evaluation code (``mtbc.evaluation``,
``mtbc.stats``, the folds), the versions of numpy, scipy, scikit-learn and torch, the
machine's architecture and CPU model and the thread limit, so a change in any of them
computes again. Inputs are identified by their content (SHA-256 of the arrays), never by a
name, so two arrays share an entry only when they are equal.

Entries are JSON (no pickle: decoding builds only the types registered with
:func:`keepable`), written atomically, and verified on read: format, version, the key they
were made for, a SHA-256 of their payload, and the caller's structural check against what it
recomputed cheaply (the folds). An entry that fails is named in a warning and computed again,
never trusted and never fatal; a folder that cannot be written gives one warning and the
evaluation goes on without keeping anything. Results rebuilt from a kept outcome are the
same numbers (their bootstrap intervals are recomputed from the same seed).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import threading
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc import __version__
from mtbc.files import StorageError, atomic_write

FORMAT, VERSION = "mtbc-evaluation", 1
#: Subfolder of the mtbc cache that holds the entries.
SUBDIR = "evaluations"
#: The code whose changes change an evaluation's numbers (relative to the package root).
_CODE_GLOBS = (("evaluation", "*.py"), ("stats", "*.py"), ("data", "splits.py"))
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "threadpoolctl")
_KEEPABLE: dict[str, type] = {}


def keepable(cls: type) -> type:
    """Register a dataclass as one a :class:`Memo` may rebuild (class decorator)."""
    _KEEPABLE[cls.__name__] = cls
    return cls


def digest(*parts: Any) -> str:
    """SHA-256 of arrays (dtype, shape and bytes) and JSON-able values, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            if arr.dtype.kind == "O":
                h.update(json.dumps([str(v) for v in arr.ravel()]).encode())
            else:
                h.update(f"{arr.dtype.str}{arr.shape}".encode())
                h.update(memoryview(arr).cast("B"))
        else:
            h.update(json.dumps(encode(part), sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()


def table_digest(table: pd.DataFrame) -> str:
    """SHA-256 of a table's column names, dtypes and values (as text), row by row."""
    cells = table.astype(str).to_numpy().tolist()
    return digest([str(c) for c in table.columns], [str(t) for t in table.dtypes], cells)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def environment() -> dict[str, Any]:
    """What every key holds besides its inputs: versions, code hash and machine."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for folder, pattern in _CODE_GLOBS:
        for path in sorted((root / folder).glob(pattern)):
            h.update(f"{folder}/{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    versions = {}
    for lib in _LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {"mtbc": __version__, "code": h.hexdigest()[:24], "libraries": versions,
            "machine": platform.machine(), "cpu": cpu_model()}


# -- encoding: JSON with tagged arrays, tuples, dicts with any keys and registered dataclasses
def encode(obj: Any) -> Any:
    """``obj`` as JSON-able data that :func:`decode` turns back into equal values."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf":
            return {"__array__": obj.dtype.str, "shape": list(obj.shape),
                    "data": obj.ravel().tolist()}
        if obj.dtype.kind in "UO" and all(isinstance(v, str) for v in obj.ravel()):
            return {"__array__": "str", "shape": list(obj.shape), "data": obj.ravel().tolist()}
        raise TypeError(f"cannot keep an array of {obj.dtype}")
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v) for v in obj]}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in obj.items()]}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in _KEEPABLE:
        return {"__keep__": type(obj).__name__,
                "fields": {f.name: encode(getattr(obj, f.name))
                           for f in dataclasses.fields(obj)}}
    raise TypeError(f"cannot keep a {type(obj).__name__}")


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from (``ValueError`` for anything else)."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or len(data) > 3:
        raise ValueError("not an encoded value")
    if "__array__" in data:
        kind, shape = data["__array__"], tuple(int(s) for s in data["shape"])
        dtype = object if kind == "str" else np.dtype(kind)
        if np.dtype(dtype).kind not in "biufO":
            raise ValueError(f"array of {kind}")
        arr = np.array(data["data"], dtype=dtype)
        return arr.reshape(shape)
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {_hashable(decode(k)): decode(v) for k, v in data["__dict__"]}
    if "__keep__" in data:
        cls = _KEEPABLE.get(data["__keep__"])
        if cls is None:
            raise ValueError(f"{data['__keep__']!r} is not a type mtbc keeps")
        return cls(**{k: decode(v) for k, v in data["fields"].items()})
    raise ValueError("not an encoded value")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


class Memo:
    """Kept evaluation work under ``folder`` (module docstring); ``None``: nothing kept."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._unwritable = False

    def __repr__(self) -> str:
        return f"Memo({str(self.folder)!r})"

    def key(self, kind: str, material: dict) -> tuple[str, dict]:
        """``(file stem, full key)`` of ``kind`` for ``material`` (made JSON-able)."""
        full = json.loads(json.dumps({"kind": kind, "environment": environment(),
                                      "inputs": encode(material)}, sort_keys=True))
        text = json.dumps(full, sort_keys=True)
        return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}", full

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.json"

    def load(self, kind: str, material: dict,
             check: Callable[[Any], str | None] | None = None) -> Any | None:
        """The kept value for ``material``, or ``None`` (absent, or failing verification:
        then a warning names the file and why, and the caller computes again)."""
        stem, full = self.key(kind, material)
        path = self.path(stem)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            why = _problem(entry, full)
            value = decode(entry["payload"]) if why is None else None
            if why is None and check is not None:
                why = check(value)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            why = f"unreadable ({type(exc).__name__}: {exc})"
        if why is not None:
            warnings.warn(f"ignored the kept evaluation {path} ({why}); computing it again",
                          RuntimeWarning, stacklevel=2)
            return None
        return value

    def save(self, kind: str, material: dict, value: Any) -> None:
        """Keep ``value``; a value that cannot be encoded is not kept, and a folder that
        cannot be written gives one warning (the evaluation goes on)."""
        if self._unwritable:
            return
        try:
            payload = encode(value)
        except TypeError:
            return
        stem, full = self.key(kind, material)
        text = json.dumps(payload, sort_keys=True, allow_nan=True)
        entry = {"format": FORMAT, "version": VERSION, "key": full,
                 "sha256": hashlib.sha256(text.encode()).hexdigest(), "payload": payload}
        data = json.dumps(entry, sort_keys=True, allow_nan=True).encode()
        try:
            atomic_write(self.path(stem), lambda f: f.write(data))
        except (StorageError, OSError) as exc:
            self._unwritable = True
            warnings.warn(f"evaluations are not kept for reuse: {exc}", RuntimeWarning,
                          stacklevel=2)

    def kept(self, kind: str, material: dict, compute: Callable[[], Any],
             check: Callable[[Any], str | None] | None = None) -> Any:
        """The kept value for ``material``, else ``compute()``, kept. Threads asking for the
        same entry at once compute it once: the others wait and read it."""
        stem, _ = self.key(kind, material)
        with _entry_lock(self.path(stem)):
            value = self.load(kind, material, check)
            if value is None:
                value = compute()
                self.save(kind, material, value)
        return value


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _entry_lock(path: Path) -> threading.Lock:
    """One lock per entry file in this process (evaluations running side by side)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def _problem(entry: Any, full: dict) -> str | None:
    """Why ``entry`` is not a valid entry for the key ``full``, or ``None``."""
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return f"not a {FORMAT} entry"
    if entry.get("version") != VERSION:
        return f"layout version {entry.get('version')!r}, not {VERSION}"
    if entry.get("key") != full:
        return "made for other inputs"
    text = json.dumps(entry.get("payload"), sort_keys=True, allow_nan=True)
    if hashlib.sha256(text.encode()).hexdigest() != entry.get("sha256"):
        return "its payload does not match its checksum"
    return None


def memo_at(folder: str | Path | None) -> Memo | None:
    """A :class:`Memo` under ``folder``, or ``None`` for ``None``."""
    return None if folder is None else Memo(folder)
