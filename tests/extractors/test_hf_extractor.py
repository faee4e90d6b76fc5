"""The hf extractor against a direct transformers forward pass of the same tiny checkpoints."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

pytest.importorskip("transformers")

from mtbc.extractors import (  # noqa: E402 - after the importorskip
    ExtractorConfigError,
    WeightsUnavailableError,
    get_extractor,
)
from mtbc.extractors.hf_fixtures import make_hf_snapshot  # noqa: E402

FAMILIES = ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper",
            "audio-spectrogram-transformer", "clap"]
CASES = [(f, "safetensors") for f in FAMILIES] + [(f, "bin") for f in ("wav2vec2", "whisper", "clap")]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {(f, fmt): make_hf_snapshot(root / f"{f}-{fmt}", f, weights_format=fmt, seed=3)
            for f, fmt in CASES}


def _wave(seconds, sr, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _reference(family, folder, chunks):
    """Per-layer time means of each chunk, computed the way transformers' docs run each model
    (one chunk at a time)."""
    import torch
    import transformers

    if family == "clap":
        model = transformers.ClapModel.from_pretrained(folder).eval()
        fe = transformers.ClapFeatureExtractor.from_pretrained(folder)
    elif family == "whisper":
        model = transformers.WhisperModel.from_pretrained(folder).encoder.eval()
        fe = transformers.WhisperFeatureExtractor.from_pretrained(folder)
    else:
        cls, fe_cls = {"audio-spectrogram-transformer": ("ASTModel", "ASTFeatureExtractor"),
                       "wav2vec2": ("Wav2Vec2Model", "Wav2Vec2FeatureExtractor"),
                       "hubert": ("HubertModel", "Wav2Vec2FeatureExtractor"),
                       "wavlm": ("WavLMModel", "Wav2Vec2FeatureExtractor"),
                       "data2vec-audio": ("Data2VecAudioModel", "Wav2Vec2FeatureExtractor")}[family]
        model = getattr(transformers, cls).from_pretrained(folder).eval()
        fe = getattr(transformers, fe_cls).from_pretrained(folder)
    out = []
    with torch.inference_mode():
        for chunk in chunks:
            if family == "clap":
                inputs = fe(chunk, sampling_rate=fe.sampling_rate, return_tensors="pt")
                o = model.audio_model(**inputs, output_hidden_states=True)
                joint = model.get_audio_features(**inputs).pooler_output
                out.append([h.mean(dim=(2, 3))[0] for h in o.hidden_states]
                           + [o.pooler_output[0], joint[0]])
                continue
            if family == "whisper":
                x = fe(chunk, sampling_rate=16000, return_tensors="pt").input_features
                frames = len(chunk) // 320  # 50 encoder frames per second of audio
            else:
                x = fe(chunk, sampling_rate=16000, return_tensors="pt").input_values
                frames = None
            o = model(x, output_hidden_states=True)
            states = [*o.hidden_states[:-1], o.last_hidden_state]
            out.append([s[0, :frames].mean(dim=0) for s in states])
    return out


@pytest.mark.parametrize(("family", "fmt"), CASES)
def test_embeddings_equal_a_direct_transformers_forward_layer_by_layer(snapshots, family, fmt):
    folder = snapshots[family, fmt]
    options = {"chunk_seconds": 1.5} if family in FAMILIES[:4] else {}
    ex = get_extractor("hf", model=str(folder), device="cpu", dtype="float32", **options)
    seconds = {"whisper": 10.0, "clap": 3.3, "audio-spectrogram-transformer": 2.8}.get(family, 3.2)
    wave = _wave(seconds, ex.sample_rate)
    out = ex.embed(wave)
    chunks = ex.chunks(wave)
    assert out.shape == (len(chunks), ex.n_layers, ex.hidden_size) and out.dtype == np.float32
    assert len(chunks) >= (1 if family == "whisper" else 2)
    for i, ref in enumerate(_reference(family, str(folder), chunks)):
        assert len(ref) == ex.n_layers
        for layer, (row, width) in enumerate(zip(ref, ex.layer_widths, strict=True)):
            np.testing.assert_allclose(out[i, layer, :width], row.numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{family} chunk {i} layer {layer}")
            assert not out[i, layer, width:].any()  # CLAP's narrower rows: zero padding
    meta = ex.metadata()
    assert meta["weights_kind"] == "fixture" and meta["licence"] == "unknown: see the model card"
    assert len(ex.layer_names()) == ex.n_layers


def test_whisper_10_s_clip_gives_the_frames_of_10_s_not_30(snapshots):
    ex = get_extractor("hf", model=str(snapshots["whisper", "safetensors"]), device="cpu")
    assert ex.chunk_samples == 30 * 16000
    assert ex.valid_frames(10 * 16000) == 500 and ex.valid_frames(30 * 16000) == 1500
    wave = _wave(10.0, 16000, seed=4)
    trimmed = ex.embed(wave)[0]
    import torch
    import transformers

    folder = str(snapshots["whisper", "safetensors"])
    model = transformers.WhisperModel.from_pretrained(folder).encoder.eval()
    x = transformers.WhisperFeatureExtractor.from_pretrained(folder)(
        wave, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        states = model(x, output_hidden_states=True).hidden_states
    assert states[0].shape[1] == 1500
    np.testing.assert_allclose(trimmed[0], states[0][0, :500].mean(0).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(trimmed[0], states[0][0].mean(0).numpy(), atol=1e-3)  # 30 s differs


def test_batching_and_precision_options(snapshots):
    folder = str(snapshots["whisper", "safetensors"])
    waves = [_wave(s, 16000, seed=s) for s in (2, 5, 31)]
    one = get_extractor("hf", model=folder, device="cpu", batch_size=1).embed_many(waves)
    three = get_extractor("hf", model=folder, device="cpu", batch_size=3).embed_many(waves)
    assert [a.shape[0] for a in one] == [1, 1, 2]
    for a, b in zip(one, three, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    bf16 = get_extractor("hf", model=folder, device="cpu", dtype="bfloat16")
    assert bf16.precision_mode == "autocast"
    assert bf16.fingerprint != get_extractor("hf", model=folder, device="cpu").fingerprint


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_bin_holding_a_pickle_payload_runs_nothing(snapshots, tmp_path):
    import torch

    folder = shutil.copytree(snapshots["wav2vec2", "bin"], tmp_path / "evil")
    marker = tmp_path / "payload-ran"
    torch.save({"masked_spec_embed": _Payload(marker)}, folder / "pytorch_model.bin")
    with open(tmp_path / "plain.pkl", "wb") as f:  # the crafted payload does run when unpickled
        pickle.dump(_Payload(tmp_path / "control"), f)
    with open(tmp_path / "plain.pkl", "rb") as f:
        pickle.load(f)  # noqa: S301 - the control: proves the payload is live
    assert (tmp_path / "control").exists()
    ex = get_extractor("hf", model=str(folder), device="cpu")
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        ex.embed(_wave(1.0, 16000))
    assert not marker.exists()


def test_offline_missing_hub_id_fails_with_one_line_naming_model_and_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(WeightsUnavailableError) as info:
        get_extractor("hf", model="mtbc-test/no-such-encoder")
    assert "mtbc-test/no-such-encoder" in str(info.value)
    fix = info.value.fix
    assert "\n" not in fix and "mtbc-test/no-such-encoder" in fix
    assert "connect to the internet once" in fix and "local folder" in fix


def test_unsupported_families_are_refused_with_the_table(tmp_path, snapshots):
    import json

    folder = shutil.copytree(snapshots["hubert", "safetensors"], tmp_path / "bert")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ExtractorConfigError) as info:
        get_extractor("hf", model=str(folder))
    message = str(info.value)
    assert "'bert' is not supported" in message and "\n" not in message
    for name in ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "AST", "CLAP"):
        assert name in message
    with pytest.raises(ExtractorConfigError, match="native window"):
        get_extractor("hf", model=str(snapshots["whisper", "safetensors"]), chunk_seconds=10.0)
    with pytest.raises(ExtractorConfigError, match="needs model_type clap"):
        get_extractor("clap", model=str(snapshots["whisper", "safetensors"]))


def test_fingerprint_follows_contents_not_location(snapshots, tmp_path):
    a = snapshots["hubert", "safetensors"]
    b = shutil.copytree(a, tmp_path / "copy")
    c = make_hf_snapshot(tmp_path / "other", "hubert", seed=9)
    fp = [get_extractor("hf", model=str(p)).fingerprint for p in (a, b, c)]
    assert fp[0] == fp[1] != fp[2] and fp[0].startswith("hf-")
    assert get_extractor("hf", model=str(a), chunk_seconds=2.0).fingerprint != fp[0]


def test_clap_text_embeddings_equal_transformers_and_share_the_joint_space(snapshots):
    import torch
    import transformers

    folder = str(snapshots["clap", "safetensors"])
    ex = get_extractor("clap", model=folder, device="cpu")
    prompts = ["This is a jazz song.", "This is a rock song.", "calm piano"]
    text = ex.embed_text(prompts)
    model = transformers.ClapModel.from_pretrained(folder).eval()
    tokens = transformers.AutoTokenizer.from_pretrained(folder)(prompts, padding=True,
                                                                return_tensors="pt")
    with torch.inference_mode():
        ref = model.get_text_features(**tokens).pooler_output.numpy()
    assert text.shape == (3, ex.projection_dim)
    np.testing.assert_allclose(text, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    audio = ex.joint(ex.embed(_wave(2.0, 48000)))
    assert audio.shape == (1, ex.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="needs a CLAP model"):
        get_extractor("hf", model=str(snapshots["hubert", "safetensors"])).embed_text(["x"])


def test_zero_shot_and_text_search_through_the_clap_extractor(snapshots):
    from mtbc.zeroshot import ZeroShotClassifier, search_by_text, track_embeddings

    ex = get_extractor("clap", model=str(snapshots["clap", "bin"]), device="cpu")
    waves = [_wave(s, 48000, seed=i) for i, s in enumerate((1.0, 2.5, 3.0))]
    segments = ex.embed_many(waves)
    index = np.concatenate([np.full(len(s), i) for i, s in enumerate(segments)])
    tracks = track_embeddings(np.concatenate(segments), index, 3, width=ex.projection_dim)
    clf = ZeroShotClassifier.from_extractor(ex, ["jazz", "rock"])
    assert clf.prompts == ["This is a jazz song.", "This is a rock song."]
    np.testing.assert_allclose(clf.decision_function(tracks),
                               tracks @ ex.embed_text(clf.prompts).T, rtol=1e-5, atol=1e-6)
    hits = search_by_text(ex, "calm piano", tracks, ["a", "b", "c"], k=3)
    assert sorted(hits.track_id) == ["a", "b", "c"]


def test_licences_as_the_model_cards_state_them():
    from mtbc.extractors.mert_hub import licence_of

    assert licence_of("m-a-p/MERT-v1-95M") == "cc-by-nc-4.0"
    assert licence_of("laion/larger_clap_music") == "apache-2.0"
    assert licence_of("someone/unknown-model") == "unknown: see the model card"


def test_the_zoo_params_file_is_valid_and_names_eight_models():
    from pathlib import Path

    from mtbc.reports.params import load_params

    params = load_params(Path(__file__).resolve().parents[2] / "params" / "zoo.yaml")
    names = {label: o["name"] for label, o in params["extractors"].items()}
    assert names == {"mert-95m": "mert", "clap-music": "clap", "whisper-base": "hf",
                     "ast": "hf", "wav2vec2-base": "hf", "vggish": "vggish",
                     "musicnn": "musicnn", "mfcc": "mfcc"}


def test_clap_truncation_follows_the_model_when_the_preprocessor_disagrees(snapshots, tmp_path):
    import json

    folder = shutil.copytree(snapshots["clap", "safetensors"], tmp_path / "clap")
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**pre, "truncation": "fusion"}))
    with pytest.warns(UserWarning, match="truncation 'fusion' does not fit.*using 'rand_trunc'"):
        ex = get_extractor("clap", model=str(folder), device="cpu")
    assert ex.clap_truncation == "rand_trunc" and ex.metadata()["clap_truncation"] == "rand_trunc"
    good = get_extractor("clap", model=str(snapshots["clap", "safetensors"]), device="cpu")
    wave = _wave(1.5, 48000)
    np.testing.assert_allclose(ex.embed(wave), good.embed(wave), rtol=1e-5, atol=1e-6)


def test_cli_offline_missing_hub_id_is_one_line_exit_2(tmp_path, monkeypatch, tone, capsys):
    import huggingface_hub.constants as hf_constants

    from mtbc.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    tone(tmp_path / "music" / "a" / "x.wav", seconds=1.0)
    code = main(["extract", str(tmp_path / "music"), "-e", "hf", "-o", "model=mtbc-test/absent",
                 "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    assert "mtbc-test/absent" in err and "connect to the internet once" in err


def test_old_weight_norm_names_load_like_new_ones(snapshots, tmp_path):
    """wav2vec2-era .bin files name the positional conv weight_g / weight_v."""
    import torch

    from mtbc.extractors.fixtures import old_weight_norm_names

    folder = shutil.copytree(snapshots["wav2vec2", "bin"], tmp_path / "old")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    old = old_weight_norm_names(state)
    assert any(k.endswith("weight_g") for k in old) and not any(k.endswith("weight_g") for k in state)
    torch.save(old, folder / "pytorch_model.bin")
    wave = _wave(2.0, 16000)
    new = get_extractor("hf", model=str(snapshots["wav2vec2", "bin"])).embed(wave)
    np.testing.assert_array_equal(get_extractor("hf", model=str(folder)).embed(wave), new)
