"""No module of mtbc is over 500 lines (split a module that grows past it by concern)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mtbc"
MAX_LINES = 500


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + "; ".join(
        f"{name} ({n} lines)" for name, n in long.items())
