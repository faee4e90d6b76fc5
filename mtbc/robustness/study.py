"""Notebook 11 in one call: deform, embed through the cache, measure, compare, answer.

:func:`run_robustness` takes a study (:func:`mtbc.study.open_study`) and returns a
:class:`Robustness` with every table the notebook shows; :func:`example_clips` gives one clip
clean and deformed for the audio players; :func:`plot_heatmap` draws model x deformation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from mtbc.data.audio import load_audio
from mtbc.data.splits import track_groups
from mtbc.robustness.deform import DEFAULT_SET, check, deform, full_set, label
from mtbc.robustness.drops import DropOptions, concat_name, measure_drops
from mtbc.robustness.embed import DeformedExtractor, embed_deformed, load_pair, track_seed
from mtbc.robustness.measures import compare_models, summarise_stability, track_stability


def resolve_deformations(spec: Any) -> list[tuple[str, float]]:
    """``"default"`` (:data:`~mtbc.robustness.deform.DEFAULT_SET`), ``"all"`` (every name and
    strength of :data:`~mtbc.robustness.deform.DEFORMATIONS`) or a list of ``[name,
    strength]`` pairs; raises ``ValueError`` naming a bad entry."""
    if spec in (None, "default"):
        return list(DEFAULT_SET)
    if spec == "all":
        return full_set()
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValueError(f"deformations must be 'default', 'all' or a list of [name, strength] "
                         f"pairs, not {spec!r}")
    out = []
    for item in spec:
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
            raise ValueError(f"deformations: {item!r} is not a [name, strength] pair, e.g. "
                             f"[noise, 0.1]")
        check(str(item[0]), item[1])
        out.append((str(item[0]), float(item[1])))
    return out


@dataclass(frozen=True)
class RobustnessOptions:
    """Options of :func:`run_robustness`: the deformations (see :func:`resolve_deformations`),
    seed, outer folds and bootstrap resamples as notebooks 04-06, whether to run the probes
    (``probe``: accuracy on labelled tracks and, with ``tagging``, macro ROC-AUC on tagged
    ones; each model and their concatenation), the layer whose track mean the stability measures use (an int or
    ``"mean"`` of layers), and the labels of the study's models to measure (``None``: all;
    every deformation costs one extraction pass of every model measured)."""

    deformations: Any = "default"
    seed: int = 0
    n_splits: int = 5
    n_boot: int = 1000
    probe: bool = True
    tagging: bool = True
    layer: int | str = "mean"
    models: Sequence[str] | None = None


@dataclass
class Robustness:
    """Notebook 11's results (every table keeps its CI and n): ``drops`` (probe accuracy,
    with ``drop_tests`` between models) and ``tag_drops`` (macro ROC-AUC of the tagging
    probe), each model and the concatenation of the models, and why either is missing."""

    deformations: list[tuple[str, float]]
    extraction: pd.DataFrame
    per_track: pd.DataFrame
    stability: pd.DataFrame
    stability_tests: pd.DataFrame
    retrieval_tests: pd.DataFrame
    drops: pd.DataFrame = field(default_factory=pd.DataFrame)
    drop_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    why_no_probe: str | None = None
    tag_drops: pd.DataFrame = field(default_factory=pd.DataFrame)
    why_no_tagging: str | None = None
    answer: str = ""

    @property
    def labels(self) -> list[str]:
        return [label(n, s) for n, s in self.deformations]

    def heatmap(self) -> tuple[pd.DataFrame, str]:
        """Model x deformation (the concatenation a row): the probe drop in accuracy points
        when there is one, else in macro ROC-AUC points (x 100), else 100 x (1 - mean
        cosine); with the colour-bar text."""
        for table, text in ((self.drops, "accuracy drop, clean minus deformed (points)"),
                            (self.tag_drops, "macro ROC-AUC drop, clean minus deformed "
                                             "(x 100)")):
            if len(table):
                frame = table.pivot(index="model", columns="deformation", values="drop") * 100
                order = list(dict.fromkeys(table["model"]))
                return frame.loc[order, self.labels], text
        frame = (1 - self.stability["cosine"].unstack("deformation")) * 100
        return frame[self.labels], "100 x (1 - cosine clean vs deformed)"


def _fmt(v: float, lo: float, hi: float, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * v:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def stability_display(result: Robustness) -> pd.DataFrame:
    """The stability table as shown: cosine and recall@1 (%) with 95% CIs, n."""
    s = result.stability
    return pd.DataFrame({
        "cosine [95% CI]": [_fmt(r.cosine, r.cosine_low, r.cosine_high, 1.0, 3)
                            for r in s.itertuples()],
        "self-retrieval recall@1 % [95% CI]": [_fmt(r.recall1, r.recall1_low, r.recall1_high)
                                               for r in s.itertuples()],
        "n tracks": s["n_tracks"].to_numpy(), "n groups": s["n_groups"].to_numpy()},
        index=s.index)


def drops_display(result: Robustness) -> pd.DataFrame:
    """The probe drops as shown: accuracies and drop in points with 95% CI, p, n."""
    d = result.drops
    if not len(d):
        return pd.DataFrame()
    return pd.DataFrame({
        "model": d["model"], "deformation": d["deformation"],
        "clean accuracy %": (100 * d["accuracy_clean"]).round(1),
        "deformed accuracy %": (100 * d["accuracy_deformed"]).round(1),
        "drop (points) [95% CI]": [_fmt(r.drop, r.ci_low, r.ci_high) for r in d.itertuples()],
        "p": d["p_value"].round(4), "n tracks": d["n_tracks"], "n groups": d["n_groups"],
    }).set_index(["model", "deformation"])


def tag_drops_display(result: Robustness) -> pd.DataFrame:
    """The tagging probe's drops as shown: macro ROC-AUC clean and deformed, the drop with its
    paired 95% CI, p, n tracks, groups and tags."""
    d = result.tag_drops
    if not len(d):
        return pd.DataFrame()
    return pd.DataFrame({
        "model": d["model"], "deformation": d["deformation"],
        "clean macro ROC-AUC": d["roc_auc_clean"].astype(float).round(3),
        "deformed macro ROC-AUC": d["roc_auc_deformed"].astype(float).round(3),
        "drop [95% CI]": [_fmt(r.drop, r.ci_low, r.ci_high, 1.0, 3) for r in d.itertuples()],
        "p": d["p_value"].astype(float).round(4), "n tracks": d["n_tracks"],
        "n groups": d["n_groups"], "n tags": d["n_tags"],
    }).set_index(["model", "deformation"])


def _answer(result: Robustness) -> str:
    first = result.labels[0]
    if not len(result.drops) and len(result.tag_drops):
        d = result.tag_drops[result.tag_drops["deformation"] == first]
        parts = [f"{r.model} loses {r.drop:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] "
                 f"(p = {r.p_value:.3g})" for r in d.itertuples()]
        return (f"At **{first}**, " + ", ".join(parts) + " of the tagging probe's macro "
                f"ROC-AUC (n = {int(d['n_tracks'].max())} tracks).")
    if len(result.drops):
        d = result.drops[result.drops["deformation"] == first]
        parts = [f"{r.model} loses {100 * r.drop:.1f} points "
                 f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] (p = {r.p_value:.3g})"
                 for r in d.itertuples()]
        text = f"At **{first}**, " + ", ".join(parts) + " of probe accuracy"
        tests = result.drop_tests[result.drop_tests["deformation"] == first]
    else:
        s = result.stability.xs(first, level="deformation")
        parts = [f"{m} keeps a cosine of {r.cosine:.3f} [{r.cosine_low:.3f}, "
                 f"{r.cosine_high:.3f}]" for m, r in s.iterrows()]
        text = f"At **{first}**, " + ", ".join(parts) + " to its clean embedding"
        tests = result.stability_tests[result.stability_tests["deformation"] == first]
    for t in tests.itertuples():
        verdict = "is significant" if t.p_holm < 0.05 else "is not significant"
        size = (f"{100 * t.diff:+.1f} points" if len(result.drops)
                else f"cosine {t.diff:+.3f}")
        text += (f"; the difference between {t.model_a} and {t.model_b} ({size}, "
                 f"Holm p = {t.p_holm:.3g}) {verdict}")
    return text + f" (n = {int(result.stability['n_tracks'].max())} tracks)."


def run_robustness(study, options: RobustnessOptions = RobustnessOptions(), *,
                   progress: bool = False) -> Robustness:
    """Deform the study's tracks, embed them through the cache, measure every model.

    Parameters
    ----------
    study : mtbc.study.Study
        Collection, cache and models (clean embeddings already extracted).
    options : RobustnessOptions
        Deformations, seed, folds, resamples, probe on/off, layer.

    Returns
    -------
    Robustness

    Example
    -------
    >>> study = open_study("demo", {"mfcc": {"name": "mfcc"}})  # doctest: +SKIP
    >>> result = run_robustness(study, RobustnessOptions(deformations=[["noise", 0.1]]))
    ... # doctest: +SKIP
    """
    deformations = resolve_deformations(options.deformations)
    tracks = study.tracks
    unknown = sorted(set(options.models or ()) - set(study.models))
    if unknown:
        raise ValueError(f"robustness models {unknown} are not among this run's models "
                         f"{sorted(study.models)}; fix robustness_models")
    models = {m: e for m, e in study.models.items()
              if options.models is None or m in options.models}
    extraction = embed_deformed(tracks, models, study.store, deformations,
                                seed=options.seed, progress=progress)
    groups_all = pd.Series(track_groups(tracks), index=tracks["track_id"].astype(str))
    per_track = []
    means: dict[str, dict[str, pd.DataFrame]] = {}  # deformation -> model -> (clean, deformed)
    fingerprints = {}
    for model, ext in models.items():
        fps = {label(n, s): DeformedExtractor(ext, n, s, options.seed).fingerprint
               for n, s in deformations}
        fingerprints[model] = (ext.fingerprint, fps)
        for lab, fp in fps.items():
            sub, c, d = load_pair(tracks, study.store, ext.fingerprint, fp, layer=options.layer)
            frame = track_stability(c, d)
            frame.insert(0, "track_id", sub["track_id"].astype(str).to_numpy())
            frame.insert(0, "deformation", lab)
            frame.insert(0, "model", model)
            frame["group"] = groups_all.loc[frame["track_id"]].to_numpy()
            per_track.append(frame)
            means.setdefault(lab, {})[model] = (frame["track_id"].to_numpy(), c, d)
    if len(models) > 1:
        per_track += [_concat_stability(lab, by_model, groups_all)
                      for lab, by_model in means.items()]
    per_track_frame = pd.concat(per_track, ignore_index=True)
    out = Robustness(
        deformations=deformations, extraction=extraction, per_track=per_track_frame,
        stability=summarise_stability(per_track_frame, n_boot=options.n_boot,
                                      seed=options.seed),
        stability_tests=compare_models(per_track_frame, "cosine", n_boot=options.n_boot,
                                       seed=options.seed),
        retrieval_tests=compare_models(per_track_frame, "hit", n_boot=options.n_boot,
                                       seed=options.seed))
    if options.probe:
        found = measure_drops(tracks, study.store, fingerprints,
                              DropOptions(seed=options.seed, n_splits=options.n_splits,
                                          n_boot=options.n_boot, tagging=options.tagging))
        out.drops, out.tag_drops = found.accuracy, found.auc
        out.why_no_probe, out.why_no_tagging = found.why_no_accuracy, found.why_no_auc
        # model against model: the models alone (the concatenation's drop has its own CI)
        alone = found.detail[found.detail["model"].isin(list(models))] \
            if len(found.detail) else found.detail
        if len(alone):
            out.drop_tests = compare_models(alone, "drop", n_boot=options.n_boot,
                                            seed=options.seed)
    else:
        out.why_no_probe = out.why_no_tagging = "the probe was switched off (probe: false)"
    out.answer = _answer(out)
    return out


def _concat_stability(deformation: str, by_model: dict, groups: pd.Series) -> pd.DataFrame:
    """Stability of the concatenation of every model (each block weighing the same), on the
    tracks all models have."""
    common = None
    for ids, _, _ in by_model.values():
        common = set(ids) if common is None else common & set(ids)
    order = sorted(common)
    clean, deformed, blocks = [], [], []
    for ids, c, d in by_model.values():
        pos = pd.Series(np.arange(len(ids)), index=ids).loc[order].to_numpy()
        clean.append(c[pos])
        deformed.append(d[pos])
        blocks.append(c.shape[1])
    frame = track_stability(np.hstack(clean), np.hstack(deformed), blocks=blocks)
    frame.insert(0, "track_id", order)
    frame.insert(0, "deformation", deformation)
    frame.insert(0, "model", concat_name(by_model))
    frame["group"] = groups.loc[order].to_numpy()
    return frame


def example_clips(study, deformations: Sequence[tuple[str, float]], *, seed: int = 0,
                  row: int = 0, seconds: float = 10.0) -> list[tuple[str, np.ndarray, int]]:
    """One track (``row`` of the collection) clean and under each deformation, as the
    embedding saw it: ``[(label, wave, sample_rate), ...]``, the first ``seconds`` each.
    When a clip peaks above 1 (gain, noise), all are scaled by one factor so that a player
    without normalisation can take them and their relative levels stay audible."""
    track = study.tracks.iloc[row]
    sr = int(sf.info(str(track["path"])).samplerate)
    wave = load_audio(track["path"], None, on_silence="ignore")
    out = [(f"clean: {track['track_id']}", wave[:int(seconds * sr)], sr)]
    for name, strength in deformations:
        y = deform(wave, sr, name, strength, track_seed(seed, track["content_hash"]))
        out.append((label(name, strength), y[:int(seconds * sr)], sr))
    peak = max(float(np.abs(w).max(initial=0.0)) for _, w, _ in out)
    if peak > 1.0:
        out = [(text, w / peak, rate) for text, w, rate in out]
    return out


def plot_heatmap(frame: pd.DataFrame, *, title: str, colorbar: str):
    """Model x deformation heat map with the values written in the cells."""
    # plotting libraries only where a figure is drawn
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = max((len(str(i)) for i in frame.index), default=0)  # the concat row's long name
    fig, ax = plt.subplots(figsize=(1.6 + 0.07 * names + 1.4 * frame.shape[1],
                                    1.2 + 0.6 * frame.shape[0]))
    sns.heatmap(frame.astype(float), ax=ax, annot=True, fmt=".1f", cmap="Reds",
                cbar_kws={"label": colorbar}, annot_kws={"fontsize": 9})
    ax.set_xlabel("deformation")
    ax.set_ylabel("model")
    ax.set_title(title)
    fig.tight_layout()
    return ax
