"""Robustness: how each model's embeddings and probes hold up when the audio is degraded.

- :mod:`~mtbc.robustness.deform`: named deformations with a strength and a seed
  (:func:`deform`, :data:`DEFORMATIONS`), through audiomentations.
- :mod:`~mtbc.robustness.embed`: deformed tracks embedded through the verified cache under a
  fingerprint recording deformation, strength and seed (:func:`embed_deformed`).
- :mod:`~mtbc.robustness.measures`: embedding stability (cosine, self-retrieval recall@1) with
  group-bootstrap CIs and paired model comparisons.
- :mod:`~mtbc.robustness.probe`: the drop of the notebooks' probes (04's accuracy, 06's macro
  ROC-AUC; 05's / 06's concatenation of several models) from clean to deformed test tracks,
  with a paired CI and p; :mod:`~mtbc.robustness.drops` runs them for every model and the
  concatenation (:func:`measure_drops`).
- :mod:`~mtbc.robustness.study`: notebook 11 in one call (:func:`run_robustness`).

See ``docs/robustness.md``.
"""

from mtbc.robustness.deform import DEFAULT_SET, DEFORMATIONS, Deformation, deform, label
from mtbc.robustness.drops import DropOptions, measure_drops
from mtbc.robustness.embed import deformed_fingerprint, embed_deformed
from mtbc.robustness.measures import paired_mean_test, track_stability
from mtbc.robustness.study import Robustness, RobustnessOptions, run_robustness

__all__ = ["DEFAULT_SET", "DEFORMATIONS", "Deformation", "DropOptions", "Robustness",
           "RobustnessOptions", "deform", "deformed_fingerprint", "embed_deformed", "label",
           "measure_drops", "paired_mean_test", "run_robustness", "track_stability"]
