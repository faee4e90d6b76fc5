"""Where data, caches and reports live. Every path can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """Root of a run: ``$MTBC_HOME`` if set, else the current directory."""
    return Path(os.environ.get("MTBC_HOME", ".")).resolve()


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
