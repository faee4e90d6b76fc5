"""The evaluation engine: tasks x systems x folds, without leakage (``docs/protocol.md``).

An evaluation is a :class:`Task` (what the targets are and how predictions are scored:
:class:`Classification`, :class:`Tagging`) x a :class:`System` (fitted on training tracks,
choices made on validation tracks, predicts test tracks: :class:`LayerProbe`,
:class:`Concatenation`, :class:`MajorityClass`; late fusion combines results) x folds (the
predefined split, or stratified group k-fold). :func:`evaluate` runs the one fold loop; the
one selection routine is :func:`mtbc.evaluation.selection.choose`.

Modules: :mod:`~mtbc.evaluation.engine` (fold loop, :class:`System`),
:mod:`~mtbc.evaluation.tasks`, :mod:`~mtbc.evaluation.systems` (single-model probes and the
``evaluate_*`` entry points), :mod:`~mtbc.evaluation.ensembles` (concatenation, late
fusion), :mod:`~mtbc.evaluation.selection`, :mod:`~mtbc.evaluation.specs` (probe families
and grids), :mod:`~mtbc.evaluation.estimators` / :mod:`~mtbc.evaluation.tag_estimators`
(scikit-learn-style probes), :mod:`~mtbc.evaluation.results`,
:mod:`~mtbc.evaluation.marble` (MARBLE's protocol) and :mod:`~mtbc.evaluation.predict`
(final probes for new files; import it directly).

The metrics, intervals and paired tests of :mod:`mtbc.stats` are re-exported here
(``mtbc.evaluation.bootstrap_ci``, ``paired_test``, ``pairwise_tests``,
``classification_metrics``, ``multilabel_metrics``...).

Example
-------
>>> import numpy as np, pandas as pd
>>> from mtbc.evaluation import evaluate_probe
>>> tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(60)],
...                        "label": ["a", "b", "c"] * 20})
>>> X = np.random.default_rng(0).standard_normal((60, 3, 4)).astype(np.float32)
>>> X[:, 2, 0] += np.tile([0.0, 10.0, 20.0], 20)  # the labels show in layer 2
>>> result = evaluate_probe(X, np.arange(60), tracks, n_splits=3, n_boot=200, seed=0)
>>> result.metric("accuracy") > 0.9, result.chosen_layers()
(True, '2 (x3)')
"""

from mtbc.evaluation.engine import (
    Evaluation,
    FoldData,
    FoldPrediction,
    System,
    evaluate,
    evaluate_all,
)
from mtbc.evaluation.ensembles import (
    Concatenation,
    early_fusion_evaluation,
    evaluate_early_fusion,
    evaluate_late_fusion,
    evaluate_tagging_early_fusion,
    late_fusion,
    tagging_early_fusion_evaluation,
    tagging_late_fusion,
)
from mtbc.evaluation.estimators import (
    DEFAULT_CS,
    BlockStandardizer,
    LayerSelector,
    LinearProbe,
    MLPProbe,
)
from mtbc.evaluation.marble import MarbleOptions, evaluate_marble
from mtbc.evaluation.options import EvalOptions, ProbeOptions
from mtbc.evaluation.results import (
    ProbeResult,
    Provenance,
    Result,
    TaggingResult,
    compare,
)
from mtbc.evaluation.systems import (
    LayerProbe,
    MajorityClass,
    evaluate_majority,
    evaluate_probe,
    evaluate_tagging,
    probe_evaluation,
    tagging_evaluation,
)
from mtbc.evaluation.tag_estimators import MultiLabelLinearProbe, MultiLabelMLPProbe
from mtbc.evaluation.tasks import Classification, Tagging, Task
from mtbc.stats import (
    METRICS,
    PairedTest,
    bootstrap_ci,
    bootstrap_mean_ci,
    classification_metrics,
    confusion_frame,
    group_bootstrap,
    group_codes,
    holm,
    mcnemar_exact,
    metrics_table,
    multilabel_bootstrap_ci,
    multilabel_metrics,
    multilabel_paired_test,
    paired_test,
    pairwise_tests,
    percentile_interval,
    resample_weights,
)

__all__ = [
    # engine, tasks, systems
    "Classification", "Concatenation", "EvalOptions", "FoldData", "FoldPrediction",
    "LayerProbe", "MajorityClass", "MarbleOptions", "ProbeOptions", "System", "Tagging",
    "Task", "evaluate", "evaluate_early_fusion", "evaluate_late_fusion", "evaluate_majority",
    "evaluate_marble", "evaluate_probe", "evaluate_tagging", "evaluate_tagging_early_fusion",
    "late_fusion", "tagging_late_fusion",
    # several evaluations in one queue of folds
    "Evaluation", "evaluate_all", "early_fusion_evaluation", "probe_evaluation",
    "tagging_early_fusion_evaluation", "tagging_evaluation",
    # results
    "ProbeResult", "Provenance", "Result", "TaggingResult", "compare",
    # estimators
    "DEFAULT_CS", "BlockStandardizer", "LayerSelector", "LinearProbe", "MLPProbe",
    "MultiLabelLinearProbe", "MultiLabelMLPProbe",
    # metrics, intervals and paired tests (mtbc.stats)
    "METRICS", "PairedTest", "bootstrap_ci", "bootstrap_mean_ci", "classification_metrics",
    "confusion_frame", "group_bootstrap", "group_codes", "holm", "mcnemar_exact",
    "metrics_table", "multilabel_bootstrap_ci", "multilabel_metrics", "multilabel_paired_test",
    "paired_test", "pairwise_tests", "percentile_interval", "resample_weights",
]
