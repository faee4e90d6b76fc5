"""The option objects of an evaluation (frozen dataclasses).

:class:`EvalOptions` configures the fold loop (folds, seed, bootstrap, threads);
:class:`ProbeOptions` a probe system (probe, layer, selection, grid). The ``evaluate_*``
functions take either object and/or their fields as keywords (:func:`split_options`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from mtbc.evaluation.estimators import DEFAULT_CS


@dataclass(frozen=True)
class EvalOptions:
    """The fold loop's options.

    ``n_splits`` / ``n_inner``: outer and inner fold counts when there is no predefined
    split; ``refit``: predefined split only, refit on ``"train"`` (MARBLE) or
    ``"train+valid"``; ``seed``: folds, probes and bootstrap; ``n_boot``: bootstrap resamples
    of the CIs (0: none); ``n_threads``: BLAS/torch threads of each solve (None: as is);
    ``n_jobs``: folds run side by side (None: one per available core; the numbers do not
    depend on it, :mod:`mtbc.evaluation.parallel`);
    ``reuse_dir``: a folder where evaluations are kept and reused
    (:mod:`mtbc.evaluation.memo`; None: nothing kept).
    """

    n_splits: int = 5
    n_inner: int = 3
    refit: str = "train"
    seed: int = 0
    n_boot: int = 1000
    n_threads: int | None = 1
    n_jobs: int | None = None
    progress: bool = False
    reuse_dir: str | None = None

    def fold_key(self) -> dict:
        """The options that shape an evaluation's folds and fits (not its bootstrap, its
        progress bar or where it is kept)."""
        return {"n_splits": self.n_splits, "n_inner": self.n_inner, "refit": self.refit,
                "seed": self.seed, "n_threads": self.n_threads}


@dataclass(frozen=True)
class ProbeOptions:
    """What a probe system is: ``probe`` (``"linear"`` or ``"mlp"``), ``layer``
    (``"select"``: every layer and the mean of layers, chosen on validation; an int or
    ``"mean"``), ``selection`` (what ranks layers, module docstring), the linear probe's
    ``Cs`` grid, extra ``probe_params`` for the probe's constructor (e.g.
    ``{"max_epochs": 30}`` for the MLP), ``per_layer_test`` (also refit every candidate
    layer and add its test accuracy to ``layer_scores`` -- descriptive only, nothing is
    chosen from it), the result's ``name``, the extractor ``fingerprint``, and ``protocol``
    (``"default"`` or ``"marble"``: :func:`mtbc.evaluation.marble.evaluate_marble`)."""

    probe: str = "linear"
    layer: int | str = "select"
    selection: str = "auto"
    Cs: Sequence[float] = DEFAULT_CS
    probe_params: dict | None = None
    per_layer_test: bool = False
    name: str | None = None
    fingerprint: str | None = None
    protocol: str = "default"


def split_options(probe_options, eval_options, overrides: dict) -> tuple:
    """``(ProbeOptions, EvalOptions)`` with ``overrides`` (field names of either) applied;
    ``TypeError`` names an unknown option.

    Example
    -------
    >>> p, e = split_options(None, None, {"probe": "mlp", "seed": 3})
    >>> p.probe, e.seed, e.n_splits
    ('mlp', 3, 5)
    """
    p_names = {f.name for f in fields(ProbeOptions)}
    e_names = {f.name for f in fields(EvalOptions)}
    unknown = set(overrides) - p_names - e_names
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; options are "
                        f"{sorted(p_names | e_names)}")
    p = replace(probe_options or ProbeOptions(),
                **{k: v for k, v in overrides.items() if k in p_names})
    e = replace(eval_options or EvalOptions(),
                **{k: v for k, v in overrides.items() if k in e_names})
    return p, e
