"""Every model's figures as rows: one subprocess per model (so that its peak memory is its
own), written to and read from ``compute.json`` (notebook 07 writes it, 08 reads it)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbc import config
from mtbc.benchmark.measure import json_default, measure_model
from mtbc.benchmark.models import RANDOM, BenchOptions, model_keys
from mtbc.benchmark.timing_cache import TimingCache, timing_fingerprint
from mtbc.extractors import extractor_class
from mtbc.extractors.base import cpu_bf16_capability, resolve_device
from mtbc.files import atomic_write


def _worker_command(spec: dict) -> list[str]:
    return [sys.executable, "-m", "mtbc.benchmark.measure", "--worker", json.dumps(spec)]


def measure_isolated(key: str, model_options: Mapping[str, Any] | None = None,
                     options: BenchOptions | None = None, *, weights_label: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
    """:func:`mtbc.benchmark.measure.measure_model` in a fresh subprocess (its peak memory
    is this model's alone); ``RuntimeError`` with the worker's last lines when it fails."""
    options = options or BenchOptions(device="cpu")
    spec = {"key": key, "model_options": None if model_options is None else dict(model_options),
            "options": options.to_dict(), "weights_label": weights_label}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(_worker_command(spec), capture_output=True, text=True, env=env,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"measuring {key} failed (exit {proc.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


def bench_rows(models: Mapping[str, Mapping[str, Any]] | Sequence[str],
               options: BenchOptions | None = None, *, isolate: bool = True,
               progress: bool = False, timings: TimingCache | None = None
               ) -> dict[str, list[dict]]:
    """Every figure, for every model: ``{"rows": [...], "agreement": [...], "failed": [...]}``.

    Parameters
    ----------
    models : bench keys (:func:`mtbc.benchmark.model_keys`; full-size random weights, or
        the extractor's defaults when it ships its weights) or :func:`models_for_run`'s
        mapping (label -> key and options: the run's own weights).
    options : the workload (:class:`BenchOptions`); ``budget_s`` applies per model.
    isolate : one subprocess per model (``False``: in this process; peak memory then mixed).
    progress : print a line per model.
    timings : the timing cache (:class:`mtbc.benchmark.TimingCache`, notebook 07): a model
        whose machine, versions, options and workload match a stored entry is not measured
        again (its rows say ``cached (measured <date>)``); a measured one is stored.
        ``None`` (``mtbc bench``): every model measured, nothing stored.

    Rows carry :data:`mtbc.benchmark.ROW_FIELDS` plus ``label`` (and, with ``timings``,
    ``timing_source`` and ``measured_at``). A model that cannot be measured is listed in
    ``failed`` with the reason; it never stops the rest (and is not stored).

    Examples
    --------
    >>> result = bench_rows(["mfcc"], BenchOptions(device="cpu", batch_sizes=[1],
    ...                     clip_seconds=2.0), isolate=False)
    >>> sorted(result)
    ['agreement', 'failed', 'rows']
    """
    options = options or BenchOptions()
    device = str(resolve_device(options.device))
    options = dataclasses.replace(options, device=device)
    if not isinstance(models, Mapping):
        models = {k: {"key": k, "options": None} for k in models}
    out: dict[str, list[dict]] = {"rows": [], "agreement": [], "failed": []}
    for label, spec in models.items():
        fingerprint = (None if timings is None else
                       timing_fingerprint(spec["key"], spec.get("options"), options,
                                          isolate=isolate))
        result = None if fingerprint is None else timings.lookup(fingerprint)
        if result is not None:
            if progress:
                print(f"{label} ({spec['key']}): {result['rows'][0]['timing_source']}",
                      flush=True)
            _add(out, label, result)
            continue
        if progress:
            print(f"measuring {label} ({spec['key']}) on {device} ...", flush=True)
        model_options, weights_label = spec.get("options"), None
        with tempfile.TemporaryDirectory(prefix="mtbc-weights-") as tmp:
            try:
                if model_options is None:
                    # Random weights written here, so that making them is not in the model's RSS.
                    cls = extractor_class(model_keys()[spec["key"]])
                    written = cls.write_random_weights(spec["key"], Path(tmp), seed=options.seed)
                    if written is not None:
                        model_options, weights_label = written, RANDOM
                measure = measure_isolated if isolate else measure_model
                result = measure(spec["key"], model_options, options,
                                 weights_label=weights_label)
            except Exception as exc:  # noqa: BLE001 - one model's failure is one row
                out["failed"].append({"label": label, "model": spec["key"],
                                      "reason": f"{type(exc).__name__}: {exc}"})
                continue
        if fingerprint is not None:
            result = timings.store(fingerprint, result)
        _add(out, label, result)
    return out


def _add(out: dict[str, list[dict]], label: str, result: Mapping[str, Any]) -> None:
    """One model's rows and agreement records into ``out``, labelled."""
    for part in ("rows", "agreement"):
        out[part].extend({"label": label, **row} for row in result[part])


def write_rows(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`bench_rows`'s result as JSON, with the machine it ran on (atomically)."""
    path = Path(path)
    payload = {"machine": {"processor": platform.processor() or platform.machine(),
                           "cpu_count": os.cpu_count(), "cpu_bf16": cpu_bf16_capability()},
               **result}
    text = json.dumps(payload, indent=2, default=json_default)
    atomic_write(path, lambda f: f.write(text.encode()))
    return path


def read_rows(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """What :func:`write_rows` wrote, or ``None`` when there is no such file.

    Raises ``ValueError`` naming the file when it is not such rows.
    """
    if path is None or not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not benchmark rows ({exc}); delete it and rerun notebook "
                         f"07 or `mtbc bench --json {path}`") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not benchmark rows (no 'rows' list); delete it and rerun "
                         f"notebook 07 or `mtbc bench --json {path}`")
    return data


def rows_path(run_record: str | os.PathLike | None, cache_dir: str | None = None) -> Path:
    """Where notebook 07 leaves its rows for 08: beside the run record (the run's report
    folder) in a run, else in the cache folder (``compute.json``)."""
    if run_record is not None:
        return Path(run_record).parent / "compute.json"
    return Path(config.cache_dir(cache_dir)) / "compute.json"
