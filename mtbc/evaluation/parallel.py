"""Folds in parallel threads, each with single-threaded BLAS and torch.

The engine's solves are many and small: one BLAS thread per solve is the fastest way to run
each of them (several threads make a 533 x 533 triangular solve 17x slower), so the cores
are used by running independent folds side by side instead. Threads, not processes: numpy,
scipy and torch release the GIL in their kernels, the features are shared rather than
copied, and there is no start-up cost. Every fold's computation is independent and
deterministic, and results are gathered in fold order, so the numbers do not depend on the
number of workers.

Nested calls (the inner folds of an outer fold that already runs in a worker) run serially
in that worker, so there are never more busy threads than workers.

Warnings: :func:`convergence_counter` counts each fold's convergence warnings by the thread
that raised them (``warnings.catch_warnings`` is not thread-safe, so it is entered once,
around the pool); every other warning is shown as usual.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from sklearn.exceptions import ConvergenceWarning

from mtbc.config import available_cores

_LOCAL = threading.local()


def n_workers(n_jobs: int | None, n_tasks: int) -> int:
    """Workers for ``n_tasks``: ``n_jobs`` (``None``: the available cores), at most one per
    task, and 1 inside a worker (module docstring)."""
    if getattr(_LOCAL, "in_worker", False) or n_tasks <= 1:
        return 1
    if n_jobs is not None and int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be at least 1 (or None for every core), not {n_jobs}")
    return max(1, min(int(n_jobs) if n_jobs is not None else available_cores(), n_tasks))


def parallel_map(fn: Callable[[int, Any], Any], items: Sequence, *, n_jobs: int | None = None,
                 done: Callable[[], None] | None = None) -> list:
    """``[fn(i, item) for i, item in enumerate(items)]``, on :func:`n_workers` threads;
    ``done()`` is called in the calling thread after each item finishes (a progress bar).
    The first exception is raised once every started item has finished. The outermost map's
    item index is the :func:`current_task` of everything it runs, nested maps included."""
    workers = n_workers(n_jobs, len(items))
    parent_depth = getattr(_LOCAL, "depth", 0)
    parent_task = getattr(_LOCAL, "task", None)

    def run(i, item):
        saved = (getattr(_LOCAL, "depth", 0), getattr(_LOCAL, "task", None),
                 getattr(_LOCAL, "in_worker", False))
        _LOCAL.depth = parent_depth + 1
        _LOCAL.task = i if parent_depth == 0 else parent_task
        _LOCAL.in_worker = saved[2] or workers > 1
        try:
            return fn(i, item)
        finally:
            _LOCAL.depth, _LOCAL.task, _LOCAL.in_worker = saved

    if workers == 1:
        out = []
        for i, item in enumerate(items):
            out.append(run(i, item))
            if done is not None:
                done()
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mtbc-fold") as pool:
        futures = [pool.submit(run, i, item) for i, item in enumerate(items)]
        for f in as_completed(futures):
            f.exception()
            if done is not None:
                done()
        return [f.result() for f in futures]


def current_task() -> int | None:
    """The index of the item :func:`parallel_map` is running in this thread, or ``None``."""
    return getattr(_LOCAL, "task", None)


@contextmanager
def convergence_counter() -> Iterator[Counter]:
    """Count convergence warnings by :func:`current_task` (module docstring): yields a
    ``Counter`` task index -> warnings; other warnings, and convergence warnings outside a
    task, are shown as usual."""
    counts: Counter = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            task = current_task()
            if task is not None and issubclass(category, ConvergenceWarning):
                counts[task] += 1
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield counts
