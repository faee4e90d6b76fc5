"""Notebook 05 (ensembles): single models, concatenation and late fusion on the same
tracks and folds, paired tests, the system chosen on validation data and the answer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtbc.cache.store import load_aligned
from mtbc.evaluation import (
    ProbeResult,
    compare,
    early_fusion_evaluation,
    evaluate_all,
    evaluate_majority,
    evaluate_probe,
    late_fusion,
    probe_evaluation,
)
from mtbc.study.common import (
    ClassificationPlan,
    Study,
    choose_by_validation,
    default_ensembles,
    per_layer_test,
    plan_classification,
    system_name,
)
from mtbc.study.zeroshot import DEFAULT_TEMPLATE, zero_shot_results


@dataclass
class Comparison:
    """Notebook 05's results on the tracks every model embedded (``tracks``; ``n_left_out``
    others): every ``system``, the pairwise ``tests`` (Holm-adjusted), the system
    ``chosen`` on validation data, and the ``answer`` sentence."""

    plan: ClassificationPlan
    tracks: pd.DataFrame | None = None
    n_left_out: int = 0
    ensembles: list[list[str]] = field(default_factory=list)
    systems: list[ProbeResult] = field(default_factory=list)
    tests: pd.DataFrame | None = None
    chosen: ProbeResult | None = None
    answer: str = ""
    baseline: ProbeResult | None = None

    def all_results(self) -> list[ProbeResult]:
        """Every system, the majority-class baseline last."""
        return [*self.systems, *([self.baseline] if self.baseline else [])]

    def describe(self) -> str:
        combos = ", ".join(" + ".join(c) for c in self.ensembles) or "none (one model)"
        return (f"{len(self.tracks)} tracks embedded by every model ({self.n_left_out} left "
                f"out); ensembles: {combos}.")


def compare_systems(study: Study, *, ensembles: list[list[str]] | None = None, seed: int = 0,
                    n_splits: int = 5, n_boot: int = 1000,
                    protocol: str = "default",
                    zero_shot_template: str = DEFAULT_TEMPLATE) -> Comparison:
    """Every model alone (linear probe; MARBLE's MLP with ``protocol="marble"``),
    concatenation (linear probe) and late fusion of each ensemble, on the same tracks and
    folds, and each CLAP model's zero-shot result (prompts from ``zero_shot_template``;
    never chosen); paired tests; the validation-chosen system; the answer."""
    plan = plan_classification(study.tracks, n_splits=n_splits)
    out = Comparison(plan, ensembles=ensembles if ensembles is not None
                     else default_ensembles(study.models))
    if plan.why_not:
        out.answer = f"No comparison: {plan.why_not}."
        return out
    common, blocks = load_aligned(plan.tracks, study.store,
                                  {label: e.fingerprint for label, e in study.models.items()})
    out.tracks, out.n_left_out = common, len(plan.tracks) - len(common)
    probe = "marble" if protocol == "marble" else "linear"
    # a model alone is notebook 04's result of the same name when every track is common
    suffix = "" if out.n_left_out == 0 else " (common tracks)"
    # with 04's options exactly (its per-layer test curve too), so that 04's kept outcome
    # is reused rather than computed again (mtbc.evaluation.memo); the concatenations run
    # in the same queue of folds, after the models alone (whose layer rankings they reuse)
    opts = {"seed": seed, "n_splits": plan.n_folds, "n_boot": n_boot,
            "reuse_dir": study.reuse_dir}
    singles, pending = {}, {}
    for label in study.models:
        kw = {**opts, "name": system_name(label, probe) + suffix,
              "fingerprint": study.models[label].fingerprint,
              "per_layer_test": per_layer_test(blocks[label][0], probe)}
        if protocol == "marble":
            singles[label] = evaluate_probe(*blocks[label], common, protocol=protocol, **kw)
        else:
            pending[label] = probe_evaluation(*blocks[label], common, **kw)
    for combo in out.ensembles:
        name = " + ".join(combo)
        pending[tuple(combo)] = early_fusion_evaluation(
            {m: blocks[m] for m in combo}, common,
            name=system_name(f"concat({name})", "linear"), **opts)
    done = dict(zip(pending, evaluate_all(list(pending.values())), strict=True))
    singles.update({k: v for k, v in done.items() if isinstance(k, str)})
    singles = {label: singles[label] for label in study.models}
    out.systems = list(singles.values())
    for combo in out.ensembles:
        name = " + ".join(combo)
        out.systems.append(done[tuple(combo)])
        out.systems.append(late_fusion([singles[m] for m in combo],
                                       name=system_name(f"late({name})", probe)))
    out.systems += zero_shot_results(study, common, blocks, seed=seed, n_splits=plan.n_folds,
                                     n_boot=n_boot, template=zero_shot_template, suffix=suffix)
    if len(out.systems) > 1:
        out.tests = compare(out.systems)
    out.chosen = choose_by_validation(out.systems)
    out.answer = answer_sentence(out.systems, out.tests, out.chosen)
    out.baseline = evaluate_majority(common, seed=seed, n_splits=plan.n_folds, n_boot=n_boot)
    return out


def _pct_ci(result: ProbeResult) -> str:
    m = result.metrics.set_index("metric").loc["accuracy"]
    return (f"{100 * m['value']:.1f}% test accuracy (95% CI {100 * m['ci_low']:.1f} to "
            f"{100 * m['ci_high']:.1f}, n = {result.n_tracks} tracks)")


def answer_sentence(systems: list[ProbeResult], tests: pd.DataFrame | None,
                    chosen: ProbeResult | None) -> str:
    """The answer, led by the system chosen on validation data; it says plainly when that
    system is not significantly better than the others (Holm-adjusted paired tests)."""
    if not systems:
        return "No system could be evaluated."
    if chosen is None:
        chosen = systems[0]
    if len(systems) == 1 or tests is None or not len(tests):
        return f"Only **{chosen.name}** was evaluated: {_pct_ci(chosen)}."
    mine = tests[(tests["system_a"] == chosen.name) | (tests["system_b"] == chosen.name)]
    better, not_better, worse = [], [], []
    for row in mine.itertuples():
        other = row.system_b if row.system_a == chosen.name else row.system_a
        diff = row.accuracy_a - row.accuracy_b
        diff = diff if row.system_a == chosen.name else -diff
        (better if row.p_holm < 0.05 and diff > 0 else
         worse if row.p_holm < 0.05 else not_better).append(other)
    any_sig = bool((tests["p_holm"] < 0.05).any())
    lead = (f"**{chosen.name}**, the system chosen on validation data, reached "
            f"{_pct_ci(chosen)}")
    if not any_sig:
        return (f"No system is significantly better than another (Holm-adjusted paired tests, "
                f"all p ≥ 0.05). {lead}.")
    parts = []
    if better:
        parts.append(f"it is significantly better than {', '.join(better)} (p < 0.05)")
    if worse:
        parts.append(f"significantly worse than {', '.join(worse)} (p < 0.05)")
    if not_better:
        parts.append(f"not significantly different from {', '.join(not_better)} (p ≥ 0.05)")
    if not better and not worse:
        parts[-1] = "it is " + parts[-1]
    return f"{lead}; " + "; ".join(parts) + " (Holm-adjusted paired tests)."



def accuracy_difference_matrix(systems: list[ProbeResult]) -> pd.DataFrame:
    """Row system's test accuracy minus column system's, in percentage points."""
    acc = {r.name: r.metric() for r in systems}
    names = list(acc)
    return pd.DataFrame([[100 * (acc[a] - acc[b]) if a != b else np.nan for b in names]
                         for a in names], index=pd.Index(names, name="system"), columns=names)
