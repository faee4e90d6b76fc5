"""Statistics: metrics, group-aware intervals, paired tests and descriptive statistics.

- :mod:`mtbc.stats.resampling`: the one (cluster) bootstrap and the permutation machinery;
  tracks that share a group are resampled and permuted together.
- :mod:`mtbc.stats.classification`: accuracy and macro precision / recall / F1, their
  bootstrap intervals, McNemar's exact and sign-flip paired tests, Holm's adjustment.
- :mod:`mtbc.stats.multilabel`: masked multi-label metrics (ROC-AUC, PR-AUC, top-k), their
  intervals and the paired swap test.
- :mod:`mtbc.stats.descriptive`: descriptive statistics of embeddings (per track, per
  dimension, similarity, 2-D projections, label separability).

Nothing here trains a model or reads a file; :mod:`mtbc.evaluation` builds on it.

Example
-------
>>> from mtbc.stats import bootstrap_ci, classification_metrics
>>> truth, predicted = ["a", "b", "a", "b"], ["a", "b", "b", "b"]
>>> classification_metrics(truth, predicted)["accuracy"]
0.75
>>> low, high = bootstrap_ci(truth, predicted, n_boot=200, seed=0)["accuracy"]
>>> bool(low <= 0.75 <= high)
True
"""

from mtbc.stats.classification import (
    METRICS,
    PairedTest,
    bootstrap_ci,
    classification_metrics,
    confusion_frame,
    holm,
    mcnemar_exact,
    metrics_table,
    paired_test,
    pairwise_tests,
)
from mtbc.stats.multilabel import (
    fold_ranks,
    macro_roc_auc,
    multilabel_bootstrap_ci,
    multilabel_metrics,
    multilabel_paired_test,
    tagging_metrics_table,
    topk_hits,
)
from mtbc.stats.resampling import (
    PairedMean,
    bootstrap_mean_ci,
    flip_patterns,
    group_bootstrap,
    group_codes,
    paired_mean_test,
    percentile_interval,
    permutation_p_value,
    resample_weights,
)

__all__ = [
    "METRICS", "PairedMean", "PairedTest", "bootstrap_ci", "bootstrap_mean_ci", "classification_metrics",
    "confusion_frame", "flip_patterns", "fold_ranks", "group_bootstrap", "group_codes", "holm", "paired_mean_test",
    "macro_roc_auc", "mcnemar_exact", "metrics_table", "multilabel_bootstrap_ci",
    "multilabel_metrics", "multilabel_paired_test", "paired_test", "pairwise_tests",
    "percentile_interval", "permutation_p_value", "resample_weights", "tagging_metrics_table",
    "topk_hits",
]
