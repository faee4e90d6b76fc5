"""Hygiene of committed notebooks: no outputs, no execution counts, one ``parameters`` cell.

``python -m mtbc.reports.hygiene check|strip notebooks/*.ipynb`` for make and for a
contributor; :func:`check_notebook` / :func:`strip_outputs` for tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from mtbc.reports.params import PARAMETERS_TAG


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs, execution counts and execution metadata from a notebook in place.

    Returns True when the file changed.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "ExecuteTime"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def check_notebook(path: str | os.PathLike) -> list[str]:
    """Problems that keep a notebook from being committed (empty list: clean).

    Checks: valid nbformat, no outputs, no execution counts, exactly one cell tagged
    ``parameters``. Fix the first two with :func:`strip_outputs`.
    """
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - any read/validation error is the finding
        return [f"{path}: not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}"]
    problems = []
    with_outputs = [i for i, c in enumerate(nb.cells) if c.get("outputs")]
    counted = [i for i, c in enumerate(nb.cells) if c.get("execution_count") is not None]
    tagged = [i for i, c in enumerate(nb.cells)
              if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if with_outputs:
        problems.append(f"{path}: cells {with_outputs} have outputs "
                        f"(run `python -m mtbc.reports.hygiene strip {path}`)")
    if counted:
        problems.append(f"{path}: cells {counted} have execution counts "
                        f"(run `python -m mtbc.reports.hygiene strip {path}`)")
    if len(tagged) != 1:
        problems.append(f"{path}: {len(tagged)} cells tagged 'parameters' (cells {tagged}); "
                        f"papermill needs exactly one")
    return problems


def check_notebooks(paths: Iterable[str | os.PathLike]) -> list[str]:
    """:func:`check_notebook` over ``paths`` (folders expand to their ``*.ipynb``)."""
    problems: list[str] = []
    for p in paths:
        p = Path(p)
        for nb_path in sorted(p.glob("*.ipynb")) if p.is_dir() else [p]:
            problems += check_notebook(nb_path)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtbc.reports.hygiene check|strip PATH...``: exit 1 when ``check`` finds problems."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mtbc.reports.hygiene",
                                     description="Keep committed notebooks clean.")
    parser.add_argument("action", choices=["check", "strip"])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    args = parser.parse_args(argv)
    if args.action == "strip":
        for p in args.paths:
            for nb_path in sorted(Path(p).glob("*.ipynb")) if Path(p).is_dir() else [Path(p)]:
                if strip_outputs(nb_path):
                    print(f"stripped {nb_path}")
        return 0
    problems = check_notebooks(args.paths)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
