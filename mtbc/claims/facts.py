"""Facts read from the MERT-v1-330M config and the VGGish network, without weights (the
``config`` and ``architecture`` claims are decided from them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchvggish import vggish_params
from transformers import HubertModel

from mtbc.extractors.mert_model import hubert_config, mert_preprocessor
from mtbc.extractors.mert_model import mert_config as recorded_config
from mtbc.extractors.vggish_net import build_vggish


def architecture_facts(mert_config: Mapping[str, Any] | None = None,
                       mert_source: str | None = None) -> dict[str, Any]:
    """Facts read from the MERT-v1-330M config and the VGGish network, without weights.

    ``mert_config``: a 330M ``config.json`` dict (the real one when its snapshot is on this
    machine); default mtbc's record of the released config
    (:func:`mtbc.extractors.fixtures.mert_config`). Parameter counts come from the models
    built on the meta device (shapes only, no memory, no weights).
    """
    source = mert_source or "mtbc's record of the released m-a-p/MERT-v1-330M config.json"
    config = dict(mert_config or recorded_config("330m", tiny=False))
    cqt = bool(config.get("feature_extractor_cqt", False))
    safe = {k: v for k, v in config.items() if k not in ("feature_extractor_cqt", "deepnorm")}
    with torch.device("meta"):
        mert = HubertModel(hubert_config(safe))
        vgg = build_vggish()
    features = list(vgg.features)
    blocks = sum(isinstance(m, torch.nn.MaxPool2d) for m in features)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in features)
    first_fc = vgg.embeddings[0]
    return {
        "mert.source": source,
        "mert.sample_rate": int(config.get("sample_rate", mert_preprocessor()["sampling_rate"])),
        "mert.cqt": cqt,
        "mert.front_end": f"{len(config['conv_dim'])} conv layers of "
                          f"{config['conv_dim'][0]} channels on the raw waveform",
        "mert.layers": int(config["num_hidden_layers"]),
        "mert.dim": int(config["hidden_size"]),
        "mert.params": int(sum(p.numel() for p in mert.parameters())),
        "vggish.source": "torchvggish's network (make_layers) and vggish_params",
        "vggish.sample_rate": int(vggish_params.SAMPLE_RATE),
        "vggish.mel_bands": int(vggish_params.NUM_BANDS),
        "vggish.frames": int(vggish_params.NUM_FRAMES),
        "vggish.blocks": int(blocks),
        "vggish.convs": int(convs),
        "vggish.fc_in": int(first_fc.in_features),
        "vggish.pca": (int(vggish_params.EMBEDDING_SIZE), int(vggish_params.EMBEDDING_SIZE)),
        "vggish.dim": int(vgg.embeddings[-1].out_features
                          if hasattr(vgg.embeddings[-1], "out_features")
                          else vggish_params.EMBEDDING_SIZE),
        "vggish.params": int(sum(p.numel() for p in vgg.parameters())),
    }
