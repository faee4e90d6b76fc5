"""Every user error: one line on stderr naming the bad value, exit status 2, no traceback,
and no work done before the error (no scan, no extraction)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbc.cli import build_parser, main
from tests.conftest import write_tone

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_tone(root / "music" / "a" / "x.wav", seconds=0.5)
    write_tone(root / "music" / "b" / "y.wav", seconds=0.5, freq=300)
    (root / "garbage.pt").write_bytes(b"\x00\x01 not torch weights " * 10)
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81garbage")
    (root / "folder.yaml").mkdir()
    (root / "model.npz").write_bytes(b"PK\x03\x04 broken zip")
    return root


def _params(env, name, text):
    path = env / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def _base(env):
    return f"run: t\ncollection: {env / 'music'}\ncache_dir: {env / 'cache'}\n"


def _cases(env):
    m, song = str(env / "music"), str(env / "music" / "a" / "x.wav")
    base = _base(env)
    run = lambda name, text: ["run", "--params", _params(env, name, text),  # noqa: E731
                              "--notebooks", str(REPO / "notebooks")]
    return {
        "unknown extractor": (["extract", m, "-e", "nope"], "nope"),
        "batch 0": (["extract", m, "-e", "mfcc", "--batch", "0"], "0"),
        "batch -3": (["extract", m, "-e", "mfcc", "--batch", "-3"], "-3"),
        "batch text": (["extract", m, "-e", "mfcc", "--batch", "many"], "many"),
        "min-duration -1": (["scan", m, "--min-duration", "-1"], "-1"),
        "max-duration 0": (["scan", m, "--max-duration", "0"], "0"),
        "shard 4/4": (["extract", m, "-e", "mfcc", "--shard", "4/4"], "4/4"),
        "shard 1/0": (["extract", m, "-e", "mfcc", "--shard", "1/0"], "1/0"),
        "shard text": (["extract", m, "-e", "mfcc", "--shard", "half"], "half"),
        "dtype": (["extract", m, "-e", "mert", "-o", "dtype=float8"], "float8"),
        "device": (["extract", m, "-e", "mert", "-o", "device=tpu9"], "tpu9"),
        "vggish device": (["extract", m, "-e", "vggish", "-o", f"weights={env / 'garbage.pt'}",
                           "-o", "device=nonsense"], "nonsense"),
        "chunk_seconds 0": (["extract", m, "-e", "mert", "-o", "chunk_seconds=0"],
                            "chunk_seconds"),
        "chunk_seconds -1": (["extract", m, "-e", "mert", "-o", "chunk_seconds=-1"],
                             "chunk_seconds"),
        "unknown option": (["extract", m, "-e", "mfcc", "-o", "bogus=1"], "bogus"),
        "option not k=v": (["extract", m, "-e", "mfcc", "-o", "novalue"], "novalue"),
        "garbage vggish weights": (["extract", m, "-e", "vggish", "-o",
                                    f"weights={env / 'garbage.pt'}"], "garbage.pt"),
        "missing collection": (["scan", str(env / "nowhere")], "nowhere"),
        "demo per-class 0": (["demo", "--per-class", "0"], "0"),
        "demo seconds -1": (["demo", "--seconds", "-1"], "-1"),
        "cache remove alone": (["cache", "--remove"], "--verify"),
        "bench models": (["bench", "--models", "nope"], "nope"),
        "predict missing model": (["predict", str(env / "none.npz"), song], "none.npz"),
        "predict broken model": (["predict", str(env / "model.npz"), song], "model.npz"),
        "unknown command": (["frobnicate"], "frobnicate"),
        "params missing": (["run", "--params", str(env / "absent.yaml")], "absent.yaml"),
        "params folder": (["run", "--params", str(env / "folder.yaml")], "folder.yaml"),
        "params binary": (["run", "--params", str(env / "binary.yaml")], "binary.yaml"),
        "params bad yaml": (run("badyaml", "run: [unclosed\n"), "badyaml.yaml"),
        "params a list": (run("alist", "- 1\n- 2\n"), "alist.yaml"),
        "params unknown key": (run("key", base + "colour: red\n"), "colour"),
        "params bad run": (run("runname", "run: ../x\n"), "../x"),
        "params unknown extractor": (run("ext", base + "extractors: {foo: {}}\n"), "foo"),
        "params label path": (run("label", base + "extractors: {'../../x': {name: mfcc}}\n"),
                              "../../x"),
        "params bad option": (run("opt", base + "extractors: {mfcc: {n_mfcc: -4}}\n"),
                              "n_mfcc"),
        "params unknown option": (run("uopt", base + "extractors: {mfcc: {colour: 1}}\n"),
                                  "colour"),
        "params chunk 0": (run("chunk", base + "extractors: {mert: {chunk_seconds: 0}}\n"),
                           "chunk_seconds"),
        "params dtype": (run("dtype", base + "extractors: {mert: {dtype: float8}}\n"),
                         "float8"),
        "params seed": (run("seed", base + "seed: abc\n"), "abc"),
        "params demo value": (run("demo", "run: t\ndemo: {n_per_class: lots}\n"), "lots"),
        "params notebook missing": (run("nb", base + "extractors: [mfcc]\n"
                                        "notebooks: [99_nope]\n"), "99_nope"),
        "params notebook path": (run("nbp", base + "notebooks: [../x]\n"), "../x"),
        "params notebook_params target": (run("nbt", base + "extractors: [mfcc]\n"
                                              "notebook_params: {77_x: {a: 1}}\n"), "77_x"),
        "notebooks folder missing": (["run", "--params", _params(env, "ok", base),
                                      "--notebooks", str(env / "nonb")], "nonb"),
    }


def _names():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return list(_cases(Path(tmp)))


CASE_NAMES = _names()


@pytest.mark.parametrize("case", CASE_NAMES)
def test_user_error_is_one_line_exit_2_without_traceback(case, env, capsys, monkeypatch):
    import mtbc.cache.extract
    import mtbc.data.collection
    import mtbc.pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    for module, name in ((mtbc.data.collection, "scan"), (mtbc.pipeline, "prepare"),
                         (mtbc.cache.extract, "extract_collection")):
        monkeypatch.setattr(module, name, no_work)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(env / "hf"))
    argv, named = _cases(env)[case]
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "internal error" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert named in lines[0], lines[0]


def test_debug_shows_the_traceback(env, capsys):
    assert main(["--debug", "scan", str(env / "nowhere")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_lists_run_first_with_an_example_and_describes_every_command(capsys):
    parser = build_parser()
    choices = parser._subparsers._group_actions[0]._choices_actions
    assert choices[0].dest == "run"
    assert all(a.help for a in choices)
    for sub in parser._subparsers._group_actions[0].choices.values():
        assert sub.description, sub.prog
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "mtbc run --params" in out
