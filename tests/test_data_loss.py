"""mtbc deletes only what it can prove it wrote: checksums of the user's files before and
after every command that removes or replaces files (cache, report folders, demo corpus)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mtbc.cache.store import MARKER, EmbeddingStore, NotACacheError
from mtbc.cli import main
from tests.hostile import tree_checksums

H1, H2 = "ab" + "0" * 62, "cd" + "1" * 62


def _user_folder(root):
    """A folder laid out like a cache that mtbc did not make (the issue's case)."""
    (root / "x" / "yy").mkdir(parents=True)
    np.save(root / "x" / "yy" / "valid.npy", np.ones((2, 3, 4), np.float32))  # 3-D float32
    np.save(root / "x" / "yy" / "data.npy", np.arange(5))
    (root / "x" / "yy" / "broken.npy").write_bytes(b"not numpy")
    (root / "x" / ".draft.tmp").write_bytes(b"user's hidden file")
    (root / "x" / "yy" / ".notes.tmp").write_bytes(b"another")
    for f in (root / "x" / ".draft.tmp", root / "x" / "yy" / ".notes.tmp"):
        os.utime(f, (1, 1))  # older than an hour
    (root / "x" / "info.json").write_text('{"mine": true}')  # a user's json, no mtbc_version
    return root


def test_cache_remove_in_a_folder_that_is_not_a_cache_removes_nothing(tmp_path, capsys):
    d = _user_folder(tmp_path / "D")
    before = tree_checksums(d)
    assert main(["cache", "--verify", "--remove", "--cache", str(d)]) == 2
    err = capsys.readouterr().err
    assert f"{d} is not an mtbc cache" in err and "nothing removed" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert tree_checksums(d) == before
    with pytest.raises(NotACacheError):
        EmbeddingStore(d).remove_bad()
    assert tree_checksums(d) == before


def test_cache_verify_in_a_folder_that_is_not_a_cache_says_so(tmp_path, capsys):
    d = _user_folder(tmp_path / "D")
    before = tree_checksums(d)
    assert main(["cache", "--verify", "--cache", str(d)]) == 2
    assert "is not an mtbc cache" in capsys.readouterr().err
    assert tree_checksums(d) == before


def test_cache_remove_touches_only_entries_named_by_the_hash_scheme(tmp_path, capsys, rng):
    root = tmp_path / "cache"
    store = EmbeddingStore(root)
    store.write_info("mfcc-1234", {"model": "m"})
    store.put(H1, "mfcc-1234", rng.standard_normal((1, 2, 4)))
    store.put(H2, "mfcc-1234", rng.standard_normal((1, 2, 4)))
    assert (root / MARKER).is_file()
    bad = store.path_for(H2, "mfcc-1234")
    bad.write_bytes(b"truncated")
    ours_tmp = bad.parent / f".{H2}.npy.abc123.tmp"
    ours_tmp.write_bytes(b"half")
    os.utime(ours_tmp, (1, 1))
    # the user's files inside the cache: misnamed .npy, their own temp file, another folder
    fp = root / "mfcc-1234"
    np.save(fp / "ab" / "mine.npy", np.zeros((1, 2, 4), np.float32))
    (fp / "zz").mkdir()
    np.save(fp / "zz" / f"{H1}.npy", np.zeros(3))  # a hash name in the wrong folder
    (fp / ".mine.tmp").write_bytes(b"x")
    os.utime(fp / ".mine.tmp", (1, 1))
    _user_folder(root / "userstuff")
    keep = {k: v for k, v in tree_checksums(root).items()
            if k not in (f"mfcc-1234/cd/{H2}.npy", f"mfcc-1234/cd/.{H2}.npy.abc123.tmp")}
    assert main(["cache", "--verify", "--remove", "--cache", str(root)]) == 0
    assert "removed 1 bad entries and 1 stale temp files" in capsys.readouterr().out
    assert not bad.exists() and not ours_tmp.exists()
    assert tree_checksums(root) == keep


def test_info_json_is_not_rewritten_when_unchanged(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path / "cache")
    store.write_info("fp-1", {"model": "m"})
    info = tmp_path / "cache" / "fp-1" / "info.json"
    stamp = info.stat().st_mtime_ns
    import mtbc.cache.store as s

    def refuse(*a, **k):
        raise AssertionError("info.json rewritten")

    monkeypatch.setattr(s, "atomic_write", refuse)
    store.write_info("fp-1", {"model": "m"})  # unchanged: no write at all
    assert info.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError):
        store.write_info("fp-1", {"model": "other"})
    assert json.loads(info.read_text())["model"] == "m"


# ------------------------------------------------------------------------- report folders


def _fake_notebooks(monkeypatch, tmp_path, text="page"):
    """Notebooks that 'run' instantly: each writes its .ipynb and .html (no kernel)."""
    import mtbc.reports.execute as ex
    from mtbc.reports.html import ReportInfo

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir(exist_ok=True)
    (nbdir / "01_a.ipynb").write_text("{}")

    def fake(notebooks, *, params, out_dir, **kwargs):
        out = []
        for nb in notebooks:
            (out_dir / f"{nb.stem}.ipynb").write_text("{}")
            (out_dir / f"{nb.stem}.html").write_text(text)
            out.append(ReportInfo(nb.stem, nb, out_dir / f"{nb.stem}.ipynb",
                                  out_dir / f"{nb.stem}.html"))
        return out

    monkeypatch.setattr(ex, "execute_notebooks", fake)
    return nbdir


def test_a_rerun_keeps_the_users_files_in_the_report_folder(tmp_path, monkeypatch):
    from mtbc.reports.execute import run_reports

    nbdir = _fake_notebooks(monkeypatch, tmp_path)
    root = tmp_path / "reports"
    run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    (root / "r" / "notes.txt").write_text("my notes")
    (root / "r" / "mine").mkdir()
    (root / "r" / "mine" / "fig.png").write_bytes(b"\x89PNG user")
    user = {k: v for k, v in tree_checksums(root / "r").items()
            if k in ("notes.txt", "mine/fig.png")}
    _fake_notebooks(monkeypatch, tmp_path, text="new page")
    run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    after = tree_checksums(root / "r")
    assert {k: after.get(k) for k in user} == user
    assert (root / "r" / "01_a.html").read_text() == "new page"
    assert sorted(p.name for p in root.iterdir()) == ["r"]  # no temp folder left


def test_a_users_file_in_the_way_of_the_run_is_refused_naming_it(tmp_path, monkeypatch,
                                                                  capsys):
    from mtbc.reports.execute import run_reports
    from mtbc.reports.folder import ReportFolderError

    nbdir = _fake_notebooks(monkeypatch, tmp_path)
    root = tmp_path / "reports"
    run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    (root / "r" / "01_a.html").write_text("edited by the user")  # no longer mtbc's bytes
    before = tree_checksums(root / "r")
    with pytest.raises(ReportFolderError, match="'01_a.html'.*did not write"):
        run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    assert tree_checksums(root / "r") == before
    assert sorted(p.name for p in root.iterdir()) == ["r"]


def test_a_folder_mtbc_did_not_make_is_never_replaced(tmp_path, monkeypatch):
    from mtbc.reports.execute import run_reports
    from mtbc.reports.folder import ReportFolderError

    nbdir = _fake_notebooks(monkeypatch, tmp_path)
    root = tmp_path / "reports"
    (root / "r").mkdir(parents=True)
    (root / "r" / "index.html").write_text("the user's own site")
    (root / "r" / "data.csv").write_text("a,b\n1,2\n")
    before = tree_checksums(root / "r")
    with pytest.raises(ReportFolderError, match="index.html"):
        run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    assert tree_checksums(root / "r") == before
    (root / "r" / "index.html").unlink()
    run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=root, progress=False)
    assert (root / "r" / "data.csv").read_text() == "a,b\n1,2\n"


def test_a_swap_cut_short_is_restored_not_deleted(tmp_path):
    from mtbc.reports.folder import remove_stale

    final = tmp_path / "reports" / "r"
    old = tmp_path / "reports" / ".r.old-abc"
    old.mkdir(parents=True)
    (old / "notes.txt").write_text("my notes")  # killed between the two renames
    remove_stale(final)
    assert (final / "notes.txt").read_text() == "my notes" and not old.exists()


# ------------------------------------------------------------------------- demo folder


def _demo_folder(out):
    (out / "bach").mkdir(parents=True)
    mine = {"notes.txt": b"my notes", "bach/bach_01.wav": b"my own recording (not a WAV)"}
    for rel, data in mine.items():
        (out / rel).write_bytes(data)
    return mine


@pytest.mark.parametrize("record", [
    {"x": "0" * 64},  # a stray record naming nothing here
    "edited",  # an edited record naming the user's files with their true checksums
    {"notes.txt": ["not a checksum"]},
])
def test_a_stray_or_edited_demo_record_neither_deletes_nor_overwrites(tmp_path, record,
                                                                       capsys):
    import hashlib

    from mtbc.cli import main
    from mtbc.data import demo

    out = tmp_path / "mine"
    mine = _demo_folder(out)
    if record == "edited":
        record = {rel: hashlib.sha256(data).hexdigest() for rel, data in mine.items()}
    (out / demo.OWNED_RECORD).write_text(json.dumps(record))
    before = tree_checksums(out)
    assert main(["demo", "--out", str(out), "--per-class", "1", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "not made by `mtbc demo`" in err and str(out) in err
    assert tree_checksums(out) == before


def test_a_demo_record_is_trusted_only_for_generated_paths_with_matching_bytes(tmp_path):
    import hashlib

    from mtbc.data import demo

    out = tmp_path / "d"
    mine = _demo_folder(out)
    wav = b"RIFF\x00\x00\x00\x00WAVEfmt "
    (out / "bach" / "bach_02.wav").write_bytes(wav)
    record = {rel: hashlib.sha256(data).hexdigest() for rel, data in mine.items()}
    record["bach/bach_02.wav"] = hashlib.sha256(wav).hexdigest()
    record["manifest.csv"] = "f" * 64  # absent: harmless
    (out / demo.OWNED_RECORD).write_text(json.dumps(record))
    assert demo._owned(out) == {"bach/bach_02.wav": record["bach/bach_02.wav"],
                                "manifest.csv": "f" * 64}
    (out / "bach" / "bach_02.wav").write_bytes(wav + b"changed")
    assert "bach/bach_02.wav" not in demo._owned(out)
