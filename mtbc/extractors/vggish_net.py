"""The VGGish network and its files: safe, strict loading of the torchvggish state dict and
PCA parameters, the network definition, its FLOPs and TF's postprocessing
(:mod:`mtbc.extractors.vggish` embeds with them; its docstring gives the policies).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvggish import vggish_params
from torchvggish.torchvggish import VGG, make_layers

from mtbc.extractors.base import ModelLoadError, WeightsUnavailableError
from mtbc.files import content_hash

EMBEDDING_SIZE = vggish_params.EMBEDDING_SIZE  # 128
POSTPROCESS_MODES = ("none", "pca", "pca_uint8")

#: The 18 tensors of the torchvggish state dict and their shapes (TF VGGish, ~72.1M params).
STATE_DICT_SHAPES: dict[str, tuple[int, ...]] = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}
#: Index of the final ReLU in ``VGG.embeddings`` (after the 128-d linear layer).
FINAL_RELU_INDEX = 5


class WeightsFormatError(ModelLoadError, ValueError):
    """A weights or PCA file exists but does not hold what VGGish needs."""


# ----------------------------------------------------------------------------- files

def _is_url(spec: str | os.PathLike) -> bool:
    return isinstance(spec, str) and urllib.parse.urlparse(spec).scheme in ("http", "https")


def hub_cache_path(url: str) -> Path:
    """Where torch hub keeps the file of ``url``: ``torch.hub.get_dir()/checkpoints/<name>``."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def resolve_file(spec: str | os.PathLike, *, what: str = "file", progress: bool = True) -> Path:
    """Local path of ``spec`` (a path or a URL), downloading a URL into the hub cache if needed.

    Raises
    ------
    WeightsUnavailableError
        The path does not exist, or the URL is not cached and cannot be downloaded.
    """
    if not _is_url(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"VGGish {what} not found: {path} does not exist "
                                          "(pass an existing file or a URL)")
        return path
    url = str(spec)
    dst = hub_cache_path(url)
    if dst.is_file():
        return dst
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), progress=progress)
    except Exception as exc:  # URLError, HTTPError, OSError, ...: all mean "not available"
        raise WeightsUnavailableError(
            f"VGGish {what} {dst.name} is missing from the torch hub cache and could not be "
            f"downloaded ({type(exc).__name__}: {exc}). Download {url} and save it as {dst} "
            "(or pass a local path).",
            fix=f"connect to the internet once, or save {url} as {dst}"
        ) from exc
    return dst


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's content, cached per (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = content_hash(path)
    return _HASHES[key]


def load_vggish_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a torchvggish state dict safely and check its 18 keys and shapes.

    Raises :class:`WeightsFormatError` naming missing, unexpected or mis-shaped tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage files raise anything (IndexError, ...)
        raise WeightsFormatError(f"{path}: not a loadable torch state dict "
                                 f"(read with weights_only=True: {type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                                 f"pass the torchvggish weights file as weights=") from exc
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path}: expected a state dict, found {type(state).__name__}")
    missing = sorted(set(STATE_DICT_SHAPES) - set(state))
    unexpected = sorted(set(state) - set(STATE_DICT_SHAPES))
    bad = [f"{k} {tuple(state[k].shape)} (expected {STATE_DICT_SHAPES[k]})"
           for k in STATE_DICT_SHAPES if k in state and (
               not isinstance(state[k], torch.Tensor)
               or tuple(state[k].shape) != STATE_DICT_SHAPES[k])]
    if missing or unexpected or bad:
        raise WeightsFormatError(
            f"{path}: not torchvggish VGGish weights: missing {missing}, unexpected "
            f"{unexpected}, wrong shapes {bad}")
    return state


def _numpy_safe_globals() -> list:
    """The only globals a pickled float numpy array needs, under numpy 1.x and 2.x names."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    # ``BUILD`` checks the concrete dtype class (numpy.dtypes.Float64DType, ...): allow just
    # the float ones a PCA file may hold.
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype,
            type(np.dtype(np.float64)), type(np.dtype(np.float32))]


def load_pca_params(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read VGGish PCA parameters: ``(eigen_vectors (128, 128), means (128,))`` float64.

    Accepts the torchvggish file (a ``torch.save``'d dict of numpy arrays or tensors, read with
    ``weights_only=True`` and only numpy's array globals allowed) or TF's ``.npz``.
    """
    names = (vggish_params.PCA_EIGEN_VECTORS_NAME, vggish_params.PCA_MEANS_NAME)
    try:
        if str(path).endswith(".npz"):
            with np.load(path, allow_pickle=False) as npz:
                params = {k: npz[k] for k in npz.files}
        else:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                params = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage files raise anything
        raise WeightsFormatError(f"{path}: not a loadable VGGish PCA file (only numpy arrays "
                                 f"and tensors are accepted: {type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                                 f"pass the torchvggish PCA file as pca_params=") from exc
    if not isinstance(params, dict) or any(k not in params for k in names):
        found = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise WeightsFormatError(f"{path}: expected a dict with keys {list(names)}, "
                                 f"found {found}")
    vecs, means = (np.asarray(params[k].numpy() if isinstance(params[k], torch.Tensor)
                              else params[k], dtype=np.float64) for k in names)
    means = means.reshape(-1)
    if vecs.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (EMBEDDING_SIZE,):
        raise WeightsFormatError(f"{path}: PCA shapes {vecs.shape} and {means.shape}, expected "
                                 f"({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE},)")
    return vecs, means


# ----------------------------------------------------------------------------- model

def build_vggish(*, final_relu: bool = False) -> nn.Module:
    """torchvggish's VGG network (random init, eval mode), its last ReLU removed unless asked."""
    model = VGG(make_layers(), postprocess=False)
    if not final_relu:
        model.embeddings[FINAL_RELU_INDEX] = nn.Identity()
    return model.eval()


def vggish_flops_per_example() -> int:
    """Multiply-add FLOPs (2 per MAC) of the VGGish convs and linears for one 96x64 example.

    Computed from the layer shapes: convs 3x3 'same' on 96x64 halved by each 2x2 pool
    (1->64 at 96x64, 64->128 at 48x32, 128->256 and 256->256 at 24x16, 256->512 and
    512->512 at 12x8), then 12288->4096->4096->128. About 1.728 GFLOP (0.864 G MACs);
    biases, ReLUs and pools are left out.
    """
    h, w, flops = vggish_params.NUM_FRAMES, vggish_params.NUM_BANDS, 0
    model = build_vggish()
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            flops += 2 * h * w * layer.out_channels * layer.in_channels * kh * kw
        elif isinstance(layer, nn.MaxPool2d):
            h, w = h // 2, w // 2
    for layer in model.embeddings:
        if isinstance(layer, nn.Linear):
            flops += 2 * layer.in_features * layer.out_features
    return flops


def postprocess_embeddings(raw: torch.Tensor, eigen_vectors: torch.Tensor,
                           means: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply TF VGGish postprocessing to raw embeddings ``(n, 128)``; returns float32 ``(n, 128)``.

    ``"pca"``: ``(raw - means) @ eigen_vectors.T`` (whitening included), unclipped.
    ``"pca_uint8"``: that, clipped to [-2, 2], scaled by 255/4 and truncated (TF's uint8 cast).
    Computed in the dtype of ``eigen_vectors`` (float64 by default).
    """
    if mode == "none":
        return raw.float()
    pca = (raw.to(eigen_vectors.dtype) - means) @ eigen_vectors.T
    if mode == "pca":
        return pca.float()
    if mode != "pca_uint8":
        raise ValueError(f"postprocess must be one of {POSTPROCESS_MODES}, not {mode!r}")
    lo, hi = vggish_params.QUANTIZE_MIN_VAL, vggish_params.QUANTIZE_MAX_VAL
    scaled = (pca.clamp(lo, hi) - lo) * (255.0 / (hi - lo))
    return torch.trunc(scaled).float()  # values in [0, 255]: trunc == TF's astype(np.uint8)
