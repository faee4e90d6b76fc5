"""A run's report folder (``reports/<run>/``): what mtbc wrote there, and the swap that
replaces it without losing anything else.

mtbc writes a run into a fresh hidden folder beside ``<run>/`` and swaps it in when the run
ends. A file of the old folder is mtbc's only when :data:`RECORD` (written by the run that
made the folder) lists it with the same bytes, or, for a folder made before the record
existed, when it has a name a run writes and the folder holds a ``run.json``. Every other
file (a ``notes.txt`` the user keeps there) is carried over into the new folder; one whose
name the new run also writes is refused, naming it, before anything is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: The record of every file a run wrote into its folder (relative path -> sha256).
RECORD = ".mtbc-report.json"
#: How to fix a reports folder that cannot be written.
REPORTS_HINT = "give a writable reports folder with MTBC_REPORTS (or MTBC_HOME)"
#: Names every run writes at the top of its folder (besides ``<notebook>.ipynb/.html``).
RUN_FILES = ("index.html", "params.yaml", "run.json", "results.csv", "predictions.csv")


class ReportFolderError(ValueError):
    """The report folder holds files mtbc did not write in the way of the new run."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and not (p.is_dir() and not p.is_symlink()))


def write_record(folder: Path) -> None:
    """Record every file now in ``folder`` as written by this run."""
    owned = {rel: _sha256(folder / rel) for rel in _files(folder)
             if rel != RECORD and not (folder / rel).is_symlink()}
    (folder / RECORD).write_text(json.dumps(owned, indent=1, sort_keys=True), encoding="utf-8")


def _owned(folder: Path) -> dict[str, str] | None:
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def foreign_files(folder: Path) -> list[str]:
    """Files (relative paths) under ``folder`` that mtbc cannot prove it wrote."""
    if not folder.is_dir():
        return []
    owned = _owned(folder)
    out = []
    for rel in _files(folder):
        path = folder / rel
        if rel == RECORD and owned is not None:
            continue
        if owned is not None:
            ours = (rel in owned and not path.is_symlink() and path.is_file()
                    and _sha256(path) == owned[rel])
        else:  # a folder made before the record existed
            ours = ((folder / "run.json").is_file() and "/" not in rel and not path.is_symlink()
                    and (rel in RUN_FILES or rel.endswith((".ipynb", ".html"))))
        if not ours:
            out.append(rel)
    return out


def _refuse(folder: Path, clash: list[str]) -> ReportFolderError:
    more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
    return ReportFolderError(
        f"{folder}: holds {clash[0]!r}{more}, which mtbc did not write and the new run would "
        f"replace; nothing was changed; move {'them' if more else 'it'} away or choose "
        f"another run name")


def check_clashes(folder: Path, names: Iterable[str]) -> None:
    """Refuse (before any work) when a file mtbc did not write has a name the run writes."""
    names = set(names)
    clash = [rel for rel in foreign_files(folder) if rel in names]
    if clash:
        raise _refuse(folder, clash)


def check_folder(final_dir: Path, notebooks: Iterable[Path]) -> None:
    """Before any work: the reports folder must take files (:class:`StorageError` naming it
    otherwise), and no file mtbc did not write may have a name the run writes."""
    from mtbc.files import check_writable

    check_writable(final_dir.parent, hint=REPORTS_HINT)
    check_clashes(final_dir, [*RUN_FILES, *(f"{Path(nb).stem}{ext}" for nb in notebooks
                                            for ext in (".ipynb", ".html"))])


def swap_in(out_dir: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` by ``out_dir``, carrying over every file mtbc did not write.

    The user's files are hard-linked (copied where links fail) into ``out_dir`` first, so
    they exist in the old and the new folder at every moment; a clash with a file of the
    new run raises :class:`ReportFolderError` with nothing replaced.
    """
    foreign = foreign_files(final_dir)
    clash = [rel for rel in foreign if (out_dir / rel).exists() or (out_dir / rel).is_symlink()]
    if clash:
        raise _refuse(final_dir, clash)
    write_record(out_dir)  # before the user's files join: they are never recorded as ours
    for rel in foreign:
        src, dst = final_dir / rel, out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)
    old = None
    if final_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.old-", dir=final_dir.parent))
        os.rmdir(old)
        os.replace(final_dir, old)
    os.replace(out_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(final_dir: Path) -> None:
    """Folders left by killed runs: ``.<run>.new-*`` (partial pages; the user's files in it
    are links of files still in ``<run>/``) are removed; a ``.<run>.old-*`` whose swap was
    cut short before ``<run>/`` came back is renamed back to ``<run>/``."""
    for stale in final_dir.parent.glob(f".{final_dir.name}.old-*"):
        if not final_dir.exists():
            os.replace(stale, final_dir)
        elif not foreign_files(stale) or all(
                (final_dir / rel).exists() for rel in foreign_files(stale)):
            shutil.rmtree(stale, ignore_errors=True)
    for stale in final_dir.parent.glob(f".{final_dir.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)
