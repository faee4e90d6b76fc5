"""musicnn: the TF checkpoint reader, the weight conversion, the PyTorch port and the extractor.

The port is compared with the ORIGINAL network: ``tests/data/musicnn_reference.npz`` holds the
outputs of the wheel's own TF graph (tensorflow-cpu 2.15.1 in a separate environment, see
``tests/data/make_musicnn_reference.py``) for log-mel patches of synthetic and rendered clips.
"""

from __future__ import annotations

import ast
import os
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mtbc.extractors import get_extractor
from mtbc.extractors import musicnn_net as mn
from mtbc.extractors import tf_checkpoint as tfc
from mtbc.extractors.musicnn import (
    MIN_SAMPLES,
    MSD_LABELS,
    MTT_LABELS,
    MusicnnExtractor,
    log_mel,
)
from mtbc.extractors.musicnn_weights import (
    WEIGHTS_DIR,
    WeightsIntegrityError,
    convert_wheel,
    load_weights,
    provenance,
    shipped_weights,
)

DATA = Path(__file__).parents[1] / "data"
sys.path.insert(0, str(DATA))
from make_musicnn_reference import SYNTH, synth_clip  # noqa: E402

MODELS = ("MTT_musicnn", "MSD_musicnn")


def _wheel() -> Path | None:
    candidates = [os.environ.get("MTBC_MUSICNN_WHEEL"),
                  Path(__file__).parents[2] / ".venv" / "musicnn" / "musicnn-0.1.0-py3-none-any.whl",
                  Path(sys.prefix) / "musicnn" / "musicnn-0.1.0-py3-none-any.whl"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


needs_wheel = pytest.mark.skipif(
    _wheel() is None, reason="musicnn-0.1.0 wheel absent: `make` downloads it to "
    ".venv/musicnn/ (or set MTBC_MUSICNN_WHEEL to its path)")


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA / "musicnn_reference.npz") as z:
        return dict(z)


@pytest.fixture(scope="module")
def extractors():
    return {m: MusicnnExtractor(model=m, device="cpu") for m in MODELS}


# ----------------------------------------------------------------------------- a tiny writer

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _fv(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def _fb(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        prev = key
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def _append_block(buf: bytearray, contents: bytes, compression: int = 0) -> bytes:
    offset = len(buf)
    tail = bytes([compression])
    buf += contents + tail + struct.pack("<I", tfc.mask_crc(tfc.crc32c(contents + tail)))
    return _varint(offset) + _varint(len(contents))


TF_ENUM = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3,
           np.dtype("int64"): 9}


def write_checkpoint(prefix: Path | str, tensors: dict[str, np.ndarray], *, entries_per_block=2,
                     corrupt_tensor: str | None = None, compression: int = 0) -> None:
    """A TF checkpoint V2 bundle, the way TF writes one (single shard, sorted keys)."""
    data = bytearray()
    rows = [(b"", _fv(1, 1) + _fv(2, 0) + _fb(3, _fv(1, 1)))]  # BundleHeaderProto
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        crc = tfc.mask_crc(tfc.crc32c(raw)) ^ (1 if name == corrupt_tensor else 0)
        shape = b"".join(_fb(2, _fv(1, d)) for d in arr.shape)
        entry = (_fv(1, TF_ENUM[arr.dtype]) + _fb(2, shape) + _fv(4, len(data))
                 + _fv(5, len(raw)) + _varint(6 << 3 | 5) + struct.pack("<I", crc))
        rows.append((name.encode(), entry))
        data += raw
    table, index = bytearray(), []
    for start in range(0, len(rows), entries_per_block):
        chunk = rows[start:start + entries_per_block]
        index.append((chunk[-1][0] + b"\xff", _append_block(table, _block(chunk), compression)))
    meta = _append_block(table, _block([]))
    idx = _append_block(table, _block(index, restart_interval=1))
    footer = meta + idx
    table += footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", tfc.TABLE_MAGIC)
    Path(f"{prefix}.index").write_bytes(bytes(table))
    Path(tfc.shard_name(str(prefix), 0, 1)).write_bytes(bytes(data))


def _tiny(rng) -> dict[str, np.ndarray]:
    return {"layer/kernel": rng.standard_normal((3, 2, 1, 4)).astype(np.float32),
            "layer/bias": rng.standard_normal(4).astype(np.float32),
            "layer_1/kernel": rng.standard_normal((5, 3)).astype(np.float64),
            "global_step": np.array(12345, np.int64), "counts": np.arange(7, dtype=np.int32)}


# ----------------------------------------------------------------------------- reader

def test_crc32c_known_values():
    assert tfc.crc32c(b"123456789") == 0xE3069283
    assert tfc.crc32c(b"") == 0
    assert tfc.crc32c(b"6789", tfc.crc32c(b"12345")) == 0xE3069283
    assert tfc.mask_crc(0) == 0xA282EAD8


def test_reader_round_trips_a_written_checkpoint(tmp_path, rng):
    tensors = _tiny(rng)
    write_checkpoint(tmp_path / "model.ckpt", tensors)
    got = tfc.read_checkpoint(tmp_path / "model.ckpt")
    assert list(got) == sorted(tensors)
    for name, value in tensors.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)
    assert tfc.list_tensors(tmp_path / "model.ckpt")["layer/kernel"] == ("float32", (3, 2, 1, 4))
    kept = tfc.read_checkpoint(tmp_path / "model.ckpt", keep=lambda n: n.startswith("layer/"))
    assert sorted(kept) == ["layer/bias", "layer/kernel"]


def test_reader_reads_from_a_zip(tmp_path, rng):
    tensors = _tiny(rng)
    (tmp_path / "m").mkdir()
    write_checkpoint(f"{tmp_path / 'm'}/", tensors, entries_per_block=3)  # "m/.index"
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (tmp_path / "m").iterdir():
            zf.write(f, f"pkg/m/{f.name}")
    got = tfc.read_checkpoint_from_zip(archive, "pkg/m/")
    np.testing.assert_array_equal(got["layer_1/kernel"], tensors["layer_1/kernel"])
    assert tfc.list_tensors_from_zip(archive, "pkg/m/")["global_step"] == ("int64", ())
    with pytest.raises(tfc.CheckpointError, match="no member"):
        tfc.read_checkpoint_from_zip(archive, "pkg/other/")


def test_reader_refuses_a_corrupted_tensor(tmp_path, rng):
    write_checkpoint(tmp_path / "c", _tiny(rng), corrupt_tensor="layer/bias")
    with pytest.raises(tfc.CheckpointError, match="CRC mismatch in tensor 'layer/bias'"):
        tfc.read_checkpoint(tmp_path / "c")
    assert "layer/kernel" in tfc.read_checkpoint(tmp_path / "c", keep=lambda n: "bias" not in n)
    data = Path(tfc.shard_name(str(tmp_path / "d"), 0, 1))
    write_checkpoint(tmp_path / "d", _tiny(rng))
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0xFF  # flip bits inside the first tensor's bytes
    data.write_bytes(bytes(raw))
    with pytest.raises(tfc.CheckpointError, match="CRC mismatch in tensor"):
        tfc.read_checkpoint(tmp_path / "d")


def test_reader_refuses_corrupt_or_compressed_tables(tmp_path, rng):
    write_checkpoint(tmp_path / "s", _tiny(rng), compression=1)
    with pytest.raises(tfc.CheckpointError, match="compressed"):
        tfc.read_checkpoint(tmp_path / "s")
    write_checkpoint(tmp_path / "b", _tiny(rng))
    index = bytearray(Path(f"{tmp_path / 'b'}.index").read_bytes())
    index[3] ^= 0x01
    Path(f"{tmp_path / 'b'}.index").write_bytes(bytes(index))
    with pytest.raises(tfc.CheckpointError, match="CRC mismatch in index block"):
        tfc.read_checkpoint(tmp_path / "b")
    Path(f"{tmp_path / 'x'}.index").write_bytes(b"\0" * 64)
    with pytest.raises(tfc.CheckpointError, match="bad magic"):
        tfc.read_checkpoint(tmp_path / "x")


# ----------------------------------------------------------------------------- weights

@needs_wheel
def test_conversion_from_the_wheel_reproduces_the_shipped_files(tmp_path):
    record = convert_wheel(_wheel(), tmp_path)
    for name in ("MTT_musicnn.safetensors", "MSD_musicnn.safetensors", "PROVENANCE.json",
                 "LICENSE.musicnn"):
        assert (tmp_path / name).read_bytes() == (WEIGHTS_DIR / name).read_bytes(), name
    assert record["models"]["MTT_musicnn"]["n_parameters"] == 792079
    assert record["models"]["MTT_musicnn"]["dropped_tensors"] == 86  # Adam slots and powers


@needs_wheel
def test_tag_names_match_the_wheel_configuration():
    with zipfile.ZipFile(_wheel()) as zf:
        tree = ast.parse(zf.read("musicnn/configuration.py"))
    labels = {t.id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) for t in node.targets}
    assert tuple(labels["MTT_LABELS"]) == MTT_LABELS and tuple(labels["MSD_LABELS"]) == MSD_LABELS


def test_shipped_weights_are_recorded_and_checked(tmp_path):
    prov = provenance()
    assert prov["source"]["sha256"] == "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
    scores = {m: prov["models"][m]["reported_test_scores"] for m in MODELS}
    assert round(scores["MTT_musicnn"]["roc_auc"], 3) == 0.907
    assert round(scores["MSD_musicnn"]["pr_auc"], 3) == 0.289
    assert "Permission to use, copy, modify" in (WEIGHTS_DIR / "LICENSE.musicnn").read_text()
    path, sha = shipped_weights("MTT_musicnn")
    tensors = load_weights(path, sha256=sha)
    assert sorted(tensors) == sorted(mn.KEY_TABLE)
    assert {n: list(t.shape) for n, t in tensors.items()} == prov["models"]["MTT_musicnn"]["tensors"]
    shutil.copytree(WEIGHTS_DIR, tmp_path / "w")
    raw = bytearray((tmp_path / "w" / "MTT_musicnn.safetensors").read_bytes())
    raw[-1] ^= 0x01
    (tmp_path / "w" / "MTT_musicnn.safetensors").write_bytes(bytes(raw))
    bad, sha = shipped_weights("MTT_musicnn", tmp_path / "w")
    with pytest.raises(WeightsIntegrityError, match="corrupted or was replaced"):
        load_weights(bad, sha256=sha)
    with pytest.raises(ValueError, match="no shipped musicnn weights"):
        shipped_weights("MTT_vgg")


def test_state_dict_mapping_refuses_missing_or_unexpected_tensors():
    tensors = load_weights(shipped_weights("MSD_musicnn")[0])
    with pytest.raises(ValueError, match="missing \\['dense/bias'\\]"):
        mn.state_dict_from_tf({k: v for k, v in tensors.items() if k != "dense/bias"})
    with pytest.raises(ValueError, match="unexpected \\['conv2d_8/kernel'\\]"):
        mn.state_dict_from_tf({**tensors, "conv2d_8/kernel": np.zeros(1, np.float32),
                               "dense/kernel/Adam": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="shape"):
        mn.state_dict_from_tf({**tensors, "conv2d/kernel": np.zeros((7, 38, 1, 5), np.float32)})


# ----------------------------------------------------------------------------- the port, planted

def test_tf_same_padding_puts_the_extra_frame_after():
    assert [mn.same_padding(k) for k in (128, 64, 32, 3, 1)] == [
        (63, 64), (31, 32), (15, 16), (1, 1), (0, 0)]
    block = mn._FrontBlock(1, (4, 1), mn.same_padding(4)).eval()
    w = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    with torch.no_grad():
        block.conv.weight.copy_(torch.from_numpy(w).reshape(1, 1, 4, 1))
        block.conv.bias.zero_()
        block.bn.running_var.fill_(1 - mn.BN_EPSILON)  # identity batch norm
    x = np.zeros((1, 1, 10, 3), np.float32)
    x[0, 0, 5, :] = 1.0
    got = block(torch.from_numpy(x)).detach().numpy()[0, 0]
    # numpy reference of TF 'same': zero-pad (k-1)//2 = 1 before and k//2 = 2 after, correlate
    want = np.correlate(np.pad(x[0, 0, :, 0], (1, 2)), w, mode="valid")
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[6] == 1.0 and got[3] == 4.0


def test_batch_norm_uses_moving_statistics_and_tf_epsilon():
    net = mn.Musicnn()
    with torch.no_grad():
        bn = net.input_bn
        bn.weight.fill_(2.0)
        bn.bias.fill_(0.5)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(0.01)  # small, so that epsilon 1e-3 vs 1e-5 matters
    x = torch.linspace(-2, 2, 12).reshape(1, 1, 3, 4)
    want = (x.numpy() - 1.0) / np.sqrt(0.01 + 1e-3) * 2.0 + 0.5
    np.testing.assert_allclose(net.input_bn(x).detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_backend_sees_max_and_mean_interleaved_as_tf_flattens_them(rng):
    torch.manual_seed(0)
    net = mn.Musicnn(n_tags=5)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
        out = net(torch.from_numpy(rng.standard_normal((2, 24, 96)).astype(np.float32)))
    sd = {k: v.numpy().astype(np.float64) for k, v in net.state_dict().items()}

    def bn(x, name):
        return ((x - sd[f"{name}.running_mean"]) / np.sqrt(sd[f"{name}.running_var"] + 1e-3)
                * sd[f"{name}.weight"] + sd[f"{name}.bias"])

    mx, mean = out["max_pool"].numpy(), out["mean_pool"].numpy()
    flat = np.empty((2, 1506))
    flat[:, 0::2], flat[:, 1::2] = mx, mean  # [max_0, mean_0, max_1, mean_1, ...]
    h = np.maximum(bn(flat, "pool_bn") @ sd["dense.weight"].T + sd["dense.bias"], 0)
    pen = bn(h, "dense_bn")
    np.testing.assert_allclose(out["penultimate"].numpy(), pen, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["logits"].numpy(), pen @ sd["logits.weight"].T
                               + sd["logits.bias"], rtol=1e-4, atol=1e-4)


def _np_musicnn(x: np.ndarray, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """musicnn/models.py build_musicnn followed literally in NHWC numpy (float64)."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    names = iter(["batch_normalization"] + [f"batch_normalization_{i}" for i in range(1, 11)])
    convs = iter(["conv2d"] + [f"conv2d_{i}" for i in range(1, 8)])

    def bn(h):
        n = next(names)
        return ((h - t[f"{n}/moving_mean"]) / np.sqrt(t[f"{n}/moving_variance"] + 1e-3)
                * t[f"{n}/gamma"] + t[f"{n}/beta"])

    def conv_relu(h):  # 'valid' NHWC conv, kernel (kh, kw, in, out), then ReLU
        n = next(convs)
        k = t[f"{n}/kernel"]
        win = np.lib.stride_tricks.sliding_window_view(h, k.shape[:2], axis=(1, 2))
        return np.maximum(np.einsum("bhwcij,ijco->bhwo", win, k, optimize=True)
                          + t[f"{n}/bias"], 0)

    def pad_time(h, before, after):
        return np.pad(h, [(0, 0), (before, after), (0, 0), (0, 0)])

    inp = bn(x[..., None].astype(np.float64))
    front = [bn(conv_relu(pad_time(inp, 3, 3))).max(axis=2) for _ in range(2)]
    for k in (128, 64, 32):  # TF 'same': total k - 1, the smaller half before
        front.append(bn(conv_relu(pad_time(inp, (k - 1) // 2, k - 1 - (k - 1) // 2))).max(axis=2))
    fe = np.concatenate(front, axis=2)[..., None]  # (B, T, 561, 1)
    c1 = bn(conv_relu(pad_time(fe, 3, 3))).transpose(0, 1, 3, 2)
    c2 = bn(conv_relu(pad_time(c1, 3, 3))).transpose(0, 1, 3, 2) + c1
    c3 = bn(conv_relu(pad_time(c2, 3, 3))).transpose(0, 1, 3, 2) + c2
    feats = np.concatenate([fe, c1, c2, c3], axis=2)  # (B, T, 753, 1)
    mx, mean = feats.max(axis=1), feats.mean(axis=1)
    flat = np.concatenate([mx, mean], axis=2).reshape(len(x), -1)
    pen = bn(np.maximum(bn(flat) @ t["dense/kernel"] + t["dense/bias"], 0))
    logits = pen @ t["dense_1/kernel"] + t["dense_1/bias"]
    return {"max_pool": mx[..., 0], "mean_pool": mean[..., 0], "penultimate": pen,
            "logits": logits}


def test_port_matches_a_literal_numpy_transcription(ref, extractors):
    x = ref["patches"][[0, -1]]
    tensors = load_weights(shipped_weights("MTT_musicnn")[0])
    want = _np_musicnn(x, tensors)
    got = extractors["MTT_musicnn"].forward_patches(x)
    for key, value in want.items():
        scale = max(1.0, np.abs(value).max())
        np.testing.assert_allclose(got[key], value, rtol=0, atol=2e-5 * scale, err_msg=key)


# ----------------------------------------------------------------------------- the original

@pytest.mark.parametrize("model", MODELS)
def test_port_matches_the_original_tf_network(model, ref, extractors):
    ext = extractors[model]
    x = ref["patches"]
    got = ext.forward_patches(x)
    with torch.inference_mode():
        frames = ext.net(torch.from_numpy(x))
    got["timbral"] = frames["timbral"].amax(dim=2).numpy()
    got["temporal"] = frames["temporal"].amax(dim=2).numpy()
    for key in ("mean_pool", "max_pool", "penultimate", "logits", "tags", "timbral", "temporal"):
        want = ref[f"{model}/{key}"]
        assert np.isfinite(want).all()
        scale = max(1.0, np.abs(want).max())
        np.testing.assert_allclose(got[key], want, rtol=0, atol=2e-5 * scale,
                                   err_msg=f"{model} {key}")
    np.testing.assert_allclose(got["pool"], np.concatenate([got["max_pool"], got["mean_pool"]], 1))


def _reference_waves(ref):
    return [synth_clip(k) for k in SYNTH] + [ref["rendered_pcm16"].astype(np.float32) / 32768.0]


def test_preprocessing_and_tags_end_to_end_match_the_reference(ref, extractors):
    waves = _reference_waves(ref)
    for i, wave in enumerate(waves):
        rows = ref["clip_id"] == i
        np.testing.assert_allclose(extractors["MTT_musicnn"].patches(wave), ref["patches"][rows],
                                   rtol=0, atol=1e-6)
        for model in MODELS:
            np.testing.assert_allclose(extractors[model].tags(wave), ref[f"{model}/tags"][rows],
                                       rtol=0, atol=2e-5)
    ext = extractors["MTT_musicnn"]
    many = ext.embed_many(waves)
    want = np.concatenate([ref["MTT_musicnn/max_pool"], ref["MTT_musicnn/mean_pool"]], 1)
    for i, out in enumerate(many):
        np.testing.assert_allclose(out[:, 0], want[ref["clip_id"] == i], rtol=0,
                                   atol=2e-5 * np.abs(want).max())
    assert [len(m) for m in many] == [1, 1, 1, 1, 2]  # leftover frames dropped


# ----------------------------------------------------------------------------- the extractor

def test_loud_and_silent_input_stay_finite_unlike_the_original_float16_product(extractors):
    t = np.arange(MIN_SAMPLES + 5000) / 16000
    sine = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)  # full scale
    square = np.clip(4 * np.sign(np.sin(2 * np.pi * 220.0 * t)), -1, 1).astype(np.float32)
    import librosa

    mel = librosa.feature.melspectrogram(y=sine, sr=16000, hop_length=256, n_fft=512,
                                         n_mels=96, pad_mode="reflect").T
    with np.errstate(over="ignore"):
        original = np.log10(10000 * mel.astype(np.float16) + 1)  # the wheel's recipe
    assert not np.isfinite(original).all()
    for wave in (sine, square, np.zeros_like(sine)):
        assert np.isfinite(log_mel(wave)).all()
        for ext in extractors.values():
            assert np.isfinite(ext.embed(wave)).all() and np.isfinite(ext.tags(wave)).all()


def test_shortest_input_is_one_patch(extractors):
    ext = extractors["MTT_musicnn"]
    assert ext.min_samples == MIN_SAMPLES == 47616
    assert log_mel(np.zeros(MIN_SAMPLES, np.float32)).shape == (187, 96)
    assert log_mel(np.zeros(MIN_SAMPLES - 1, np.float32)).shape == (186, 96)
    assert ext.embed(np.zeros(MIN_SAMPLES, np.float32)).shape == (1, 1, 1506)
    with pytest.raises(ValueError, match="too short: .* needs at least 47616"):
        ext.embed(np.zeros(MIN_SAMPLES - 1, np.float32))
    with pytest.raises(ValueError, match="mono"):
        ext.embed(np.zeros((2, MIN_SAMPLES), np.float32))


def test_layers_tags_and_metadata(tmp_path, extractors, rng):
    wave = (0.1 * rng.standard_normal(2 * MIN_SAMPLES + 256)).astype(np.float32)
    ext = extractors["MTT_musicnn"]
    assert ext.tag_names == list(MTT_LABELS) and len(ext.tag_names) == 50
    assert ext.tag_names[:3] == ["guitar", "classical", "slow"] and ext.tag_names[-1] == "choral"
    assert extractors["MSD_musicnn"].tag_names[:2] == ["rock", "pop"] and len(MSD_LABELS) == 50
    tags = ext.tags(wave)
    assert tags.shape == (2, 50) and tags.dtype == np.float32 and ((tags > 0) & (tags < 1)).all()
    pool = ext.embed(wave)
    for layer, dim in (("mean_pool", 753), ("max_pool", 753), ("penultimate", 200)):
        other = get_extractor("musicnn", layer=layer, device="cpu")
        out = other.embed(wave)
        assert out.shape == (2, 1, dim) and other.layer_names(1) == [f"MTT_musicnn {layer}"]
        if layer == "max_pool":
            np.testing.assert_allclose(out[:, 0], pool[:, 0, :753], atol=1e-6)
        if layer == "mean_pool":
            np.testing.assert_allclose(out[:, 0], pool[:, 0, 753:], atol=1e-6)
    meta = ext.metadata()
    assert meta["weights_kind"] == "pretrained" and meta["model"] == "MTT_musicnn"
    assert meta["weights_sha256"] == provenance()["models"]["MTT_musicnn"]["sha256"]
    assert meta["source_wheel"] == "musicnn-0.1.0-py3-none-any.whl" and meta["layer"] == "pool"
    prints = {MusicnnExtractor(model=m, layer=lay).fingerprint
              for m in MODELS for lay in ("pool", "penultimate")}
    assert len(prints) == 4 and ext.fingerprint in prints
    (tmp_path / "w").mkdir()
    own = tmp_path / "w" / "mine.safetensors"
    shutil.copy(shipped_weights("MSD_musicnn")[0], own)
    (tmp_path / "w" / "MTBC_FIXTURE.txt").write_text("test")
    mine = MusicnnExtractor(weights=own)
    assert mine.metadata()["weights_kind"] == "fixture" and mine.fingerprint not in prints
    with pytest.raises(ValueError, match="layer must be one of"):
        MusicnnExtractor(layer="cnn1")
    with pytest.raises(ValueError, match="model must be one of"):
        MusicnnExtractor(model="MTT_vgg")


def test_fingerprint_tracks_the_preprocessing_version(monkeypatch):
    import mtbc.extractors.musicnn as mod

    before = MusicnnExtractor().fingerprint
    monkeypatch.setattr(mod, "PREPROCESSING_VERSION", mod.PREPROCESSING_VERSION + 1)
    assert MusicnnExtractor().fingerprint != before


def test_layer_tags_caches_the_models_own_tag_probabilities():
    from mtbc.extractors import get_extractor

    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 * 7)).astype(np.float32)
    tagger = get_extractor("musicnn", model="MTT_musicnn", layer="tags", device="cpu")
    emb = tagger.embed(wave)
    assert emb.shape == (2, 1, 50) and ((emb >= 0) & (emb <= 1)).all()
    np.testing.assert_allclose(emb[:, 0], tagger.tags(wave), rtol=1e-6)
    assert tagger.fingerprint != get_extractor("musicnn", device="cpu").fingerprint
