"""VGGish embeddings (``docs/models/vggish.md``), built on ``torchvggish`` 0.2.

The network definition and the log-mel front end (a port of TF's ``mel_features``) come from
``torchvggish``; this module adds what it lacks for faithful, reproducible embeddings:

- **Output as TF VGGish today.** Google removed the ReLU after the 128-d embedding layer in
  2020, so ``final_relu=False`` (the default) replaces torchvggish's last ReLU with an identity
  (state-dict keys unchanged); ``final_relu=True`` gives the pre-2020 / torchvggish output.
- **Postprocessing.** ``postprocess="none"``: the raw 128-d embedding. ``"pca"``: the PCA
  with whitening of TF's ``vggish_postprocess`` as float, ``(x - means) @ eigvecs.T``, *not*
  clipped or quantised (the continuous whitened embedding). ``"pca_uint8"``: exactly TF's
  postprocessing: PCA, clip to [-2, 2], scale by 255/4 and truncate to an integer (TF's
  ``astype(np.uint8)``; torchvggish rounds instead), returned as float32 values 0..255.
  PCA is computed in float64 on the model's device (float32 on MPS).
- **Shapes.** ``embed`` returns ``(n_examples, 1, 128)`` float32, one row per 0.96 s example
  (96 frames of 10 ms, hop 96, the leftover dropped); a single example keeps its batch axis.
- **Short clips.** A wave shorter than one example (15,600 samples, 0.975 s at 16 kHz) is
  zero-padded at its end to exactly one example and an :class:`mtbc.data.audio.AudioWarning` says
  so; an empty or non-finite wave raises ``ValueError``.
- **Safe loading.** Weights are read with ``torch.load(weights_only=True)`` and loaded strictly
  (the 18 tensors of :data:`STATE_DICT_SHAPES`). The upstream PCA file is a ``torch.save``'d
  dict of two numpy arrays; it is read with ``weights_only=True``, allow-listing only numpy's
  ``_reconstruct``, ``ndarray`` and ``dtype``. TF's ``vggish_pca_params.npz`` is accepted too.
- **Files.** ``weights`` / ``pca_params`` are local paths or URLs. A URL resolves to the torch
  hub cache, ``torch.hub.get_dir()/checkpoints/<file name>``, and is downloaded there when
  missing; offline, :class:`WeightsUnavailableError` says which file to put where.

Reproduce the TF smoke test (``docs/models/vggish.md``) (1 kHz sine, 3 s) with the real weights::

    python -m mtbc.extractors.vggish --smoke-test [--final-relu] [--device cpu]

Expected (TF, rtol 10%): raw mean 0.000657 / std 0.343, postprocessed 126.0 / 89.3;
with ``--final-relu``: raw 0.131 / 0.238, postprocessed 123.0 / 75.0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvggish import vggish_input, vggish_params
from torchvggish.torchvggish import VGG, make_layers

from mtbc.data.audio import AudioWarning
from mtbc.extractors.base import (
    Extractor,
    ModelLoadError,
    WeightsUnavailableError,
    make_fingerprint,
    resolve_device,
    resolve_dtype,
    weights_kind,
)
from mtbc.extractors.partial import vggish_split
from mtbc.files import content_hash

#: harritaylor/torchvggish v0.1 release files (the weights ported from TF VGGish).
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
PCA_PARAMS_URL = ("https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
                  "vggish_pca_params-970ea276.pth")

SAMPLE_RATE = vggish_params.SAMPLE_RATE  # 16000 Hz
EMBEDDING_SIZE = vggish_params.EMBEDDING_SIZE  # 128
#: Samples in one 0.96 s example: 96 STFT frames of 400 samples, hop 160 -> 95 * 160 + 400.
EXAMPLE_SAMPLES = 15600
#: Advance between examples in samples (96 hops of 160).
EXAMPLE_HOP_SAMPLES = 15360
POSTPROCESS_MODES = ("none", "pca", "pca_uint8")
#: Bumped whenever this module's output for the same weights and options changes.
OUTPUT_VERSION = 1
SHORT_CLIP_POLICY = f"zero-pad at the end to {EXAMPLE_SAMPLES} samples (one example), warn"

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


# ----------------------------------------------------------------------------- extractor

class VGGishExtractor(Extractor):
    """VGGish embeddings of 0.96 s examples at 16 kHz: ``(n_examples, 1, 128)`` float32.

    Parameters
    ----------
    weights : path or URL of the torchvggish state dict (default: the harritaylor v0.1 file).
    pca_params : path or URL of the PCA parameters; only read when ``postprocess`` is not
        ``"none"``.
    postprocess : ``"none"`` (raw), ``"pca"`` (float PCA + whitening, unclipped) or
        ``"pca_uint8"`` (exactly TF: clip, quantise, truncate; floats 0..255).
    final_relu : keep torchvggish's ReLU after the embedding layer (pre-2020 TF output).
    device : ``"auto"`` (CUDA if available, else CPU) or any torch device.
    batch_size : examples per forward pass (default 256 on CUDA, 32 on CPU).
    channels_last : run the convs in NHWC memory layout (same result, faster with oneDNN).
    dtype : ``"auto"``: bfloat16 autocast on CUDA and on CPUs with native bf16 (1.9x faster
        network on an AMX CPU, cosine 0.999996 to fp32; ``docs/compute.md``), except with
        ``postprocess="pca_uint8"``, which promises TF's exact bytes and stays float32;
        float32 elsewhere. ``"float32"`` forces fp32; the fingerprint records the precision.
    progress : show a progress bar when downloading weights.

    The files are resolved (downloaded if needed) on construction; the network is loaded on
    first use (:meth:`load`), so ``fingerprint`` is available without loading it.
    """

    name = "vggish"
    sample_rate = SAMPLE_RATE
    #: Resampler for ``mtbc.data.audio.load_audio``: resampy's kaiser_best, as TF VGGish uses.
    res_type = "kaiser_best"
    #: Anything non-empty is accepted; shorter than one example is zero-padded (see module doc).
    min_samples = 1
    #: Examples are independent; one starts every 15,360 samples and reads 15,600.
    stream_unit = EXAMPLE_HOP_SAMPLES
    stream_overlap = EXAMPLE_SAMPLES - EXAMPLE_HOP_SAMPLES

    def __init__(self, *, weights: str | os.PathLike = WEIGHTS_URL,
                 pca_params: str | os.PathLike = PCA_PARAMS_URL, postprocess: str = "none",
                 final_relu: bool = False, device: str | torch.device = "auto",
                 batch_size: int | None = None, channels_last: bool = True,
                 progress: bool = True, dtype: str = "auto"):
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f"postprocess must be one of {POSTPROCESS_MODES}, not {postprocess!r}")
        self.postprocess = postprocess
        self.final_relu = bool(final_relu)
        self.device = resolve_device(device)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.batch_size = batch_size or (256 if self.device.type == "cuda" else 32)
        self.channels_last = bool(channels_last)
        self.dtype = resolve_dtype(dtype, self.device, cpu_bf16=postprocess != "pca_uint8")
        if dtype == "auto" and postprocess == "pca_uint8":
            self.dtype = "float32"
        self.weights_path = resolve_file(weights, what="weights file", progress=progress)
        self.pca_path = (resolve_file(pca_params, what="PCA parameter file", progress=progress)
                         if postprocess != "none" else None)
        self._fingerprint: str | None = None
        self._model: nn.Module | None = None
        self._pca: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- identity
    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            fields: dict[str, Any] = {
                "weights_sha256": file_sha256(self.weights_path),
                "postprocess": self.postprocess,
                "final_relu": self.final_relu,
                "res_type": self.res_type,
                "output_version": OUTPUT_VERSION,
            }
            if self.pca_path is not None:
                fields["pca_sha256"] = file_sha256(self.pca_path)
            if self.dtype != "float32":  # fp32 fingerprints are those of earlier releases
                fields["precision"] = self.dtype
            self._fingerprint = make_fingerprint(self.name, **fields)
        return self._fingerprint

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta.update(
            weights_file=self.weights_path.name, weights_sha256=file_sha256(self.weights_path),
            weights_kind=weights_kind(self.weights_path.parent),
            pca_file=self.pca_path.name if self.pca_path else None,
            pca_sha256=file_sha256(self.pca_path) if self.pca_path else None,
            postprocess=self.postprocess, final_relu=self.final_relu, res_type=self.res_type,
            example_seconds=vggish_params.EXAMPLE_WINDOW_SECONDS,
            hop_seconds=vggish_params.EXAMPLE_HOP_SECONDS, short_clip_policy=SHORT_CLIP_POLICY,
            output_version=OUTPUT_VERSION, device=str(self.device), dtype=self.dtype, n_layers=1,
            dim=EMBEDDING_SIZE)
        return meta

    def layer_names(self, n_layers: int) -> list[str]:
        return [f"embedding ({self.postprocess})"] * n_layers

    # -- model
    def load(self) -> VGGishExtractor:
        """Load the network (and PCA parameters) onto ``device``; idempotent. Returns self."""
        if self._model is None:
            state = load_vggish_state_dict(self.weights_path)
            model = build_vggish(final_relu=self.final_relu)
            model.load_state_dict(state, strict=True)
            model = model.to(self.device)
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
            if self.pca_path is not None:
                vecs, means = load_pca_params(self.pca_path)
                dtype = torch.float32 if self.device.type == "mps" else torch.float64
                self._pca = (torch.as_tensor(vecs, dtype=dtype, device=self.device),
                             torch.as_tensor(means, dtype=dtype, device=self.device))
            self._model = model
        return self

    @property
    def model(self) -> nn.Module:
        """The loaded torchvggish ``VGG`` network (eval mode)."""
        return self.load()._model

    def trunk_and_top(self, train_layers: int = 3):
        """Frozen conv trunk and trainable FC layers (:func:`.partial.vggish_split`)."""
        return vggish_split(self, train_layers)

    # -- front end
    def examples(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel examples of a 16 kHz mono wave: ``(n_examples, 96, 64)`` float32.

        torchvggish's port of TF's front end: STFT 400/160/512 periodic Hann, magnitude,
        64 HTK mel bands 125-7500 Hz, ``ln(mel + 0.01)``, 96-frame examples, leftover dropped.
        A wave shorter than one example is zero-padded to 15,600 samples (with a warning).
        """
        wave = self.check_wave(wave)
        if wave.size < EXAMPLE_SAMPLES:
            warnings.warn(
                f"wave of {wave.size} samples ({wave.size / SAMPLE_RATE:.3f} s) is shorter than "
                f"one VGGish example ({EXAMPLE_SAMPLES} samples, 0.975 s): zero-padded to one "
                "example", AudioWarning, stacklevel=3)
            wave = np.pad(wave, (0, EXAMPLE_SAMPLES - wave.size))
        ex = vggish_input.waveform_to_examples(wave, SAMPLE_RATE, return_tensor=False)
        return np.ascontiguousarray(ex, dtype=np.float32)

    # -- network
    def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """Run log-mel examples ``(n, 96, 64)`` through the network: ``(n, 128)`` float32."""
        import contextlib

        model = self.model
        out = []
        autocast = (torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))
                    if self.dtype != "float32" else contextlib.nullcontext())
        with torch.inference_mode():
            for start in range(0, len(examples), self.batch_size):
                x = torch.from_numpy(examples[start:start + self.batch_size])
                x = x.to(self.device, non_blocking=True)[:, None]
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast:
                    y = model(x).float()
                if self._pca is not None:
                    y = postprocess_embeddings(y, *self._pca, self.postprocess)
                out.append(y.float().cpu())
        if not out:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        return torch.cat(out).numpy()

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed a 16 kHz mono wave: ``(n_examples, 1, 128)`` float32 (n_examples >= 1)."""
        return self.embed_many([wave])[0]

    def embed_many(self, waves: Sequence[np.ndarray], *, progress: bool = False
                   ) -> list[np.ndarray]:
        """Embed several waves, batching their examples together; one array per wave."""
        examples = [self.examples(w) for w in waves]
        if not examples:
            return []
        flat = self.embed_examples(np.concatenate(examples))
        bounds = np.cumsum([len(e) for e in examples])[:-1]
        return [part[:, None, :] for part in np.split(flat, bounds)]


# ----------------------------------------------------------------------------- smoke test

#: TF ``vggish_smoke_test.py`` expectations (``docs/models/vggish.md``), (mean, std), rtol 10%.
SMOKE_EXPECTED = {
    False: {"raw": (0.000657, 0.343), "postprocessed": (126.0, 89.3)},
    True: {"raw": (0.131, 0.238), "postprocessed": (123.0, 75.0)},
}


def smoke_test(*, rtol: float = 0.1, **options: Any) -> dict[str, Any]:
    """TF VGGish's smoke test: a 3 s 1 kHz sine at 16 kHz through raw and ``pca_uint8`` output.

    ``options`` go to :class:`VGGishExtractor` (``weights``, ``pca_params``, ``final_relu``,
    ``device``); needs the real weights. Returns the means/stds, the expected values and
    ``passed`` (each within ``rtol``, as TF checks them).
    """
    options.pop("postprocess", None)
    final_relu = bool(options.get("final_relu", False))
    t = np.arange(0, 3, 1 / SAMPLE_RATE)
    x = np.sin(2 * np.pi * 1000 * t)
    raw = VGGishExtractor(postprocess="none", **options).embed(x)
    post = VGGishExtractor(postprocess="pca_uint8", **options).embed(x)
    result: dict[str, Any] = {"final_relu": final_relu, "n_examples": len(raw), "passed": True}
    for key, arr in (("raw", raw), ("postprocessed", post)):
        got = (float(arr.mean()), float(arr.std()))
        want = SMOKE_EXPECTED[final_relu][key]
        ok = bool(np.allclose(got, want, rtol=rtol, atol=0))
        result[key] = {"mean": got[0], "std": got[1], "expected_mean": want[0],
                       "expected_std": want[1], "ok": ok}
        result["passed"] &= ok
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtbc.extractors.vggish --smoke-test [options]``; exit status 0 if it passes."""
    parser = argparse.ArgumentParser(prog="python -m mtbc.extractors.vggish",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--smoke-test", action="store_true", required=True,
                        help="run TF VGGish's smoke test (needs the real weights)")
    parser.add_argument("--weights", default=WEIGHTS_URL, help="weights path or URL")
    parser.add_argument("--pca-params", default=PCA_PARAMS_URL, help="PCA file path or URL")
    parser.add_argument("--final-relu", action="store_true", help="pre-2020 output (with ReLU)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        result = smoke_test(weights=args.weights, pca_params=args.pca_params,
                            final_relu=args.final_relu, device=args.device)
    except (WeightsUnavailableError, WeightsFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    print("Looks good: matches TF VGGish." if result["passed"] else "MISMATCH with TF VGGish.")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
