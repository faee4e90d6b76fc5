"""The examples in the public docstrings of the engine and the statistics run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["mtbc.evaluation", "mtbc.evaluation.engine", "mtbc.evaluation.systems",
           "mtbc.evaluation.data", "mtbc.evaluation.options", "mtbc.stats"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
