"""The main job (``mtbc run`` / ``make run``): corpus -> embeddings -> notebooks -> HTML.

1. Render the demo corpus when the run's collection is ``demo`` and it is not built yet.
2. Scan the collection (the scan is cached next to the embeddings; notebooks reuse it).
3. Extract every configured extractor through the cache (a re-run does no model work).
   Missing model weights stop the run here, with the extractor's message on how to get them.
4. Execute the numbered notebooks with papermill and publish HTML plus an index page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbc import config
from mtbc.cache.extract import extract_collection
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import Collection, load_collection
from mtbc.extractors import (
    Extractor,
    ExtractorConfigError,
    WeightsUnavailableError,
    get_extractor,
)
from mtbc.reports.execute import run_reports
from mtbc.reports.params import ParamsError, find_notebooks, load_params, validate_params
from mtbc.reports.tables import describe_weights


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The embedding cache folder of a run (``null`` in the params: the default)."""
    return Path(cache_dir) if cache_dir else config.cache_dir()


def open_collection(collection: str, *, cache_dir: str | None = None, progress: bool = True
                    ) -> Collection:
    """The scanned collection of a run, reusing the cached scan while no file changed."""
    return load_collection(collection, scan_cache=cache_root(cache_dir), progress=progress)


def build_extractor(options: Mapping[str, Any]) -> Extractor:
    """``{"name": "mert", "model": ...}`` -> the extractor."""
    opts = dict(options)
    return get_extractor(opts.pop("name"), **opts)


def build_run_extractors(params: Mapping[str, Any]) -> dict[str, Extractor]:
    """Every extractor of a run, built before any work so that a bad option or missing
    weights stop the run at once (every missing file named together)."""
    extractors, missing = {}, []
    for label, options in params["extractors"].items():
        try:
            extractors[label] = build_extractor(options)
        except WeightsUnavailableError as exc:
            missing.append(f"[{label}] {exc}")
        except ExtractorConfigError as exc:
            raise ParamsError(f"extractors.{label}: {exc}") from None
    if missing:
        raise WeightsUnavailableError(
            "model weights are missing, so no embeddings can be extracted:\n"
            + "\n".join(missing) + "\nIn a params file, set `model:` (MERT) or `weights:` / "
            "`pca_params:` (VGGish) to local files. To see the whole pipeline without real "
            "weights, `make run-fixtures` runs it on random-weight test models (not results).")
    return extractors


def prepare(params: Mapping[str, Any], *, progress: bool = True,
            extractors: Mapping[str, Extractor] | None = None) -> dict[str, Any]:
    """Steps 1-3: corpus, scan, embeddings. Returns run info for the index page."""
    if extractors is None:
        extractors = build_run_extractors(params)
    if params["collection"].partition(":")[0] == "demo":
        from mtbc.data.demo import build_demo

        demo = dict(params.get("demo") or {})
        out_dir = params["collection"].partition(":")[2] or demo.pop("out_dir", None)
        demo.pop("out_dir", None)
        manifest = build_demo(out_dir, progress=progress, **demo)
        print(f"demo corpus: {manifest}")
    coll = open_collection(params["collection"], cache_dir=params["cache_dir"], progress=progress)
    print(f"collection {coll.name}: {len(coll)} tracks, {len(coll.skipped)} skipped")
    store = EmbeddingStore(cache_root(params["cache_dir"]))
    info: dict[str, Any] = {"collection": coll.source, "tracks": len(coll),
                            "skipped": len(coll.skipped), "seed": params["seed"]}
    fixtures = {}
    for label, extractor in extractors.items():
        report = extract_collection(coll.tracks, extractor, store, progress=progress)
        print(f"{label}: {report}")
        info[f"model {label}"] = describe_weights(extractor)
        kind = extractor.metadata().get("weights_kind", "unknown")
        if kind in ("fixture", "random"):
            fixtures[label] = kind
    if fixtures:
        info["fixture_weights"] = fixtures
    return info


def run(params_path: str | os.PathLike | Mapping[str, Any], *,
        notebooks_dir: str | os.PathLike = "notebooks", reports_root: str | os.PathLike | None
        = None, progress: bool = True) -> Path:
    """The whole study; returns the path of the run's ``index.html``."""
    if isinstance(params_path, Mapping):
        params = validate_params(params_path, source="<params dict>")
    else:
        params = load_params(params_path)
    demo_dir = (params.get("demo") or {}).get("out_dir")
    if params["collection"] == "demo" and demo_dir:  # notebooks must find the same corpus
        params = {**params, "collection": f"demo:{Path(demo_dir).resolve()}"}
    # everything a user can get wrong is checked before any scanning or extraction
    notebooks = find_notebooks(notebooks_dir, params["notebooks"])
    unknown = sorted(set(params["notebook_params"]) - {p.stem for p in notebooks})
    if unknown:
        raise ParamsError(f"notebook_params names {', '.join(unknown)}, which is not among "
                          f"the notebooks of this run ({', '.join(p.stem for p in notebooks)})")
    extractors = build_run_extractors(params)
    info = prepare(params, progress=progress, extractors=extractors)
    if not isinstance(params_path, Mapping):
        info["params_file"] = str(params_path)
    return run_reports(params,
                       notebooks_dir=notebooks_dir, reports_root=reports_root,
                       run_info=info, progress=progress)


def build_extractors(extractors: Mapping[str, Mapping[str, Any]]) -> dict[str, Extractor]:
    """Label -> extractor for a run's ``extractors`` parameter (models load lazily)."""
    return {label: build_extractor(options) for label, options in extractors.items()}
