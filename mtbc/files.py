"""File hashing and atomic writes: the bottom of the package, imported by every stage.

- :func:`content_hash`: sha256 of a file's bytes (the track key of the embedding cache, and the
  checksum of model weights and soundfonts).
- :func:`atomic_write`: write a temp file beside the target, fsync, rename; a reader never sees
  a half-written file and a killed writer leaves only a hidden ``.<name>.*.tmp`` file.
- :class:`StorageError`: a folder that cannot be written (read-only, no permission, full
  disk), raised by :func:`atomic_write` and :func:`check_writable` as one line naming it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

#: errno values that are the machine's fault, not the file's: answered by :class:`StorageError`.
STORAGE_ERRNOS = {errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                  errno.ENOSPC: "no space left on device",
                  errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "cannot create it there",
                  errno.ENOTDIR: "a part of the path is not a folder",
                  errno.EEXIST: "a file is in the way"}


class StorageError(OSError):
    """A folder mtbc cannot write to (read-only, no permission, full disk).

    One line naming the folder, what the OS said and how to fix it; ``folder`` is the folder,
    ``errno`` the OS's error number and ``need`` the bytes still to write, when known.
    """

    def __init__(self, folder: str | os.PathLike, err: int, *, need: int | None = None,
                 hint: str = ""):
        self.folder, self.need, self.hint = Path(folder), need, hint
        super().__init__(err, STORAGE_ERRNOS.get(err) or os.strerror(err))

    def with_hint(self, hint: str, *, need: int | None = None,
                  folder: str | os.PathLike | None = None) -> StorageError:
        """The same error with a fix (and the bytes still needed, or the folder to name:
        the cache rather than one of its subfolders) given."""
        return StorageError(self.folder if folder is None else folder, self.errno,
                            need=need if need is not None else self.need, hint=hint)

    def __str__(self) -> str:
        text = f"{self.folder}: cannot write here ({self.strerror})"
        if self.errno in (errno.ENOSPC, errno.EDQUOT):
            text += "; stopped, nothing half-written was kept"
            if self.need:
                text += f"; the rest needs about {_size(self.need)} more"
            text += "; free space there"
        if self.hint:
            text += f"; {self.hint}" if self.errno not in (errno.ENOSPC, errno.EDQUOT) \
                else f" or {self.hint}"
        return text


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


_CREATE_ONLY = {errno.ENOENT, errno.ENOTDIR, errno.EEXIST}


def storage_error(exc: OSError, folder: str | os.PathLike, *,
                  creating: bool = False) -> StorageError | None:
    """``exc`` as a :class:`StorageError` on ``folder`` when it is the machine's fault (see
    :data:`STORAGE_ERRNOS`; a short write, as numpy reports a full disk, counts as ENOSPC;
    missing path parts count only while ``creating`` the folder or file); else ``None``."""
    if isinstance(exc, StorageError):
        return exc
    err = exc.errno
    if err is None and "requested and" in str(exc) and "written" in str(exc):
        err = errno.ENOSPC  # numpy's tofile: "N requested and M written"
    if err not in STORAGE_ERRNOS or (err in _CREATE_ONLY and not creating):
        return None
    return StorageError(folder, err)


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


def check_writable(folder: str | os.PathLike, *, hint: str = "") -> None:
    """Raise :class:`StorageError` (with ``hint``) unless ``folder`` exists (or can be made)
    and takes a file: probed by creating and removing a hidden temp file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".mtbc-probe-", suffix=".tmp")
    except OSError as exc:
        fault = storage_error(exc, folder, creating=True)
        raise (fault.with_hint(hint) if fault else exc) from None
    os.close(fd)
    os.unlink(probe)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write through ``write(fileobj)`` into a temp file beside ``path``, then rename.

    A reader never sees a half-written file; a killed writer leaves only a hidden
    ``.<name>.*.tmp`` file, which no reader opens. The file gets the mode a plain ``open``
    would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    A folder that cannot be written (read-only, no permission, full disk) raises
    :class:`StorageError` naming it, with no temp file left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise (storage_error(exc, path.parent, creating=True) or exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (fault := storage_error(exc, path.parent)):
            raise fault from None
        raise
