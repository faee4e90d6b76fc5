"""Test fixtures for VGGish: random weights and PCA parameters in the upstream file formats.

Fixtures only: random weights give meaningless embeddings, never results.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

#: Upstream file names (harritaylor/torchvggish v0.1 release), as torch hub caches them.
WEIGHTS_NAME = "vggish-10086976.pth"
PCA_NAME = "vggish_pca_params-970ea276.pth"


def random_vggish_state_dict(*, seed: int = 0, final_relu: bool = False) -> dict[str, torch.Tensor]:
    """Full-size VGGish state dict (18 tensors, ~72.1M params) with He-normal random weights."""
    from mtbc.extractors.vggish import build_vggish

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
    return weights, pca
