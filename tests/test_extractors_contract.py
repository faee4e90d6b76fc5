"""One contract for every extractor (``docs/extractors.md``), parametrised over the registry."""

from __future__ import annotations

import numpy as np
import pytest

from mtbc.extractors import available_extractors, get_extractor
from mtbc.extractors.fixtures import make_mert_snapshot, make_vggish_weights
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
