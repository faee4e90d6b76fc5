"""Music collections as one tracks table (an index in the mirdata sense).

A collection is a pandas table with one row per track:

``track_id, path, label, artist, split, group`` (+ any extra columns of a CSV manifest), and
after :func:`scan` also ``content_hash, duration, sample_rate, channels``.

Builders: :func:`from_folder` (``root/<label>/*.wav``; files directly in ``root`` are
unlabelled), :func:`from_csv` (a manifest; relative paths resolve against the CSV),
:func:`from_gtzan` (``genres/<genre>/<genre>.000NN.wav`` with the fault-filtered split),
:func:`from_demo` (the rendered demo corpus), and for tagged collections
:func:`mtbc.data.mtat.from_mtat` (MagnaTagATune) and :func:`mtbc.data.openmic.from_openmic`
(OpenMIC-2018), which add ``tags`` / ``tags_negative`` (tuples of tag names, see
:mod:`mtbc.data.tags`). :func:`load_collection` picks one and scans.

Scanning decodes every file once: unreadable files go to a ``skipped`` table with the reason
instead of stopping the scan. Exact duplicates (same file content hash) are kept once, the
first in split order train, valid, test, then table order; the others are listed as skipped,
so a duplicate can never sit on both sides of a split. ``group`` is the artist when known,
else the track, and is what evaluation splits keep together.

GTZAN policy for ``jazz.00054``: it is listed in the fault-filtered train split but is corrupt
in common copies. It is scanned like any file: if it does not decode it lands in ``skipped``
with the decoder's reason and train has 442 tracks; a good copy is used as is.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mtbc import config
from mtbc.data.audio import AUDIO_EXTENSIONS, DEFAULT_MAX_DURATION, AudioError, probe_audio
from mtbc.data.core import (
    SCAN_COLUMNS,
    SKIPPED_COLUMNS,
    SPLIT_ORDER,
    TRACK_COLUMNS,
    Collection,
    CollectionError,
    make_table,
)
from mtbc.data.duplicates import link_duplicates
from mtbc.data.mtat import find_mtat_root, from_mtat
from mtbc.data.openmic import find_openmic_root, from_openmic
from mtbc.data.tags import as_tuples, complete_negatives
from mtbc.files import StorageError, atomic_write, content_hash

__all__ = ["GTZAN_GENRES", "GTZAN_SPLIT_SHA256", "KINDS", "SCAN_COLUMNS", "SCAN_VERSION",
           "SKIPPED_COLUMNS", "SPLIT_ORDER", "TRACK_COLUMNS", "Collection", "CollectionError",
           "find_gtzan_root", "from_csv", "from_demo", "from_folder", "from_gtzan",
           "from_mtat", "from_openmic", "gtzan_split_lists", "load_collection", "make_table",
           "open_collection", "scan"]

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                "reggae", "rock")
#: sha256 of the packaged fault-filtered split lists (Kereliuk et al., as used by MARBLE/jukemir).
GTZAN_SPLIT_SHA256 = {
    "train": "2b04966cef1486f1a7767b74271533fa23e220388db804a1937835e1fc4fa3fa",
    "valid": "f8fbee7c52397a0e0f3a91dc54fedecb2e27f5bdc9a9daeab8cb10d077e26956",
    "test": "09cafa6a89ce0a27f30ed250d56ecb4d03c22fffb5a693f96c7ae655ee02ac72",
}


# -- helpers ---------------------------------------------------------------------------
def _is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


# -- builders (unscanned tables) ---------------------------------------------------------
def from_folder(root: str | Path) -> pd.DataFrame:
    """``root/<label>/**/<file>``: the first folder level is the label; files in root are unlabelled."""
    root = Path(root)
    if not root.is_dir():
        raise CollectionError(f"{root}: not a folder")
    rows = []
    for path in sorted(root.rglob("*")):
        if not _is_audio_name(path):
            continue
        rel = path.relative_to(root)
        rows.append({"track_id": rel.with_suffix("").as_posix(), "path": str(path.absolute()),
                     "label": rel.parts[0] if len(rel.parts) > 1 else None})
    if not rows:
        raise CollectionError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return make_table(rows)


def from_csv(csv_path: str | Path) -> pd.DataFrame:
    """A manifest with a ``path`` column (relative paths resolve against the CSV's folder).

    Optional columns: ``label``, ``track_id`` (default: path without extension), ``artist``,
    ``split`` (train/valid/test), ``group``, ``tags`` (``;``-separated, with an optional
    ``tags_negative`` beside it; without it, every tag a row does not list is absent, see
    :mod:`mtbc.data.tags`); other columns are kept (e.g. provenance).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CollectionError(f"{csv_path}: manifest not found")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CollectionError(f"{csv_path}: not a readable CSV ({exc})") from exc
    if "path" not in df.columns:
        raise CollectionError(f"{csv_path}: the manifest needs a 'path' column "
                              f"(found: {', '.join(df.columns)})")
    base = csv_path.parent
    df["path"] = [str((base / p).absolute()) if not Path(p).is_absolute() else p
                  for p in df["path"].fillna("")]
    if "track_id" not in df.columns:
        df["track_id"] = [Path(p).relative_to(base.absolute()).with_suffix("").as_posix()
                          if Path(p).is_relative_to(base.absolute()) else Path(p).stem
                          for p in df["path"]]
    if df["track_id"].duplicated().any():
        dup = df.loc[df["track_id"].duplicated(), "track_id"].iloc[0]
        raise CollectionError(f"{csv_path}: track_id {dup!r} appears more than once")
    if "split" in df.columns:
        bad = set(df["split"].dropna()) - set(SPLIT_ORDER)
        if bad:
            raise CollectionError(f"{csv_path}: unknown split value(s) {sorted(bad)}; "
                                  f"use {', '.join(SPLIT_ORDER)} or leave empty")
    if "tags" in df.columns:
        df["tags"] = as_tuples(df["tags"])
        df["tags_negative"] = (as_tuples(df["tags_negative"]) if "tags_negative" in df.columns
                               else complete_negatives(list(df["tags"])))
    return make_table(df.to_dict("records"))


def gtzan_split_lists() -> dict[str, list[str]]:
    """The packaged fault-filtered split (443/197/290 relative paths), checksum-verified."""
    lists = {}
    for split, digest in GTZAN_SPLIT_SHA256.items():
        data = resources.files("mtbc").joinpath(f"data/gtzan/{split}_filtered.txt").read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise CollectionError(f"packaged GTZAN {split} split list fails its checksum; "
                                  f"reinstall mtbc")
        lists[split] = data.decode().split()
    return lists


def find_gtzan_root(root: str | Path) -> Path | None:
    """The folder holding ``<genre>/<genre>.000NN.wav`` under ``root`` (itself, genres/...)."""
    root = Path(root)
    for cand in (root, root / "genres", root / "genres_original", root / "Data" / "genres_original"):
        if (cand / "blues").is_dir() and any((cand / "blues").glob("blues.000*.*")):
            return cand
    return None


def from_gtzan(root: str | Path) -> pd.DataFrame:
    """GTZAN with the fault-filtered split; files outside the split lists are left out."""
    genres = find_gtzan_root(root)
    if genres is None:
        raise CollectionError(f"{root}: no GTZAN layout found (expected "
                              f"genres/<genre>/<genre>.000NN.wav below it)")
    rows = []
    for split, names in gtzan_split_lists().items():
        for rel in names:
            genre, fname = rel.split("/")
            rows.append({"track_id": Path(fname).stem, "path": str((genres / rel).absolute()),
                         "label": genre, "split": split})
    return make_table(rows)


def from_demo(root: str | Path | None = None) -> pd.DataFrame:
    """The rendered demo corpus (``mtbc demo`` builds it)."""
    manifest = Path(root or config.demo_dir()) / "manifest.csv"
    if not manifest.is_file():
        raise CollectionError(f"{manifest}: the demo corpus is not built yet; run `mtbc demo`")
    return from_csv(manifest)


# -- scanning ------------------------------------------------------------------------------
def _utf8(text: object) -> bool:
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _split_unnamed(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, skipped)``: rows whose file name is not valid UTF-8 are skipped with that
    reason (their bytes shown as ``\\xNN``): such a name cannot go into the JSON, CSV and
    HTML a run writes, though the audio may be fine."""
    bad = [not _utf8(p) for p in table["path"]]
    if not any(bad):
        return table, pd.DataFrame(columns=SKIPPED_COLUMNS)
    shown = {k: [os.fsencode(str(v)).decode("utf-8", "backslashreplace") if isinstance(v, str)
                 else v for v in table.loc[bad, k]] for k in ("track_id", "path", "label")}
    skipped = pd.DataFrame(shown)
    skipped["reason"] = ("file name is not valid UTF-8 (the audio was not read); rename it "
                         "to UTF-8, e.g. `convmv -f latin1 -t utf8 --notest <file>`")
    return table.loc[[not b for b in bad]].reset_index(drop=True), skipped[SKIPPED_COLUMNS]


def _probe(path: str, max_duration: float = DEFAULT_MAX_DURATION) -> dict:
    p = Path(path)
    # validates block by block (bounded memory): raises AudioError naming the file and reason
    info = probe_audio(p, max_duration=max_duration)
    return {"content_hash": content_hash(p), "duration": info.duration,
            "sample_rate": info.sample_rate, "channels": info.channels}


def scan(table: pd.DataFrame, *, name: str = "collection", source: str = "",
         min_duration: float = 0.0, progress: bool = True, workers: int | None = None,
         max_duration: float = DEFAULT_MAX_DURATION, near_duplicates: bool = True) -> Collection:
    """Decode and hash every file; bad ones go to ``skipped`` with the reason.

    Any failure while reading or validating one file (not only :class:`AudioError`) makes
    that file a skipped row; the scan goes on. ``max_duration`` (s) refuses longer files
    on their header, before decoding.

    Exact duplicates (same content hash) are kept once (first in split order, then table
    order); the others are skipped as duplicates. Then
    :func:`mtbc.data.duplicates.link_duplicates` links near duplicates (unless
    ``near_duplicates`` is false) and lists label conflicts.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    results: list[dict | str] = [None] * len(table)  # type: ignore[list-item]

    def work(i_path):
        i, path = i_path
        try:
            results[i] = _probe(path, max_duration)
        except AudioError as exc:
            results[i] = exc.reason
        except OSError as exc:  # permission denied and the like
            results[i] = f"cannot read ({exc.strerror or exc})"
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the scan
            results[i] = f"cannot read ({type(exc).__name__}: {exc})"

    paths = list(enumerate(table["path"]))
    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(work, paths), total=len(paths), desc=f"scan {name}",
                  unit="file", disable=not progress))

    ok = [isinstance(r, dict) for r in results]
    tracks = table.loc[ok].copy()
    scanned = pd.DataFrame([r for r in results if isinstance(r, dict)], index=tracks.index)
    for col in SCAN_COLUMNS:
        tracks[col] = scanned[col] if len(scanned) else pd.Series(dtype=object)
    skipped = table.loc[[not x for x in ok], ["track_id", "path", "label"]].copy()
    skipped["reason"] = [r for r in results if not isinstance(r, dict)]

    too_short = tracks["duration"] < min_duration
    if too_short.any():
        short = tracks.loc[too_short, ["track_id", "path", "label"]].copy()
        short["reason"] = [f"too short: {d:.3f} s, the minimum is {min_duration:.3f} s"
                           for d in tracks.loc[too_short, "duration"]]
        skipped = pd.concat([skipped, short])
        tracks = tracks.loc[~too_short]

    order = tracks["split"].map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(len(SPLIT_ORDER))
    tracks = tracks.assign(_order=order, _pos=np.arange(len(tracks))).sort_values(["_order", "_pos"])
    first = tracks.drop_duplicates("content_hash")
    dups = tracks.loc[~tracks.index.isin(first.index)]
    if len(dups):
        keep_id = dict(zip(first["content_hash"], first["track_id"], strict=True))
        d = dups[["track_id", "path", "label"]].copy()
        d["reason"] = [f"exact duplicate of {keep_id[h]} (same file content)"
                       for h in dups["content_hash"]]
        skipped = pd.concat([skipped, d])
    tracks = first.sort_values("_pos").drop(columns=["_order", "_pos"]).reset_index(drop=True)
    coll = Collection(tracks=tracks, skipped=skipped[SKIPPED_COLUMNS].reset_index(drop=True),
                      name=name, source=source)
    return link_duplicates(coll, exact=dups, near=near_duplicates, workers=workers,
                           progress=progress)


KINDS = ("demo", "csv", "gtzan", "mtat", "openmic", "folder")
#: Bumped when validation or the cached scan's format changes, so that scans cached by older
#: rules are redone (3: near duplicates, the duplicates and conflicts tables).
SCAN_VERSION = 3


def _scan_key(table: pd.DataFrame, *, kind: str, spec: str, min_duration: float,
              max_duration: float = DEFAULT_MAX_DURATION) -> str:
    """Changes when the table or any file's size or modification time changes."""
    stats = []
    for p in table["path"]:
        try:
            st = os.stat(p)
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append(None)
    payload = json.dumps([SCAN_VERSION, kind, spec, min_duration, max_duration,
                          table.to_json(), stats], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def load_collection(spec: str | Path, *, kind: str = "auto", progress: bool = True,
                    min_duration: float = 0.0, scan_cache: str | Path | None = None,
                    max_duration: float = DEFAULT_MAX_DURATION, near_duplicates: bool = True) -> Collection:
    """Build and scan a collection from ``spec``.

    ``spec``: ``"demo"``, a CSV manifest, a GTZAN, MagnaTagATune or OpenMIC-2018 root or a
    folder of label folders; a ``kind:`` prefix (``"mtat:/data/MTAT"``) forces the layout, as
    does ``kind`` (``"auto"`` default, or one of :data:`KINDS`).
    ``scan_cache``: a folder where the scan result is kept and reused while no file changed
    size or modification time (saves decoding every file again in each notebook).
    ``max_duration``: longest file accepted (s), checked on its header before decoding.
    """
    spec_str = str(spec)
    prefix, sep, rest = spec_str.partition(":")
    if kind == "auto" and sep and prefix in KINDS:
        kind, spec_str = prefix, rest
    if kind == "auto":
        path = Path(spec_str)
        if spec_str == "demo":
            kind = "demo"
        elif path.suffix.lower() == ".csv":
            kind = "csv"
        elif path.is_dir() and find_gtzan_root(path) is not None:
            kind = "gtzan"
        elif path.is_dir() and find_openmic_root(path) is not None:
            kind = "openmic"
        elif path.is_dir() and find_mtat_root(path) is not None:
            kind = "mtat"
        elif path.is_dir():
            kind = "folder"
        else:
            raise CollectionError(f"{spec}: not found (give 'demo', a CSV manifest or a folder)")
    builders = {"demo": lambda: from_demo(None if spec_str in ("demo", "") else spec_str),
                "csv": lambda: from_csv(spec_str), "gtzan": lambda: from_gtzan(spec_str),
                "mtat": lambda: from_mtat(spec_str), "openmic": lambda: from_openmic(spec_str),
                "folder": lambda: from_folder(spec_str)}
    if kind not in builders:
        raise ValueError(f"kind must be one of auto, {', '.join(builders)}; not {kind!r}")
    table, unnamed = _split_unnamed(builders[kind]())
    name = "demo" if kind == "demo" else Path(spec_str).stem or kind
    source = f"{kind}:{spec_str}"
    cached = None
    if scan_cache is not None:
        key = _scan_key(table, kind=kind, spec=spec_str, min_duration=min_duration,
                        max_duration=max_duration)
        cached = Path(scan_cache) / "scans" / f"{name}-{key}.json"
        if cached.is_file():
            try:
                return Collection.from_json(cached.read_text(encoding="utf-8"))
            except (ValueError, KeyError, TypeError, OSError):
                pass  # a damaged scan cache is redone
    coll = scan(table, name=name, source=source, progress=progress, min_duration=min_duration,
                max_duration=max_duration)
    if len(unnamed):
        coll.skipped = pd.concat([coll.skipped, unnamed], ignore_index=True)
    if cached is not None:
        text = coll.to_json().encode()
        try:
            atomic_write(cached, lambda f: f.write(text))
        except StorageError:
            pass  # a read-only or full cache: the scan is only not reused next time
    return coll


def open_collection(spec: str | Path, *, cache_dir: str | Path | None = None,
                    progress: bool = True) -> Collection:
    """The scanned collection of a run, reusing the scan cached beside the embeddings
    (``cache_dir``, default :func:`mtbc.config.cache_dir`) while no file changed."""
    return load_collection(spec, scan_cache=config.cache_dir(cache_dir), progress=progress)
