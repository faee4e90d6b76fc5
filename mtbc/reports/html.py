"""Self-contained HTML: one page per executed notebook, and the index page of a run.

Pages hide code (nbconvert ``--no-input``), embed images as ``data:`` URIs and carry no
scripts except MathJax when a notebook has math. Every user string is escaped.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mtbc.reports.display import FIXTURE_TEXT


@dataclasses.dataclass
class ReportInfo:
    """One executed notebook of a run.

    ``fixture_weights`` maps extractor label -> weights kind for every non-pretrained
    extractor the notebook's :func:`fixture_banner` reported (empty: none).
    """

    name: str
    notebook: Path
    executed: Path
    html: Path | None
    summary: str | None = None
    fixture_weights: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    answer: str | None = None


@dataclasses.dataclass
class IndexPage:
    """What the index shows besides the reports: its ``title``, the ``run_info`` table (scalar
    values; ``params`` as YAML, ``fixture_weights`` as a banner), the models that were not
    run (:class:`~mtbc.reports.record.NotRun`) and the files of the run's audit trail
    (``links``: label -> file name in the run folder)."""

    title: str
    run_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    not_run: list = dataclasses.field(default_factory=list)
    links: Mapping[str, str] = dataclasses.field(default_factory=dict)


def inline_markdown(text: str) -> str:
    """Escape ``text`` for HTML and turn its ``**bold**`` spans into ``<strong>``."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))

_REPORT_CSS = """
body.jp-Notebook { background: #f6f7f9; padding: 0; margin: 0; }
body.jp-Notebook main { max-width: 58rem; margin: 0 auto; padding: 1.5rem 2.5rem 3rem;
  background: #fff; box-shadow: 0 0 0 1px #e3e6ea; min-height: 100vh; box-sizing: border-box; }
.jp-RenderedHTMLCommon { font-size: 15px; line-height: 1.6;
  font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
.jp-RenderedHTMLCommon table { font-size: 13px; border-collapse: collapse; table-layout: auto; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { padding: 0.3em 0.5em;
  overflow-wrap: normal; word-break: normal; hyphens: manual; vertical-align: top; }
.jp-RenderedHTMLCommon td.mtbc-num, .jp-RenderedHTMLCommon th.mtbc-num { white-space: nowrap;
  text-align: right; }
.jp-RenderedHTMLCommon td.mtbc-text { min-width: 12em; text-align: left; }
.mtbc-nobr { white-space: nowrap; }
.mtbc-table { overflow-x: auto; max-width: 100%; margin-bottom: 0.5em; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
.mtbc-nav { font: 13px system-ui, "DejaVu Sans", sans-serif; color: #555;
  border-bottom: 1px solid #e3e6ea; padding-bottom: 0.6rem; margin-bottom: 1rem; }
.mtbc-nav a { color: #1d4ed8; text-decoration: none; }
"""

_REPORT_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.mtbc_math -%}{{ super() }}{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.mtbc_css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}
{%- if resources.mtbc_nav -%}<nav class="mtbc-nav">{{ resources.mtbc_nav }}</nav>{%- endif -%}
{%- endblock body_header -%}
"""


def _inert_markdown_outputs(nb) -> None:
    """Make raw HTML in Markdown *outputs* inert: Markdown passes HTML through, and outputs
    carry user strings (labels, file names). ``<`` and ``>`` become entities (shown as is)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                text = data["text/markdown"]
                text = "".join(text) if isinstance(text, list) else str(text)
                data["text/markdown"] = text.replace("<", "&lt;").replace(">", "&gt;")


#: A cell holding numbers only (a value, a CI "61.2 [50.0, 72.1]", "12 (4)", "70.0-80.0", "-").
_NUMERIC = re.compile(r"[-+\u2212\u2013]?[\d.,:%\[\]()\s\u00b1eE+\-\u2212\u2013\u2014/x\u00d7]*\d"
                      r"[\d.,:%\[\]()\s\u00b1eE+\-\u2212\u2013\u2014/x\u00d7]*|[-\u2013\u2014]|nan|inf")
#: A cell with more text than this many characters wraps in a column of at least 12 em.
_LONG_TEXT = 40


def _drop_range_index(table) -> None:
    """Remove a table's unnamed 0, 1, 2, ... row-header column (pandas' RangeIndex)."""
    head_rows = table.thead.find_all("tr") if table.thead else []
    body_rows = table.tbody.find_all("tr") if table.tbody else []
    if len(head_rows) != 1 or not body_rows:
        return  # no header, or a second header row naming the index
    firsts = [row.find(["th", "td"]) for row in [*head_rows, *body_rows]]
    if any(c is None or c.name != "th" for c in firsts[1:]) or firsts[0] is None:
        return
    if firsts[0].get_text(strip=True) or any(c.get("rowspan") or c.get("colspan")
                                             for c in firsts):
        return
    if [c.get_text(strip=True) for c in firsts[1:]] != [str(i) for i in range(len(body_rows))]:
        return
    for cell in firsts:
        cell.decompose()


#: A word with a character after which browsers may break a line ("ROC-AUC", "a/b", "x:y").
_BREAKABLE_WORD = re.compile(r"\S*[-\u2010-\u2015/\\?!)\]}|:;+=&~%\u00b7]\S+")


def _keep_words_whole(soup, cell) -> None:
    """Words of ``cell`` that a browser could break inside (at a hyphen, a slash, ...) are put
    in ``span.mtbc-nobr`` (no wrapping inside); a path keeps a ``<wbr>`` break point after
    each ``/``, so it wraps between folders, never inside a name."""
    for text in list(cell.find_all(string=True)):
        if text.parent.name in ("style", "script") or not _BREAKABLE_WORD.search(text):
            continue
        nodes, last = [], 0
        for match in _BREAKABLE_WORD.finditer(text):
            nodes.append(text[last:match.start()])
            for i, part in enumerate(re.split(r"(?<=/)(?=.)", match.group())):
                if i:
                    nodes.append(soup.new_tag("wbr"))
                span = soup.new_tag("span", attrs={"class": "mtbc-nobr"})
                span.string = part
                nodes.append(span)
            last = match.end()
        nodes.append(text[last:])
        for node in nodes:
            if node != "":
                text.insert_before(node)
        text.extract()


def readable_tables(fragment: str) -> str:
    """HTML tables that read: each in a horizontally scrolling ``div.mtbc-table``, without
    pandas' meaningless 0, 1, 2 index column, numeric cells kept on one line (class
    ``mtbc-num``), long text cells given room to wrap between words (``mtbc-text``), and no
    word broken at a hyphen or slash (``span.mtbc-nobr``; paths wrap between folders).

    ``fragment``: an HTML output (e.g. a DataFrame's ``text/html``); returned unchanged when
    it holds no table.

    Examples
    --------
    >>> html = pd.DataFrame({"claim": ["a b"], "value": ["1.5 [1.0, 2.0]"]}).to_html()
    >>> "<th>0</th>" in readable_tables(html)  # doctest: +SKIP
    False
    """
    if "<table" not in fragment:
        return fragment
    from bs4 import BeautifulSoup  # nbconvert's dependency; only needed here

    soup = BeautifulSoup(fragment, "html.parser")
    for table in soup.find_all("table"):
        _drop_range_index(table)
        for cell in table.find_all(["td", "th"]):
            text = " ".join(cell.get_text(" ").split())
            extra = ("mtbc-num" if _NUMERIC.fullmatch(text) else
                     "mtbc-text" if cell.name == "td" and len(text) > _LONG_TEXT else None)
            if extra:
                cell["class"] = [*cell.get("class", []), extra]
            if extra != "mtbc-num":
                _keep_words_whole(soup, cell)
        if not (table.parent and "mtbc-table" in (table.parent.get("class") or [])):
            table.wrap(soup.new_tag("div", attrs={"class": "mtbc-table"}))
    return str(soup)


def _readable_output_tables(nb) -> None:
    """:func:`readable_tables` on every HTML output of ``nb``."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                text = data["text/html"]
                data["text/html"] = readable_tables(
                    "".join(text) if isinstance(text, list) else str(text))


def notebook_to_html(notebook: str | os.PathLike, html_path: str | os.PathLike, *,
                     include_input: bool = False, title: str | None = None,
                     nav: str | None = None) -> Path:
    """Convert an executed notebook to one self-contained HTML file.

    Code is hidden unless ``include_input`` (nbconvert ``--no-input``); images are embedded
    as ``data:`` URIs; no require.js, MathJax only when the notebook has math. ``nav`` is
    trusted HTML put above the content (default: a link to ``index.html``).
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    _inert_markdown_outputs(nb)
    _readable_output_tables(nb)
    exporter = HTMLExporter(
        template_name="lab", template_file="mtbc_report.html.j2",
        extra_loaders=[jinja2.DictLoader({"mtbc_report.html.j2": _REPORT_TEMPLATE})],
        exclude_input=not include_input, exclude_input_prompt=not include_input,
        exclude_output_prompt=not include_input, embed_images=True)
    has_math = any(("$" in c.source or "\\begin" in c.source) for c in nb.cells
                   if c.cell_type == "markdown")
    if nav is None:
        nav = (f'<a href="index.html">&larr; All reports</a> &middot; '
               f'{html.escape(Path(notebook).stem)}')
    resources = {"metadata": {"name": title or Path(notebook).stem,
                              "path": str(Path(notebook).parent)},
                 "mtbc_math": has_math, "mtbc_css": _REPORT_CSS, "mtbc_nav": nav}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    html_path = Path(html_path)
    html_path.write_text(body, encoding="utf-8")
    return html_path


_INDEX_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1f2328;
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 58rem; margin: 0 auto; padding: 2rem 2.5rem 3rem; background: #fff;
  box-shadow: 0 0 0 1px #e3e6ea; min-height: 100vh; box-sizing: border-box; }
h1 { font-size: 1.7rem; margin: 0 0 0.2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid #e3e6ea;
  padding-bottom: 0.3rem; }
.sub { color: #57606a; margin: 0 0 1.2rem; }
ol.reports { list-style: none; padding: 0; margin: 0; }
ol.reports li { padding: 0.75rem 0.9rem; border: 1px solid #e3e6ea; border-radius: 6px;
  margin-bottom: 0.6rem; }
ol.reports a { font-weight: 600; color: #1d4ed8; text-decoration: none; font-size: 1.05rem; }
ol.reports a:hover { text-decoration: underline; }
.summary { margin-top: 0.25rem; }
.meta { color: #57606a; font-size: 0.85rem; }
.nosummary { color: #8c959f; font-style: italic; }
li.failed { border-color: #d1242f; background: #fff5f5; }
.error { color: #a40e26; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  font-size: 0.85rem; white-space: pre-wrap; margin-top: 0.3rem; }
.banner { border: 2px solid #b45309; background: #fef3c7; color: #78350f; padding: 0.8em 1em;
  border-radius: 6px; font-weight: 600; margin: 1rem 0; }
.banner div { font-weight: 400; font-size: 0.9em; }
p.answer { font-size: 1.15rem; line-height: 1.5; margin: 0.6rem 0 0.8rem; padding: 0.8rem 1rem;
  background: #eef6ff; border-left: 4px solid #1d4ed8; border-radius: 4px; }
.notrun { border: 1px solid #d0d7de; background: #f6f8fa; padding: 0.7rem 1rem;
  border-radius: 6px; margin: 1rem 0; }
.notrun ul { margin: 0.4rem 0 0; padding-left: 1.2rem; }
.notrun .fix { color: #57606a; }
table.info { border-collapse: collapse; font-size: 0.9rem; }
table.info th { text-align: left; color: #57606a; font-weight: 500; padding: 0.25rem 1.2rem
  0.25rem 0; vertical-align: top; white-space: nowrap; }
table.info td { padding: 0.25rem 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  font-size: 0.85rem; overflow-wrap: normal; word-break: normal; }
.mtbc-nobr { white-space: nowrap; }
.mtbc-table { overflow-x: auto; max-width: 100%; }
details { margin-top: 1rem; }
details summary { cursor: pointer; color: #57606a; }
details pre { background: #f6f8fa; border: 1px solid #e3e6ea; border-radius: 6px;
  padding: 0.8rem; font-size: 0.82rem; overflow-x: auto; }
"""

_INFO_LABELS = {"run": "Run", "date": "Date", "params_file": "Parameter file",
                "mtbc_version": "mtbc version", "git_commit": "Git commit",
                "python": "Python", "seconds": "Run wall time (s)", "collection": "Collection",
                "tracks": "Tracks", "skipped": "Skipped files", "seed": "Seed"}


def write_index(out_dir: str | os.PathLike, reports: Iterable[ReportInfo], *,
                page: IndexPage | None = None, title: str | None = None,
                run_info: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/index.html``: the answer first, then every report with its summary,
    the models that were not run, and the run's provenance.

    The lead paragraphs are the answers the reports recorded (``record_answer``; one per
    notebook that recorded one, in run order: classification, then tagging); without any it
    says that no notebook recorded an answer. ``page`` (or ``title`` and ``run_info``)
    says what else to show (:class:`IndexPage`). A truthy ``fixture_weights`` in the run info
    forces the fixture banner, which is also shown when any report displayed one.
    Self-contained: inline CSS, no scripts; every user string is escaped.
    """
    import yaml

    if page is None:
        page = IndexPage(title=title or "mtbc reports", run_info=dict(run_info or {}))
    run_info = page.run_info
    out_dir = Path(out_dir)
    reports = list(reports)
    esc = html.escape
    fixtures: dict[str, str] = dict(run_info.get("fixture_weights") or {})
    for r in reports:
        fixtures.update(r.fixture_weights)
    answers = [(r.name, r.answer) for r in reports if r.answer]
    if answers:
        lead = "\n".join(f'<p class="answer" data-notebook="{esc(name)}">'
                         f"{inline_markdown(text)}</p>" for name, text in answers)
    else:
        lead = '<p class="answer nosummary">No notebook of this run recorded an answer.</p>'
    items = []
    for r in reports:
        href = esc(os.path.relpath(r.html, out_dir)) if r.html else None
        link = (f'<a href="{href}">{esc(r.name)}</a>' if href else f"<strong>{esc(r.name)}</strong>")
        if r.summary:
            summary = f'<div class="summary">{inline_markdown(r.summary)}</div>'
        elif r.status == "ok":
            summary = '<div class="nosummary">(no summary recorded)</div>'
        else:
            summary = ""
        meta = f'<span class="meta"> &middot; {r.seconds:.1f} s</span>'
        if r.status != "ok":
            meta = '<span class="meta"> &middot; FAILED</span>'
            summary += f'<div class="error">{esc(r.error or "failed")}</div>'
            summary += (f'<div class="meta">partial executed notebook: '
                        f'{esc(os.path.relpath(r.executed, out_dir))}</div>')
        cls = ' class="failed"' if r.status != "ok" else ""
        items.append(f"<li{cls}>{link}{meta}{summary}</li>")
    banner = ""
    if fixtures:
        which = ", ".join(f"{k}: {v}" for k, v in fixtures.items())
        banner = (f'<div class="banner" role="alert">&#9888; {esc(FIXTURE_TEXT)}'
                  f'<div>({esc(which)})</div></div>')
    not_run = ""
    if page.not_run:
        rows = "".join(f"<li><strong>{esc(n.label)}</strong> ({esc(n.extractor)}): not run. "
                       f"<span class=\"fix\">Fix: {esc(n.fix)}</span></li>"
                       for n in page.not_run)
        not_run = (f'<div class="notrun"><strong>Models not run in this study</strong>'
                   f"<ul>{rows}</ul></div>")
    links = ""
    if page.links:
        links = ("<p class=\"sub\">Audit trail: " + " &middot; ".join(
            f'<a href="{esc(f)}">{esc(label)}</a>' for label, f in page.links.items()) + "</p>")
    rows = []
    for key, value in run_info.items():
        if key in ("params", "fixture_weights") or isinstance(value, (Mapping, list)):
            continue
        rows.append(f"<tr><th>{esc(_INFO_LABELS.get(key, key))}</th>"
                    f"<td>{esc(str(value))}</td></tr>")
    params_block = ""
    if run_info.get("params"):
        dumped = yaml.safe_dump(dict(run_info["params"]), sort_keys=False,
                                default_flow_style=False, allow_unicode=True)
        params_block = (f"<details><summary>Parameters of this run</summary>"
                        f"<pre>{esc(dumped)}</pre></details>")
    n_failed = sum(r.status != "ok" for r in reports)
    sub = f"{len(reports)} report{'s' if len(reports) != 1 else ''}"
    if n_failed:
        sub += f", {n_failed} failed"
    if run_info.get("date"):
        sub += f" &middot; {esc(str(run_info['date']))}"
    if run_info.get("seconds"):
        sub += f" &middot; run took {esc(str(run_info['seconds']))} s"
    # words never broken (a path wraps between folders), a wide table scrolls
    info_table = readable_tables(f'<table class="info">{"".join(rows)}</table>')
    title = page.title
    body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<main>
<h1>{esc(title)}</h1>
{lead}
<p class="sub">{sub}</p>
{banner}
{not_run}
<h2>Reports</h2>
<ol class="reports">
{chr(10).join(items) or '<li class="nosummary">No reports.</li>'}
</ol>
{links}
<h2>Run</h2>
{info_table}
{params_block}
</main>
</body>
</html>
"""
    path = out_dir / "index.html"
    path.write_text(body, encoding="utf-8")
    return path
