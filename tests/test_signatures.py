"""No function in mtbc takes more than 8 parameters; options objects group the rest.

Read from the source with :mod:`ast` (nothing is imported). ``self`` / ``cls`` of a method is
not counted; every other parameter is (positional, keyword-only, ``*args``, ``**kwargs``).
Estimator and extractor constructors are exempt (scikit-learn's explicit-parameter
convention: every hyperparameter is a named ``__init__`` argument): ``__init__`` of a class
whose body defines ``fit`` or ``embed``, or that subclasses a name ending in ``Extractor``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mtbc"
MAX_PARAMETERS = 8

#: ``module:qualified name`` -> why it may take more than MAX_PARAMETERS parameters.
EXCEPTIONS: dict[str, str] = {
    "mtbc.evaluation.estimators:MLPSettings.__init__":
        "the constructor both MLP estimators inherit (scikit-learn's explicit parameters)",
}


def _n_parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args)]
    n = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                    for d in fn.decorator_list)
    if method and not is_static and names and names[0] in ("self", "cls"):
        n -= 1
    return n


def _is_estimator_or_extractor(cls: ast.ClassDef) -> bool:
    defines = {node.name for node in cls.body
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    if defines & {"fit", "embed"}:
        return True
    for base in cls.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name.endswith("Extractor"):
            return True
    return False


def _functions(tree: ast.Module):
    """``(qualified name, function node, enclosing class or None)`` for every function."""

    def walk(node, prefix: str, cls: ast.ClassDef | None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.", child)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{child.name}", child, cls
                yield from walk(child, f"{prefix}{child.name}.<locals>.", None)
            else:
                yield from walk(child, prefix, cls)

    yield from walk(tree, "", None)


def _module(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts)


def over_limit(root: Path = ROOT) -> list[str]:
    """``module:function (N parameters)`` for every function over the limit, not exempt."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = _module(path, root)
        for qualname, fn, cls in _functions(tree):
            n = _n_parameters(fn, method=cls is not None)
            if n <= MAX_PARAMETERS or f"{module}:{qualname}" in EXCEPTIONS:
                continue
            if fn.name == "__init__" and cls is not None and _is_estimator_or_extractor(cls):
                continue
            found.append(f"{module}:{qualname} ({n} parameters)")
    return found


def test_no_function_takes_more_than_8_parameters():
    found = over_limit()
    assert not found, (f"over {MAX_PARAMETERS} parameters (group options into a frozen "
                       f"dataclass): " + "; ".join(found))


def test_every_exception_still_exists_and_is_explained():
    for name, reason in EXCEPTIONS.items():
        module, _, qualname = name.partition(":")
        path = ROOT.parent.joinpath(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{name}: no module {module}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert qualname in {q for q, _, _ in _functions(tree)}, f"{name}: no such function"
        assert reason.strip(), f"{name}: give a one-line reason"


def test_the_check_counts_and_exempts_as_documented(tmp_path):
    pkg = tmp_path / "mtbc"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "def nine(a, b, c, d, e, f, g, h, i): ...\n"
        "def eight(a, b, c, d, e, f, g, *, h): ...\n"
        "def star(a, b, c, d, e, f, g, *args, **kwargs): ...\n"
        "class C:\n"
        "    def method(self, a, b, c, d, e, f, g, h): ...\n"
        "    def __init__(self, a, b, c, d, e, f, g, h, i): ...\n"
        "    @staticmethod\n"
        "    def static(self, a, b, c, d, e, f, g, h): ...\n"
        "class Probe:\n"
        "    def __init__(self, a, b, c, d, e, f, g, h, i): ...\n"
        "    def fit(self, X, y): ...\n"
        "class Net(base.BaseExtractor):\n"
        "    def __init__(self, a, b, c, d, e, f, g, h, i): ...\n"
        "def outer():\n"
        "    def inner(a, b, c, d, e, f, g, h, i): ...\n")
    assert over_limit(pkg) == ["mtbc.m:nine (9 parameters)", "mtbc.m:star (9 parameters)",
                               "mtbc.m:C.__init__ (9 parameters)",
                               "mtbc.m:C.static (9 parameters)",
                               "mtbc.m:outer.<locals>.inner (9 parameters)"]
