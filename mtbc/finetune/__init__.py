"""Partial fine-tuning: a frozen trunk, a trainable top and a head, measured like the probes.

- :mod:`mtbc.extractors.partial`: each extractor's split point (``trunk_and_top``).
- :mod:`.trunk`: the trunk output, cached once per track under its own fingerprint.
- :mod:`.train`: AdamW on the cached trunk outputs, per-epoch checkpoints, resume.
- :mod:`.protocol`: the probes' folds, lr and epochs chosen on validation tracks, CIs and
  the paired test against the frozen probe.
- :mod:`.run`: one study end to end (``mtbc finetune``, notebook 09); :mod:`.model`: the
  saved model (safetensors + JSON) that ``mtbc predict`` uses.
"""

from mtbc.finetune.model import is_finetuned, load_model, save_model
from mtbc.finetune.run import FinetuneReport, FinetuneSpec, finetune_collection, train_final
from mtbc.finetune.train import TrainOptions

__all__ = ["FinetuneReport", "FinetuneSpec", "TrainOptions", "finetune_collection",
           "is_finetuned", "load_model", "save_model", "train_final"]
