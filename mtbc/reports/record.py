"""The run record: what ``mtbc run`` did before the notebooks, for the notebooks and the index.

``mtbc run`` scans, extracts and decides which models can run; the notebooks must show that
(02: what extraction did in *this* run; every page: which models were not run and why) without
importing the module that runs them. So the run writes ``reports/<run>/run.json`` and passes
its path to every notebook that declares ``run_record``; :func:`load_record` reads it back
(``None`` gives an empty record, as in JupyterLab without a run).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class NotRun:
    """A configured model that did not run: its ``label``, ``extractor`` name, the full
    ``reason`` and the one-line ``fix``."""

    label: str
    extractor: str
    reason: str
    fix: str


@dataclass
class ExtractionSummary:
    """What extraction did for one model in this run."""

    label: str
    fingerprint: str
    weights: str
    extracted: int
    cached: int
    failed: int
    seconds: float
    audio_seconds: float
    failures: list[dict] = field(default_factory=list)  # track_id, path, reason

    @classmethod
    def of(cls, label: str, report: Any, weights: str) -> ExtractionSummary:
        """From a :class:`mtbc.cache.extract.ExtractionReport`."""
        return cls(label=label, fingerprint=report.fingerprint, weights=weights,
                   extracted=len(report.extracted), cached=len(report.cached),
                   failed=len(report.failed), seconds=round(float(report.seconds), 3),
                   audio_seconds=round(float(report.audio_seconds), 3),
                   failures=[{k: str(v) for k, v in row.items()}
                             for row in report.failed.to_dict("records")])


@dataclass
class RunRecord:
    """Scan, extraction and model availability of one run (see the module docstring)."""

    collection: str = ""
    tracks: int = 0
    skipped: int = 0
    seed: int = 0
    params_file: str | None = None
    extraction: list[ExtractionSummary] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    fixture_weights: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        raw = json.loads(text)
        raw["extraction"] = [ExtractionSummary(**e) for e in raw.get("extraction", [])]
        raw["not_run"] = [NotRun(**n) for n in raw.get("not_run", [])]
        return cls(**raw)

    def extraction_table(self) -> pd.DataFrame:
        """One row per model that ran: tracks extracted now, found in the cache, failed, and
        the extraction speed (audio seconds per second; ``-`` when nothing was computed)."""
        rows = []
        for e in self.extraction:
            speed = (f"{e.audio_seconds / e.seconds:.1f}" if e.extracted and e.seconds else "-")
            rows.append({"model": e.label, "extracted now": e.extracted,
                         "already cached": e.cached, "failed": e.failed,
                         "time (s)": round(e.seconds, 1), "audio-s per s": speed})
        columns = ["model", "extracted now", "already cached", "failed", "time (s)",
                   "audio-s per s"]
        return pd.DataFrame(rows, columns=columns).set_index("model")

    def failures_table(self) -> pd.DataFrame:
        """Every track a model could not embed, with the reason."""
        rows = [{"model": e.label, **f} for e in self.extraction for f in e.failures]
        return pd.DataFrame(rows, columns=["model", "track_id", "path", "reason"])

    def not_run_table(self) -> pd.DataFrame:
        """One row per configured model that did not run: why, and how to fix it."""
        return pd.DataFrame([{"model": n.label, "why": n.reason.split(". ")[0],
                              "fix": n.fix} for n in self.not_run],
                            columns=["model", "why", "fix"]).set_index("model")


def write_record(record: RunRecord, out_dir: str | os.PathLike) -> Path:
    """``out_dir/run.json``."""
    path = Path(out_dir) / "run.json"
    path.write_text(record.to_json(), encoding="utf-8")
    return path


def load_record(path: str | os.PathLike | None) -> RunRecord:
    """The record at ``path``; an empty record for ``None`` or a missing file."""
    if path is None or not Path(path).is_file():
        return RunRecord()
    return RunRecord.from_json(Path(path).read_text(encoding="utf-8"))


def extraction_record(study: Any, run_record: str | os.PathLike | None) -> RunRecord:
    """The record a run wrote, or (a notebook opened without a run, e.g. in JupyterLab) a
    record of extracting ``study``'s models now, through the cache."""
    from mtbc.cache.extract import extract_collection
    from mtbc.reports.tables import describe_weights

    record = load_record(run_record)
    if record.extraction or record.not_run or not study.models:
        return record
    record.collection, record.tracks = study.collection.source, len(study.tracks)
    for label, ext in study.models.items():
        report = extract_collection(study.tracks, ext, study.store, progress=False)
        record.extraction.append(ExtractionSummary.of(label, report, describe_weights(ext)))
    return record
