"""The demo corpus: deterministic, cached, balanced, documented, and fair to every class."""

from __future__ import annotations

import csv
import hashlib
import inspect
import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

import mtbc.data.demo as demo
import mtbc.data.demo_render as demo_render

CLIP = 3.0  # seconds: small clips keep every build under a second or two


def _build(out, **kw):
    kw.setdefault("n_per_class", 1)
    kw.setdefault("clip_seconds", CLIP)
    return demo.build_demo(out, progress=False, **kw)


def _rows(manifest):
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """5 classes x 2 clips x 3 s at the default rate."""
    out = tmp_path_factory.mktemp("demo")
    return _build(out, n_per_class=2)


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_same_seed_gives_identical_bytes(tmp_path):
    a = _build(tmp_path / "a", seed=3)
    b = _build(tmp_path / "b", seed=3)
    ha, hb = _hashes(a.parent), _hashes(b.parent)
    assert len(ha) == 5 + 3, (f"expected 5 clips + manifest + build.json + ownership record, "
                              f"got {sorted(ha)}")
    assert ha == hb, "two builds with the same seed differ"
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_different_seed_gives_different_corpus(tmp_path):
    a = _rows(_build(tmp_path / "a", seed=0))
    b = _rows(_build(tmp_path / "b", seed=1))
    pick = lambda rows: [(r["source"], r["number"]) for r in rows]  # noqa: E731
    assert pick(a) != pick(b), "seeds 0 and 1 chose the same pieces"


def test_second_call_skips_rendering(tmp_path, monkeypatch):
    manifest = _build(tmp_path, seed=0)
    before = _hashes(tmp_path)

    def boom(*args, **kwargs):
        raise AssertionError("rendered although the corpus was already built")

    monkeypatch.setattr(demo_render, "render_midi", boom)
    assert _build(tmp_path, seed=0) == manifest
    assert _hashes(tmp_path) == before
    with pytest.raises(AssertionError, match="rendered although"):
        _build(tmp_path, seed=0, force=True)  # proves the patch would have caught a render


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_changed_parameters_or_missing_clip_rebuild(tmp_path, monkeypatch):
    manifest = _build(tmp_path, seed=0)
    calls = []
    real = demo_render.render_midi
    monkeypatch.setattr(demo_render, "render_midi", lambda *a, **k: calls.append(1) or real(*a, **k))
    (tmp_path / _rows(manifest)[0]["path"]).unlink()
    _build(tmp_path, seed=0)
    assert calls, "a missing clip must trigger a rebuild"
    assert all((tmp_path / r["path"]).is_file() for r in _rows(manifest))


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_killed_build_leaves_no_manifest_and_is_redone(tmp_path, monkeypatch):
    first = _hashes(_build(tmp_path, seed=0).parent)
    real, n = demo_render.render_midi, []

    def dies_on_third(*args, **kwargs):
        n.append(1)
        if len(n) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(demo_render, "render_midi", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, seed=0, force=True)
    assert not (tmp_path / "manifest.csv").exists(), "a killed build left a manifest"
    assert not (tmp_path / "build.json").exists(), "a killed build left build.json"
    assert not list(tmp_path.rglob("*.tmp")), "temp files are renamed, never left as clips"
    monkeypatch.setattr(demo_render, "render_midi", real)
    assert _hashes(_build(tmp_path, seed=0).parent) == first


def test_classes_are_balanced(small):
    rows = _rows(small)
    counts = {lb: sum(r["label"] == lb for r in rows) for lb in demo.DEFAULT_CLASSES}
    assert counts == dict.fromkeys(demo.DEFAULT_CLASSES, 2)
    assert len(demo.DEFAULT_CLASSES) >= 5


def test_manifest_columns_and_provenance(small):
    rows = _rows(small)
    assert tuple(rows[0]) == demo.MANIFEST_COLUMNS
    assert len({r["track_id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["path"] == f"{r['label']}/{r['track_id']}.wav"
        assert (small.parent / r["path"]).is_file()
        number = int(r["number"]) if r["number"] else None
        assert (r["source"], number) in demo.candidates(r["label"]), r
        assert r["title"], f"{r['track_id']} has no title"
        programs = [int(p) for p in r["program"].split(";")]
        assert 1 <= len(programs) <= demo.MAX_VOICES and len(set(programs)) == len(programs)
        assert r["instrument"].split(";") == [pretty_midi.program_to_instrument_name(p)
                                              for p in programs]
        assert set(programs) <= set(demo.INSTRUMENT_POOL)
        assert r["tags"].split(";") == [demo_render.INSTRUMENT_TAGS[p] for p in programs]
        assert int(r["tempo_bpm"]) in demo.TEMPO_POOL_BPM
        assert int(r["transpose"]) in demo.TRANSPOSE_POOL
        assert int(r["loops"]) >= 1 and r["seed"] == "0"
    for r in rows:
        if r["label"] in ("han", "german"):
            assert r["source"].startswith("essenFolksong/") and r["number"], "one Essen tune, by number"
    build = json.loads((small.parent / "build.json").read_text())
    assert build["params"]["seed"] == 0 and build["params"]["sample_rate"] == 24000
    assert set(build["params"]["versions"]) >= {"mtbc", "music21", "midirenderer"}
    assert build["counts"] == dict.fromkeys(demo.DEFAULT_CLASSES, 2)


def test_clips_carry_instrument_tags_for_a_multi_label_task(tmp_path):
    from mtbc.data.collection import load_collection

    manifest = _build(tmp_path, n_per_class=3, clip_seconds=2.0)
    counts = [len(r["tags"].split(";")) for r in _rows(manifest)]
    assert len(set(counts)) > 1, "the number of instruments should vary between clips"
    tracks = load_collection(f"demo:{tmp_path}", progress=False).tracks
    assert all(isinstance(t, tuple) and 1 <= len(t) <= 4 for t in tracks["tags"])
    vocab = set().union(*tracks["tags"])
    for tags, neg in zip(tracks["tags"], tracks["tags_negative"], strict=True):
        assert set(tags) | set(neg) == vocab and not set(tags) & set(neg)


def test_audio_is_24k_mono_pcm16_exact_length_and_normalised(small):
    for r in _rows(small):
        path = small.parent / r["path"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16"), info
        assert info.frames == int(CLIP * 24000), f"{path}: {info.frames} frames"
        x, _ = sf.read(path, dtype="int16")
        peak_db = 20 * np.log10(np.abs(x.astype(np.int32)).max() / 32767)
        assert abs(peak_db - demo.PEAK_DBFS) < 0.01, f"{path}: peak {peak_db:.2f} dBFS"
        rms = np.sqrt(np.mean((x / 32768.0) ** 2))
        assert rms > 0.01, f"{path} is (nearly) silent: rms {rms:.4f}"


def test_other_sample_rate_and_subset_of_classes(tmp_path):
    rows = _rows(_build(tmp_path, classes=["fiddle"], sample_rate=44100, clip_seconds=1.0))
    assert [r["label"] for r in rows] == ["fiddle"]
    info = sf.info(tmp_path / rows[0]["path"])
    assert (info.samplerate, info.frames) == (44100, 44100)


def test_every_class_draws_from_the_same_pools(tmp_path, monkeypatch):
    # draw_render_params takes no class: nothing can make a pool depend on the label.
    assert list(inspect.signature(demo.draw_render_params).parameters) == ["rng"]
    # Shrink each shared pool to one odd value: every class must then use exactly that value.
    monkeypatch.setattr(demo_render, "INSTRUMENT_POOL", (68,))
    monkeypatch.setattr(demo_render, "TEMPO_POOL_BPM", (77,))
    monkeypatch.setattr(demo_render, "TRANSPOSE_POOL", (3,))
    rows = _rows(_build(tmp_path, clip_seconds=1.0))
    assert {r["label"] for r in rows} == set(demo.DEFAULT_CLASSES)
    assert {(r["program"], r["tempo_bpm"], r["transpose"]) for r in rows} == {("68", "77", "3")}


def test_bad_arguments_say_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="24000"):
        _build(tmp_path, sample_rate=16000)
    with pytest.raises(ValueError, match="choose from"):
        _build(tmp_path, classes=["jazz"])
    with pytest.raises(ValueError, match="seed"):
        _build(tmp_path, seed=-1)


def test_candidates_are_cheap_numbered_tunes():
    han = demo.candidates("han")
    assert len(han) > 1000 and all(isinstance(n, int) for _, n in han)
    assert all(n is None for _, n in demo.candidates("bach"))
    assert len(demo.candidates("german")) > 5000
    assert demo.candidates("bach") == sorted(demo.candidates("bach"))


def test_license_note_warns_non_commercial():
    assert "non-commercial" in demo.LICENSE_NOTE and "Essen" in demo.LICENSE_NOTE
    assert demo.soundfont_path().name == "TimGM6mb.sf2"


def test_demo_refuses_a_folder_with_foreign_files_and_leaves_them_intact(tmp_path, capsys):
    from mtbc.cli import main

    out = tmp_path / "mine"
    (out / "bach").mkdir(parents=True)
    mine = {"notes.txt": b"my notes", "manifest.csv": b"path\nmy.wav\n",
            "bach/bach_01.wav": b"my own recording", ".build.json.x.tmp": b"keep"}
    for rel, data in mine.items():
        (out / rel).write_bytes(data)
    with pytest.raises(demo.DemoFolderError, match="not made by `mtbc demo`"):
        _build(out)
    assert main(["demo", "--out", str(out), "--per-class", "1", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p.relative_to(out).as_posix(): p.read_bytes()
            for p in out.rglob("*") if p.is_file()} == mine


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_rebuild_keeps_files_added_to_a_built_folder(tmp_path):
    manifest = _build(tmp_path, seed=0)
    (tmp_path / "bach" / "bach_99.wav").write_bytes(b"a clip I recorded myself")
    (tmp_path / "README.txt").write_text("mine")
    _build(tmp_path, seed=1, force=True)  # prunes its own old clips only
    assert (tmp_path / "bach" / "bach_99.wav").read_bytes() == b"a clip I recorded myself"
    assert (tmp_path / "README.txt").read_text() == "mine"
    assert len(_rows(manifest)) == 5
    # a clip we wrote but the user then changed is theirs: never overwritten
    clip = tmp_path / _rows(manifest)[0]["path"]
    clip.write_bytes(b"edited by the user")
    with pytest.raises(demo.DemoFolderError, match="did not write"):
        _build(tmp_path, seed=2, force=True)
    assert clip.read_bytes() == b"edited by the user"
