"""Stage 4, the analysis: embedding statistics (:mod:`~mtbc.analysis.stats`), probe estimators
(:mod:`~mtbc.analysis.probes`), the evaluation protocol (:mod:`~mtbc.analysis.protocol`),
metrics and tests (:mod:`~mtbc.analysis.evaluation`), ensembles
(:mod:`~mtbc.analysis.ensemble`) and prediction on new files (:mod:`~mtbc.analysis.predict`)."""
