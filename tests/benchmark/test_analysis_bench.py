"""mtbc bench --analysis: the synthetic study and its rows."""

import json

import pytest

from mtbc.benchmark.analysis import AnalysisBenchOptions, bench_analysis, synthetic_study
from mtbc.cache.store import load_embeddings
from mtbc.cli import main


def test_synthetic_study_has_the_shapes_asked_for(tmp_path):
    o = AnalysisBenchOptions(n_tracks=60, n_layers=3, dim=8, n_segments=4)
    study = synthetic_study(tmp_path, o)
    tracks, (X, index) = load_embeddings(study.tracks, study.store,
                                         study.models["big"].fingerprint, reduce=None)
    assert len(tracks) == 60 and X.shape[1:] == (3, 8)
    assert 3 * 60 <= len(X) <= 5 * 60 and set(index) == set(range(60))
    assert study.tracks["label"].nunique() == 10 and study.tracks["tags"].str.len().gt(0).any()


def test_rows_time_every_step_and_carry_accuracies(tmp_path):
    rows = bench_analysis(AnalysisBenchOptions(n_tracks=60, n_layers=3, dim=8,
                                               steps=("03", "05")),
                          work_dir=tmp_path, echo=False)
    steps = [r["step"] for r in rows]
    assert steps == ["setup", "03", "05", "03-06"]
    five = rows[2]
    assert five["seconds"] > 0 and five["peak_rss_mib"] > 0
    assert 0 <= five["accuracy"]["big · linear"] <= 1
    assert rows[-1]["seconds"] >= rows[1]["seconds"] + rows[2]["seconds"] - 0.02
    assert list(tmp_path.iterdir()) == []  # the study is removed


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_cli_writes_rows_and_refuses_bad_sizes(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert main(["bench", "--analysis", "--tracks", "60", "--layers", "2", "--dim", "8",
                 "--steps", "05", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["n_tracks"] == 60 and rows[1]["step"] == "05"
    assert main(["bench", "--analysis", "--tracks", "ten"]) == 2
    assert "--tracks 'ten'" in capsys.readouterr().err
