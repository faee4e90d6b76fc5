"""VGGish extractor: faithful to torchvggish / TF VGGish on random full-size weights, offline."""

from __future__ import annotations

import os
import urllib.error

import numpy as np
import pytest
import torch
from torchvggish import vggish_input
from torchvggish.torchvggish import VGG, make_layers

from mtbc.data.audio import AudioWarning
from mtbc.extractors import get_extractor
from mtbc.extractors.fixtures import (
    PCA_NAME,
    WEIGHTS_NAME,
    make_vggish_weights,
    random_pca_params,
    save_pca_params,
)
from mtbc.extractors.vggish import (
    EXAMPLE_SAMPLES,
    PCA_PARAMS_URL,
    WEIGHTS_URL,
    VGGishExtractor,
    WeightsFormatError,
    WeightsUnavailableError,
    load_pca_params,
    load_vggish_state_dict,
    postprocess_embeddings,
    vggish_flops_per_example,
)

SR = 16000


def sine(seconds: float, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Random full-size weights and PCA params under the upstream names."""
    return make_vggish_weights(tmp_path_factory.mktemp("vggish"), seed=0)


@pytest.fixture(scope="module")
def extractors(files):
    weights, pca = files
    made = {}

    def get(postprocess="none", final_relu=False):
        key = (postprocess, final_relu)
        if key not in made:
            made[key] = VGGishExtractor(weights=weights, pca_params=pca, postprocess=postprocess,
                                        final_relu=final_relu, device="cpu", batch_size=4)
        return made[key]
    return get


@pytest.fixture(scope="module")
def clip_examples():
    """torchvggish's own log-mel examples of a 3.5 s noise clip (3 examples)."""
    wave = noise(3.5)
    with torch.no_grad():
        ex = vggish_input.waveform_to_examples(wave, SR).detach()
    return wave, ex


def reference_vgg(weights_path) -> VGG:
    model = VGG(make_layers(), postprocess=False)
    model.load_state_dict(torch.load(weights_path, weights_only=True))
    return model.eval()


def test_final_relu_false_equals_network_without_its_last_relu(files, extractors, clip_examples):
    wave, ex = clip_examples
    model = reference_vgg(files[0])
    with torch.no_grad():
        x = model.features(ex)
        x = x.permute(0, 2, 3, 1).reshape(len(ex), -1)  # TF's NHWC flatten order
        expected = model.embeddings[:5](x).numpy()  # Linear, ReLU, Linear, ReLU, Linear
    got = extractors().embed(wave)
    assert got.shape == (3, 1, 128) and got.dtype == np.float32
    assert (got < 0).any(), "without the final ReLU the embedding must take negative values"
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_final_relu_true_equals_torchvggish_vgg(files, extractors, clip_examples):
    wave, ex = clip_examples
    with torch.no_grad():
        expected = reference_vgg(files[0])(ex).numpy()
    got = extractors(final_relu=True).embed(wave)
    assert (got >= 0).all()
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_logmel_of_1khz_sine_peaks_in_the_band_holding_1khz(extractors):
    wave = sine(2.0)
    ex = extractors().examples(wave)
    assert ex.shape == (2, 96, 64) and ex.dtype == np.float32
    np.testing.assert_array_equal(ex, vggish_input.waveform_to_examples(wave, SR, False)
                                  .astype(np.float32))
    # HTK mel, 64 triangular bands between 125 and 7500 Hz: band i has centre edges[i + 1].
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    holding = np.flatnonzero((lower < mel(1000.0)) & (mel(1000.0) < upper))
    expected = holding[np.argmin(np.abs(centre[holding] - mel(1000.0)))]
    peak = ex.mean(axis=(0, 1)).argmax()
    assert peak == expected, f"1 kHz peaks in band {peak}, expected band {expected}"


def tf_postprocess(raw: np.ndarray, vecs: np.ndarray, means: np.ndarray) -> np.ndarray:
    """TF's vggish_postprocess.Postprocessor.postprocess, written out."""
    pca = np.dot(vecs, raw.T - means.reshape(-1, 1)).T
    return ((np.clip(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def test_pca_uint8_equals_tf_formula_elementwise(files, extractors, clip_examples):
    wave, _ = clip_examples
    raw = extractors().embed(wave)[:, 0]
    got = extractors("pca_uint8").embed(wave)[:, 0]
    vecs, means = load_pca_params(files[1])
    expected = tf_postprocess(raw.astype(np.float32), vecs, means)
    assert 0 < (expected == 0).sum() + (expected == 255).sum() < expected.size
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_pca_uint8_truncates_where_torchvggish_rounds():
    eye, zero = torch.eye(128, dtype=torch.float64), torch.zeros(128, dtype=torch.float64)
    raw = torch.zeros(1, 128)
    raw[0, :3] = torch.tensor([100.7 / 63.75 - 2.0, 3.0, -3.0])  # 100.7 after scaling; clipped
    got = postprocess_embeddings(raw, eye, zero, "pca_uint8")
    assert got[0, :3].tolist() == [100.0, 255.0, 0.0]
    rounded = torch.round((raw.double().clamp(-2, 2) + 2) * 63.75)  # torchvggish
    assert rounded[0, 0] == 101.0 != got[0, 0]
    np.testing.assert_array_equal(got.numpy(), tf_postprocess(raw.numpy(), eye.numpy(),
                                                              zero.numpy()))


def test_pca_float_is_unclipped_whitened_pca(files, extractors, clip_examples):
    wave, _ = clip_examples
    raw = extractors().embed(wave)[:, 0].astype(np.float64)
    vecs, means = load_pca_params(files[1])
    got = extractors("pca").embed(wave)[:, 0]
    np.testing.assert_allclose(got, (raw - means) @ vecs.T, rtol=1e-5, atol=1e-5)


def test_single_example_keeps_its_batch_axis(extractors):
    got = extractors("pca_uint8").embed(sine(1.2))
    assert got.shape == (1, 1, 128) and got.dtype == np.float32


def test_clip_shorter_than_one_example_is_zero_padded_with_a_warning(extractors):
    ext = extractors()
    short = sine(0.5)
    with pytest.warns(AudioWarning, match="zero-padded"):
        got = ext.embed(short)
    padded = np.concatenate([short, np.zeros(EXAMPLE_SAMPLES - len(short), np.float32)])
    np.testing.assert_array_equal(got, ext.embed(padded))
    assert got.shape == (1, 1, 128)
    with pytest.raises(ValueError, match="empty"):
        ext.embed(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        ext.embed(np.full(20000, np.nan, np.float32))


def test_embed_many_batches_across_tracks_like_embed(extractors):
    ext = extractors()
    waves = [noise(2.0, seed=1), noise(1.0, seed=2), noise(3.0, seed=3)]
    many = ext.embed_many(waves)
    assert [m.shape for m in many] == [(2, 1, 128), (1, 1, 128), (3, 1, 128)]
    for m, w in zip(many, waves, strict=True):
        np.testing.assert_allclose(m, ext.embed(w), rtol=1e-5, atol=1e-6)


def test_fingerprint_follows_every_output_changing_option(files, tmp_path):
    weights, pca = files
    fp = lambda **kw: VGGishExtractor(**{"weights": weights, "pca_params": pca,  # noqa: E731
                                         "device": "cpu", **kw}).fingerprint
    base = fp()
    copy = tmp_path / "elsewhere.pth"
    os.link(weights, copy)  # same bytes, another path
    assert fp(weights=copy) == base, "same weights content at another path"
    changed = tmp_path / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # last byte of the last bias tensor
    changed.write_bytes(data)
    assert load_vggish_state_dict(changed)["embeddings.4.bias"].shape == (128,)
    pca2 = save_pca_params(random_pca_params(seed=1), tmp_path / PCA_NAME)
    assert fp(pca_params=pca2) == base, "PCA file is not used without postprocessing"
    fps = {base, fp(weights=changed), fp(final_relu=True), fp(postprocess="pca"),
           fp(postprocess="pca_uint8"), fp(postprocess="pca", pca_params=pca2)}
    assert len(fps) == 6
    meta = VGGishExtractor(weights=weights, pca_params=pca, postprocess="pca").metadata()
    assert meta["weights_file"] == WEIGHTS_NAME and meta["pca_file"] == PCA_NAME
    assert len(meta["weights_sha256"]) == 64 and meta["final_relu"] is False


def test_missing_weights_offline_say_which_file_and_where(files, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected_path = tmp_path / "hub" / "checkpoints" / WEIGHTS_NAME
    with pytest.raises(WeightsUnavailableError) as err:
        VGGishExtractor(device="cpu")
    msg = str(err.value)
    assert WEIGHTS_NAME in msg and str(expected_path) in msg and WEIGHTS_URL in msg
    assert isinstance(err.value, RuntimeError)
    # Once the files sit in the hub cache, nothing is downloaded.
    expected_path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(files[0], expected_path)
    assert VGGishExtractor(device="cpu").weights_path == expected_path
    with pytest.raises(WeightsUnavailableError, match=PCA_NAME) as err:
        VGGishExtractor(device="cpu", postprocess="pca")
    assert PCA_PARAMS_URL in str(err.value)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        VGGishExtractor(weights=tmp_path / "nope.pth")


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pca_loader_runs_no_pickled_code(tmp_path):
    sentinel = tmp_path / "code-ran"
    bad = tmp_path / "evil.pth"
    torch.save({"pca_eigen_vectors": np.eye(128), "pca_means": _Payload(str(sentinel))}, bad,
               _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsFormatError, match="evil.pth"):
        load_pca_params(bad)
    assert not sentinel.exists()


def test_pca_loader_reads_every_upstream_layout(tmp_path):
    params = random_pca_params(seed=3)
    legacy = save_pca_params(params, tmp_path / "a.pth")  # numpy 1.x names, legacy format
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy.read_bytes()
    modern = save_pca_params(params, tmp_path / "b.pth", numpy1_names=False)
    np.savez(tmp_path / "vggish_pca_params.npz", **params)  # TF's file
    for path in (legacy, modern, tmp_path / "vggish_pca_params.npz"):
        vecs, means = load_pca_params(path)
        np.testing.assert_array_equal(vecs, params["pca_eigen_vectors"])
        np.testing.assert_array_equal(means, params["pca_means"])


def test_weights_loader_is_strict(tmp_path):
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "extra": torch.zeros(1)}, partial)
    with pytest.raises(WeightsFormatError, match="embeddings.4.bias") as err:
        load_vggish_state_dict(partial)
    assert "extra" in str(err.value)


def test_registry_and_flop_count(files):
    ext = get_extractor("vggish", weights=files[0], device="cpu")
    assert isinstance(ext, VGGishExtractor) and ext.sample_rate == 16000
    assert ext.res_type == "kaiser_best"
    # 0.864 G multiply-adds: convs 796.3 M, linears 67.6 M.
    assert vggish_flops_per_example() == 2 * (796_262_400 + 67_633_152)
    with pytest.raises(ValueError, match="postprocess"):
        VGGishExtractor(weights=files[0], postprocess="uint8")
