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
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
#: The tag of the cell papermill injects values after.
PARAMETERS_TAG = "parameters"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


class ParamsError(ValueError):
    """A parameter file (or dict) that does not follow the schema in this module's docstring."""


#: Largest parameter file read (bytes): a real one is a few KiB.
MAX_PARAMS_BYTES = 64 * 1024
#: Most YAML nodes a parameter file may expand to, aliases expanded (a real one: ~100).
MAX_PARAMS_NODES = 20_000
#: Longest string value (characters) a parameter may hold.
MAX_STRING = 4096


def _show(value: Any, width: int = 60) -> str:
    """A short repr of ``value`` for an error message (never the whole of a huge value)."""
    import reprlib

    if isinstance(value, str) and len(value) <= width:
        return repr(value)
    r = reprlib.Repr()  # Python 3.11: options are attributes, not arguments
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, 4, 4, 4, 4
    r.maxstring = r.maxother = r.maxlong = width
    short = r.repr(value)
    return short if len(short) <= width + 20 else short[:width] + "..."


def _cut(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width] + "..."


def _expanded_size(root: Any, budget: int) -> int:
    """Nodes of the YAML node graph ``root`` with every alias expanded, counted once per
    node (memoised), stopping past ``budget``; raises ``ValueError`` on a recursive alias."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = node.value if isinstance(node, yaml.CollectionNode) else []
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in children for n in pair]
            sizes[key] = min(budget + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ValueError("a recursive alias (a value that contains itself)")
        open_nodes.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            stack += [(n, False) for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(n, False) for n in node.value]
    return sizes[id(root)]


def _parse_bounded(text: str, path: Path) -> Any:
    """``yaml.safe_load`` within bounds: the libyaml parser (nesting limited to 1000 levels)
    where installed, and the node graph refused before construction when its aliases expand
    to more than :data:`MAX_PARAMS_NODES` nodes (an "alias bomb")."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, MAX_PARAMS_NODES)
        except ValueError as exc:
            raise ParamsError(f"{path}: refused: {exc}; write the values out") from None
        if size > MAX_PARAMS_NODES:
            raise ParamsError(f"{path}: refused: holds more than {MAX_PARAMS_NODES} values "
                              f"once its aliases (*name) are expanded (an alias bomb?); a "
                              f"parameter file needs a few dozen")
        return loader.construct_document(node)
    except RecursionError:
        raise ParamsError(f"{path}: refused: nested too deeply; a parameter file needs a few "
                          f"levels") from None
    finally:
        loader.dispose()


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a run's YAML parameter file; return it with defaults filled in.

    The file is read within bounds whatever its size or shape: at most
    :data:`MAX_PARAMS_BYTES`, aliases expanded to at most :data:`MAX_PARAMS_NODES` values,
    nesting limited. Raises :class:`ParamsError` naming the file and the offending key.
    """
    import yaml

    path = Path(path)
    try:
        if not path.is_dir() and path.exists() and not path.is_file():  # FIFO, device: may block
            raise ParamsError(f"{path}: not a regular file; give a YAML parameter file")
        with open(path, "rb") as f:
            data = f.read(MAX_PARAMS_BYTES + 1)
        if len(data) > MAX_PARAMS_BYTES:
            raise ParamsError(f"{path}: larger than {MAX_PARAMS_BYTES // 1024} KiB; a parameter "
                              f"file is a few KiB of YAML (see params/demo.yaml)")
        raw = _parse_bounded(data.decode("utf-8"), path)
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
        raise ParamsError(f"{path}: not valid YAML{at}: {_cut(str(problem))}; fix the "
                          f"syntax") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        if isinstance(exc, ParamsError):
            raise
        raise ParamsError(f"{path}: a value cannot be read ({_cut(str(exc))})") from None
    return validate_params(raw, source=str(path))


def _int_in(lo: int, hi: int):
    return (lambda v: _is_int(v) and lo <= v <= hi), f"a whole number {lo}..{hi}"


def _seconds_in(hi: float):
    return ((lambda v: _is_number(v) and 0 < v <= hi),
            f"a number of seconds, more than 0 and at most {hi:g}")


def _names_in(*allowed: str):
    return ((lambda v: isinstance(v, list) and 0 < len(v) <= len(allowed)
             and all(x in allowed for x in v)),
            f"a list among {', '.join(map(repr, allowed))}")


def _is_template(v: Any) -> bool:
    """A prompt template: a short string with a ``{label}`` field and no other."""
    if not isinstance(v, str) or len(v) > 500 or "{label}" not in v:
        return False
    try:
        v.format(label="x")
    except (KeyError, IndexError, ValueError):
        return False
    return True


#: What each notebook value must be (checked before any work): key -> (test, description).
VALUE_RULES: dict[str, tuple[Any, str]] = {
    "n_splits": _int_in(2, 100),
    "n_boot": _int_in(10, 100_000),
    "seed": _int_in(0, 2**32 - 1),
    "n_players": _int_in(0, 100),
    "table_tracks": _int_in(0, 10_000),
    "top_tags": _int_in(0, 1000),
    "agreement_tracks": _int_in(0, 1000),
    "repeats": _int_in(1, 100),
    "layer": ((lambda v: v is None or (_is_int(v) and -1000 <= v <= 1000)),
              "null or a layer index -1000..1000"),
    "clip_seconds": _seconds_in(600),
    "budget_s": _seconds_in(86_400),
    "probe_budget_s": _seconds_in(86_400),
    "batch_sizes": ((lambda v: isinstance(v, list) and 0 < len(v) <= 32
                     and all(_is_int(b) and 1 <= b <= 4096 for b in v)),
                    "a list of at most 32 whole numbers 1..4096"),
    "probes": _names_in("linear", "mlp"),
    "tag_probes": _names_in("linear", "mlp"),
    "protocol": ((lambda v: v in ("default", "marble")), "'default' or 'marble'"),
    "isolate": ((lambda v: isinstance(v, bool)), "true or false"),
    "remeasure": ((lambda v: isinstance(v, bool)), "true or false"),
    "zero_shot_template": (_is_template, "a prompt of at most 500 characters with a "
                                         "{label} field and no other, e.g. 'This is a {label} song.'"),
}


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain data of bounded size (short strings, few levels)."""
    if isinstance(value, str):
        return len(value) <= MAX_STRING
    if value is None or isinstance(value, bool | int | float):
        return True
    if depth >= 6:
        return False
    if isinstance(value, list):
        return len(value) <= 1000 and all(_plain(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return len(value) <= 1000 and all(isinstance(k, str) and _plain(v, depth + 1)
                                          for k, v in value.items())
    return False


def _check_value(fail, where: str, key: str, value: Any) -> None:
    """Refuse a notebook value of the wrong type or range, naming ``where``."""
    if key in VALUE_RULES:
        ok, what = VALUE_RULES[key]
        if not ok(value):
            raise fail(f"{where} must be {what}, got {_show(value)}")
    elif not _plain(value):
        raise fail(f"{where} must be plain data (strings of at most {MAX_STRING} characters, "
                   f"numbers, short lists and mappings), got {_show(value)}")


def _cache_dir_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be the cache, or ``None``. An existing folder mtbc made a cache
    of is accepted even read-only (a fully cached run only reads); any other existing folder
    must take a file, and a new one must be creatable."""
    import tempfile

    if folder.exists():
        if not folder.is_dir():
            return "exists and is not a folder"
        if (folder / ".mtbc-cache").is_file():
            return None
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".mtbc-probe-", suffix=".tmp")
        except OSError as exc:
            return f"cannot write there ({exc.strerror or exc})"
        os.close(fd)
        os.unlink(probe)
        return None
    parent = next((p for p in folder.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created ({parent} is not a writable folder)"
    return None


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
        raise fail(f"unknown top-level key {_show(unknown[0])}; allowed keys: "
                   f"{', '.join(_PARAM_KEYS)} (put notebook-specific values under 'params' "
                   f"or 'notebook_params')")
    out: dict[str, Any] = {}
    run = raw.get("run")
    if not isinstance(run, str) or not _RUN_NAME.match(run):
        raise fail(f"'run' must be a name of letters, digits, '.', '_' or '-' "
                   f"(it names reports/<run>/), got {_show(run)}")
    out["run"] = run
    title = raw.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > 500):
        raise fail(f"'title' must be a string of at most 500 characters, got {_show(title)}")
    out["title"] = title
    collection = raw.get("collection", "demo")
    if not isinstance(collection, str) or not collection or len(collection) > MAX_STRING:
        raise fail(f"'collection' must be 'demo', a folder, a .csv or 'gtzan:<root>', "
                   f"got {_show(collection)}")
    out["collection"] = collection
    demo = raw.get("demo") or {}
    demo_keys = ("seed", "n_per_class", "clip_seconds", "out_dir")
    if not isinstance(demo, Mapping) or any(k not in demo_keys for k in demo):
        raise fail(f"'demo' must be a mapping with keys among {', '.join(demo_keys)} "
                   f"(the size of the rendered demo corpus), got {_show(demo)}")
    for key, ok, what in (
            ("seed", lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
            ("n_per_class", lambda v: _is_int(v) and 1 <= v <= 1000, "an integer 1..1000"),
            ("clip_seconds", lambda v: _is_number(v) and 0 < v <= 600,
             "a number of seconds, more than 0 and at most 600"),
            ("out_dir", lambda v: isinstance(v, str) and 0 < len(v) <= MAX_STRING,
             "a folder path")):
        if key in demo and not ok(demo[key]):
            raise fail(f"demo.{key} must be {what}, got {_show(demo[key])}")
    out["demo"] = dict(demo)

    extractors = raw.get("extractors", {})
    if isinstance(extractors, list):
        extractors = {name: {} for name in extractors}
    if not isinstance(extractors, Mapping):
        raise fail("'extractors' must map a label to options, e.g. {mert: {model: ...}}")
    out["extractors"] = {}
    for label, options in extractors.items():
        if not isinstance(label, str) or not _RUN_NAME.match(label):
            raise fail(f"extractor label {_show(label)} must be a name of letters, digits, '.', '_' "
                       f"or '-' (it names files such as data/models/<run>/<label>.npz)")
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise fail(f"extractors.{label} must be a mapping of options, got {_show(options)}")
        name = options.get("name", label)
        if name not in available_extractors():
            raise fail(f"extractors.{label}: unknown extractor {_show(name)}; choose one of "
                       f"{', '.join(available_extractors())} (or set 'name:' for a "
                       f"custom label)")
        if not _plain(dict(options)):
            raise fail(f"extractors.{label}: options must be plain data (short strings, "
                       f"numbers, short lists), got {_show(options)}")
        out["extractors"][str(label)] = {
            "name": name, **{k: v for k, v in options.items() if k != "name"}}

    strict = raw.get("strict", False)
    if not isinstance(strict, bool):
        raise fail(f"'strict' must be true or false, got {_show(strict)}")
    out["strict"] = strict

    seed = raw.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise fail(f"'seed' must be an integer 0..{2**32 - 1}, got {_show(seed)}")
    out["seed"] = seed
    cache_dir = raw.get("cache_dir")
    if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir
                                  or len(cache_dir) > MAX_STRING):
        raise fail(f"'cache_dir' must be a path string or null, got {_show(cache_dir)}")
    if cache_dir is not None:
        problem = _cache_dir_problem(Path(cache_dir))
        if problem:
            raise fail(f"cache_dir {cache_dir}: {problem}; give a writable folder with "
                       f"`cache_dir:` (or null and MTBC_CACHE)")
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
            raise fail(f"'notebooks' must be a list of notebook names, got {_show(notebooks)}")
        bad = [n for n in notebooks if not _RUN_NAME.match(n.removesuffix(".ipynb"))]
        if bad:
            raise fail(f"notebook name {_show(bad[0])} must be a file name in the notebooks folder "
                       f"(like 01_load_data), not a path")
        notebooks = [n.removesuffix(".ipynb") for n in notebooks]
    out["notebooks"] = notebooks

    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise fail(f"'params' must be a mapping, got {_show(params)}")
    bad_keys = [k for k in params if not isinstance(k, str) or not _KEY_NAME.match(k)]
    if bad_keys:
        raise fail(f"params: key {_show(bad_keys[0])} must be a Python name (like n_splits)")
    clash = [k for k in params if k in SHARED_PARAMS]
    if clash:
        raise fail(f"params.{clash[0]} repeats a top-level key; set it at the top level")
    for key, value in params.items():
        _check_value(fail, f"params.{key}", key, value)
    out["params"] = dict(params)
    per_nb = raw.get("notebook_params") or {}
    if not isinstance(per_nb, Mapping) or not all(
            isinstance(v, Mapping) or v is None for v in per_nb.values()):
        raise fail("'notebook_params' must map a notebook name to a mapping of values")
    for name, values in per_nb.items():
        if not isinstance(name, str) or not _RUN_NAME.match(name.removesuffix(".ipynb")):
            raise fail(f"notebook_params: {_show(name)} must be a notebook name (like "
                       f"04_train_classifiers)")
        for key, value in (values or {}).items():
            if not isinstance(key, str) or not _KEY_NAME.match(key):
                raise fail(f"notebook_params.{name}: key {_show(key)} must be a Python name")
            _check_value(fail, f"notebook_params.{name}.{key}", key, value)
    out["notebook_params"] = {str(k).removesuffix(".ipynb"): dict(v or {})
                              for k, v in per_nb.items()}
    return out


#: Notebooks that read what the others of the run leave in the run folder, so run after them
#: by default (08's claims audit reads 09's and 11's records).
RUN_LAST = ("08_claims",)


def find_notebooks(notebooks_dir: str | os.PathLike, names: Sequence[str] | None = None
                   ) -> list[Path]:
    """The notebooks of a run: ``names`` (without ``.ipynb``) in that order, else every
    ``[0-9]*.ipynb`` in ``notebooks_dir``, sorted, those of :data:`RUN_LAST` at the end."""
    notebooks_dir = Path(notebooks_dir)
    if names is None:
        found = sorted(notebooks_dir.glob("[0-9]*.ipynb"),
                       key=lambda p: (p.stem in RUN_LAST, p.name))
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
