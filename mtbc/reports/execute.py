"""Numbered notebooks -> executed notebooks -> HTML reports + an index page.

A run takes one YAML parameter file (``params/<run>.yaml``, schema in ``docs/params.md``),
executes every numbered notebook in ``notebooks/`` with papermill (values injected into the
cell tagged ``parameters``; a notebook receives only the names it declares), converts each
executed notebook to HTML (:mod:`mtbc.reports.html`) and writes ``reports/<run>/index.html``.

Kernel: by default notebooks run in a kernel of the interpreter running this code
(``sys.executable``, no installed kernelspec needed), with this ``mtbc`` first on
``PYTHONPATH`` and the inline matplotlib backend.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbc import __version__, config
from mtbc.files import current_umask, storage_error
from mtbc.reports.audit import PREDICTIONS, RESULTS
from mtbc.reports.display import read_back
from mtbc.reports.folder import REPORTS_HINT, check_folder, remove_stale, swap_in
from mtbc.reports.html import IndexPage, ReportInfo, notebook_to_html, write_index
from mtbc.reports.params import (
    ParamsError,
    declared_parameters,
    find_notebooks,
    load_params,
    notebook_values,
    validate_params,
)
from mtbc.reports.record import RunRecord, write_record

_INJECTED_TAG = "injected-parameters"
_ERROR_TAG = "papermill-error-cell-tag"


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
        rec = read_back(executed)
        done.append(ReportInfo(name, path, executed, html_path, rec.summary,
                               rec.fixture_weights, seconds, answer=rec.answer))
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


@dataclass(frozen=True)
class ReportOptions:
    """How :func:`run_reports` runs the notebooks, and what the index adds.

    Attributes
    ----------
    kernel_name : str or None
        ``None`` runs this interpreter (recommended); otherwise an installed kernelspec.
    include_input : bool
        Keep code cells in the HTML (default: hidden, like ``--no-input``).
    timeout : float or None
        Seconds allowed per cell (``None``: no limit).
    run_info : mapping or None
        Rows added to the index's run table.
    """

    kernel_name: str | None = None
    include_input: bool = False
    timeout: float | None = None
    run_info: Mapping[str, Any] | None = None


def run_reports(params: str | os.PathLike | Mapping[str, Any], *,
                notebooks_dir: str | os.PathLike = Path("notebooks"),
                reports_root: str | os.PathLike | None = None,
                cwd: str | os.PathLike | None = None, record: RunRecord | None = None,
                started: float | None = None, progress: bool = True,
                options: ReportOptions | None = None) -> Path:
    """Execute a run's notebooks into ``reports_root/<run>/`` and write its index page.

    ``params``: a YAML path (:func:`load_params`) or a mapping (:func:`validate_params`).
    ``reports_root`` defaults to :func:`mtbc.config.reports_dir`. ``record``: what the run
    did before the notebooks (:class:`~mtbc.reports.record.RunRecord`); it is written to
    ``<run>/run.json`` and its path given to every notebook that declares ``run_record``.
    ``cwd``: working directory of the kernels (default ``mtbc.config.project_root()``).
    ``options`` (:class:`ReportOptions`): the kernel, code cells in the HTML, a per-cell
    timeout and rows added to the index. ``started`` (a ``time.perf_counter()`` value) is when
    the run began, so the index shows the run's wall time (default: now). Writes
    ``<run>/params.yaml`` (the validated parameters). On a failing notebook the index is
    still written (marking the failure) before :class:`NotebookFailed` propagates.

    Everything is written into a fresh hidden folder beside ``<run>/`` and swapped in when
    the run ends: after a failing notebook the folder holds this run's pages only, the
    failure marked on the index; after any other error (or a kill) the previous run's
    folder is left untouched and the partial one removed (at the latest by the next run).
    Files in ``<run>/`` that mtbc did not write are carried over into the new folder; one
    whose name the run writes is refused before any notebook runs
    (:mod:`mtbc.reports.folder`).

    Returns the path of ``index.html``.
    """
    start = time.perf_counter() if started is None else started
    if isinstance(params, Mapping):
        p, params_file = validate_params(params, source="<params dict>"), "(given as a dict)"
    else:
        p, params_file = load_params(params), str(params)
    final_dir = Path(reports_root if reports_root is not None else config.reports_dir()) / p["run"]
    notebooks = find_notebooks(notebooks_dir, p["notebooks"])
    check_folder(final_dir, notebooks)  # writable, and no file of the user's in the way
    remove_stale(final_dir)
    # Everything is written into a fresh folder, swapped in when the run ends: a failed or
    # killed run never leaves old pages beside new ones.
    try:
        out_dir = Path(tempfile.mkdtemp(prefix=f".{p['run']}.new-", dir=final_dir.parent))
    except OSError as exc:
        fault = storage_error(exc, final_dir.parent, creating=True)
        raise (fault.with_hint(REPORTS_HINT) if fault else exc) from None
    os.chmod(out_dir, 0o777 & ~current_umask())
    try:
        run = _Run(p, params_file, tuple(notebooks), Path(notebooks_dir),
                   record if record is not None else RunRecord(), start)
        return _run_into(run, out_dir, final_dir, cwd=cwd, progress=progress,
                         options=options if options is not None else ReportOptions())
    except OSError as exc:  # a full disk or a folder turned read-only while writing
        fault = storage_error(exc, final_dir.parent)
        if fault is None:
            raise
        raise fault.with_hint(REPORTS_HINT) from None
    finally:
        if out_dir.exists():
            shutil.rmtree(out_dir, ignore_errors=True)


def _moved(path: Path | None, out_dir: Path, final_dir: Path) -> Path | None:
    if path is None:
        return None
    try:
        return final_dir / Path(path).relative_to(out_dir)
    except ValueError:
        return path


@dataclass(frozen=True)
class _Run:
    """What one run executes: validated params, where they came from, its notebooks, the
    record of what ran before them and when the run began (``time.perf_counter()``)."""

    params: dict[str, Any]
    params_file: str
    notebooks: tuple[Path, ...]
    notebooks_dir: Path
    record: RunRecord
    start: float


def _run_into(run: _Run, out_dir: Path, final_dir: Path, *, cwd, progress: bool,
              options: ReportOptions) -> Path:
    import yaml

    p, params_file, record, start = run.params, run.params_file, run.record, run.start

    (out_dir / "params.yaml").write_text(
        yaml.safe_dump(p, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if record.params_file:
        params_file = record.params_file
    p_run = {**p, "run_record": str(write_record(record, out_dir).resolve())}
    info: dict[str, Any] = {
        "run": p["run"],
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "params_file": params_file, "mtbc_version": __version__}
    commit = _git_commit(run.notebooks_dir)
    if commit:
        info["git_commit"] = commit
    info["python"] = sys.version.split()[0]
    if record.collection:
        info.update({"collection": record.collection, "tracks": record.tracks,
                     "skipped": record.skipped, "seed": record.seed})
    for e in record.extraction:
        info[f"model {e.label}"] = e.weights
    if record.fixture_weights:
        info["fixture_weights"] = record.fixture_weights
    info.update(options.run_info or {})
    info["params"] = p
    title = p["title"] or f"mtbc reports: {p['run']}"
    page = IndexPage(title=title, run_info=info, not_run=record.not_run)
    try:
        reports = execute_notebooks(run.notebooks, params=p_run, out_dir=out_dir,
                                    kernel_name=options.kernel_name,
                                    include_input=options.include_input, cwd=cwd,
                                    timeout=options.timeout, progress=progress)
    except NotebookFailed as exc:
        info["seconds"] = f"{time.perf_counter() - start:.1f}"
        info["status"] = f"FAILED: {exc.notebook.stem} ({exc.where()})"
        page.links = audit_links(out_dir)
        write_index(out_dir, [*exc.completed, exc.report], page=page)
        swap_in(out_dir, final_dir)  # this run's pages only, the failure marked
        exc.executed = _moved(exc.executed, out_dir, final_dir)
        exc.html = _moved(exc.html, out_dir, final_dir)
        for r in [*exc.completed, exc.report]:
            if r is not None:
                r.executed = _moved(r.executed, out_dir, final_dir)
                r.html = _moved(r.html, out_dir, final_dir)
        raise
    info["seconds"] = f"{time.perf_counter() - start:.1f}"
    info["status"] = "all notebooks ran"
    page.links = audit_links(out_dir)
    write_index(out_dir, reports, page=page)
    swap_in(out_dir, final_dir)
    return final_dir / "index.html"


def audit_links(out_dir: Path) -> dict[str, str]:
    """The audit-trail files the notebooks wrote into ``out_dir`` (label -> file name)."""
    return {f"{name} ({what})": name for name, what in
            ((RESULTS, "every figure with CI and n"), (PREDICTIONS, "every prediction"))
            if (out_dir / name).is_file()}


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(where.resolve() if where.exists() else "."),
                              "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None
