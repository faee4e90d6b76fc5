"""Fine-tuning and stability claims decided from notebooks 09 and 11's run-folder records."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mtbc import claims
from mtbc.claims.measured import training_seconds
from mtbc.extractors.partial import Split, _EvalModule
from mtbc.finetune.protocol import Job, compare_with_frozen, evaluate_finetune, frozen_probe
from mtbc.finetune.report import write_record as write_finetune
from mtbc.finetune.run import FinetuneReport
from mtbc.finetune.train import TrainOptions
from mtbc.robustness.measures import compare_models, summarise_stability
from mtbc.robustness.record import write_record as write_robustness


class _Top(_EvalModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)

    def forward(self, x):
        return torch.relu(self.fc(x.flatten(1)))


class _FakeExtractor:
    """Stands in for an extractor in a test record (no network, no result)."""

    def __init__(self, name: str, weights: str, width: int):
        self.name, self.device = name, "cpu"
        self.fingerprint = f"{name}-test"
        self._meta = {"extractor": name, "weights_kind": weights, "hidden_size": width,
                      "model": f"test {name}"}

    def metadata(self):
        return dict(self._meta)


def _report(name: str, layers: int, *, weights: str = "pretrained", seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], 10)
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(30)], "label": labels,
                           "duration": 30.0})
    codes = pd.Categorical(labels).codes
    trunks = []
    for c in codes:
        x = rng.standard_normal((2, 1, 6)).astype(np.float32)
        x[:, 0, c] += 1.5
        trunks.append(x)
    torch.manual_seed(seed)
    split = Split(lambda w: w, _Top(), 8, "test point",
                  {"train_layers": layers, "trainable": f"the last {layers} layers"})
    opts = TrainOptions(lrs=(1e-2,), max_epochs=4, patience=2, batch_size=16, seed=seed)
    job = Job(trunks, codes, 3, split, opts)
    tuned = evaluate_finetune(job, tracks, n_splits=3, n_boot=100)
    frozen_X = rng.standard_normal((60, 1, 4)).astype(np.float32)
    frozen = frozen_probe(frozen_X, np.repeat(np.arange(30), 2), tracks, n_splits=3, n_boot=100)
    cmp = compare_with_frozen(tuned, frozen.predictions, tracks, n_boot=100)
    ext = _FakeExtractor(name, weights, 768 if name == "mert" else 128)
    return FinetuneReport(tuned, frozen, cmp, ext, split, f"{name}-trunk", {
        "trunk": 1.0, "finetune": 2.0, "frozen_probe": 0.5}, job), tracks


@pytest.fixture(scope="module")
def tuned():
    return {"mert": _report("mert", 4), "vggish": _report("vggish", 3, seed=1),
            "musicnn": _report("musicnn", 1, seed=2)}


def _run_folder(tmp_path, reports: dict, skipped=None) -> str:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    record = run / "run.json"
    record.write_text("{}")
    tracks = next(iter(reports.values()))[1]
    write_finetune(str(record), {k: r for k, (r, _) in reports.items()}, tracks, skipped)
    return str(record)


def _patch(record: str, name: str, comparison=None, **fields) -> dict:
    """Change model ``name``'s figures in the run's finetune.json (a planted record)."""
    path = record.replace("run.json", "finetune.json")
    with open(path) as f:
        data = json.load(f)
    rec = data["models"][name]
    rec.update(fields)
    rec["comparison"].update(comparison or {})
    with open(path, "w") as f:
        json.dump(data, f)
    return rec


def _table(record: str) -> pd.DataFrame:
    return claims.audit_table(claims.Evidence(collection="demo", **claims.run_files(record)))


def test_finetune_claims_get_verdicts_from_09s_record(tmp_path, tuned):
    record = _run_folder(tmp_path, {"mert": tuned["mert"], "vggish": tuned["vggish"]})
    t = _table(record)
    for cid in ("finetune-mert", "finetune-vggish"):
        assert t.loc[cid, "verdict"] in (claims.CONFIRMED, claims.CONTRADICTED), t.loc[cid]
        assert "points [" in t.loc[cid, "mtbc found"] and "p = " in t.loc[cid, "mtbc found"]
    gain = tuned["mert"][0].comparison
    ok = gain["ci_high"] >= 0.05 and gain["ci_low"] <= 0.10
    assert t.loc["finetune-mert", "verdict"] == (claims.CONFIRMED if ok else claims.CONTRADICTED)
    assert f"{100 * gain['gain']:+.1f} points" in t.loc["finetune-mert", "mtbc found"]

    _patch(record, "mert", {"gain": 0.07, "ci_low": 0.02, "ci_high": 0.12})
    t = _table(record)
    assert t.loc["finetune-mert", "verdict"] == claims.CONFIRMED
    assert "+7.0 points [+2.0, +12.0]" in t.loc["finetune-mert", "mtbc found"]
    _patch(record, "mert", {"gain": 0.3, "ci_low": 0.2, "ci_high": 0.4})
    t = _table(record)
    assert t.loc["finetune-mert", "verdict"] == claims.CONTRADICTED
    assert "+30.0 points [+20.0, +40.0]" in t.loc["finetune-mert", "mtbc found"]
    assert "lies outside" in t.loc["finetune-mert", "why"]


def test_training_time_needs_a_gpu_and_is_extrapolated(tmp_path, tuned):
    record = _run_folder(tmp_path, {"mert": tuned["mert"]})
    t = _table(record)
    assert t.loc["finetune-mert-time", "verdict"] == claims.NOT_TESTABLE
    assert "for a GPU" in t.loc["finetune-mert-time", "why"]
    assert "clips" in t.loc["finetune-mert-time", "mtbc found"]
    # 100 segments/s, one segment per 30 s clip, 10 epochs: 1,000 clips in 100 s
    rec = _patch(record, "mert", device="cuda:0", segments_trained=1000, n_segments=30,
                 audio_seconds=900.0, epochs=[10, 10, 10], seconds={"finetune": 10.0})
    assert training_seconds(rec) == pytest.approx(100.0)
    t = _table(record)
    assert t.loc["finetune-mert-time", "verdict"] == claims.CONTRADICTED
    assert "1.7 min" in t.loc["finetune-mert-time", "mtbc found"]
    _patch(record, "mert", segments_trained=10)  # 1 segment/s: 10,000 s = 2.8 h
    assert _table(record).loc["finetune-mert-time", "verdict"] == claims.CONFIRMED


def test_only_musicnn_ran_so_mert_and_vggish_are_not_testable(tmp_path, tuned):
    skipped = pd.DataFrame([["mert", "no GPU here; set allow_cpu: true"]],
                           columns=["model", "reason"])
    record = _run_folder(tmp_path, {"musicnn": tuned["musicnn"]}, skipped)
    t = _table(record)
    for cid in ("finetune-mert", "finetune-vggish", "finetune-mert-time"):
        assert t.loc[cid, "verdict"] == claims.NOT_TESTABLE
        assert "not fine-tuned in this run" in t.loc[cid, "why"]
        assert "musicnn" in t.loc[cid, "why"] and "not evidence" in t.loc[cid, "why"]
    assert "allow_cpu" in t.loc["finetune-mert", "why"]  # the skipped model's reason


def test_fixture_weights_and_other_layers_decide_nothing(tmp_path):
    record = _run_folder(tmp_path, {"mert": _report("mert", 4, weights="fixture"),
                                    "vggish": _report("vggish", 1)})
    t = _table(record)
    assert t.loc["finetune-mert", "verdict"] == claims.NOT_TESTABLE
    assert "random weights" in t.loc["finetune-mert", "mtbc found"]
    assert t.loc["finetune-vggish", "verdict"] == claims.NOT_TESTABLE
    assert "not the claim's part" in t.loc["finetune-vggish", "why"]


def test_no_records_means_not_testable(tmp_path):
    t = _table(str(tmp_path / "run.json"))
    for cid in ("finetune-mert", "finetune-vggish-time", "stable-mert", "subtle-mert"):
        assert t.loc[cid, "verdict"] == claims.NOT_TESTABLE
        assert "left no results" in t.loc[cid, "why"]


# ----------------------------------------------------------------------------- robustness

def _robustness(tmp_path, cosines: dict[str, float], weights="pretrained") -> str:
    rng = np.random.default_rng(0)
    rows = []
    for deformation in ("noise 10 dB", "mp3 32 kbps"):
        for model, mean in cosines.items():
            for i in range(40):
                cos = float(np.clip(mean + 0.03 * rng.standard_normal(), -1, 1))
                rows.append({"model": model, "deformation": deformation, "track_id": f"t{i}",
                             "group": f"g{i // 2}", "cosine": cos,
                             "hit": float(rng.random() < mean)})
    per_track = pd.DataFrame(rows)
    result = SimpleNamespace(
        labels=["noise 10 dB", "mp3 32 kbps"],
        stability=summarise_stability(per_track, n_boot=200),
        stability_tests=compare_models(per_track, "cosine", n_boot=200),
        retrieval_tests=compare_models(per_track, "hit", n_boot=200),
        drops=pd.DataFrame(), drop_tests=pd.DataFrame())
    meta = {m: {"extractor": m, "weights_kind": weights, "hidden_size": 1024} for m in cosines}
    run = tmp_path / "r11"
    run.mkdir(exist_ok=True)
    record = run / "run.json"
    record.write_text("{}")
    write_robustness(str(record), result, meta)
    return str(record)


def test_stability_claims_from_11s_record(tmp_path):
    t = _table(_robustness(tmp_path, {"vggish": 0.70, "mert": 0.90}))
    assert t.loc["stable-mert", "verdict"] == claims.CONFIRMED
    found = t.loc["stable-mert", "mtbc found"]
    assert "noise 10 dB" in found and "mp3 32 kbps" in found and "mert - vggish = +0.19" in found
    assert "n = 40" in found
    t = _table(_robustness(tmp_path, {"mert": 0.60, "vggish": 0.85}))
    assert t.loc["stable-mert", "verdict"] == claims.CONTRADICTED
    assert "mert - vggish = -0.2" in t.loc["stable-mert", "mtbc found"]
    t = _table(_robustness(tmp_path, {"mert": 0.80, "vggish": 0.80}))
    assert t.loc["stable-mert", "verdict"] == claims.NOT_TESTABLE
    assert "includes 0" in t.loc["stable-mert", "why"]


def test_stability_claims_need_mert_and_vggish_with_real_weights(tmp_path):
    t = _table(_robustness(tmp_path, {"musicnn": 0.9, "mfcc": 0.7}))
    for cid in ("stable-mert", "subtle-mert"):
        assert t.loc[cid, "verdict"] == claims.NOT_TESTABLE
        assert "MERT and VGGish not measured" in t.loc[cid, "why"]
    t = _table(_robustness(tmp_path, {"mert": 0.9, "vggish": 0.7}, weights="fixture"))
    assert t.loc["stable-mert", "verdict"] == claims.NOT_TESTABLE
    assert "random weights" in t.loc["stable-mert", "mtbc found"]


def test_every_claim_still_gets_a_verdict():
    assert [v.id for v in claims.audit(claims.Evidence())] == [c.id for c in claims.CLAIMS]
    assert {c.check for c in claims.CLAIMS} <= set(claims.CHECKS)


def test_claims_audit_runs_after_the_notebooks_it_reads(tmp_path):
    from mtbc.reports.params import find_notebooks

    for name in ("01_load_data", "08_claims", "09_fine_tuning", "11_robustness"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [p.stem for p in find_notebooks(tmp_path)] == [
        "01_load_data", "09_fine_tuning", "11_robustness", "08_claims"]
    # an explicit list keeps its order
    assert [p.stem for p in find_notebooks(tmp_path, ["08_claims", "01_load_data"])] == [
        "08_claims", "01_load_data"]
