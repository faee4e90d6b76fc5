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
import contextlib
import copy
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvggish import vggish_input, vggish_params

from mtbc.data.audio import AudioWarning
from mtbc.extractors.base import (
    Extractor,
    WeightsUnavailableError,
    make_fingerprint,
    resolve_device,
    resolve_dtype,
    weights_kind,
)
from mtbc.extractors.fixtures import make_vggish_weights
from mtbc.extractors.vggish_net import (
    EMBEDDING_SIZE,
    FINAL_RELU_INDEX,
    POSTPROCESS_MODES,
    STATE_DICT_SHAPES,
    WeightsFormatError,
    build_vggish,
    file_sha256,
    hub_cache_path,
    load_pca_params,
    load_vggish_state_dict,
    postprocess_embeddings,
    resolve_file,
    vggish_flops_per_example,
)

__all__ = ["EMBEDDING_SIZE", "EXAMPLE_HOP_SAMPLES", "EXAMPLE_SAMPLES", "FINAL_RELU_INDEX",
           "OUTPUT_VERSION", "PCA_PARAMS_URL", "POSTPROCESS_MODES", "SAMPLE_RATE",
           "STATE_DICT_SHAPES", "VGGishExtractor", "WEIGHTS_URL", "WeightsFormatError",
           "WeightsUnavailableError", "build_vggish", "file_sha256", "hub_cache_path",
           "load_pca_params", "load_vggish_state_dict", "postprocess_embeddings",
           "resolve_file", "smoke_test", "vggish_flops_per_example"]
from mtbc.extractors.partial import vggish_split

#: harritaylor/torchvggish v0.1 release files (the weights ported from TF VGGish).
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
PCA_PARAMS_URL = ("https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
                  "vggish_pca_params-970ea276.pth")

SAMPLE_RATE = vggish_params.SAMPLE_RATE  # 16000 Hz
#: Samples in one 0.96 s example: 96 STFT frames of 400 samples, hop 160 -> 95 * 160 + 400.
EXAMPLE_SAMPLES = 15600
#: Advance between examples in samples (96 hops of 160).
EXAMPLE_HOP_SAMPLES = 15360
#: Bumped whenever this module's output for the same weights and options changes.
OUTPUT_VERSION = 1
SHORT_CLIP_POLICY = f"zero-pad at the end to {EXAMPLE_SAMPLES} samples (one example), warn"

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
            licence="apache-2.0 (tensorflow/models, where Google released VGGish)",
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


    # -- cost model
    @classmethod
    def write_random_weights(cls, key: str, folder: Path, *, seed: int = 0) -> dict[str, Any]:
        """Full-size random weights (~289 MB) written into ``folder``; speed-only timing."""
        return {"weights": str(make_vggish_weights(Path(folder), seed=seed)[0])}

    @property
    def network(self) -> nn.Module:
        return self.model

    def weights_files(self) -> list[Path]:
        return [self.weights_path] + ([self.pca_path] if self.pca_path else [])

    def auto_dtype(self) -> str:
        if self.postprocess == "pca_uint8":  # TF's exact bytes: "auto" stays float32
            return "float32"
        return resolve_dtype("auto", self.device, cpu_bf16=True)

    def with_dtype(self, dtype: str) -> VGGishExtractor:
        twin = copy.copy(self)  # shares the loaded network
        twin.dtype = resolve_dtype(dtype, self.device)
        twin._fingerprint = None
        return twin

    def fit_batch(self, n_clips: int, clip: np.ndarray) -> None:
        self.batch_size = int(n_clips) * len(self.examples(clip))

    def flops_per_clip(self, clip: np.ndarray) -> float:
        return float(len(self.examples(clip)) * vggish_flops_per_example())


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
