"""MERT-v1 embeddings through ``transformers.HubertModel`` (``docs/models/mert.md``).

MERT-v1 (m-a-p/MERT-v1-95M, m-a-p/MERT-v1-330M) is a HuBERT. Its hub repository ships remote
code (``modeling_MERT.py``) that breaks or silently drops hidden states on recent transformers,
so we never download or run it: the hub ``config.json`` becomes a :class:`HubertConfig`, the
checkpoint is loaded into a :class:`HubertModel` with every key accounted for (zero missing,
zero unexpected), and the two MERT options HubertModel cannot reproduce
(``feature_extractor_cqt``, ``deepnorm``) are refused.

Output convention (``OUTPUT_VERSION`` 1), one row per chunk of ``chunk_seconds``:
``(n_chunks, n_layers + 1, hidden)`` float32, the time-mean of every hidden state.
Row 0 is ``hidden_states[0]`` (the projected conv features plus the positional convolution,
the input of the first transformer layer), rows 1..n-1 the outputs of layers 1..n-1, and the
last row is ``last_hidden_state`` (for the pre-LN 330M that is after the final layer norm,
as MARBLE and transformers 4.x report it; transformers 5.x's ``hidden_states[-1]`` is before).

Chunking policy: a track is cut into equal chunks of ``chunk_seconds`` plus a shorter remainder,
never zero-padded (the first conv's group norm spans time, so padding would change outputs).
The remainder is kept when it holds at least ``MIN_LAST_SECONDS`` (1 s, 75 frames) and dropped
otherwise; a track shorter than one chunk is one chunk, however short, down to
``min_samples`` = 400 samples (one frame). Chunks of equal length, from any tracks, are
batched together; each chunk is normalised on its own (``do_normalize``), so a chunk's output
does not depend on what it is batched with.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mtbc.data.audio import chunk_wave
from mtbc.extractors.base import (
    Extractor,
    make_fingerprint,
    resolve_device,
    resolve_dtype,
    weights_kind,
)
from mtbc.extractors.memory import mert_batch_size, mert_chunk_bytes, mert_forward_flops
from mtbc.extractors.mert_hub import (
    MODEL_330M,
    MertSnapshot,
    licence_of,
    resolve_snapshot,
)
from mtbc.extractors.mert_model import (
    MIN_BF16_GROUP,
    build_model,
    feature_convs_as_matmul,
    hubert_config,
    mert_config,
    mert_preprocessor,
    positional_conv_in_fp32,
    random_model,
    zero_mean_unit_var,
)
from mtbc.extractors.partial import mert_split

OUTPUT_VERSION = 1
#: Shortest input, in samples: one frame of the conv front end (receptive field 400 samples).
MIN_SAMPLES = 400
#: A remainder after the last full chunk is kept when at least this long (seconds).
MIN_LAST_SECONDS = 1.0



def _check_options(chunk_seconds: float, batch_size: int | None) -> None:
    if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, int | float):
        raise ValueError(f"chunk_seconds must be a number of seconds, not {chunk_seconds!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, not {chunk_seconds}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")


class MertExtractor(Extractor):
    """MERT-v1 embeddings: per chunk, the time-mean of every hidden state.

    Parameters
    ----------
    model : hub id (``m-a-p/MERT-v1-330M`` default, ``m-a-p/MERT-v1-95M``) or a local folder
        holding ``config.json``, ``preprocessor_config.json`` and the weights.
    revision : hub branch, tag or commit; default the pinned ``DEFAULT_REVISIONS`` entry.
    device : ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    dtype : ``"auto"``: bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX),
        float32 elsewhere (:func:`mtbc.extractors.base.resolve_dtype`); or ``"float32"``,
        ``"bfloat16"``, ``"float16"``. On CUDA and MPS reduced precision casts the weights
        (``model.to(bfloat16)``); on the CPU it is autocast over float32 weights (norms stay
        float32). Reduced precision changes outputs slightly and the fingerprint records it.
    chunk_seconds : chunk length in seconds (30 s as in MARBLE).
    batch_size : chunks per forward pass; default 1 on CPU; on CUDA chosen from the free
        device memory when the model loads (:func:`mtbc.extractors.memory.mert_batch_size`).

    ``embed(wave)`` takes mono float32 at ``sample_rate`` (24 kHz) and returns
    ``(n_chunks, n_layers + 1, hidden)``: ``(n, 13, 768)`` for 95M, ``(n, 25, 1024)`` for 330M.
    Files are resolved on construction (so ``fingerprint`` is known); weights load on first use.
    """

    name = "mert"
    min_samples = MIN_SAMPLES

    def __init__(self, *, model: str | Path = MODEL_330M, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", chunk_seconds: float = 30.0,
                 batch_size: int | None = None):
        _check_options(chunk_seconds, batch_size)  # before any download
        resolve_dtype(dtype, resolve_device(device))
        self._configure(resolve_snapshot(model, revision=revision), device=device, dtype=dtype,
                        chunk_seconds=chunk_seconds, batch_size=batch_size)

    def _configure(self, snapshot: MertSnapshot, *, device: str, dtype: str,
                   chunk_seconds: float, batch_size: int | None) -> None:
        _check_options(chunk_seconds, batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, cpu_bf16=True)
        #: "weights": the model is cast to ``dtype`` (CUDA, MPS); "autocast": float32 weights
        #: under CPU autocast; "none": float32.
        self.precision_mode = ("none" if self.dtype == "float32" else
                               "autocast" if self.device.type == "cpu" else "weights")
        self.chunk_seconds = float(chunk_seconds)
        self._auto_batch = batch_size is None and self.device.type == "cuda"
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 1)
        self.snapshot = snapshot
        self._model = None
        config, preprocessor = snapshot.config, snapshot.preprocessor
        hubert_config(config)  # refuse CQT / deepnorm before any weights are read
        self.config = config
        if "sampling_rate" not in preprocessor or "do_normalize" not in preprocessor:
            raise ValueError("preprocessor_config.json must give sampling_rate and do_normalize, "
                             f"got keys {sorted(preprocessor)}")
        self.sample_rate = int(preprocessor["sampling_rate"])
        if int(config.get("sample_rate", self.sample_rate)) != self.sample_rate:
            raise ValueError(f"config.json sample_rate {config['sample_rate']} differs from "
                             f"preprocessor_config.json sampling_rate {self.sample_rate}")
        if preprocessor.get("feature_size", 1) != 1:
            raise ValueError("preprocessor_config.json feature_size must be 1 (mono waveform)")
        self.do_normalize = bool(preprocessor["do_normalize"])
        self.n_layers = int(config.get("num_hidden_layers", 12)) + 1
        self.hidden_size = int(config.get("hidden_size", 768))
        self.chunk_samples = max(int(round(self.chunk_seconds * self.sample_rate)), MIN_SAMPLES)
        self.min_last_samples = max(int(round(MIN_LAST_SECONDS * self.sample_rate)), MIN_SAMPLES)

    @classmethod
    def from_model(cls, model, *, config: dict[str, Any], preprocessor: dict[str, Any],
                   snapshot: MertSnapshot | None = None, device: str = "auto",
                   dtype: str = "auto", chunk_seconds: float = 30.0,
                   batch_size: int | None = None) -> MertExtractor:
        """Wrap an already built ``HubertModel`` (benchmarks, tests); no files are read.

        The model is put in eval mode, moved to ``device`` and given the extractor's hooks.
        ``snapshot``: the files the model was loaded from (its identity for the fingerprint);
        default an ``in-memory`` one made of ``config`` and ``preprocessor``.
        """
        obj = cls.__new__(cls)
        snapshot = snapshot or MertSnapshot(folder=Path("."), model_id="in-memory",
                                            revision=None, commit="in-memory", config=config,
                                            preprocessor=preprocessor)
        obj._configure(snapshot, device=device, dtype=dtype, chunk_seconds=chunk_seconds,
                       batch_size=batch_size)
        obj._install(model.eval())
        return obj

    # --------------------------------------------------------------------------- model

    def load(self) -> MertExtractor:
        """Load the weights now (otherwise done on first ``embed``); returns self."""
        if self._model is None:
            self._install(build_model(self.snapshot.config, self.snapshot.weights))
        return self

    def _install(self, model) -> None:
        """Move to the device and hook every layer's input to collect time-means."""
        import torch

        model = model.to(self.device)
        if self.precision_mode == "weights":
            model = model.to(getattr(torch, self.dtype))
        if self.precision_mode == "autocast":
            feature_convs_as_matmul(model)
        groups = int(self.config.get("num_conv_pos_embedding_groups", 16))
        if self.precision_mode == "autocast" and self.hidden_size // groups < MIN_BF16_GROUP:
            positional_conv_in_fp32(model)
        if self._auto_batch:
            free, _total = torch.cuda.mem_get_info(self.device)
            self.batch_size = mert_batch_size(free, self.config, self.chunk_samples,
                                              dtype_bytes=2 if self.dtype != "float32" else 4)
        self._captured: list = []

        self._capturing = False

        def capture(_module, args, kwargs):
            if self._capturing:
                hidden = args[0] if args else kwargs["hidden_states"]
                self._captured.append(hidden.float().mean(dim=1))

        for layer in model.encoder.layers:
            layer.register_forward_pre_hook(capture, with_kwargs=True)
        self._model = model

    @property
    def model(self):
        """The loaded ``transformers.HubertModel`` (loads on first access)."""
        return self.load()._model

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """``(B, n_samples)`` float32 chunks of equal length -> ``(B, n_layers, hidden)``."""
        import torch

        model = self.model
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.do_normalize:
            x = zero_mean_unit_var(x)
        if self.precision_mode == "weights":
            x = x.to(getattr(torch, self.dtype))
        autocast = (torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))
                    if self.precision_mode == "autocast" else contextlib.nullcontext())
        self._captured.clear()
        self._capturing = True
        try:
            with torch.inference_mode(), autocast:
                out = model(x)
                means = [*self._captured, out.last_hidden_state.float().mean(dim=1)]
        finally:
            self._capturing = False
            self._captured.clear()
        if len(means) != self.n_layers:
            raise RuntimeError(f"collected {len(means)} hidden states, expected {self.n_layers}")
        return torch.stack(means, dim=1).cpu().numpy().astype(np.float32, copy=False)

    # --------------------------------------------------------------------------- interface

    @property
    def stream_unit(self) -> int:
        """Chunks are embedded (and normalised) independently: cut at chunk boundaries."""
        return self.chunk_samples

    def chunks(self, wave: np.ndarray) -> list[np.ndarray]:
        """The chunks ``embed`` runs, in order (views of ``wave``; policy in the module doc)."""
        return chunk_wave(wave, self.chunk_samples, min_last=self.min_last_samples)

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embed one mono float32 wave at 24 kHz: ``(n_chunks, n_layers, hidden)`` float32."""
        return self.embed_many([wave])[0]

    def embed_many(self, waves: Sequence[np.ndarray], *, progress: bool = False) -> list[np.ndarray]:
        """Embed several waves, batching equal-length chunks across them (``batch_size``).

        Returns one ``(n_chunks_i, n_layers, hidden)`` array per wave, equal (to float
        rounding) to embedding each wave alone.
        """
        chunks = [self.chunks(self.check_wave(w, index=i)) for i, w in enumerate(waves)]
        out = [np.empty((len(c), self.n_layers, self.hidden_size), np.float32) for c in chunks]
        by_length: dict[int, list[tuple[int, int]]] = {}
        for i, track in enumerate(chunks):
            for j, chunk in enumerate(track):
                by_length.setdefault(len(chunk), []).append((i, j))
        batches = [group[k:k + self.batch_size]
                   for _, group in sorted(by_length.items(), reverse=True)
                   for k in range(0, len(group), self.batch_size)]
        for batch in tqdm(batches, desc="mert", unit="batch", disable=not progress):
            result = self._forward(np.stack([chunks[i][j] for i, j in batch]))
            for (i, j), row in zip(batch, result, strict=True):
                out[i][j] = row
        return out

    @property
    def fingerprint(self) -> str:
        # A local folder is identified by its contents (commit), not by where it lies.
        model_id = "local" if self.snapshot.model_id.startswith("local:") else self.snapshot.model_id
        # The precision actually used (never "auto"), and for reduced precision how it is
        # applied (cast weights vs CPU autocast give slightly different outputs).
        extra = {} if self.dtype == "float32" else {"precision_mode": self.precision_mode}
        return make_fingerprint(
            self.name, model=model_id, commit=self.snapshot.commit,
            precision=self.dtype, chunk_seconds=self.chunk_seconds,
            min_last_samples=self.min_last_samples, sample_rate=self.sample_rate,
            do_normalize=self.do_normalize, output_version=OUTPUT_VERSION, **extra)

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "model": self.snapshot.model_id,
            "weights_kind": weights_kind(self.snapshot.folder),
            "licence": licence_of(self.snapshot.model_id),
            "revision": self.snapshot.revision,
            "commit": self.snapshot.commit,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "pre_layer_norm": bool(self.config.get("do_stable_layer_norm", False)),
            "chunk_seconds": self.chunk_seconds,
            "min_last_samples": self.min_last_samples,
            "dtype": self.dtype,
            "precision_mode": self.precision_mode,
            "batch_size": self.batch_size,
            "device": str(self.device),
            "do_normalize": self.do_normalize,
            "output_version": OUTPUT_VERSION,
            "attn_implementation": (getattr(self._model.config, "_attn_implementation", None)
                                    if self._model is not None else None),
        }

    # --------------------------------------------------------------------------- cost model

    @classmethod
    def bench_keys(cls) -> tuple[str, ...]:
        return ("mert-95m", "mert-330m")

    @classmethod
    def bench_key(cls, options: Mapping[str, Any]) -> str:
        """``mert-95m`` or ``mert-330m`` from the ``model`` option (hub id, or a local
        folder's ``config.json`` hidden size); 330M when it cannot tell."""
        model = str(options.get("model", MODEL_330M))
        for key in cls.bench_keys():
            if key.split("-")[1] in model.lower():
                return key
        config = Path(model) / "config.json"
        if config.is_file():
            hidden = json.loads(config.read_text()).get("hidden_size", 1024)
            return "mert-95m" if hidden == 768 else "mert-330m"
        return "mert-330m"

    @classmethod
    def prepare_imports(cls) -> None:
        import transformers.models.hubert.modeling_hubert  # noqa: F401 - heavy, loading needs it

    @classmethod
    def random_full_size(cls, key: str, *, device: str, seed: int = 0) -> MertExtractor:
        """The released architecture of ``key`` with random weights, built in memory (no
        1.2 GB file); speed-only timing."""
        variant = key.split("-")[1]
        config = mert_config(variant, tiny=False)
        return cls.from_model(random_model(config, seed=seed), config=config,
                              preprocessor=mert_preprocessor(), device=device, dtype="float32")

    @property
    def network(self):
        return self.model

    def weights_files(self) -> list[Path]:
        return list(self.snapshot.weights)

    def auto_dtype(self) -> str:
        return resolve_dtype("auto", self.device, cpu_bf16=True)

    def with_dtype(self, dtype: str) -> MertExtractor:
        if dtype == self.dtype:
            return self
        model = self.model
        if self.device.type != "cpu" and dtype != "float32":
            model = copy.deepcopy(model)  # cast to bf16 on the device: keep fp32 intact
        # Same files (snapshot): the same fingerprint but for the precision.
        return type(self).from_model(
            model, config=self.config, preprocessor=self.snapshot.preprocessor,
            snapshot=self.snapshot, device=str(self.device), dtype=dtype,
            chunk_seconds=self.chunk_seconds, batch_size=self.batch_size)

    def fit_batch(self, n_clips: int, clip: np.ndarray) -> None:
        self.batch_size = int(n_clips)

    def flops_per_clip(self, clip: np.ndarray) -> float:
        return float(sum(mert_forward_flops(self.config, len(c)) for c in self.chunks(clip)))

    def chunk_bytes(self, n_samples: int) -> int:
        return mert_chunk_bytes(self.config, n_samples,
                                dtype_bytes=4 if self.dtype == "float32" else 2)

    def trunk_and_top(self, train_layers: int = 4, *, lora: int | None = None):
        """Frozen trunk, trainable last K layers or LoRA on them (:func:`.partial.mert_split`)."""
        return mert_split(self, train_layers, normalize=zero_mean_unit_var, lora=lora)

    def layer_names(self, n_layers: int | None = None) -> list[str]:
        n = self.n_layers if n_layers is None else n_layers
        return ["layer 0 (conv features)", *(f"layer {i}" for i in range(1, n - 1)),
                f"layer {n - 1} (output)"][:n]
