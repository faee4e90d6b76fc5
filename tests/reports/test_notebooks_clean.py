"""Committed notebooks carry no outputs or execution counts and one ``parameters`` cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mtbc.reports.hygiene import check_notebook, check_notebooks, main, strip_outputs

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    assert check_notebook(path) == []


def _notebook(path: Path, *, n_parameters: int = 1, executed: bool = False) -> Path:
    nb = nbformat.v4.new_notebook()
    for _ in range(n_parameters):
        cell = nbformat.v4.new_code_cell("seed: int = 0  # random seed")
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    code = nbformat.v4.new_code_cell("print(seed)")
    if executed:
        code.execution_count = 1
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="0\n")]
        code.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    nb.cells.append(code)
    nbformat.write(nb, path)
    return path


def test_checker_flags_outputs_and_strip_fixes_them(tmp_path):
    path = _notebook(tmp_path / "01_x.ipynb", executed=True)
    problems = check_notebook(path)
    assert any("have outputs" in p for p in problems)
    assert any("execution counts" in p for p in problems)
    assert main(["check", str(tmp_path)]) == 1
    assert strip_outputs(path) is True
    assert check_notebook(path) == []
    assert strip_outputs(path) is False  # nothing left to strip
    assert "execution" not in nbformat.read(path, as_version=4).cells[1].metadata
    assert main(["check", str(path)]) == 0


@pytest.mark.parametrize("n", [0, 2])
def test_checker_wants_exactly_one_parameters_cell(tmp_path, n):
    path = _notebook(tmp_path / "01_x.ipynb", n_parameters=n)
    (problem,) = check_notebook(path)
    assert f"{n} cells tagged 'parameters'" in problem


def test_checker_flags_invalid_notebook(tmp_path):
    bad = tmp_path / "02_bad.ipynb"
    bad.write_text('{"cells": "not a list"}')
    _notebook(tmp_path / "01_ok.ipynb")
    (problem,) = check_notebooks([tmp_path])
    assert "02_bad.ipynb: not a valid notebook" in problem
