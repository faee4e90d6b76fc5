"""What notebook 10 computes: retrieval per model and ensemble, intervals, tests, examples.

- :func:`evaluate_retrieval`: every labelled track is a test query exactly once, over the
  same folds as notebook 04 (:func:`mtbc.data.splits.outer_folds`, same ``n_splits`` and
  seed); in each fold a :class:`~mtbc.similarity.retrieval.RetrievalSystem` per model chooses
  its layer and whitening on validation queries (grouped inner splits of the training part),
  and an ensemble concatenates the models' chosen spaces.
- :func:`summary_table`: mean of each per-query metric with a group-bootstrap CI and n.
- :func:`paired_tests`: group-aware sign-flip tests on per-query AP@10, Holm-adjusted.
- :func:`example_queries`, :func:`collection_map` (UMAP), :func:`example_playlist`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import permutation_test

from mtbc.cache.store import load_embeddings
from mtbc.data.splits import fold_count, inner_splits, outer_folds, track_groups
from mtbc.evaluation import group_bootstrap, group_codes, holm
from mtbc.similarity.index import build_index, normalise, threads
from mtbc.similarity.metrics import METRIC_NAMES
from mtbc.similarity.retrieval import RetrievalSystem, score_queries
from mtbc.similarity.search import playlist_walk

ENSEMBLE = "ensemble"


@dataclass
class RetrievalStudy:
    """Notebook 10's results.

    Attributes
    ----------
    tracks : labelled tracks every model has (rows of every ``spaces`` array).
    per_query : one row per (system, test query): fold, track_id, group, metrics, layer.
    validation : per (system, fold, candidate): validation AP@10 and P@5 that chose the layer.
    spaces : system -> ``(n_tracks, dim)`` vectors in its most often chosen space (whitening,
        if chosen, fitted on all tracks): for examples, the map and playlists only.
    folds : one-line description of the folds.
    why_not : why nothing was evaluated (``None`` when it was); ``spaces`` and ``tracks``
        then hold every track all models have, for the examples, the map and a playlist.
    """

    tracks: pd.DataFrame
    per_query: pd.DataFrame
    validation: pd.DataFrame
    spaces: dict[str, np.ndarray] = field(default_factory=dict)
    folds: str = ""
    why_not: str | None = None

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(self.per_query["system"]))

    def describe(self) -> str:
        """One line: the tracks and folds evaluated, or why nothing was."""
        if self.why_not is not None:
            return (f"No retrieval evaluation: {self.why_not}. The examples, the map and the "
                    f"playlist below use all {len(self.tracks)} tracks every model has.")
        return (f"{len(self.tracks)} labelled tracks with embeddings from every model; "
                f"{self.folds}.")

    def chosen_by_validation(self) -> str:
        """The system with the best validation AP@10 (mean over folds of the chosen
        candidates); test scores are not read."""
        if self.why_not is not None or not len(self.validation):
            return next(iter(self.spaces))
        chosen = self.validation[self.validation["chosen"]]
        return str(chosen.groupby("system", sort=False)["val_ap@10"].mean().idxmax())


def _common_tracks(study, *, labelled_only: bool = True
                   ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    labelled = study.tracks.loc[study.tracks["label"].notna() | (not labelled_only)]
    labelled = labelled.reset_index(drop=True)
    have = np.ones(len(labelled), bool)
    for ext in study.models.values():
        have &= np.array([study.store.has(h, ext.fingerprint) for h in labelled["content_hash"]],
                         bool)
    tracks = labelled.loc[have].reset_index(drop=True)
    if not len(tracks):
        return tracks, {}
    X = {label: load_embeddings(tracks, study.store, ext.fingerprint)[1]
         for label, ext in study.models.items()}
    return tracks, X


def evaluate_retrieval(study, *, n_splits: int = 5, seed: int = 0, inner: int = 3,
                       whitening: tuple[bool, ...] = (False, True),
                       ensemble: bool = True, n_threads: int | None = 1) -> RetrievalStudy:
    """Retrieval of every model (and their ensemble) on the labelled tracks all models have.

    Parameters
    ----------
    study : mtbc.study.Study
        ``tracks``, ``store`` and ``models`` (label -> extractor) of the run.
    n_splits, seed : int
        Outer folds (capped by the smallest label, as in notebook 04) and their seed.
    inner : int
        Grouped inner splits of each training part whose validation queries choose the layer
        and whitening.
    whitening : tuple of bool
        Whitening settings tried on validation.
    ensemble : bool
        Add the concatenation of the models' chosen spaces (each L2-normalised, equal
        weight) when there are two models or more.
    n_threads : int or None
        BLAS / faiss threads during the evaluation (``None``: as configured); one thread is
        fastest for the many small searches of a collection of a few thousand tracks.

    Returns
    -------
    RetrievalStudy
    """
    tracks, X = _common_tracks(study)
    counts = tracks["label"].value_counts()
    why_not = None
    if len(counts) < 2:
        why_not = (f"{len(counts)} label(s) among the {len(tracks)} labelled tracks every model "
                   f"has embedded: retrieval of same-label tracks needs at least 2 labels")
    elif fold_count(tracks["label"], n_splits) < 2:
        why_not = (f"label(s) {', '.join(map(str, counts[counts < 2].index))} have a single "
                   f"track: the folds need at least 2 tracks per label")
    if why_not is not None:
        tracks, X = _common_tracks(study, labelled_only=False)
        spaces = {label: normalise(Xm[:, -1]) for label, Xm in X.items()}
        return RetrievalStudy(tracks, pd.DataFrame(columns=["system", "track_id", "group",
                                                            *METRIC_NAMES]),
                              pd.DataFrame(columns=["system", "fold", "chosen"]), spaces,
                              why_not=why_not)
    with threads(n_threads):
        return _evaluate(tracks, X, n_splits=n_splits, seed=seed, inner=inner,
                         whitening=whitening, ensemble=ensemble)


def _evaluate(tracks: pd.DataFrame, X: dict[str, np.ndarray], *, n_splits: int, seed: int,
              inner: int, whitening: tuple[bool, ...], ensemble: bool) -> RetrievalStudy:
    folds, desc = outer_folds(tracks, n_splits=max(2, fold_count(tracks["label"], n_splits)),
                              seed=seed)
    groups = track_groups(tracks)
    per_query, validation, chosen_layers = [], [], {}
    for fold in folds:
        splits = ([(fold.train, fold.valid)] if fold.valid is not None
                  else inner_splits(tracks, fold.train, n_splits=inner, seed=seed))
        spaces = {}
        for label, Xm in X.items():
            system = RetrievalSystem(whitening=whitening).fit(Xm, tracks, fold.train)
            best = system.choose(splits)
            val = system.validation_.assign(system=label, fold=fold.name)
            val["chosen"] = (val["layer"] == best.layer) & (val["whiten"] == best.whiten)
            validation.append(val)
            per_query.append(system.score(fold.test).assign(system=label, fold=fold.name))
            spaces[label] = system.transform()
            chosen_layers.setdefault(label, []).append((best.layer, best.whiten))
        if ensemble and len(X) > 1:
            V = np.concatenate([normalise(v) for v in spaces.values()], axis=1)
            name = f"{ENSEMBLE} ({' + '.join(X)})"
            table = score_queries(V, tracks, fold.test, np.arange(len(tracks)), groups=groups)
            per_query.append(table.assign(system=name, fold=fold.name, layer=-1, whiten=False))
            # the ensemble chooses nothing itself: its validation score is its members'
            # choices scored on the same validation queries
            val_parts = []
            for fit, valid in splits:
                fit_spaces = []
                for label, Xm in X.items():
                    s = RetrievalSystem(whitening=whitening).fit(Xm, tracks, fold.train)
                    s.chosen_ = next(c for c in s.candidates() if (c.layer, c.whiten)
                                     == chosen_layers[label][-1])
                    fit_spaces.append(normalise(s.space(s.chosen_, fit)))
                val_parts.append(score_queries(np.concatenate(fit_spaces, axis=1), tracks,
                                               valid, fold.train, groups=groups))
            pooled = pd.concat(val_parts)
            validation.append(pd.DataFrame([{
                "layer": -1, "whiten": False, "val_ap@10": pooled["ap@10"].mean(),
                "val_p@5": pooled["p@5"].mean(), "n_valid": len(pooled), "system": name,
                "fold": fold.name, "chosen": True}]))
    per_query = pd.concat(per_query, ignore_index=True)
    validation = pd.concat(validation, ignore_index=True)
    spaces = {}
    for label, Xm in X.items():
        layer, whiten = pd.Series(chosen_layers[label]).mode().iloc[0]
        system = RetrievalSystem(layers=[layer], whitening=(whiten,)).fit(
            Xm, tracks, np.arange(len(tracks)))
        spaces[label] = system.transform()
    if ensemble and len(X) > 1:
        spaces[f"{ENSEMBLE} ({' + '.join(X)})"] = np.concatenate(
            [normalise(v) for v in spaces.values()], axis=1)
    return RetrievalStudy(tracks, per_query, validation, spaces, desc)


def summary_table(per_query: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """Mean of every per-query metric per system with its group-bootstrap CI.

    Parameters
    ----------
    per_query : pandas.DataFrame
        ``system, group`` and :data:`~mtbc.similarity.metrics.METRIC_NAMES` per query.
    n_boot, seed, level : int, int, float
        Cluster-bootstrap resamples (queries of one group drawn together), seed, level.

    Returns
    -------
    pandas.DataFrame
        ``system, metric, value, ci_low, ci_high, chance, n_queries, n_groups``; ``chance``
        is the expected precision of a random ranking (P@k rows only).
    """
    rows = []
    columns = ["system", "metric", "value", "ci_low", "ci_high", "chance", "n_queries",
               "n_groups"]
    if not len(per_query):
        return pd.DataFrame(columns=columns)
    for system, t in per_query.groupby("system", sort=False):
        codes, n_groups = group_codes(t["group"].to_numpy(), len(t))
        for metric in METRIC_NAMES:
            values = t[metric].to_numpy(float)
            ok = ~np.isnan(values)
            v, c = values[ok], codes[ok]
            low, high = (group_bootstrap(lambda w, v=v: (w @ v) / np.maximum(w.sum(1), 1e-12),
                                         len(v), groups=c, n_boot=n_boot, seed=seed,
                                         level=level) if len(v) else (np.nan, np.nan))
            rows.append({"system": system, "metric": metric,
                         "value": float(v.mean()) if len(v) else np.nan,
                         "ci_low": low, "ci_high": high,
                         "chance": float(t["chance"].mean()) if metric.startswith("p@")
                         else np.nan,
                         "n_queries": int(ok.sum()), "n_groups": len(np.unique(c))})
    return pd.DataFrame(rows)


def paired_tests(per_query: pd.DataFrame, *, metric: str = "ap@10", n_perm: int = 10000,
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every pair of systems on the queries both answered: a sign-flip permutation test of
    the per-group sums of per-query differences (``scipy.stats.permutation_test``, exact up
    to ``n_perm`` patterns), the group-bootstrap CI of the mean difference, Holm over pairs.

    Returns
    -------
    pandas.DataFrame
        ``system_a, system_b, metric, value_a, value_b, diff, ci_low, ci_high, p_value,
        p_holm, n_queries, n_groups``.
    """
    if per_query["system"].nunique() < 2:
        return pd.DataFrame()
    wide = per_query.pivot_table(index=["track_id", "group"], columns="system", values=metric,
                                 sort=False)
    systems = list(dict.fromkeys(per_query["system"]))
    rows = []
    for a, b in itertools.combinations(systems, 2):
        pair = wide[[a, b]].dropna()
        d = (pair[a] - pair[b]).to_numpy()
        codes, n_groups = group_codes(pair.index.get_level_values("group").to_numpy(), len(d))
        d_g = np.bincount(codes, weights=d, minlength=n_groups)
        if np.allclose(d_g, 0):
            p = 1.0
        else:
            p = float(permutation_test((d_g,), lambda x, axis: np.sum(x, axis=axis),
                                       permutation_type="samples", vectorized=True,
                                       n_resamples=n_perm, alternative="two-sided",
                                       random_state=np.random.default_rng(seed)).pvalue)
        low, high = group_bootstrap(lambda w, d=d: (w @ d) / w.sum(1), len(d), groups=codes,
                                    n_boot=n_boot, seed=seed)
        rows.append({"system_a": a, "system_b": b, "metric": metric,
                     "value_a": float(pair[a].mean()), "value_b": float(pair[b].mean()),
                     "diff": float(d.mean()), "ci_low": low, "ci_high": high, "p_value": p,
                     "n_queries": len(d), "n_groups": n_groups})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(9, "p_holm", holm(table["p_value"].to_numpy()))
    return table


def answer(result: RetrievalStudy, summary: pd.DataFrame, tests: pd.DataFrame, *,
           alpha: float = 0.05) -> str:
    """One sentence: the system chosen on validation, its test P@5 and mAP@10 with CIs, and
    the Holm-adjusted tests against the others. It is called best only when it beats every
    other system at Holm-adjusted ``p < alpha``."""
    if result.why_not is not None:
        return f"No retrieval evaluation: {result.why_not}."
    best = result.chosen_by_validation()
    s = summary[summary["system"] == best].set_index("metric")

    def fmt(m):
        r = s.loc[m]
        return f"{m.upper()} {100 * r['value']:.0f}% [{100 * r['ci_low']:.0f}, " \
               f"{100 * r['ci_high']:.0f}]"

    figures = (f"{fmt('p@5')}, mAP@10 {100 * s.loc['ap@10', 'value']:.0f}% "
               f"[{100 * s.loc['ap@10', 'ci_low']:.0f}, {100 * s.loc['ap@10', 'ci_high']:.0f}] "
               f"over {int(s.loc['p@5', 'n_queries'])} queries in "
               f"{int(s.loc['p@5', 'n_groups'])} groups (chance P@5 "
               f"{100 * s.loc['p@5', 'chance']:.0f}%)")
    mine = tests[(tests["system_a"] == best) | (tests["system_b"] == best)] if len(tests) else tests
    wins = [r for r in mine.itertuples()
            if r.p_holm < alpha and (r.diff > 0) == (r.system_a == best)]
    if len(mine) and len(wins) == len(mine):
        text = f"{best} retrieves same-label songs best: {figures}"
    elif len(mine):
        text = (f"{best}, the system chosen on validation queries, is not significantly better "
                f"than every other one (Holm-adjusted p < {alpha}): {figures}")
    else:
        text = f"{best}: {figures}"
    if len(mine):
        parts = []
        for r in mine.itertuples():
            other = r.system_b if r.system_a == best else r.system_a
            sign = 1 if r.system_a == best else -1
            parts.append(f"{other} {100 * sign * r.diff:+.1f} points AP@10 (Holm p = "
                         f"{r.p_holm:.2g})")
        text += f"; {best} versus " + ", ".join(parts)
    return text + "."


def example_queries(result: RetrievalStudy, system: str, *, n_queries: int = 3, k: int = 5,
                    seed: int = 0) -> list[tuple[pd.Series, pd.DataFrame]]:
    """``n_queries`` random queries (one per label first, seeded) and their top ``k`` in
    ``system``'s space, own group left out: ``[(query row, results table)]`` with
    ``rank, track_id, label, similarity, path``."""
    tracks, V = result.tracks, normalise(result.spaces[system])
    groups = track_groups(tracks)
    rng = np.random.default_rng(seed)
    labels = tracks["label"].to_numpy()
    picks = [int(rng.choice(np.flatnonzero(labels == lab)))
             for lab in sorted(tracks["label"].dropna().unique())][:n_queries]
    rest = np.setdiff1d(np.arange(len(tracks)), picks)
    picks += rng.permutation(rest)[: max(0, n_queries - len(picks))].tolist()
    out = []
    for q in picks:
        sims = np.where(groups != groups[q], V @ V[q], -np.inf)
        top = np.argsort(-sims, kind="stable")[:k]
        top = top[np.isfinite(sims[top])]
        res = tracks.iloc[top][["track_id", "label", "path"]].reset_index(drop=True)
        res.insert(0, "rank", np.arange(1, len(top) + 1))
        res.insert(3, "similarity", sims[top].round(3))
        out.append((tracks.iloc[q], res))
    return out


def _umap_module():
    """``umap`` with its numba functions compiled once per machine, not once per process.

    umap-learn jit-compiles its fuzzy-set and layout functions without numba's on-disk
    cache, which costs tens of seconds in every new process (every notebook run). Turning
    the cache on (``Dispatcher.enable_caching``) keeps the machine code in numba's cache
    folder (``__pycache__`` or ``NUMBA_CACHE_DIR``); results are identical.
    """
    import umap  # heavy optional import (numba): only when a map is drawn
    import umap.layouts
    import umap.umap_
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts):
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher):
                try:
                    value.enable_caching()
                except (AttributeError, RuntimeError, OSError):  # an older numba: compile
                    pass
    return umap


def collection_map(result: RetrievalStudy, system: str, *, seed: int = 0,
                   n_neighbors: int = 15) -> pd.DataFrame:
    """A 2-D UMAP map (umap-learn, seeded) of ``system``'s space.

    The neighbour graph is the exact cosine top ``n_neighbors`` of the faiss index (the same
    neighbours the search returns), passed to UMAP as ``precomputed_knn``.

    Returns
    -------
    pandas.DataFrame
        ``track_id, label, x, y, method`` as :func:`mtbc.reports.plots.plot_projection`
        draws it (``attrs["note"]`` describes the settings).
    """
    import warnings

    umap = _umap_module()
    V = normalise(result.spaces[system])
    n = len(V)
    k = max(2, min(n_neighbors, n - 1))
    scores, idx = build_index(V).search(V, k)
    dists = np.sqrt(np.clip(2.0 - 2.0 * scores, 0.0, None)).astype(np.float32)
    reducer = umap.UMAP(n_neighbors=k, min_dist=0.1, metric="euclidean", random_state=seed,
                        n_jobs=1, n_epochs=200, init="spectral" if n > k + 1 else "random",
                        precomputed_knn=(idx, dists, None))
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": seeded, single thread
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        # "knn_search_index is not an NNDescent object": no transform of new data needed
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        xy = reducer.fit_transform(V)
    out = pd.DataFrame({"track_id": result.tracks["track_id"], "label": result.tracks["label"],
                        "x": xy[:, 0], "y": xy[:, 1], "method": "UMAP"})
    out.attrs["note"] = (f"UMAP of {system} (cosine neighbours, {k} per track, 200 epochs, "
                         f"seed {seed})")
    return out


def example_playlist(result: RetrievalStudy, system: str, *, length: int = 8,
                     seed: int = 0) -> pd.DataFrame:
    """A nearest-neighbour walk from a seeded random track: ``position, track_id, label,
    similarity_to_previous``, no repeats and no two tracks of one group."""
    tracks, V = result.tracks, normalise(result.spaces[system])
    start = int(np.random.default_rng(seed).integers(len(tracks)))
    order = playlist_walk(V, start, length=length, groups=track_groups(tracks))
    sims = [np.nan] + [float(V[a] @ V[b]) for a, b in zip(order, order[1:], strict=False)]
    out = tracks.iloc[order][["track_id", "label"]].reset_index(drop=True)
    out.insert(0, "position", np.arange(1, len(order) + 1))
    out["similarity_to_previous"] = np.round(sims, 3)
    return out
