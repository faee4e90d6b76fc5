"""Notebooks 04-06's study functions add a CLAP model's zero-shot result beside the probes,
and change nothing for a run without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.cache.store import EmbeddingStore
from mtbc.data.core import Collection
from mtbc.evaluation.results import ZERO_SHOT
from mtbc.reports.tables import comparison_frame, results_table
from mtbc.study.classify import classify_models
from mtbc.study.common import Study
from mtbc.study.compare import compare_systems
from mtbc.study.tagging import tag_systems, tagging_table
from mtbc.study.zeroshot import text_models, zero_shot_results

CLASSES = ["choir", "organ", "piano"]
DIM, JOINT = 6, 4


class FakeModel:
    """What a study needs of an extractor (name, fingerprint, metadata)."""

    model_name = "fake"

    def __init__(self, name: str, fingerprint: str):
        self.name, self.fingerprint = name, fingerprint

    def metadata(self) -> dict:
        return {"name": self.name, "weights": "test fixture", "fingerprint": self.fingerprint}


class FakeClap(FakeModel):
    """A text tower whose prompt embedding is the planted direction of the word it names."""

    has_text = True
    projection_dim = JOINT

    def __init__(self, fingerprint: str, directions: dict):
        super().__init__("clap", fingerprint)
        self.directions, self.seen = directions, []

    def embed_text(self, prompts):
        self.seen += list(prompts)
        return np.stack([next(v for w, v in self.directions.items() if w in p)
                         for p in prompts]).astype(np.float32)


def _study(root, *, clap: bool = True, seed: int = 0) -> Study:
    rng = np.random.default_rng(seed)
    n = 12 * len(CLASSES)
    y = np.tile(np.arange(len(CLASSES)), n // len(CLASSES))
    tracks = pd.DataFrame({
        "track_id": [f"t{i:02d}" for i in range(n)], "path": [f"t{i}.wav" for i in range(n)],
        "label": np.asarray(CLASSES)[y], "group": [f"g{i // 2}" for i in range(n)],
        "content_hash": [f"{i:064x}" for i in range(n)],
        "tags": np.asarray(CLASSES)[y],
        "tags_negative": [";".join(c for c in CLASSES if c != CLASSES[k]) for k in y]})
    text = np.eye(len(CLASSES), JOINT)
    store = EmbeddingStore(root / "cache")
    models = {"mfcc": FakeModel("mfcc", "mfcc-fake")}
    if clap:
        models["clap"] = FakeClap("clap-fake", dict(zip(CLASSES, text, strict=True)))
    for i in range(n):
        segs = rng.standard_normal((2, 2, DIM)).astype(np.float32)
        segs[:, 0, y[i]] += 3.0  # the class shows in layer 0 for the probe
        segs[:, 1, :JOINT] = text[y[i]] + 0.1 * rng.standard_normal((2, JOINT))
        segs[:, 1, JOINT:] = 0.0  # the joint row's zero padding
        for label, model in models.items():
            store.put(tracks["content_hash"][i], model.fingerprint,
                      segs if label == "clap" else segs[:, :1])
    return Study(Collection(tracks, name="zs", source=f"zs:{root}"), store, models)


OPTS = {"seed": 0, "n_splits": 3, "n_boot": 50}


def test_notebook_04_adds_the_zero_shot_result_never_chosen(tmp_path):
    study = _study(tmp_path)
    assert text_models(study) == ["clap"]
    out = classify_models(study, probes=["linear"], zero_shot_template="{label} music", **OPTS)
    z = out.results["clap", "zero-shot"]
    assert ("mfcc", "zero-shot") not in out.results
    assert z.name == "clap · zero-shot" and z.system == ZERO_SHOT and z.metric() == 1.0
    assert z.params["prompts"] == {c: f"{c} music" for c in CLASSES}
    assert study.models["clap"].seen == [f"{c} music" for c in CLASSES]
    assert out.representative["clap"].probe == "linear"
    probe = out.results["clap", "linear"]
    pd.testing.assert_series_equal(z.predictions["fold"], probe.predictions["fold"])
    table = results_table(out.all_results())
    assert table.loc["clap · zero-shot", "layer(s) chosen"] == "joint (x3)"
    assert table.loc["clap · zero-shot", "validation %"] == ""
    assert "clap · zero-shot" in set(comparison_frame(out.all_results())["system"])


def test_notebook_05_puts_zero_shot_in_the_paired_tests(tmp_path):
    study = _study(tmp_path)
    out = compare_systems(study, **OPTS)
    names = [r.name for r in out.systems]
    assert names[-1] == "clap · zero-shot" and names.count("clap · zero-shot") == 1
    mine = out.tests[(out.tests.system_a == "clap · zero-shot")
                     | (out.tests.system_b == "clap · zero-shot")]
    assert len(mine) == len(names) - 1 and mine["p_holm"].between(0, 1).all()
    assert out.chosen.name != "clap · zero-shot"


def test_notebook_06_adds_a_zero_shot_tagging_row(tmp_path):
    study = _study(tmp_path)
    out = tag_systems(study, n_perm=50, **OPTS)
    (z,) = out.zero_shot
    assert z.name == "clap · zero-shot" and z.system == ZERO_SHOT and z.tags == CLASSES
    assert z.metric("roc_auc_macro") == 1.0
    assert z.params["prompts"]["organ"] == "This is a organ song."
    assert all(z.name not in (a, b) for a, b in zip(out.tests.system_a, out.tests.system_b,
                                                    strict=True))
    assert "clap · zero-shot" in tagging_table(out.systems + out.zero_shot).index


@pytest.mark.parametrize("step", ["04", "05", "06"])
def test_without_a_clap_model_nothing_changes(tmp_path, step):
    study = _study(tmp_path, clap=False)
    assert text_models(study) == []
    if step == "04":
        out = classify_models(study, probes=["linear"], **OPTS)
        assert list(out.results) == [("mfcc", "linear")]
    elif step == "05":
        out = compare_systems(study, **OPTS)
        assert [r.name for r in out.systems] == ["mfcc · linear"] and out.tests is None
    else:
        out = tag_systems(study, n_perm=50, **OPTS)
        assert out.zero_shot == [] and [r.name for r in out.systems] == ["mfcc · linear"]
    assert zero_shot_results(study, study.tracks, {"mfcc": None}) == []
