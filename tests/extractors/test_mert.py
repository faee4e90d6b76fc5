"""MERT-v1 extractor on tiny random-weight snapshots in the real hub layout (no network)."""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError

import mtbc.extractors.mert_hub as mert_module
from mtbc.extractors import get_extractor
from mtbc.extractors.base import WeightsUnavailableError
from mtbc.extractors.fixtures import DECOY_MARKER, make_mert_model, make_mert_snapshot, mert_config
from mtbc.extractors.mert import MertExtractor, build_model, hubert_config
from mtbc.extractors.mert_hub import ALLOW_PATTERNS, DEFAULT_REVISIONS, DOWNLOAD_STEPS, MODEL_95M

SR = 24000


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("mert")
    return {(v, f): make_mert_snapshot(root / f"{v}-{f}", variant=v, weights_format=f)
            for v in ("95m", "330m") for f in ("bin", "safetensors")}


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    gain, offset = 0.2 + 0.3 * rng.random(), 0.2 * rng.standard_normal()  # differ per seed, so
    # normalising a batch as a whole instead of chunk by chunk would show
    wave = gain * (np.sin(2 * np.pi * 220 * (1 + seed) * t) + 0.3 * rng.standard_normal(len(t)))
    return (wave + offset).astype(np.float32)


def _reference(variant: str, chunk: np.ndarray, *, do_normalize: bool = True):
    """Hidden states of the in-memory model the snapshot was written from, fed through
    transformers' own Wav2Vec2FeatureExtractor."""
    from transformers import Wav2Vec2FeatureExtractor

    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0,
                                  do_normalize=do_normalize, return_attention_mask=True)
    x = fe(chunk, sampling_rate=SR, return_tensors="pt").input_values
    with torch.inference_mode():
        return make_mert_model(variant)(x, output_hidden_states=True)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
@pytest.mark.parametrize("variant", ["95m", "330m"])
def test_snapshot_loads_with_every_key_matched_and_reproduces_the_model(snapshots, variant, fmt):
    # build_model raises on any missing or unexpected key; the outputs must then equal the
    # model the snapshot was written from (old weight_g/weight_v names mapped correctly).
    ex = MertExtractor(model=snapshots[variant, fmt], chunk_seconds=2.0)
    wave = _wave(2.0)
    got = ex.embed(wave)
    ref = _reference(variant, wave)
    want = [h.mean(1)[0] for h in ref.hidden_states[:-1]] + [ref.last_hidden_state.mean(1)[0]]
    np.testing.assert_allclose(got[0], torch.stack(want).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant,n_layers", [("95m", 3), ("330m", 4)])
def test_shape_is_chunks_by_layers_by_hidden(snapshots, variant, n_layers):
    ex = get_extractor("mert", model=str(snapshots[variant, "bin"]), chunk_seconds=1.0)
    out = ex.embed(_wave(3.5))
    assert out.shape == (3, n_layers, 32) and out.dtype == np.float32
    assert ex.sample_rate == SR and ex.min_samples == 400
    assert len(ex.layer_names()) == n_layers == ex.metadata()["n_layers"]


@pytest.mark.parametrize("variant,layers,hidden,params", [("95m", 12, 768, 94.4e6),
                                                          ("330m", 24, 1024, 315.4e6)])
def test_full_size_configs_give_the_real_architectures(variant, layers, hidden, params):
    from transformers import HubertModel

    config = hubert_config(mert_config(variant, tiny=False))
    with torch.device("meta"):
        model = HubertModel(config)
    n = sum(p.numel() for p in model.parameters())
    assert (config.num_hidden_layers, config.hidden_size) == (layers, hidden)
    assert config.do_stable_layer_norm == (variant == "330m")
    assert abs(n - params) / params < 0.01, f"{n / 1e6:.1f}M parameters"


def test_last_layer_is_time_mean_of_last_hidden_state_after_final_norm(snapshots):
    ex = MertExtractor(model=snapshots["330m", "bin"], chunk_seconds=2.0)
    wave = _wave(2.0, seed=1)
    got = ex.embed(wave)[0]
    ref = _reference("330m", wave)
    np.testing.assert_allclose(got[-1], ref.last_hidden_state.mean(1)[0].numpy(), rtol=1e-4, atol=1e-5)
    # transformers 5.x's hidden_states[-1] is before the final layer norm: not what we return
    assert not np.allclose(got[-1], ref.hidden_states[-1].mean(1)[0].numpy(), atol=1e-3)


def test_frames_follow_75_per_second(snapshots):
    ex = MertExtractor(model=snapshots["95m", "bin"]).load()
    seen = []
    hook = ex.model.encoder.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    try:
        ex.embed(_wave(2.0))
        ex.embed(np.zeros(400, np.float32))
    finally:
        hook.remove()
    assert seen == [(2 * SR - 400) // 320 + 1, 1] == [149, 1]


def test_long_wave_equals_each_chunk_alone_and_short_remainder_is_dropped(snapshots):
    ex = MertExtractor(model=snapshots["95m", "bin"], chunk_seconds=2.0, batch_size=2)
    wave = _wave(5.5, seed=2)
    got = ex.embed(wave)
    pieces = [wave[:2 * SR], wave[2 * SR:4 * SR], wave[4 * SR:]]
    assert got.shape[0] == 3
    for row, piece in zip(got, pieces, strict=True):
        np.testing.assert_allclose(row, ex.embed(piece)[0], rtol=1e-4, atol=1e-5)
    assert ex.embed(wave[:int(4.5 * SR)]).shape[0] == 2  # 0.5 s remainder < 1 s: dropped
    assert ex.embed(wave[:int(0.5 * SR)]).shape[0] == 1  # shorter than a chunk: one chunk


def test_embed_many_batches_across_tracks_and_equals_single(snapshots):
    # very different levels: the model is nearly invariant to gain and offset (group norm
    # after a bias-free conv) except near its eps, so a quiet track shows any cross-talk
    waves = [g * _wave(s, seed=i) for i, (s, g) in enumerate([(4.0, 1.0), (2.0, 1e-4),
                                                              (3.5, 10.0), (6.0, 1e-3)])]
    single = MertExtractor(model=snapshots["330m", "bin"], chunk_seconds=2.0, batch_size=1)
    batched = MertExtractor(model=snapshots["330m", "bin"], chunk_seconds=2.0, batch_size=4).load()
    sizes = []
    hook = batched.model.register_forward_pre_hook(lambda m, a: sizes.append(tuple(a[0].shape)))
    try:
        many = batched.embed_many(waves)
    finally:
        hook.remove()
    assert sizes == [(4, 2 * SR), (3, 2 * SR), (1, int(1.5 * SR))]
    for w, m in zip(waves, many, strict=True):
        np.testing.assert_allclose(m, single.embed(w), rtol=1e-4, atol=1e-5)


def test_ten_minute_track_runs_in_bounded_batches(tmp_path):
    # narrow conv front end (8 channels) to keep 14.4 M samples cheap
    folder = make_mert_snapshot(tmp_path / "narrow", conv_dim=[8] * 7, weights_format="safetensors")
    ex = MertExtractor(model=folder, chunk_seconds=30.0, batch_size=2).load()
    sizes = []
    hook = ex.model.register_forward_pre_hook(lambda m, a: sizes.append(tuple(a[0].shape)))
    try:
        out = ex.embed(np.tile(_wave(1.0), 600))
    finally:
        hook.remove()
    assert out.shape == (20, 3, 32) and np.isfinite(out).all()
    assert sizes == [(2, 30 * SR)] * 10


def test_too_short_or_bad_input_is_refused(snapshots):
    ex = MertExtractor(model=snapshots["95m", "bin"])
    with pytest.raises(ValueError, match="too short: 399 samples, mert needs at least 400"):
        ex.embed(np.zeros(399, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        ex.embed(np.full(1000, np.nan, np.float32))
    with pytest.raises(ValueError, match="mono"):
        ex.embed(np.zeros((2, 1000), np.float32))


def test_normalisation_matches_wav2vec2_feature_extractor_row_by_row():
    from transformers import Wav2Vec2FeatureExtractor

    from mtbc.extractors.mert import zero_mean_unit_var

    rows = np.stack([g * _wave(1.0, seed=i) for i, g in enumerate([1e-4, 1.0, 30.0])])
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True)
    want = np.stack([fe(r, sampling_rate=SR).input_values[0] for r in rows])
    got = zero_mean_unit_var(torch.from_numpy(rows)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_do_normalize_false_feeds_the_raw_wave(tmp_path):
    folder = make_mert_snapshot(tmp_path / "raw", do_normalize=False)
    ex = MertExtractor(model=folder, chunk_seconds=2.0)
    wave = 1e-4 * _wave(2.0, seed=3)  # quiet, so that normalising would change the output
    ref = _reference("95m", wave, do_normalize=False)
    got = ex.embed(wave)[0, -1]
    np.testing.assert_allclose(got, ref.last_hidden_state.mean(1)[0].numpy(), rtol=1e-4, atol=1e-5)
    normalised = _reference("95m", wave, do_normalize=True).last_hidden_state.mean(1)[0].numpy()
    assert not np.allclose(got, normalised, atol=1e-3)
    assert ex.metadata()["do_normalize"] is False


def test_prefixed_checkpoint_keys_load(tmp_path):
    folder = make_mert_snapshot(tmp_path / "p", key_prefix="mert_model.", weights_format="safetensors")
    assert MertExtractor(model=folder).load().model is not None


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    folder = make_mert_snapshot(tmp_path / "k")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state.pop("encoder.layer_norm.bias")
    state["head.weight"] = torch.zeros(3)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"1 missing keys \['encoder.layer_norm.bias'\], "
                                         r"1 unexpected keys \['head.weight'\]"):
        build_model(mert_config("95m"), [folder / "pytorch_model.bin"])


@pytest.mark.parametrize("flag", ["feature_extractor_cqt", "deepnorm"])
def test_cqt_and_deepnorm_configs_are_refused(tmp_path, flag):
    folder = make_mert_snapshot(tmp_path / flag, **{flag: True})
    with pytest.raises(ValueError, match=f"{flag}=true.*HubertModel"):
        MertExtractor(model=folder)


def test_remote_code_decoys_are_never_executed(snapshots):
    folder = snapshots["95m", "bin"]
    assert (folder / "modeling_MERT.py").exists()
    ex = MertExtractor(model=folder)
    ex.embed(_wave(1.0))
    assert not (folder / DECOY_MARKER).exists()


# ----------------------------------------------------------------------------- the hub path

@pytest.fixture
def fake_hub(tmp_path, monkeypatch, snapshots):
    """Replace snapshot_download by a copy from local fixtures into a hub-layout cache."""
    import huggingface_hub

    calls = []
    sources = {MODEL_95M: snapshots["95m", "bin"], "m-a-p/MERT-v1-330M": snapshots["330m", "bin"]}

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None,
                          local_files_only=False, **kwargs):
        commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
        dest = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
        if local_files_only:  # the cache: what earlier downloads left
            if not (dest.is_dir() and any(fnmatch.fnmatch(f.name, p) for f in dest.iterdir()
                                          for p in allow_patterns)):
                raise LocalEntryNotFoundError(f"{repo_id} not cached")
            return str(dest)
        calls.append(dict(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns, **kwargs))
        dest.mkdir(parents=True, exist_ok=True)
        for f in sources[repo_id].iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy(f, dest / f.name)
        return str(dest)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(mert_module, "hub_reachable", lambda timeout=3.0: True)
    return calls


def test_a_cached_snapshot_is_used_without_the_network(fake_hub, monkeypatch):
    MertExtractor(model=MODEL_95M)
    n_online = len(fake_hub)
    monkeypatch.setattr(mert_module, "hub_reachable", lambda timeout=3.0: pytest.fail(
        "the network was asked although the cache holds the snapshot"))
    ex = MertExtractor(model=MODEL_95M)
    assert len(fake_hub) == n_online and ex.snapshot.weights


def test_offline_and_uncached_fails_at_once_with_a_one_line_fix(fake_hub, monkeypatch):
    monkeypatch.setattr(mert_module, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError) as info:
        MertExtractor(model=MODEL_95M)
    assert fake_hub == []  # no download was attempted, so no retries
    assert "\n" not in info.value.fix and "connect to the internet once" in info.value.fix


def test_hub_download_never_fetches_python_files(fake_hub):
    ex = MertExtractor(model=MODEL_95M, chunk_seconds=2.0)
    # the fixture repo holds pytorch_model.bin only: safetensors are tried first, then the .bin
    assert fake_hub == [dict(repo_id=MODEL_95M, revision=DEFAULT_REVISIONS[MODEL_95M],
                             allow_patterns=list(p)) for p in DOWNLOAD_STEPS]
    assert not any(fnmatch.fnmatch(name, p) for p in ALLOW_PATTERNS
                   for name in ("modeling_MERT.py", "configuration_MERT.py"))
    assert all(set(p) <= set(ALLOW_PATTERNS) for p in DOWNLOAD_STEPS)
    assert not list(ex.snapshot.folder.glob("*.py"))
    assert ex.embed(_wave(2.0)).shape == (1, 3, 32)
    meta = ex.metadata()
    assert meta["model"] == MODEL_95M and meta["commit"] == ex.snapshot.folder.name
    assert len(meta["commit"]) == 40


def test_fingerprint_changes_with_everything_that_changes_outputs(fake_hub, tmp_path):
    def fp(**options):
        return MertExtractor(**{"model": MODEL_95M, **options}).fingerprint

    base = fp()
    assert fp() == base
    assert fp(batch_size=4) == base and fp(device="cpu") == base  # outputs unchanged
    changed = [fp(revision="v2"), fp(model="m-a-p/MERT-v1-330M"), fp(dtype="bfloat16"),
               fp(chunk_seconds=10.0),
               fp(model=make_mert_snapshot(tmp_path / "n", do_normalize=False))]
    assert len({base, *changed}) == len(changed) + 1
    # a local folder is identified by its contents, not its location
    a = make_mert_snapshot(tmp_path / "a", seed=5)
    b = shutil.copytree(a, tmp_path / "b")
    c = make_mert_snapshot(tmp_path / "c", seed=6)
    assert fp(model=a) == fp(model=b) != fp(model=c)


def test_offline_without_cache_raises_a_fixable_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "empty-hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(WeightsUnavailableError) as info:
        MertExtractor(model="mtbc-test/no-such-mert", revision="main")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for needed in ("mtbc-test/no-such-mert", str(cache), "connect to the internet once",
                   "HF_HUB_CACHE", "model=<folder>", "config.json", "preprocessor_config.json",
                   "pytorch_model.bin"):
        assert needed in message, f"{needed!r} missing from: {message}"


def test_missing_local_folder_or_files_is_a_fixable_error(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="neither an existing folder"):
        MertExtractor(model=str(tmp_path / "nowhere"))
    folder = make_mert_snapshot(tmp_path / "noweights")
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(WeightsUnavailableError, match="missing .*model.safetensors or pytorch_model.bin"):
        MertExtractor(model=folder)


def test_analytic_flops_match_design_figures():
    from mtbc.extractors.memory import mert_forward_flops

    assert mert_forward_flops(mert_config("95m", tiny=False), 30 * SR) == pytest.approx(0.81e12, rel=0.01)
    assert mert_forward_flops(mert_config("330m", tiny=False), 30 * SR) == pytest.approx(2.1e12, rel=0.01)


def test_hub_repo_with_both_formats_downloads_safetensors_only(fake_hub, snapshots, tmp_path,
                                                                monkeypatch):
    both = tmp_path / "both"
    shutil.copytree(snapshots["95m", "bin"], both)
    shutil.copy(next(snapshots["95m", "safetensors"].glob("*.safetensors")), both)
    import huggingface_hub

    real = huggingface_hub.snapshot_download
    fake_hub.clear()

    def with_both(repo_id, **kwargs):
        dest = Path(real(repo_id, **kwargs))
        for f in both.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in kwargs["allow_patterns"]):
                shutil.copy(f, dest / f.name)
        return str(dest)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", with_both)
    ex = MertExtractor(model=MODEL_95M, chunk_seconds=2.0)
    assert len(fake_hub) == 1 and "*.safetensors" in fake_hub[0]["allow_patterns"]
    assert [w.name for w in ex.snapshot.weights] == ["model.safetensors"]
