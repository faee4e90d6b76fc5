"""OpenMIC-2018 as a tagged tracks table, mirdata style (``docs/tagging.md``).

Users download the data set themselves (mtbc never redistributes it). Expected layout::

    <root>/openmic-2018.npz            Y_true (n, 20) float, Y_mask (n, 20) bool,
                                       sample_key (n,) str, X (n, 10, 128) uint8 VGGish
    <root>/class-map.json              instrument name -> column index (20 instruments)
    <root>/partitions/split01_train.csv, split01_test.csv   one sample_key per line
    <root>/audio/<key[:3]>/<key>.ogg   10 s clips

- Tags: instrument ``j`` is *present* where ``Y_mask[:, j]`` and ``Y_true[:, j] >= 0.5``,
  *absent* where masked in and below 0.5, *unknown* (masked out of training and metrics)
  where ``Y_mask`` is False.
- Split: the official ``split01`` train / test. Validation: a grouped, seeded 1/8 of the
  train groups (:func:`carve_valid`; groups are FMA tracks, the ``sample_key`` before ``_``),
  so choices are never made on test clips.
- ``X``: the official VGGish features (AudioSet release, PCA-whitened and quantised to
  uint8); :func:`official_vggish` reads them and :func:`vggish_agreement` compares them with
  mtbc's VGGish ``postprocess: pca_uint8`` output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc.data.core import CollectionError, make_table

NPZ = "openmic-2018.npz"
CLASS_MAP = "class-map.json"
VALID_FRACTION = 1 / 8


def find_openmic_root(root: str | Path) -> Path | None:
    """The folder holding ``openmic-2018.npz`` (``root`` itself or ``root/openmic-2018``)."""
    root = Path(root)
    for cand in (root, root / "openmic-2018"):
        if (cand / NPZ).is_file():
            return cand
    return None


def _error(msg: str):
    return CollectionError(msg)


def _load_npz(base: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(base / NPZ, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise _error(f"{base / NPZ}: not a readable OpenMIC archive ({exc})") from exc


def class_names(base: Path) -> list[str]:
    """Instrument names in column order (from ``class-map.json``)."""
    try:
        mapping = json.loads((base / CLASS_MAP).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _error(f"{base / CLASS_MAP}: not a readable class map ({exc})") from exc
    return [name for name, _ in sorted(mapping.items(), key=lambda kv: int(kv[1]))]


def read_partition(base: Path, name: str) -> list[str]:
    """Sample keys of ``partitions/<name>.csv`` (one per line, no header)."""
    path = base / "partitions" / f"{name}.csv"
    if not path.is_file():
        raise _error(f"{path}: partition file not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def group_of(key: str) -> str:
    """The FMA track a sample key belongs to: ``000046_3840`` -> ``000046``."""
    return str(key).split("_")[0]


def carve_valid(keys: list[str], *, seed: int = 0, fraction: float = VALID_FRACTION
                ) -> set[str]:
    """A grouped, seeded ``fraction`` of ``keys``: groups in a seeded random order are taken
    until they hold ``round(fraction * len(keys))`` keys (at least one group)."""
    groups = pd.Series(keys).map(group_of)
    order = np.random.default_rng(seed).permutation(np.array(sorted(set(groups))))
    target = max(1, round(fraction * len(keys)))
    sizes = groups.value_counts()
    picked, n = set(), 0
    for g in order:
        if n >= target:
            break
        picked.add(g)
        n += int(sizes[g])
    return {k for k, g in zip(keys, groups, strict=True) if g in picked}


def from_openmic(root: str | Path, *, partition: str = "split01", seed: int = 0
                 ) -> pd.DataFrame:
    """The OpenMIC-2018 tracks table (unscanned): ``tags`` / ``tags_negative`` from
    ``Y_true`` and ``Y_mask``, ``split`` train / valid / test, ``group`` the FMA track."""
    base = find_openmic_root(root)
    if base is None:
        raise _error(f"{root}: no OpenMIC-2018 layout found (expected {NPZ}, {CLASS_MAP}, "
                     f"partitions/ and audio/)")
    z = _load_npz(base)
    missing = {"Y_true", "Y_mask", "sample_key"} - set(z)
    if missing:
        raise _error(f"{base / NPZ}: missing arrays {sorted(missing)}")
    names = class_names(base)
    Y, M, keys = z["Y_true"], z["Y_mask"].astype(bool), z["sample_key"].astype(str)
    if Y.shape != M.shape or Y.shape != (len(keys), len(names)):
        raise _error(f"{base / NPZ}: Y_true {Y.shape}, Y_mask {M.shape} and {len(keys)} keys "
                     f"do not match {len(names)} classes")
    train = read_partition(base, f"{partition}_train")
    test = set(read_partition(base, f"{partition}_test"))
    valid = carve_valid(train, seed=seed)
    split = {**{k: ("valid" if k in valid else "train") for k in train},
             **dict.fromkeys(test, "test")}
    rows = []
    for i, key in enumerate(keys):
        pos = M[i] & (Y[i] >= 0.5)
        neg = M[i] & (Y[i] < 0.5)
        rows.append({"track_id": key,
                     "path": str((base / "audio" / key[:3] / f"{key}.ogg").absolute()),
                     "label": None, "split": split.get(key), "group": group_of(key),
                     "tags": tuple(n for n, p in zip(names, pos, strict=True) if p),
                     "tags_negative": tuple(n for n, p in zip(names, neg, strict=True) if p)})
    return make_table(rows)


def official_vggish(root: str | Path, keys=None) -> dict[str, np.ndarray]:
    """The release's VGGish features ``X`` per sample key: ``(10, 128)`` uint8 each
    (``keys``: only those). Empty when the archive has no ``X``."""
    base = find_openmic_root(root)
    if base is None:
        raise _error(f"{root}: no OpenMIC-2018 layout found")
    z = _load_npz(base)
    if "X" not in z:
        return {}
    wanted = None if keys is None else set(map(str, keys))
    return {k: x for k, x in zip(z["sample_key"].astype(str), z["X"], strict=True)
            if wanted is None or k in wanted}


def vggish_agreement(ours: Mapping[str, np.ndarray], official: Mapping[str, np.ndarray]
                     ) -> pd.DataFrame:
    """Per clip: mtbc's VGGish frames (``(n_frames, 128)`` values 0..255) against the
    official ones, over the first ``min`` frames of both: ``mean_abs_diff`` (uint8 steps),
    ``equal_bytes`` (share of equal values), ``cosine`` (of the flattened frames)."""
    rows = []
    for key in sorted(set(ours) & set(official)):
        a = np.asarray(ours[key], dtype=np.float64).reshape(-1, 128)
        b = np.asarray(official[key], dtype=np.float64).reshape(-1, 128)
        n = min(len(a), len(b))
        if n == 0:
            continue
        a, b = a[:n].ravel(), b[:n].ravel()
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        rows.append({"track_id": key, "frames": n, "mean_abs_diff": float(np.abs(a - b).mean()),
                     "equal_bytes": float(np.mean(np.round(a) == b)),
                     "cosine": float(a @ b / norm) if norm > 0 else np.nan})
    return pd.DataFrame(rows, columns=["track_id", "frames", "mean_abs_diff", "equal_bytes",
                                       "cosine"])


def agreement_summary(per_clip: pd.DataFrame) -> pd.DataFrame:
    """One row: clips and frames compared, mean abs difference, share of equal bytes and
    the mean / minimum per-clip cosine."""
    if not len(per_clip):
        return pd.DataFrame(columns=["clips", "frames", "mean_abs_diff", "equal_bytes",
                                     "cosine_mean", "cosine_min"])
    w = per_clip["frames"].to_numpy(float)
    return pd.DataFrame([{
        "clips": len(per_clip), "frames": int(w.sum()),
        "mean_abs_diff": float(np.average(per_clip["mean_abs_diff"], weights=w)),
        "equal_bytes": float(np.average(per_clip["equal_bytes"], weights=w)),
        "cosine_mean": float(per_clip["cosine"].mean()),
        "cosine_min": float(per_clip["cosine"].min())}])
