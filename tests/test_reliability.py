"""Hostile inputs: one bad file never stops a command, a bad cache entry is recomputed, user
strings never become live HTML, small collections and long files are handled."""

from __future__ import annotations

import csv
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mtbc.cache.extract import embed_file, embed_streamed, extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.cli import main
from mtbc.data.collection import load_collection
from mtbc.files import atomic_write
from tests.conftest import read_page, write_tone
from tests.hostile import write_hostile

REPO = Path(__file__).resolve().parents[1]
XSS = ["<img src=x onerror=alert(1)>", "<svg onload=alert(2)>"]


def _good(folder: Path, n_per_label: int = 3) -> list[Path]:
    paths = []
    for k, label in enumerate(("a", "b")):
        for i in range(n_per_label):
            paths.append(write_tone(folder / label / f"{label}{i}.wav", seconds=1.2,
                                    sr=22050 if i % 2 else 44100, freq=200 + 300 * k + 20 * i))
    return paths


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    good = _good(root / "music")
    cases = write_hostile(root / "music" / "bad")
    return root, good, cases


# ------------------------------------------------------------------------- scan


def test_scan_lists_every_bad_file_with_its_reason_and_keeps_every_good_one(hostile, capsys):
    root, good, cases = hostile
    assert main(["scan", str(root / "music")]) == 0
    out = capsys.readouterr().out
    coll = load_collection(root / "music", progress=False)
    assert set(map(str, good)) <= set(coll.tracks["path"])
    reasons = dict(zip(coll.skipped["path"].map(lambda p: Path(p).name), coll.skipped["reason"],
                       strict=True))
    for name, phrase in cases.items():
        if name == "one_sample.wav":
            continue  # decodes; it fails (or not) per extractor
        assert phrase in reasons[name], (name, reasons.get(name))
        assert name in out
    assert "possibly a pipe" not in out and "0 bytes" not in reasons["fifo.wav"]


def test_lying_header_is_refused_even_under_a_huge_max_duration(hostile):
    from mtbc.data.audio import AudioError, probe_audio

    root, _, _ = hostile
    with pytest.raises(AudioError, match="more than a file of"):
        probe_audio(root / "music" / "bad" / "lying.flac", max_duration=1e12)


# ------------------------------------------------------------------------- extract


@pytest.fixture(scope="module")
def fixture_models(tmp_path_factory):
    from mtbc.extractors.fixtures import make_mert_snapshot, make_vggish_weights

    root = tmp_path_factory.mktemp("models")
    mert = make_mert_snapshot(root / "mert", variant="95m", tiny=True,
                              weights_format="safetensors")
    weights, _ = make_vggish_weights(root / "vggish")
    return {"mfcc": [], "mert": ["-o", f"model={mert}", "-o", "chunk_seconds=1.0"],
            "vggish": ["-o", f"weights={weights}"]}


@pytest.mark.parametrize("name", ["mfcc", "mert", "vggish"])
def test_extract_goes_through_every_hostile_file(hostile, fixture_models, name, capsys):
    root, good, cases = hostile
    cache = root / f"cache-{name}"
    assert main(["extract", str(root / "music"), "-e", name, *fixture_models[name],
                 "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    coll = load_collection(root / "music", progress=False)
    store = EmbeddingStore(cache)
    fp = store.fingerprints()[0]
    have = {Path(p).name for p, h in zip(coll.tracks["path"], coll.tracks["content_hash"],
                                         strict=True) if store.has(h, fp)}
    assert {p.name for p in good} <= have
    for bad in cases:
        assert bad in have or bad in out, bad  # embedded, or listed with its reason
    assert "Traceback" not in out


# ------------------------------------------------------------------------- cache


def _mfcc_setup(tmp_path, n=3):
    from mtbc.extractors import get_extractor

    for i in range(n):
        write_tone(tmp_path / "m" / "a" / f"t{i}.wav", seconds=1.0, sr=22050, freq=300 + 50 * i)
    coll = load_collection(tmp_path / "m", progress=False)
    ex = get_extractor("mfcc")
    store = EmbeddingStore(tmp_path / "cache")
    rep = extract_collection(coll.tracks, ex, store, progress=False)
    assert len(rep.extracted) == n
    return coll, ex, store


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _nan(path):
    arr = np.load(path)
    arr[0, 0, 0] = np.nan
    np.save(path, arr)


def _two_d(path):
    np.save(path, np.load(path)[:, 0, :])


def _layers(path):
    arr = np.load(path)
    np.save(path, np.concatenate([arr, arr], axis=1))


def _dim(path):
    np.save(path, np.load(path)[:, :, :10])


def _dtype(path):
    np.save(path, np.load(path).astype(np.float64))


def _pickle(path):
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("damage", [_truncate, _nan, _two_d, _layers, _dim, _dtype, _pickle],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_bad_cache_entry_is_recomputed_by_the_next_extract(tmp_path, damage, capsys):
    coll, ex, store = _mfcc_setup(tmp_path, n=2)
    h = coll.tracks["content_hash"].iloc[0]
    entry = store.path_for(h, ex.fingerprint)
    good = np.load(entry)
    damage(entry)
    assert not store.has(h, ex.fingerprint)
    assert main(["cache", "--verify", "--cache", str(tmp_path / "cache")]) == 1
    assert entry.name in capsys.readouterr().out
    rep = extract_collection(coll.tracks, ex, store, progress=False)
    assert rep.extracted == [coll.tracks["track_id"].iloc[0]] and len(rep.cached) == 1
    assert rep.repaired and rep.repaired[0][1] == str(entry) and "recomputed" in str(rep)
    np.testing.assert_array_equal(np.load(entry), good)


def test_cache_verify_remove_and_stale_temp_files(tmp_path, capsys):
    coll, ex, store = _mfcc_setup(tmp_path, n=2)
    entry = store.path_for(coll.tracks["content_hash"].iloc[0], ex.fingerprint)
    _nan(entry)
    stale = entry.parent / f".{entry.name}.abc.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    assert main(["cache", "--verify", "--remove", "--cache", str(tmp_path / "cache")]) == 0
    assert not entry.exists() and not stale.exists()
    assert main(["cache", "--verify", "--cache", str(tmp_path / "cache")]) == 0
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    extract_collection(coll.tracks, ex, store, progress=False)  # removes older temp files
    assert not stale.exists() and store.has(coll.tracks["content_hash"].iloc[0], ex.fingerprint)


def test_atomic_write_respects_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "x.bin", lambda f: f.write(b"1"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o640


# ------------------------------------------------------------------------- long files


@pytest.mark.parametrize("sr_file", [22050, 44100])
def test_streamed_embedding_equals_the_whole_wave(tmp_path, sr_file, monkeypatch):
    import mtbc.cache.extract as extract
    from mtbc.extractors import get_extractor

    monkeypatch.setattr(extract, "STREAM_SECONDS", 3.0)
    monkeypatch.setattr(extract, "STREAM_BLOCK_SECONDS", 2.0)
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal(int(13.7 * sr_file))).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, wave, sr_file, subtype="FLOAT")
    ex = get_extractor("mfcc", segment_seconds=1.0)
    whole = ex.embed(extract.load_for(ex, path))
    streamed, n = embed_streamed(ex, path)
    assert streamed.shape == whole.shape and n == len(extract.load_for(ex, path))
    tol = 0 if sr_file == ex.sample_rate else 2e-3  # resampler rounding at block edges
    np.testing.assert_allclose(streamed, whole, atol=tol * np.abs(whole).max())
    assert embed_file(ex, path)[0].shape == whole.shape  # long enough: streamed


def test_vggish_stream_units_cut_between_examples(tmp_path, fixture_models, monkeypatch):
    import mtbc.cache.extract as extract
    from mtbc.extractors import get_extractor

    monkeypatch.setattr(extract, "STREAM_SECONDS", 2.0)
    monkeypatch.setattr(extract, "STREAM_BLOCK_SECONDS", 1.0)
    ex = get_extractor("vggish", weights=fixture_models["vggish"][1].split("=", 1)[1])
    path = write_tone(tmp_path / "v.wav", seconds=7.3, sr=16000, freq=500)
    whole = ex.embed(extract.load_for(ex, path))
    streamed, _ = embed_streamed(ex, path)
    np.testing.assert_allclose(streamed, whole, rtol=1e-4, atol=1e-4)


def test_small_collections_use_fewer_inner_folds_not_a_crash():
    import warnings

    from mtbc.evaluation import evaluate_probe
    from mtbc.study.common import plan_classification

    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(9)],
                           "label": [["x", "y", "z"][i % 3] for i in range(9)],
                           "group": [f"g{i}" for i in range(9)], "split": None})
    plan = plan_classification(tracks, n_splits=5)
    folds = plan.n_folds
    assert folds == 3 and plan.why_not is None
    X = np.random.default_rng(0).standard_normal((18, 2, 4)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_probe(X, np.repeat(np.arange(9), 2), tracks, n_splits=folds,
                                n_boot=20, seed=0)
    assert 0 <= result.metric() <= 1
    assert any("2 folds instead of 3" in str(w.message) for w in caught)


# ------------------------------------------------------------------------- reports


class _LiveElements(HTMLParser):
    """Collects elements that would run script: on* attributes, svg/script with markup."""

    def __init__(self):
        super().__init__()
        self.live = []

    def handle_starttag(self, tag, attrs):
        names = [k.lower() for k, _ in attrs]
        if any(n.startswith("on") for n in names):
            self.live.append((tag, attrs))
        if tag in ("svg", "iframe", "object", "embed"):
            self.live.append((tag, attrs))
        if tag == "img" and dict(attrs).get("src") == "x":
            self.live.append((tag, attrs))


@pytest.fixture(scope="module")
def xss_run(tmp_path_factory):
    """A CSV collection whose folder, manifest, labels and track ids carry markup, mixed with
    the hostile files, through a full ``mtbc run`` (MFCC only, notebooks 01 and 04)."""
    root = tmp_path_factory.mktemp("xss")
    folder = root / XSS[0]
    good = _good(folder / "audio")
    cases = write_hostile(folder / "audio" / "bad")
    manifest = folder / f"{XSS[1]}.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "track_id"])
        for i, p in enumerate(good):
            writer.writerow([p.relative_to(folder).as_posix(), XSS[i % 2], f"{XSS[i % 2]}{i}"])
        for name in cases:
            writer.writerow([f"audio/bad/{name}", XSS[0], f"{XSS[1]} {name}"])
    params = root / "params.yaml"
    import yaml

    params.write_text(yaml.safe_dump({
        "run": "xss", "title": XSS[0], "collection": str(manifest),
        "extractors": {"mfcc": {}}, "cache_dir": str(root / "cache"),
        "params": {"n_boot": 50},
        "notebooks": ["01_load_data", "04_train_classifiers"],
        "notebook_params": {"04_train_classifiers": {"model_dir": str(root / "models"),
                                                     "probes": ["linear"]}}}))
    os.environ["MTBC_REPORTS"] = str(root / "reports")
    try:
        status = main(["run", "--params", str(params), "--notebooks", str(REPO / "notebooks")])
    finally:
        del os.environ["MTBC_REPORTS"]
    return root, status, good, cases


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_full_run_with_hostile_files_and_markup_exits_0(xss_run):
    root, status, good, cases = xss_run
    assert status == 0
    page = read_page(root / "reports" / "xss" / "01_load_data.html")
    for name, phrase in cases.items():
        if name != "one_sample.wav":
            assert name in page and phrase in page, name
    assert (root / "models" / "mfcc.npz").is_file()  # 3 tracks per label: classified


def test_no_user_string_becomes_a_live_element_in_any_page(xss_run):
    root = xss_run[0]
    pages = sorted((root / "reports" / "xss").glob("*.html"))
    assert len(pages) == 3
    for page in pages:
        text = read_page(page)
        parser = _LiveElements()
        parser.feed(text)
        assert parser.live == [], (page.name, parser.live[:3])
    overview = read_page(root / "reports" / "xss" / "01_load_data.html")
    assert "&lt;img src=x onerror=alert(1)&gt;" in overview  # shown, as text
