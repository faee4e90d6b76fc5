"""Tiny synthetic copies of the MagnaTagATune and OpenMIC-2018 layouts, in the exact formats."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

MTAT_TAGS = ["guitar", "classical", "slow", "techno", "strings", "drums", "piano", "rare"]


def _clip(path, *, seconds, sr, freq, fmt, subtype):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt,
             subtype=subtype)


def write_mtat(root, *, seconds=1.0):
    """16 clips in folders 0, 5, c, d, e, f (two clips of each song), one empty MP3.

    MP3 through libsndfile (``soundfile.available_formats()`` must list MP3)."""
    assert "MP3" in sf.available_formats(), "this libsndfile cannot write MP3"
    rng = np.random.default_rng(0)
    lines = ["\t".join(f'"{c}"' for c in ["clip_id", *MTAT_TAGS, "mp3_path"])]
    clip = 0
    for folder in "05cdef":
        for song in range(2 if folder in "05" else 1):
            for seg in range(2):
                clip += 1
                rel = f"{folder}/artist{folder}{song}-album-0{song + 1}-title_{song}-" \
                      f"{30 * seg}-{30 * seg + 29}.mp3"
                tags = (rng.random(len(MTAT_TAGS)) < 0.4).astype(int)
                tags[-1] = 0  # "rare": never used, so it drops out of a top-k smaller than 8
                tags[0] = 1  # guitar: the most frequent
                _clip(root / rel, seconds=seconds, sr=16000, freq=200 + 37 * clip, fmt="MP3",
                      subtype="MPEG_LAYER_III")
                lines.append("\t".join(f'"{v}"' for v in [clip, *tags, rel]))
    rel = "f/broken-empty-01-nothing-0-29.mp3"  # the release has empty MP3s like this one
    (root / rel).write_bytes(b"")
    lines.append("\t".join(f'"{v}"' for v in [clip + 1, *([0] * len(MTAT_TAGS)), rel]))
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


OPENMIC_CLASSES = ["accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums",
                   "flute", "guitar", "mallet_percussion", "mandolin", "organ", "piano",
                   "saxophone", "synthesizer", "trombone", "trumpet", "ukulele", "violin",
                   "voice"]


def write_openmic(root, *, n=24, seconds=1.0, with_x=True):
    """``n`` clips (OGG/Vorbis), two clips per FMA track, 20 instruments, partial masks."""
    rng = np.random.default_rng(1)
    keys = [f"{100 + i // 2:06d}_{3840 * (i % 2)}" for i in range(n)]
    Y_true = rng.random((n, 20)).astype(np.float32)
    Y_mask = rng.random((n, 20)) < 0.3
    Y_mask[:, 8] = True  # guitar annotated everywhere
    arrays = {"Y_true": Y_true, "Y_mask": Y_mask, "sample_key": np.array(keys)}
    if with_x:
        arrays["X"] = rng.integers(0, 256, (n, 10, 128), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "openmic-2018.npz", **arrays)
    (root / "class-map.json").write_text(json.dumps({c: i for i, c in
                                                     enumerate(OPENMIC_CLASSES)}))
    (root / "partitions").mkdir(exist_ok=True)
    train, test = keys[: 3 * n // 4], keys[3 * n // 4:]
    (root / "partitions" / "split01_train.csv").write_text("\n".join(train) + "\n")
    (root / "partitions" / "split01_test.csv").write_text("\n".join(test) + "\n")
    for i, k in enumerate(keys):
        _clip(root / "audio" / k[:3] / f"{k}.ogg", seconds=seconds, sr=22050,
              freq=150 + 29 * i, fmt="OGG", subtype="VORBIS")
    return root, arrays
