"""What each model costs to run: the measurement behind ``mtbc bench`` and notebook 07.

One function produces every figure, :func:`bench_rows`: for each model it starts **one
subprocess** (so that peak memory is that model's alone), builds the extractor there from the
registry (:mod:`mtbc.extractors`) and times :meth:`Extractor.embed_many` on batches of
synthetic clips, for every precision asked for (:class:`BenchOptions`). Everything
model-specific comes from the extractor's cost model (bench keys, full-size random weights,
FLOPs per clip, batch per clip, precisions). Each row holds :data:`ROW_FIELDS` and more:

- ``seconds_per_clip`` = best wall time of the batch / batch size; ``audio_s_per_s`` = audio
  seconds embedded per wall second (front end included: the whole ``embed_many``);
- ``tflops`` = the extractor's analytic network FLOPs over that time; ``peak_fraction`` =
  ``tflops`` over the matmul peak measured in the same subprocess, in the same dtype, before
  and after the timings (the larger is used);
- ``peak_rss_mib``: the subprocess's peak resident memory (``VmHWM`` on Linux, imports included;
  ``baseline_rss_mib`` is the resident memory after imports, before the model);
  ``peak_vram_mib``: ``torch.cuda.max_memory_allocated`` (``None`` off CUDA);
- ``load_s``: constructing and loading the extractor (weights read from disk and hashed) or,
  for random weights built in memory, building the model;
- ``weights_kind``: ``pretrained``, ``fixture`` (random files a test or ``mtbc fixtures``
  wrote), :data:`RANDOM` (full-size random weights in the exact architecture, made here
  because the real ones are not on this machine) or ``none`` (no network).

Random weights time exactly like real ones (same shapes, same kernels); their embeddings
mean nothing, and every table says which weights a row used.

Modules: :mod:`~mtbc.benchmark.timing` (primitives), :mod:`~mtbc.benchmark.models` (keys,
options), :mod:`~mtbc.benchmark.measure` (one model, the worker),
:mod:`~mtbc.benchmark.rows` (every model, ``compute.json``),
:mod:`~mtbc.benchmark.timing_cache` (timings kept per machine, version, model and workload),
:mod:`~mtbc.benchmark.tables`
(notebook 07's tables), :mod:`~mtbc.benchmark.decode` (decode cost); imported on demand
because they reach into the evaluation engine: :mod:`~mtbc.benchmark.precision` (bf16 vs
fp32 on a run's tracks) and :mod:`~mtbc.benchmark.suite` (``mtbc bench``).

Examples
--------
>>> from mtbc import benchmark
>>> result = benchmark.bench_rows(["mfcc"], benchmark.BenchOptions(
...     device="cpu", batch_sizes=[1], clip_seconds=2.0), isolate=False)
>>> benchmark.rows_frame(result)["label"].tolist()
['mfcc']
"""

from mtbc.benchmark.decode import decode_costs
from mtbc.benchmark.measure import measure_model
from mtbc.benchmark.models import (
    RANDOM,
    ROW_FIELDS,
    BenchOptions,
    model_key,
    model_keys,
    models_for_run,
)
from mtbc.benchmark.rows import bench_rows, measure_isolated, read_rows, rows_path, write_rows
from mtbc.benchmark.tables import (
    agreement_table,
    claimed_compute,
    memory_frame,
    ours_beside_claims,
    rows_frame,
    skipped_frame,
    speedup_table,
)
from mtbc.benchmark.timing import (
    best_time,
    cosine_per_layer,
    matmul_peak_tflops,
    peak_cuda_mib,
    peak_rss_mib,
    synthetic_clip,
)
from mtbc.benchmark.timing_cache import TimingCache

__all__ = ["RANDOM", "ROW_FIELDS", "BenchOptions", "TimingCache", "agreement_table",
           "bench_rows", "best_time", "claimed_compute", "cosine_per_layer", "decode_costs",
           "matmul_peak_tflops", "measure_isolated", "measure_model", "memory_frame",
           "model_key", "model_keys", "models_for_run", "ours_beside_claims", "peak_cuda_mib",
           "peak_rss_mib", "read_rows", "rows_frame", "rows_path", "skipped_frame",
           "speedup_table", "synthetic_clip", "write_rows"]
