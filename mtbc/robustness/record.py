"""The record notebook 11 leaves beside the run record: ``robustness.json``.

Notebook 08's claims audit reads it (the comparison's "more stable" embeddings claim): the
models measured with their facts (weights kind, width), the deformations, the stability
table, the model-against-model tests on the cosine and on self-retrieval, and the probe's
drops and their tests, each row with its 95% CI and n.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mtbc.files import atomic_write

RECORD = "robustness.json"
_META = ("extractor", "model", "weights_kind", "hidden_size")


def _rows(table: Any) -> list[dict]:
    if not isinstance(table, pd.DataFrame) or not len(table):
        return []
    named = [n for n in table.index.names if n is not None]
    frame = table.reset_index() if named else table
    return json.loads(frame.to_json(orient="records"))


def robustness_record(result: Any, metadata: Mapping[str, Mapping[str, Any]]) -> dict:
    """JSON-ready tables of a :class:`~mtbc.robustness.study.Robustness` result, with the
    facts of each model measured (``metadata``: a study's ``metadata()``)."""
    models = sorted({str(m) for m in _frame(result.stability)["model"]}) \
        if len(result.stability) else []
    return {"format": "mtbc-robustness-record/1", "deformations": list(result.labels),
            "models": {m: {k: metadata.get(m, {}).get(k) for k in _META} for m in models},
            "stability": _rows(result.stability),
            "stability_tests": _rows(result.stability_tests),
            "retrieval_tests": _rows(result.retrieval_tests),
            "drops": _rows(result.drops), "drop_tests": _rows(result.drop_tests)}


def _frame(table: pd.DataFrame) -> pd.DataFrame:
    return table.reset_index() if "model" not in table.columns else table


def write_record(run_record: str | None, result: Any,
                 metadata: Mapping[str, Mapping[str, Any]]) -> Path | None:
    """Write :func:`robustness_record` as ``robustness.json`` beside the run record
    (atomically); ``None`` without a run (a notebook opened by hand)."""
    if run_record is None:
        return None
    path = Path(run_record).parent / RECORD
    text = json.dumps(robustness_record(result, metadata), indent=1).encode()
    atomic_write(path, lambda f: f.write(text))
    return path
