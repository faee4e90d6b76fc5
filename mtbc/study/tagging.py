"""What notebook 06 (tagging) computes, one call per step (``docs/tagging.md``).

- :func:`tag_systems`: every model (linear, optionally MLP tagging probes), concatenation and
  late fusion of each ensemble on the same tracks and folds, musicnn's zero-shot row, paired
  tests (Holm) and the system chosen by **validation** macro ROC-AUC (:class:`Tagging`).
- Tables: :func:`tagging_table` (macro ROC-AUC / PR-AUC with CIs and n), the comparison's two
  layouts :func:`mtat_style_table` (ROC-AUC, PR-AUC) and :func:`openmic_style_table` (mAP,
  top-1, top-3), :func:`per_tag_frame` for the per-tag bars.
- The run's ``results.csv`` gets the tagging rows from :func:`mtbc.reports.audit.audit_results`.
- :func:`openmic_vggish_check`: mtbc's VGGish ``pca_uint8`` output against OpenMIC's ``X``.

Zero-shot (no training): musicnn's own MTT tag probabilities score the collection's tags
whose names match an MTT tag (:func:`zero_shot_map`: the explicit :data:`ZERO_SHOT_TAGS`
table first, then equal names, case-insensitive); a tag mapped to several MTT tags takes
their maximum. It is evaluated on the same test tracks, on the matched tags only, and is not
part of the paired tests (a different tag set) nor of the validation choice. A CLAP model's
zero-shot row (:mod:`mtbc.study.zeroshot`, every tag as a text prompt) is shown the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtbc.cache.store import load_aligned, load_embeddings
from mtbc.data.tags import has_tags, tag_matrix
from mtbc.evaluation import (
    TaggingResult,
    evaluate_all,
    tagging_early_fusion_evaluation,
    tagging_evaluation,
    tagging_late_fusion,
)
from mtbc.evaluation.parallel import parallel_map
from mtbc.evaluation.results import ZERO_SHOT as ZERO_SHOT_SYSTEM
from mtbc.evaluation.results import Provenance, TagScores, tagging_result
from mtbc.evaluation.tasks import usable_tags
from mtbc.stats import holm, multilabel_paired_test
from mtbc.study.common import (
    Study,
    auto_tags,
    default_ensembles,
    musicnn_labels,
    system_name,
)
from mtbc.study.zeroshot import DEFAULT_TEMPLATE, zero_shot_results

ZERO_SHOT = "zero-shot (no training)"
#: Collection tag -> MTT tags that score it zero-shot. Demo GM instruments (mtbc.data.demo.
#: INSTRUMENT_TAGS) and OpenMIC instruments; vibraphone, organ, accordion, clarinet and most
#: OpenMIC brass/percussion have no MTT tag and get no zero-shot score.
ZERO_SHOT_TAGS: dict[str, tuple[str, ...]] = {
    "piano": ("piano",), "harpsichord": ("harpsichord",), "guitar": ("guitar",),
    "violin": ("violin",), "harp": ("harp",), "strings": ("strings",),
    "choir": ("choir", "choral"), "flute": ("flute",), "cello": ("cello",),
    "drums": ("drums",), "voice": ("voice", "vocal", "vocals", "singing"),
    "synthesizer": ("synth",), "sitar": ("sitar",),
}


def zero_shot_map(tags, model_tags) -> dict[str, list[str]]:
    """Collection tag -> the model's tags that score it (explicit table, then equal names)."""
    lower = {t.lower(): t for t in model_tags}
    out = {}
    for tag in tags:
        wanted = ZERO_SHOT_TAGS.get(tag.lower(), (tag.lower(),))
        hits = [lower[w] for w in wanted if w in lower]
        if hits:
            out[tag] = hits
    return out


@dataclass(frozen=True)
class TaggingPlan:
    """The tagged ``tracks``, the ``tags`` used, and ``why_not`` (None: tagging runs)."""

    tracks: pd.DataFrame
    tags: list
    why_not: str | None

    def describe(self) -> str:
        if self.why_not:
            return f"**no tagging**: {self.why_not}."
        _, mask, _ = tag_matrix(self.tracks, tags=self.tags)
        return (f"{len(self.tracks)} tagged tracks, {len(self.tags)} tags "
                f"({int((~mask).sum())} unknown track-tag entries masked out).")


def plan_tagging(tracks: pd.DataFrame) -> TaggingPlan:
    """Which tracks and tags a tagging evaluation can use."""
    if not has_tags(tracks):
        return TaggingPlan(tracks.iloc[:0], [], "the collection has no tags (add a `tags` "
                                                "column to the manifest, docs/tagging.md)")
    _, mask, _ = tag_matrix(tracks)
    tagged = tracks.loc[mask.any(axis=1)].reset_index(drop=True)
    tags = usable_tags(tagged)
    if not tags:
        return TaggingPlan(tagged, [], "no tag has both a known positive and a known negative")
    return TaggingPlan(tagged, tags, None)


@dataclass
class Tagging:
    """Notebook 06's results: ``systems`` (trained, same folds), ``zero_shot`` rows, paired
    ``tests``, the system ``chosen`` on validation data and the ``answer``."""

    plan: TaggingPlan
    tracks: pd.DataFrame | None = None
    systems: list[TaggingResult] = field(default_factory=list)
    zero_shot: list[TaggingResult] = field(default_factory=list)
    tests: pd.DataFrame | None = None
    chosen: TaggingResult | None = None
    answer: str = ""


def choose_tagging_system(results: list[TaggingResult]) -> TaggingResult | None:
    """Best validation macro ROC-AUC (ties: the earlier); None if none has one."""
    scored = [(r.validation_score(), -i, r) for i, r in enumerate(results)]
    scored = [s for s in scored if np.isfinite(s[0])]
    return max(scored, key=lambda s: s[:2])[2] if scored else None


def zero_shot_musicnn(study: Study, label: str, like: TaggingResult) -> TaggingResult | None:
    """musicnn ``label``'s own tag probabilities on ``like``'s test tracks and matched tags."""

    auto = auto_tags(study, label)
    mapping = zero_shot_map(like.tags, auto.scores.columns)
    if not mapping:
        return None
    tags = list(mapping)
    ids = like.scores.index
    S = np.column_stack([auto.scores.loc[ids, mapping[t]].max(axis=1).to_numpy()
                         for t in tags])
    truth = like.truth[tags]
    scores = TagScores(track_ids=ids, Y=truth.to_numpy(), S=S, mask=truth.notna().to_numpy(),
                       groups=like.groups.to_numpy(), fold=["zero-shot"] * len(ids))
    how = Provenance(name=system_name(label, ZERO_SHOT), task="tagging",
                     system=ZERO_SHOT_SYSTEM, probe=ZERO_SHOT, layer="tags", selection="none",
                     scorer="none", split=like.split, seed=like.seed, n_boot=like.n_boot,
                     params={"mapping": {t: "+".join(v) for t, v in mapping.items()},
                             "model": auto.model})
    return tagging_result(scores, tags, how)


def paired_tagging_tests(systems: list[TaggingResult], *, n_perm: int = 1000,
                         n_boot: int = 1000) -> pd.DataFrame:
    """Every pair on the same tracks: macro ROC-AUC difference with CI and the swap
    permutation p-value (groups kept together), Holm-adjusted over the table."""
    pairs = list(itertools.combinations(systems, 2))

    def test(_, pair):
        a, b = pair
        return multilabel_paired_test(a.truth.to_numpy(), a.metric_scores(),
                                      b.metric_scores().astype(float), mask=a.mask,
                                      groups=a.groups.to_numpy(), n_perm=n_perm,
                                      n_boot=n_boot, seed=a.seed)

    rows = []
    # pairs side by side: numpy's sorts release the GIL (mtbc.evaluation.parallel)
    for (a, b), t in zip(pairs, parallel_map(test, pairs), strict=True):
        rows.append({"system_a": a.name, "system_b": b.name, "roc_auc_a": t["value_a"],
                     "roc_auc_b": t["value_b"], "diff": t["diff"], "ci_low": t["ci_low"],
                     "ci_high": t["ci_high"], "p_value": t["p_value"],
                     "n_tracks": t["n_tracks"], "n_groups": t["n_groups"]})
    out = pd.DataFrame(rows, columns=["system_a", "system_b", "roc_auc_a", "roc_auc_b", "diff",
                                      "ci_low", "ci_high", "p_value", "n_tracks", "n_groups"])
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    return out


def _auc_text(r: TaggingResult) -> str:
    m = r.metrics.set_index("metric").loc["roc_auc_macro"]
    return (f"macro ROC-AUC {m['value']:.3f} (95% CI {m['ci_low']:.3f} to {m['ci_high']:.3f}, "
            f"n = {r.n_tracks} tracks)")


def tagging_answer(systems, tests, chosen) -> str:
    """The system chosen on validation data and whether its lead is significant."""
    if not systems:
        return "No tagging system could be evaluated."
    chosen = chosen or systems[0]
    text = f"**{chosen.name}**, the tagging system chosen on validation data, reached {_auc_text(chosen)}"
    if tests is None or not len(tests):
        return text + "."
    mine = tests[(tests["system_a"] == chosen.name) | (tests["system_b"] == chosen.name)]
    better = [r.system_b if r.system_a == chosen.name else r.system_a for r in mine.itertuples()
              if r.p_holm < 0.05 and (r.diff > 0) == (r.system_a == chosen.name)]
    if better:
        return text + f"; significantly better than {', '.join(better)} (Holm, p < 0.05)."
    return text + "; not significantly better than any other system (Holm-adjusted tests)."


def tag_systems(study: Study, *, probes=("linear",), ensembles=None, seed: int = 0,
                n_splits: int = 5, n_boot: int = 1000, n_perm: int = 1000,
                zero_shot_template: str = DEFAULT_TEMPLATE) -> Tagging:
    """Every model, each ensemble (concatenation and late fusion), musicnn zero-shot and
    CLAP zero-shot (tag prompts from ``zero_shot_template``); paired tests; the
    validation-chosen system; the answer."""
    plan = plan_tagging(study.tracks)
    out = Tagging(plan)
    if plan.why_not:
        out.answer = f"No tagging: {plan.why_not}."
        return out
    common, blocks = load_aligned(plan.tracks, study.store,
                                  {label: e.fingerprint for label, e in study.models.items()})
    out.tracks = common
    opts = {"tags": plan.tags, "seed": seed, "n_splits": n_splits, "n_boot": n_boot,
            "reuse_dir": study.reuse_dir}
    # every probe and concatenation in one queue of folds; the concatenations last, so that
    # they reuse the models' kept layer rankings (mtbc.evaluation.memo)
    pending = {}
    for label, ext in study.models.items():
        for probe in probes:
            pending[label, probe] = tagging_evaluation(
                *blocks[label], common, probe=probe, fingerprint=ext.fingerprint,
                name=system_name(label, probe), **opts)
    combos = []
    for combo in (default_ensembles(study.models) if ensembles is None else ensembles):
        combo = [m for m in combo if m in study.models]  # models that did not run drop out
        if len(combo) < 2:
            continue
        combos.append(combo)
        name = " + ".join(combo)
        pending[tuple(combo), "concat"] = tagging_early_fusion_evaluation(
            {m: blocks[m] for m in combo}, common,
            name=system_name(f"concat({name})", "linear"), **opts)
    done = dict(zip(pending, evaluate_all(list(pending.values())), strict=True))
    singles = {}
    for label in study.models:
        for probe in probes:
            out.systems.append(done[label, probe])
            if probe == "linear":
                singles[label] = done[label, probe]
    for combo in combos:
        name = " + ".join(combo)
        out.systems.append(done[tuple(combo), "concat"])
        out.systems.append(tagging_late_fusion([singles[m] for m in combo],
                                               name=system_name(f"late({name})", "linear")))
    for label in musicnn_labels(study):
        z = zero_shot_musicnn(study, label, singles[label])
        if z is not None:
            out.zero_shot.append(z)
    out.zero_shot += zero_shot_results(study, common, blocks, tags=plan.tags, seed=seed,
                                       n_splits=n_splits, n_boot=n_boot,
                                       template=zero_shot_template)
    if len(out.systems) > 1:
        out.tests = paired_tagging_tests(out.systems, n_perm=n_perm, n_boot=n_boot)
    out.chosen = choose_tagging_system(out.systems)
    out.answer = tagging_answer(out.systems, out.tests, out.chosen)
    return out


# ------------------------------------------------------------------------------ tables

def _ci(m: pd.DataFrame, key: str) -> str:
    r = m.loc[key]
    return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def tagging_table(results, *, chosen=None) -> pd.DataFrame:
    """Per system: macro ROC-AUC and PR-AUC (mAP) with group-bootstrap 95% CIs, micro ROC-AUC,
    the validation macro ROC-AUC behind its choices, chosen layers, n tracks / groups / tags."""
    rows = []
    for r in results:
        m = r.metrics.set_index("metric")
        val = r.validation_score()
        rows.append({"system": r.name, "macro ROC-AUC [95% CI]": _ci(m, "roc_auc_macro"),
                     "macro PR-AUC (mAP) [95% CI]": _ci(m, "pr_auc_macro"),
                     "micro ROC-AUC": round(m.loc["roc_auc_micro", "value"], 3),
                     "validation macro ROC-AUC": round(val, 3) if np.isfinite(val) else "",
                     "chosen on validation": "yes" if chosen is not None
                     and r.name == chosen.name else "",
                     "layer(s) chosen": r.chosen_layers(), "n tracks": r.n_tracks,
                     "n groups": int(m.loc["roc_auc_macro", "n_groups"]),
                     "n tags": len(r.tags)})
    return pd.DataFrame(rows).set_index("system")


def mtat_style_table(results) -> pd.DataFrame:
    """The comparison's MagnaTagATune layout: macro ROC-AUC and PR-AUC per system."""
    return pd.DataFrame([{"system": r.name, "ROC-AUC": round(r.metric("roc_auc_macro"), 4),
                          "PR-AUC": round(r.metric("pr_auc_macro"), 4)} for r in results]
                        ).set_index("system")


def openmic_style_table(results) -> pd.DataFrame:
    """The comparison's OpenMIC layout: mAP, top-1 and top-3 accuracy (%) per system."""
    return pd.DataFrame([{"system": r.name, "mAP": round(r.metric("pr_auc_macro"), 4),
                          "top-1 (%)": round(100 * r.metric("top1"), 1),
                          "top-3 (%)": round(100 * r.metric("top3"), 1)} for r in results]
                        ).set_index("system")


def per_tag_frame(results) -> pd.DataFrame:
    """Long table ``system, tag, roc_auc, positive`` for :func:`mtbc.reports.plots.plot_tag_auc`."""
    parts = [r.per_tag.reset_index()[["tag", "roc_auc", "positive"]].assign(system=r.name)
             for r in results]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["tag", "roc_auc", "positive", "system"])


def openmic_vggish_check(study: Study) -> tuple[pd.DataFrame | None, str]:
    """mtbc's VGGish ``pca_uint8`` frames against OpenMIC's official ``X``: the per-clip
    agreement summary, or None and why it was skipped."""
    from mtbc.data.openmic import agreement_summary, official_vggish, vggish_agreement

    kind, _, root = study.collection.source.partition(":")
    if kind != "openmic":
        return None, "not an OpenMIC-2018 collection"
    labels = [lab for lab, e in study.models.items() if e.name == "vggish"
              and getattr(e, "postprocess", None) == "pca_uint8"]
    if not labels:
        return None, "no VGGish extractor with `postprocess: pca_uint8` ran in this study"
    official = official_vggish(root)
    if not official:
        return None, "the OpenMIC archive has no X array"
    tracks, (feats, index) = load_embeddings(study.tracks, study.store,
                                             study.models[labels[0]].fingerprint, reduce=None)
    ours = {tid: feats[index == i, 0] for i, tid in enumerate(tracks["track_id"])}
    return agreement_summary(vggish_agreement(ours, official)), f"extractor {labels[0]}"


def paired_tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """:func:`paired_tagging_tests` as a page-width table: the macro ROC-AUC difference
    (row system a minus b) with its 95% CI, the Holm-adjusted p-value, and n."""
    out = pd.DataFrame({
        "system a": tests["system_a"], "system b": tests["system_b"],
        "ROC-AUC a - b [95% CI]": [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in
                                   zip(tests["diff"], tests["ci_low"], tests["ci_high"],
                                       strict=True)],
        "p (Holm)": tests["p_holm"].round(3),
        "n tracks (groups)": [f"{t} ({g})" for t, g in zip(tests["n_tracks"],
                                                           tests["n_groups"], strict=True)]})
    return out.set_index(["system a", "system b"])
