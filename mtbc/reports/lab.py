"""The first call of every notebook (:func:`start_notebook`): tables show their text whole,
and a notebook opened by hand (JupyterLab) continues the latest ``mtbc run``.

Under ``mtbc run`` papermill injects the run's values after each notebook's ``parameters``
cell, ``run_record`` among them. Opened by hand nothing is injected: the cell after the
parameters calls :func:`start_notebook`, whose :func:`lab_parameters` then

- moves the kernel to the project folder (:func:`mtbc.config.project_root`), where ``mtbc
  run`` starts its kernels, so relative paths in a run's parameters mean the same;
- takes the parameters of the run named by the notebook's ``lab_run`` parameter (``"latest"``:
  the newest ``reports/<run>/params.yaml``; ``None``: keep the parameters cell's values), the
  values that run gave this very notebook (:func:`mtbc.reports.params.notebook_values`);
- shows which run the notebook continues, or that none was found (the cell's defaults: the
  demo corpus).

``run_record`` stays ``None``: a notebook run by hand never writes into a published run's
folder (``results.csv``, ``compute.json``); it recomputes the run's numbers from the same
parameters and the same cache (04 saves the same probes again under the run's name).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbc import config
from mtbc.reports.display import md_text
from mtbc.reports.params import load_params, notebook_values

#: The notebook parameter naming which run a notebook opened by hand continues.
LAB_RUN = "lab_run"
#: Never taken from a run: the record of *that* run, and the choice itself.
_NOT_CONTINUED = ("run_record", LAB_RUN)


@dataclass(frozen=True)
class Continuation:
    """What :func:`lab_parameters` did: the ``run`` continued (``None``: the parameters cell's
    own values), its ``folder``, when its parameters were written (``written``, local time),
    the ``values`` set in the notebook, the ones that replaced a different value of the
    parameters cell (``replaced``: name -> (cell value, run value)) and the project folder
    the kernel now works in (``project``)."""

    run: str | None
    project: Path
    folder: Path | None = None
    written: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    replaced: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        """One Markdown paragraph for the notebook (user values escaped)."""
        if self.run is None:
            return (f"**Opened by hand, no run continued**: {md_text(self.reason)}. The kernel "
                    f"works in the project folder {md_text(self.project)}.")
        what = [f"{key} {md_text(', '.join(value) if key == 'models' else value)}"
                for key, value in (("collection", self.values.get("collection")),
                                   ("models", self.values.get("extractors")),
                                   ("seed", self.values.get("seed"))) if value is not None]
        text = (f"**Opened by hand: this notebook continues run {md_text(self.run)}** "
                f"(its parameters, written {md_text(self.written)}: "
                f"{md_text(self.folder / 'params.yaml')})"
                + (f": {', '.join(what)}." if what else "."))
        if self.replaced:
            changed = "; ".join(f"{md_text(k)} {md_text(_short(a))} → {md_text(_short(b))}"
                                for k, (a, b) in self.replaced.items())
            text += f" Values of the parameters cell replaced by the run's: {changed}."
        return text + (f" The kernel works in the project folder {md_text(self.project)}. "
                       f"Set `{LAB_RUN} = None` in the parameters cell to use that cell's "
                       f"values instead, or `{LAB_RUN} = \"<run>\"` to continue another run.")

    def _repr_markdown_(self) -> str:
        return self.describe()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def injected(namespace: MutableMapping[str, Any]) -> bool:
    """Whether papermill injected parameters into this kernel: ``mtbc run`` always gives
    ``run_record``; papermill run directly leaves its ``# Parameters`` cell in the history."""
    if namespace.get("run_record") is not None:
        return True
    history = namespace.get("_ih") or namespace.get("In") or []
    return any(isinstance(src, str) and src.lstrip().startswith("# Parameters")
               for src in history)


def run_folders(reports: str | os.PathLike | None = None) -> list[Path]:
    """The runs under ``reports`` (default :func:`mtbc.config.reports_dir`): every folder
    holding a ``params.yaml`` written by ``mtbc run``, newest first."""
    root = Path(reports) if reports is not None else config.reports_dir()
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir()
             if d.is_dir() and not d.name.startswith(".") and (d / "params.yaml").is_file()]
    return sorted(found, key=lambda d: (d / "params.yaml").stat().st_mtime_ns, reverse=True)


def lab_parameters(namespace: MutableMapping[str, Any], notebook: str, *,
                   reports: str | os.PathLike | None = None) -> Continuation | None:
    """Give a notebook opened by hand the parameters of a run (see the module docstring).

    Call in the cell after the ``parameters`` cell, with the notebook's globals. Does nothing
    (returns ``None``) when papermill injected parameters (:func:`injected`).

    Parameters
    ----------
    namespace : the notebook's ``globals()``; its parameters are replaced by the run's values
        for this notebook (names the parameters cell declares only).
    notebook : the notebook's name without ``.ipynb`` (picks the run's ``notebook_params``).
    reports : folder of the runs (default :func:`mtbc.config.reports_dir`).

    Returns
    -------
    Continuation or None
        Displays as one Markdown paragraph saying which run the notebook continues.

    Raises
    ------
    ValueError
        ``lab_run`` names no run under ``reports``.

    Examples
    --------
    >>> lab_parameters(globals(), "04_train_classifiers")  # doctest: +SKIP
    """
    if injected(namespace):
        return None
    project = config.project_root()
    os.chdir(project)  # where `mtbc run` starts its kernels: relative paths mean the same
    choice = namespace.get(LAB_RUN, "latest")
    root = Path(reports) if reports is not None else config.reports_dir()
    runs = run_folders(root)
    if choice is None:
        return Continuation(None, project, reason=f"{LAB_RUN} is None, so the parameters "
                            "cell's own values are used")
    if choice == "latest":
        if not runs:
            return Continuation(None, project, reason=(
                f"no run of mtbc run found in {root}, so the parameters cell's defaults are "
                "used (the demo corpus); run make run first to continue a run here"))
        folder = runs[0]
    else:
        folder = root / str(choice)
        if folder not in runs:
            names = ", ".join(d.name for d in runs) or "none"
            raise ValueError(f"{LAB_RUN}={choice!r}: no run of that name in {root} (runs "
                             f"there: {names}); set {LAB_RUN} to one of them, 'latest' or None")
    params = load_params(folder / "params.yaml")
    offered = notebook_values(params, notebook)
    values = {k: v for k, v in offered.items()
              if k in namespace and k not in _NOT_CONTINUED and not k.startswith("_")}
    replaced = {k: (namespace[k], v) for k, v in values.items() if namespace[k] != v}
    namespace.update(values)
    written = _dt.datetime.fromtimestamp((folder / "params.yaml").stat().st_mtime)
    return Continuation(folder.name, project, folder=folder,
                        written=written.strftime("%Y-%m-%d %H:%M"), values=values,
                        replaced=replaced)


def start_notebook(namespace: MutableMapping[str, Any], notebook: str) -> Continuation | None:
    """The cell after a notebook's ``parameters`` cell: table cells show their text whole
    (pandas ``display.max_colwidth`` off: a claim or a path is never cut with "..."; the
    report pages wrap it between words), then :func:`lab_parameters`.

    Examples
    --------
    >>> start_notebook(globals(), "04_train_classifiers")  # doctest: +SKIP
    """
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    return lab_parameters(namespace, notebook)
