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


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write through ``write(fileobj)`` into a temp file beside ``path``, then rename.

    A reader never sees a half-written file; a killed writer leaves only a hidden
    ``.<name>.*.tmp`` file, which no reader opens. The file gets the mode a plain ``open``
    would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
