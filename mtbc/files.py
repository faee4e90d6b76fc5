"""File hashing and atomic writes: the bottom of the package, imported by every stage.

- :func:`content_hash`: sha256 of a file's bytes (the track key of the embedding cache, and the
  checksum of model weights and soundfonts).
- :func:`atomic_write`: write a temp file beside the target, fsync, rename; a reader never sees
  a half-written file and a killed writer leaves only a hidden ``.<name>.*.tmp`` file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def content_hash(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write through ``write(fileobj)`` into a temp file beside ``path``, then rename.

    A reader never sees a half-written file; a killed writer leaves only a hidden
    ``.<name>.*.tmp`` file, which no reader opens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
