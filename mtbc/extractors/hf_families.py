"""The Hugging Face audio encoders the ``hf`` extractor runs, and how their checkpoints load.

One table (:data:`FAMILIES`) names every supported family: its ``config.json`` ``model_type``,
the ``transformers`` config and model classes, the feature extractor that turns audio into the
model's input, and the native window. Anything else is refused with that table in the message
(:func:`family_for`). Checkpoints are read by :func:`mtbc.extractors.mert_model.load_state_dict`
(safetensors, or ``torch.load(weights_only=True)``: a pickle payload runs nothing) and every
tensor of the encoder must be accounted for (:func:`build_encoder`); heads that are not part of
the encoder (a quantizer, a decoder, a classifier) are named per family and left out.
No remote code is ever imported: classes come from ``transformers`` by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbc.extractors.mert_hub import UNKNOWN_LICENCE, licence_of  # noqa: F401 - re-exported
from mtbc.extractors.mert_model import load_state_dict


@dataclass(frozen=True)
class Family:
    """One supported family (a row of the table in ``docs/models/hf.md``).

    ``frontend`` is how audio becomes input: ``"wave"`` (the raw waveform, normalised as the
    checkpoint's ``Wav2Vec2FeatureExtractor`` says), ``"whisper"``, ``"ast"`` or ``"clap"``
    (log-mel spectrograms by the named feature extractor). ``window`` describes the native
    window; ``prefixes`` are key prefixes of an encoder saved inside a bigger model (Whisper's
    ``model.encoder.``: only those keys are kept; transformers strips the usual base-model
    prefixes itself); ``ignored`` are key prefixes outside the encoder a checkpoint may hold.
    """

    name: str
    model_type: str
    config_class: str
    model_class: str
    feature_extractor: str
    frontend: str
    window: str
    prefixes: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


_WAVE_HEADS = ("quantizer.", "project_q.", "project_hid.", "lm_head.", "projector.",
               "classifier.", "dropout_features.", "final_proj.", "label_embs_concat")

#: Every family the ``hf`` extractor accepts, by ``config.json`` ``model_type``.
FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("wav2vec2", "wav2vec2", "Wav2Vec2Config", "Wav2Vec2Model",
           "Wav2Vec2FeatureExtractor", "wave", "chunk_seconds (30 s default)", (), _WAVE_HEADS),
    Family("hubert", "hubert", "HubertConfig", "HubertModel", "Wav2Vec2FeatureExtractor",
           "wave", "chunk_seconds (30 s default)", (), _WAVE_HEADS),
    Family("wavlm", "wavlm", "WavLMConfig", "WavLMModel", "Wav2Vec2FeatureExtractor", "wave",
           "chunk_seconds (30 s default)", (), _WAVE_HEADS),
    Family("data2vec-audio", "data2vec-audio", "Data2VecAudioConfig", "Data2VecAudioModel",
           "Wav2Vec2FeatureExtractor", "wave", "chunk_seconds (30 s default)",
           (), _WAVE_HEADS),
    Family("whisper encoder", "whisper", "WhisperConfig", "WhisperEncoder",
           "WhisperFeatureExtractor", "whisper", "30 s, padding trimmed from the output",
           ("model.encoder.", "encoder."), ("model.decoder.", "decoder.", "proj_out.")),
    Family("AST", "audio-spectrogram-transformer", "ASTConfig", "ASTModel",
           "ASTFeatureExtractor", "ast", "max_length frames of 10 ms (1024: 10.24 s)",
           (), ("classifier.",)),
    Family("CLAP", "clap", "ClapConfig", "ClapModel", "ClapFeatureExtractor", "clap",
           "max_length_s (10 s), repeat-padded"),
)}


def families_table() -> str:
    """The supported families as one line each (used in refusals and the docs)."""
    return "; ".join(f"{f.name} (model_type {f.model_type!r}, {f.model_class}, {f.window})"
                     for f in FAMILIES.values())


def family_for(config: dict[str, Any], *, where: str) -> Family:
    """The :class:`Family` of a ``config.json`` dict, or ``ValueError`` naming ``where`` and
    listing the supported families."""
    model_type = config.get("model_type")
    if model_type == "mert_model":
        raise ValueError(f"{where}: a MERT checkpoint; use the mert extractor (name: mert)")
    if model_type not in FAMILIES:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported by the hf "
                         f"extractor; supported: {families_table()}")
    return FAMILIES[model_type]


def build_config(family: Family, config: dict[str, Any]):
    """The ``transformers`` config object of ``family`` from a ``config.json`` dict."""
    import transformers

    cls = getattr(transformers, family.config_class)
    data = {k: v for k, v in config.items() if k not in ("auto_map", "_name_or_path")}
    return cls.from_dict(data)


def _model_class(family: Family):
    import transformers

    if family.model_class == "WhisperEncoder":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder
    return getattr(transformers, family.model_class)


def _quiet_transformers():
    """Silence transformers' load report and progress bars for one call (restored after)."""
    import contextlib

    from transformers.utils import logging as hf_logging

    @contextlib.contextmanager
    def quiet():
        level, bars = hf_logging.get_verbosity(), not hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)
            if not bars:
                hf_logging.enable_progress_bar()

    return quiet()


def build_encoder(family: Family, config: dict[str, Any], weights: Sequence[Path]):
    """The family's encoder in eval mode holding the checkpoint's tensors (float32).

    Tensors are read by mtbc (:func:`~mtbc.extractors.mert_model.load_state_dict`: safetensors or
    ``torch.load(weights_only=True)``) and handed to ``from_pretrained(None, state_dict=...)``,
    which applies transformers' own key renames between checkpoint versions. Every encoder
    tensor must come from the checkpoint; checkpoint keys outside the encoder are allowed only
    under the family's ``ignored`` prefixes. Raises ``ValueError`` listing missing,
    unexpected and mis-shaped keys.
    """
    import torch

    state = load_state_dict(weights)
    leftover: list[str] = []
    if family.prefixes:  # an encoder inside a bigger model (Whisper): keep its keys only
        prefix = max(family.prefixes, key=lambda p: sum(k.startswith(p) for k in state))
        prefix = prefix if any(k.startswith(prefix) for k in state) else ""
        leftover = [k for k in state if not k.startswith(prefix)]
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v.to(torch.float32) for k, v in state.items()}
    names = ", ".join(str(p) for p in weights)
    with _quiet_transformers():
        try:
            model, info = _model_class(family).from_pretrained(
                None, config=build_config(family, config), state_dict=state,
                output_loading_info=True)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{names} does not fit {family.model_class} built from its "
                             f"config.json: {' '.join(str(exc).split())[:400]}") from exc
    missing = sorted(info.get("missing_keys", []))
    unexpected = sorted(k for k in [*leftover, *info.get("unexpected_keys", [])]
                        if not k.startswith(family.ignored) and not k.endswith("position_ids"))
    mismatched = sorted(str(m) for m in info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{names} does not match {family.model_class} built from its config.json: "
            f"{len(missing)} missing keys {missing[:8]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:8]}, {len(mismatched)} shape mismatches {mismatched[:8]}; use a "
            f"checkpoint of this family saved by transformers (save_pretrained)")
    return model.float().eval()
