"""Public alias of :mod:`mtbc.analysis.evaluation` (metrics, intervals, paired tests).

The module object is the same, so ``import mtbc.evaluation`` and
``import mtbc.analysis.evaluation`` give one module.
"""

import sys

from mtbc.analysis import evaluation as _evaluation

sys.modules[__name__] = _evaluation
