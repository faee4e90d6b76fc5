"""Verdicts from what later notebooks of the run measured: fine-tuning (09) and robustness (11).

Notebook 09 leaves ``finetune.json`` and notebook 11 ``robustness.json`` beside the run
record; :func:`mtbc.claims.evidence_from_study` reads them into ``Evidence.finetune`` and
``Evidence.robustness``. A claim about a model is decided only from that model's own figure
(musicnn's gain says nothing about MERT's), only from pretrained weights for gains and
stability (timings do not depend on weight values), and as the accuracy claims are: the 95%
CI against the claimed range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtbc.claims.data import (
    CONFIRMED,
    CONTRADICTED,
    NOT_TESTABLE,
    Claim,
    Evidence,
    Verdict,
    dataset_of,
)

#: The part of each model the claim trains: MERT's last 4 transformer layers, VGGish's 3
#: fully connected layers (``train_layers`` of :mod:`mtbc.extractors.partial`).
CLAIMED_LAYERS = {"mert": 4, "vggish": 3}
NAMES = {"mert": "MERT", "vggish": "VGGish"}
#: The clip count a training time is extrapolated to (GTZAN's size: 1,000 x 30 s).
CLIPS, CLIP_SECONDS = 1000, 30.0
SOURCE_09, SOURCE_11 = "notebook 09 of this run", "notebook 11 of this run"


def _not_run(which: str) -> str:
    return (f"notebook {which} left no results in this run: it did not run, or it runs after "
            f"08 (notebooks run in number order; list 08_claims after {which} in the params "
            f"file's `notebooks:` or run 08 again)")


def _pts(v: float, lo: float, hi: float) -> str:
    return f"{100 * v:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _gain_text(label: str, rec: dict) -> str:
    c = rec["comparison"]
    return (f"{label} ({rec.get('trainable')}): {_pts(c['gain'], c['ci_low'], c['ci_high'])}, "
            f"p = {c['p_value']:.3g}, n = {c['n_tracks']} tracks")


def _weights(rec: dict) -> str:
    return (rec.get("meta") or {}).get("weights_kind") or rec.get("weights_kind") or "unknown"


def _tuned(ev: Evidence, model: str) -> tuple[str | None, dict | None, str]:
    """The run's fine-tuned ``model`` with the claim's trained part: ``(label, record,
    why not)``; the why names what ran instead (and the reason a skipped model gave)."""
    models = (ev.finetune or {}).get("models", {})
    mine = {k: r for k, r in models.items() if r.get("extractor") == model}
    fits = {k: r for k, r in mine.items()
            if r.get("train_layers") == CLAIMED_LAYERS[model] and not r.get("lora")}
    if fits:
        real = [k for k, r in fits.items() if _weights(r) == "pretrained"]
        label = (real or list(fits))[0]
        return label, fits[label], ""
    name = NAMES[model]
    if mine:
        label, rec = next(iter(mine.items()))
        return None, None, (f"{name} was fine-tuned with {rec.get('trainable')}, not the "
                            f"claim's part ({_gain_text(label, rec)})")
    why = f"{name} was not fine-tuned in this run"
    skipped = [s for s in (ev.finetune or {}).get("skipped", [])
               if str(s.get("model", "")).lower().startswith(model)]
    if skipped:
        why += f" ({skipped[0]['model']}: {skipped[0].get('reason')})"
    if models:
        others = "; ".join(_gain_text(k, r) for k, r in models.items())
        why += (f". Fine-tuned here: {others}; another model's gain is not evidence about "
                f"{name}")
    return None, None, why


def check_finetune(claim: Claim, ev: Evidence) -> Verdict:
    """A fine-tuning claim (``finetune.<model>.gain`` or ``.time``) from notebook 09."""
    _, model, what = claim.key.split(".")
    if ev.finetune is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", SOURCE_09, _not_run("09_fine_tuning"))
    label, rec, why = _tuned(ev, model)
    if rec is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", SOURCE_09, why)
    src = (f"{SOURCE_09} ({label}: {(rec.get('meta') or {}).get('model') or model}, "
           f"{rec.get('device')}, {rec.get('precision')}; weights: {_weights(rec)})")
    if what == "time":
        return _check_time(claim, rec, src)
    figure = _gain_text(label, rec)
    if _weights(rec) != "pretrained":
        return Verdict(claim.id, NOT_TESTABLE, figure + " (random weights: not a model result)",
                       src, f"{label} has {_weights(rec)} weights: no accuracy claim is "
                       f"decided from them")
    c = rec["comparison"]
    lo, hi = claim.expected
    ok = c["ci_high"] >= lo and c["ci_low"] <= hi
    why = ("the 95% CI of the gain overlaps the claimed range" if ok else
           "the 95% CI of the gain lies outside the claimed range")
    why += f" (the claim names no data set; checked on {dataset_of(ev.collection)})"
    return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, figure, src, why)


def training_seconds(rec: dict, *, clips: int = CLIPS, clip_seconds: float = CLIP_SECONDS
                     ) -> float | None:
    """Seconds one training of the top would take on ``clips`` clips of ``clip_seconds``:
    the run's segments per second of training (every epoch of the cross-validation, its
    validation passes included) over the segments those clips make, times the mean number of
    epochs chosen on validation. ``None`` when the record lacks a figure."""
    try:
        rate = rec["segments_trained"] / rec["seconds"]["finetune"]
        per_clip = rec["n_segments"] / rec["audio_seconds"] * clip_seconds
        epochs = float(np.mean(rec["epochs"]))
    except (KeyError, TypeError, ZeroDivisionError, ValueError):
        return None
    if not (rate > 0 and per_clip > 0 and epochs > 0):
        return None
    return epochs * clips * per_clip / rate


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min"


def _check_time(claim: Claim, rec: dict, src: str) -> Verdict:
    s = training_seconds(rec)
    if s is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", src, "notebook 09 recorded no throughput")
    rate = rec["segments_trained"] / rec["seconds"]["finetune"]
    measured = (f"{_hours(s)} for {CLIPS:,} x {CLIP_SECONDS:.0f} s clips and "
                f"{np.mean(rec['epochs']):.1f} epochs ({rate:.0f} segments/s on "
                f"{rec.get('device')}, {rec.get('precision')})")
    if not str(rec.get("device", "")).startswith("cuda"):
        return Verdict(claim.id, NOT_TESTABLE, measured, src,
                       f"the claim is for a GPU; this run trained on {rec.get('device')}")
    lo, hi = (3600 * h for h in claim.expected)  # claimed in hours
    ok = lo <= s <= hi
    return Verdict(claim.id, CONFIRMED if ok else CONTRADICTED, measured, src,
                   ("within" if ok else "outside") + f" {_hours(lo)}-{_hours(hi)}: mtbc runs "
                   "the frozen layers once per clip (cached) and trains the top only; an "
                   "extrapolation from this run's throughput (timing does not depend on "
                   "weight values)")


# ----------------------------------------------------------------------------- robustness

def _label_of(models: dict[str, dict], extractor: str) -> str | None:
    mine = [k for k, m in models.items() if m.get("extractor") == extractor]
    real = [k for k in mine if models[k].get("weights_kind") == "pretrained"]
    wide = [k for k in real if models[k].get("hidden_size") == 1024]  # MERT-v1-330M first
    return (wide or real or mine or [None])[0]


def _oriented(rows: list[dict], a: str, b: str) -> list[dict[str, Any]]:
    """Rows of the model-against-model table for ``a`` and ``b``, as ``a`` minus ``b``."""
    out = []
    for r in rows:
        if {r.get("model_a"), r.get("model_b")} != {a, b}:
            continue
        flip = r["model_a"] != a
        sign = -1.0 if flip else 1.0
        lo, hi = sorted((sign * r["ci_low"], sign * r["ci_high"]))
        out.append({"deformation": r["deformation"], "diff": sign * r["diff"], "low": lo,
                    "high": hi, "mean_a": r["mean_b"] if flip else r["mean_a"],
                    "mean_b": r["mean_a"] if flip else r["mean_b"], "n": r.get("n_tracks"),
                    "p": r.get("p_holm", r.get("p_value"))})
    return out


def check_robustness(claim: Claim, ev: Evidence) -> Verdict:
    """A stability claim (``robustness.cosine`` / ``robustness.hit``) from notebook 11: MERT
    minus VGGish on the same tracks under every deformation; confirmed when every 95% CI
    lies above 0, contradicted when one lies below 0, else inconclusive."""
    measure = claim.key.split(".")[1]
    if ev.robustness is None:
        return Verdict(claim.id, NOT_TESTABLE, "-", SOURCE_11, _not_run("11_robustness"))
    models = ev.robustness.get("models", {})
    mert, vgg = _label_of(models, "mert"), _label_of(models, "vggish")
    missing = [n for n, lab in (("MERT", mert), ("VGGish", vgg)) if lab is None]
    if missing:
        return Verdict(claim.id, NOT_TESTABLE, "-", SOURCE_11,
                       f"{' and '.join(missing)} not measured in notebook 11 of this run "
                       f"(measured: {', '.join(models) or 'none'}); the claim compares MERT "
                       f"with VGGish")
    table = "stability_tests" if measure == "cosine" else "retrieval_tests"
    rows = _oriented(ev.robustness.get(table, []), mert, vgg)
    if not rows:
        return Verdict(claim.id, NOT_TESTABLE, "-", SOURCE_11,
                       f"no paired {mert} vs {vgg} comparison in notebook 11's results")
    what = "cosine" if measure == "cosine" else "recall@1"
    measured = "; ".join(f"{r['deformation']}: {what} {r['mean_a']:.3f} vs {r['mean_b']:.3f}, "
                         f"{mert} - {vgg} = {r['diff']:+.3f} [{r['low']:+.3f}, "
                         f"{r['high']:+.3f}], n = {r['n']}" for r in rows)
    drops = _oriented(ev.robustness.get("drop_tests", []), mert, vgg)
    if measure == "cosine" and drops:
        measured += "; probe drop " + "; ".join(
            f"{r['deformation']}: {mert} - {vgg} = {_pts(r['diff'], r['low'], r['high'])}"
            for r in drops)
    src = f"{SOURCE_11} (weights: {mert} {models[mert].get('weights_kind')}, {vgg} " \
          f"{models[vgg].get('weights_kind')})"
    unreal = [lab for lab in (mert, vgg) if models[lab].get("weights_kind") != "pretrained"]
    if unreal:
        return Verdict(claim.id, NOT_TESTABLE, measured + " (random weights: not a model "
                       "result)", src, f"{', '.join(unreal)}: not pretrained weights")
    above = all(r["low"] > 0 for r in rows)
    below = [r["deformation"] for r in rows if r["high"] < 0]
    if above:
        return Verdict(claim.id, CONFIRMED, measured, src,
                       f"{mert}'s 95% CI lies above {vgg}'s under every deformation measured")
    if below:
        return Verdict(claim.id, CONTRADICTED, measured, src,
                       f"{vgg} is significantly higher under {', '.join(below)}")
    return Verdict(claim.id, NOT_TESTABLE, measured, src,
                   "inconclusive: a 95% CI of the difference includes 0")
