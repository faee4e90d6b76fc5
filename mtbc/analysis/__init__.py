"""Compute benchmarking and the claims audit (being moved to their own packages).

The evaluation engine is :mod:`mtbc.evaluation`, statistics :mod:`mtbc.stats`, the notebooks'
helpers :mod:`mtbc.study`."""
