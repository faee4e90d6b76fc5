"""Where data, caches and reports live. Every path can be moved with an environment variable.

Paths hang off the *project* (:func:`project_root`), not the current directory: a JupyterLab
kernel starts in ``notebooks/`` and must find the same ``data/`` and ``reports/`` as ``mtbc
run`` started in the project folder.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def _is_project(folder: Path) -> bool:
    """A folder holding ``params/`` and ``notebooks/``, or a ``pyproject.toml`` naming mtbc."""
    if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
        return True
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return False
    return name == "mtbc"


def project_root() -> Path:
    """Root of a run: ``$MTBC_HOME`` if set, else the project holding the current directory.

    The project is the nearest folder, from the current directory upward, that holds
    ``params/`` and ``notebooks/`` (or a ``pyproject.toml`` naming mtbc); the current
    directory itself when there is none.

    Examples
    --------
    A kernel started in ``<project>/notebooks`` gets ``<project>``:

    >>> import os; os.chdir("notebooks")  # doctest: +SKIP
    >>> project_root()  # doctest: +SKIP
    PosixPath('/home/me/mtbc')
    """
    home = os.environ.get("MTBC_HOME")
    if home:
        return Path(home).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    return here


def data_dir() -> Path:
    """User audio and the rendered demo corpus (``$MTBC_DATA`` or ``<root>/data``)."""
    return Path(os.environ.get("MTBC_DATA", project_root() / "data")).resolve()


def demo_dir() -> Path:
    """The rendered demo corpus."""
    return data_dir() / "demo"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The embedding cache: ``override`` (a run's ``cache_dir:``) if given, else
    ``$MTBC_CACHE``, else ``<data>/cache``."""
    if override:
        return Path(override)
    return Path(os.environ.get("MTBC_CACHE", data_dir() / "cache")).resolve()


def reports_dir() -> Path:
    """HTML reports (``$MTBC_REPORTS`` or ``<root>/reports``)."""
    return Path(os.environ.get("MTBC_REPORTS", project_root() / "reports")).resolve()


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask: a Slurm allocation, a container's
    cpuset), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
