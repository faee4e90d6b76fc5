"""The claims of the MERT-vs-VGGish comparison that started mtbc, kept as mtbc's own data.

Each :class:`Claim` says what was claimed (in mtbc's words), where (the comparison's section),
how mtbc checks it and the expected value or range; :mod:`mtbc.claims.audit` audits them,
giving each a :class:`Verdict` from an :class:`Evidence` (both kept here, with the claims, so
that every module of the audit reads them without importing another).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

CONFIRMED, CONTRADICTED, NOT_TESTABLE = "confirmed", "contradicted", "not testable here"
VERDICTS = (CONFIRMED, CONTRADICTED, NOT_TESTABLE)
CHECKS = ("config", "architecture", "compute", "accuracy", "statistics", "training",
          "finetune", "robustness")
#: Which params file would test a claim about a named benchmark.
DATASET_PARAMS = {"gtzan": "params/gtzan.yaml", "openmic": "params/openmic.yaml",
                  "mtat": "params/mtat.yaml"}


@dataclass(frozen=True)
class Claim:
    """One checkable claim. ``expected`` is a value or a ``(low, high)`` range in ``unit``;
    ``key`` names the fact or figure it is checked against (see :func:`audit`)."""

    id: str
    topic: str
    model: str
    claim: str
    section: str
    check: str
    how: str
    key: str
    expected: Any = None
    unit: str = ""
    dataset: str | None = None


@dataclass
class Verdict:
    """A claim's outcome: ``verdict`` (one of :data:`VERDICTS`), what mtbc found
    (``measured``), where it comes from (``source``) and ``why``."""

    id: str
    verdict: str
    measured: str
    source: str
    why: str


@dataclass
class Evidence:
    """What the audit reads. Everything is optional: a missing piece makes the claims that
    need it *not testable here*, saying what is missing.

    - ``facts``: ``key -> value`` from configs and architectures (:func:`architecture_facts`).
    - ``compute``: rows of :func:`mtbc.benchmark.bench_rows` (notebook 07).
    - ``accuracy``: ``{"mert": (value, low, high, n), "vggish": ..., "ensemble": ...,
      "margin": (value, low, high, n)}`` on the run's collection.
    - ``stats``: ``{"mert": per-track stats frame, "vggish": ...}`` (last layer).
    - ``weights``: ``{"mert": kind, "vggish": kind}`` of the models behind accuracy and
      statistics (``pretrained`` is needed to decide those claims).
    - ``collection``: the run's collection (``gtzan:...``, ``demo``, a folder, ...).
    - ``finetune`` / ``robustness``: what notebooks 09 and 11 left in the run folder
      (``finetune.json``, ``robustness.json``); ``None``: no such file in this run.
    """

    facts: dict[str, Any] = field(default_factory=dict)
    compute: list[dict] = field(default_factory=list)
    accuracy: dict[str, tuple] = field(default_factory=dict)
    stats: dict[str, pd.DataFrame] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    collection: str = ""
    repo_root: Path | None = None
    finetune: dict | None = None
    robustness: dict | None = None


def dataset_of(collection: str) -> str:
    """The benchmark a collection is (``gtzan``, ``openmic``, ``mtat``, ``demo``), else
    ``"your collection"``."""
    head = collection.partition(":")[0].lower()
    return head if head in ("gtzan", "openmic", "mtat", "demo") else "your collection"


def _c(*args, **kwargs) -> Claim:
    return Claim(*args, **kwargs)


#: Every claim mtbc audits (the comparison's text paraphrased; numbers as it gives them).
CLAIMS: tuple[Claim, ...] = (
    # -- MERT-v1-330M architecture
    _c("mert-sr", "architecture", "mert-330m", "MERT-v1-330M takes 24 kHz audio",
       "1. Architecture", "config", "preprocessor sampling_rate", "mert.sample_rate", 24000, "Hz"),
    _c("mert-features", "architecture", "mert-330m",
       "an acoustic feature extraction step (CQT, MFCC, chroma) comes before the transformer",
       "1. Architecture", "config",
       "feature_extractor_cqt in the released config; the front end HubertModel builds",
       "mert.cqt", True),
    _c("mert-layers", "architecture", "mert-330m", "12 transformer layers",
       "1. Architecture", "config", "num_hidden_layers", "mert.layers", 12, "layers"),
    _c("mert-dim", "architecture", "mert-330m", "768-dimensional embeddings",
       "1. Architecture / Quick summary", "config", "hidden_size", "mert.dim", 768, "dims"),
    _c("mert-params", "architecture", "mert-330m", "330 million parameters",
       "1. Architecture", "architecture",
       "parameters of HubertModel built from the 330M config on the meta device (no weights); "
       "within 5% counts", "mert.params", 330e6, "parameters"),
    _c("mert-hours", "training", "mert-330m", "trained self-supervised on 160K hours of music",
       "1. Architecture / 2. Training data", "training", "-", "mert.hours", 160_000, "hours"),
    # -- VGGish architecture
    _c("vggish-sr", "architecture", "vggish", "VGGish takes 16 kHz audio", "1. Architecture",
       "config", "the extractor's sample_rate (torchvggish vggish_params)", "vggish.sample_rate",
       16000, "Hz"),
    _c("vggish-mel", "architecture", "vggish", "a 96-band log-mel spectrogram",
       "1. Architecture", "config", "mel bands of the log-mel front end (vggish_params)",
       "vggish.mel_bands", 96, "bands"),
    _c("vggish-blocks", "architecture", "vggish", "4 convolutional blocks",
       "1. Architecture", "architecture",
       "conv blocks (each ending in max-pooling) in torchvggish's make_layers",
       "vggish.blocks", 4, "blocks"),
    _c("vggish-pca", "architecture", "vggish", "PCA reduces 12,288 to 128 dimensions",
       "1. Architecture", "architecture", "shape of the PCA matrix; input of the first FC layer",
       "vggish.pca", (12288, 128), "dims"),
    _c("vggish-params", "architecture", "vggish", "about 70 million parameters",
       "1. Architecture", "architecture", "parameters of the torchvggish network; within 10%",
       "vggish.params", 70e6, "parameters"),
    _c("vggish-dim", "architecture", "vggish", "128-dimensional embeddings",
       "Quick summary", "architecture", "width of the embedding layer", "vggish.dim", 128,
       "dims"),
    # -- accuracy
    _c("gtzan-mert", "accuracy", "mert-330m", "MERT reaches 78-85% on GTZAN (P 0.82, R 0.80, "
       "F1 0.81)", "4. Performance", "accuracy", "linear-probe test accuracy with 95% CI",
       "accuracy.mert", (0.78, 0.85), "accuracy", "gtzan"),
    _c("gtzan-vggish", "accuracy", "vggish", "VGGish reaches 58-65% on GTZAN (P 0.62, R 0.60, "
       "F1 0.61)", "4. Performance", "accuracy", "linear-probe test accuracy with 95% CI",
       "accuracy.vggish", (0.58, 0.65), "accuracy", "gtzan"),
    _c("openmic-map", "accuracy", "mert-330m", "OpenMIC instruments: mAP 0.75 (MERT) vs 0.62 "
       "(VGGish)", "4. Performance", "accuracy", "multi-label mAP with 95% CI",
       "accuracy.openmic_map", (0.75, 0.62), "mAP", "openmic"),
    _c("openmic-top", "accuracy", "mert-330m", "OpenMIC top-1 68% vs 55%, top-3 89% vs 78%",
       "4. Performance", "accuracy", "top-k accuracy with 95% CI", "accuracy.openmic_topk",
       ((0.68, 0.55), (0.89, 0.78)), "accuracy", "openmic"),
    _c("mtat-auc", "accuracy", "mert-330m", "MagnaTagATune ROC-AUC 0.88 vs 0.82, PR-AUC 0.35 vs "
       "0.28", "4. Performance", "accuracy", "macro ROC-AUC / PR-AUC with 95% CI",
       "accuracy.mtat", ((0.88, 0.82), (0.35, 0.28)), "AUC", "mtat"),
    _c("summary-accuracy", "accuracy", "mert-330m", "accuracy 70-85% (MERT) vs 55-65% (VGGish)",
       "Quick summary", "accuracy", "linear-probe test accuracy on the run's collection",
       "accuracy.summary", ((0.70, 0.85), (0.55, 0.65)), "accuracy"),
    _c("mert-margin", "accuracy", "mert-330m", "MERT is 15-20% more accurate than VGGish",
       "10. Recommendations / 11. Cost-benefit", "accuracy",
       "MERT minus VGGish test accuracy on the same tracks (read as percentage points)",
       "accuracy.margin", (0.15, 0.20), "points"),
    _c("ensemble-dims", "ensemble", "mert-330m", "concatenating MERT and VGGish gives 768 + 128 = "
       "896 dimensions", "10. Recommendations", "architecture",
       "MERT-v1-330M hidden size + VGGish embedding size", "ensemble.dims", 896, "dims"),
    _c("ensemble-accuracy", "ensemble", "mert-330m", "the MERT + VGGish ensemble reaches 75-90%",
       "10. Recommendations", "accuracy", "concatenation probe test accuracy with 95% CI",
       "accuracy.ensemble", (0.75, 0.90), "accuracy"),
    # -- embedding statistics (five songs in the comparison)
    _c("stats-mert-mean", "statistics", "mert-330m", "MERT embedding values: mean about 0.007",
       "8. Feature quality", "statistics", "median over tracks of the per-track mean (last "
       "layer)", "stats.mert.mean", (0.0, 0.015), "value"),
    _c("stats-mert-std", "statistics", "mert-330m", "MERT: std about 0.16-0.17",
       "8. Feature quality", "statistics", "median over tracks of the per-track std",
       "stats.mert.std", (0.14, 0.19), "value"),
    _c("stats-mert-range", "statistics", "mert-330m", "MERT: values from about -0.7 to 4.8",
       "8. Feature quality", "statistics", "median per-track min and max",
       "stats.mert.range", ((-1.1, -0.35), (4.4, 4.9)), "value"),
    _c("stats-vggish-mean", "statistics", "vggish", "VGGish embedding values: mean about 0.15",
       "8. Feature quality", "statistics", "median per-track mean (raw embedding)",
       "stats.vggish.mean", (0.12, 0.19), "value"),
    _c("stats-vggish-std", "statistics", "vggish", "VGGish: std about 0.42",
       "8. Feature quality", "statistics", "median per-track std", "stats.vggish.std",
       (0.38, 0.47), "value"),
    _c("stats-vggish-range", "statistics", "vggish", "VGGish: values from about -1.2 to 3.0",
       "8. Feature quality", "statistics", "median per-track min and max",
       "stats.vggish.range", ((-1.4, -0.8), (2.6, 3.2)), "value"),
    _c("stats-normalised", "statistics", "mert-330m", "MERT embeddings are more normalised "
       "than VGGish's (mean nearer 0, smaller std)", "8. Feature quality", "statistics",
       "|median mean| and median std of MERT below VGGish's", "stats.normalised", True),
    # -- compute
    _c("size-mert", "compute", "mert-330m", "MERT-v1-330M is 1.2 GB", "Quick summary / 5",
       "architecture", "parameters x 4 bytes (fp32 safetensors); within 10%", "size.mert",
       1.2e9, "bytes"),
    _c("size-vggish", "compute", "vggish", "VGGish is 276 MB", "Quick summary / 5",
       "architecture", "parameters x 4 bytes; within 10% (MB or MiB)", "size.vggish", 276e6,
       "bytes"),
    _c("ram-mert", "compute", "mert-330m", "MERT-v1-330M needs about 2.5 GB of RAM",
       "5. Computational requirements", "compute",
       "peak RSS of a subprocess that loads and runs it (imports included); ~ read as +-30%",
       "ram.mert-330m", 2.5 * 1024, "MiB"),
    _c("ram-vggish", "compute", "vggish", "VGGish needs about 500 MB of RAM",
       "5. Computational requirements", "compute", "peak RSS of its subprocess; +-30%",
       "ram.vggish", 500, "MiB"),
    _c("vram-mert", "compute", "mert-330m", "MERT-v1-330M needs about 4 GB of GPU memory",
       "5. Computational requirements", "compute", "peak CUDA memory allocated",
       "vram.mert-330m", 4 * 1024, "MiB"),
    _c("vram-vggish", "compute", "vggish", "VGGish needs about 1 GB of GPU memory",
       "5. Computational requirements", "compute", "peak CUDA memory allocated",
       "vram.vggish", 1024, "MiB"),
    _c("load-mert", "compute", "mert-330m", "MERT-v1-330M loads in 10-15 s",
       "5. Computational requirements", "compute", "load time", "load.mert-330m", (10, 15), "s"),
    _c("load-vggish", "compute", "vggish", "VGGish loads in 2-3 s",
       "5. Computational requirements", "compute", "load time", "load.vggish", (2, 3), "s"),
    _c("speed-mert-cpu", "compute", "mert-330m", "30 s of audio takes 30-60 s on a CPU (Jetson "
       "Orin), 2-3 s on an RTX 3090, 5-8 s on an M1", "5. Computational requirements",
       "compute", "seconds per 30 s clip at batch 1", "speed.mert-330m.1", (30, 60), "s"),
    _c("speed-vggish-cpu", "compute", "vggish", "30 s of audio takes 5-10 s on a CPU, 0.5-1 s "
       "on a GPU, 1-2 s on an M1", "5. Computational requirements", "compute",
       "seconds per 30 s clip at batch 1", "speed.vggish.1", (5, 10), "s"),
    _c("batch-mert", "compute", "mert-330m", "MERT batch 8 in 180 s, batch 16 in 300 s",
       "5. Batch processing", "compute", "seconds per batch of 30 s clips",
       "speed.mert-330m.batch", ((8, 180), (16, 300)), "s"),
    _c("batch-vggish", "compute", "vggish", "VGGish batch 8 in 30 s, batch 16 in 50 s",
       "5. Batch processing", "compute", "seconds per batch of 30 s clips",
       "speed.vggish.batch", ((8, 30), (16, 50)), "s"),
    # -- fine-tuning (notebook 09) and robustness (notebook 11)
    _c("finetune-mert", "fine-tuning", "mert", "fine-tuning MERT with its first 8 layers "
       "frozen and the last 4 trained, plus a classification head, gains 5-10% accuracy",
       "9. Transfer learning", "finetune",
       "notebook 09: fine-tuned (last 4 transformer layers + head) minus frozen linear-probe "
       "accuracy on the same test tracks, paired 95% CI (read as percentage points)",
       "finetune.mert.gain", (0.05, 0.10), "points"),
    _c("finetune-vggish", "fine-tuning", "vggish", "fine-tuning VGGish with its conv layers "
       "frozen and the fully connected layers trained, plus a head, gains 3-5% accuracy",
       "9. Transfer learning", "finetune",
       "notebook 09: fine-tuned (3 fully connected layers + head) minus frozen linear-probe "
       "accuracy on the same test tracks, paired 95% CI (read as percentage points)",
       "finetune.vggish.gain", (0.03, 0.05), "points"),
    _c("finetune-mert-time", "fine-tuning", "mert", "fine-tuning MERT takes 2-4 hours on a GPU",
       "9. Transfer learning", "finetune",
       "notebook 09's training throughput on a GPU, extrapolated to 1,000 x 30 s clips and "
       "the epochs chosen on validation (the claim names neither data set nor GPU)",
       "finetune.mert.time", (2, 4), "h"),
    _c("finetune-vggish-time", "fine-tuning", "vggish", "fine-tuning VGGish takes 30-60 "
       "minutes on a GPU", "9. Transfer learning", "finetune",
       "notebook 09's training throughput on a GPU, extrapolated to 1,000 x 30 s clips and "
       "the epochs chosen on validation (the claim names neither data set nor GPU)",
       "finetune.vggish.time", (0.5, 1), "h"),
    _c("stable-mert", "robustness", "mert", "MERT produces more stable embeddings than VGGish",
       "8. Feature quality", "robustness",
       "notebook 11: cosine between each track's clean and deformed embedding, MERT minus "
       "VGGish on the same tracks, paired 95% CI under every deformation",
       "robustness.cosine", "MERT > VGGish", ""),
    _c("subtle-mert", "robustness", "mert", "MERT captures subtle differences between songs",
       "8. Feature quality", "robustness",
       "notebook 11: self-retrieval recall@1 (is a deformed track's nearest clean track its "
       "own version, among all songs), MERT minus VGGish, paired 95% CI under every "
       "deformation", "robustness.hit", "MERT > VGGish", ""),
    _c("speed-ratio", "compute", "vggish", "VGGish is 5-6x faster than MERT",
       "5 / 10 / 11", "compute", "MERT-v1-330M seconds per clip over VGGish's, same machine, "
       "same run, each in the precision mtbc uses", "speed.ratio", (5, 6), "x"),
)
