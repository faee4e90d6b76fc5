"""The machine's faults (read-only or unwritable folders, a full disk, missing permissions)
are one line and exit status 2 naming the folder and the fix; nothing half-written is kept.

Tests run as root, whom ``chmod`` does not stop, and a read-only bind mount needs privileges
the tests do not have; so a read-only or unwritable folder is simulated by making the calls
that create files and folders under it fail with the OS's own error (EROFS or EACCES), and
a full disk by making the writer stop short as numpy does when the disk fills up.
"""

from __future__ import annotations

import builtins
import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mtbc.cache.store import EmbeddingStore
from mtbc.cli import main
from tests.conftest import write_tone


def _under(path, folder: Path) -> bool:
    try:
        Path(os.fspath(path)).absolute().relative_to(folder.absolute())
    except (TypeError, ValueError):
        return False
    return True


@pytest.fixture
def unwritable(monkeypatch):
    """``unwritable(folder, err)``: creating anything under ``folder`` fails with ``err``."""

    def make(folder: Path, err: int = errno.EROFS):
        def fault(path):
            return OSError(err, os.strerror(err), str(path))

        real_mkstemp, real_mkdtemp, real_mkdir = tempfile.mkstemp, tempfile.mkdtemp, os.mkdir
        real_open = builtins.open

        def mkstemp(*a, dir=None, **k):
            if dir is not None and _under(dir, folder):
                raise fault(dir)
            return real_mkstemp(*a, dir=dir, **k)

        def mkdtemp(*a, dir=None, **k):
            if dir is not None and _under(dir, folder):
                raise fault(dir)
            return real_mkdtemp(*a, dir=dir, **k)

        def mkdir(path, *a, **k):
            if _under(path, folder) and not os.path.isdir(path):
                raise fault(path)
            return real_mkdir(path, *a, **k)

        def open_(file, mode="r", *a, **k):
            if isinstance(file, str | os.PathLike) and _under(file, folder) and \
                    any(c in mode for c in "wax+"):
                raise fault(file)
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(builtins, "open", open_)

    return make


def _music(tmp_path, n=3):
    for i in range(n):
        write_tone(tmp_path / "m" / "a" / f"t{i}.wav", seconds=1.0, sr=22050, freq=300 + 50 * i)
    return tmp_path / "m"


def _one_line(err: str) -> str:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("mtbc ")]  # progress bars aside
    assert len(lines) == 1 and lines[0].count(": error: ") == 1, err
    return lines[0]


@pytest.mark.parametrize("err, phrase", [(errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission denied")])
def test_extract_into_an_unwritable_cache(tmp_path, unwritable, capsys, err, phrase):
    music = _music(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    unwritable(cache, err)
    assert main(["extract", str(music), "-e", "mfcc", "--cache", str(cache)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(cache) in line and phrase in line and "MTBC_CACHE" in line
    assert "cache_dir:" in line


def test_a_fully_cached_extract_works_on_a_read_only_cache(tmp_path, unwritable, capsys):
    music = _music(tmp_path)
    cache = tmp_path / "cache"
    assert main(["extract", str(music), "-e", "mfcc", "--cache", str(cache)]) == 0
    capsys.readouterr()
    unwritable(cache)
    assert main(["extract", str(music), "-e", "mfcc", "--cache", str(cache)]) == 0
    assert "3 cached" in capsys.readouterr().out


def test_a_full_disk_stops_the_run_naming_the_folder_and_the_space_needed(
        tmp_path, monkeypatch, capsys):
    music = _music(tmp_path, n=4)
    cache = tmp_path / "cache"
    real_save, calls = np.save, []

    def save(f, arr, *a, **k):  # the disk fills up after the second entry
        calls.append(1)
        if len(calls) > 2:
            f.write(b"\x93NUMPY half")
            raise OSError("38280 requested and 7136 written")
        return real_save(f, arr, *a, **k)

    monkeypatch.setattr(np, "save", save)
    assert main(["extract", str(music), "-e", "mfcc", "--cache", str(cache)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no space left on device" in line and "stopped" in line
    assert "the rest needs about" in line and "KiB more" in line
    assert f"{cache}: cannot write" in line
    assert not list(cache.rglob("*.tmp"))  # nothing half-written kept
    store = EmbeddingStore(cache)
    assert store.verify().empty and len(store.list()) == 2  # what was written is whole


def test_a_disk_full_from_the_start_names_the_folder(tmp_path, monkeypatch, capsys):
    music = _music(tmp_path)
    cache = tmp_path / "cache"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    import mtbc.files

    monkeypatch.setattr(mtbc.files.os, "fsync", full)
    assert main(["extract", str(music), "-e", "mfcc", "--cache", str(cache)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(cache) in line and "no space left on device" in line
    assert not list(cache.rglob("*.tmp"))


def test_scan_out_into_a_read_only_folder(tmp_path, unwritable, capsys):
    music = _music(tmp_path)
    out = tmp_path / "ro"
    out.mkdir()
    unwritable(out)
    assert main(["scan", str(music), "--out", str(out / "tracks.csv")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(out) in line and "read-only" in line and "--out" in line


def test_a_read_only_reports_folder(tmp_path, unwritable):
    from mtbc.files import StorageError
    from mtbc.reports.execute import run_reports

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    (nbdir / "01_a.ipynb").write_text("{}")
    reports = tmp_path / "reports"
    reports.mkdir()
    unwritable(reports)
    with pytest.raises(StorageError, match="reports: cannot write.*read-only.*MTBC_REPORTS"):
        run_reports({"run": "r"}, notebooks_dir=nbdir, reports_root=reports, progress=False)
    assert list(reports.iterdir()) == []


def test_an_os_fault_raised_outside_mtbcs_writers_is_still_one_line(tmp_path, monkeypatch,
                                                                    capsys):
    import mtbc.cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.bin"))

    monkeypatch.setattr(mtbc.cli, "cmd_scan", full)
    parser = mtbc.cli.build_parser()
    monkeypatch.setattr(mtbc.cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["scan"].set_defaults(func=full)
    assert main(["scan", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'x.bin'}: no space left on device" in line


def test_run_with_a_read_only_reports_folder_stops_before_any_work(tmp_path, unwritable,
                                                                   monkeypatch, capsys):
    import mtbc.pipeline

    music = _music(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    params = tmp_path / "p.yaml"
    params.write_text(f"run: r\ncollection: {music}\nextractors: {{mfcc: {{}}}}\n"
                      f"cache_dir: {tmp_path / 'cache'}\nnotebooks: [01_load_data]\n")
    monkeypatch.setenv("MTBC_REPORTS", str(reports))

    def no_work(*a, **k):
        raise AssertionError("extraction started")

    monkeypatch.setattr(mtbc.pipeline, "prepare", no_work)
    unwritable(reports)
    repo = Path(__file__).resolve().parents[1]
    assert main(["run", "--params", str(params), "--notebooks", str(repo / "notebooks")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(reports) in line and "read-only" in line and "MTBC_REPORTS" in line
