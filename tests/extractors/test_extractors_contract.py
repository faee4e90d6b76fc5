"""One contract for every extractor (``docs/extractors.md``), parametrised over the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtbc.extractors import (
    EXTRACTORS,
    available_extractors,
    bench_keys,
    extractor_class,
    get_extractor,
    register_extractor,
)
from mtbc.extractors.fixtures import (
    make_mert_model,
    make_mert_snapshot,
    make_vggish_weights,
    mert_preprocessor,
)
from mtbc.extractors.hf_fixtures import make_hf_snapshot


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    weights, pca = make_vggish_weights(root / "vggish")
    return {"mert": make_mert_snapshot(root / "mert", variant="95m", tiny=True),
            "weights": weights, "pca": pca, "hf": make_hf_snapshot(root / "hubert", "hubert"),
            "clap": make_hf_snapshot(root / "clap", "clap")}


def _build(name, files, **extra):
    options = {"mert": {"model": str(files["mert"]), "chunk_seconds": 2.0},
               "vggish": {"weights": str(files["weights"]), "pca_params": str(files["pca"])},
               "mfcc": {}, "musicnn": {"device": "cpu"},
               "hf": {"model": str(files["hf"]), "chunk_seconds": 2.0},
               "clap": {"model": str(files["clap"])}}[name]
    return get_extractor(name, **{**options, **extra})


#: An option of each extractor that changes its outputs.
CHANGING_OPTION = {"mert": {"chunk_seconds": 1.0}, "vggish": {"postprocess": "pca"},
                   "mfcc": {"n_mfcc": 13}, "musicnn": {"layer": "penultimate"},
                   "hf": {"chunk_seconds": 1.0}, "clap": {"dtype": "bfloat16"}}
#: What metadata()["weights_kind"] says: musicnn ships its pretrained weights (small, offline).
WEIGHTS_KIND = {"mfcc": "none", "musicnn": "pretrained"}


def test_registry_lists_the_built_in_extractors():
    assert available_extractors() == ["clap", "hf", "mert", "mfcc", "musicnn", "vggish"]
    with pytest.raises(ValueError, match="unknown extractor 'jukebox'"):
        get_extractor("jukebox")


@pytest.mark.parametrize("name", ["mert", "vggish", "mfcc", "musicnn", "hf", "clap"])
def test_extractor_contract(name, files, rng):
    ext = _build(name, files)
    assert isinstance(ext.sample_rate, int) and ext.sample_rate > 0
    assert isinstance(ext.fingerprint, str) and ext.fingerprint.startswith(name)
    assert ext.fingerprint == _build(name, files).fingerprint  # stable
    assert _build(name, files, **CHANGING_OPTION[name]).fingerprint != ext.fingerprint
    waves = [(0.1 * rng.standard_normal(int(s * ext.sample_rate))).astype(np.float32)
             for s in (3.5, 5.0)]
    out = ext.embed(waves[0])
    assert out.ndim == 3 and out.dtype == np.float32 and np.isfinite(out).all()
    assert out.shape[0] >= 1
    many = ext.embed_many(waves)
    np.testing.assert_allclose(many[0], out, rtol=1e-5, atol=1e-5)
    assert many[1].shape[1:] == out.shape[1:] and many[1].shape[0] >= out.shape[0]
    meta = ext.metadata()
    assert meta["fingerprint"] == ext.fingerprint and meta["sample_rate"] == ext.sample_rate
    assert meta["weights_kind"] == WEIGHTS_KIND.get(name, "fixture")
    assert len(ext.layer_names(out.shape[1])) == out.shape[1]


# ----------------------------------------------------------------------------- the registry

def _cli_extractor_choices() -> list[str]:
    from mtbc.cli import build_parser

    subparsers = build_parser()._subparsers._group_actions[0].choices
    (action,) = [a for a in subparsers["extract"]._actions if "--extractor" in a.option_strings]
    return list(action.choices)


@pytest.mark.parametrize("name", available_extractors())
def test_every_registered_extractor_is_constructible_and_offered_by_the_cli(name, files):
    ext = _build(name, files)
    assert type(ext) is extractor_class(name) and ext.name == name
    assert name in _cli_extractor_choices()
    keys = type(ext).bench_keys()
    assert keys and all(k in bench_keys() and bench_keys()[k] == name for k in keys)


def test_cli_offers_exactly_the_registry():
    assert sorted(_cli_extractor_choices()) == available_extractors()


def test_bench_refuses_a_key_outside_the_registry_and_lists_every_key(capsys):
    from mtbc.cli import main

    assert main(["bench", "--models", "jukebox"]) == 2
    err = capsys.readouterr().err
    assert "jukebox" in err and all(k in err for k in bench_keys())


def test_register_extractor_adds_checks_and_refuses_clashes():
    from mtbc.extractors.mfcc import MfccExtractor

    register_extractor("mfcc-test", "mtbc.extractors.mfcc:MfccExtractor")
    try:
        assert "mfcc-test" in available_extractors()
        assert extractor_class("mfcc-test") is MfccExtractor
        with pytest.raises(ValueError, match="already registered"):
            register_extractor("mfcc-test", "mtbc.extractors.vggish:VGGishExtractor")
    finally:
        del EXTRACTORS["mfcc-test"]
    with pytest.raises(ValueError, match="module:Class"):
        register_extractor("bad", "mtbc.extractors.mfcc")
    with pytest.raises(ValueError, match="not an Extractor subclass"):
        register_extractor("bad", dict)
    assert "bad" not in available_extractors()


# ----------------------------------------------------------------------------- cost model

@pytest.mark.parametrize("name", available_extractors())
def test_cost_model_of_every_extractor(name, files):
    ext = _build(name, files)
    clip = (0.1 * np.random.default_rng(0).standard_normal(4 * ext.sample_rate)).astype(np.float32)
    has_network = ext.network is not None
    assert (ext.n_params() > 0) == has_network
    flops = ext.flops_per_clip(clip)
    assert (flops is not None and flops > 0) == has_network
    assert ext.auto_dtype() in ("float32", "bfloat16", "float16")
    twin = ext.with_dtype("float32")  # the test suite keeps "auto" at float32 on CPUs
    assert twin.sample_rate == ext.sample_rate and ext.auto_dtype() == "float32"
    np.testing.assert_allclose(twin.embed(clip), ext.embed(clip), rtol=1e-6, atol=1e-6)
    ext.fit_batch(3, clip)
    assert type(ext).bench_key({}) in type(ext).bench_keys()
    assert all(Path(p).is_file() for p in ext.weights_files())


def test_mert_cost_model_follows_the_released_sizes(tmp_path):
    from mtbc.extractors.fixtures import mert_config
    from mtbc.extractors.memory import mert_chunk_bytes, mert_forward_flops
    from mtbc.extractors.mert import MertExtractor

    assert MertExtractor.bench_key({"model": "m-a-p/MERT-v1-95M"}) == "mert-95m"
    assert MertExtractor.bench_key({}) == "mert-330m"
    folder = tmp_path / "m"  # a local config alone decides the key: no weights needed
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(mert_config("95m", tiny=False)))
    assert MertExtractor.bench_key({"model": str(folder)}) == "mert-95m"
    tiny = MertExtractor.from_model(make_mert_model("95m"), config=mert_config("95m"),
                                    preprocessor=mert_preprocessor(), device="cpu",
                                    dtype="float32", chunk_seconds=1.0)
    clip = np.zeros(int(2.5 * tiny.sample_rate), np.float32)  # chunks of 1, 1 and 0.5 s
    chunks = [len(c) for c in tiny.chunks(clip)]
    assert tiny.flops_per_clip(clip) == pytest.approx(
        sum(mert_forward_flops(tiny.config, n) for n in chunks))
    assert tiny.chunk_bytes(24000) == mert_chunk_bytes(tiny.config, 24000, dtype_bytes=4)
    assert tiny.with_dtype("bfloat16").chunk_bytes(24000) == mert_chunk_bytes(
        tiny.config, 24000, dtype_bytes=2)
    twin = tiny.with_dtype("bfloat16")
    assert twin.model is tiny.model and twin.dtype == "bfloat16"  # CPU: shared fp32 weights
    tiny.fit_batch(4, clip)
    assert tiny.batch_size == 4


def test_vggish_cost_model_counts_examples(files):
    from mtbc.extractors.vggish import vggish_flops_per_example

    ext = _build("vggish", files)
    clip = np.zeros(16000 * 3, np.float32)
    n = len(ext.examples(clip))
    assert n == 3 and ext.flops_per_clip(clip) == n * vggish_flops_per_example()
    ext.fit_batch(2, clip)
    assert ext.batch_size == 2 * n
    assert [p.name for p in ext.weights_files()] == [files["weights"].name]  # no PCA asked
    with_pca = _build("vggish", files, postprocess="pca")
    assert [p.name for p in with_pca.weights_files()] == [files["weights"].name,
                                                          files["pca"].name]
