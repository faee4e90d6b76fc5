"""`mtbc similar --text` with the tiny random CLAP checkpoint (a fixture: its ranking means
nothing, only that it is the joint-space cosine ranking)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")

from mtbc.cache.store import EmbeddingStore  # noqa: E402 - after the importorskip
from mtbc.cli import main  # noqa: E402
from mtbc.extractors import get_extractor  # noqa: E402
from mtbc.extractors.hf_fixtures import make_hf_snapshot  # noqa: E402
from tests.conftest import write_tone  # noqa: E402

FREQS = {"low": (110, 147), "mid": (440, 523), "high": (1760, 2093)}


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    return make_hf_snapshot(tmp_path_factory.mktemp("clap") / "tiny-clap", "clap", seed=3)


@pytest.fixture(scope="module")
def collection(tmp_path_factory, clap_folder):
    tmp_path = tmp_path_factory.mktemp("text-search")
    root = tmp_path / "music"
    for label, freqs in FREQS.items():
        for i, f in enumerate(freqs):
            write_tone(root / label / f"{label}{i}.wav", seconds=1.5, sr=22050, freq=f)
    cache = tmp_path / "cache"
    for name, options in (("clap", ["-o", f"model={clap_folder}"]), ("mfcc", [])):
        assert main(["extract", str(root), "-e", name, *options, "--cache", str(cache)]) == 0
    return root, cache, tmp_path / "index"


def _args(root, cache, index, clap_folder, extractor="clap"):
    opts = ["-o", f"model={clap_folder}"] if extractor == "clap" else []
    return ["-c", str(root), "-e", extractor, *opts, "--cache", str(cache),
            "--index-dir", str(index)]


def test_text_search_ranks_tracks_by_joint_space_cosine(collection, clap_folder, tmp_path,
                                                        capsys):
    root, cache, index = collection
    out = tmp_path / "text.json"
    assert main(["similar", "--text", "calm piano", *_args(root, cache, index, clap_folder),
                 "--k", "4", "--json", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "closest tracks for text 'calm piano'" in shown and "by text over 6 tracks" in shown
    got = json.loads(out.read_text())
    assert got["text"] == "calm piano" and [r["rank"] for r in got["results"]] == [1, 2, 3, 4]
    # the same ranking computed directly: each track's mean joint row against the text
    ex = get_extractor("clap", model=str(clap_folder), device="cpu")
    store = EmbeddingStore(cache)
    from mtbc.data.collection import open_collection

    tracks = open_collection(str(root), cache_dir=str(cache), progress=False).tracks
    means = store.load_many(list(tracks["content_hash"]), ex.fingerprint)[:, -1, :8]
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    cos = means @ ex.embed_text(["calm piano"])[0]
    order = np.argsort(-cos, kind="stable")[:4]
    assert [r["track_id"] for r in got["results"]] == list(tracks["track_id"].to_numpy()[order])
    np.testing.assert_allclose([r["similarity"] for r in got["results"]], cos[order], atol=1e-4)


@pytest.mark.parametrize("argv, extractor, names", [
    (["--text", "calm piano"], "mfcc", "no text tower"),
    (["--text", "calm piano", "--whiten"], "clap", "--whiten"),
    (["--text", "calm piano", "--layer", "0"], "clap", "--layer 0"),
    (["--text", "calm piano", "--include-duplicates"], "clap", "--include-duplicates"),
    (["--text", "  "], "clap", "--text: empty"),
    (["low/low0", "--text", "calm piano"], "clap", "--text"),
    ([], "clap", "query"),
])
def test_bad_text_queries_are_one_line_and_exit_2(collection, clap_folder, capsys, argv,
                                                  extractor, names):
    root, cache, index = collection
    try:
        status = main(["similar", *argv, *_args(root, cache, index, clap_folder, extractor)])
    except SystemExit as exc:  # argparse refuses the combination itself
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert names in err and len(err.splitlines()) == 1
