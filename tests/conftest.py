"""Shared fixtures: seeded randomness and writers of small audio files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

# dtype="auto" stays float32 on every CPU in the tests (and in notebooks they run), so results
# do not depend on whether this machine has native bf16; the bf16 path is tested explicitly.
os.environ.setdefault("MTBC_CPU_BF16", "0")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def write_tone(path, *, seconds=1.0, sr=16000, freq=440.0, channels=1, subtype="PCM_16",
               fmt=None, amplitude=0.5):
    """Write a sine tone (same on every channel) and return the path."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    data = np.repeat(x[:, None], channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype, format=fmt)
    return path


@pytest.fixture
def tone():
    return write_tone


def read_page(path) -> str:
    """A report page's HTML as its text reads: the word-keeping markup of the report tables
    (``<wbr>`` break points, ``span.mtbc-nobr``) taken out, so a test can look for a name or
    a phrase that a table cell shows whole."""
    import re
    from pathlib import Path

    html = Path(path).read_text(encoding="utf-8")
    html = re.sub(r"<wbr\s*/?>", "", html)
    return re.sub(r'<span class="mtbc-nobr">(.*?)</span>', r"\1", html, flags=re.S)
