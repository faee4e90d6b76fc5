"""Per-epoch checkpoints of a training run: safetensors (weights, AdamW state) + JSON.

A run folder holds ``epoch-NNNN.safetensors`` and ``state.json``; both are written
atomically (:func:`mtbc.files.atomic_write`), the weights first, then the JSON that names
them with their sha256, so a run killed at any instant (kill -9) leaves either the previous
complete checkpoint or the new one. Nothing is unpickled: tensors come from safetensors,
everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from mtbc.files import atomic_write

STATE = "state.json"


def _tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            out[f"opt.{i}.{name}"] = t.detach().cpu().contiguous()
    return out


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    record: dict[str, Any]) -> Path:
    """Write the weights and optimiser state after epoch ``record["epoch"]``, then
    ``state.json`` (``record`` plus the file name and its sha256); older epoch files of this
    run are removed afterwards. Returns the weights file."""
    folder = Path(folder)
    blob = st_save(_tensors(model, optimizer))
    name = f"epoch-{int(record['epoch']):04d}.safetensors"
    atomic_write(folder / name, lambda f: f.write(blob))
    text = json.dumps({**record, "file": name, "sha256": hashlib.sha256(blob).hexdigest()},
                      indent=1, sort_keys=True).encode()
    atomic_write(folder / STATE, lambda f: f.write(text))
    for old in folder.glob("epoch-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / name


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    key: dict[str, Any]) -> dict[str, Any] | None:
    """Restore the last complete checkpoint into ``model`` and ``optimizer``.

    Returns its record, or ``None`` when there is none, when it was made for another run
    (``record["key"] != key``) or when its weights file does not match its sha256 (then the
    run starts again from epoch 0).
    """
    folder = Path(folder)
    try:
        record = json.loads((folder / STATE).read_text())
        blob = (folder / record["file"]).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("key") != json.loads(json.dumps(key)) \
            or hashlib.sha256(blob).hexdigest() != record.get("sha256"):
        return None
    tensors = st_load(blob)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                          strict=True)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state,
                               "param_groups": optimizer.state_dict()["param_groups"]})
    return record
