"""MERT-v1 as a ``transformers.HubertModel``: the config mapping, strict checkpoint loading
and the CPU bf16 workarounds (:mod:`mtbc.extractors.mert` embeds with them).

The hub ``config.json`` becomes a ``HubertConfig`` (the MERT keys HubertModel cannot
reproduce are refused), the checkpoint is loaded with every key accounted for, and
:func:`random_model` builds the same architecture with random weights (tests, speed-only
timing), and :func:`mert_config` is mtbc's record of the released configs (and of the tiny
stand-ins tests use). torch and transformers are imported inside the functions that build or
load a model: they are heavy, and importing the extractor must stay cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtbc.extractors.mert_hub import MODEL_95M, MODEL_330M

#: Attention kernel HubertModel is built with: torch's scaled_dot_product_attention (fused
#: flash / memory-efficient kernels on CUDA, the same result as the eager path to rounding).
ATTN_IMPLEMENTATION = "sdpa"
#: config.json keys that describe the file rather than the architecture: dropped.
_METADATA_KEYS = {"model_type", "architectures", "auto_map", "_name_or_path", "transformers_version",
                  "torch_dtype", "dtype", "tokenizer_class", "num_feat_extract_layers"}
#: MERTConfig keys beyond HubertConfig. ``attention_relax`` only acts inside MERT's deepnorm
#: encoder, which we refuse, so with ``deepnorm=false`` it changes nothing.
_MERT_KEYS = {"feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax",
              "sample_rate"}
#: Prefixes a checkpoint's keys may carry (MERTModel itself saves without one).
_KEY_PREFIXES = ("", "mert_model.", "hubert.", "model.")


# ----------------------------------------------------------------------------- config and weights

def hubert_config(config: dict[str, Any]):
    """Build a ``transformers.HubertConfig`` from a MERT ``config.json`` dict.

    Drops the file-describing keys (``model_type`` ``mert_model``, ``architectures``
    ``["MERTModel"]``, ``auto_map``, ...). Raises ``ValueError`` for MERT options HubertModel
    cannot reproduce: ``feature_extractor_cqt`` (a CQT branch concatenated to the conv
    features) and ``deepnorm`` (scaled residuals).
    """
    from transformers import HubertConfig

    for key, what in (("feature_extractor_cqt", "a CQT input branch"),
                      ("deepnorm", "DeepNorm-scaled residual connections")):
        if config.get(key):
            raise ValueError(
                f"this MERT config sets {key}=true ({what}), which transformers.HubertModel "
                "cannot reproduce and mtbc will not run through remote code; use a MERT-v1 "
                f"release ({MODEL_95M}, {MODEL_330M}) whose config has {key}=false")
    known = {f.name for f in getattr(HubertConfig, "__dataclass_fields__", {}).values()}
    unknown = sorted(set(config) - known - _METADATA_KEYS - _MERT_KEYS) if known else []
    if unknown:
        warnings.warn(f"MERT config keys unknown to HubertConfig, ignored: {unknown}", stacklevel=2)
    kwargs = {k: v for k, v in config.items()
              if k not in _METADATA_KEYS and k not in _MERT_KEYS and k not in unknown}
    return HubertConfig(**kwargs)


def load_state_dict(paths: Sequence[Path]) -> dict[str, Any]:
    """Read checkpoint tensors from ``*.safetensors`` files or one ``pytorch_model.bin``."""
    import torch

    state: dict[str, Any] = {}
    for path in paths:
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file
                part = load_file(str(path))
            else:
                try:
                    part = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError:  # legacy (non-zip) checkpoints cannot be memory-mapped
                    part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - garbage files raise anything
            raise ValueError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: "
                             f"{exc}); re-download the model or point model= at a good "
                             f"snapshot") from exc
        if not isinstance(part, dict) or not all(torch.is_tensor(v) for v in part.values()):
            raise ValueError(f"{path}: not a flat mapping of names to tensors")
        state.update(part)
    return state


def map_checkpoint_keys(state: dict[str, Any], expected: set[str], *,
                        prefixes: Sequence[str] = _KEY_PREFIXES) -> dict[str, Any]:
    """Rename checkpoint keys to ``HubertModel``'s: strip a prefix, map weight-norm names.

    Old ``torch.nn.utils.weight_norm`` names ``<conv>.weight_g`` / ``<conv>.weight_v`` become
    the parametrization names ``<conv>.parametrizations.weight.original0`` / ``original1``
    (and back, if the model uses the old names). Keys that match nothing are left as they are
    so the caller reports them as unexpected.
    """
    pairs = {".weight_g": ".parametrizations.weight.original0",
             ".weight_v": ".parametrizations.weight.original1"}

    def rename(key: str) -> str:
        if key in expected:
            return key
        for old, new in pairs.items():
            if key.endswith(old) and key.removesuffix(old) + new in expected:
                return key.removesuffix(old) + new
            if key.endswith(new) and key.removesuffix(new) + old in expected:
                return key.removesuffix(new) + old
        return key

    best_prefix, best_hits = "", -1
    for prefix in prefixes:
        hits = sum(k.startswith(prefix) and rename(k[len(prefix):]) in expected for k in state)
        if hits > best_hits:
            best_prefix, best_hits = prefix, hits
    return {rename(k[len(best_prefix):]) if k.startswith(best_prefix) else k: v
            for k, v in state.items()}


def build_model(config: dict[str, Any], weights: Sequence[Path]):
    """A ``HubertModel`` in eval mode holding the checkpoint; every key must match.

    Raises ``ValueError`` listing missing keys, unexpected keys and shape mismatches.
    """
    import torch
    from transformers import HubertModel

    hconfig = hubert_config(config)
    hconfig._attn_implementation = ATTN_IMPLEMENTATION
    with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
        model = HubertModel(hconfig)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    state = map_checkpoint_keys(load_state_dict(weights), set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(s)}"
                        for k, s in expected.items() if k in state and state[k].shape != s)
    if missing or unexpected or mismatched:
        names = ", ".join(str(p) for p in weights)
        raise ValueError(
            f"{names} does not match HubertModel built from its config.json: "
            f"{len(missing)} missing keys {missing}, {len(unexpected)} unexpected keys "
            f"{unexpected}, {len(mismatched)} shape mismatches {mismatched}")
    state = {k: v.to(torch.float32) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"tensors left uninitialised after loading: {left}")
    return model.eval()


# ----------------------------------------------------------------------------- running it

def zero_mean_unit_var(x):
    """Normalise each row of ``(B, n)`` to ``(x - mean) / sqrt(var + 1e-7)`` (float32 out).

    ``Wav2Vec2FeatureExtractor``'s ``do_normalize``, applied per chunk; statistics in float64.
    """
    import torch

    x64 = x.double()
    mean = x64.mean(dim=1, keepdim=True)
    var = x64.var(dim=1, unbiased=False, keepdim=True)
    return ((x64 - mean) / torch.sqrt(var + 1e-7)).to(torch.float32)


def feature_convs_as_matmul(model) -> None:
    """Run conv layers 2..7 of the feature encoder as unfold + matmul (CPU bf16 autocast).

    oneDNN's bf16 conv1d gains almost nothing over fp32 here (1.34 vs 1.41 s for the 95M
    front end on 10 s, one thread), while the same layers as a bf16 matmul take 0.83 s with
    the same agreement (cosine 0.99994 to fp32 either way). Same arithmetic: each output
    frame is the dot product of the weights with the ``kernel x channels`` window.
    """
    import torch

    for layer in model.feature_extractor.conv_layers[1:]:
        conv = layer.conv
        if conv.groups != 1 or conv.padding[0] != 0 or conv.dilation[0] != 1:
            continue
        kernel, stride = conv.kernel_size[0], conv.stride[0]

        def forward(x, conv=conv, kernel=kernel, stride=stride, original=conv.forward):
            if not torch.is_autocast_enabled("cpu"):  # fp32 users of a shared model
                return original(x)
            b, c, _ = x.shape
            windows = x.unfold(2, kernel, stride).permute(0, 2, 1, 3).reshape(b, -1, c * kernel)
            y = torch.matmul(windows, conv.weight.reshape(conv.out_channels, c * kernel).t())
            if conv.bias is not None:
                y = y + conv.bias
            return y.transpose(1, 2)

        conv.forward = forward


#: Fewest channels per group of the positional conv that oneDNN's bf16 kernel gets right
#: (see :func:`positional_conv_in_fp32`); the released models have 48 (95M) and 64 (330M).
MIN_BF16_GROUP = 16


def positional_conv_in_fp32(model) -> None:
    """Run the positional convolution outside CPU autocast, in float32.

    oneDNN's bf16 grouped conv1d (torch 2.13, CPU) is wrong for few channels per group: the
    tiny test MERT (2 channels per group) gets cosine 0.09 to fp32 at that layer, while the
    full-size layer (48 or 64 channels per group) agrees to 0.99997. So below
    :data:`MIN_BF16_GROUP` channels per group the layer runs in float32 under autocast (in
    fp32 it would cost about 10% of a full-size bf16 forward, so the real models keep bf16).
    """
    import torch

    pos = model.encoder.pos_conv_embed
    forward = pos.forward

    def fp32_forward(hidden_states, *args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return forward(hidden_states.float(), *args, **kwargs)

    pos.forward = fp32_forward


#: Architecture numbers of the real releases (``docs/models/mert.md``).
MERT_SIZES: dict[str, dict[str, Any]] = {
    "95m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, do_stable_layer_norm=False),
    "330m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096, do_stable_layer_norm=True),
}
#: Tiny stand-ins: same kinds of layers (post-LN 95M, pre-LN 330M), same conv strides and
#: kernels (75 frames per second at 24 kHz) and positional conv kernel, narrow widths.
MERT_TINY: dict[str, dict[str, Any]] = {
    "95m": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, do_stable_layer_norm=False, conv_dim=[32] * 7),
    "330m": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                 intermediate_size=64, do_stable_layer_norm=True, conv_dim=[32] * 7),
}


def mert_config(variant: str = "95m", *, tiny: bool = True, **overrides: Any) -> dict[str, Any]:
    """A MERT-v1 ``config.json`` dict (``model_type`` mert_model, ``auto_map``, MERT extras)."""
    if variant not in MERT_SIZES:
        raise ValueError(f"variant must be one of {sorted(MERT_SIZES)}, not {variant!r}")
    config: dict[str, Any] = {
        "_name_or_path": f"m-a-p/MERT-v1-{variant.upper()}",
        "architectures": ["MERTModel"],
        "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig",
                     "AutoModel": "modeling_MERT.MERTModel"},
        "model_type": "mert_model",
        "activation_dropout": 0.0, "attention_dropout": 0.0, "hidden_dropout": 0.0,
        "feat_proj_dropout": 0.0, "final_dropout": 0.0, "layerdrop": 0.05,
        "apply_spec_augment": True, "mask_time_prob": 0.05, "mask_time_length": 5,
        "mask_time_min_masks": 2, "mask_feature_prob": 0.0, "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "hidden_act": "gelu", "feat_extract_activation": "gelu", "feat_extract_norm": "group",
        "feat_proj_layer_norm": True, "conv_bias": False,
        "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "num_feat_extract_layers": 7,
        "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
        "initializer_range": 0.02, "layer_norm_eps": 1e-5,
        "vocab_size": 32, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "ctc_loss_reduction": "sum", "ctc_zero_infinity": False, "use_weighted_layer_sum": False,
        "classifier_proj_size": 256, "tokenizer_class": "Wav2Vec2CTCTokenizer",
        "torch_dtype": "float32", "transformers_version": "4.25.1",
        # MERT extras (MERTConfig): the two flags HubertModel cannot reproduce are off.
        "feature_extractor_cqt": False, "feature_extractor_cqt_bins": 336, "deepnorm": False,
        "attention_relax": 32.0 if variant == "330m" else -1.0, "sample_rate": 24000,
    }
    config.update(MERT_SIZES[variant])
    if tiny:
        config.update(MERT_TINY[variant])
    config.update(overrides)
    return config


def mert_preprocessor(*, do_normalize: bool = True, sampling_rate: int = 24000) -> dict[str, Any]:
    """A MERT-v1 ``preprocessor_config.json`` dict (Wav2Vec2FeatureExtractor)."""
    return {"do_normalize": do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1, "padding_side": "right", "padding_value": 0,
            "return_attention_mask": True, "sampling_rate": sampling_rate}


def random_model(config: dict[str, Any], *, seed: int = 0):
    """A ``HubertModel`` (eval mode) for a MERT ``config.json`` dict, with random weights.

    Norm scales and biases are perturbed away from 1 and 0, so a loader that skipped them
    would give different outputs. A fixture for tests and speed-only timing, never a result.

    Examples
    --------
    >>> model = random_model(mert_config("95m", tiny=True), seed=0)
    """
    import torch  # heavy: only when a model is built
    from transformers import HubertModel  # heavy: only when a model is built

    torch.manual_seed(seed)
    hconfig = hubert_config(config)
    hconfig._attn_implementation = ATTN_IMPLEMENTATION
    model = HubertModel(hconfig)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name or "original0" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()
