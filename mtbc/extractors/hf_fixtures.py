"""Tiny random checkpoints of every ``hf`` family, written exactly as ``transformers`` writes
them (``save_pretrained``), for tests and offline demos; marked as fixtures.

Random weights are fixtures, never results: every folder holds ``MTBC_FIXTURE.txt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtbc.extractors.base import FIXTURE_MARKER

_WAVE = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8),
             num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)

#: family -> (config class, config kwargs, model class, feature extractor class, fe kwargs)
TINY: dict[str, tuple[str, dict[str, Any], str, str, dict[str, Any]]] = {
    "wav2vec2": ("Wav2Vec2Config", {**_WAVE, "codevector_dim": 8, "proj_codevector_dim": 8,
                                    "num_codevectors_per_group": 4, "num_codevector_groups": 2},
                 "Wav2Vec2ForPreTraining", "Wav2Vec2FeatureExtractor", {"do_normalize": True}),
    "hubert": ("HubertConfig", _WAVE, "HubertModel", "Wav2Vec2FeatureExtractor",
               {"do_normalize": False}),
    "wavlm": ("WavLMConfig", {**_WAVE, "num_buckets": 8, "max_bucket_distance": 20},
              "WavLMModel", "Wav2Vec2FeatureExtractor", {"do_normalize": True}),
    "data2vec-audio": ("Data2VecAudioConfig", {**_WAVE, "num_conv_pos_embeddings": 3,
                                               "conv_pos_kernel_size": 3},
                       "Data2VecAudioModel", "Wav2Vec2FeatureExtractor", {"do_normalize": True}),
    "whisper": ("WhisperConfig", dict(d_model=16, encoder_layers=2, decoder_layers=1,
                                      encoder_attention_heads=2, decoder_attention_heads=2,
                                      encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=64,
                                      max_target_positions=16, num_mel_bins=80,
                                      decoder_start_token_id=1, pad_token_id=0, bos_token_id=1,
                                      eos_token_id=2, suppress_tokens=[],
                                      begin_suppress_tokens=[]),
                "WhisperForConditionalGeneration", "WhisperFeatureExtractor", {}),
    "audio-spectrogram-transformer": (
        "ASTConfig", dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, max_length=128, num_mel_bins=32, num_labels=3),
        "ASTForAudioClassification", "ASTFeatureExtractor",
        {"max_length": 128, "num_mel_bins": 32}),
    "clap": ("ClapConfig", dict(
        text_config=dict(vocab_size=300, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=40, pad_token_id=1, bos_token_id=0,
                         eos_token_id=2),
        audio_config=dict(hidden_size=32, patch_embeds_hidden_size=8, depths=[1, 1, 1],
                          num_attention_heads=[1, 1, 2], window_size=8, spec_size=256,
                          num_mel_bins=64, enable_fusion=False, projection_hidden_size=16),
        projection_dim=8), "ClapModel", "ClapFeatureExtractor",
        {"max_length_s": 2, "truncation": "rand_trunc"}),
}


def write_tiny_tokenizer(folder: Path) -> None:
    """A small byte-level BPE (RobertaTokenizer) written from a vocabulary and merges made here."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate([*specials, *sorted(ByteLevel.alphabet())])}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    RobertaTokenizer(vocab_file=str(folder / "vocab.json"),
                     merges_file=str(folder / "merges.txt")).save_pretrained(str(folder))


def make_hf_snapshot(path: str | Path, family: str, *, weights_format: str = "safetensors",
                     seed: int = 0, **config_overrides: Any) -> Path:
    """Write a tiny random checkpoint of ``family`` (a ``model_type``) into ``path`` with
    ``save_pretrained``; ``weights_format="bin"`` replaces the safetensors by
    ``pytorch_model.bin`` (``torch.save`` of the state dict, transformers' legacy format).
    Returns ``path``."""
    import torch
    import transformers

    config_name, kwargs, model_name, fe_name, fe_kwargs = TINY[family]
    path = Path(path)
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{**kwargs, **config_overrides})
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(str(path))
    if weights_format == "bin":  # transformers' legacy format: torch.save of the state dict
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(state, path / "pytorch_model.bin")
        for f in path.glob("*.safetensors"):
            f.unlink()
    elif weights_format != "safetensors":
        raise ValueError(f"weights_format must be 'safetensors' or 'bin', not {weights_format!r}")
    getattr(transformers, fe_name)(**fe_kwargs).save_pretrained(str(path))
    if family == "clap":
        write_tiny_tokenizer(path)
    (path / FIXTURE_MARKER).write_text("random weights: a test fixture, never a result\n")
    return path
