"""Zero-shot rows of notebooks 04, 05 and 06: each CLAP model of the run, scored from text
prompts with nothing fitted (:class:`mtbc.zeroshot.ZeroShot`), on the same tracks and folds
as the probes.

:func:`zero_shot_results` returns one result per model of the run with a text tower (an
extractor whose ``has_text`` is true: ``clap``, or ``hf`` with a CLAP checkpoint) and
nothing for the others, so a run without CLAP is unchanged. The prompts come from the
``zero_shot_template`` notebook parameter (default ``"This is a {label} song."``); each
class (04, 05) or tag (06) name fills ``{label}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mtbc.evaluation import Classification, EvalOptions, Tagging, evaluate
from mtbc.evaluation.results import Result
from mtbc.study.common import Study, system_name
from mtbc.zeroshot import DEFAULT_TEMPLATE, Prompts, ZeroShot, has_text, joint_rows
from mtbc.zeroshot import track_embeddings as joint_track_embeddings

#: The probe name of the zero-shot rows (``clap · zero-shot``).
ZERO_SHOT_PROBE = "zero-shot"


def text_models(study: Study) -> list[str]:
    """Labels of the run's extractors with a text tower (CLAP)."""
    return [label for label, ext in study.models.items() if has_text(ext)]


def zero_shot_system(study: Study, label: str, tracks: pd.DataFrame, segments: tuple,
                     names: Sequence[str], *, template: str = DEFAULT_TEMPLATE,
                     suffix: str = "") -> ZeroShot | None:
    """The zero-shot system of model ``label`` on ``tracks`` (its ``segments``
    ``(features, track_index)`` into them) for the class or tag ``names``, named
    ``<label> · zero-shot<suffix>``; ``None`` when the model has no text tower."""
    ext = study.models[label]
    if not has_text(ext):
        return None
    feats, index = segments
    audio = joint_track_embeddings(joint_rows(feats, ext), index, len(tracks))
    prompts = Prompts.from_extractor(ext, names, template=template)
    return ZeroShot(audio, prompts, name=system_name(label, ZERO_SHOT_PROBE) + suffix,
                    fingerprint=ext.fingerprint)


def zero_shot_results(study: Study, tracks: pd.DataFrame, segments: Mapping[str, tuple], *,
                      tags: Sequence[str] | None = None, template: str = DEFAULT_TEMPLATE,
                      suffix: str = "", **options) -> list[Result]:
    """Zero-shot results of every CLAP model among ``segments`` (label -> ``(features,
    track_index)`` into ``tracks``): classification of ``tracks['label']``, or tagging of
    ``tags`` when given, on the folds the probes use given the same ``options``
    (:class:`~mtbc.evaluation.EvalOptions` fields: ``seed``, ``n_splits``, ``n_boot``).
    Names get ``suffix`` (05's `` (common tracks)``). Empty when no model there has a text
    tower."""
    labels = [label for label in segments if has_text(study.models[label])]
    if not labels:
        return []
    task = Classification(tracks) if tags is None else Tagging(tracks, tags=tags)
    return [evaluate(task, zero_shot_system(study, label, tracks, segments[label], task.names,
                                            template=template, suffix=suffix),
                     EvalOptions(**options))
            for label in labels]
