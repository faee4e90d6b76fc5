"""What the numbered notebooks compute, one call per step, so the notebooks stay thin.

One module per notebook: :mod:`~mtbc.study.describe` (03, embedding statistics),
:mod:`~mtbc.study.classify` (04, probes per model and the saved final probes),
:mod:`~mtbc.study.compare` (05, ensembles, paired tests, the answer),
:mod:`~mtbc.study.tagging` (06, tagging); :mod:`~mtbc.study.common` holds what they share
(the :class:`Study`, plans, validation-only choices, system names, musicnn's own tags) and
:mod:`~mtbc.study.zeroshot` the zero-shot rows of a CLAP model in 04-06.

Example
-------
>>> from mtbc.study import open_study  # doctest: +SKIP
>>> study = open_study("demo", {"mfcc": {"name": "mfcc"}})  # doctest: +SKIP
"""

from mtbc.study.common import (
    Study,
    choose_by_validation,
    open_study,
    plan_classification,
    system_name,
    validation_accuracy,
)

__all__ = ["Study", "choose_by_validation", "open_study", "plan_classification", "system_name",
           "validation_accuracy"]
