"""What several notebooks share: the study (collection, cache, extractors), the
classification plan, validation-only choices, system names and musicnn's own tags.

Nothing here is chosen by looking at test data: every choice reads validation scores
(``docs/protocol.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtbc import config
from mtbc.cache.store import EmbeddingStore, load_embeddings
from mtbc.data.collection import Collection, open_collection
from mtbc.data.splits import fold_count, has_predefined_split
from mtbc.evaluation.memo import SUBDIR
from mtbc.evaluation.results import Result
from mtbc.extractors import Extractor, build_extractors


def system_name(system: str, probe: str) -> str:
    """How every result is named: the system and its probe (``musicnn · linear``,
    ``concat(mert + vggish) · linear``), the same in every notebook, table and CSV."""
    return f"{system} · {probe}"


@dataclass
class Study:
    """A run as notebooks see it: the scanned ``collection``, the embedding ``store``, the
    run's ``models`` (label -> extractor, not loaded until used) and ``reuse_dir``, where
    evaluations are kept so that no notebook repeats another's work and a run made again
    reuses them (:mod:`mtbc.evaluation.memo`; ``None``: every evaluation is computed)."""

    collection: Collection
    store: EmbeddingStore
    models: dict[str, Extractor]
    reuse_dir: str | None = None

    @property
    def tracks(self) -> pd.DataFrame:
        return self.collection.tracks

    def metadata(self) -> dict[str, dict]:
        """Label -> extractor metadata (weights, revision, fingerprint)."""
        return {label: ext.metadata() for label, ext in self.models.items()}


def open_study(collection: str, extractors: dict, *, cache_dir: str | None = None,
               reuse: bool = True) -> Study:
    """The run's collection (cached scan), embedding store and extractors; with ``reuse``
    (notebooks: unless ``remeasure``), evaluations are kept under the cache's
    ``evaluations`` folder and reused."""
    root = config.cache_dir(cache_dir)
    return Study(open_collection(collection, cache_dir=cache_dir, progress=False),
                 EmbeddingStore(root), build_extractors(extractors),
                 reuse_dir=str(Path(root) / SUBDIR) if reuse else None)



def per_layer_test(features: np.ndarray, probe: str) -> bool:
    """Whether a probe's result carries the per-layer test curve (notebook 04's layer plot):
    the linear probe of a multi-layer model. 04 and 05 ask alike, so 05 reuses 04's kept
    evaluation."""
    return features.shape[1] > 1 and probe == "linear"


@dataclass(frozen=True)
class ClassificationPlan:
    """The labelled ``tracks`` a probe can use, the number of outer folds, and ``why_not``
    (``None`` when probes can be evaluated)."""

    tracks: pd.DataFrame
    n_folds: int
    why_not: str | None

    @property
    def predefined(self) -> bool:
        return self.why_not is None and has_predefined_split(self.tracks)

    def describe(self) -> str:
        n = f"{len(self.tracks)} labelled tracks in {self.tracks['label'].nunique()} labels; "
        if self.why_not:
            return n + f"**no classification**: {self.why_not}."
        if self.predefined:
            return n + "predefined train/valid/test split."
        return n + f"{self.n_folds}-fold stratified group cross-validation."


def plan_classification(tracks: pd.DataFrame, *, n_splits: int = 5) -> ClassificationPlan:
    """Which tracks and how many folds; without a predefined split the folds are capped by
    the smallest label (each test fold must hold every label)."""
    labelled = tracks.loc[tracks["label"].notna()].reset_index(drop=True)
    counts = labelled["label"].value_counts()
    if len(counts) < 2:
        return ClassificationPlan(labelled, 0, f"{len(counts)} label(s) among {len(labelled)} "
                                               f"labelled tracks: classification needs at "
                                               f"least 2 labels")
    if has_predefined_split(labelled):
        return ClassificationPlan(labelled, n_splits, None)
    folds = fold_count(labelled["label"], n_splits)
    if folds < 2:
        small = ", ".join(counts[counts < 2].index.astype(str))
        return ClassificationPlan(labelled, 0, f"label(s) {small} have a single track: "
                                               f"cross-validation needs at least 2 tracks per "
                                               f"label")
    return ClassificationPlan(labelled, folds, None)



def validation_accuracy(result: Result) -> float:
    """The validation score behind a result's choices (:meth:`Result.validation_score`):
    the mean over outer folds of the chosen candidate's validation accuracy, weighted by
    validation tracks; NaN when the result chose nothing (late fusion, baselines)."""
    return result.validation_score()


def choose_by_validation(results: list) -> Result | None:
    """The result with the best validation score (ties: the earlier one); ``None``
    when no result has one. Test scores are never read."""
    scored = [(r.validation_score(), i, r) for i, r in enumerate(results)]
    scored = [s for s in scored if np.isfinite(s[0])]
    if not scored:
        return None
    return max(scored, key=lambda s: (s[0], -s[1]))[2]


def default_ensembles(models: dict[str, Extractor]) -> list[list[str]]:
    """The learned models together, then every model; each fused set once, two or more."""
    learned = [label for label, ext in models.items() if ext.name != "mfcc"]
    out: list[list[str]] = []
    for combo in (learned, list(models)):
        if len(combo) > 1 and combo not in out:
            out.append(combo)
    return out




def comparison_matrix(tests: pd.DataFrame, names: list[str], *, value: str = "p_holm"
                      ) -> pd.DataFrame:
    """A square system x system table of one column of the pairwise tests (symmetric;
    diagonal NaN), for a heat map in place of a long list."""
    mat = pd.DataFrame(np.nan, index=pd.Index(names, name="system"), columns=names)
    for row in tests.itertuples():
        v = getattr(row, value)
        mat.loc[row.system_a, row.system_b] = v
        mat.loc[row.system_b, row.system_a] = v
    return mat




# -------------------------------------------------------------------------- musicnn's own tags

@dataclass
class AutoTags:
    """musicnn's own tag predictions for every track (``scores``: track x tag, the mean of
    its patches' sigmoid outputs; ``top``: each track's ``top_k`` tags with probabilities)."""

    label: str
    model: str
    scores: pd.DataFrame
    top: pd.DataFrame


def musicnn_labels(study: Study) -> list[str]:
    """Labels of the run's musicnn extractors (whose models have their own tags)."""
    return [label for label, ext in study.models.items() if ext.name == "musicnn"]


def auto_tags(study: Study, label: str, *, top_k: int = 5) -> AutoTags:
    """The tags musicnn model ``label`` predicts for each track (cached like embeddings)."""
    from mtbc.cache.extract import extract_collection

    ext = study.models[label]
    tagger = ext.tagger()  # extraction cached its tags already (Extractor.companions)
    extract_collection(study.tracks, tagger, study.store, progress=False)
    tracks, X = load_embeddings(study.tracks, study.store, tagger.fingerprint)
    scores = pd.DataFrame(X[:, 0, :], index=pd.Index(tracks["track_id"], name="track_id"),
                          columns=tagger.tag_names)
    top = []
    for (tid, row), lab in zip(scores.iterrows(), tracks["label"], strict=True):
        best = row.nlargest(top_k)
        top.append({"track_id": tid, "label": lab,
                    "top tags (probability %)": ", ".join(f"{t} ({100 * p:.0f})"
                                                          for t, p in best.items())})
    return AutoTags(label=label, model=ext.model_name, scores=scores,
                    top=pd.DataFrame(top).set_index("track_id"))

