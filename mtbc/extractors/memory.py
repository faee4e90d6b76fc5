"""What a MERT chunk costs: FLOPs and activation memory, pure functions of the config.

:func:`mert_forward_flops` counts one forward pass (the benchmark's achieved TFLOP/s);
:func:`mert_chunk_bytes` and :func:`mert_batch_size` say how many equal-length chunks fit on
a device.

MERT runs equal-length chunks together (``MertExtractor.embed_many``); on a GPU the batch is
chosen when the model loads, from ``torch.cuda.mem_get_info`` measured *after* the weights
are on the device, by :func:`mert_batch_size`. The estimate is deliberately generous (it
counts the largest live activations of the conv front end and of one transformer layer,
plus eager attention scores although SDPA does not materialise them), then keeps a safety
margin, so a chosen batch never runs out of memory on the stated free bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Share of the free memory a batch may use (the rest: allocator fragmentation, workspace).
DEFAULT_FRACTION = 0.7
#: Largest batch chosen (beyond it throughput no longer grows on any GPU we know of).
MAX_BATCH = 64


def mert_frames(config: Mapping[str, Any], n_samples: int) -> list[int]:
    """Output length of every conv layer of the feature encoder for ``n_samples`` input."""
    lengths, length = [], n_samples
    for kernel, stride in zip(config["conv_kernel"], config["conv_stride"], strict=True):
        length = (length - kernel) // stride + 1
        lengths.append(length)
    return lengths


def mert_chunk_bytes(config: Mapping[str, Any], n_samples: int, *, dtype_bytes: int = 2) -> int:
    """Peak activation bytes of one chunk of ``n_samples`` in one forward pass (inference).

    The larger of: the conv front end (input, output and a float32 group-norm copy of the
    first, widest conv layer) and a transformer layer (hidden states in and out, q/k/v, the
    feed-forward intermediate, and heads x frames x frames attention scores), plus the
    float32 time-means collected for every layer.
    """
    lengths = mert_frames(config, n_samples)
    channels = config["conv_dim"]
    conv = max(length * dim for length, dim in zip(lengths, channels, strict=True))
    conv_bytes = n_samples * 4 + conv * (2 * dtype_bytes + 4)
    frames, hidden = lengths[-1], config["hidden_size"]
    layer = frames * (5 * hidden + config["intermediate_size"]) * dtype_bytes
    scores = config["num_attention_heads"] * frames * frames * dtype_bytes
    means = (config["num_hidden_layers"] + 1) * hidden * 4
    return int(max(conv_bytes, layer + scores) + means)


def mert_batch_size(free_bytes: int, config: Mapping[str, Any], n_samples: int, *,
                    dtype_bytes: int = 2, fraction: float = DEFAULT_FRACTION,
                    max_batch: int = MAX_BATCH) -> int:
    """Chunks of ``n_samples`` per forward pass that fit in ``free_bytes`` (at least 1).

    ``free_bytes`` is the device's free memory with the weights already loaded;
    ``fraction`` of it may hold activations; the result is capped at ``max_batch``.
    """
    if free_bytes < 0:
        raise ValueError(f"free_bytes must be >= 0, not {free_bytes}")
    per_chunk = mert_chunk_bytes(config, n_samples, dtype_bytes=dtype_bytes)
    return int(max(1, min(max_batch, (fraction * free_bytes) // per_chunk)))


def mert_forward_flops(config: Mapping[str, Any], n_samples: int) -> float:
    """FLOPs (2 per multiply-add) of one ``HubertModel`` forward over ``n_samples`` samples.

    Counts the conv feature encoder, the feature projection, the positional convolution,
    the q/k/v/out and feed-forward matmuls and the two attention matmuls (QK^T and AV);
    norms, activations and softmax are left out (a few percent). ``config`` is a MERT
    ``config.json`` dict. About 0.81 TFLOP (95M) and 2.1 TFLOP (330M) per 30 s at 24 kHz.

    Examples
    --------
    >>> from mtbc.extractors.mert_model import mert_config
    >>> round(mert_forward_flops(mert_config("95m", tiny=False), 30 * 24000) / 1e12, 2)
    0.81
    """
    length, c_in, flops = n_samples, 1, 0.0
    for dim, kernel, stride in zip(config["conv_dim"], config["conv_kernel"],
                                   config["conv_stride"], strict=True):
        length = (length - kernel) // stride + 1
        flops += 2.0 * length * c_in * dim * kernel
        c_in = dim
    frames, hidden, ffn = length, config["hidden_size"], config["intermediate_size"]
    flops += 2.0 * frames * c_in * hidden  # feature projection
    flops += 2.0 * frames * hidden * (hidden // config["num_conv_pos_embedding_groups"]) \
        * config["num_conv_pos_embeddings"]  # positional conv
    per_layer = 2.0 * frames * hidden * hidden * 4 + 2.0 * frames * hidden * ffn * 2 \
        + 2.0 * frames * frames * hidden * 2
    return flops + per_layer * config["num_hidden_layers"]
