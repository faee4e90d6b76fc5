"""The benchmark script runs (tiny sizes) and refuses unknown models; figures are printed."""

from __future__ import annotations

from mtbc.benchmark import suite as bench


def test_store_bench_runs_and_reports_every_timing(tmp_path, capsys):
    out = bench.bench_store(n_tracks=5, n_layers=3, dim=8, segments=2, root=tmp_path)
    assert {"write_s", "mean_all_layers_s", "one_layer_s", "segments_all_layers_s"} <= set(out)
    assert "bench_store: 5 tracks" in capsys.readouterr().out


def test_probe_bench_recovers_the_planted_layer_on_small_data(capsys):
    # the synthetic signal peaks at two thirds of the depth: layer 2 of 4 (0, 1, 2, 3); at
    # 512 dimensions it is strong enough for validation to find it in every fold (seeds 0-2)
    out = bench.bench_probe(n_tracks=80, n_layers=4, dim=512, n_classes=4, n_splits=3)
    assert out["n_tracks"] == 80 and out["chosen_layers"] == [2, 2, 2]
    assert out["accuracy"] > 0.4  # above the 0.25 of chance on the held-out folds
    assert "bench_probe" in capsys.readouterr().out


def test_unknown_model_is_refused(capsys):
    assert bench.main(models="mert-95m,jukebox") == 2
    assert "jukebox" in capsys.readouterr().out
