"""Measured timings kept between runs, so that notebook 07 re-times a model only when
something that shapes its figures changed.

One JSON file per model and workload, ``<cache>/timings/<key>.json``, holding what
:func:`mtbc.benchmark.measure_isolated` returned and when. The key is a hash of
:func:`timing_fingerprint`: the machine (:func:`machine_identity`: architecture, CPU model,
CPU count, thread settings, bf16 support, the GPU's name), the mtbc version and a hash of the
code that measures (:func:`code_stamp`), torch's version, the model (bench key, options, and
the size and date of any weights file the options name), the workload
(:class:`~mtbc.benchmark.BenchOptions`, the agreement tracks' size and date included) and
whether the model ran in its own subprocess. Any change gives another key, so the model is
measured again; ``remeasure`` measures every model again and replaces its entry.

Entries are written atomically (:func:`mtbc.files.atomic_write`) and verified on read (format,
version, the fingerprint they were made for, the shape of the rows): an entry that fails is
named in a warning and measured again, never trusted and never fatal. Rows read back carry
``timing_source`` ``"cached (measured <date>)"``, measured ones ``"measured in this run"``;
both carry ``measured_at`` (UTC, ISO 8601), and notebook 07's tables show them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbc import __version__, config
from mtbc.benchmark.measure import json_default
from mtbc.benchmark.models import BenchOptions
from mtbc.evaluation.memo import cpu_model
from mtbc.extractors.base import CPU_BF16_ENV, cpu_bf16_capability
from mtbc.files import atomic_write

#: ``format`` of a timing cache entry, and its layout version.
FORMAT, VERSION = "mtbc-timings", 1
#: Subfolder of the mtbc cache that holds the entries.
SUBDIR = "timings"
#: ``timing_source`` of rows measured by this call.
MEASURED = "measured in this run"
#: Environment variables that change how a model runs (threads, bf16 policy).
_ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", CPU_BF16_ENV)
#: The code whose changes change the figures: the measurement and every extractor.
_CODE_GLOBS = (("benchmark", "measure.py"), ("benchmark", "timing.py"),
               ("benchmark", "models.py"), ("extractors", "*.py"), ("data", "audio.py"))


def _gpu_names() -> list[str]:
    """The NVIDIA GPUs' model names as the driver lists them (``/proc/driver/nvidia``), read
    without initialising CUDA in this process (a context here would take GPU memory from
    the model measured in its subprocess); with the CUDA device count when there is no such
    list."""
    import torch  # heavy: imported where the GPU is asked about

    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return names or [f"{torch.cuda.device_count()} CUDA device(s)"]


def machine_identity() -> dict[str, Any]:
    """What identifies this machine for timing: architecture, CPU model, CPU count, the
    environment's thread, bf16 and visible-GPU settings, the CPU's bf16 support, the GPUs'
    names (when CUDA is available) and torch's version (and its CUDA's)."""
    import torch  # heavy: imported where the GPU is asked about

    gpu = _gpu_names() if torch.cuda.is_available() else None
    return {"machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "env": {k: os.environ.get(k) for k in _ENV_KEYS},
            "cpu_bf16": bool(cpu_bf16_capability()["native"]), "gpu": gpu,
            "torch": torch.__version__, "torch_cuda": torch.version.cuda}


def code_stamp() -> str:
    """Hash of the measuring code (:mod:`mtbc.benchmark.measure`, its timing primitives and
    every extractor module): an edit there, without a version bump, measures again."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for folder, pattern in _CODE_GLOBS:
        for path in sorted((root / folder).glob(pattern)):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _stamp(value: Any) -> Any:
    """For a string naming an existing file: its size and modification time; for a folder:
    those of the files in it (not recursive); else ``None``."""
    if not isinstance(value, str) or not value or len(value) > 4096:
        return None
    path = Path(value).expanduser()
    try:
        if path.is_file():
            st = path.stat()
            return [st.st_size, st.st_mtime_ns]
        if path.is_dir():
            return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns]
                          for p in path.iterdir() if p.is_file())
    except OSError:
        return "unreadable"
    return None


def timing_fingerprint(key: str, model_options: Mapping[str, Any] | None,
                       options: BenchOptions, *, isolate: bool = True) -> dict[str, Any]:
    """Everything a model's figures depend on (JSON-ready; :func:`entry_key` hashes it).

    Parameters
    ----------
    key : the bench key (:func:`mtbc.benchmark.model_keys`).
    model_options : the run's extractor options, or ``None`` (full-size random weights or
        the defaults, as :func:`mtbc.benchmark.bench_rows` is given them).
    options : the workload, its device resolved (``"auto"`` would hide a change of device).
    isolate : measured in a subprocess of its own (its peak memory is its own).

    Examples
    --------
    >>> from mtbc.benchmark import BenchOptions
    >>> fp = timing_fingerprint("mfcc", None, BenchOptions(device="cpu"))
    >>> sorted(fp)
    ['agreement_files', 'code', 'isolate', 'machine', 'model', 'mtbc', 'workload']
    """
    opts = None if model_options is None else dict(model_options)
    files = {} if opts is None else {k: s for k, v in sorted(opts.items())
                                     if (s := _stamp(v)) is not None}
    workload = options.to_dict()
    fp = {"mtbc": __version__, "code": code_stamp(), "machine": machine_identity(),
          "model": {"key": key, "options": opts, "weights_files": files,
                    "weights": "the run's" if opts is not None else "random or default"},
          "workload": workload,
          "agreement_files": [_stamp(p) for p in options.agreement_paths],
          "isolate": bool(isolate)}
    return json.loads(json.dumps(fp, sort_keys=True, default=str))  # as read back


def entry_key(fingerprint: Mapping[str, Any]) -> str:
    """The file name stem of ``fingerprint``'s entry: the bench key and a hash."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    name = "".join(c if c.isalnum() or c in "-_." else "_"
                   for c in str(fingerprint["model"]["key"]))[:40]
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _marked(result: Mapping[str, Any], source: str, measured_at: str) -> dict[str, Any]:
    """``result`` with every row and agreement record saying where it came from."""
    out = dict(result)
    for part in ("rows", "agreement"):
        out[part] = [{**r, "timing_source": source, "measured_at": measured_at}
                     for r in result.get(part, [])]
    return out


def _problem(data: Any, fingerprint: Mapping[str, Any]) -> str | None:
    """Why ``data`` is not an entry for ``fingerprint``, or ``None``."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"not a {FORMAT} entry"
    if data.get("version") != VERSION:
        return f"layout version {data.get('version')!r}, not {VERSION}"
    if data.get("fingerprint") != fingerprint:
        return "made for another model, workload or machine"
    result, when = data.get("result"), data.get("measured_at")
    if not isinstance(when, str):
        return "no measurement date"
    try:
        _dt.datetime.fromisoformat(when)
    except ValueError:
        return f"measurement date {when!r} is not a date"
    if not isinstance(result, dict):
        return "no result"
    for part in ("rows", "agreement"):
        if not isinstance(result.get(part), list) or not all(
                isinstance(r, dict) for r in result[part]):
            return f"no '{part}' list of records"
    if not result["rows"]:
        return "no rows"
    return None


@dataclass(frozen=True)
class TimingCache:
    """The timing cache folder, and whether this run measures every model again.

    Parameters
    ----------
    folder : where the entries live (:meth:`under` gives ``<cache>/timings``).
    remeasure : measure every model again and replace its entry (``mtbc run --remeasure``,
        notebook 07's ``remeasure``).

    Examples
    --------
    >>> TimingCache.under("/tmp/cache").folder.name
    'timings'
    """

    folder: Path
    remeasure: bool = False

    @classmethod
    def under(cls, cache_dir: str | os.PathLike | None = None, *,
              remeasure: bool = False) -> TimingCache:
        """The timing cache of the mtbc cache folder (:func:`mtbc.config.cache_dir`)."""
        return cls(Path(config.cache_dir(cache_dir)) / SUBDIR, remeasure=bool(remeasure))

    def path(self, fingerprint: Mapping[str, Any]) -> Path:
        """The entry file of ``fingerprint``."""
        return self.folder / f"{entry_key(fingerprint)}.json"

    def lookup(self, fingerprint: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result for ``fingerprint``, its rows marked ``cached (measured
        <date>)``; ``None`` when there is none, when :attr:`remeasure` is set, or when the
        entry is unreadable or invalid (then with a warning naming the file)."""
        path = self.path(fingerprint)
        if self.remeasure or not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            problem = _problem(data, fingerprint)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem:
            warnings.warn(f"{path}: timing cache entry ignored ({problem}); the model is "
                          f"measured again and the entry replaced", UserWarning, stacklevel=2)
            return None
        when = data["measured_at"]
        date = _dt.datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M UTC")
        return _marked(data["result"], f"cached (measured {date})", when)

    def store(self, fingerprint: Mapping[str, Any], result: Mapping[str, Any]
              ) -> dict[str, Any]:
        """Keep ``result`` (what :func:`mtbc.benchmark.measure_isolated` returned) as the
        entry of ``fingerprint`` (atomically, replacing any); return it marked ``measured in
        this run``. A folder that cannot be written is named in a warning: the figures are
        still returned, only not kept."""
        when = _now()
        clean = {part: [{k: v for k, v in r.items()
                         if k not in ("timing_source", "measured_at")}
                        for r in result.get(part, [])] for part in ("rows", "agreement")}
        payload = {"format": FORMAT, "version": VERSION, "measured_at": when,
                   "fingerprint": dict(fingerprint),
                   "result": {**dict(result), **clean}}
        text = json.dumps(payload, indent=1, default=json_default)
        path = self.path(fingerprint)
        try:
            if path.exists() and not path.is_file():
                raise IsADirectoryError(f"{path} is not a file")
            atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        except OSError as exc:
            warnings.warn(f"{path}: timing not kept ({exc}); it is measured again next run",
                          UserWarning, stacklevel=2)
        return _marked(result, MEASURED, when)
