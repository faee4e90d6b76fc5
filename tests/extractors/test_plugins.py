"""Extractor plugins: an installed package adds an extractor through the ``mtbc.extractors``
entry-point group, and get_extractor, params files and ``mtbc run`` accept it."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mtbc.extractors import (
    PLUGIN_GROUP,
    ExtractorConfigError,
    available_extractors,
    get_extractor,
)

REPO = Path(__file__).resolve().parents[2]

#: The plugin package of docs/extractors.md: log energy in bands per 1 s segment.
PLUGIN = textwrap.dedent('''
    import numpy as np

    from mtbc.extractors.base import Extractor, make_fingerprint


    class BandEnergy(Extractor):
        """Log energy in ``n_bands`` equal-width frequency bands per 1 s segment."""

        name = "bands"
        sample_rate = 16000
        min_samples = 4000

        def __init__(self, *, n_bands: int = 8):
            if n_bands < 1:
                raise ValueError(f"n_bands must be at least 1, not {n_bands}")
            self.n_bands = int(n_bands)

        @property
        def fingerprint(self) -> str:
            return make_fingerprint(self.name, n_bands=self.n_bands, version=1)

        def embed(self, wave):
            wave = self.check_wave(wave)
            n = max(1, len(wave) // self.sample_rate)
            rows = []
            for seg in np.array_split(wave[: n * self.sample_rate], n):
                power = np.abs(np.fft.rfft(seg)) ** 2
                rows.append([np.log(b.sum() + 1e-10) for b in np.array_split(power, self.n_bands)])
            return np.asarray(rows, np.float32)[:, None, :]  # (n_segments, 1 layer, n_bands)

        def metadata(self):
            return {**super().metadata(), "model": "band energy (plugin)", "weights_kind": "none"}
''')


def install_plugin(site: Path, *, name: str = "bands", module: str = "mtbc_bands_plugin") -> Path:
    """Write the plugin module and a dist-info declaring it, as pip would install them."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(PLUGIN)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{name} = {module}:BandEnergy\n")
    return site


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    site = install_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    # the notebooks' kernels are other processes: they find the package the same way
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return site


def test_get_extractor_builds_an_installed_plugin(plugin, rng):
    assert "bands" in available_extractors() and "mert" in available_extractors()
    ex = get_extractor("bands", n_bands=4)
    out = ex.embed(rng.standard_normal(3 * 16000).astype(np.float32))
    assert out.shape == (3, 1, 4) and out.dtype == np.float32
    assert get_extractor("bands").fingerprint != ex.fingerprint
    with pytest.raises(ExtractorConfigError, match="unknown option.*its options are n_bands"):
        get_extractor("bands", n_mels=3)
    with pytest.raises(ExtractorConfigError, match="n_bands must be at least 1"):
        get_extractor("bands", n_bands=0)


def test_without_the_package_the_name_is_unknown():
    assert "bands" not in available_extractors()
    with pytest.raises(ExtractorConfigError, match="unknown extractor 'bands'"):
        get_extractor("bands")


def test_a_plugin_cannot_shadow_a_built_in(tmp_path, monkeypatch):
    site = install_plugin(tmp_path / "site", name="mfcc", module="mtbc_fake_mfcc")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(UserWarning, match="'mfcc' is a built-in"):
        names = available_extractors()
    assert names.count("mfcc") == 1
    assert type(get_extractor("mfcc")).__module__ == "mtbc.extractors.mfcc"


def test_a_broken_plugin_is_one_line(tmp_path, monkeypatch):
    site = install_plugin(tmp_path / "site", module="mtbc_broken_plugin")
    (site / "mtbc_broken_plugin.py").write_text("class BandEnergy:\n    pass\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ExtractorConfigError, match="not a subclass of mtbc.extractors.Extractor"):
        get_extractor("bands")


@pytest.mark.slow
def test_mtbc_run_uses_the_plugin(plugin, tmp_path, monkeypatch, tone, capsys):
    from mtbc.cli import main

    monkeypatch.setenv("MTBC_REPORTS", str(tmp_path / "reports"))
    for label, freq in (("a", 220), ("b", 880)):
        for k in range(2):
            tone(tmp_path / "music" / label / f"{label}{k}.wav", seconds=1.5, sr=16000,
                 freq=freq + 10 * k)
    params = tmp_path / "params.yaml"
    params.write_text(f"run: plugin\ncollection: {tmp_path / 'music'}\n"
                      f"extractors: {{bands: {{n_bands: 6}}}}\n"
                      f"cache_dir: {tmp_path / 'cache'}\nnotebooks: [02_extract_embeddings]\n")
    assert main(["run", "--params", str(params), "--notebooks", str(REPO / "notebooks")]) == 0
    folder = tmp_path / "reports" / "plugin"
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert [(e["label"], e["extracted"]) for e in record["extraction"]] == [("bands", 4)]
    assert "band energy (plugin)" in (folder / "02_extract_embeddings.html").read_text(
        encoding="utf-8")
