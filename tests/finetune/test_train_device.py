"""Fine-tuning's precision (bf16 autocast), GPU batch sizing and per-epoch progress bar."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mtbc.cache.store import EmbeddingStore
from mtbc.extractors import get_extractor
from mtbc.extractors.base import CPU_BF16_ENV
from mtbc.extractors.partial import Split, _EvalModule
from mtbc.finetune import device as ftdevice
from mtbc.finetune.device import batch_size_for, choose_batch_size, training_precision
from mtbc.finetune.train import FineTuned, RunData, TrainOptions, Watch, train_run
from mtbc.finetune.trunk import trunk_fingerprint, trunk_outputs

GiB, MiB = 2**30, 2**20


class _Top(_EvalModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.dtypes: list[torch.dtype] = []

    def forward(self, x):
        out = self.fc(x.flatten(1))
        self.dtypes.append(out.dtype)
        return torch.relu(out)


def _data(n: int = 24, seed: int = 0) -> RunData:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 6)).astype(np.float32)
    y = np.arange(n) % 2
    X[:, 0, 0] += 2 * y
    return RunData(X, y, X[:8], np.arange(8), y[:8])


# ----------------------------------------------------------------------------- batch size

def test_batch_size_fits_a_fake_free_memory_and_is_clamped():
    # 0.7 x 8 GiB - 1 GiB reserved = 4.6 GiB: 47 samples of 100 MiB
    assert batch_size_for(8 * GiB, 100 * MiB, max_batch_size=256, reserve_bytes=GiB) == 47
    assert batch_size_for(8 * GiB, 100 * MiB, max_batch_size=32, reserve_bytes=GiB) == 32
    assert batch_size_for(80 * GiB, 100 * MiB, max_batch_size=256) == 256  # the maximum
    assert batch_size_for(512 * MiB, GiB, max_batch_size=64) == 1  # never below one
    assert batch_size_for(GiB, 2 * GiB, max_batch_size=64, reserve_bytes=4 * GiB) == 1
    assert batch_size_for(GiB, 0, max_batch_size=16) == 16  # no estimate: the maximum
    more = [batch_size_for(f * GiB, 50 * MiB, max_batch_size=10_000) for f in (2, 4, 8, 16)]
    assert more == sorted(more) and len(set(more)) == 4  # more free memory, larger batches


def test_cpu_uses_the_given_batch_size():
    model = FineTuned(_Top(), 8, 2)
    data = _data()
    assert choose_batch_size(model, data.X, data.y, batch_size=5, max_batch_size=256,
                             precision="float32") == 5
    hist = train_run(model, data, lr=1e-2, epochs=2, options=TrainOptions(batch_size=5))
    assert {h["batch_size"] for h in hist} == {5}
    assert [h["segments"] for h in hist] == [24, 24]


def test_batch_size_options_are_checked():
    with pytest.raises(ValueError, match="max_batch_size"):
        TrainOptions(max_batch_size=0)


# ----------------------------------------------------------------------------- precision

def test_training_precision_follows_extractions_decision(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert training_precision("auto", "cpu") == "float32"
    monkeypatch.setenv(CPU_BF16_ENV, "1")  # a CPU with native bf16
    assert training_precision("auto", "cpu") == "bfloat16"
    assert training_precision("float32", "cpu") == "float32"  # turned off
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert training_precision("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert training_precision("auto", "cuda") == "float32"  # fp16 is not used for training
    with pytest.raises(ValueError, match="precision must be one of"):
        training_precision("float16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainOptions(precision="fp16")


def test_bf16_training_runs_under_autocast_with_float32_weights():
    data = _data()
    runs = {}
    for precision in ("float32", "bfloat16"):
        top = _Top()
        torch.manual_seed(0)
        top.fc.reset_parameters()
        model = FineTuned(top, 8, 2, seed=1)
        hist = train_run(model, data, lr=1e-2, epochs=3,
                         options=TrainOptions(batch_size=8, precision=precision))
        runs[precision] = (model, hist)
        assert {h["precision"] for h in hist} == {precision}
        assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
        assert np.isfinite([h["train_loss"] for h in hist]).all()
        assert set(model.top.dtypes) == {getattr(torch, precision)}
    # bf16 rounding changes the trajectory a little, not the outcome
    w32, w16 = (runs[p][0].head.weight.detach() for p in ("float32", "bfloat16"))
    assert not torch.equal(w32, w16)
    assert torch.allclose(w32, w16, atol=0.05)


def test_trunk_under_bf16_has_its_own_cache_key(tmp_path, tone):
    ext = get_extractor("mfcc")
    seen = []

    def trunk(wave):
        seen.append(torch.is_autocast_enabled("cpu"))
        x = torch.from_numpy(wave[:600].reshape(100, 1, 6).copy())
        return (x @ torch.eye(6)).float().numpy()

    split = Split(trunk, _Top(), 8, "toy point")
    fp32, bf16 = (trunk_fingerprint(ext, split, p) for p in ("float32", "bfloat16"))
    assert fp32 == trunk_fingerprint(ext, split) and fp32 != bf16  # fp32 keys as before
    path = tone(tmp_path / "a.wav", seconds=1.0, sr=ext.sample_rate)
    tracks = pd.DataFrame({"path": [str(path)], "content_hash": ["ab12"]})
    store = EmbeddingStore(tmp_path / "cache")
    (a,) = trunk_outputs(tracks, ext, split, store, precision="bfloat16")
    (b,) = trunk_outputs(tracks, ext, split, store, precision="float32")
    assert seen == [True, False]  # each precision computed once, under its own autocast
    assert store.has("ab12", bf16) and store.has("ab12", fp32)
    assert store.read_info(bf16)["trunk_precision"] == "bfloat16"
    assert a.dtype == b.dtype == np.float32 and not np.array_equal(a, b)  # bf16 rounding
    trunk_outputs(tracks, ext, split, store, precision="bfloat16")
    assert seen == [True, False]  # read back from the cache


# ----------------------------------------------------------------------------- progress

class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(("progress", "tty", "shown"),
                         [(True, True, True), (True, False, False), (False, True, False)])
def test_progress_bar_per_epoch_on_a_terminal_only(monkeypatch, progress, tty, shown):
    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    train_run(FineTuned(_Top(), 8, 2), _data(), lr=1e-2, epochs=2,
              options=TrainOptions(batch_size=8), watch=Watch(progress=progress))
    text = err.getvalue()
    if shown:
        assert "epoch 1/2" in text and "epoch 2/2" in text
        assert "train_loss=" in text and "valid_loss=" in text
    else:
        assert text == ""


def test_gpu_sizing_is_not_asked_without_cuda(monkeypatch):
    def fail(*_a, **_k):
        raise AssertionError("GPU memory probed on a CPU run")

    monkeypatch.setattr(ftdevice, "per_sample_bytes", fail)
    model = FineTuned(_Top(), 8, 2)
    assert choose_batch_size(model, _data().X, _data().y, batch_size=3, max_batch_size=9,
                             precision="float32") == 3
