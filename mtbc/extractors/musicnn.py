"""musicnn embeddings and tags (Pons & Serra 2019) without TensorFlow; see docs/models/musicnn.md.

The network is a PyTorch port (:mod:`.musicnn_net`) of the musicnn 0.1.0 wheel's TF graph;
its weights ship with mtbc, converted from the wheel's checkpoints (:mod:`.musicnn_weights`)
and checked against their recorded sha256 on load. Two models: ``MTT_musicnn``
(MagnaTagATune) and ``MSD_musicnn`` (Million Song Dataset), 50 tags each.

Preprocessing is the one the models were trained on: mono 16 kHz; librosa mel power
spectrogram (``n_fft=512``, ``hop_length=256``, 96 Slaney mel bands, centred frames with
reflect padding); rounded to float16 precision; ``log10(10000 * x + 1)`` computed in float32.
(The original computes the product in float16, which overflows to inf on loud tonal audio;
here the float16 rounding is kept and the overflow is not.)

``embed`` cuts the log-mel into non-overlapping 187-frame patches (3 s), drops the leftover
frames, and returns one row per patch, ``(n_patches, 1, dim)`` float32, of the chosen layer:
``"pool"`` (1506: ``max_pool`` then ``mean_pool``), ``"mean_pool"`` / ``"max_pool"`` (753,
mean / max over time of the mid-end features) or ``"penultimate"`` (200). A wave shorter than
one patch (:data:`MIN_SAMPLES` = 47,616 samples, 2.976 s) raises ``ValueError``.

Tag a file from the command line, or rebuild the shipped weights from the wheel::

    python -m mtbc.extractors.musicnn tag song.mp3 [--model MSD_musicnn]
    python -m mtbc.extractors.musicnn convert --wheel musicnn-0.1.0-py3-none-any.whl --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtbc.data.audio import load_audio
from mtbc.extractors.base import (
    Extractor,
    make_fingerprint,
    resolve_device,
    resolve_dtype,
    weights_kind,
)
from mtbc.extractors.musicnn_net import N_FRAMES, N_MELS, Musicnn, build_musicnn
from mtbc.extractors.musicnn_weights import (
    WEIGHTS_DIR,
    WHEEL_NAME,
    convert_wheel,
    load_weights,
    sha256_file,
    shipped_weights,
)
from mtbc.extractors.partial import musicnn_split

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
#: Shortest wave giving one patch: centred frames number ``1 + n // 256`` and 187 are needed.
MIN_SAMPLES = (N_FRAMES - 1) * HOP_LENGTH  # 47616
#: Bumped whenever the front end (log-mel, patching) changes.
PREPROCESSING_VERSION = 1
LAYERS = {"pool": 1506, "mean_pool": 753, "max_pool": 753, "penultimate": 200}
#: Besides the embedding layers, ``layer="tags"`` gives the 50 sigmoid tag probabilities per
#: patch, so a run can cache musicnn's own tags like any embedding.
OUTPUTS = {**LAYERS, "tags": 50}

MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir",
    "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)
TAGS = {"MTT_musicnn": MTT_LABELS, "MSD_musicnn": MSD_LABELS}


def log_mel(wave: np.ndarray) -> np.ndarray:
    """musicnn's input representation of a 16 kHz mono wave: ``(frames, 96)`` float32.

    Mel power spectrogram as in training, rounded to float16 precision, then
    ``log10(10000 * x + 1)`` in float32 (finite for any finite input).
    """
    mel = librosa.feature.melspectrogram(y=np.asarray(wave, np.float32), sr=SAMPLE_RATE,
                                         hop_length=HOP_LENGTH, n_fft=N_FFT, n_mels=N_MELS,
                                         pad_mode="reflect").T
    # float16 rounding as in training; float16 values above 65504 are inf, so clamp first
    mel = np.minimum(mel, np.finfo(np.float16).max).astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * mel + np.float32(1)).astype(np.float32)


def patches(rep: np.ndarray) -> np.ndarray:
    """Non-overlapping 187-frame patches ``(n, 187, 96)``; leftover frames are dropped."""
    n = rep.shape[0] // N_FRAMES
    return np.ascontiguousarray(rep[:n * N_FRAMES].reshape(n, N_FRAMES, rep.shape[1]))


class MusicnnExtractor(Extractor):
    """musicnn features of 3 s patches at 16 kHz: ``(n_patches, 1, dim)`` float32.

    Parameters
    ----------
    model : ``"MTT_musicnn"`` (MagnaTagATune) or ``"MSD_musicnn"`` (Million Song Dataset).
    layer : ``"pool"`` (1506, [max_pool, mean_pool]), ``"mean_pool"`` (753), ``"max_pool"``
        (753) or ``"penultimate"`` (200); ``"tags"`` gives the model's 50 tag probabilities
        (sigmoid) instead of an embedding.
    device : ``"auto"`` (CUDA, else MPS, else CPU) or any torch device.
    batch_size : patches per forward pass (default 256 on CUDA, 32 on CPU).
    weights : a musicnn safetensors file to use instead of the shipped one (TF names and
        layouts, as the converter writes); not checked against ``PROVENANCE.json``.
    """

    name = "musicnn"
    sample_rate = SAMPLE_RATE
    #: The wheel's extractor loads audio with ``librosa.load(sr=16000)``: resampy in 2019.
    res_type = "kaiser_best"
    min_samples = MIN_SAMPLES

    def __init__(self, *, model: str = "MTT_musicnn", layer: str = "pool",
                 device: str | torch.device = "auto", batch_size: int | None = None,
                 weights: str | os.PathLike | None = None, dtype: str = "auto"):
        if model not in TAGS:
            raise ValueError(f"model must be one of {sorted(TAGS)}, not {model!r}")
        if layer not in OUTPUTS:
            raise ValueError(f"layer must be one of {list(OUTPUTS)}, not {layer!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.model_name = model
        self.layer = layer
        self.device = resolve_device(device)
        self.batch_size = batch_size or (256 if self.device.type == "cuda" else 32)
        # "auto" stays float32: bf16 autocast makes the network only 1.3x faster on an AMX
        # CPU and moves tag probabilities by up to 0.006 (docs/compute.md); ask for it.
        self.dtype = "float32" if dtype == "auto" else resolve_dtype(dtype, self.device)
        if weights is None:
            self.weights_path, self.weights_sha256 = shipped_weights(model)
            self._verify = True
        else:
            self.weights_path = Path(weights)
            self.weights_sha256 = sha256_file(self.weights_path)
            self._verify = False
        self._net: Musicnn | None = None

    # -- identity
    @property
    def dim(self) -> int:
        return OUTPUTS[self.layer]

    @property
    def tag_names(self) -> list[str]:
        """The model's 50 tags, in output order."""
        return list(TAGS[self.model_name])

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, model=self.model_name, layer=self.layer,
                                weights_sha256=self.weights_sha256,
                                preprocessing_version=PREPROCESSING_VERSION,
                                res_type=self.res_type,
                                **({} if self.dtype == "float32" else {"precision": self.dtype}))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model": self.model_name, "layer": self.layer,
                "dim": self.dim, "n_layers": 1, "weights_file": self.weights_path.name,
                "weights_sha256": self.weights_sha256,
                "weights_kind": weights_kind(self.weights_path.parent),
                "licence": "ISC (the musicnn 0.1.0 wheel's licence)",
                "source_wheel": WHEEL_NAME, "patch_frames": N_FRAMES,
                "patch_seconds": N_FRAMES * HOP_LENGTH / SAMPLE_RATE,
                "min_samples": MIN_SAMPLES, "remainder_policy": "leftover frames dropped",
                "preprocessing_version": PREPROCESSING_VERSION, "res_type": self.res_type,
                "librosa": librosa.__version__, "device": str(self.device),
                "dtype": self.dtype}

    def layer_names(self, n_layers: int) -> list[str]:
        return [f"{self.model_name} {self.layer}"] * n_layers

    # -- network
    @property
    def net(self) -> Musicnn:
        """The loaded network (eval mode, on ``device``); the weights are read on first use."""
        if self._net is None:
            tensors = load_weights(self.weights_path,
                                   sha256=self.weights_sha256 if self._verify else None)
            self._net = build_musicnn(tensors).to(self.device)
        return self._net

    def forward_patches(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """All named outputs of the network for log-mel patches ``(n, 187, 96)``.

        Keys: ``mean_pool``, ``max_pool``, ``penultimate``, ``logits``, ``tags`` as
        ``(n, dim)`` float32, plus ``pool`` (``[max_pool, mean_pool]``).
        """
        keys = ("mean_pool", "max_pool", "penultimate", "logits", "tags")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        net = self.net
        autocast = (torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))
                    if self.dtype != "float32" else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            for start in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[start:start + self.batch_size],
                                                              dtype=np.float32))
                out = net(batch.to(self.device))
                for k in keys:
                    parts[k].append(out[k].float().cpu().numpy())
        widths = {"mean_pool": 753, "max_pool": 753, "penultimate": 200,
                  "logits": len(self.tag_names), "tags": len(self.tag_names)}
        result = {k: (np.concatenate(v) if v else np.zeros((0, widths[k]), np.float32))
                  for k, v in parts.items()}
        result["pool"] = np.concatenate([result["max_pool"], result["mean_pool"]], axis=1)
        return result

    def trunk_and_top(self, train_layers: int = 1):
        """Frozen trunk and trainable top for fine-tuning (:func:`.partial.musicnn_split`)."""
        return musicnn_split(self.net, self.patches, train_layers, device=self.device,
                             layer=self.layer)

    # -- front end
    def patches(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel patches ``(n_patches, 187, 96)`` of a 16 kHz mono wave (n_patches >= 1)."""
        wave = self.check_wave(wave)
        return patches(log_mel(wave))

    # -- outputs
    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed a 16 kHz mono wave: ``(n_patches, 1, dim)`` float32 of ``layer``."""
        return self.embed_many([wave])[0]

    def embed_many(self, waves: Sequence[np.ndarray], *, progress: bool = False
                   ) -> list[np.ndarray]:
        """Embed several waves, batching their patches together; one array per wave. The same
        pass gives the tag probabilities, kept in ``last_companions`` (:meth:`companions`)."""
        outs = self._outputs_many(waves)
        self.last_companions = {fp: [out["tags"][:, None, :] for out in outs]
                                for fp in self.companions()}
        return [out[self.layer][:, None, :] for out in outs]

    def tagger(self) -> MusicnnExtractor:
        """This model's tag probabilities as an extractor (``layer="tags"``, same weights,
        device and precision): what notebooks 03 and 06 read."""
        return MusicnnExtractor(model=self.model_name, layer="tags", device=self.device,
                                batch_size=self.batch_size,
                                weights=None if self._verify else self.weights_path,
                                dtype=self.dtype)

    def companions(self) -> dict[str, MusicnnExtractor]:
        """The tags, computed by every forward pass anyway (none when ``layer="tags"``)."""
        if self.layer == "tags":
            return {}
        if not hasattr(self, "_tagger"):
            self._tagger = self.tagger()
        return {self._tagger.fingerprint: self._tagger}

    def tags(self, wave: np.ndarray) -> np.ndarray:
        """Tag probabilities (sigmoid) per patch: ``(n_patches, 50)`` float32."""
        return self._outputs_many([wave])[0]["tags"]

    def _outputs_many(self, waves: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        parts = [self.patches(w) for w in waves]
        if not parts:
            return []
        flat = self.forward_patches(np.concatenate(parts))
        bounds = np.cumsum([len(p) for p in parts])[:-1]
        split = {k: np.split(v, bounds) for k, v in flat.items()}
        return [{k: v[i] for k, v in split.items()} for i in range(len(parts))]


    # -- cost model
    @property
    def network(self) -> Musicnn:
        return self.net

    def weights_files(self) -> list[Path]:
        return [self.weights_path]

    def with_dtype(self, dtype: str) -> MusicnnExtractor:
        twin = copy.copy(self)  # shares the loaded network
        twin.dtype = resolve_dtype(dtype, self.device)
        return twin

    def fit_batch(self, n_clips: int, clip: np.ndarray) -> None:
        self.batch_size = int(n_clips) * len(self.patches(clip))

    def flops_per_clip(self, clip: np.ndarray) -> float:
        """Counted by ``torch.utils.flop_counter`` on one patch, times the patches."""
        parts = self.patches(clip)
        patch = torch.from_numpy(parts[:1]).to(self.device)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            self.net(patch)
        return float(counter.get_total_flops() * len(parts))


# ----------------------------------------------------------------------------- command line

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mtbc.extractors.musicnn",
                                 description="musicnn without TensorFlow")
    sub = ap.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert the musicnn 0.1.0 wheel's checkpoints")
    conv.add_argument("--wheel", required=True, type=Path)
    conv.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    tag = sub.add_parser("tag", help="print a file's top tags (mean over patches)")
    tag.add_argument("audio", type=Path)
    tag.add_argument("--model", default="MTT_musicnn", choices=sorted(TAGS))
    tag.add_argument("--top", type=int, default=5)
    tag.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.command == "convert":
        record = convert_wheel(args.wheel, args.out)
        for info in record["models"].values():
            print(f"{args.out / info['file']}  sha256 {info['sha256']}  "
                  f"{info['n_parameters']} parameters")
        return 0

    ext = MusicnnExtractor(model=args.model, device=args.device)
    wave = load_audio(args.audio, SAMPLE_RATE, res_type=ext.res_type)
    probs = ext.tags(wave).mean(axis=0)
    for i in np.argsort(-probs)[:args.top]:
        print(f"{ext.tag_names[i]:<20} {probs[i]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
