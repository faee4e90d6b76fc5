"""A fine-tuned model on disk: ``MODEL.safetensors`` (top + head weights) + ``MODEL.json``.

The JSON names the extractor and its options, its fingerprint, ``train_layers``, the split
point and the classes; loading rebuilds the extractor from those options, refuses one whose
fingerprint differs (other weights, revision or precision), splits it the same way and loads
the tensors with every key matching. Nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mtbc.extractors import Extractor, get_extractor
from mtbc.extractors.partial import Split
from mtbc.files import atomic_write
from mtbc.finetune.device import autocast
from mtbc.finetune.train import FineTuned

FORMAT = "mtbc-finetuned/1"


class FinetunedModelError(ValueError):
    """A fine-tuned model file is missing, malformed or does not match its extractor."""


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, json)`` paths of a model called ``path`` (with or without a suffix)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_model(path: str | Path, model: FineTuned, meta: dict[str, Any]) -> Path:
    """Write weights then JSON atomically; returns the JSON path.

    ``meta`` needs ``extractor``, ``options``, ``fingerprint``, ``train_layers`` and
    ``classes``; anything else (metrics, choices) is kept as given.
    """
    weights, info = model_paths(path)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    atomic_write(weights, lambda f: f.write(blob))
    text = json.dumps({"format": FORMAT, "weights": weights.name, **meta}, indent=2,
                      sort_keys=True, default=str).encode()
    atomic_write(info, lambda f: f.write(text))
    return info


@dataclass
class LoadedModel:
    """A fine-tuned model ready to classify waves: extractor, split, network, classes."""

    extractor: Extractor
    split: Split
    network: FineTuned
    classes: list[str]
    meta: dict[str, Any]

    def predict_proba(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities per wave (mean over its segments): ``(n_waves, n_classes)``;
        the trunk and the network run under the precision the model was trained in."""
        out = []
        self.network.eval()
        device = self.network.device
        precision = self.meta.get("precision", "float32")
        with torch.no_grad(), autocast(precision, device):
            for wave in waves:
                x = torch.from_numpy(np.ascontiguousarray(self.split.trunk(wave), np.float32))
                p = torch.softmax(self.network(x.to(device)).float(), dim=1).mean(dim=0)
                out.append(p.double().cpu().numpy())
        return np.stack(out) if out else np.zeros((0, len(self.classes)))


def is_finetuned(path: str | Path) -> bool:
    """Whether ``path`` (or its ``.json``) is a fine-tuned model's JSON."""
    _, info = model_paths(path)
    try:
        return json.loads(info.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_model(path: str | Path) -> LoadedModel:
    """Load a model written by :func:`save_model` (``FinetunedModelError`` naming the file
    and the fix when it cannot be used)."""
    weights, info = model_paths(path)
    try:
        meta = json.loads(info.read_text())
        blob = weights.read_bytes()
    except (OSError, ValueError) as exc:
        raise FinetunedModelError(f"{info}: cannot read the fine-tuned model ({exc}); "
                                  f"train one with `mtbc finetune`") from exc
    if meta.get("format") != FORMAT:
        raise FinetunedModelError(f"{info}: not a fine-tuned mtbc model (format "
                                  f"{meta.get('format')!r}); use `mtbc finetune --out` output")
    ext = get_extractor(meta["extractor"], **meta.get("options", {}))
    if ext.fingerprint != meta["fingerprint"]:
        raise FinetunedModelError(f"{info}: trained with extractor {meta['fingerprint']}, this "
                                  f"machine builds {ext.fingerprint}; use the same weights, "
                                  f"revision and precision, or retrain")
    lora = meta.get("lora")
    split = ext.trunk_and_top(meta["train_layers"], **({} if lora is None else {"lora": lora}))
    net = FineTuned(split.top, split.dim, len(meta["classes"]))
    try:
        net.load_state_dict(st_load(blob), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise FinetunedModelError(f"{weights}: weights do not match the model ({exc}); "
                                  f"retrain with `mtbc finetune`") from exc
    return LoadedModel(ext, split, net.eval(), list(meta["classes"]), meta)
