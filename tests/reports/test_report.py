"""Notebooks -> executed notebooks -> HTML reports -> index, on tiny notebooks built here.

Each kernel start costs about a second, so one run of two notebooks (module fixture) feeds
most assertions; a second run covers failure.
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml

from mtbc import __version__
from mtbc.reports import browser
from mtbc.reports.display import FIXTURE_MIME, FIXTURE_TEXT, fixture_banner, record_summary
from mtbc.reports.execute import (
    NotebookFailed,
    ReportOptions,
    execute_notebooks,
    run_reports,
)
from mtbc.reports.html import ReportInfo, notebook_to_html, write_index
from mtbc.reports.params import ParamsError, load_params, validate_params


def make_notebook(path: Path, params_source: str, *cells: str, markdown: str = "") -> Path:
    """A notebook: optional markdown, a ``parameters`` cell, then code cells."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb.cells = ([nbformat.v4.new_markdown_cell(markdown)] if markdown else []) + [params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, path)
    return path


CODE_CELL = re.compile(r'class="[^"]*jp-InputArea-editor')  # the markup of shown code
GOOD_PRINT = 'print(f"injected label={label} seed={seed}")'
FIGURE = ('import matplotlib.pyplot as plt\n'
          'fig, ax = plt.subplots(figsize=(3, 2))\n'
          'ax.plot([0, 1, 2], [1, 0, 1])\n'
          'ax.set(title="tiny figure", xlabel="time (s)", ylabel="value")\n'
          'plt.show()')


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run two notebooks through run_reports; return (index path, out dir, warnings)."""
    root = tmp_path_factory.mktemp("run")
    nbdir = root / "notebooks"
    nbdir.mkdir()
    make_notebook(
        nbdir / "01_good.ipynb",
        'seed: int = 0  # random seed\n'
        'label: str = "default-label"  # a notebook-specific value\n'
        'weights_kind: str = "pretrained"  # what the tiny "extractor" claims',
        GOOD_PRINT,
        'from mtbc.reports.display import fixture_banner, record_summary\n'
        'record_summary(f"Accuracy 0.50 on 10 tracks\\n(seed {seed})")\n'
        'fixture_banner({"toy": {"weights_kind": weights_kind}})',
        FIGURE,
        markdown="# Good notebook\n\nProse that the report keeps.",
    )
    make_notebook(
        nbdir / "02_plain.ipynb",
        'seed: int = 0  # random seed',
        'print("label declared here:", "label" in globals(), "seed", seed)',
    )
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({
        "run": "tiny", "seed": 7, "extractors": ["mfcc"],
        "params": {"weights_kind": "fixture", "not_declared_anywhere": 1},
        "notebook_params": {"01_good": {"label": "from-yaml", "typo_param": 3}},
    }))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = run_reports(params, notebooks_dir=nbdir, reports_root=root / "reports",
                            cwd=root, progress=False)
    return index, index.parent, [str(w.message) for w in caught]


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_run_writes_reports_and_index(demo_run):
    index, out, _ = demo_run
    assert index == out / "index.html" and out.name == "tiny"
    for name in ("01_good", "02_plain"):
        assert (out / f"{name}.ipynb").is_file()
        assert (out / f"{name}.html").is_file()
    assert yaml.safe_load((out / "params.yaml").read_text())["seed"] == 7


def test_parameters_injected_only_where_declared(demo_run):
    _, out, _ = demo_run
    good = (out / "01_good.html").read_text()
    plain = (out / "02_plain.html").read_text()
    assert "injected label=from-yaml seed=7" in good  # not the defaults
    assert "label declared here: False seed 7" in plain


def test_unknown_parameters_warn(demo_run):
    *_, caught = demo_run
    assert any("not_declared_anywhere" in m for m in caught)
    assert any("typo_param" in m and "01_good" in m for m in caught)


def test_html_hides_code_but_keeps_outputs_and_prose(demo_run):
    _, out, _ = demo_run
    page = (out / "01_good.html").read_text()
    # pygments splits code into token spans: look for a token and the input-area markup
    assert "subplots" not in page and not CODE_CELL.search(page)
    assert "Prose that the report keeps." in page
    assert "Summary." in page and "Accuracy 0.50 on 10 tracks (seed 7)" in page


def test_html_is_self_contained(demo_run):
    _, out, _ = demo_run
    page = (out / "01_good.html").read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'<(?:script|link)[^>]*(?:src|href)="(?!data:)', page)


def test_index_links_reports_with_summaries(demo_run):
    index, _, _ = demo_run
    page = index.read_text()
    assert '<a href="01_good.html">01_good</a>' in page
    assert '<a href="02_plain.html">02_plain</a>' in page
    assert "Accuracy 0.50 on 10 tracks (seed 7)" in page
    assert "(no summary recorded)" in page  # 02_plain recorded none
    assert "tiny" in page and "params.yaml" in page and __version__ in page


def test_fixture_weights_banner_in_report_and_index(demo_run):
    index, out, _ = demo_run
    assert FIXTURE_TEXT in (out / "01_good.html").read_text()
    assert FIXTURE_TEXT in index.read_text() and "toy: fixture" in index.read_text()
    assert FIXTURE_TEXT not in (out / "02_plain.html").read_text()


def test_include_input_keeps_code(demo_run, tmp_path):
    _, out, _ = demo_run
    html = notebook_to_html(out / "01_good.ipynb", tmp_path / "with_code.html",
                                   include_input=True)
    page = html.read_text()
    assert "subplots" in page and CODE_CELL.search(page)


def test_report_options_reach_the_pages(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_notebook(nbdir / "01_ok.ipynb", "seed: int = 0  # seed", "print('fine')")
    opts = ReportOptions(include_input=True, timeout=120, run_info={"corpus note": "xyz-42"})
    index = run_reports({"run": "opts"}, notebooks_dir=nbdir, reports_root=tmp_path / "r",
                        cwd=tmp_path, progress=False, options=opts)
    assert "xyz-42" in index.read_text() and "corpus note" in index.read_text()
    assert CODE_CELL.search((index.parent / "01_ok.html").read_text())  # code kept


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_failing_notebook_names_cell_and_keeps_partial(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_notebook(nbdir / "01_ok.ipynb", "seed: int = 0  # seed", "print('fine')")
    make_notebook(nbdir / "02_broken.ipynb", "seed: int = 0  # seed",
                  "print('before the error')", "ratio = 1 / 0  # divide\nprint(ratio)",
                  "print('never runs')", markdown="# Broken")
    with pytest.raises(NotebookFailed) as info:
        run_reports({"run": "bad", "seed": 3}, notebooks_dir=nbdir,
                    reports_root=tmp_path / "reports", cwd=tmp_path, progress=False)
    err = info.value
    out = tmp_path / "reports" / "bad"
    msg = str(err)
    assert "02_broken.ipynb" in msg and "cell 3" in msg  # markdown 0, parameters 1
    assert "ratio = 1 / 0" in msg and "ZeroDivisionError" in msg
    assert err.cell_index == 3 and err.executed == out / "02_broken.ipynb"
    assert str(err.executed) in msg
    partial = nbformat.read(err.executed, as_version=4)
    printed = "".join(o.get("text", "") for c in partial.cells for o in c.get("outputs", []))
    assert "before the error" in printed and "never runs" not in printed
    assert err.html is not None and "ratio" in err.html.read_text()
    assert [r.name for r in err.completed] == ["01_ok"]
    index = (out / "index.html").read_text()
    assert "01_ok.html" in index and "FAILED" in index and "ZeroDivisionError" in index


# --------------------------------------------------------------------------- parameters

def test_load_params_fills_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("run: demo\nextractors:\n  mert-95m: {name: mert, model: x}\n"
                    "  vggish: null\nnotebooks: [01_load_data.ipynb]\n")
    p = load_params(path)
    assert p["collection"] == "demo" and p["seed"] == 0 and p["cache_dir"] is None
    assert p["extractors"] == {"mert-95m": {"name": "mert", "model": "x"},
                               "vggish": {"name": "vggish"}}
    assert p["notebooks"] == ["01_load_data"]
    assert validate_params({"run": "r", "extractors": ["mfcc"]})["extractors"] == {
        "mfcc": {"name": "mfcc"}}


def test_demo_params_file_is_valid():
    path = Path(__file__).resolve().parents[2] / "params" / "demo.yaml"
    assert load_params(path)["run"] == "demo"


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("run: demo\nseeds: 3\n")
    with pytest.raises(ParamsError, match=r"p\.yaml.*unknown top-level key 'seeds'"):
        load_params(path)


@pytest.mark.parametrize("raw, match", [
    ({"seed": 1}, "'run' must be"),
    ({"run": "../escape"}, "'run' must be"),
    ({"run": "r", "seed": "zero"}, "'seed' must be an integer"),
    ({"run": "r", "extractors": {"bert": {}}}, "extractors.bert: unknown extractor 'bert'"),
    ({"run": "r", "params": {"seed": 2}}, "params.seed repeats a top-level key"),
    ({"run": "r", "notebooks": "01_x"}, "'notebooks' must be a list"),
])
def test_bad_values_are_named(raw, match):
    with pytest.raises(ParamsError, match=match):
        validate_params(raw, source="x.yaml")


def test_notebook_params_for_unknown_notebook_fails_before_running(tmp_path):
    make_notebook(tmp_path / "01_a.ipynb", "seed: int = 0")
    params = validate_params({"run": "r", "notebook_params": {"01_b": {"x": 1}}})
    with pytest.raises(ParamsError, match="01_b"):
        execute_notebooks([tmp_path / "01_a.ipynb"], params=params,
                                 out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "01_a.ipynb").exists()


# --------------------------------------------------------------------------- helpers

class _FakeExtractor:
    def __init__(self, kind):
        self.kind = kind

    def metadata(self):
        return {"extractor": "fake", "weights_kind": self.kind}


def test_fixture_banner_only_for_fixture_or_random():
    assert fixture_banner({"mert": {"weights_kind": "pretrained"}, "mfcc": {}}) is None
    banner = fixture_banner([_FakeExtractor("random"), {"extractor": "vggish",
                                                        "weights_kind": "pretrained"}])
    bundle = banner._repr_mimebundle_()
    assert FIXTURE_TEXT in bundle["text/html"] and "fake: random" in bundle["text/plain"]
    assert bundle[FIXTURE_MIME] == {"weights": {"fake": "random"}}
    with pytest.raises(ValueError, match="weights_kind 'pretend'"):
        fixture_banner({"mert": {"weights_kind": "pretend"}})


def test_record_summary_outside_ipython_prints(capsys):
    record_summary("two\nlines")
    assert capsys.readouterr().out.strip() == "Summary. two lines"


def test_write_index_escapes_and_omits_banner(tmp_path):
    rep = ReportInfo("01_x", tmp_path / "01_x.ipynb", tmp_path / "01_x.ipynb",
                     tmp_path / "01_x.html", summary="<script>alert(1)</script> & more")
    page = write_index(tmp_path, [rep], title="T <1>", run_info={"run": "r"}).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<title>T &lt;1&gt;</title>" in page and FIXTURE_TEXT not in page
    forced = write_index(tmp_path, [rep], title="T", run_info={
        "run": "r", "fixture_weights": {"mert": "random"}}).read_text()
    assert FIXTURE_TEXT in forced


@pytest.mark.skipif(browser.find_chromium() is None, reason="chromium not installed")
def test_screenshot_of_index(tmp_path):
    rep = ReportInfo("01_x", tmp_path / "a", tmp_path / "a", tmp_path / "01_x.html", "ok")
    index = write_index(tmp_path, [rep], title="T", run_info={"run": "r"})
    png = browser.screenshot(index, tmp_path / "shot.png", width=640, height=400)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (640, 400)


def test_declared_parameters_reads_union_annotations_and_help():
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from mtbc.reports.params import declared_parameters

    cell = new_code_cell('cache_dir: str | None = None  # where the cache is\n'
                         'probes: list = ["linear", "mlp"]  # probes\nplain = 3\n')
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell])
    params = declared_parameters(nbformat.from_dict(nb))
    assert list(params) == ["cache_dir", "probes", "plain"]
    assert params["cache_dir"].inferred_type_name == "str | None"
    assert params["cache_dir"].help == "where the cache is"
    assert params["probes"].default == '["linear", "mlp"]'


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_a_failed_rerun_leaves_no_mix_of_old_and_new_pages(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_notebook(nbdir / "01_ok.ipynb", "seed: int = 0  # seed", "print('fine')")
    make_notebook(nbdir / "02_also.ipynb", "seed: int = 0  # seed", "print('also')")
    out = tmp_path / "reports" / "mix"
    run_reports({"run": "mix"}, notebooks_dir=nbdir, reports_root=tmp_path / "reports",
                cwd=tmp_path, progress=False)
    assert (out / "02_also.html").is_file()
    make_notebook(nbdir / "01_ok.ipynb", "seed: int = 0  # seed", "1 / 0")
    with pytest.raises(NotebookFailed) as info:
        run_reports({"run": "mix"}, notebooks_dir=nbdir, reports_root=tmp_path / "reports",
                    cwd=tmp_path, progress=False)
    assert info.value.executed == out / "01_ok.ipynb" and info.value.executed.is_file()
    assert not (out / "02_also.html").exists()  # the old page is gone, not shown as current
    index = (out / "index.html").read_text()
    assert "FAILED" in index and "all notebooks ran" not in index
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["mix"]  # no temp left


@pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` not
def test_an_error_before_the_swap_keeps_the_previous_reports(tmp_path, monkeypatch):
    import mtbc.reports.execute as ex

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_notebook(nbdir / "01_ok.ipynb", "seed: int = 0  # seed", "print('fine')")
    run_reports({"run": "keep"}, notebooks_dir=nbdir, reports_root=tmp_path / "reports",
                cwd=tmp_path, progress=False)
    before = (tmp_path / "reports" / "keep" / "index.html").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "execute_notebooks", killed)
    with pytest.raises(KeyboardInterrupt):
        run_reports({"run": "keep"}, notebooks_dir=nbdir, reports_root=tmp_path / "reports",
                    cwd=tmp_path, progress=False)
    assert (tmp_path / "reports" / "keep" / "index.html").read_text() == before
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["keep"]
