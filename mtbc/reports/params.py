"""The run parameter file: schema, validation, and what each notebook declares.

The schema is documented in ``docs/params.md``. :func:`load_params` reads a YAML file and
:func:`validate_params` checks a mapping; both raise :class:`ParamsError` naming the file and
the offending key. :func:`declared_parameters` reads a notebook's ``parameters`` cell.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_PARAM_KEYS = ("run", "title", "collection", "demo", "extractors", "seed", "cache_dir",
               "strict", "notebooks", "params", "notebook_params", "slurm")
#: Values every notebook may declare in its parameters cell.
SHARED_PARAMS = ("run", "collection", "extractors", "seed", "cache_dir", "run_record")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: The tag of the cell papermill injects values after.
PARAMETERS_TAG = "parameters"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


class ParamsError(ValueError):
    """A parameter file (or dict) that does not follow the schema in this module's docstring."""


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a run's YAML parameter file; return it with defaults filled in.

    Raises :class:`ParamsError` naming the file and the offending key.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameter file not found; give an existing YAML file "
                          f"(e.g. params/demo.yaml)") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a folder; give a YAML parameter file") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a text file (not UTF-8); give a YAML parameter "
                          f"file") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML{at}: {problem}; fix the syntax") from None
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
    for key, ok, what in (
            ("seed", lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
            ("n_per_class", lambda v: _is_int(v) and v >= 1, "a positive integer"),
            ("clip_seconds", lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
            ("out_dir", lambda v: isinstance(v, str) and v, "a folder path")):
        if key in demo and not ok(demo[key]):
            raise fail(f"demo.{key} must be {what}, got {demo[key]!r}")
    out["demo"] = dict(demo)

    extractors = raw.get("extractors", {})
    if isinstance(extractors, list):
        extractors = {name: {} for name in extractors}
    if not isinstance(extractors, Mapping):
        raise fail("'extractors' must map a label to options, e.g. {mert: {model: ...}}")
    out["extractors"] = {}
    for label, options in extractors.items():
        if not isinstance(label, str) or not _RUN_NAME.match(label):
            raise fail(f"extractor label {label!r} must be a name of letters, digits, '.', '_' "
                       f"or '-' (it names files such as data/models/<run>/<label>.npz)")
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

    strict = raw.get("strict", False)
    if not isinstance(strict, bool):
        raise fail(f"'strict' must be true or false, got {strict!r}")
    out["strict"] = strict

    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(f"'seed' must be an integer, got {seed!r}")
    out["seed"] = seed
    cache_dir = raw.get("cache_dir")
    if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir):
        raise fail(f"'cache_dir' must be a path string or null, got {cache_dir!r}")
    out["cache_dir"] = cache_dir

    # -- slurm: the extraction step as a Slurm job array (mtbc.cache.slurm) --------------
    slurm = raw.get("slurm")
    if slurm is not None:
        from mtbc.cache.slurm_options import SlurmError, options_from_mapping

        if not isinstance(slurm, Mapping):
            raise fail(f"'slurm' must be a mapping (partition, tasks, time, gpus_per_task, "
                       f"options, ...), got {slurm!r}")
        try:
            options_from_mapping(slurm)
        except SlurmError as exc:
            raise fail(str(exc)) from None
    out["slurm"] = dict(slurm) if slurm else None
    # -- end slurm ------------------------------------------------------------------------

    notebooks = raw.get("notebooks")
    if notebooks is not None:
        if not (isinstance(notebooks, list) and all(isinstance(n, str) for n in notebooks)):
            raise fail(f"'notebooks' must be a list of notebook names, got {notebooks!r}")
        bad = [n for n in notebooks if not _RUN_NAME.match(n.removesuffix(".ipynb"))]
        if bad:
            raise fail(f"notebook name {bad[0]!r} must be a file name in the notebooks folder "
                       f"(like 01_load_data), not a path")
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
    cells = [c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
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
