"""Robustness: how each model's embeddings and probes hold up when the audio is degraded.

- :mod:`~mtbc.robustness.deform`: named deformations with a strength and a seed
  (:func:`deform`, :data:`DEFORMATIONS`), through audiomentations.
- :mod:`~mtbc.robustness.embed`: deformed tracks embedded through the verified cache under a
  fingerprint recording deformation, strength and seed (:func:`embed_deformed`).
- :mod:`~mtbc.robustness.measures`: embedding stability (cosine, self-retrieval recall@1) with
  group-bootstrap CIs and paired model comparisons.
- :mod:`~mtbc.robustness.probe`: the drop of notebook 04's linear probe from clean to deformed
  test tracks, with a paired CI and p.
- :mod:`~mtbc.robustness.study`: notebook 11 in one call (:func:`run_robustness`).

See ``docs/robustness.md``.
"""

from mtbc.robustness.deform import DEFAULT_SET, DEFORMATIONS, Deformation, deform, label
from mtbc.robustness.embed import deformed_fingerprint, embed_deformed
from mtbc.robustness.measures import paired_mean_test, track_stability
from mtbc.robustness.study import Robustness, RobustnessOptions, run_robustness

__all__ = ["DEFAULT_SET", "DEFORMATIONS", "Deformation", "Robustness", "RobustnessOptions",
           "deform", "deformed_fingerprint", "embed_deformed", "label", "paired_mean_test",
           "run_robustness", "track_stability"]
