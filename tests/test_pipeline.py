"""The main job end to end: demo corpus -> fixture models -> papermill -> HTML reports.

Runs the real code path (hub-format MERT snapshot, upstream-format VGGish files, the MFCC
baseline) on a small rendered collection, offline. The weights are random fixtures, so the
reports must say so; the numbers themselves are not asserted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mtbc.cli import main
from mtbc.extractors.fixtures import make_mert_snapshot, make_vggish_weights
from mtbc.pipeline import run
from mtbc.reports.display import FIXTURE_TEXT
from tests.conftest import read_page

# every test here runs the pipeline (papermill kernels): `make test-fast` leaves them out
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# 07 kept short in tests: the run's models only, one 2 s clip, batch 1, in the kernel.
FAST_07 = {"extra_models": [], "dtypes": ["auto", "bfloat16"], "batch_sizes": [1],
           "clip_seconds": 2.0, "agreement_tracks": 1, "probe_budget_s": 60.0,
           "decode_formats": ["wav", "ogg"], "isolate": False}
NOTEBOOKS = ["01_load_data", "02_extract_embeddings", "03_embedding_statistics",
             "04_train_classifiers", "05_ensemble", "06_tagging", "07_compute",
             "08_claims", "09_fine_tuning", "10_similarity", "11_robustness"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    mert = make_mert_snapshot(root / "mert", variant="330m", tiny=True,
                              weights_format="safetensors")
    weights, pca = make_vggish_weights(root / "vggish")
    params = {
        "run": "e2e", "title": "end-to-end test with fixture models",
        "collection": "demo",
        "demo": {"out_dir": str(root / "demo"), "n_per_class": 4, "clip_seconds": 4.0},
        "extractors": {
            "mert": {"model": str(mert), "chunk_seconds": 2.0},
            "vggish": {"weights": str(weights), "pca_params": str(pca)},
            "mfcc": {},
        },
        "seed": 0, "cache_dir": str(root / "cache"),
        "params": {"n_splits": 3, "n_boot": 200},
        "notebook_params": {"04_train_classifiers": {"model_dir": str(root / "models"),
                                                     "probes": ["linear", "mlp"]},
                            "07_compute": FAST_07,
                            "11_robustness": {"deformations": [["noise", 0.1]],
                                              "robustness_models": ["vggish", "mfcc"]}},
    }
    index = run(params, notebooks_dir=REPO / "notebooks", reports_root=root / "reports",
                progress=False)
    return root, index


def _html(study, name):
    return read_page(study[1].parent / f"{name}.html")


def test_every_report_exists_and_the_index_links_it(study):
    root, index = study
    assert index == root / "reports" / "e2e" / "index.html"
    page = read_page(index)
    for name in NOTEBOOKS:
        assert (index.parent / f"{name}.html").is_file()
        assert f'href="{name}.html"' in page
    assert "(no summary recorded)" not in page


def test_reports_carry_the_fixture_banner(study):
    assert FIXTURE_TEXT in read_page(study[1])
    for name in NOTEBOOKS[1:]:
        assert FIXTURE_TEXT in _html(study, name), name


def test_statistics_report_has_the_per_track_table_for_each_model(study):
    page = _html(study, "03_embedding_statistics")
    for column in ("track_id", "mean", "std", "min", "max", "range"):
        assert f"<th>{column}</th>" in page or f">{column}</th>" in page
    for model in ("mert", "vggish", "mfcc"):
        assert f"<h2 id=\"{model}\"" in page or f">{model}</h2>" in page or f"{model}</h2" in page
    assert page.count("data:image/png;base64") >= 8


def test_classification_report_has_results_with_confidence_intervals(study):
    page = _html(study, "04_train_classifiers")
    assert "accuracy % [95% CI]" in page
    assert re.search(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", page)
    for system in ("mert · linear", "mert · mlp", "vggish · linear", "mfcc · linear"):
        assert system in page
    assert "layer(s) chosen per fold" in page  # the MERT layer curve
    assert "not used for selection" in page  # beside it, the test curve: display only
    assert "chosen on validation" in page


def test_ensemble_report_compares_single_models_and_fusions(study):
    page = _html(study, "05_ensemble")
    for system in ("concat(mert + vggish) · linear", "late(mert + vggish) · linear",
                   "concat(mert + vggish + mfcc) · linear", "Holm-adjusted"):
        assert system in page
    assert "the system chosen on validation data" in page
    # the answer comes before the tables and the tests
    assert page.index("Answer.") < page.index("All systems side by side") < page.index(
        "Paired tests")


def test_the_run_writes_an_audit_trail_linked_from_the_index(study):
    import pandas as pd

    folder = study[1].parent
    results = pd.read_csv(folder / "results.csv")
    assert list(results.columns) == ["system", "task", "metric", "value", "ci_low", "ci_high",
                                     "n_tracks", "n_groups", "protocol", "seed"]
    systems = set(results["system"])
    assert {"mert · linear", "mfcc · mlp", "concat(mert + vggish) · linear",
            "late(mert + vggish) · linear", "majority class (baseline)"} <= systems
    # each result once, named by system and probe (04's and 05's "mert · linear" are one)
    assert not {"mert", "vggish", "mfcc"} & systems
    assert not results.duplicated(["system", "task", "metric"]).any()
    acc = results[results["metric"] == "accuracy"]
    assert (acc["ci_low"] <= acc["value"]).all() and (acc["value"] <= acc["ci_high"]).all()
    assert (acc["n_groups"] <= acc["n_tracks"]).all() and (acc["task"] == "classification").all()
    preds = pd.read_csv(folder / "predictions.csv")
    for column in ("system", "track_id", "group", "fold", "label", "predicted", "correct"):
        assert column in preds.columns
    assert any(c.startswith("p_") for c in preds.columns)
    one = preds[preds["system"] == "mfcc · linear"]
    assert len(one) == one["track_id"].nunique() == 20  # every labelled track, once
    page = read_page(study[1])
    assert 'href="results.csv"' in page and 'href="predictions.csv"' in page
    # the index's answers name systems exactly as results.csv and the notebooks do
    answers = [re.sub("<[^>]+>", "", a) for a in
               re.findall(r'<p class="answer"[^>]*>(.*?)</p>', page, re.S)]
    # (04-06's answers name a probe; 10's and 11's name models or retrieval systems)
    probe_answers = [a for a in answers if "chosen on validation data" in a]
    assert len(probe_answers) >= 2
    assert all(re.search(r"\S+ · (linear|mlp)", a) for a in probe_answers)
    assert all(any(f"{s}," in a for s in systems) for a in probe_answers), probe_answers


def test_tagging_report_scores_the_demo_instrument_tags_for_every_model(study):
    page = _html(study, "06_tagging")
    assert "macro ROC-AUC [95% CI]" in page and "macro PR-AUC (mAP) [95% CI]" in page
    for system in ("mert · linear", "vggish · linear", "mfcc · linear",
                   "concat(mert + vggish) · linear", "late(mert + vggish) · linear"):
        assert f"<th>{system}</th>" in page, system
    assert re.search(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", page)
    assert "MagnaTagATune-style" in page and "OpenMIC-style" in page and "top-3 (%)" in page
    assert "the tagging system chosen on validation data" in page
    assert "ROC-AUC per tag" in page and "Paired tests" in page and "p (Holm)" in page
    assert "Skipped: not an OpenMIC-2018 collection" in page


def test_saved_model_classifies_a_new_song(study, capsys):
    root, _ = study
    song = next((root / "demo").rglob("*.wav"))
    assert main(["predict", str(root / "models" / "mfcc.npz"), str(song),
                 "--cache", str(root / "cache")]) == 0
    out = capsys.readouterr().out
    assert song.name in out or str(song) in out


def test_predict_refuses_a_model_whose_extractor_differs(study, capsys):
    root, _ = study
    song = next((root / "demo").rglob("*.wav"))
    assert main(["predict", str(root / "models" / "mfcc.npz"), str(song), "-o", "n_mfcc=13",
                 "--cache", str(root / "cache")]) == 2
    err = capsys.readouterr().err
    assert "fingerprint" in err and "mfcc.npz" in err


def test_offline_without_weights_stops_before_the_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    (tmp_path / "music" / "a").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text(
        f"run: offline\ncollection: {tmp_path / 'music'}\n"
        f"extractors: {{mert: {{model: m-a-p/MERT-v1-95M}}}}\ncache_dir: {tmp_path / 'cache'}\n")
    from tests.conftest import write_tone

    write_tone(tmp_path / "music" / "a" / "x.wav", seconds=1.0)
    monkeypatch.setenv("MTBC_REPORTS", str(tmp_path / "reports"))
    assert main(["run", "--params", str(tmp_path / "params.yaml"),
                 "--notebooks", str(REPO / "notebooks")]) == 2
    err = capsys.readouterr().err
    assert "m-a-p/MERT-v1-95M" in err and "local folder" in err
    assert not (tmp_path / "reports" / "offline").exists()


def _offline_params(tmp_path, monkeypatch, tone, *, strict=False):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("MTBC_REPORTS", str(tmp_path / "reports"))
    for label, freq in (("a", 220), ("b", 440)):
        for k in range(3):
            tone(tmp_path / "music" / label / f"{label}{k}.wav", seconds=2.0, sr=22050,
                 freq=freq + 10 * k)
    path = tmp_path / "params.yaml"
    path.write_text(
        f"run: offline\ncollection: {tmp_path / 'music'}\n"
        f"extractors: {{mert: {{model: m-a-p/MERT-v1-95M}}, mfcc: {{}}}}\n"
        f"cache_dir: {tmp_path / 'cache'}\nnotebooks: [02_extract_embeddings]\n"
        + ("strict: true\n" if strict else ""))
    return path


def test_offline_a_model_without_weights_is_named_not_run_and_the_rest_runs(
        tmp_path, monkeypatch, tone, capsys):
    params = _offline_params(tmp_path, monkeypatch, tone)
    assert main(["run", "--params", str(params), "--notebooks", str(REPO / "notebooks")]) == 0
    out = capsys.readouterr().out
    assert "mert: NOT RUN (connect to the internet once" in out
    index = tmp_path / "reports" / "offline" / "index.html"
    page = read_page(index)
    assert "Models not run in this study" in page and "<strong>mert</strong>" in page
    assert "connect to the internet once" in page
    nb02 = read_page(index.parent / "02_extract_embeddings.html")
    assert "Models that did not run" in nb02 and "m-a-p/MERT-v1-95M" in nb02
    assert "connect to the internet once" in nb02
    record = json.loads((index.parent / "run.json").read_text(encoding="utf-8"))
    assert [n["label"] for n in record["not_run"]] == ["mert"]
    assert [e["label"] for e in record["extraction"]] == ["mfcc"]
    assert record["extraction"][0]["extracted"] == 6


def test_strict_restores_the_refusal(tmp_path, monkeypatch, tone, capsys):
    params = _offline_params(tmp_path, monkeypatch, tone)
    assert main(["run", "--params", str(params), "--strict",
                 "--notebooks", str(REPO / "notebooks")]) == 2
    assert "strict: true" in capsys.readouterr().err
    params = _offline_params(tmp_path, monkeypatch, tone, strict=True)
    assert main(["run", "--params", str(params), "--notebooks", str(REPO / "notebooks")]) == 2
    assert not (tmp_path / "reports" / "offline").exists()


def test_every_report_page_renders_in_a_browser_within_the_page_width(study):
    from mtbc.reports.browser import check_page, find_chromium

    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    pages = sorted(study[1].parent.glob("*.html"))
    assert len(pages) == len(NOTEBOOKS) + 1
    for page in pages:
        result = check_page(page)
        assert result.ok, (page.name, result)
        assert result.tables > 0 or page.name == "index.html", page.name


def test_five_unlabelled_songs_are_described_not_classified(tmp_path, tone):
    for i in range(5):
        tone(tmp_path / "songs" / f"歌曲{i}.wav", seconds=4.0, sr=22050, freq=220 * (i + 1))
    params = {"run": "five", "collection": str(tmp_path / "songs"),
              "extractors": {"mfcc": {}}, "cache_dir": str(tmp_path / "cache"),
              # 07/08 run on every collection alike and are covered by the module run above
              "notebooks": ["01_load_data", "03_embedding_statistics", "04_train_classifiers",
                            "05_ensemble", "06_tagging"]}
    index = run(params, notebooks_dir=REPO / "notebooks", reports_root=tmp_path / "reports",
                progress=False)
    stats = read_page(index.parent / "03_embedding_statistics.html")
    for i in range(5):
        assert f"歌曲{i}" in stats
    assert "no classification" in read_page(index.parent / "04_train_classifiers.html")
    assert "No comparison" in read_page(index.parent / "05_ensemble.html")
    assert "No tagging" in read_page(index.parent / "06_tagging.html")
    assert FIXTURE_TEXT not in read_page(index)


def test_gtzan_layout_runs_on_its_predefined_split(tmp_path, tone):
    from mtbc.data.collection import gtzan_split_lists

    lists = gtzan_split_lists()
    genres = sorted({rel.split("/")[0] for rel in lists["train"]})
    for g, genre in enumerate(genres):
        for split, count in (("train", 2), ("valid", 1), ("test", 1)):
            for k, rel in enumerate([r for r in lists[split] if r.startswith(genre)][:count]):
                tone(tmp_path / "GTZAN" / "genres" / rel, seconds=2.0, sr=22050,
                     freq=110 * (g + 1) + 7 * k + {"train": 0, "valid": 20, "test": 40}[split])
    params = {"run": "gtzan", "collection": f"gtzan:{tmp_path / 'GTZAN'}",
              "extractors": {"mfcc": {}, "mfcc-fine": {"name": "mfcc", "segment_seconds": 1.0}},
              "cache_dir": str(tmp_path / "cache"), "params": {"n_boot": 100,
                                                             "protocol": "marble"},
              "notebooks": ["01_load_data", "04_train_classifiers", "05_ensemble"],
              "notebook_params": {"04_train_classifiers": {"model_dir": str(tmp_path / "m"),
                                                           "probes": ["linear"]}}}
    index = run(params, notebooks_dir=REPO / "notebooks", reports_root=tmp_path / "reports",
                progress=False)
    overview = read_page(index.parent / "01_load_data.html")
    assert "890 files skipped" in overview  # the split's other files are absent here
    page = read_page(index.parent / "04_train_classifiers.html")
    assert "predefined train/valid/test split" in page and "on 10 tracks" in page  # 10 test
    assert "mfcc · marble" in page  # protocol: marble, MARBLE's MLP probe
    assert "late(mfcc + mfcc-fine)" in read_page(index.parent / "05_ensemble.html")


def test_compute_report_labels_weights_and_measures_every_model(study):
    page = _html(study, "07_compute")
    for model in ("mert", "vggish", "mfcc"):
        assert f"<td>{model}</td>" in page, model
    assert "fixture" in page and "s per 30 s clip" in page and "bfloat16" in page
    assert "min cosine to fp32" in page
    rows = json.loads((study[1].parent / "compute.json").read_text())["rows"]
    assert {r["label"] for r in rows} == {"mert", "vggish", "mfcc"}
    assert not json.loads((study[1].parent / "compute.json").read_text())["failed"]


def test_claims_report_gives_every_claim_a_verdict(study):
    from mtbc.claims import CLAIMS

    page = _html(study, "08_claims")
    for claim in CLAIMS:
        assert claim.id in page, claim.id
    assert "contradicted" in page and "confirmed" in page and "not testable here" in page
    assert "random weights" in page  # fixture figures are labelled


# ------------------------------------------------------------------- as JupyterLab runs them

def _run_by_hand(notebook: Path, cwd: Path):
    """Execute ``notebook`` as JupyterLab's "Run All" does: a kernel started in ``cwd``, no
    parameters injected (this interpreter and this mtbc, as ``mtbc run`` uses)."""
    import nbclient
    import nbformat

    from mtbc.reports.execute import _this_python_kernel_manager

    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, timeout=None, kernel_name="python3",  # as papermill in a run
                            kernel_manager_class=_this_python_kernel_manager(),
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _outputs_with(nb, text: str) -> list[str]:
    """The HTML (else plain) outputs of ``nb`` that contain ``text``."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            body = data.get("text/html") or data.get("text/markdown") or data.get("text/plain")
            body = "".join(body) if isinstance(body, list) else (body or "")
            if text in body:
                found.append(body)
    return found


@pytest.mark.slow
def test_notebooks_opened_by_hand_in_notebooks_continue_the_run(study, monkeypatch):
    import shutil

    import nbformat

    root, index = study
    for var in ("MTBC_HOME", "MTBC_DATA", "MTBC_CACHE", "MTBC_REPORTS"):
        monkeypatch.delenv(var, raising=False)
    # the study's folder as a project: params/, notebooks/ and the run under reports/
    (root / "params").mkdir(exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root / "notebooks")
    audit = (index.parent / "results.csv").read_bytes()
    for name in NOTEBOOKS:
        nb = _run_by_hand(root / "notebooks" / f"{name}.ipynb", root / "notebooks")
        assert _outputs_with(nb, "continues run e2e"), name
        if name == "04_train_classifiers":
            # Run All reproduces the run's numbers: the same results table, cell for cell
            ran = nbformat.read(index.parent / f"{name}.ipynb", as_version=4)
            here = _outputs_with(nb, "accuracy % [95% CI]")
            assert here and here == _outputs_with(ran, "accuracy % [95% CI]")
    assert (index.parent / "results.csv").read_bytes() == audit  # the run's audit untouched


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_starts_headless_and_lists_the_notebooks(tmp_path):
    import json as _json
    import secrets
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    pytest.importorskip("jupyterlab", reason="jupyterlab is in the dev extra: pip install "
                                             "-e '.[dev]'")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    # as `make lab` starts it, on 127.0.0.1 only, with a token
    cmd = [sys.executable, "-m", "jupyterlab", "notebooks/", "--no-browser",
           f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", "--allow-root"]  # CI runs as root
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as sink:
        server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=sink)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/?token={token}"
        listing, deadline = None, time.monotonic() + 120
        while listing is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    listing = _json.load(reply)
            except OSError:
                time.sleep(0.5)
        assert listing is not None, (f"no answer from JupyterLab (exit {server.poll()}): "
                                     f"{log.read_text()[-2000:]}")
        names = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        assert {f"{n}.ipynb" for n in NOTEBOOKS} <= names
        with pytest.raises(urllib.error.HTTPError, match="403"):  # the token is required
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/", timeout=5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
