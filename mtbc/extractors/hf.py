"""Any supported Hugging Face audio encoder, by hub id or local snapshot (``docs/models/hf.md``).

The ``hf`` extractor reads ``config.json``, picks the family from its ``model_type`` (the table
in :mod:`mtbc.extractors.hf_families`: wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper's
encoder, AST, CLAP; anything else is refused with that table), builds the ``transformers``
model class by name (never ``trust_remote_code``) and loads the weights from safetensors or
``torch.load(weights_only=True)``. The input comes from the checkpoint's own feature-extractor
config (``preprocessor_config.json``): sample rate, normalisation, log-mel settings.

Output (``OUTPUT_VERSION`` 1), one row per chunk: ``(n_chunks, n_layers, width)`` float32, the
time-mean of every hidden state, as for MERT: row 0 is ``hidden_states[0]`` (the encoder's
input), the last row ``last_hidden_state`` (after a final layer norm where the model has one).

Chunking, at each model's native window:

- raw-waveform families: ``chunk_seconds`` (30 s default), never zero-padded (a group norm
  over time would see the padding); equal-length chunks are batched;
- Whisper: 30 s, padded by the feature extractor as Whisper was trained, and the padding is
  trimmed from the output: a 10 s clip gives ``ceil(n_samples / 320)`` = 500 frames, not 1500;
- AST: ``max_length`` frames of 10 ms (1024 frames: 10.24 s of fbank frames, 164,080 samples
  with the 25 ms window); the feature extractor zero-pads a shorter chunk's fbank;
- CLAP: ``max_length_s`` (10 s), repeat-padded by the feature extractor; rows are the audio
  encoder's stage outputs (mean over time and frequency), its pooled output and, last, the
  L2-normalised joint-space embedding. Stages differ in width, so rows are zero-padded on the
  right to the widest; ``metadata()["layer_widths"]`` gives each row's true width.

A remainder after the last full chunk is kept when at least 1 s long; a track shorter than one
chunk is one chunk.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtbc.data.audio import chunk_wave
from mtbc.extractors.base import (
    Extractor,
    make_fingerprint,
    resolve_device,
    resolve_dtype,
    weights_kind,
)
from mtbc.extractors.hf_families import (
    Family,
    build_config,
    build_encoder,
    families_table,
    family_for,
    licence_of,
)
from mtbc.extractors.mert_hub import HubSpec, MertSnapshot, resolve_snapshot

OUTPUT_VERSION = 1
MIN_LAST_SECONDS = 1.0
DEFAULT_CHUNK_SECONDS = 30.0
CLAP_MUSIC = "laion/larger_clap_music"

#: Pinned revisions. These commits were read from stored copies of hub pages (CLAP music: the
#: newest commit of its history page; whisper-base: the source commit a verbatim mirror
#: names); huggingface.co itself could not be reached to confirm them. Other ids use "main"
#: unless ``revision=`` is given; the resolved commit is in the fingerprint either way.
DEFAULT_REVISIONS: dict[str, str] = {
    CLAP_MUSIC: "a0b4534a14f58e20944452dff00a22a06ce629d1",
    "openai/whisper-base": "e37978b90ca9030d5170a5c07aadb050351a65bb",
}
#: Tokenizer files (CLAP's text side); fetched when a repository has them, never required.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "special_tokens_map.json")
_BASE = ("config.json", "preprocessor_config.json")
#: What the hf extractor fetches (never ``*.py``) and requires.
HF_SPEC = HubSpec(what="Hugging Face", required=_BASE,
                  steps=((*_BASE, *TOKENIZER_FILES, "*.safetensors"),
                         (*_BASE, *TOKENIZER_FILES, "pytorch_model.bin")),
                  default_revisions=tuple(DEFAULT_REVISIONS.items()),
                  examples=(CLAP_MUSIC, "openai/whisper-base"))


def _receptive_field(config: dict[str, Any]) -> int:
    """Samples one output frame of a wav2vec2-style conv front end reads (400 for the usual)."""
    field = 1
    for kernel, stride in reversed(list(zip(config.get("conv_kernel", (10, 3, 3, 3, 3, 2, 2)),
                                            config.get("conv_stride", (5, 2, 2, 2, 2, 2, 2)),
                                            strict=True))):
        field = (field - 1) * stride + kernel
    return field


def _check_options(chunk_seconds: float | None, batch_size: int | None) -> None:
    if chunk_seconds is not None and (isinstance(chunk_seconds, bool)
                                      or not isinstance(chunk_seconds, int | float)
                                      or not chunk_seconds > 0):
        raise ValueError(f"chunk_seconds must be a positive number of seconds, not {chunk_seconds!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")


def feature_extractor(family: Family, preprocessor: dict[str, Any], *, where: str):
    """The family's ``transformers`` feature extractor built from ``preprocessor_config.json``."""
    import transformers

    declared = preprocessor.get("feature_extractor_type", family.feature_extractor)
    if declared != family.feature_extractor:
        raise ValueError(f"{where}: feature_extractor_type {declared!r} does not fit a "
                         f"{family.name} model, which needs {family.feature_extractor}")
    return getattr(transformers, family.feature_extractor).from_dict(dict(preprocessor))


class HfExtractor(Extractor):
    """Embeddings of a supported ``transformers`` audio encoder: per chunk, the time-mean of
    every hidden state (module doc).

    Parameters
    ----------
    model : hub id (e.g. ``openai/whisper-base``) or a local folder laid out like a hub
        snapshot (``config.json``, ``preprocessor_config.json``, ``*.safetensors`` or
        ``pytorch_model.bin``).
    revision : hub branch, tag or commit; default the pinned ``DEFAULT_REVISIONS`` entry or
        ``"main"``.
    device, dtype : as for every extractor (:func:`mtbc.extractors.base.resolve_dtype`;
        ``"auto"`` is fp32 on CPUs, bf16 on CUDA).
    chunk_seconds : chunk length for raw-waveform families (30 s default); Whisper, AST and
        CLAP use their native window and refuse this option.
    batch_size : chunks per forward pass (default 1 on CPU, 8 on CUDA).

    Examples
    --------
    >>> ex = HfExtractor(model="openai/whisper-base")            # doctest: +SKIP
    >>> ex.embed(wave_16k).shape                                 # doctest: +SKIP
    (1, 7, 512)
    """

    name = "hf"
    #: Families this extractor accepts (None: every row of the table).
    only_families: tuple[str, ...] | None = None

    def __init__(self, *, model: str | Path, revision: str | None = None, device: str = "auto",
                 dtype: str = "auto", chunk_seconds: float | None = None,
                 batch_size: int | None = None):
        _check_options(chunk_seconds, batch_size)  # before any download
        resolve_dtype(dtype, resolve_device(device))
        snapshot = resolve_snapshot(model, revision=revision, spec=HF_SPEC)
        self._configure(snapshot, device=device, dtype=dtype, chunk_seconds=chunk_seconds,
                        batch_size=batch_size)

    def _configure(self, snapshot: MertSnapshot, *, device: str, dtype: str,
                   chunk_seconds: float | None, batch_size: int | None) -> None:
        self.snapshot = snapshot
        self.config = snapshot.config
        where = str(snapshot.folder / "config.json")
        self.family = family_for(self.config, where=where)
        if self.only_families is not None and self.family.model_type not in self.only_families:
            raise ValueError(f"{where}: {self.name} needs model_type "
                             f"{' or '.join(self.only_families)}, got {self.family.model_type!r}")
        self.frontend = self.family.frontend
        if chunk_seconds is not None and self.frontend != "wave":
            raise ValueError(f"{self.family.name} runs at its native window "
                             f"({self.family.window}); leave chunk_seconds unset")
        self.features = feature_extractor(self.family, snapshot.preprocessor,
                                          where=str(snapshot.folder / "preprocessor_config.json"))
        self.sample_rate = int(self.features.sampling_rate)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.precision_mode = ("none" if self.dtype == "float32" else
                               "autocast" if self.device.type == "cpu" else "weights")
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        fe, cfg = self.features, self.config
        if self.frontend == "wave":
            self.chunk_samples = int(round((chunk_seconds or DEFAULT_CHUNK_SECONDS) * self.sample_rate))
            self.min_samples = _receptive_field(cfg)
            self.chunk_samples = max(self.chunk_samples, self.min_samples)
        elif self.frontend == "whisper":
            self.chunk_samples, self.min_samples = int(fe.n_samples), 2 * int(fe.hop_length)
        elif self.frontend == "ast":  # max_length frames of a 25 ms window every 10 ms
            win, hop = self.sample_rate * 25 // 1000, self.sample_rate * 10 // 1000
            self.chunk_samples, self.min_samples = (int(fe.max_length) - 1) * hop + win, win
        else:  # clap
            self.chunk_samples, self.min_samples = int(fe.nb_max_samples), int(fe.hop_length)
            self._check_clap(str(snapshot.folder / "preprocessor_config.json"))
        self.chunk_seconds = self.chunk_samples / self.sample_rate
        self.min_last_samples = max(int(round(MIN_LAST_SECONDS * self.sample_rate)),
                                    self.min_samples)
        self.layer_widths = self._layer_widths()
        self.n_layers, self.hidden_size = len(self.layer_widths), max(self.layer_widths)
        self._model = None

    def _layer_widths(self) -> list[int]:
        """Width of each output row, from the config as transformers reads it (its defaults
        fill keys a config.json leaves out)."""
        cfg = build_config(self.family, self.config)
        if self.frontend == "clap":
            audio = cfg.audio_config
            depths = list(audio.depths)
            stages = [audio.patch_embeds_hidden_size * 2 ** min(i, len(depths) - 1)
                      for i in range(len(depths) + 1)]
            return [*stages, int(audio.hidden_size), int(cfg.projection_dim)]
        if self.frontend == "whisper":
            return [int(cfg.d_model)] * (int(cfg.encoder_layers) + 1)
        return [int(cfg.hidden_size)] * (int(cfg.num_hidden_layers) + 1)

    # --------------------------------------------------------------------------- model

    def load(self) -> HfExtractor:
        """Load the weights now (otherwise on first ``embed``); returns self."""
        if self._model is None:
            import torch

            model = build_encoder(self.family, self.config, self.snapshot.weights)
            model = model.to(self.device)
            if self.precision_mode == "weights":
                model = model.to(getattr(torch, self.dtype))
            self._model = model
        return self

    @property
    def model(self):
        """The loaded ``transformers`` model (loads on first access)."""
        return self.load()._model

    def _inputs(self, chunks: Sequence[np.ndarray]) -> dict[str, Any]:
        """The feature extractor's model input for equal-window ``chunks`` (torch tensors)."""
        import torch

        kwargs: dict[str, Any] = {"sampling_rate": self.sample_rate, "return_tensors": "np"}
        if self.frontend == "clap":
            kwargs["truncation"] = self.clap_truncation
        out = self.features(list(chunks), **kwargs)
        name = {"wave": "input_values", "ast": "input_values"}.get(self.frontend, "input_features")
        x = torch.from_numpy(np.ascontiguousarray(out[name], dtype=np.float32)).to(self.device)
        if self.precision_mode == "weights":
            x = x.to(getattr(torch, self.dtype))
        inputs = {name: x}
        if self.frontend == "clap":
            # Upstream marks a random clip of a batch "longer" when none is; a single clip
            # is therefore always marked in fusion mode. mtbc marks every clip so, so a
            # chunk's output does not depend on its batch or on a random draw.
            fusion = self.clap_truncation == "fusion"
            inputs["is_longer"] = torch.full((len(chunks), 1), fusion, device=self.device)
        return inputs

    @property
    def clap_truncation(self) -> str:
        """CLAP's feature mode: ``fusion`` (4 mel views) for fused models, ``rand_trunc`` (one
        view; no crop happens, chunks never exceed the window) otherwise. The preprocessor's
        own ``truncation`` is used when it fits ``enable_fusion``; when it does not (upstream
        would fail on the input shape), the fitting mode is used, with a warning."""
        return self._clap_truncation

    def _check_clap(self, where: str) -> None:
        import warnings

        fused = bool(self.config.get("audio_config", {}).get("enable_fusion", False))
        fits = "fusion" if fused else "rand_trunc"
        declared = str(getattr(self.features, "truncation", fits))
        if declared != fits:
            warnings.warn(f"{where}: truncation {declared!r} does not fit a CLAP model with "
                          f"enable_fusion={fused}; using {fits!r}", stacklevel=3)
        self._clap_truncation = fits

    def _forward(self, chunks: Sequence[np.ndarray]) -> np.ndarray:
        """Chunks (equal length for raw-wave families) -> ``(B, n_layers, width)`` float32."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - torch's usual name

        model, inputs = self.model, self._inputs(chunks)
        autocast = (torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))
                    if self.precision_mode == "autocast" else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            if self.frontend == "clap":
                out = model.audio_model(**inputs, output_hidden_states=True)
                pooled = out.pooler_output.float()
                joint = F.normalize(model.audio_projection(out.pooler_output).float(), dim=-1)
                rows = [h.float().mean(dim=(2, 3)) for h in out.hidden_states] + [pooled, joint]
                rows = [F.pad(r, (0, self.hidden_size - r.shape[1])) for r in rows]
            else:
                out = model(**inputs, output_hidden_states=True)
                states = [*out.hidden_states[:-1], out.last_hidden_state]
                if self.frontend == "whisper":
                    rows = self._trimmed_means(states, [len(c) for c in chunks])
                else:
                    rows = [s.float().mean(dim=1) for s in states]
        if len(rows) != self.n_layers:
            raise RuntimeError(f"collected {len(rows)} hidden states, expected {self.n_layers}")
        return torch.stack(rows, dim=1).cpu().numpy().astype(np.float32, copy=False)

    def valid_frames(self, n_samples: int) -> int:
        """Whisper encoder frames that hold audio for a chunk of ``n_samples`` (50 per second)."""
        return min(math.ceil(n_samples / (2 * int(self.features.hop_length))),
                   int(self.config.get("max_source_positions", 1500)))

    def _trimmed_means(self, states, lengths: Sequence[int]):
        import torch

        frames = states[0].shape[1]
        valid = torch.tensor([self.valid_frames(n) for n in lengths], device=states[0].device)
        mask = (torch.arange(frames, device=valid.device)[None, :] < valid[:, None]).float()
        return [(s.float() * mask[..., None]).sum(dim=1) / valid[:, None] for s in states]

    # --------------------------------------------------------------------------- interface

    @property
    def stream_unit(self) -> int:
        """Chunks are embedded independently: a wave may be cut at chunk boundaries."""
        return self.chunk_samples

    def chunks(self, wave: np.ndarray) -> list[np.ndarray]:
        """The chunks ``embed`` runs, in order (views of ``wave``)."""
        return chunk_wave(wave, self.chunk_samples, min_last=self.min_last_samples)

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed one mono float32 wave at ``sample_rate``: ``(n_chunks, n_layers, width)``."""
        return self.embed_many([wave])[0]

    def embed_many(self, waves: Sequence[np.ndarray], *, progress: bool = False) -> list[np.ndarray]:
        """Embed several waves, batching chunks across them (``batch_size``); raw-waveform
        families batch only chunks of equal length (no padding). One array per wave."""
        from tqdm import tqdm

        chunks = [self.chunks(self.check_wave(w, index=i)) for i, w in enumerate(waves)]
        out = [np.empty((len(c), self.n_layers, self.hidden_size), np.float32) for c in chunks]
        groups: dict[int, list[tuple[int, int]]] = {}
        for i, track in enumerate(chunks):
            for j, chunk in enumerate(track):
                groups.setdefault(len(chunk) if self.frontend == "wave" else 0, []).append((i, j))
        batches = [group[k:k + self.batch_size] for _, group in sorted(groups.items(), reverse=True)
                   for k in range(0, len(group), self.batch_size)]
        for batch in tqdm(batches, desc=self.name, unit="batch", disable=not progress):
            result = self._forward([chunks[i][j] for i, j in batch])
            for (i, j), row in zip(batch, result, strict=True):
                out[i][j] = row
        return out

    @property
    def fingerprint(self) -> str:
        model_id = "local" if self.snapshot.model_id.startswith("local:") else self.snapshot.model_id
        extra: dict[str, Any] = {} if self.dtype == "float32" else {"precision_mode": self.precision_mode}
        if self.frontend == "clap":
            extra["clap_truncation"] = self.clap_truncation
        if self.frontend == "ast":
            from transformers.utils import is_speech_available

            # the fbank comes from torchaudio when installed, else transformers' numpy port
            extra["fbank"] = "torchaudio" if is_speech_available() else "numpy"
        return make_fingerprint(
            self.name, model=model_id, commit=self.snapshot.commit, family=self.family.model_type,
            precision=self.dtype, chunk_samples=self.chunk_samples,
            min_last_samples=self.min_last_samples, sample_rate=self.sample_rate,
            output_version=OUTPUT_VERSION, **extra)

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "model": self.snapshot.model_id,
            "weights_kind": weights_kind(self.snapshot.folder),
            "licence": licence_of(self.snapshot.model_id),
            "revision": self.snapshot.revision,
            "commit": self.snapshot.commit,
            "family": self.family.name,
            "model_type": self.family.model_type,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "layer_widths": self.layer_widths,
            "chunk_seconds": self.chunk_seconds,
            "chunk_samples": self.chunk_samples,
            "min_last_samples": self.min_last_samples,
            "dtype": self.dtype,
            "precision_mode": self.precision_mode,
            "batch_size": self.batch_size,
            "device": str(self.device),
            "output_version": OUTPUT_VERSION,
            **({"clap_truncation": self.clap_truncation} if self.frontend == "clap" else {}),
        }

    def layer_names(self, n_layers: int | None = None) -> list[str]:
        n = self.n_layers if n_layers is None else n_layers
        if self.frontend == "clap":
            w = self.layer_widths
            names = [f"patch embedding ({w[0]})",
                     *(f"stage {i} ({w[i]})" for i in range(1, len(w) - 2)),
                     f"pooled ({w[-2]})", f"joint ({w[-1]})"]
        else:
            names = ["layer 0 (input)", *(f"layer {i}" for i in range(1, self.n_layers - 1)),
                     f"layer {self.n_layers - 1} (output)"]
        return names[:n]

    # --------------------------------------------------------------------------- CLAP text

    @property
    def has_text(self) -> bool:
        """Whether :meth:`embed_text` works: a CLAP checkpoint (text tower, joint space in the
        last output row), by the ``clap`` or the ``hf`` name."""
        return self.frontend == "clap"

    @property
    def projection_dim(self) -> int:
        """CLAP only: width of the joint space (the last row's true width)."""
        if not self.has_text:
            raise ValueError(f"{self.snapshot.model_id} is {self.family.name}: only CLAP has "
                             f"a joint audio-text space")
        return self.layer_widths[-1]

    def embed_text(self, prompts: Sequence[str]) -> np.ndarray:
        """CLAP only: ``(len(prompts), projection_dim)`` float32 L2-normalised text embeddings
        in the joint space (the same space as the last row of ``embed``)."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - torch's usual name

        if self.frontend != "clap":
            raise ValueError(f"embed_text needs a CLAP model; {self.snapshot.model_id} is "
                             f"{self.family.name}")
        prompts = [str(p) for p in prompts]
        if not prompts:
            raise ValueError("embed_text: no prompts given")
        tokens = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()
                  if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            out = self.model.text_model(**tokens)
            text = self.model.text_projection(out.pooler_output)
        return F.normalize(text.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)

    @property
    def tokenizer(self):
        """CLAP's tokenizer from the snapshot's own files (never remote code)."""
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            folder = self.snapshot.folder
            if not any((folder / name).is_file() for name in TOKENIZER_FILES):
                raise ValueError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                                 "text embeddings need the CLAP repository's tokenizer")
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
        return self._tokenizer


class ClapExtractor(HfExtractor):
    """CLAP (``ClapModel``): the audio encoder's stage outputs plus the joint-space audio
    embedding (last row), and :meth:`embed_text` for prompts. Options as :class:`HfExtractor`,
    default model ``laion/larger_clap_music``."""

    name = "clap"
    only_families = ("clap",)

    def __init__(self, *, model: str | Path = CLAP_MUSIC, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None):
        super().__init__(model=model, revision=revision, device=device, dtype=dtype,
                         batch_size=batch_size)

    def joint(self, embeddings: np.ndarray) -> np.ndarray:
        """The joint-space rows of cached ``embed`` output: ``(..., n_layers, width)`` ->
        ``(..., projection_dim)``."""
        return np.asarray(embeddings)[..., -1, : self.projection_dim]


__all__ = ["ClapExtractor", "HfExtractor", "families_table"]
