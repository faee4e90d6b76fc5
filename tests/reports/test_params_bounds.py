"""A parameter file of any size or shape is answered quickly, with one short line naming the
key: size limit, alias bombs, deep nesting, and every value type- and range-checked."""

from __future__ import annotations

import pytest

from mtbc.cli import main
from mtbc.reports.params import (
    MAX_PARAMS_BYTES,
    ParamsError,
    load_params,
    validate_params,
)


def _bomb(levels: int = 12) -> str:
    """Billion laughs: 10**levels strings after expansion, a few hundred bytes of YAML."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines)


def _write(tmp_path, text: str, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["title", "params"])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, capsys, where):
    bomb = _bomb().replace("\n", "\n  ")
    if where == "title":
        text = f"run: r\nstuff:\n  {bomb}\ntitle: *a11\n"
    else:
        text = f"run: r\nnotebook_params:\n  {bomb}\nparams:\n  n_boot: *a11\n"
    path = _write(tmp_path, text)
    with pytest.raises(ParamsError, match="aliases"):
        load_params(path)
    assert main(["run", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 400 and "lol" not in err


def test_a_50_mb_list_is_refused_on_its_size(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.write(b"run: r\nparams:\n  n_boot: [")
        f.write(b"1, " * (50 * 2**20 // 3))
        f.write(b"1]\n")
    with pytest.raises(ParamsError, match=f"larger than {MAX_PARAMS_BYTES // 1024} KiB"):
        load_params(path)
    assert main(["run", "--params", str(path)]) == 2
    assert len(capsys.readouterr().err) < 300


def test_a_long_list_under_the_size_limit_is_refused_on_its_node_count(tmp_path):
    text = "run: r\nparams:\n  n_boot: [" + "1," * (MAX_PARAMS_BYTES // 2 - 100) + "1]\n"
    with pytest.raises(ParamsError, match="more than 20000 values once its aliases"):
        load_params(_write(tmp_path, text))


@pytest.mark.parametrize("text, phrase", [
    ("run: r\nparams: &x {a: *x}\n", "recursive alias"),
    ("run: r\nparams: {a: " + "[" * 5000 + "]" * 5000 + "}\n", "nest"),
    ("run: r\nseed: 1" + "0" * 6000 + "\n", "a value cannot be read"),
])
def test_recursive_deep_or_huge_values_are_refused(tmp_path, text, phrase):
    with pytest.raises(ParamsError, match=phrase) as info:
        load_params(_write(tmp_path, text))
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("params, phrase", [
    ({"params": {"n_splits": -3}}, "params.n_splits must be a whole number 2..100, got -3"),
    ({"params": {"n_splits": 1}}, "params.n_splits must be a whole number 2..100"),
    ({"params": {"n_splits": 1e30}}, "params.n_splits must be a whole number 2..100, got 1e+30"),
    ({"params": {"n_splits": "5"}}, "params.n_splits"),
    ({"params": {"n_boot": [1, 2]}}, "params.n_boot must be a whole number 10..100000"),
    ({"params": {"n_boot": 10**9}}, "params.n_boot"),
    ({"notebook_params": {"04_x": {"n_splits": 0}}}, "notebook_params.04_x.n_splits"),
    ({"seed": -1}, "'seed' must be an integer 0..4294967295"),
    ({"seed": 2**40}, "'seed'"),
    ({"seed": True}, "'seed'"),
    ({"demo": {"clip_seconds": 1e9}}, "demo.clip_seconds"),
    ({"demo": {"n_per_class": 10**6}}, "demo.n_per_class"),
    ({"params": {"budget_s": float("nan")}}, "params.budget_s"),
    ({"params": {"probes": ["linear", "svm"]}}, "params.probes"),
    ({"params": {"batch_sizes": [0]}}, "params.batch_sizes"),
    ({"params": {"mine": "x" * 10**6}}, "params.mine must be plain data"),
    ({"params": {"bad key": 1}}, "must be a Python name"),
    ({"title": "t" * 10**6}, "'title' must be a string of at most 500"),
    ({"run": "r" * 10**6}, "'run' must be a name"),
])
def test_every_value_is_type_and_range_checked_naming_the_key(params, phrase):
    with pytest.raises(ParamsError) as info:
        validate_params({"run": "r", **params})
    assert phrase in str(info.value)
    assert len(str(info.value)) < 400  # never the whole of a huge value


def test_valid_values_pass():
    p = validate_params({"run": "r", "seed": 3, "params": {"n_splits": 5, "n_boot": 1000,
                                                           "probes": ["linear"]},
                         "notebook_params": {"07_compute": {"budget_s": 45.0}}})
    assert p["params"]["n_splits"] == 5 and p["seed"] == 3


def test_cache_dir_must_be_a_writable_folder(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParamsError, match="cache_dir .*file: exists and is not a folder"):
        validate_params({"run": "r", "cache_dir": str(tmp_path / "file")})
    with pytest.raises(ParamsError, match="cache_dir /proc: cannot write there.*cache_dir:"):
        validate_params({"run": "r", "cache_dir": "/proc"})
    assert validate_params({"run": "r", "cache_dir": str(tmp_path / "new" / "c")})["cache_dir"]
    # an mtbc cache is accepted even when it cannot be written (a fully cached run reads)
    import tempfile

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / ".mtbc-cache").write_text("{}")

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert validate_params({"run": "r", "cache_dir": str(tmp_path / "c")})
    (tmp_path / "d").mkdir()
    with pytest.raises(ParamsError, match="cache_dir .*d: cannot write there"):
        validate_params({"run": "r", "cache_dir": str(tmp_path / "d")})


def test_the_cli_knows_every_collection_kind():
    from mtbc.cli import COLLECTION_KINDS
    from mtbc.data.collection import KINDS

    assert COLLECTION_KINDS == KINDS


def test_a_bad_params_file_is_answered_without_the_audio_stack(tmp_path):
    import subprocess
    import sys

    path = _write(tmp_path, _bomb().replace("a0:", "run: r\na0:", 1))
    code = ("import sys; from mtbc.cli import main; rc = main(['run', '--params', sys.argv[1]]); "
            "heavy = [m for m in ('scipy', 'librosa', 'torch', 'pandas') if m in sys.modules]; "
            "print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ParamsError, match="not a regular file"):
        load_params(tmp_path / "fifo.yaml")
    with pytest.raises(ParamsError, match="not a regular file"):
        load_params("/dev/zero")
