"""Extraction as a Slurm job array (``mtbc extract ... --slurm``), through ``submitit``.

One array of ``tasks`` tasks over the collection's shards: task ``k`` embeds shard ``k/tasks``
(:func:`mtbc.cache.extract.select_shard`, the ``--shard k/n`` of ``mtbc extract``) with every
extractor, into the one shared cache (atomic writes, so tasks never see each other's half
files). :func:`run_on_slurm` submits only the shards that still miss entries, prints the job
id and the log folder, waits with a progress bar fed by the cache (entries present / total),
resubmits a task that ended without finishing (cancelled, node failure, out of memory) up to
``retries`` times, and lists the failed tasks with their log tails at the end. A task that is
preempted or reaches its time limit is requeued by submitit itself (:class:`ShardTask` is
``Checkpointable``; the cache makes the requeued task resume where it stopped).

submitit pickles the task (a :class:`ShardTask`: plain names, options and paths) into the log
folder and the job unpickles it: that file is written by mtbc for its own job, never a
user's. The task's outcome comes back as a small JSON file beside it, so the submitting side
unpickles nothing. The queue side (plan, submission, ``squeue``, waiting) is in
:mod:`mtbc.cache.slurm_queue`; the options in :mod:`mtbc.cache.slurm_options`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mtbc.cache.extract import select_shard
from mtbc.cache.slurm_options import (
    ACTIVE_STATES,
    SlurmError,
    SlurmOptions,
    check_slurm,
    parse_time,
)
from mtbc.cache.slurm_queue import (
    Plan,
    check_submission,
    make_plan,
    running_note,
    still_running,
    submit,
    tail,
    task_states,
    wait_for,
)
from mtbc.cache.store import EmbeddingStore
from mtbc.files import atomic_write

__all__ = ["ACTIVE_STATES", "ShardTask", "SlurmError", "SlurmOptions", "check_slurm",
           "check_submission", "extract_command", "extract_for_run", "parse_time",
           "run_on_slurm", "running_note", "still_running", "task_states"]

# -- the task that runs on a node ---------------------------------------------------------------

def gpu_shards(shard: tuple[int, int], gpus: int) -> list[tuple[int, int]]:
    """Split shard ``k/n`` among ``gpus`` processes: process ``j`` takes ``k + n*j`` of
    ``n*gpus``, so together they cover exactly shard ``k/n`` (a hash ``h`` with
    ``h % (n*gpus) == k + n*j`` has ``h % n == k``). Example: ``gpu_shards((1, 4), 2) ==
    [(1, 8), (5, 8)]``."""
    k, n = shard
    return [(k + n * j, n * gpus) for j in range(gpus)]


@dataclass(frozen=True)
class ShardTask:
    """Shard ``shard = (k, n)`` of a collection with every extractor: what one array task
    runs. ``extractors``: ``(name, options)`` pairs. With ``gpus > 1`` it starts one process
    per GPU, splitting its shard among them (:func:`gpu_shards`)."""

    collection: str
    kind: str
    extractors: tuple[tuple[str, Mapping[str, Any]], ...]
    cache: str
    shard: tuple[int, int]
    batch: int = 8
    max_duration: float | None = None
    gpus: int = 0
    outcome_dir: str = ""

    def __call__(self) -> int:
        import submitit

        start = time.time()
        if self.gpus > 1:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            devices = [f"cuda:{j}" for j in range(self.gpus)]
            with ProcessPoolExecutor(self.gpus, mp_context=get_context("spawn")) as pool:
                parts = list(pool.map(_extract_shard, [self] * self.gpus,
                                      gpu_shards(self.shard, self.gpus), devices))
            failed = sum((p[0] for p in parts), [])
            extracting = max(p[1] for p in parts)
        else:
            failed, extracting = _extract_shard(self, self.shard, None)
        env = submitit.JobEnvironment()
        outcome = {"job_id": env.job_id, "shard": list(self.shard), "failed": failed,
                   "started": start, "seconds": round(time.time() - start, 3),
                   "extract_seconds": round(extracting, 3)}
        if self.outcome_dir:
            text = json.dumps(outcome).encode()
            atomic_write(Path(self.outcome_dir) / f"{env.job_id}_outcome.json",
                         lambda f: f.write(text))
        return 0

    def checkpoint(self, *args, **kwargs):
        """Requeue the same task on preemption or time-out (submitit calls this); the cache
        makes it resume where it stopped."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _fit_threads(processes: int) -> None:
    """Size torch's threads and the decode threads to the cores Slurm gave the task
    (``SLURM_CPUS_PER_TASK``, shared by ``processes``), not to the whole node's."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if not cpus.isdigit() or int(cpus) < 1:
        return
    share = max(1, int(cpus) // processes)
    from mtbc.cache.devices import DECODE_WORKERS_ENV

    os.environ.setdefault(DECODE_WORKERS_ENV, str(max(2, share - 1)))
    import torch  # heavy: only in the task

    torch.set_num_threads(share)


def _extract_shard(task: ShardTask, shard: tuple[int, int], device: str | None
                   ) -> tuple[list, float]:
    """Run one shard in this process: ``([[extractor, path, reason], ...] for failed tracks,
    seconds spent embedding)``. Prints the same report as ``mtbc extract --shard`` (it lands in the task's log)."""
    from mtbc.cache.extract import extract_collection, load_model
    from mtbc.data.collection import load_collection
    from mtbc.extractors import get_extractor

    _fit_threads(max(1, task.gpus))
    store = EmbeddingStore(task.cache)
    extractors = []
    for name, options in task.extractors:
        opts = dict(options)
        if device is not None:
            opts["device"] = device
        extractors.append(get_extractor(name, **opts))
        load_model(extractors[-1])
    kw = {} if task.max_duration is None else {"max_duration": task.max_duration}
    coll = load_collection(task.collection, kind=task.kind, progress=False,
                           scan_cache=store.root, **kw)
    print(f"shard {shard[0]}/{shard[1]} of {coll.name}: "
          f"{len(select_shard(coll.tracks, shard))} of {len(coll)} tracks", flush=True)
    failed, seconds = [], 0.0
    for ex in extractors:
        report = extract_collection(coll.tracks, ex, store, batch_tracks=task.batch,
                                    shard=shard, progress=False, **kw)
        seconds += report.seconds
        print(report, flush=True)
        for row in report.failed.itertuples():
            print(f"failed: {row.path}: {row.reason}", flush=True)
            failed.append([ex.name, row.path, row.reason])
    return failed, seconds


def run_on_slurm(tracks: pd.DataFrame, extractors: Sequence, template: ShardTask,
                 options: SlurmOptions, *, progress: bool = True) -> int:
    """Submit (and unless ``options.wait`` is false, wait for) the shards still missing.

    ``extractors``: the built extractors of ``template.extractors`` (for their fingerprints).
    Returns 0 when every entry is present and verifies (or was submitted with
    ``wait=False``), 1 otherwise. Raises :class:`SlurmError` for a cluster that cannot take
    the job.
    """
    parse_time(options.time)
    check_slurm(options.partition)
    store = EmbeddingStore(template.cache)
    log_dir = _log_dir(options, store)
    log_dir.mkdir(parents=True, exist_ok=True)
    template = _with(template, outcome_dir=str(log_dir))
    plan = make_plan(tracks, extractors, template, store, options.tasks)
    for ex in extractors:
        store.write_info(ex.fingerprint, ex.metadata())
    todo = plan.missing_shards(store)
    busy = still_running(log_dir, tasks=plan.tasks, fingerprints=plan.fingerprints)
    running = {j: k for j, k in busy.items() if k in todo}
    todo = [k for k in todo if k not in running.values()]
    if not todo and not running:
        print(f"every shard is cached ({sum(map(len, plan.entries.values()))} entries); "
              f"nothing to submit")
        return 0
    if running:
        print(f"still running from an earlier submission: {', '.join(sorted(running))}")
    if todo:
        ids = submit(plan, todo, options, log_dir)
        array = next(iter(ids)).split("_")[0]
        print(f"submitted job {array}: {len(todo)} of {plan.tasks} shards "
              f"({', '.join(map(str, todo))}); logs in {log_dir / array}_*", flush=True)
        running.update(ids)
    if not options.wait:
        print(f"not waiting (--no-wait): `squeue -j {','.join(sorted({j.split('_')[0] for j in running}))}`"
              f" shows the tasks, `mtbc cache --cache {store.root}` the entries; rerun this "
              f"command to resubmit what is still missing")
        return 0
    try:
        failed = wait_for(plan, running, options, log_dir, store, progress=progress)
    except KeyboardInterrupt:
        print("\nstopped waiting; the tasks go on: the same command run again waits for them "
              "and resubmits only what is missing", flush=True)
        raise
    return _summary(plan, store, failed, log_dir)


def _log_dir(options: SlurmOptions, store: EmbeddingStore) -> Path:
    return (Path(options.log_dir) if options.log_dir else store.root / "slurm-logs").resolve()


def _with(task: ShardTask, **changes) -> ShardTask:
    from dataclasses import replace

    return replace(task, **changes)


def _summary(plan: Plan, store: EmbeddingStore, failed: list[dict], log_dir: Path) -> int:
    absent = plan.missing_shards(store)
    total = sum(map(len, plan.entries.values()))
    bad = sum(1 for k in absent for p in plan.entries[k]
              if store.problem(p.stem, p.parent.parent.name) is not None)
    print(f"{total - bad} of {total} entries present and verified "
          f"({len(plan.fingerprints)} extractors x {total // max(1, len(plan.fingerprints))} "
          f"tracks)")
    for task in failed:
        print(f"\nfailed task {task['job_id']} (shard {task['shard']}/{plan.tasks}, "
              f"{task['state']}):")
        for path in task["logs"]:
            print(f"  {path}:\n{tail(path)}")
    said = set()
    for out in sorted(log_dir.glob("*_outcome.json")) if absent else []:
        try:
            data = json.loads(out.read_text())
        except ValueError:
            continue
        if data.get("shard", [None])[0] in absent and data["shard"][1] == plan.tasks:
            for name, path, reason in data.get("failed", []):
                if (name, path) not in said:  # the tracks a finished task could not embed
                    said.add((name, path))
                    print(f"{name}: failed: {path}: {reason}")
    if bad:
        print(f"{bad} entries missing (shards {', '.join(map(str, absent))}); rerunning the "
              f"command resubmits only those shards")
    return 1 if failed else 0


def extract_command(args, options: Mapping[str, Any], build_extractors) -> int:
    """``mtbc extract --slurm`` (``args`` as its parser gives them; ``options``: the
    extractor options; ``build_extractors(names, options)`` builds and loads the models, so a
    bad option or model file stops the command before anything is submitted)."""
    from mtbc.cache.slurm_options import options_from_args
    from mtbc.data.collection import load_collection

    slurm = options_from_args(args)
    check_slurm(slurm.partition)
    store = EmbeddingStore(args.cache)
    check_submission(slurm, _log_dir(slurm, store))
    extractors = build_extractors(args.extractor, options)
    coll = load_collection(args.collection, kind=args.kind, max_duration=args.max_duration,
                           scan_cache=store.root)  # the tasks reuse this scan
    spec = Path(args.collection)
    task = ShardTask(collection=str(spec.resolve()) if spec.exists() else args.collection,
                     kind=args.kind, extractors=tuple((n, dict(options)) for n in args.extractor),
                     cache=str(store.root.resolve()), shard=(0, slurm.tasks), batch=args.batch,
                     max_duration=args.max_duration, gpus=slurm.gpus_per_task)
    return run_on_slurm(coll.tracks, extractors, task, slurm)


def extract_for_run(collection: str, tracks: pd.DataFrame, extractors: Mapping[str, Any],
                    specs: Mapping[str, Mapping[str, Any]], block: Mapping[str, Any],
                    store: EmbeddingStore, *, progress: bool = True) -> dict:
    """``mtbc run``'s extraction step on Slurm (a params file's ``slurm:`` block).

    ``extractors``: label -> built extractor; ``specs``: label -> its params options (with
    ``name``). Waits for the array, then returns label ->
    :class:`~mtbc.cache.extract.ExtractionReport` read from the cache: entries there before
    are ``cached``, new ones ``extracted``, the rest ``failed`` (see the tasks' logs).
    """
    from mtbc.cache.extract import FAILED_COLUMNS, ExtractionReport
    from mtbc.cache.slurm_options import options_from_mapping

    options = options_from_mapping(block)
    hashes = list(tracks["content_hash"])
    before = {label: {h for h in hashes if store.has(h, ex.fingerprint)}
              for label, ex in extractors.items()}
    spec = Path(collection)
    template = ShardTask(
        collection=str(spec.resolve()) if spec.exists() else collection, kind="auto",
        extractors=tuple((specs[label]["name"],
                          {k: v for k, v in specs[label].items() if k != "name"})
                         for label in extractors),
        cache=str(store.root.resolve()), shard=(0, options.tasks), gpus=options.gpus_per_task)
    start = time.perf_counter()
    run_on_slurm(tracks, list(extractors.values()), template, options, progress=progress)
    reports = {}
    for label, ex in extractors.items():
        report, failed = ExtractionReport(fingerprint=ex.fingerprint), []
        for row in tracks.to_dict("records"):
            if row["content_hash"] in before[label]:
                report.cached.append(row["track_id"])
            elif store.has(row["content_hash"], ex.fingerprint):
                report.extracted.append(row["track_id"])
            else:
                failed.append((row["track_id"], row["path"],
                               "no entry after the Slurm tasks (their logs say why)"))
        report.failed = pd.DataFrame(failed, columns=FAILED_COLUMNS)
        report.seconds = time.perf_counter() - start
        reports[label] = report
    return reports
