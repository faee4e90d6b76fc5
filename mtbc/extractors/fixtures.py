"""Test and benchmark fixtures: random-weight models in the real upstream file layouts.

Nothing here is a result: weights are random, and every fixture folder carries a
:data:`mtbc.extractors.FIXTURE_MARKER` file, so extractors report ``weights_kind="fixture"``
and reports built from it show a banner. :func:`make_mert_snapshot` writes a folder laid
out like a hub snapshot of m-a-p/MERT-v1-95M or -330M (``config.json`` with the MERT keys,
``preprocessor_config.json``, weights under the old weight-norm key names, and decoy remote-code
files that must never run), at tiny or at full size (``docs/models/mert.md``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtbc.extractors.base import FIXTURE_MARKER
from mtbc.extractors.mert_model import (  # noqa: F401 - re-exported for tests
    MERT_SIZES,
    MERT_TINY,
    mert_config,
    mert_preprocessor,
    random_model,
)
from mtbc.extractors.vggish_net import build_vggish

DECOY_MARKER = "DECOY_EXECUTED"
_DECOY = f'''"""mtbc test decoy standing in for MERT remote code: it must never be executed."""
from pathlib import Path

Path(__file__).with_name({DECOY_MARKER!r}).write_text(__name__)
raise RuntimeError("mtbc decoy: MERT remote code was executed; it must never be")
'''


def make_mert_model(variant: str = "95m", *, tiny: bool = True, seed: int = 0,
                    config: dict[str, Any] | None = None):
    """A random-weight ``HubertModel`` (eval mode) for ``mert_config(variant, tiny=tiny)``.

    Norm scales and biases are perturbed away from 1 and 0, so a loader that skipped them
    would give different outputs.
    """
    return random_model(config or mert_config(variant, tiny=tiny), seed=seed)


def old_weight_norm_names(state: dict[str, Any]) -> dict[str, Any]:
    """Rename ``parametrizations.weight.original0/1`` to the old ``weight_g`` / ``weight_v``."""
    renamed = {}
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        renamed[key] = value
    return renamed


def make_mert_snapshot(path: str | Path, *, variant: str = "95m", tiny: bool = True,
                       weights_format: str = "bin", seed: int = 0, do_normalize: bool = True,
                       key_prefix: str = "", **config_overrides: Any) -> Path:
    """Write a hub-format MERT-v1 snapshot with random weights into ``path``; return ``path``.

    Parameters
    ----------
    variant : ``"95m"`` (post-LN) or ``"330m"`` (pre-LN).
    tiny : hidden 32, 2 or 3 layers, 32 conv channels (fast); ``False`` gives the real sizes
        (about 380 MB or 1.26 GB of float32 weights).
    weights_format : ``"bin"`` (``pytorch_model.bin``) or ``"safetensors"`` (``model.safetensors``).
    seed : seeds the random weights (same seed, same files).
    do_normalize : written to ``preprocessor_config.json``.
    key_prefix : prepended to every weight name (checkpoints saved from a wrapper).
    config_overrides : extra or replaced ``config.json`` keys (e.g. ``deepnorm=True``).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = mert_config(variant, tiny=tiny, **config_overrides)
    safe = {k: v for k, v in config.items() if k not in ("feature_extractor_cqt", "deepnorm")}
    model = make_mert_model(variant, tiny=tiny, seed=seed, config=safe)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "preprocessor_config.json").write_text(
        json.dumps(mert_preprocessor(do_normalize=do_normalize), indent=2))
    state = {key_prefix + k: v.contiguous()
             for k, v in old_weight_norm_names(model.state_dict()).items()}
    if weights_format == "bin":
        torch.save(state, path / "pytorch_model.bin")
    elif weights_format == "safetensors":
        from safetensors.torch import save_file  # only for this format
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        raise ValueError(f"weights_format must be 'bin' or 'safetensors', not {weights_format!r}")
    for name in ("modeling_MERT.py", "configuration_MERT.py"):
        (path / name).write_text(_DECOY)
    mark_fixture(path)
    return path


def mark_fixture(folder: str | Path) -> None:
    """Mark ``folder`` as holding random test-fixture weights (see FIXTURE_MARKER)."""
    (Path(folder) / FIXTURE_MARKER).write_text(
        "The weights in this folder are random test fixtures written by mtbc.extractors.fixtures; "
        "embeddings made from them mean nothing.\n")


# ----------------------------------------------------------------------------- VGGish
#: Upstream file names (harritaylor/torchvggish v0.1 release), as torch hub caches them.
WEIGHTS_NAME = "vggish-10086976.pth"
PCA_NAME = "vggish_pca_params-970ea276.pth"


def random_vggish_state_dict(*, seed: int = 0, final_relu: bool = False) -> dict[str, torch.Tensor]:
    """Full-size VGGish state dict (18 tensors, ~72.1M params) with He-normal random weights."""
    gen = torch.Generator().manual_seed(seed)
    model = build_vggish(final_relu=final_relu)
    state = {}
    for key, tensor in model.state_dict().items():
        if key.endswith("weight"):
            fan_in = tensor[0].numel()
            state[key] = torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            if key == "embeddings.4.weight":  # raw outputs of order 0.5, as the real model's
                state[key] *= 0.1
        else:
            state[key] = torch.randn(tensor.shape, generator=gen) * 0.01
    return state


def random_pca_params(*, seed: int = 0, identity: bool = False) -> dict[str, np.ndarray]:
    """PCA parameters as upstream holds them: float64 ``pca_eigen_vectors`` (128, 128) and
    ``pca_means`` (128,). Random whitening-like (orthogonal rows scaled by 1/s), or identity
    with zero means."""
    if identity:
        return {"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros(128)}
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    scale = rng.uniform(0.2, 1.0, size=(128, 1))
    return {"pca_eigen_vectors": q.T / scale, "pca_means": rng.standard_normal(128) * 0.1}


def save_pca_params(params: dict, path: str | os.PathLike, *, numpy1_names: bool = True) -> Path:
    """``torch.save`` a dict of numpy arrays the way the 2019 upstream file was written.

    ``numpy1_names`` writes the legacy (non-zip) torch format and renames numpy 2's
    ``numpy._core.multiarray`` global to numpy 1.x's ``numpy.core.multiarray``, as a file
    pickled under numpy 1.x holds it; otherwise a plain modern ``torch.save``.
    """
    path = Path(path)
    if not numpy1_names:
        torch.save(params, path)
        return path
    buf = io.BytesIO()
    torch.save(params, buf, _use_new_zipfile_serialization=False, pickle_protocol=2)
    raw = buf.getvalue()
    # Protocol 2 names globals as newline-terminated text (GLOBAL opcode), so a rename is safe.
    new = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    if new == raw and b"cnumpy.core.multiarray\n" not in raw:
        raise AssertionError("unexpected pickle layout: numpy global not found")
    path.write_bytes(new)
    return path


def make_vggish_weights(directory: str | os.PathLike, *, seed: int = 0,
                        identity_pca: bool = False) -> tuple[Path, Path]:
    """Write random VGGish weights and PCA parameters under their upstream names.

    Returns ``(weights_path, pca_path)``: ``vggish-10086976.pth`` (a torch state dict, legacy
    torch format, ~289 MB) and ``vggish_pca_params-970ea276.pth`` (a dict of two numpy arrays).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_NAME
    torch.save(random_vggish_state_dict(seed=seed), weights, _use_new_zipfile_serialization=False)
    pca = save_pca_params(random_pca_params(seed=seed, identity=identity_pca), directory / PCA_NAME)
    mark_fixture(directory)
    return weights, pca
