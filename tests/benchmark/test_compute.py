"""Compute figures, precision policy, GPU-ready extraction helpers and the claims audit."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch

from mtbc import benchmark, claims
from mtbc.benchmark import BenchOptions, suite
from mtbc.cache import devices
from mtbc.cache.extract import select_shard
from mtbc.claims import data as claims_data
from mtbc.extractors import base
from mtbc.extractors.base import cpu_bf16_capability
from mtbc.extractors.fixtures import make_mert_model, make_mert_snapshot, mert_config
from mtbc.extractors.memory import mert_batch_size, mert_chunk_bytes

# ----------------------------------------------------------------------------- dtype policy


@pytest.fixture
def capability(monkeypatch):
    """Set what the CPU check reports (the MTBC_CPU_BF16 override removed)."""
    monkeypatch.delenv(base.CPU_BF16_ENV, raising=False)

    def set_native(native: bool):
        monkeypatch.setattr(base, "cpu_bf16_capability", lambda: {
            "avx512_bf16": native, "amx_bf16": native, "mkldnn_bf16": native,
            "native": native})
    return set_native


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_on_cpu_exactly_when_the_capability_check_says_so(capability, native):
    capability(native)
    assert base.resolve_dtype("auto", "cpu", cpu_bf16=True) == ("bfloat16" if native
                                                                else "float32")
    assert base.resolve_dtype("auto", "cpu") == "float32"  # extractors that did not opt in
    assert base.resolve_dtype("float32", "cpu", cpu_bf16=True) == "float32"  # forced
    assert base.resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert base.resolve_dtype("auto", "mps", cpu_bf16=True) == "float32"


def test_environment_overrides_the_cpu_check(capability, monkeypatch):
    capability(True)
    monkeypatch.setenv(base.CPU_BF16_ENV, "0")
    assert base.resolve_dtype("auto", "cpu", cpu_bf16=True) == "float32"
    capability(False)
    monkeypatch.setenv(base.CPU_BF16_ENV, "1")
    assert base.resolve_dtype("auto", "cpu", cpu_bf16=True) == "bfloat16"


def test_auto_on_cuda_is_bf16_or_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert base.resolve_dtype("auto", "cuda:1") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert base.resolve_dtype("auto", "cuda") == "float16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        base.resolve_dtype("half", "cpu")


def test_capability_report_has_every_flag():
    caps = base.cpu_bf16_capability()
    assert set(caps) == {"avx512_bf16", "amx_bf16", "mkldnn_bf16", "native"}
    assert all(isinstance(v, bool) for v in caps.values())


def test_auto_device_picks_mps_on_apple_silicon(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends, "mps", types.SimpleNamespace(is_available=lambda: True))
    assert base.resolve_device("auto").type == "mps"


@pytest.fixture(scope="module")
def tiny_mert(tmp_path_factory):
    return make_mert_snapshot(tmp_path_factory.mktemp("mert") / "m", variant="330m")


def test_fingerprint_records_the_resolved_precision(tiny_mert, capability):
    from mtbc.extractors.mert import MertExtractor

    capability(True)
    auto = MertExtractor(model=tiny_mert, device="cpu")
    bf16 = MertExtractor(model=tiny_mert, device="cpu", dtype="bfloat16")
    fp32 = MertExtractor(model=tiny_mert, device="cpu", dtype="float32")
    assert auto.dtype == "bfloat16" and auto.metadata()["dtype"] == "bfloat16"
    assert auto.fingerprint == bf16.fingerprint != fp32.fingerprint
    capability(False)
    assert MertExtractor(model=tiny_mert, device="cpu").fingerprint == fp32.fingerprint


def test_vggish_auto_precision_and_exact_uint8_mode(capability, tmp_path):
    from mtbc.extractors.fixtures import make_vggish_weights
    from mtbc.extractors.vggish import VGGishExtractor

    weights, pca = make_vggish_weights(tmp_path)
    capability(True)
    auto = VGGishExtractor(weights=weights, device="cpu")
    fp32 = VGGishExtractor(weights=weights, device="cpu", dtype="float32")
    exact = VGGishExtractor(weights=weights, pca_params=pca, postprocess="pca_uint8",
                            device="cpu")
    assert auto.dtype == "bfloat16" and fp32.dtype == "float32" and exact.dtype == "float32"
    assert auto.fingerprint != fp32.fingerprint
    capability(False)
    assert VGGishExtractor(weights=weights, device="cpu").fingerprint == fp32.fingerprint


@pytest.mark.parametrize("variant", ["95m", "330m"])
def test_bf16_follows_fp32_on_a_tiny_mert(variant):
    # Tiny random models are noisier than real ones; full-size random MERT-v1-95M gives
    # >= 0.99999 per layer on 30 s clips (docs/benchmark.md).
    from mtbc.extractors.fixtures import mert_preprocessor
    from mtbc.extractors.mert import MertExtractor

    model = make_mert_model(variant)
    rng = np.random.default_rng(0)
    waves = [(0.3 * rng.standard_normal(24000 * 3)).astype(np.float32) for _ in range(2)]
    out = {}
    for dtype in ("float32", "bfloat16"):
        ext = MertExtractor.from_model(model, config=mert_config(variant),
                                       preprocessor=mert_preprocessor(), device="cpu",
                                       dtype=dtype, chunk_seconds=1.5)
        out[dtype] = np.concatenate(ext.embed_many(waves))
    cos = benchmark.cosine_per_layer(out["float32"], out["bfloat16"])
    assert cos.shape == (out["float32"].shape[1],)
    assert cos.min() >= 0.999, cos


# ----------------------------------------------------------------------------- memory

def test_batch_size_from_free_memory():
    config = mert_config("330m", tiny=False)
    n = 30 * 24000
    per = mert_chunk_bytes(config, n, dtype_bytes=2)
    assert 300 * 2**20 < per < 1500 * 2**20  # a 30 s chunk of 330M in bf16: hundreds of MiB
    assert mert_batch_size(0, config, n) == 1  # never below one
    assert mert_batch_size(10 * per, config, n, fraction=1.0) == 10
    assert mert_batch_size(10 * per, config, n, fraction=0.5) == 5
    assert mert_batch_size(10**15, config, n) == 64  # capped
    sizes = [mert_batch_size(g * 2**30, config, n) for g in (1, 4, 16, 40, 80)]
    assert sizes == sorted(sizes)
    assert mert_batch_size(16 * 2**30, config, n, dtype_bytes=4) < sizes[2]  # fp32: fewer
    assert mert_batch_size(16 * 2**30, mert_config("95m", tiny=False), n) >= sizes[2]
    with pytest.raises(ValueError):
        mert_batch_size(-1, config, n)


# ----------------------------------------------------------------------------- devices

def test_device_commands_replace_devices_by_shard_and_device():
    argv = ["extract", "coll", "-e", "mert", "--devices", "cuda:0,cuda:1", "--cache", "c",
            "--device=cpu"]
    cmds = devices.device_commands(argv, ["cuda:0", "cuda:1"], python="py")
    assert cmds == [
        ["py", "-m", "mtbc.cli", "extract", "coll", "-e", "mert", "--cache", "c",
         "--shard", "0/2", "--device", "cuda:0"],
        ["py", "-m", "mtbc.cli", "extract", "coll", "-e", "mert", "--cache", "c",
         "--shard", "1/2", "--device", "cuda:1"]]
    nested = devices.device_commands(argv + ["--shard", "1/3"], ["cuda:0", "cuda:1"], (1, 3),
                                     python="py")
    assert [c[-3] for c in nested] == ["2/6", "3/6"]


def test_device_shards_partition_the_collection():
    hashes = [f"{i * 2654435761 % 2**48:012x}" + "0" * 52 for i in range(500)]
    tracks = pd.DataFrame({"content_hash": hashes, "track_id": range(500)})
    seen = []
    for node in range(3):  # a 3-task job array, 2 GPUs per task
        for _dev, shard in devices.device_shards(["cuda:0", "cuda:1"], (node, 3)):
            seen += select_shard(tracks, shard)["track_id"].tolist()
    assert sorted(seen) == list(range(500))


def test_parse_devices_refuses_repeats_and_empty():
    assert devices.parse_devices(" cuda:0, cuda:1 ") == ["cuda:0", "cuda:1"]
    for bad in ("", "cuda:0,cuda:0"):
        with pytest.raises(ValueError):
            devices.parse_devices(bad)


def test_extract_devices_starts_one_process_per_device(monkeypatch):
    from mtbc import cli

    started = []

    class FakePopen:
        def __init__(self, cmd, env):
            started.append((cmd, env))

        def wait(self):
            return 0

    monkeypatch.setattr(devices.subprocess, "Popen", FakePopen)
    assert cli.main(["extract", "demo", "-e", "mfcc", "--devices", "cpu,meta"]) == 0
    assert [c[-4:] for c, _ in started] == [["--shard", "0/2", "--device", "cpu"],
                                            ["--shard", "1/2", "--device", "meta"]]
    assert all(env["MTBC_DECODE_WORKERS"] == env["OMP_NUM_THREADS"] for _, env in started)


def test_decode_workers_follow_the_device(monkeypatch):
    monkeypatch.delenv(devices.DECODE_WORKERS_ENV, raising=False)
    gpu = types.SimpleNamespace(device=torch.device("cuda", 0))
    cpu = types.SimpleNamespace(device=torch.device("cpu"))
    assert devices.decode_workers_for(gpu, cpu_count=16) == 15
    assert devices.decode_workers_for(cpu, cpu_count=16) == 2
    assert devices.decode_workers_for(types.SimpleNamespace(), cpu_count=16) == 2  # mfcc
    monkeypatch.setenv(devices.DECODE_WORKERS_ENV, "5")
    assert devices.decode_workers_for(gpu, cpu_count=16) == 5


# ----------------------------------------------------------------------------- rows

@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_bench_json_rows_have_the_schema(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert suite.main(models="mfcc", json_path=out, batch_sizes="1,2", clip_seconds=3.0,
                      repeats=1) == 0
    payload = json.loads(out.read_text())
    assert {"machine", "rows", "agreement", "failed"} <= set(payload)
    assert len(payload["rows"]) == 2 and not payload["failed"]
    for row in payload["rows"]:
        assert set(benchmark.ROW_FIELDS) <= set(row)
        assert row["model"] == "mfcc" and row["weights_kind"] == "none"
        assert row["seconds_per_clip"] > 0 and row["peak_rss_mib"] > 0
        assert row["tflops"] is None and row["peak_vram_mib"] is None
    assert benchmark.read_rows(out)["rows"] == payload["rows"]
    assert "mfcc" in capsys.readouterr().out


def test_bench_refuses_unknown_models(capsys):
    assert suite.main(models="mert-95m,jukebox") == 2
    assert "jukebox" in capsys.readouterr().out


@pytest.mark.skipif(not cpu_bf16_capability()["native"],
                    reason="this CPU has no native bf16: bf16 is not timed here (next test)")
def test_measure_tiny_mert_in_two_precisions(tiny_mert, tmp_path):
    import soundfile as sf

    path = tmp_path / "t.wav"
    sf.write(path, benchmark.synthetic_clip(2.0, 24000), 24000)
    options = BenchOptions(device="cpu", dtypes=["float32", "bfloat16"], batch_sizes=[1],
                           clip_seconds=2.0, agreement_paths=[str(path)])
    result = benchmark.measure_model("mert-330m", {"model": str(tiny_mert), "chunk_seconds": 1.0},
                                     options)
    rows = result["rows"]
    assert [r["dtype"] for r in rows] == ["float32", "bfloat16"]
    assert all(r["weights_kind"] == "fixture" and r["tflops"] > 0 and 0 < r["peak_fraction"]
               for r in rows)
    (agree,) = result["agreement"]
    assert agree["min_cosine"] >= 0.999 and len(agree["per_layer"]) == 4
    frame = benchmark.speedup_table({"rows": [{"label": "m", **r} for r in rows]})
    assert frame["dtype"].tolist() == ["bfloat16"]


def test_bf16_on_a_cpu_without_native_bf16_is_skipped_with_the_reason(tiny_mert, monkeypatch):
    from mtbc.benchmark import measure

    monkeypatch.setattr(measure, "cpu_bf16_capability", lambda: {"native": False})
    options = BenchOptions(device="cpu", dtypes=["float32", "bfloat16"], batch_sizes=[1],
                           clip_seconds=2.0)
    result = benchmark.measure_model("mert-330m", {"model": str(tiny_mert), "chunk_seconds": 1.0},
                                     options)
    by_dtype = {r["dtype"]: r for r in result["rows"]}
    assert set(by_dtype) == {"float32", "bfloat16"}
    assert "no native bf16" in by_dtype["bfloat16"]["skipped"]
    assert by_dtype["bfloat16"]["seconds_per_clip"] is None
    assert by_dtype["float32"]["seconds_per_clip"] > 0 and result["agreement"] == []


def test_budget_skips_batches_that_would_not_fit():
    result = benchmark.measure_model("mfcc", None, BenchOptions(
        device="cpu", batch_sizes=[1, 1000], clip_seconds=2.0, budget_s=0.5))
    assert "skipped" in result["rows"][1] and result["rows"][1]["seconds_per_clip"] is None


def test_models_for_run_labels_weights():
    models = benchmark.models_for_run({"m": {"name": "mert", "model": "m-a-p/MERT-v1-95M"},
                                       "mfcc": {"name": "mfcc"}}, extra=["mert-330m", "mfcc"])
    assert {k: v["key"] for k, v in models.items()} == {"m": "mert-95m", "mfcc": "mfcc",
                                                        "mert-330m": "mert-330m"}
    assert models["mert-330m"]["options"] is None  # random full-size weights


# ----------------------------------------------------------------------------- claims

def test_every_claim_has_a_check_and_unique_id():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) >= 35
    for c in claims.CLAIMS:
        assert c.check in claims_data.CHECKS and c.how and c.claim and c.section, c.id
        assert c.dataset in (None, *claims.DATASET_PARAMS)


def test_audit_without_evidence_gives_every_claim_a_verdict():
    verdicts = claims.audit(claims.Evidence())
    assert [v.id for v in verdicts] == [c.id for c in claims.CLAIMS]
    assert all(v.verdict in claims.VERDICTS and v.why for v in verdicts)


@pytest.fixture(scope="module")
def facts():
    return claims.architecture_facts()


def test_architecture_claims(facts):
    v = {x.id: x.verdict for x in claims.audit(claims.Evidence(facts=facts))}
    assert facts["mert.layers"] == 24 and facts["mert.dim"] == 1024
    assert 300e6 < facts["mert.params"] < 330e6
    assert 72.0e6 < facts["vggish.params"] < 72.2e6
    for cid in ("mert-features", "mert-layers", "mert-dim", "vggish-mel", "vggish-pca",
                "ensemble-dims"):
        assert v[cid] == claims.CONTRADICTED, cid
    for cid in ("mert-sr", "mert-params", "vggish-sr", "vggish-blocks", "vggish-params",
                "vggish-dim", "size-mert", "size-vggish"):
        assert v[cid] == claims.CONFIRMED, cid
    assert v["mert-hours"] == claims.NOT_TESTABLE


def _row(model, seconds, **kw):
    return {"model": model, "device": "cpu", "dtype": "float32", "auto_dtype": "float32",
            "batch_size": 1, "clip_seconds": 30.0, "seconds_per_clip": seconds,
            "peak_rss_mib": 2400.0, "load_s": 3.0, "weights_kind": benchmark.RANDOM,
            "peak_vram_mib": None, **kw}


def test_compute_claims_from_rows(facts):
    ev = claims.Evidence(facts=facts, compute=[_row("mert-330m", 16.0), _row("vggish", 0.3)])
    t = claims.audit_table(ev)
    assert t.loc["speed-ratio", "verdict"] == claims.CONTRADICTED  # 53x, not 5-6x
    assert t.loc["ram-mert", "verdict"] == claims.CONFIRMED  # 2400 MiB ~ 2.5 GB
    assert t.loc["speed-mert-cpu", "verdict"] == claims.NOT_TESTABLE  # other hardware
    assert "16.00 s" in t.loc["speed-mert-cpu", "mtbc found"]
    assert t.loc["vram-mert", "verdict"] == claims.NOT_TESTABLE


def test_accuracy_claims_need_the_data_set_and_real_weights(facts):
    figures = {"mert": (0.80, 0.75, 0.85, 290), "vggish": (0.50, 0.44, 0.56, 290),
               "ensemble": (0.81, 0.76, 0.86, 290), "margin": (0.30, 0.24, 0.36, 290)}
    real = {"mert": "pretrained", "vggish": "pretrained"}
    on_gtzan = claims.audit_table(claims.Evidence(facts=facts, accuracy=figures, weights=real,
                                                  collection="gtzan:data/gtzan"))
    assert on_gtzan.loc["gtzan-mert", "verdict"] == claims.CONFIRMED
    assert on_gtzan.loc["gtzan-vggish", "verdict"] == claims.CONTRADICTED
    assert on_gtzan.loc["mert-margin", "verdict"] == claims.CONTRADICTED
    assert on_gtzan.loc["mtat-auc", "verdict"] == claims.NOT_TESTABLE
    assert "params/mtat.yaml" in on_gtzan.loc["mtat-auc", "why"]
    on_demo = claims.audit_table(claims.Evidence(facts=facts, accuracy=figures, weights=real,
                                                 collection="demo"))
    assert on_demo.loc["gtzan-mert", "verdict"] == claims.NOT_TESTABLE
    assert "params/gtzan.yaml" in on_demo.loc["gtzan-mert", "why"]
    fixtures = claims.audit_table(claims.Evidence(
        facts=facts, accuracy=figures, weights={"mert": "fixture", "vggish": "fixture"},
        collection="gtzan:x", stats={"mert": pd.DataFrame({"mean": [0.007], "std": [0.16],
                                                           "min": [-0.7], "max": [4.6]})}))
    assert (fixtures.loc[[c.id for c in claims.CLAIMS if c.check in ("accuracy",
                                                                     "statistics")],
                         "verdict"] == claims.NOT_TESTABLE).all()
    assert "random weights" in fixtures.loc["gtzan-mert", "mtbc found"]


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_peak_rss_of_a_subprocess_is_its_own_not_its_parents():
    # ru_maxrss survives fork + exec: a worker started from a big parent would report the
    # parent's memory. The benchmark's figure must be the worker's own.
    import subprocess
    import sys

    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB resident in this (the parent) process
    code = "from mtbc.benchmark.timing import peak_rss_mib; print(peak_rss_mib())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    parent = benchmark.timing.rss_now_mib()  # the ballast, torch and the test suite
    assert ballast.sum() > 0 and float(out) < parent - 200, (out, parent)
