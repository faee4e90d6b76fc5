"""The queue side of ``mtbc extract --slurm``: which shards to submit, submitting them
through submitit, reading task states from ``squeue``, waiting while counting cache entries.

:mod:`mtbc.cache.slurm` holds the task that runs on a node and the entry points.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mtbc.cache.extract import select_shard
from mtbc.cache.slurm_options import (
    ACTIVE_STATES,
    SlurmError,
    SlurmOptions,
    parse_time,
    run_command,
)
from mtbc.cache.store import EmbeddingStore
from mtbc.files import atomic_write


@dataclass
class Plan:
    """What one ``--slurm`` run covers: entry paths per shard, the tasks template."""

    template: Any  # a mtbc.cache.slurm.ShardTask
    tasks: int
    #: shard index -> cache entry paths that shard writes (every extractor).
    entries: dict[int, list[Path]] = field(default_factory=dict)
    fingerprints: list[str] = field(default_factory=list)

    def missing_shards(self, store: EmbeddingStore) -> list[int]:
        """Shards with at least one entry absent or not verifying."""
        out = []
        for k, paths in self.entries.items():
            if any(store.problem(p.stem, p.parent.parent.name) is not None for p in paths):
                out.append(k)
        return out


def make_plan(tracks: pd.DataFrame, extractors: Sequence, template: Any,
              store: EmbeddingStore, tasks: int) -> Plan:
    """The entries each of ``tasks`` shards writes, for the built ``extractors``."""
    plan = Plan(template=template, tasks=tasks,
                fingerprints=[ex.fingerprint for ex in extractors])
    for k in range(tasks):
        hashes = list(select_shard(tracks, (k, tasks))["content_hash"])
        plan.entries[k] = [store.path_for(h, fp) for fp in plan.fingerprints for h in hashes]
    return plan


def _executor(options: SlurmOptions, log_dir: Path, n_tasks: int):
    import submitit

    ex = submitit.SlurmExecutor(folder=log_dir / "%j", max_num_timeout=options.retries)
    params: dict[str, Any] = {"job_name": "mtbc-extract", "time": parse_time(options.time),
                              "array_parallelism": options.array_parallelism or n_tasks,
                              "signal_delay_s": 60}
    if options.partition:
        params["partition"] = options.partition
    if options.gpus_per_task:
        params["gpus_per_task"] = options.gpus_per_task
    known = set(submitit.SlurmExecutor._valid_parameters())
    additional = {}
    for key, value in options.extra:
        # submitit's generic names too (mem_gb=32 -> mem=32GB, timeout_min -> time)
        ((name, value),) = ex._convert_parameters({key.replace("-", "_"): value}).items()
        if name in known:
            params[name] = value
        else:  # any other sbatch option, passed as --key=value
            additional[key.replace("_", "-")] = value
    if additional:
        params["additional_parameters"] = additional
    try:
        ex.update_parameters(**params)
    except ValueError as exc:
        raise SlurmError(f"--slurm-option: {' '.join(str(exc).split()[:12])}...") from None
    return ex


def check_submission(options: SlurmOptions, log_dir: Path) -> None:
    """Let ``sbatch --test-only`` judge the array's options before any work (an option sbatch
    does not know, a time over the partition's limit, GPUs the partition lacks): raises
    :class:`SlurmError` with sbatch's reason."""
    import tempfile

    text = _executor(options, log_dir, options.tasks)._make_submission_file_text("true", "")
    with tempfile.NamedTemporaryFile("w", prefix="mtbc-check-", suffix=".sh") as f:
        f.write(text)
        f.flush()
        done = run_command(["sbatch", "--test-only", f.name])
    if done.returncode != 0:
        why = " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
        raise SlurmError(f"sbatch refuses the job array ({why}); check --partition, --time, "
                         f"--gpus-per-task and each --slurm-option")


def submit(plan: Plan, shards: Sequence[int], options: SlurmOptions, log_dir: Path,
           attempt: int = 0) -> dict[str, int]:
    """Submit one array over ``shards``; ``{task job id: shard}``."""
    from submitit.core.utils import FailedJobError

    ex = _executor(options, log_dir, len(shards))
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), ex.batch():  # sbatch's refusal: said once, below
            jobs = [ex.submit(replace(plan.template, shard=(k, plan.tasks))) for k in shards]
    except FailedJobError as exc:
        why = " ".join((str(exc) or said.getvalue()).split()) or "no reason given"
        raise SlurmError(f"sbatch refuses the job array ({why}); check --partition, --time, "
                         f"--gpus-per-task and each --slurm-option") from None
    ids = {job.job_id: k for job, k in zip(jobs, shards, strict=True)}
    record = log_dir / "submissions.jsonl"
    line = json.dumps({"array": jobs[0].job_id.split("_")[0], "tasks": ids,
                       "n": plan.tasks, "fingerprints": plan.fingerprints,
                       "attempt": attempt, "time": time.time()}) + "\n"
    old = record.read_bytes() if record.is_file() else b""
    atomic_write(record, lambda f: f.write(old + line.encode()))
    return ids


def task_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """``{array task id: Slurm state}`` for the tasks the controller still knows (one
    ``squeue`` per array); ``None`` when ``squeue`` fails (the controller not answering), so
    a caller never mistakes a hiccup for ended tasks."""
    states: dict[str, str] = {}
    for array in sorted({j.split("_")[0] for j in job_ids}):
        done = run_command(["squeue", "--noheader", "--array", "--states=all",
                            "--format=%i|%T", f"--jobs={array}"])
        if done.returncode != 0:
            if "invalid job id" in (done.stderr + done.stdout).lower():
                continue  # long finished: the controller forgot it
            return None
        for line in done.stdout.splitlines():
            jid, _, state = line.strip().partition("|")
            states[jid] = state.split()[0] if state else "UNKNOWN"
    return states


def tail(path: Path, lines: int = 8) -> str:
    if not path.is_file():
        return f"    (no log at {path})"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


def _log_paths(log_dir: Path, job_id: str) -> list[Path]:
    folder = log_dir / job_id
    return [folder / f"{job_id}_0_log.err", folder / f"{job_id}_0_log.out"]


def still_running(log_dir: Path, *, tasks: int | None = None,
                  fingerprints: Sequence[str] | None = None, last: int = 20) -> dict[str, int]:
    """Tasks of the ``last`` submissions into ``log_dir`` still active (``--no-wait`` or an
    interrupted wait): ``{job id: shard}``. With ``tasks``/``fingerprints``, only those of
    submissions with the same number of shards and the same extractors."""
    record = log_dir / "submissions.jsonl"
    if not record.is_file():
        return {}
    ids: dict[str, int] = {}
    for line in record.read_text().splitlines()[-last:]:
        try:
            entry = json.loads(line)
            if tasks is not None and (entry["n"] != tasks
                                      or sorted(entry["fingerprints"]) != sorted(fingerprints)):
                continue
            ids.update(entry["tasks"])
        except (ValueError, KeyError, TypeError):
            continue
    states = task_states(list(ids)) or {}
    return {j: k for j, k in ids.items() if states.get(j) in ACTIVE_STATES}


def running_note(log_dir: Path) -> str | None:
    """A line (newline-terminated) on the tasks of earlier ``--slurm`` submissions into
    ``log_dir`` still pending or running; ``None`` when none or Slurm is not reachable."""
    if not (Path(log_dir) / "submissions.jsonl").is_file() or shutil.which("squeue") is None:
        return None
    busy = still_running(Path(log_dir))
    if not busy:
        return None
    arrays = sorted({j.split("_")[0] for j in busy})
    return (f"slurm: {len(busy)} extraction task(s) still pending or running (job "
            f"{', '.join(arrays)}; shards {', '.join(map(str, sorted(busy.values())))}); "
            f"logs in {log_dir}\n")


def wait_for(plan: Plan, running: dict[str, int], options: SlurmOptions, log_dir: Path,
             store: EmbeddingStore, *, progress: bool = True) -> list[dict]:
    """Wait for ``running`` tasks while a bar counts cache entries; resubmit a task that ended
    without its outcome file (up to ``options.retries``). Returns one dict per task that
    failed for good (``job_id``, ``shard``, ``state``, ``logs``)."""
    from tqdm import tqdm

    every = [p for k in sorted(plan.entries) for p in plan.entries[k]]
    missing = {p for p in every if not p.is_file()}
    bar = tqdm(total=len(every), initial=len(every) - len(missing), unit="entry",
               desc="slurm extract", disable=not progress, dynamic_ncols=True)
    attempts = dict.fromkeys(running.values(), 0)
    ended_once: set[str] = set()
    failed: list[dict] = []
    running = dict(running)
    while running:
        time.sleep(options.poll_seconds)  # polling the cluster and the cache
        now = {p for p in missing if p.is_file()}
        missing -= now
        bar.update(len(now))
        states = task_states(list(running))
        if states is None:  # squeue did not answer: look again at the next poll
            continue
        retry = []
        for jid, k in list(running.items()):
            state = states.get(jid, "GONE")
            if state in ACTIVE_STATES:
                continue
            if (log_dir / f"{jid}_outcome.json").is_file():
                del running[jid]
                continue
            if jid not in ended_once:  # a shared file system may show the file late
                ended_once.add(jid)
                continue
            del running[jid]
            if attempts[k] < options.retries:
                attempts[k] += 1
                retry.append(k)
                bar.write(f"task {jid} (shard {k}/{plan.tasks}) ended {state} without "
                          f"finishing; resubmitting (retry {attempts[k]}/{options.retries})")
            else:
                failed.append({"job_id": jid, "shard": k, "state": state,
                               "logs": _log_paths(log_dir, jid)})
        if retry:
            new = submit(plan, retry, options, log_dir, attempt=max(attempts[k] for k in retry))
            bar.write(f"resubmitted as {', '.join(new)}")
            running.update(new)
    now = {p for p in missing if p.is_file()}
    bar.update(len(now))
    bar.close()
    return failed

