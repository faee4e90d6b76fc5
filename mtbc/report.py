"""Numbered notebooks -> executed notebooks -> self-contained HTML reports + an index page.

A run takes one YAML parameter file (``params/<run>.yaml``), executes every numbered notebook
in ``notebooks/`` with papermill (values injected into the cell tagged ``parameters``),
converts each executed notebook to HTML without code (nbconvert ``--no-input``, images
embedded as ``data:`` URIs) and writes ``reports/<run>/index.html`` linking them all.

Parameter file schema (top-level keys; anything else is an error naming the key and file)::

    run: demo                  # required; names the output folder reports/<run>/
                               #   (letters, digits, '.', '_', '-')
    title: "Demo corpus"       # optional; heading of the index page
    collection: demo           # what to classify: "demo" (the rendered demo corpus), a folder
                               #   of audio, a tracks .csv, or "gtzan:<root>"; default "demo"
    demo: {n_per_class: 12, clip_seconds: 15, seed: 0}   # optional; size of the demo corpus
                               #   that `mtbc run` renders when collection is "demo"
    extractors:                # label -> options for mtbc.extractors.get_extractor
      mert-95m: {name: mert, model: m-a-p/MERT-v1-95M, revision: main}
      vggish: {}               # "name" defaults to the label, so each entry builds with
      mfcc: {}                 #   get_extractor(**options). A list [mert, vggish] is allowed.
    seed: 0                    # int; every random choice in the notebooks derives from it
    cache_dir: null            # embedding cache; null = mtbc.config.cache_dir()
    notebooks: [01_load_data, 02_extract_embeddings]   # optional subset and order;
                               #   default: every notebooks/[0-9]*.ipynb, sorted
    params: {n_folds: 5}       # extra values given to every notebook that declares them
    notebook_params:           # per-notebook values (override the above)
      04_train_classifiers: {C_grid: [0.1, 1.0, 10.0]}

What a notebook receives: ``run``, ``collection``, ``extractors`` (label -> options dict, each
with its ``name``), ``seed``, ``cache_dir``, then ``params``, then its own
``notebook_params`` entry -- but only the names its ``parameters`` cell declares, so a
notebook never gets a variable it did not ask for. A ``params`` key that no notebook
declares, or a ``notebook_params`` key its notebook does not declare, gives a warning.

Inside a notebook:

- :func:`record_summary` displays a one-line summary; the index reads it back from the
  executed notebook (custom mimetype ``application/vnd.mtbc.summary+json``; last call wins).
- :func:`fixture_banner` shows a warning banner when any extractor's metadata says its
  weights are ``"fixture"`` or ``"random"`` (key ``weights_kind``, one of
  :data:`WEIGHTS_KINDS`); the index repeats the banner when any report showed it.

Kernel: by default notebooks run in a kernel of the interpreter running this code
(``sys.executable``, no installed kernelspec needed), with this ``mtbc`` first on
``PYTHONPATH`` and the inline matplotlib backend.

Hygiene of committed notebooks: :func:`check_notebook` / :func:`check_notebooks` (no outputs,
no execution counts, exactly one ``parameters`` cell, valid nbformat) and
:func:`strip_outputs`; ``python -m mtbc.report check|strip notebooks/*.ipynb`` for make.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbc import __version__, config

#: Mimetype of the summary that :func:`record_summary` displays.
SUMMARY_MIME = "application/vnd.mtbc.summary+json"
#: Mimetype of the fixture-weights marker that :func:`fixture_banner` displays.
FIXTURE_MIME = "application/vnd.mtbc.fixture-weights+json"
#: Allowed values of an extractor metadata's ``weights_kind``.
WEIGHTS_KINDS = ("pretrained", "fixture", "random", "none")  # "none": no weights (MFCC)
#: Shown whenever fixture or random weights produced the numbers on a page.
FIXTURE_TEXT = ("These numbers come from test-fixture/random weights: "
                "they are not model results.")

_PARAM_KEYS = ("run", "title", "collection", "demo", "extractors", "seed", "cache_dir",
               "notebooks", "params", "notebook_params")
#: Values every notebook may declare in its parameters cell.
SHARED_PARAMS = ("run", "collection", "extractors", "seed", "cache_dir")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PARAMETERS_TAG = "parameters"
_INJECTED_TAG = "injected-parameters"
_ERROR_TAG = "papermill-error-cell-tag"


class ParamsError(ValueError):
    """A parameter file (or dict) that does not follow the schema in this module's docstring."""


class NotebookFailed(RuntimeError):
    """A notebook raised during execution; the partial executed notebook is kept.

    Attributes: ``notebook`` (source path), ``cell_index`` (0-based index in the source
    notebook, ``None`` if unknown), ``cell_line`` (first source line), ``ename``, ``evalue``,
    ``executed`` (partial .ipynb), ``html`` (its HTML or ``None``), ``completed`` (the
    :class:`ReportInfo` of notebooks that finished before) and ``report`` (this one's).
    """

    def __init__(self, notebook: Path, *, cell_index: int | None, cell_line: str, ename: str,
                 evalue: str, executed: Path, html: Path | None = None):
        self.notebook, self.cell_index, self.cell_line = Path(notebook), cell_index, cell_line
        self.ename, self.evalue = ename, evalue
        self.executed, self.html = Path(executed), html
        self.completed: list[ReportInfo] = []
        self.report: ReportInfo | None = None
        super().__init__(self._message())

    def where(self) -> str:
        """``cell <i> (0-based) `<first line>`: <ename>: <evalue>`` (no paths)."""
        cell = (f"cell {self.cell_index} (0-based) `{self.cell_line}`"
                if self.cell_index is not None else "outside any cell")
        return f"{cell}: {self.ename}: {self.evalue}"

    def _message(self) -> str:
        keep = f"partial executed notebook kept at {self.executed}"
        if self.html is not None:
            keep += f" (HTML with code: {self.html})"
        return f"notebook {self.notebook.name} failed in {self.where()}; {keep}"

    def __str__(self) -> str:  # html path is filled in after construction
        return self._message()


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


# --------------------------------------------------------------------------- parameters

def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a run's YAML parameter file; return it with defaults filled in.

    Raises :class:`ParamsError` naming the file and the offending key.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameter file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return validate_params(raw, source=str(path))


def validate_params(raw: Any, *, source: str = "<params>") -> dict[str, Any]:
    """Validate a parameter mapping (see module docstring); return a normalised copy."""
    from mtbc.extractors import available_extractors

    def fail(msg: str) -> ParamsError:
        return ParamsError(f"{source}: {msg}")

    if not isinstance(raw, Mapping):
        raise fail(f"expected a mapping of keys ({', '.join(_PARAM_KEYS)}), "
                   f"got {type(raw).__name__}")
    unknown = [k for k in raw if k not in _PARAM_KEYS]
    if unknown:
        raise fail(f"unknown top-level key {unknown[0]!r}; allowed keys: "
                   f"{', '.join(_PARAM_KEYS)} (put notebook-specific values under 'params' "
                   f"or 'notebook_params')")
    out: dict[str, Any] = {}
    run = raw.get("run")
    if not isinstance(run, str) or not _RUN_NAME.match(run):
        raise fail(f"'run' must be a name of letters, digits, '.', '_' or '-' "
                   f"(it names reports/<run>/), got {run!r}")
    out["run"] = run
    title = raw.get("title")
    if title is not None and not isinstance(title, str):
        raise fail(f"'title' must be a string, got {title!r}")
    out["title"] = title
    collection = raw.get("collection", "demo")
    if not isinstance(collection, str) or not collection:
        raise fail(f"'collection' must be 'demo', a folder, a .csv or 'gtzan:<root>', "
                   f"got {collection!r}")
    out["collection"] = collection
    demo = raw.get("demo") or {}
    demo_keys = ("seed", "n_per_class", "clip_seconds", "out_dir")
    if not isinstance(demo, Mapping) or any(k not in demo_keys for k in demo):
        raise fail(f"'demo' must be a mapping with keys among {', '.join(demo_keys)} "
                   f"(the size of the rendered demo corpus), got {demo!r}")
    out["demo"] = dict(demo)

    extractors = raw.get("extractors", {})
    if isinstance(extractors, list):
        extractors = {name: {} for name in extractors}
    if not isinstance(extractors, Mapping):
        raise fail("'extractors' must map a label to options, e.g. {mert: {model: ...}}")
    out["extractors"] = {}
    for label, options in extractors.items():
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise fail(f"extractors.{label} must be a mapping of options, got {options!r}")
        name = options.get("name", label)
        if name not in available_extractors():
            raise fail(f"extractors.{label}: unknown extractor {name!r}; choose one of "
                       f"{', '.join(available_extractors())} (or set 'name:' for a "
                       f"custom label)")
        out["extractors"][str(label)] = {
            "name": name, **{k: v for k, v in options.items() if k != "name"}}

    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(f"'seed' must be an integer, got {seed!r}")
    out["seed"] = seed
    cache_dir = raw.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise fail(f"'cache_dir' must be a path string or null, got {cache_dir!r}")
    out["cache_dir"] = cache_dir

    notebooks = raw.get("notebooks")
    if notebooks is not None:
        if not (isinstance(notebooks, list) and all(isinstance(n, str) for n in notebooks)):
            raise fail(f"'notebooks' must be a list of notebook names, got {notebooks!r}")
        notebooks = [n.removesuffix(".ipynb") for n in notebooks]
    out["notebooks"] = notebooks

    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise fail(f"'params' must be a mapping, got {params!r}")
    clash = [k for k in params if k in SHARED_PARAMS]
    if clash:
        raise fail(f"params.{clash[0]} repeats a top-level key; set it at the top level")
    out["params"] = dict(params)
    per_nb = raw.get("notebook_params") or {}
    if not isinstance(per_nb, Mapping) or not all(
            isinstance(v, Mapping) or v is None for v in per_nb.values()):
        raise fail("'notebook_params' must map a notebook name to a mapping of values")
    out["notebook_params"] = {str(k).removesuffix(".ipynb"): dict(v or {})
                              for k, v in per_nb.items()}
    return out


def find_notebooks(notebooks_dir: str | os.PathLike, names: Sequence[str] | None = None
                   ) -> list[Path]:
    """The notebooks of a run: ``names`` (without ``.ipynb``) in that order, else every
    ``[0-9]*.ipynb`` in ``notebooks_dir``, sorted."""
    notebooks_dir = Path(notebooks_dir)
    if names is None:
        found = sorted(notebooks_dir.glob("[0-9]*.ipynb"))
        if not found:
            raise FileNotFoundError(f"no numbered notebooks ([0-9]*.ipynb) in {notebooks_dir}")
        return found
    paths = [notebooks_dir / f"{n.removesuffix('.ipynb')}.ipynb" for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) {', '.join(missing)} not found in "
                                f"{notebooks_dir}; fix 'notebooks:' in the parameter file")
    return paths


def notebook_values(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Every value a run offers to notebook ``name`` (before filtering by its declarations)."""
    values = {k: params.get(k) for k in SHARED_PARAMS if k in params}
    values.update(params.get("params") or {})
    values.update((params.get("notebook_params") or {}).get(name) or {})
    return values


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One assignment of a notebook's ``parameters`` cell."""

    name: str
    inferred_type_name: str
    default: str
    help: str


def declared_parameters(notebook: str | os.PathLike | Any) -> dict[str, Parameter]:
    """Names assigned at top level in the notebook's ``parameters`` cell -> :class:`Parameter`
    (``name``, ``inferred_type_name`` (the annotation), ``default`` (source), ``help`` (the
    trailing comment)). Parsed with :mod:`ast`, so any annotation (``str | None``) works.
    Empty without such a cell."""
    import ast

    import nbformat

    nb = notebook if hasattr(notebook, "cells") else nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if _PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    source = cells[0].source
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, annotation = [node.target], ast.get_source_segment(source, node.annotation)
        elif isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            annotation = "None"
        else:
            continue
        value = ast.get_source_segment(source, node.value) if node.value is not None else ""
        line = lines[node.end_lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line[node.end_col_offset:] else ""
        for t in targets:
            out[t.id] = Parameter(t.id, annotation or "None", value or "", comment)
    return out


# --------------------------------------------------------------------------- in notebooks

def record_summary(text: str) -> None:
    """Record the notebook's one-line summary for the index page (and show it here).

    Call from a notebook cell; newlines are folded into spaces. The last call wins.
    """
    line = " ".join(str(text).split())
    bundle = {SUMMARY_MIME: {"summary": line}, "text/markdown": f"**Summary.** {line}",
              "text/plain": f"Summary. {line}"}
    _display(bundle)


def weights_kinds(weights_info: Any) -> dict[str, str]:
    """Label -> ``weights_kind`` from extractor metadata.

    ``weights_info``: a mapping label -> metadata dict (or Extractor), a list of metadata
    dicts / Extractors (labelled by their ``extractor`` key), or one metadata dict.
    Metadata without ``weights_kind`` gives ``"unknown"``; a value outside
    :data:`WEIGHTS_KINDS` raises ``ValueError``.
    """
    def meta(obj: Any) -> Mapping[str, Any]:
        return obj.metadata() if callable(getattr(obj, "metadata", None)) else obj

    if isinstance(weights_info, Mapping) and (
            "weights_kind" in weights_info or "extractor" in weights_info):
        items = [(weights_info.get("extractor", "extractor"), weights_info)]
    elif isinstance(weights_info, Mapping):
        items = list(weights_info.items())
    else:
        items = [(meta(m).get("extractor", f"extractor {i}"), m)
                 for i, m in enumerate(weights_info)]
    kinds = {}
    for label, m in items:
        kind = meta(m).get("weights_kind", "unknown")
        if kind not in (*WEIGHTS_KINDS, "unknown"):
            raise ValueError(f"{label}: weights_kind {kind!r} is not one of "
                             f"{', '.join(WEIGHTS_KINDS)}")
        kinds[str(label)] = kind
    return kinds


class FixtureBanner:
    """A displayable warning that fixture/random weights made the numbers on the page."""

    def __init__(self, kinds: Mapping[str, str]):
        self.kinds = dict(kinds)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        which = ", ".join(f"{k}: {v}" for k, v in self.kinds.items())
        html_text = (f'<div class="mtbc-fixture-banner" role="alert" style="border:2px solid '
                     f'#b45309;background:#fef3c7;color:#78350f;padding:0.8em 1em;'
                     f'border-radius:6px;font-weight:600">&#9888; {html.escape(FIXTURE_TEXT)}'
                     f'<div style="font-weight:400;font-size:0.9em">({html.escape(which)})'
                     f'</div></div>')
        return {FIXTURE_MIME: {"weights": self.kinds}, "text/html": html_text,
                "text/plain": f"WARNING: {FIXTURE_TEXT} ({which})"}

    def __repr__(self) -> str:
        return f"FixtureBanner({self.kinds!r})"


def fixture_banner(weights_info: Any) -> FixtureBanner | None:
    """A banner to display when any extractor's weights are ``"fixture"`` or ``"random"``.

    ``weights_info`` as in :func:`weights_kinds`. Returns ``None`` (displays nothing) when
    every extractor is pretrained or unknown. Put it as the last line of an early cell.
    """
    flagged = {k: v for k, v in weights_kinds(weights_info).items()
               if v in ("fixture", "random")}
    return FixtureBanner(flagged) if flagged else None


def _display(bundle: dict[str, Any]) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        print(bundle["text/plain"])
        return
    if get_ipython() is None:
        print(bundle["text/plain"])
    else:
        display(bundle, raw=True)


# --------------------------------------------------------------------------- execution

@functools.cache
def _this_python_kernel_manager() -> type:
    """An AsyncKernelManager whose kernel is this interpreter, whatever kernelspecs exist."""
    import zmq
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec
    from traitlets import default

    import mtbc

    package_parent = str(Path(mtbc.__file__).resolve().parent.parent)

    class ThisPythonKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                spec = get_kernel_dict()  # argv[0] is sys.executable
                pythonpath = os.pathsep.join(
                    p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)
                spec["env"] = {"PYTHONPATH": pythonpath,
                               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
                spec["display_name"] = f"mtbc ({sys.executable})"
                self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **spec)
            return self._kernel_spec

        @default("transport_encryption")
        def _default_encryption(self) -> str:  # silences ipykernel's plain-TCP warning
            return "auto" if zmq.has("curve") else "disabled"

    return ThisPythonKernelManager


def execute_notebooks(notebooks: Sequence[str | os.PathLike], *, params: Mapping[str, Any],
                      out_dir: str | os.PathLike, kernel_name: str | None = None,
                      include_input: bool = False, cwd: str | os.PathLike | None = None,
                      timeout: float | None = None, progress: bool = True) -> list[ReportInfo]:
    """Execute ``notebooks`` in order with papermill and convert each to HTML.

    Parameters
    ----------
    notebooks : source .ipynb paths; outputs are ``out_dir/<stem>.ipynb`` and ``.html``.
    params : validated parameters (:func:`validate_params`); each notebook gets the values
        its ``parameters`` cell declares (see :func:`notebook_values`).
    kernel_name : None runs this interpreter (recommended); otherwise an installed kernelspec.
    include_input : keep code cells in the HTML (default: hidden, like ``--no-input``).
    cwd : working directory of the kernel (default ``mtbc.config.project_root()``).
    timeout : seconds allowed per cell (None: no limit).

    Raises :class:`NotebookFailed` at the first failing notebook, after writing its partial
    executed notebook and an HTML version *with* code for inspection.
    """
    import papermill as pm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in notebooks]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"notebook {p} not found")
    names = [p.stem for p in paths]
    unknown_targets = sorted(set(params.get("notebook_params") or {}) - set(names))
    if unknown_targets:
        raise ParamsError(f"notebook_params names {', '.join(unknown_targets)}, which is not "
                          f"among the notebooks of this run ({', '.join(names)})")
    declared = {p.stem: declared_parameters(p) for p in paths}
    for key in params.get("params") or {}:
        if not any(key in d for d in declared.values()):
            warnings.warn(f"params.{key} is declared by no notebook's parameters cell "
                          f"({', '.join(names)}); it is ignored", UserWarning, stacklevel=2)

    engine_kwargs: dict[str, Any] = {}
    if kernel_name is None:
        kernel_name = "python3"
        engine_kwargs["kernel_manager_class"] = _this_python_kernel_manager()
    cwd = Path(cwd) if cwd is not None else config.project_root()
    done: list[ReportInfo] = []
    for i, path in enumerate(paths):
        name = path.stem
        nb_params = params.get("notebook_params", {}).get(name, {})
        for key in nb_params:
            if key not in declared[name]:
                warnings.warn(f"notebook_params.{name}.{key}: {path.name} declares no such "
                              f"parameter (declared: {', '.join(declared[name]) or 'none'}); "
                              f"it is ignored", UserWarning, stacklevel=2)
        values = {k: v for k, v in notebook_values(params, name).items() if k in declared[name]}
        executed, html_path = out_dir / f"{name}.ipynb", out_dir / f"{name}.html"
        if progress:
            print(f"[{i + 1}/{len(paths)}] {path.name} -> {executed}", file=sys.stderr)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(path), str(executed), parameters=values, kernel_name=kernel_name,
                language="python", progress_bar=progress, cwd=str(cwd),
                execution_timeout=timeout, **engine_kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised as NotebookFailed with context
            failure = _failure(path, executed, exc)
            if executed.is_file():
                try:
                    notebook_to_html(executed, html_path, include_input=True,
                                     title=f"{params.get('run', '')} · {name} (failed)")
                    failure.html = html_path
                except Exception:  # noqa: BLE001 - the .ipynb is still there
                    pass
            failure.completed = done
            failure.report = ReportInfo(name, path, executed, failure.html,
                                        seconds=time.perf_counter() - start,
                                        status="failed", error=failure.where())
            raise failure from exc
        seconds = time.perf_counter() - start
        notebook_to_html(executed, html_path, include_input=include_input,
                         title=f"{params.get('run', '')} · {name}")
        summary, fixtures = read_back(executed)
        done.append(ReportInfo(name, path, executed, html_path, summary, fixtures, seconds))
    return done


def _failure(path: Path, executed: Path, exc: Exception) -> NotebookFailed:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # papermill's index counts its injected-parameters cell; map back to the source.
        index = exc.cell_index
        try:
            import nbformat
            nb = nbformat.read(executed, as_version=4)
            tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
            tags = [t for t in tags if _ERROR_TAG not in t]  # papermill's error notes
            index -= sum(_INJECTED_TAG in t for t in tags[:exc.cell_index])
        except Exception:  # noqa: BLE001 - keep papermill's index
            pass
        lines = [ln for ln in (exc.source or "").splitlines() if ln.strip()]
        first = lines[0].strip() if lines else ""
        if len(first) > 80:
            first = first[:77] + "..."
        return NotebookFailed(path, cell_index=index, cell_line=first, ename=exc.ename,
                              evalue=exc.evalue, executed=executed)
    return NotebookFailed(path, cell_index=None, cell_line="", ename=type(exc).__name__,
                          evalue=str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                          executed=executed)


def read_back(executed: str | os.PathLike) -> tuple[str | None, dict[str, str]]:
    """``(summary, fixture_weights)`` recorded in an executed notebook's outputs."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    summary, fixtures = None, {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if SUMMARY_MIME in data:
                summary = _as_json(data[SUMMARY_MIME]).get("summary")
            if FIXTURE_MIME in data:
                fixtures.update(_as_json(data[FIXTURE_MIME]).get("weights", {}))
    return summary, fixtures


def _as_json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


# --------------------------------------------------------------------------- HTML

_REPORT_CSS = """
body.jp-Notebook { background: #f6f7f9; padding: 0; margin: 0; }
body.jp-Notebook main { max-width: 58rem; margin: 0 auto; padding: 1.5rem 2.5rem 3rem;
  background: #fff; box-shadow: 0 0 0 1px #e3e6ea; min-height: 100vh; box-sizing: border-box; }
.jp-RenderedHTMLCommon { font-size: 15px; line-height: 1.6;
  font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
.jp-RenderedHTMLCommon table { font-size: 13px; border-collapse: collapse; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { padding: 0.3em 0.7em; }
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
table.info { border-collapse: collapse; font-size: 0.9rem; }
table.info th { text-align: left; color: #57606a; font-weight: 500; padding: 0.25rem 1.2rem
  0.25rem 0; vertical-align: top; white-space: nowrap; }
table.info td { padding: 0.25rem 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  font-size: 0.85rem; word-break: break-all; }
details { margin-top: 1rem; }
details summary { cursor: pointer; color: #57606a; }
details pre { background: #f6f8fa; border: 1px solid #e3e6ea; border-radius: 6px;
  padding: 0.8rem; font-size: 0.82rem; overflow-x: auto; }
"""

_INFO_LABELS = {"run": "Run", "date": "Date", "params_file": "Parameter file",
                "mtbc_version": "mtbc version", "git_commit": "Git commit",
                "python": "Python", "seconds": "Total time (s)"}


def write_index(out_dir: str | os.PathLike, reports: Iterable[ReportInfo], *, title: str,
                run_info: Mapping[str, Any]) -> Path:
    """Write ``out_dir/index.html``: every report with its summary, plus run provenance.

    ``run_info``: shown as a table (``run``, ``date``, ``params_file``, ``mtbc_version`` and any
    other scalar); a ``params`` mapping is shown as YAML under a fold; a truthy
    ``fixture_weights`` (label -> kind) forces the fixture banner, which is also shown when
    any report displayed one. Self-contained: inline CSS, no scripts.
    """
    import yaml

    out_dir = Path(out_dir)
    reports = list(reports)
    esc = html.escape
    fixtures: dict[str, str] = dict(run_info.get("fixture_weights") or {})
    for r in reports:
        fixtures.update(r.fixture_weights)
    items = []
    for r in reports:
        href = esc(os.path.relpath(r.html, out_dir)) if r.html else None
        link = (f'<a href="{href}">{esc(r.name)}</a>' if href else f"<strong>{esc(r.name)}</strong>")
        if r.summary:
            summary = f'<div class="summary">{esc(r.summary)}</div>'
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
    page = f"""<!DOCTYPE html>
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
<p class="sub">{sub}</p>
{banner}
<h2>Reports</h2>
<ol class="reports">
{chr(10).join(items) or '<li class="nosummary">No reports.</li>'}
</ol>
<h2>Run</h2>
<table class="info">
{chr(10).join(rows)}
</table>
{params_block}
</main>
</body>
</html>
"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- a whole run

def run_reports(params: str | os.PathLike | Mapping[str, Any], *,
                notebooks_dir: str | os.PathLike = Path("notebooks"),
                reports_root: str | os.PathLike | None = None, kernel_name: str | None = None,
                include_input: bool = False, cwd: str | os.PathLike | None = None,
                timeout: float | None = None, run_info: Mapping[str, Any] | None = None,
                progress: bool = True) -> Path:
    """Execute a run's notebooks into ``reports_root/<run>/`` and write its index page.

    ``params``: a YAML path (:func:`load_params`) or a mapping (:func:`validate_params`).
    ``reports_root`` defaults to :func:`mtbc.config.reports_dir`. ``run_info`` adds rows to
    the index (e.g. ``fixture_weights`` from the extraction step). Writes
    ``<run>/params.yaml`` (the validated parameters). On a failing notebook the index is
    still written (marking the failure) before :class:`NotebookFailed` propagates.

    Returns the path of ``index.html``.
    """
    import yaml

    if isinstance(params, Mapping):
        p, params_file = validate_params(params, source="<params dict>"), "(given as a dict)"
    else:
        p, params_file = load_params(params), str(params)
    out_dir = Path(reports_root if reports_root is not None else config.reports_dir()) / p["run"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "params.yaml").write_text(
        yaml.safe_dump(p, sort_keys=False, allow_unicode=True), encoding="utf-8")
    notebooks = find_notebooks(notebooks_dir, p["notebooks"])
    info: dict[str, Any] = {
        "run": p["run"],
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "params_file": params_file, "mtbc_version": __version__}
    commit = _git_commit(Path(notebooks_dir))
    if commit:
        info["git_commit"] = commit
    info["python"] = sys.version.split()[0]
    info.update(run_info or {})
    info["params"] = p
    title = p["title"] or f"mtbc reports: {p['run']}"
    start = time.perf_counter()
    try:
        reports = execute_notebooks(notebooks, params=p, out_dir=out_dir,
                                    kernel_name=kernel_name, include_input=include_input,
                                    cwd=cwd, timeout=timeout, progress=progress)
    except NotebookFailed as exc:
        info["seconds"] = f"{time.perf_counter() - start:.1f}"
        write_index(out_dir, [*exc.completed, exc.report], title=title, run_info=info)
        raise
    info["seconds"] = f"{time.perf_counter() - start:.1f}"
    return write_index(out_dir, reports, title=title, run_info=info)


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(where.resolve() if where.exists() else "."),
                              "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# --------------------------------------------------------------------------- hygiene

def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs, execution counts and execution metadata from a notebook in place.

    Returns True when the file changed.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "ExecuteTime"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def check_notebook(path: str | os.PathLike) -> list[str]:
    """Problems that keep a notebook from being committed (empty list: clean).

    Checks: valid nbformat, no outputs, no execution counts, exactly one cell tagged
    ``parameters``. Fix the first two with :func:`strip_outputs`.
    """
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - any read/validation error is the finding
        return [f"{path}: not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}"]
    problems = []
    with_outputs = [i for i, c in enumerate(nb.cells) if c.get("outputs")]
    counted = [i for i, c in enumerate(nb.cells) if c.get("execution_count") is not None]
    tagged = [i for i, c in enumerate(nb.cells)
              if _PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if with_outputs:
        problems.append(f"{path}: cells {with_outputs} have outputs "
                        f"(run `python -m mtbc.report strip {path}`)")
    if counted:
        problems.append(f"{path}: cells {counted} have execution counts "
                        f"(run `python -m mtbc.report strip {path}`)")
    if len(tagged) != 1:
        problems.append(f"{path}: {len(tagged)} cells tagged 'parameters' (cells {tagged}); "
                        f"papermill needs exactly one")
    return problems


def check_notebooks(paths: Iterable[str | os.PathLike]) -> list[str]:
    """:func:`check_notebook` over ``paths`` (folders expand to their ``*.ipynb``)."""
    problems: list[str] = []
    for p in paths:
        p = Path(p)
        for nb_path in sorted(p.glob("*.ipynb")) if p.is_dir() else [p]:
            problems += check_notebook(nb_path)
    return problems


# --------------------------------------------------------------------------- looking

def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, *,
               width: int = 1280, height: int = 900, timeout: float = 60.0) -> Path:
    """Render ``html_path`` in headless Chromium to ``png_path`` (offline, sandbox off).

    Raises ``FileNotFoundError`` when no Chromium is installed (Debian: ``apt-get install
    chromium``) and ``RuntimeError`` when it writes no image.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium found on PATH; install it (Debian: "
                                "`apt-get install chromium`) to take screenshots")
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mtbc-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png_path}", Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    return png_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtbc.report check|strip PATH...``: exit 1 when ``check`` finds problems."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mtbc.report",
                                     description="Keep committed notebooks clean.")
    parser.add_argument("action", choices=["check", "strip"])
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    args = parser.parse_args(argv)
    if args.action == "strip":
        for p in args.paths:
            for nb_path in sorted(Path(p).glob("*.ipynb")) if Path(p).is_dir() else [Path(p)]:
                if strip_outputs(nb_path):
                    print(f"stripped {nb_path}")
        return 0
    problems = check_notebooks(args.paths)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
