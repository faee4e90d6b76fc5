"""The audit of the MERT-vs-VGGish comparison's claims: a verdict for every claim.

Each :class:`Claim` says what was claimed (in mtbc's words), where (the comparison's section),
how mtbc checks it (``check``: ``config``, ``architecture``, ``compute``, ``accuracy``,
``statistics``, ``training``, ``finetune``, ``robustness``) and the expected value or range. :func:`audit` gives every
claim a :class:`Verdict`: ``confirmed``, ``contradicted`` or ``not testable here``, with
what mtbc measured or read, where from, and why (``docs/claims.md``). It never confirms a
claim from random or fixture weights: figures from them are labelled, and only claims
that do not depend on weight values (architecture, sizes, memory) are decided with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mtbc.claims.data import (
    CLAIMS,
    CONFIRMED,
    CONTRADICTED,
    DATASET_PARAMS,
    NOT_TESTABLE,
    VERDICTS,
    Claim,
    Evidence,
    Verdict,
    dataset_of,
)
from mtbc.claims.measured import check_finetune, check_robustness

# ----------------------------------------------------------------------------- helpers

def _in(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


def _near(value: float, expected: float, rel: float) -> bool:
    return abs(value - expected) <= rel * abs(expected)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _params_hint(dataset: str, root: Path | None) -> str:
    path = DATASET_PARAMS[dataset]
    exists = (root / path).is_file() if root is not None else False
    return f"`{path}`" + ("" if exists else " (not in this checkout yet)")


def _rows(ev: Evidence, model: str, *, batch: int | None = None) -> list[dict]:
    """07's timed rows of ``model`` in the precision extraction uses; only full-size models
    (a tiny test fixture has the model's name, not its architecture)."""
    full = ev.facts.get(f"{model.split('-')[0]}.params") if model != "mert-95m" else None
    rows = [r for r in ev.compute if r.get("model") == model and r.get("seconds_per_clip")
            and (full is None or abs(r.get("params", full) - full) <= 0.01 * full)]
    auto = [r for r in rows if r.get("dtype") == r.get("auto_dtype")] or rows
    return [r for r in auto if batch is None or r.get("batch_size") == batch]


def _weights_note(rows: Sequence[dict]) -> str:
    kinds = sorted({r.get("weights_kind", "?") for r in rows})
    return ", ".join(kinds)


# ----------------------------------------------------------------------------- the audit

def _check_fact(claim: Claim, ev: Evidence) -> Verdict:
    f = ev.facts
    src = f.get(f"{claim.model.split('-')[0]}.source", "configs")
    key = claim.key
    if key not in f and key != "ensemble.dims":
        return Verdict(claim.id, NOT_TESTABLE, "-", src, f"no fact {key!r} was read")
    if key == "mert.cqt":
        ok = f["mert.cqt"] is True
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"feature_extractor_cqt={str(f['mert.cqt']).lower()}; front end: "
                       f"{f['mert.front_end']}", src,
                       "the released model has no CQT, MFCC or chroma step: a conv front end "
                       "reads the normalised waveform" if not ok else "a CQT branch is on")
    if key == "mert.params":
        v = f[key]
        ok = _near(v, claim.expected, 0.05)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, f"{v / 1e6:.1f}M", src,
                       f"{v / 1e6:.1f}M parameters is {'within' if ok else 'outside'} 5% of "
                       f"330M (the name rounds up)")
    if key == "vggish.params":
        v = f[key]
        ok = _near(v, claim.expected, 0.10)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, f"{v / 1e6:.1f}M", src,
                       f"{v / 1e6:.1f}M is {'within' if ok else 'outside'} 10% of 70M")
    if key == "vggish.pca":
        got = f[key]
        ok = tuple(got) == tuple(claim.expected)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"PCA {got[0]} -> {got[1]}; 12,288 = 512 x 6 x 4 is the flattened conv "
                       f"output into the first FC layer ({f['vggish.fc_in']} -> 4096)", src,
                       "the PCA acts on the 128-d embedding, not on 12,288 values"
                       if not ok else "as claimed")
    if key == "vggish.mel_bands":
        v = f[key]
        ok = v == claim.expected
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"{v} mel bands x {f['vggish.frames']} frames per example", src,
                       "96 is the number of 10 ms frames per example, not of mel bands"
                       if not ok else "as claimed")
    if key == "vggish.blocks":
        v = f[key]
        ok = v == claim.expected
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"{v} blocks ({f['vggish.convs']} conv layers: 1, 1, 2, 2 per block)",
                       src, "four conv blocks, each ending in max-pooling" if ok
                       else "block count differs")
    if key == "ensemble.dims":
        mert, vgg = f.get("mert.dim"), f.get("vggish.dim")
        if mert is None or vgg is None:
            return Verdict(claim.id, NOT_TESTABLE, "-", src, "dimensions not read")
        ok = mert + vgg == claim.expected
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"{mert} + {vgg} = {mert + vgg}", f.get("mert.source", src),
                       "MERT-v1-330M is 1024-d (768 is MERT-v1-95M)" if not ok else "as claimed")
    v = f[key]
    ok = v == claim.expected
    return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, f"{v} {claim.unit}".strip(),
                   src, "as claimed" if ok else f"the config says {v}, not {claim.expected}")


def _check_training(claim: Claim, ev: Evidence) -> Verdict:
    return Verdict(claim.id, NOT_TESTABLE, "-", "-",
                   "a training-data claim: the weights and configs do not record how much "
                   "audio the model was trained on (see the MERT paper)")


def _check_size(claim: Claim, ev: Evidence) -> Verdict:
    model = "mert" if claim.model.startswith("mert") else "vggish"
    params = ev.facts.get(f"{model}.params")
    if params is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", "-", "parameter count not read")
    size = params * 4
    ok = _near(size, claim.expected, 0.10) or _near(size / 2**20 * 1e6, claim.expected, 0.10)
    return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                   f"{params / 1e6:.1f}M x 4 B = {size / 1e6:.0f} MB ({size / 2**20:.0f} MiB)",
                   ev.facts.get(f"{model}.source", "architecture"),
                   "fp32 weights of the architecture" + ("" if ok else "; differs by > 10%"))


def _check_compute(claim: Claim, ev: Evidence) -> Verdict:
    kind, _, rest = claim.key.partition(".")
    model = rest.split(".")[0]
    if kind == "size":
        return _check_size(claim, ev)
    if kind == "speed" and model == "ratio":
        mert, vgg = _rows(ev, "mert-330m", batch=1), _rows(ev, "vggish", batch=1)
        if not mert or not vgg:
            return Verdict(claim.id, NOT_TESTABLE, "-", "notebook 07",
                           "MERT-v1-330M and VGGish were not both timed in this run")
        ratio = mert[0]["seconds_per_clip"] / vgg[0]["seconds_per_clip"]
        ok = _in(ratio, *claim.expected)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"{ratio:.0f}x (MERT {mert[0]['seconds_per_clip']:.2f} s, "
                       f"{mert[0]['dtype']}; VGGish {vgg[0]['seconds_per_clip']:.3f} s, "
                       f"{vgg[0]['dtype']}, per 30 s clip)",
                       f"notebook 07, this machine ({mert[0]['device']}); weights: "
                       f"{_weights_note(mert + vgg)} (timing does not depend on weight values)",
                       "a ratio on one machine can be checked on any machine" +
                       ("" if ok else f"; {ratio:.0f}x is outside 5-6x"))
    rows = _rows(ev, model)
    if not rows:
        return Verdict(claim.id, NOT_TESTABLE, "-", "notebook 07",
                       f"{model} was not measured in this run")
    src = f"notebook 07 ({rows[0]['device']}; weights: {_weights_note(rows)})"
    if kind == "ram":
        rss = rows[0]["peak_rss_mib"]
        ok = _near(rss, claim.expected, 0.30)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED,
                       f"{rss:.0f} MiB peak RSS ({rows[0].get('baseline_rss_mib', float('nan')):.0f}"
                       f" MiB of it before the model loads)", src,
                       "memory does not depend on weight values; " +
                       ("within 30%" if ok else "more than 30% away"))
    if kind == "vram":
        vram = rows[0].get("peak_vram_mib")
        if vram is None:
            return Verdict(claim.id, NOT_TESTABLE, "-", src, "no GPU in this run")
        ok = _near(vram, claim.expected, 0.30)
        return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, f"{vram:.0f} MiB", src,
                       "within 30%" if ok else "more than 30% away")
    if kind == "load":
        return Verdict(claim.id, NOT_TESTABLE, f"{rows[0]['load_s']:.1f} s "
                       f"({rows[0].get('weights_source', 'files')})", src,
                       "load time depends on the disk and the machine; not the same hardware")
    if kind == "speed":
        if rest.endswith(".batch"):
            parts = []
            for b, _claimed in claim.expected:
                hit = [r for r in rows if r["batch_size"] == b]
                parts.append(f"batch {b}: " + (f"{hit[0]['seconds_per_clip'] * b * 30 / hit[0]['clip_seconds']:.1f} s"
                                               if hit else "not run"))
            return Verdict(claim.id, NOT_TESTABLE, "; ".join(parts), src,
                           "not the same hardware (the claim's CPU is a Jetson Orin)")
        b1 = [r for r in rows if r["batch_size"] == 1]
        if not b1:
            return Verdict(claim.id, NOT_TESTABLE, "-", src, "batch 1 not measured")
        r = b1[0]
        s = r["seconds_per_clip"] * 30 / r["clip_seconds"]
        return Verdict(claim.id, NOT_TESTABLE,
                       f"{s:.2f} s per 30 s clip ({r['device']}, {r['dtype']}, batch 1)", src,
                       f"not the same hardware (the claim's figures are for a Jetson Orin CPU, "
                       f"an RTX 3090 and an M1); ours is {r['device']} of this machine")
    return Verdict(claim.id, NOT_TESTABLE, "-", src, "no check")


def _check_accuracy(claim: Claim, ev: Evidence) -> Verdict:
    which = claim.key.split(".", 1)[1]
    dataset = dataset_of(ev.collection)
    needed = {"mert": ["mert"], "vggish": ["vggish"], "ensemble": ["mert", "vggish"],
              "margin": ["mert", "vggish"], "summary": ["mert", "vggish"]}.get(which, [])
    figure = ev.accuracy.get(which)
    if which == "summary":
        figure = ev.accuracy.get("mert")
    ours = (f"this run ({dataset}): " + _figure(which, ev)) if figure else "-"
    if claim.dataset:
        if dataset != claim.dataset:
            return Verdict(claim.id, NOT_TESTABLE, ours, "this run's results",
                           f"this run's collection is {dataset}, not "
                           f"{claim.dataset.upper() if claim.dataset != 'openmic' else 'OpenMIC'}"
                           f"; {_params_hint(claim.dataset, ev.repo_root)} would test it")
    missing = [m for m in needed if m not in ev.weights]
    if missing:
        return Verdict(claim.id, NOT_TESTABLE, ours, "this run's results",
                       f"{', '.join(missing)} did not run in this study")
    unreal = {m: ev.weights[m] for m in needed if ev.weights[m] != "pretrained"}
    if unreal:
        return Verdict(claim.id, NOT_TESTABLE, ours + " (random weights: not a model result)",
                       "this run's results",
                       f"{', '.join(f'{m} has {k} weights' for m, k in unreal.items())}: "
                       "no accuracy claim is decided from them")
    if figure is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", "this run's results",
                       "no classification result for this claim in this run")
    value, low, high, _n = figure
    if which == "summary":
        (mlo, mhi), (vlo, vhi) = claim.expected
        m, v = ev.accuracy["mert"], ev.accuracy["vggish"]
        ok = m[2] >= mlo and m[1] <= mhi and v[2] >= vlo and v[1] <= vhi
        out = m[1] > mhi or m[2] < mlo or v[1] > vhi or v[2] < vlo
    else:
        lo, hi = claim.expected
        ok, out = high >= lo and low <= hi, high < lo or low > hi
    verdict = CONFIRMED if ok else CONTRADICTED if out else NOT_TESTABLE
    why = ("the 95% CI overlaps the claimed range" if ok else
           "the 95% CI lies outside the claimed range" if out else "inconclusive")
    if not claim.dataset:
        why += f" (the claim names no data set; checked on {dataset})"
    return Verdict(claim.id, verdict, ours, "this run's results", why)


def _figure(which: str, ev: Evidence) -> str:
    def one(name):
        v = ev.accuracy.get(name)
        return f"{name} {_pct(v[0])} [{_pct(v[1])}, {_pct(v[2])}], n = {v[3]}" if v else ""
    if which in ("summary",):
        return "; ".join(x for x in (one("mert"), one("vggish")) if x)
    if which == "margin":
        v = ev.accuracy.get("margin")
        return (f"MERT - VGGish = {100 * v[0]:+.1f} points [{100 * v[1]:+.1f}, "
                f"{100 * v[2]:+.1f}]" if v else "")
    return one(which)


def _check_stats(claim: Claim, ev: Evidence) -> Verdict:
    parts = claim.key.split(".")
    models = ["mert", "vggish"] if parts[1] == "normalised" else [parts[1]]
    missing = [m for m in models if m not in ev.stats]
    if missing:
        return Verdict(claim.id, NOT_TESTABLE, "-", "notebook 03's per-track table",
                       f"{', '.join(missing)} did not run in this study")
    med = {m: ev.stats[m][["mean", "std", "min", "max"]].median() for m in models}
    if parts[1] == "normalised":
        measured = "; ".join(f"{m}: mean {med[m]['mean']:.4f}, std {med[m]['std']:.3f}"
                             for m in models)
    elif parts[2] == "range":
        measured = f"median min {med[models[0]]['min']:.2f}, max {med[models[0]]['max']:.2f}"
    else:
        measured = f"median {parts[2]} {med[models[0]][parts[2]]:.4f}"
    measured += f" over {len(ev.stats[models[0]])} tracks"
    unreal = {m: ev.weights.get(m) for m in models if ev.weights.get(m) != "pretrained"}
    if unreal:
        return Verdict(claim.id, NOT_TESTABLE, measured + " (random weights: not a model "
                       "result)", "notebook 03's statistics (mtbc.stats.descriptive.track_stats)",
                       f"{', '.join(f'{m}: {k} weights' for m, k in unreal.items())}")
    if parts[1] == "normalised":
        m, v = med["mert"], med["vggish"]
        ok = abs(m["mean"]) < abs(v["mean"]) and m["std"] < v["std"]
    elif parts[2] == "range":
        (lo1, hi1), (lo2, hi2) = claim.expected
        ok = _in(med[models[0]]["min"], lo1, hi1) and _in(med[models[0]]["max"], lo2, hi2)
    else:
        ok = _in(med[models[0]][parts[2]], *claim.expected)
    return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, measured,
                   "this run's per-track statistics, last layer",
                   ("within" if ok else "outside") + f" the claimed range {claim.expected} "
                   f"(the claim's five songs are not this run's tracks)")


def audit(evidence: Evidence, claims: Sequence[Claim] = CLAIMS) -> list[Verdict]:
    """A :class:`Verdict` for every claim (never raises for missing evidence)."""
    out = []
    for claim in claims:
        try:
            if claim.check == "training":
                v = _check_training(claim, evidence)
            elif claim.check == "finetune":
                v = check_finetune(claim, evidence)
            elif claim.check == "robustness":
                v = check_robustness(claim, evidence)
            elif claim.topic == "statistics":
                v = _check_stats(claim, evidence)
            elif claim.topic == "accuracy" or (claim.topic == "ensemble"
                                               and claim.check == "accuracy"):
                v = _check_accuracy(claim, evidence)
            elif claim.topic == "compute":
                v = _check_compute(claim, evidence)
            else:
                v = _check_fact(claim, evidence)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            v = Verdict(claim.id, NOT_TESTABLE, "-", "-", f"could not check: {exc}")
        out.append(v)
    return out


def audit_table(evidence: Evidence, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """Every claim beside its verdict, one row each (``docs/claims.md``)."""
    verdicts = {v.id: v for v in audit(evidence, claims)}
    rows = []
    for c in claims:
        v = verdicts[c.id]
        rows.append({"id": c.id, "topic": c.topic, "claim": c.claim, "section": c.section,
                     "how it is checked": c.how, "expected": _fmt_expected(c),
                     "mtbc found": v.measured, "verdict": v.verdict, "why": v.why,
                     "source": v.source})
    return pd.DataFrame(rows).set_index("id")


def _fmt_expected(c: Claim) -> str:
    e = c.expected
    if isinstance(e, float) and e >= 1e6:
        return f"{e / 1e6:.0f}M {c.unit}".strip()
    return f"{e} {c.unit}".strip()


def verdict_counts(table: pd.DataFrame) -> pd.Series:
    """How many claims got each verdict."""
    return table["verdict"].value_counts().reindex(list(VERDICTS), fill_value=0)


def claims_frame(claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """The claims as a table (no verdicts)."""
    return pd.DataFrame([asdict(c) for c in claims]).set_index("id")


def claims_summary(table: pd.DataFrame) -> str:
    """One sentence: how many claims were confirmed, contradicted, not testable."""
    n = verdict_counts(table)
    return (f"{len(table)} claims: {n[CONFIRMED]} confirmed, {n[CONTRADICTED]} contradicted, "
            f"{n[NOT_TESTABLE]} not testable here.")
