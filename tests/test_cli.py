"""The mtbc command line: help everywhere, scan output, clear errors."""

from __future__ import annotations

import pytest

from mtbc.cli import build_parser, main

COMMANDS = ["demo", "fixtures", "scan", "extract", "cache", "predict", "bench", "run",
            "similar", "playlist", "finetune"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: mtbc " + command in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


def test_scan_prints_labels_and_skipped_files(tmp_path, tone, capsys):
    tone(tmp_path / "m" / "folk" / "a.wav", seconds=0.4)
    tone(tmp_path / "m" / "folk" / "b.wav", seconds=0.6, freq=500)
    (tmp_path / "m" / "folk" / "bad.wav").write_text("x")
    out_csv = tmp_path / "tracks.csv"
    assert main(["scan", str(tmp_path / "m"), "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "2 tracks, 1 skipped" in out
    assert "folk" in out and "bad.wav" in out and "cannot decode" in out
    assert out_csv.read_text().count("\n") == 3


def test_missing_collection_is_a_clear_error(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cache_listing_empty(tmp_path, capsys):
    assert main(["cache", "--cache", str(tmp_path)]) == 0
    assert "empty" in capsys.readouterr().out


def test_extract_option_parsing_types_values():
    from mtbc.cli_args import UsageError, parse_options, parse_shard

    assert parse_options(["chunk_seconds=10", "model=m-a-p/MERT-v1-95M",
                          "final_relu=true"]) == {
        "chunk_seconds": 10, "model": "m-a-p/MERT-v1-95M", "final_relu": True}
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(UsageError, match="i/n"):
        parse_shard("x")


def test_extract_with_a_tiny_local_mert_fills_the_cache_then_reuses_it(tmp_path, tone, capsys):
    from mtbc.extractors.fixtures import make_mert_snapshot

    for i, label in enumerate(["bach", "bach", "han", "han"]):
        tone(tmp_path / "m" / label / f"c{i}.wav", seconds=1.5, sr=24000, freq=300 + 100 * i)
    model = make_mert_snapshot(tmp_path / "mert", variant="95m", tiny=True)
    argv = ["extract", str(tmp_path / "m"), "-e", "mert", "-o", f"model={model}",
            "-o", "chunk_seconds=1.0", "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "4 extracted, 0 cached, 0 failed" in capsys.readouterr().out
    assert main(argv) == 0
    assert "0 extracted, 4 cached, 0 failed" in capsys.readouterr().out
    assert main(["cache", "--cache", str(tmp_path / "cache")]) == 0
    listing = capsys.readouterr().out
    assert "mert-" in listing and " 4 " in listing


def test_fixtures_command_writes_marked_random_models(tmp_path, capsys):
    from mtbc.extractors import FIXTURE_MARKER, get_extractor

    assert main(["fixtures", "--out", str(tmp_path)]) == 0
    assert "NOT real models" in capsys.readouterr().out
    assert (tmp_path / "mert-tiny" / FIXTURE_MARKER).is_file()
    assert get_extractor("mert", model=str(tmp_path / "mert-tiny")).metadata()[
        "weights_kind"] == "fixture"
