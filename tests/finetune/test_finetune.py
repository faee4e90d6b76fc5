"""Partial fine-tuning: split points, trunk cache, training, resume, protocol, model files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mtbc.cache.store import EmbeddingStore
from mtbc.extractors import fixtures
from mtbc.extractors.mert import MertExtractor
from mtbc.extractors.musicnn import MusicnnExtractor
from mtbc.extractors.partial import Split, _EvalModule
from mtbc.finetune.protocol import Job, compare_with_frozen, evaluate_finetune, frozen_probe
from mtbc.finetune.train import (
    Checkpoint,
    FineTuned,
    RunData,
    TrainOptions,
    Watch,
    train_run,
)
from mtbc.finetune.trunk import trunk_fingerprint, trunk_outputs

SR = 16000


@pytest.fixture(scope="module")
def musicnn():
    return MusicnnExtractor(device="cpu")


@pytest.fixture(scope="module")
def wave():
    rng = np.random.default_rng(0)
    t = np.arange(int(6.5 * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
            ).astype(np.float32)


def _mert(variant: str) -> MertExtractor:
    return MertExtractor.from_model(fixtures.make_mert_model(variant),
                                    config=fixtures.mert_config(variant),
                                    preprocessor=fixtures.mert_preprocessor(), device="cpu",
                                    dtype="float32", chunk_seconds=1.0)


@pytest.mark.parametrize("k", [1, 2])
def test_musicnn_trunk_plus_top_equals_full_forward(musicnn, wave, k, tmp_path):
    split = musicnn.trunk_and_top(k)
    full = musicnn.forward_patches(musicnn.patches(wave))["penultimate"]
    store = EmbeddingStore(tmp_path)
    tracks = pd.DataFrame({"path": [_write(tmp_path / "a.wav", wave)], "content_hash": ["ab12"]})
    (cached,) = trunk_outputs(tracks, musicnn, split, store)
    assert store.has("ab12", trunk_fingerprint(musicnn, split))  # verified on read
    with torch.no_grad():
        out = split.top(torch.from_numpy(cached)).numpy()
    np.testing.assert_allclose(out, full, atol=1e-5, rtol=0)
    if k == 1:  # the trunk output is the extractor's own "pool" embedding
        pool = musicnn.embed(wave)
        np.testing.assert_allclose(split.embedding(cached), pool, atol=1e-5, rtol=0)
        # a cached pool embedding gives the trunk output without reading the audio
        store.put("cd34", musicnn.fingerprint, pool)
        other = pd.DataFrame({"path": [str(tmp_path / "absent.wav")], "content_hash": ["cd34"]})
        (derived,) = trunk_outputs(other, musicnn, split, store)
        np.testing.assert_allclose(derived, cached, atol=1e-5, rtol=0)


def _write(path, wave):
    import soundfile as sf

    sf.write(path, wave, SR, subtype="FLOAT")
    return str(path)


def test_trunk_fingerprint_depends_on_split_point(musicnn):
    assert (trunk_fingerprint(musicnn, musicnn.trunk_and_top(1))
            != trunk_fingerprint(musicnn, musicnn.trunk_and_top(2)))
    with pytest.raises(ValueError, match="train_layers=3"):
        musicnn.trunk_and_top(3)


@pytest.mark.parametrize(("variant", "k"), [("95m", 2), ("330m", 1)])
def test_mert_trunk_plus_top_equals_full_forward(variant, k):
    ext = _mert(variant)
    w = (0.1 * np.random.default_rng(1).standard_normal(24000 * 3)).astype(np.float32)
    split = ext.trunk_and_top(k)
    trunk = split.trunk(w)
    with torch.no_grad():
        out = split.top(torch.from_numpy(trunk)).numpy()
    np.testing.assert_allclose(out, ext.embed(w)[:, -1], atol=1e-5, rtol=0)


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("which", ["musicnn", "mert"])
def test_training_changes_top_only(which, musicnn, wave):
    torch.manual_seed(0)
    ext = musicnn if which == "musicnn" else _mert("95m")
    net = ext.net if which == "musicnn" else ext.model
    before_net = _params(net)
    split = ext.trunk_and_top(1 if which == "musicnn" else 2)
    w = wave if which == "musicnn" else wave[: 24000 * 3]
    X = np.concatenate([split.trunk(w), split.trunk(w[::-1].copy())])
    y = np.repeat([0, 1], len(X) // 2)
    model = FineTuned(split.top, split.dim, 2)
    before_top = _params(model.top)
    train_run(model, RunData(X, y), lr=1e-2, epochs=2, options=TrainOptions(batch_size=4))
    for key, value in _params(net).items():  # the whole extractor network: bit-identical
        assert torch.equal(value, before_net[key]), key
    after = _params(model.top)
    trainable = [k for k, _ in model.top.named_parameters()]
    assert trainable and all(not torch.equal(after[k], before_top[k]) for k in trainable)
    again = trunk_and_top_trunk = split.trunk(w)  # the trunk still gives what it gave
    np.testing.assert_array_equal(again, X[: len(trunk_and_top_trunk)])


class _Kill(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted(tmp_path, musicnn, wave):
    split = musicnn.trunk_and_top(1)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 2, 753)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    data = RunData(X, y, X[:10], np.arange(10), y[:10])
    opts = TrainOptions(batch_size=8)

    def fresh():
        return FineTuned(split.top, split.dim, 3, seed=5)

    whole = fresh()
    hist_whole = train_run(whole, data, lr=1e-3, epochs=5, options=opts)

    def kill_after_3(rec):
        if rec["epoch"] == 3:
            raise _Kill

    ck = Checkpoint(tmp_path / "ck", key={"run": "a"})
    with pytest.raises(_Kill):
        train_run(fresh(), data, lr=1e-3, epochs=5, options=opts, checkpoint=ck,
                  watch=Watch(on_epoch=kill_after_3))
    seen = []
    resumed = fresh()
    hist = train_run(resumed, data, lr=1e-3, epochs=5, options=opts, checkpoint=ck,
                     watch=Watch(on_epoch=seen.append))
    assert [r["epoch"] for r in seen] == [4, 5]  # epochs 1-3 were not run again
    assert hist == hist_whole
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    other = []  # another key (another run) never resumes this run's checkpoint
    train_run(fresh(), data, lr=1e-3, epochs=5, options=opts,
              checkpoint=Checkpoint(ck.folder, key={"run": "b"}), watch=Watch(on_epoch=other.append))
    assert [r["epoch"] for r in other] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------- protocol

class _ToyTop(_EvalModule):
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, 8)

    def forward(self, x):
        return torch.relu(self.fc(x.flatten(1)))


def _toy(seed: int, *, signal: float, n_per_class: int = 15, segs: int = 3, width: int = 6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], n_per_class)
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(len(labels))], "label": labels})
    codes = pd.Categorical(labels).codes
    trunks = []
    for c in codes:
        x = rng.standard_normal((segs, 1, width)).astype(np.float32)
        x[:, 0, c] += signal
        trunks.append(x)
    torch.manual_seed(seed)
    split = Split(lambda w: w, _ToyTop(width), 8, "toy")
    frozen = rng.standard_normal((len(labels) * segs, 1, 4)).astype(np.float32)  # no signal
    index = np.repeat(np.arange(len(labels)), segs)
    return tracks, trunks, codes, split, frozen, index


def _compare(seed: int, signal: float, lrs=(1e-2, 3e-2)):
    tracks, trunks, codes, split, frozen, index = _toy(seed, signal=signal)
    opts = TrainOptions(lrs=lrs, max_epochs=8, patience=2, batch_size=16, seed=seed)
    job = Job(trunks, codes, 3, split, opts)
    tuned = evaluate_finetune(job, tracks, n_splits=3, n_boot=200)
    base = frozen_probe(frozen, index, tracks, seed=seed, n_splits=3, n_boot=200)
    return tuned, base, compare_with_frozen(tuned, base.predictions, tracks, n_boot=200,
                                            seed=seed)


def test_planted_signal_beats_frozen_probe_without_it():
    tuned, base, cmp = _compare(0, signal=2.0)
    assert list(tuned.predictions.index) != [] and cmp["n_tracks"] == 45
    assert tuned.metric() > 0.8 and cmp["gain"] > 0.3
    assert cmp["p_value"] < 0.01 and cmp["ci_low"] > 0
    # same folds as the probes: every track predicted once, by the same fold name
    assert (tuned.predictions["fold"].sort_index()
            == base.predictions["fold"].sort_index()).all()
    assert set(tuned.history["phase"]) == {"select", "refit"}


def test_noise_gives_no_significant_gain_beyond_nominal_rate():
    p = [_compare(seed, signal=0.0, lrs=(1e-2,))[2]["p_value"] for seed in range(5)]
    # nominal 5%: P(>= 2 of 5 below 0.05 | null) = 2%; these seeds give fewer
    assert sum(v < 0.05 for v in p) <= 1, p


# ----------------------------------------------------------------------------- command line

@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_cli_finetune_then_predict(tmp_path, capsys):
    import json

    import soundfile as sf

    from mtbc.cli import main

    rng = np.random.default_rng(0)
    songs = tmp_path / "songs"
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        (songs / label).mkdir(parents=True)
        for i in range(5):
            t = np.arange(int(3.1 * SR)) / SR
            w = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.05 * i) * t) \
                + 0.05 * rng.standard_normal(t.size)
            sf.write(songs / label / f"{label}{i}.wav", w.astype(np.float32), SR)
    args = ["finetune", str(songs), "-e", "musicnn", "--epochs", "2", "--out",
            str(tmp_path / "m" / "ft"), "--json", str(tmp_path / "s.json"), "--cache",
            str(tmp_path / "cache")]
    assert main(args) == 0
    first = json.loads((tmp_path / "s.json").read_text())
    assert {"finetuned_accuracy", "frozen_accuracy", "comparison"} <= set(first)
    assert first["comparison"]["n_tracks"] == 10
    weights = (tmp_path / "m" / "ft.safetensors").read_bytes()
    assert main(args) == 0  # a rerun resumes every finished run: same model, same numbers
    again = json.loads((tmp_path / "s.json").read_text())
    assert again["comparison"] == first["comparison"]
    assert (tmp_path / "m" / "ft.safetensors").read_bytes() == weights
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m" / "ft.json"), str(songs / "high")]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if ".wav" in line]
    assert len(rows) == 5 and all(r[1] == "high" for r in rows), out
    assert main(["predict", str(tmp_path / "m" / "nope.json"), str(songs)]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_vggish_split_trains_fc_layers_only():
    from types import SimpleNamespace

    from mtbc.extractors.partial import vggish_split
    from mtbc.extractors.vggish import build_vggish

    torch.manual_seed(0)
    model = build_vggish()
    rng = np.random.default_rng(0)
    examples = rng.standard_normal((3, 96, 64)).astype(np.float32)
    ext = SimpleNamespace(model=model, pca_path=None, _pca=None, device=torch.device("cpu"),
                          examples=lambda wave: examples)
    with torch.no_grad():
        full = model(torch.from_numpy(examples)[:, None]).numpy()
    for k in (3, 1):
        split = vggish_split(ext, k)
        trunk = split.trunk(np.zeros(16000, np.float32))
        with torch.no_grad():
            out = split.top(torch.from_numpy(trunk)).numpy()
        np.testing.assert_allclose(out, full, atol=1e-5, rtol=0)
    assert trunk.shape == (3, 1, 4096)
    assert sum(p.numel() for p in split.top.parameters()) == 4096 * 128 + 128
    with pytest.raises(ValueError, match="train_layers=4"):
        vggish_split(ext, 4)


def test_finetune_refuses_models_without_trainable_layers():
    from mtbc.extractors import ExtractorConfigError
    from mtbc.finetune.run import FinetuneSpec, build_split

    with pytest.raises(ExtractorConfigError, match="no trainable layers"):
        build_split(FinetuneSpec("mfcc"))
    with pytest.raises(ExtractorConfigError, match="train_layers=5"):
        build_split(FinetuneSpec("musicnn", train_layers=5))


def test_mert_lora_trains_adapters_only():
    ext = _mert("95m")
    w = (0.1 * np.random.default_rng(2).standard_normal(24000 * 3)).astype(np.float32)
    split = ext.trunk_and_top(2, lora=2)
    trunk = split.trunk(w)
    with torch.no_grad():  # adapters start at zero: the network's output is unchanged
        out = split.top(torch.from_numpy(trunk)).numpy()
    np.testing.assert_allclose(out, ext.embed(w)[:, -1], atol=1e-5, rtol=0)
    model = FineTuned(split.top, split.dim, 2)
    before = _params(model.top)
    X = np.concatenate([trunk, trunk[:, ::-1].copy()])
    train_run(model, RunData(X, np.repeat([0, 1], len(trunk))), lr=1e-2, epochs=2,
              options=TrainOptions(batch_size=2))
    after = _params(model.top)
    lora = [k for k in after if "lora_" in k]
    assert lora and all(not torch.equal(after[k], before[k]) for k in lora if "lora_B" in k)
    assert all(torch.equal(after[k], before[k]) for k in after if "lora_" not in k)
    with pytest.raises(ValueError, match="LoRA"):
        from mtbc.finetune.run import FinetuneSpec, build_split

        build_split(FinetuneSpec("musicnn", lora=4))
