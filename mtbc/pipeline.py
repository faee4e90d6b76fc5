"""The main job (``mtbc run`` / ``make run``): corpus -> embeddings -> notebooks -> HTML.

1. Render the demo corpus when the run's collection is ``demo`` and it is not built yet.
2. Scan the collection (the scan is cached next to the embeddings; notebooks reuse it).
3. Extract every configured extractor through the cache (a re-run does no model work). A model
   whose weights are not on this machine and cannot be fetched is *not run*: the run goes on
   with the others and every report names it, why, and the one-line fix. ``strict: true`` in
   the params file (``mtbc run --strict``) stops the run instead.
4. Execute the numbered notebooks with papermill and publish HTML plus an index page. What
   this step did reaches the notebooks as a run record (``run.json``, :class:`RunRecord`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbc import config
from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import open_collection
from mtbc.extractors import (
    Extractor,
    ExtractorConfigError,
    WeightsUnavailableError,
    get_extractor,
)
from mtbc.reports.display import fixture_kinds
from mtbc.reports.execute import run_reports
from mtbc.reports.folder import check_folder
from mtbc.reports.params import ParamsError, find_notebooks, load_params, validate_params
from mtbc.reports.record import ExtractionSummary, NotRun, RunRecord
from mtbc.reports.tables import describe_weights


def render_demo(params: Mapping[str, Any], *, progress: bool = True) -> None:
    """Step 1: build the demo corpus a ``demo`` collection needs (skipped when built)."""
    if params["collection"].partition(":")[0] != "demo":
        return
    from mtbc.data.demo import build_demo

    demo = dict(params.get("demo") or {})
    out_dir = params["collection"].partition(":")[2] or demo.pop("out_dir", None)
    demo.pop("out_dir", None)
    manifest = build_demo(out_dir, progress=progress, **demo)
    print(f"demo corpus: {manifest}")


def build_run_extractors(params: Mapping[str, Any], *, strict: bool = False
                         ) -> tuple[dict[str, Extractor], list[NotRun]]:
    """Every extractor of a run, built before any work: a bad option stops the run at once
    (:class:`~mtbc.reports.params.ParamsError`); a model whose weights are missing is *not
    run* (returned with its reason and fix), or stops the run when ``strict`` or when no
    model is left (:class:`~mtbc.extractors.WeightsUnavailableError` naming every missing
    file at once)."""
    extractors, not_run = {}, []
    for label, options in params["extractors"].items():
        opts = dict(options)
        try:
            extractors[label] = get_extractor(opts.pop("name"), **opts)
        except WeightsUnavailableError as exc:
            not_run.append(NotRun(label=label, extractor=options["name"], reason=str(exc),
                                  fix=exc.fix or str(exc)))
        except ExtractorConfigError as exc:
            raise ParamsError(f"extractors.{label}: {exc}") from None
    if not_run and (strict or not extractors):
        lines = "\n".join(f"[{n.label}] {n.reason}" for n in not_run)
        why = "strict: true" if strict else "no model of this run has weights here"
        raise WeightsUnavailableError(
            f"model weights are missing ({why}), so the run stops:\n{lines}\nIn a params file, "
            "set `model:` (MERT) or `weights:` / `pca_params:` (VGGish) to local files, or drop "
            "`strict`. To see the whole pipeline without real weights, `make run-fixtures` runs "
            "it on random-weight test models (not results).")
    return extractors, not_run


def prepare(params: Mapping[str, Any], *, strict: bool | None = None,
            extractors: Mapping[str, Extractor] | None = None,
            not_run: list[NotRun] | None = None, progress: bool = True) -> RunRecord:
    """Steps 1-3: corpus, scan, embeddings. Returns the run record for notebooks and index.

    ``extractors``/``not_run`` as :func:`build_run_extractors` returns them (built here when
    not given; ``strict`` defaults to the params' ``strict``).
    """
    strict = bool(params.get("strict")) if strict is None else strict
    if extractors is None:
        extractors, not_run = build_run_extractors(params, strict=strict)
    render_demo(params, progress=progress)
    coll = open_collection(params["collection"], cache_dir=params["cache_dir"], progress=progress)
    print(f"collection {coll.name}: {len(coll)} tracks, {len(coll.skipped)} skipped")
    store = EmbeddingStore(config.cache_dir(params["cache_dir"]))
    record = RunRecord(collection=coll.source, tracks=len(coll), skipped=len(coll.skipped),
                       seed=params["seed"], not_run=list(not_run or []))
    for n in record.not_run:
        print(f"{n.label}: NOT RUN ({n.fix})")
    slurm = None
    if params.get("slurm") and extractors:  # one Slurm job array for every extractor
        from mtbc.cache.slurm import extract_for_run

        slurm = extract_for_run(params["collection"], coll.tracks, extractors,
                                params["extractors"], params["slurm"], store, progress=progress)
    for label, extractor in extractors.items():
        report = slurm[label] if slurm else extract_collection(coll.tracks, extractor, store,
                                                               progress=progress)
        print(f"{label}: {report}")
        record.extraction.append(ExtractionSummary.of(label, report,
                                                      describe_weights(extractor)))
    record.fixture_weights = fixture_kinds(extractors)
    return record


def run(params_path: str | os.PathLike | Mapping[str, Any], *,
        notebooks_dir: str | os.PathLike = "notebooks", reports_root: str | os.PathLike | None
        = None, strict: bool | None = None, remeasure: bool = False,
        progress: bool = True) -> Path:
    """The whole study; returns the path of the run's ``index.html``.

    The notebooks see only the extractors that ran; the ones that did not are in the run
    record with their reason and fix. ``remeasure`` (``mtbc run --remeasure``) gives every
    notebook that declares it ``remeasure: true`` (07: time every model again instead of
    reusing the timing cache).
    """
    start = time.perf_counter()
    if isinstance(params_path, Mapping):
        params = validate_params(params_path, source="<params dict>")
    else:
        params = load_params(params_path)
    if remeasure:  # over the params file's own value, wherever it set one
        params = {**params, "params": {**params["params"], "remeasure": True},
                  "notebook_params": {name: {**values, "remeasure": True} if "remeasure"
                                      in values else values
                                      for name, values in params["notebook_params"].items()}}
    demo_dir = (params.get("demo") or {}).get("out_dir")
    if params["collection"] == "demo" and demo_dir:  # notebooks must find the same corpus
        params = {**params, "collection": f"demo:{Path(demo_dir).resolve()}"}
    # everything a user can get wrong is checked before any scanning or extraction
    notebooks = find_notebooks(notebooks_dir, params["notebooks"])
    unknown = sorted(set(params["notebook_params"]) - {p.stem for p in notebooks})
    if unknown:
        raise ParamsError(f"notebook_params names {', '.join(unknown)}, which is not among "
                          f"the notebooks of this run ({', '.join(p.stem for p in notebooks)})")
    strict = bool(params.get("strict")) if strict is None else strict
    extractors, not_run = build_run_extractors(params, strict=strict)
    check_folder(Path(reports_root or config.reports_dir()) / params["run"], notebooks)
    record = prepare(params, strict=strict, extractors=extractors, not_run=not_run,
                     progress=progress)
    if not isinstance(params_path, Mapping):
        record.params_file = str(params_path)
    ran = {n.label for n in record.not_run}
    params = {**params, "extractors": {k: v for k, v in params["extractors"].items()
                                       if k not in ran}}
    return run_reports(params, notebooks_dir=notebooks_dir, reports_root=reports_root,
                       record=record, started=start, progress=progress)
