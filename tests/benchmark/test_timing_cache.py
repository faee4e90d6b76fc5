"""The timing cache of notebook 07: a model is measured again only when the machine, the
versions, the model or the workload changed, or when remeasure asks; a bad entry is measured
again with a warning; entries are written atomically. Nothing is really measured here: the
worker is replaced by a counter."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from mtbc import benchmark
from mtbc.benchmark import BenchOptions, TimingCache, rows, timing_cache
from mtbc.reports.params import ParamsError, declared_parameters, validate_params

REPO = Path(__file__).resolve().parents[2]
OPTIONS = BenchOptions(device="cpu", dtypes=["float32"], batch_sizes=[1, 2], clip_seconds=2.0)
MODELS = {"mfcc": {"key": "mfcc", "options": None}}


@pytest.fixture
def worker(monkeypatch):
    """Replace the measuring subprocess: each call returns new figures and is counted."""
    calls = []

    def fake(key, model_options=None, options=None, *, weights_label=None, timeout=None):
        calls.append((key, model_options, options))
        n = len(calls)
        return {"rows": [{"model": key, "device": options.device, "dtype": "float32",
                          "batch_size": b, "seconds_per_clip": 0.5 * n + b,
                          "audio_s_per_s": 4.0 / n, "clip_seconds": options.clip_seconds,
                          "weights_kind": "none", "load_s": 0.01 * n, "params": 0,
                          "weights_mb": 0.0, "tflops": None, "peak_fraction": None,
                          "peak_rss_mib": 100.0 + n, "peak_vram_mib": None}
                         for b in options.batch_sizes],
                "agreement": [{"model": key, "dtype": "bfloat16", "min_cosine": 0.99,
                               "per_layer": [0.99], "n_tracks": 1, "weights_kind": "none"}],
                "info": {"model": key, "seconds": 1.0}}

    monkeypatch.setattr(rows, "measure_isolated", fake)
    return calls


def _bare(result):
    """The figures without the cache's marks."""
    return [{k: v for k, v in r.items() if k not in ("timing_source", "measured_at")}
            for r in result["rows"] + result["agreement"]]


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.exists() else []


def test_second_run_reuses_the_stored_rows_and_says_they_are_cached(tmp_path, worker):
    cache = TimingCache(tmp_path / "timings")
    first = benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
    second = benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
    assert len(worker) == 1  # measured once
    assert _bare(second) == _bare(first)
    assert {r["timing_source"] for r in first["rows"]} == {timing_cache.MEASURED}
    sources = {r["timing_source"] for r in second["rows"] + second["agreement"]}
    assert len(sources) == 1 and sources.pop().startswith("cached (measured 20")
    assert {r["measured_at"] for r in second["rows"]} == {r["measured_at"] for r in first["rows"]}
    assert [p.suffix for p in _entries(cache.folder)] == [".json"]  # one entry, no temp file
    # the tables say which rows were not measured in this run
    assert benchmark.rows_frame(second)["timing"].str.startswith("cached").all()
    assert benchmark.memory_frame(first)["timing"].tolist() == [timing_cache.MEASURED]


def test_without_a_cache_every_call_measures_and_nothing_is_stored(tmp_path, worker,
                                                                    monkeypatch):
    monkeypatch.setenv("MTBC_CACHE", str(tmp_path))
    result = benchmark.bench_rows(MODELS, OPTIONS)  # `mtbc bench`
    benchmark.bench_rows(MODELS, OPTIONS)
    assert len(worker) == 2 and not any(tmp_path.iterdir())
    assert "timing_source" not in result["rows"][0]
    assert "timing" not in benchmark.rows_frame(result)


@pytest.mark.parametrize("change", ["mtbc version", "torch version", "cpu", "gpu", "workload",
                                    "device threads", "isolate"])
def test_a_changed_version_machine_or_workload_measures_again(tmp_path, worker, monkeypatch,
                                                              change):
    cache = TimingCache(tmp_path / "timings")
    benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
    options, isolate = OPTIONS, True
    machine = timing_cache.machine_identity()
    if change == "mtbc version":
        monkeypatch.setattr(timing_cache, "__version__", "99.0")
    elif change == "torch version":
        monkeypatch.setattr(timing_cache, "machine_identity", lambda: {**machine,
                                                                       "torch": "0.0.1"})
    elif change == "cpu":
        monkeypatch.setattr(timing_cache, "cpu_model", lambda: "Another CPU @ 1.0GHz")
    elif change == "gpu":  # a GPU appears (the driver's model name, CUDA not started)
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(timing_cache, "_gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    elif change == "workload":
        options = BenchOptions(device="cpu", dtypes=["float32"], batch_sizes=[1, 8],
                               clip_seconds=2.0)
    elif change == "device threads":
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    elif change == "isolate":
        isolate = False
        monkeypatch.setattr(rows, "measure_model", rows.measure_isolated)  # the counter
    again = benchmark.bench_rows(MODELS, options, timings=cache, isolate=isolate)
    assert len(worker) == 2
    assert {r["timing_source"] for r in again["rows"]} == {timing_cache.MEASURED}
    assert len(_entries(cache.folder)) == 2  # the first entry is kept for its own key


def test_changed_weights_files_measure_again(tmp_path, worker):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"1234")
    models = {"m": {"key": "mfcc", "options": {"weights": str(weights)}}}
    cache = TimingCache(tmp_path / "timings")
    benchmark.bench_rows(models, OPTIONS, timings=cache)
    benchmark.bench_rows(models, OPTIONS, timings=cache)
    assert len(worker) == 1
    weights.write_bytes(b"123456789")  # another file at the same path
    benchmark.bench_rows(models, OPTIONS, timings=cache)
    assert len(worker) == 2


def test_remeasure_measures_again_and_replaces_the_entry(tmp_path, worker):
    folder = tmp_path / "timings"
    first = benchmark.bench_rows(MODELS, OPTIONS, timings=TimingCache(folder))
    forced = benchmark.bench_rows(MODELS, OPTIONS, timings=TimingCache(folder, remeasure=True))
    assert len(worker) == 2
    assert {r["timing_source"] for r in forced["rows"]} == {timing_cache.MEASURED}
    assert _bare(forced) != _bare(first)  # the counter's second figures
    later = benchmark.bench_rows(MODELS, OPTIONS, timings=TimingCache(folder))
    assert len(worker) == 2 and _bare(later) == _bare(forced)  # the replaced entry
    assert len(_entries(folder)) == 1


@pytest.mark.parametrize("damage", ["truncated", "not json", "binary", "wrong fingerprint",
                                    "no rows", "bad date", "a folder"])
def test_a_damaged_entry_is_measured_again_with_a_warning(tmp_path, worker, damage):
    cache = TimingCache(tmp_path / "timings")
    benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
    (entry,) = _entries(cache.folder)
    text = entry.read_text()
    data = json.loads(text)
    if damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif damage == "not json":
        entry.write_text("rows: [1, 2]\n")
    elif damage == "binary":
        entry.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "wrong fingerprint":
        data["fingerprint"]["model"]["key"] = "vggish"
        entry.write_text(json.dumps(data))
    elif damage == "no rows":
        data["result"]["rows"] = "none"
        entry.write_text(json.dumps(data))
    elif damage == "bad date":
        data["measured_at"] = "yesterday"
        entry.write_text(json.dumps(data))
    elif damage == "a folder":
        entry.unlink()
        entry.mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
    said = [str(w.message) for w in caught]
    assert any(f"{entry.name}: timing cache entry ignored" in m for m in said), said
    if damage == "a folder":  # not mtbc's file: left alone, and the figures not kept
        assert entry.is_dir() and any("timing not kept" in m for m in said)
    assert len(worker) == 2 and not again["failed"]
    assert {r["timing_source"] for r in again["rows"]} == {timing_cache.MEASURED}
    if damage != "a folder":  # replaced by a good entry: the next run reads it
        benchmark.bench_rows(MODELS, OPTIONS, timings=cache)
        assert len(worker) == 2


def test_an_entry_is_written_atomically(tmp_path, worker, monkeypatch):
    folder = tmp_path / "timings"
    benchmark.bench_rows(MODELS, OPTIONS, timings=TimingCache(folder))
    (entry,) = _entries(folder)
    before = entry.read_bytes()

    def dies(fd):  # the writer is killed before its bytes reach the disk
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", dies)
    with pytest.warns(UserWarning, match="timing not kept"):
        result = benchmark.bench_rows(MODELS, OPTIONS,
                                      timings=TimingCache(folder, remeasure=True))
    assert len(worker) == 2 and len(result["rows"]) == 2  # the figures are still shown
    assert _entries(folder) == [entry] and entry.read_bytes() == before  # no partial file
    json.loads(before)


def test_notebook_07_declares_remeasure_and_the_schema_checks_it():
    declared = declared_parameters(REPO / "notebooks" / "07_compute.ipynb")
    assert declared["remeasure"].default == "False"
    ok = validate_params({"run": "r", "notebook_params": {"07_compute": {"remeasure": True}}})
    assert ok["notebook_params"]["07_compute"]["remeasure"] is True
    with pytest.raises(ParamsError, match="remeasure must be true or false"):
        validate_params({"run": "r", "params": {"remeasure": "yes"}})


@pytest.mark.parametrize("argv, own, expected", [
    (["run"], None, None),
    (["run", "--remeasure"], None, True),
    (["run", "--remeasure"], False, True),  # over the params file's own value
    (["run"], False, False),
])
def test_mtbc_run_remeasure_reaches_notebook_07(tmp_path, monkeypatch, argv, own, expected):
    from mtbc import pipeline
    from mtbc.cli import build_parser
    from mtbc.reports.record import RunRecord

    seen = {}
    monkeypatch.setattr(pipeline, "build_run_extractors", lambda params, strict: ({}, []))
    monkeypatch.setattr(pipeline, "prepare", lambda *a, **k: RunRecord())
    monkeypatch.setattr(pipeline, "run_reports",
                        lambda params, **k: seen.setdefault("params", params))
    args = build_parser().parse_args([*argv, "--params", "unused.yaml"])
    nb = {} if own is None else {"07_compute": {"remeasure": own}}
    pipeline.run({"run": "r", "collection": str(tmp_path), "notebook_params": nb},
                 notebooks_dir=REPO / "notebooks", reports_root=tmp_path / "reports",
                 remeasure=args.remeasure, progress=False)
    from mtbc.reports.params import notebook_values

    assert notebook_values(seen["params"], "07_compute").get("remeasure") is expected
