"""Test and benchmark fixtures: random-weight models in the real upstream file layouts.

Nothing here is a result: weights are random, and every fixture folder carries a
:data:`mtbc.extractors.FIXTURE_MARKER` file, so extractors report ``weights_kind="fixture"``
and reports built from it show a banner. :func:`make_mert_snapshot` writes a folder laid
out like a hub snapshot of m-a-p/MERT-v1-95M or -330M (``config.json`` with the MERT keys,
``preprocessor_config.json``, weights under the old weight-norm key names, and decoy remote-code
files that must never run), at tiny or at full size (``docs/models/mert.md``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtbc.extractors.base import FIXTURE_MARKER
from mtbc.extractors.mert_model import random_model
from mtbc.extractors.vggish_net import build_vggish

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

DECOY_MARKER = "DECOY_EXECUTED"
_DECOY = f'''"""mtbc test decoy standing in for MERT remote code: it must never be executed."""
from pathlib import Path

Path(__file__).with_name({DECOY_MARKER!r}).write_text(__name__)
raise RuntimeError("mtbc decoy: MERT remote code was executed; it must never be")
'''


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


def make_mert_model(variant: str = "95m", *, tiny: bool = True, seed: int = 0,
                    config: dict[str, Any] | None = None):
    """A random-weight ``HubertModel`` (eval mode) for ``mert_config(variant, tiny=tiny)``.

    Norm scales and biases are perturbed away from 1 and 0, so a loader that skipped them
    would give different outputs.
    """
    return random_model(config or mert_config(variant, tiny=tiny), seed=seed)


def old_weight_norm_names(state: dict[str, Any]) -> dict[str, Any]:
    """Rename ``parametrizations.weight.original0/1`` to the old ``weight_g`` / ``weight_v``."""
    renamed = {}
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        renamed[key] = value
    return renamed


def make_mert_snapshot(path: str | Path, *, variant: str = "95m", tiny: bool = True,
                       weights_format: str = "bin", seed: int = 0, do_normalize: bool = True,
                       key_prefix: str = "", **config_overrides: Any) -> Path:
    """Write a hub-format MERT-v1 snapshot with random weights into ``path``; return ``path``.

    Parameters
    ----------
    variant : ``"95m"`` (post-LN) or ``"330m"`` (pre-LN).
    tiny : hidden 32, 2 or 3 layers, 32 conv channels (fast); ``False`` gives the real sizes
        (about 380 MB or 1.26 GB of float32 weights).
    weights_format : ``"bin"`` (``pytorch_model.bin``) or ``"safetensors"`` (``model.safetensors``).
    seed : seeds the random weights (same seed, same files).
    do_normalize : written to ``preprocessor_config.json``.
    key_prefix : prepended to every weight name (checkpoints saved from a wrapper).
    config_overrides : extra or replaced ``config.json`` keys (e.g. ``deepnorm=True``).
    """
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = mert_config(variant, tiny=tiny, **config_overrides)
    safe = {k: v for k, v in config.items() if k not in ("feature_extractor_cqt", "deepnorm")}
    model = make_mert_model(variant, tiny=tiny, seed=seed, config=safe)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "preprocessor_config.json").write_text(
        json.dumps(mert_preprocessor(do_normalize=do_normalize), indent=2))
    state = {key_prefix + k: v.contiguous()
             for k, v in old_weight_norm_names(model.state_dict()).items()}
    if weights_format == "bin":
        torch.save(state, path / "pytorch_model.bin")
    elif weights_format == "safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        raise ValueError(f"weights_format must be 'bin' or 'safetensors', not {weights_format!r}")
    for name in ("modeling_MERT.py", "configuration_MERT.py"):
        (path / name).write_text(_DECOY)
    mark_fixture(path)
    return path


def mark_fixture(folder: str | Path) -> None:
    """Mark ``folder`` as holding random test-fixture weights (see FIXTURE_MARKER)."""
    (Path(folder) / FIXTURE_MARKER).write_text(
        "The weights in this folder are random test fixtures written by mtbc.extractors.fixtures; "
        "embeddings made from them mean nothing.\n")


# ----------------------------------------------------------------------------- VGGish
#: Upstream file names (harritaylor/torchvggish v0.1 release), as torch hub caches them.
WEIGHTS_NAME = "vggish-10086976.pth"
PCA_NAME = "vggish_pca_params-970ea276.pth"


def random_vggish_state_dict(*, seed: int = 0, final_relu: bool = False) -> dict[str, torch.Tensor]:
    """Full-size VGGish state dict (18 tensors, ~72.1M params) with He-normal random weights."""
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
    mark_fixture(directory)
    return weights, pca
