"""Regenerate ``tests/data/musicnn_reference.npz``: outputs of the ORIGINAL musicnn network.

This script is not run by the test suite. It needs TensorFlow, which mtbc never depends on,
so run it with a separate throwaway environment, e.g.::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.15.*" "numpy<2" librosa==0.11.0
    /tmp/tfenv/bin/python tests/data/make_musicnn_reference.py \\
        --wheel .venv/musicnn/musicnn-0.1.0-py3-none-any.whl --clip rendered.wav

It unpacks the musicnn 0.1.0 wheel, builds ``musicnn.models.define_model`` exactly as the
wheel's ``extractor.py`` does (``tf.compat.v1`` graph mode, ``is_training=False``), restores
each model's checkpoint with ``tf.compat.v1.train.Saver`` and runs the graph on log-mel patches
of a few clips. The log-mel front end is the wheel's ``batch_data`` with one change: the
float16-rounded spectrogram is upcast to float32 before ``log10(10000 * x + 1)`` (the original
overflows to inf in float16 on loud tonal input). The network's tensors are fetched directly
(not through the original ``extractor()`` loop, which repeats the first batch's rows).

Stored arrays (float32): ``patches`` (n, 187, 96) network inputs, ``clip_id`` (n,) which clip
each patch came from, ``rendered_pcm16`` (the 16 kHz int16 samples of ``--clip``), and for
each model M in MTT_musicnn, MSD_musicnn: ``M/mean_pool``, ``M/max_pool`` (753),
``M/penultimate`` (200), ``M/logits``, ``M/tags`` (50), ``M/timbral`` and ``M/temporal``
(frame-wise max over time, 408 and 153, to keep the file small).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SR = 16000
N_FRAMES = 187
MODELS = ("MTT_musicnn", "MSD_musicnn")
#: Clips synthesised here; the test rebuilds them with the same code to check preprocessing.
SYNTH = ("sine", "noise", "chirp", "loud_square")


def synth_clip(kind: str) -> np.ndarray:
    """The deterministic synthetic clips (also rebuilt by tests/extractors/test_musicnn.py)."""
    n = 187 * 256 + 777  # one patch plus leftover samples
    t = np.arange(n) / SR
    if kind == "sine":
        return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    if kind == "noise":
        return (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    if kind == "chirp":
        return (0.3 * np.sin(2 * np.pi * (100.0 * t + 600.0 * t ** 2))).astype(np.float32)
    if kind == "loud_square":  # full-scale clipping square wave: float16 overflow in the original
        return np.clip(3.0 * np.sign(np.sin(2 * np.pi * 220.0 * t)), -1, 1).astype(np.float32)
    raise ValueError(kind)


def log_mel(wave: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=wave, sr=SR, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect").T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1).astype(np.float32)


def patches(rep: np.ndarray) -> np.ndarray:
    n = rep.shape[0] // N_FRAMES
    return rep[:n * N_FRAMES].reshape(n, N_FRAMES, rep.shape[1])


def run_model(src: Path, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    sys.path.insert(0, str(src))
    from musicnn import models  # the wheel's own network definition

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        ph = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        (y, timbral, temporal, _c1, _c2, _c3, mean_pool, max_pool,
         penultimate) = models.define_model(ph, is_training, model, 50)
        tags = tf.nn.sigmoid(y)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, str(src / "musicnn" / model) + "/")
        out = sess.run({"logits": y, "tags": tags, "mean_pool": mean_pool,
                        "max_pool": max_pool, "penultimate": penultimate,
                        "timbral": timbral, "temporal": temporal},
                       feed_dict={ph: x, is_training: False})
    out["timbral"] = out["timbral"].max(axis=1)
    out["temporal"] = out["temporal"].max(axis=1)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", required=True, type=Path)
    ap.add_argument("--clip", required=True, type=Path, help="a 16 kHz mono music clip")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("musicnn_reference.npz"))
    args = ap.parse_args()
    pcm, sr = sf.read(args.clip, dtype="int16")
    if sr != SR or pcm.ndim != 1:
        raise SystemExit(f"--clip must be 16 kHz mono, got {sr} Hz, shape {pcm.shape}")
    clips = [synth_clip(k) for k in SYNTH] + [pcm.astype(np.float32) / 32768.0]
    parts = [patches(log_mel(c)) for c in clips]
    x = np.concatenate(parts).astype(np.float32)
    clip_id = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)]).astype(np.int32)
    data: dict[str, np.ndarray] = {"patches": x, "clip_id": clip_id, "rendered_pcm16": pcm}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as zf:
            zf.extractall(tmp)
        for model in MODELS:
            for key, value in run_model(Path(tmp), model, x).items():
                data[f"{model}/{key}"] = value
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out}: {len(x)} patches; clips {SYNTH + ('rendered',)}")
    for model in MODELS:
        top = np.argsort(-data[f"{model}/tags"][clip_id == len(clips) - 1].mean(0))[:3]
        print(model, "rendered clip top tags (indices):", top.tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
