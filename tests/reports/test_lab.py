"""JupyterLab: paths from the project folder, and a notebook opened by hand continues a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mtbc import config
from mtbc.reports.lab import Continuation, injected, lab_parameters, run_folders
from mtbc.reports.params import validate_params


def _project(root: Path) -> Path:
    (root / "params").mkdir(parents=True)
    (root / "notebooks").mkdir()
    return root


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("MTBC_HOME", "MTBC_DATA", "MTBC_CACHE", "MTBC_REPORTS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_project_root_is_found_from_the_notebooks_folder(tmp_path, clean_env):
    root = _project(tmp_path / "proj")
    clean_env.chdir(root / "notebooks")
    assert config.project_root() == root.resolve()
    assert config.reports_dir() == root.resolve() / "reports"
    assert config.cache_dir() == root.resolve() / "data" / "cache"


def test_project_root_is_a_pyproject_naming_mtbc(tmp_path, clean_env):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mtbc"\n')
    (tmp_path / "deep" / "er").mkdir(parents=True)
    clean_env.chdir(tmp_path / "deep" / "er")
    assert config.project_root() == tmp_path.resolve()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert config.project_root() == (tmp_path / "deep" / "er").resolve()


def test_without_a_project_the_current_folder_and_mtbc_home_wins(tmp_path, clean_env):
    clean_env.chdir(tmp_path)
    assert config.project_root() == tmp_path.resolve()
    root = _project(tmp_path / "proj")
    clean_env.chdir(root / "notebooks")
    clean_env.setenv("MTBC_HOME", str(tmp_path / "home"))
    assert config.project_root() == (tmp_path / "home").resolve()
    assert config.data_dir() == (tmp_path / "home" / "data").resolve()


def _write_run(reports: Path, name: str, mtime: float, **overrides) -> Path:
    raw = {"run": name, "collection": "demo:/somewhere/demo", "seed": 7,
           "extractors": {"mert": {"model": "data/fixtures/mert-tiny"}, "mfcc": {}},
           "params": {"n_splits": 3, "n_boot": 200},
           "notebook_params": {"04_train_classifiers": {"probes": ["linear"]}}, **overrides}
    folder = reports / name
    folder.mkdir(parents=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(validate_params(raw)), encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return folder


def _defaults() -> dict:
    """What the parameters cell of notebook 04 leaves in the kernel."""
    return {"run": "lab", "collection": "demo", "extractors": {"mfcc": {"name": "mfcc"}},
            "cache_dir": None, "run_record": None, "seed": 0, "probes": ["linear", "mlp"],
            "n_splits": 5, "n_boot": 1000, "lab_run": "latest", "Optional": object,
            "_ih": ["", "from typing import Optional\nseed: int = 0"]}


def test_a_notebook_opened_by_hand_continues_the_latest_run(tmp_path, clean_env):
    root = _project(tmp_path / "proj")
    _write_run(root / "reports", "old", 1_000_000, seed=1)
    _write_run(root / "reports", "new", 2_000_000)
    assert [d.name for d in run_folders(root / "reports")] == ["new", "old"]
    clean_env.chdir(root / "notebooks")
    ns = _defaults()
    got = lab_parameters(ns, "04_train_classifiers")
    assert isinstance(got, Continuation) and got.run == "new"
    assert Path.cwd() == root.resolve()  # where `mtbc run` starts its kernels
    assert ns["run"] == "new" and ns["seed"] == 7 and ns["n_splits"] == 3
    assert ns["collection"] == "demo:/somewhere/demo"
    assert ns["extractors"] == {"mert": {"name": "mert", "model": "data/fixtures/mert-tiny"},
                                "mfcc": {"name": "mfcc"}}
    assert ns["probes"] == ["linear"]  # the run's notebook_params for this notebook
    assert ns["run_record"] is None  # never writes into the run's folder
    assert "protocol" not in ns  # only names the parameters cell declares
    text = got._repr_markdown_()
    assert "continues run new" in text and "n\\_splits 5 → 3" in text
    assert "`lab_run = None`" in text
    # another notebook gets the shared values, not 04's
    ns = _defaults()
    lab_parameters(ns, "05_ensemble")
    assert ns["probes"] == ["linear", "mlp"] and ns["seed"] == 7


def test_a_named_run_none_or_no_run(tmp_path, clean_env):
    root = _project(tmp_path / "proj")
    _write_run(root / "reports", "old", 1_000_000, seed=1)
    _write_run(root / "reports", "new", 2_000_000)
    clean_env.chdir(root / "notebooks")
    ns = {**_defaults(), "lab_run": "old"}
    assert lab_parameters(ns, "04_train_classifiers").run == "old" and ns["seed"] == 1
    ns = {**_defaults(), "lab_run": None}
    got = lab_parameters(ns, "04_train_classifiers")
    assert got.run is None and ns == {**_defaults(), "lab_run": None}
    assert "parameters cell's own values" in got.describe()
    with pytest.raises(ValueError, match=r"lab_run='gone': no run of that name .*old"):
        lab_parameters({**_defaults(), "lab_run": "gone"}, "04_train_classifiers")
    empty = _project(tmp_path / "empty")
    clean_env.chdir(empty / "notebooks")
    ns = _defaults()
    got = lab_parameters(ns, "04_train_classifiers")
    assert got.run is None and ns == _defaults()
    assert "no run of mtbc run found" in got.describe()


def test_nothing_changes_when_papermill_injected_parameters(tmp_path, clean_env):
    root = _project(tmp_path / "proj")
    _write_run(root / "reports", "new", 2_000_000)
    clean_env.chdir(root / "notebooks")
    ns = {**_defaults(), "run_record": str(root / "reports" / "new" / "run.json")}
    assert injected(ns) and lab_parameters(ns, "04_train_classifiers") is None
    assert ns["seed"] == 0 and Path.cwd() == (root / "notebooks").resolve()
    ns = {**_defaults(), "_ih": ["", "seed = 0", "# Parameters\nseed = 3\n"], "seed": 3}
    assert lab_parameters(ns, "04_train_classifiers") is None and ns["seed"] == 3
