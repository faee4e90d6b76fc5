"""musicnn weights: conversion from the upstream wheel, shipped files and their verification.

The musicnn 0.1.0 wheel on PyPI (ISC licence) holds each model as a TF1 checkpoint. The
converter reads the checkpoints straight from the wheel with :mod:`.tf_checkpoint` (every CRC
checked), keeps the 64 tensors the network uses (dropping the Adam optimiser slots and
``beta1_power`` / ``beta2_power``), and writes, with deterministic bytes:

- ``<model>.safetensors``: the tensors under their TF names, in their TF layouts, float32;
- ``PROVENANCE.json``: the wheel's name and sha256, each file's sha256, tensor names and
  shapes, and the test scores the wheel reports;
- ``LICENSE.musicnn``: the wheel's licence text (ISC asks that the notice be kept).

The files are shipped in ``mtbc/extractors/weights/musicnn/``; :func:`load_weights` checks a
shipped file's sha256 against ``PROVENANCE.json`` before reading it (with ``safetensors``,
never pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .musicnn_net import KEY_TABLE, is_model_tensor
from .tf_checkpoint import list_tensors_from_zip, read_checkpoint_from_zip

WEIGHTS_DIR = Path(__file__).parent / "weights" / "musicnn"
PROVENANCE_FILE = "PROVENANCE.json"
LICENSE_FILE = "LICENSE.musicnn"
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
WHEEL_URL = "https://pypi.org/project/musicnn/0.1.0/"
#: Models converted and shipped: name -> training set.
MODELS = {"MTT_musicnn": "MagnaTagATune", "MSD_musicnn": "Million Song Dataset"}


class WeightsIntegrityError(RuntimeError):
    """A weights file does not match the sha256 recorded for it."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- safetensors

def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Serialise float32 ``tensors`` in the safetensors format, deterministically.

    Tensors are laid out in sorted name order; the JSON header has sorted keys and no
    whitespace, and is padded with spaces to a multiple of 8 bytes (as the format allows).
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


# ----------------------------------------------------------------------------- conversion

def _reported_scores(text: str) -> dict[str, float]:
    """ROC-AUC then PR-AUC from a wheel ``experiment.result`` file (two formats occur)."""
    values = [float(m) for m in re.findall(r"AUC:\s*([0-9.]+)", text)]
    if len(values) != 2:
        raise ValueError(f"cannot read ROC-AUC and PR-AUC from experiment.result: {text!r}")
    return {"roc_auc": values[0], "pr_auc": values[1]}


def convert_wheel(wheel: str | os.PathLike, out_dir: str | os.PathLike,
                  *, models: tuple[str, ...] = tuple(MODELS)) -> dict[str, Any]:
    """Convert the musicnn wheel's checkpoints to safetensors in ``out_dir``.

    Refuses a wheel whose sha256 is not that of musicnn 0.1.0. Returns the provenance record
    (also written to ``out_dir/PROVENANCE.json``). Output bytes depend only on the wheel.
    """
    wheel = Path(wheel)
    wheel_sha = sha256_file(wheel)
    if wheel_sha != WHEEL_SHA256:
        raise WeightsIntegrityError(f"{wheel} has sha256 {wheel_sha}, not that of {WHEEL_NAME} "
                                    f"({WHEEL_SHA256}); fetch it with `pip download --no-deps "
                                    "musicnn==0.1.0`")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        licence = zf.read("musicnn-0.1.0.dist-info/LICENSE.md")
        results = {m: zf.read(f"musicnn/{m}/experiment.result").decode() for m in models}
    record: dict[str, Any] = {
        "source": {"wheel": WHEEL_NAME, "sha256": WHEEL_SHA256, "url": WHEEL_URL,
                   "licence": "ISC", "licence_file": LICENSE_FILE,
                   "authors": "Jordi Pons, Xavier Serra (Music Technology Group, UPF)"},
        "converter": "python -m mtbc.extractors.musicnn convert --wheel WHEEL --out DIR",
        "layout": "TF checkpoint names and layouts: conv kernels (kh, kw, in, out), dense "
                  "kernels (in, out); float32; optimiser slots dropped",
        "models": {},
    }
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown musicnn model {model!r}; choose from {sorted(MODELS)}")
        prefix = f"musicnn/{model}/"
        everything = list_tensors_from_zip(wheel, prefix)
        kept = read_checkpoint_from_zip(wheel, prefix, keep=is_model_tensor)
        if sorted(kept) != sorted(KEY_TABLE):
            raise ValueError(f"{model}: checkpoint lacks {sorted(set(KEY_TABLE) - set(kept))}")
        data = safetensors_bytes(kept, {"model": model, "source": WHEEL_NAME,
                                        "source_sha256": WHEEL_SHA256, "licence": "ISC"})
        name = f"{model}.safetensors"
        (out / name).write_bytes(data)
        record["models"][model] = {
            "file": name, "sha256": sha256_bytes(data), "dataset": MODELS[model],
            "n_tags": int(kept["dense_1/bias"].shape[0]),
            "n_parameters": int(sum(t.size for t in kept.values())),
            "tensors": {n: list(t.shape) for n, t in sorted(kept.items())},
            "dropped_tensors": len(everything) - len(kept),
            "reported_test_scores": _reported_scores(results[model]),
        }
    (out / LICENSE_FILE).write_bytes(licence)
    (out / PROVENANCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# ----------------------------------------------------------------------------- loading

def provenance(weights_dir: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Any]:
    """The shipped ``PROVENANCE.json``."""
    return json.loads((Path(weights_dir) / PROVENANCE_FILE).read_text())


def shipped_weights(model: str, weights_dir: str | os.PathLike = WEIGHTS_DIR
                    ) -> tuple[Path, str]:
    """Path and recorded sha256 of the shipped file of ``model``."""
    models = provenance(weights_dir)["models"]
    if model not in models:
        raise ValueError(f"no shipped musicnn weights for {model!r}; available: "
                         f"{', '.join(sorted(models))}")
    return Path(weights_dir) / models[model]["file"], models[model]["sha256"]


def load_weights(path: str | os.PathLike, *, sha256: str | None = None
                 ) -> dict[str, np.ndarray]:
    """Read a musicnn safetensors file; with ``sha256``, refuse a file that does not match."""
    from safetensors.numpy import load

    data = Path(path).read_bytes()
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise WeightsIntegrityError(
            f"{path} has sha256 {sha256_bytes(data)}, but {PROVENANCE_FILE} records {sha256}: "
            "the file is corrupted or was replaced. Reinstall mtbc or rebuild it with "
            "`python -m mtbc.extractors.musicnn convert --wheel WHEEL --out DIR`")
    return load(data)
