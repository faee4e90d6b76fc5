"""``mtbc extract --slurm``: options, bad input, and a real single-node Slurm cluster.

The cluster tests install Debian's ``slurm-wlm`` and ``munge`` when absent (as root, where
``apt-get`` exists; ``.ci/run`` installs them beforehand) and skip, with the reason, only
where they cannot be installed. The daemons run from a private folder under the test's tmp
folder and are stopped afterwards, also when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtbc.cache.slurm_options import (
    SlurmError,
    SlurmOptions,
    options_from_mapping,
    parse_time,
)
from mtbc.cli import main
from tests.conftest import write_tone

REPO = Path(__file__).resolve().parents[2]


# -- options and bad input, no cluster needed ---------------------------------------------------

@pytest.mark.parametrize(("text", "minutes"), [
    ("04:00:00", 240), ("00:00:30", 1), ("90", 90), ("10:30", 11), ("1-00", 1440),
    ("2-01:30", 2970), ("0-00:05:00", 5)])
def test_parse_time_takes_slurm_forms(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["4h", "", "01:60:00", "00:00:00", "1:2:3:4", "-5", "ab:cd"])
def test_parse_time_refuses_what_slurm_would(text):
    with pytest.raises(SlurmError, match="time limit"):
        parse_time(text)


def test_params_block_becomes_options_and_names_bad_keys():
    opts = options_from_mapping({"partition": "gpu", "tasks": 8, "gpus_per_task": 1,
                                 "time": "02:00:00", "options": {"cpus_per_task": 8}})
    assert opts == SlurmOptions(partition="gpu", tasks=8, gpus_per_task=1, time="02:00:00",
                                extra=(("cpus_per_task", 8),))
    with pytest.raises(SlurmError, match="slurm.nodes is not a slurm option"):
        options_from_mapping({"nodes": 2})
    with pytest.raises(SlurmError, match="slurm.tasks must be a whole number >= 1"):
        options_from_mapping({"tasks": 0})
    with pytest.raises(SlurmError, match="time limit 'soon'"):
        options_from_mapping({"time": "soon"})
    with pytest.raises(SlurmError, match="slurm.poll_seconds must be a number"):
        options_from_mapping({"poll_seconds": "often"})


def test_a_slurm_command_that_hangs_is_an_answer_not_an_exception():
    from mtbc.cache.slurm_options import run_command

    done = run_command([sys.executable, "-c", "import threading; threading.Event().wait()"],
                       timeout=0.5)  # a command that never answers
    assert done.returncode == 124 and "no answer within" in done.stderr


def test_params_file_slurm_block_is_validated():
    from mtbc.reports.params import ParamsError, validate_params

    ok = validate_params({"run": "r", "slurm": {"partition": "gpu", "tasks": 2}})
    assert ok["slurm"] == {"partition": "gpu", "tasks": 2}
    assert validate_params({"run": "r"})["slurm"] is None
    with pytest.raises(ParamsError, match=r"x.yaml: time limit '1 day'"):
        validate_params({"run": "r", "slurm": {"time": "1 day"}}, source="x.yaml")
    with pytest.raises(ParamsError, match="'slurm' must be a mapping"):
        validate_params({"run": "r", "slurm": 4})


def test_task_threads_follow_the_cores_slurm_gave(monkeypatch):
    import torch

    from mtbc.cache.slurm import _fit_threads

    before = torch.get_num_threads()
    monkeypatch.delenv("MTBC_DECODE_WORKERS", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    try:
        _fit_threads(2)  # two GPU processes share the task's 6 cores
        assert torch.get_num_threads() == 3
        assert os.environ["MTBC_DECODE_WORKERS"] == "2"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("n", "gpus"), [(3, 2), (4, 4), (1, 3)])
def test_gpu_processes_split_exactly_their_tasks_shard(n, gpus):
    import pandas as pd

    from mtbc.cache.extract import select_shard
    from mtbc.cache.slurm import gpu_shards

    rng = np.random.default_rng(0)
    tracks = pd.DataFrame({"content_hash": [f"{int(x):064x}" for x in
                                            rng.integers(0, 2**62, 200)]})
    for k in range(n):
        whole = set(select_shard(tracks, (k, n)).index)
        parts = [set(select_shard(tracks, s).index) for s in gpu_shards((k, n), gpus)]
        assert set().union(*parts) == whole and sum(map(len, parts)) == len(whole)


def _fake_squeue(folder: Path, monkeypatch, *, out: str = "", err: str = "", rc: int = 0):
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\nprintf '{out}'\nprintf '{err}' >&2\nexit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


def test_task_states_reads_squeue_and_tells_a_hiccup_from_ended_tasks(tmp_path, monkeypatch):
    from mtbc.cache.slurm import task_states

    _fake_squeue(tmp_path, monkeypatch, out="7_0|RUNNING\n7_1|CANCELLED\n7_2|PENDING\n")
    assert task_states(["7_0", "7_1"]) == {"7_0": "RUNNING", "7_1": "CANCELLED",
                                           "7_2": "PENDING"}
    _fake_squeue(tmp_path, monkeypatch, err="slurm_load_jobs error: Invalid job id specified",
                 rc=1)
    assert task_states(["7_0"]) == {}  # long gone
    _fake_squeue(tmp_path, monkeypatch, err="Unable to contact slurm controller", rc=1)
    assert task_states(["7_0"]) is None  # not an answer: never taken as ended


def test_a_task_ending_unfinished_past_its_retries_is_listed_with_its_log_tail(
        tmp_path, monkeypatch, capsys):
    from mtbc.cache.slurm import _summary
    from mtbc.cache.slurm_queue import Plan, wait_for
    from mtbc.cache.store import EmbeddingStore

    store = EmbeddingStore(tmp_path / "cache")
    plan = Plan(template=None, tasks=2, entries={0: [], 1: [store.path_for("ab" * 32, "fp")]},
                fingerprints=["fp"])
    logs = tmp_path / "logs"
    (logs / "7_1").mkdir(parents=True)
    (logs / "7_1" / "7_1_0_log.err").write_text("loading\nslurmstepd: error: Out Of Memory\n")
    _fake_squeue(tmp_path, monkeypatch, out="7_1|OUT_OF_MEMORY\n")
    failed = wait_for(plan, {"7_1": 1}, SlurmOptions(retries=0, poll_seconds=0.01), logs,
                      store, progress=False)
    assert [(f["job_id"], f["shard"], f["state"]) for f in failed] == [
        ("7_1", 1, "OUT_OF_MEMORY")]
    assert _summary(plan, store, failed, logs) == 1
    out = capsys.readouterr().out
    assert "0 of 1 entries present and verified" in out
    assert "failed task 7_1 (shard 1/2, OUT_OF_MEMORY)" in out
    assert "slurmstepd: error: Out Of Memory" in out and "7_1_0_log.out" in out  # (no log)


def test_still_running_attaches_only_to_the_same_split_and_extractors(tmp_path, monkeypatch):
    from mtbc.cache.slurm import still_running

    lines = [{"array": "7", "tasks": {"7_0": 0, "7_1": 1}, "n": 3, "fingerprints": ["a"]},
             {"array": "8", "tasks": {"8": 2}, "n": 3, "fingerprints": ["b"]}]
    (tmp_path / "submissions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    _fake_squeue(tmp_path, monkeypatch, out="7_0|RUNNING\n7_1|COMPLETED\n8|PENDING\n")
    assert still_running(tmp_path, tasks=3, fingerprints=["a"]) == {"7_0": 0}
    assert still_running(tmp_path, tasks=4, fingerprints=["a"]) == {}
    assert still_running(tmp_path) == {"7_0": 0, "8": 2}


def _one_line_error(capsys, argv, *, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_no_sbatch_says_so_and_how_to_run_locally(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands on it
    err = _one_line_error(capsys, ["extract", str(tmp_path), "-e", "mfcc", "--slurm"])
    assert "no Slurm on this machine" in err and "drop --slurm" in err


def test_unparseable_time_limit_is_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["extract", str(tmp_path), "-e", "mfcc", "--slurm",
                                   "--time", "two hours"])
    assert "'two hours' cannot be parsed" in err and "HH:MM:SS" in err


def test_slurm_options_without_slurm_are_refused(tmp_path, capsys):
    err = _one_line_error(capsys, ["extract", str(tmp_path), "-e", "mfcc", "--tasks", "3"])
    assert "--tasks only apply with --slurm" in err


def test_slurm_with_shard_is_refused(tmp_path, capsys):
    err = _one_line_error(capsys, ["extract", str(tmp_path), "-e", "mfcc", "--slurm",
                                   "--shard", "0/2"])
    assert "--tasks" in err


# -- a real single-node cluster -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.cache.slurm_cluster import Cluster, install_reason

    why = install_reason()
    if why:
        pytest.skip(f"no Slurm cluster: {why}")
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    from mtbc.files import content_hash

    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    shards = set()
    for i in range(4):  # musicnn needs 2.976 s
        path = write_tone(root / ("low" if i % 2 else "high") / f"s{i}.wav",
                          seconds=float(rng.uniform(3.0, 3.4)), sr=16000, freq=180.0 * (i + 1))
        shards.add(int(content_hash(path)[:12], 16) % 3)
    assert shards == {0, 1, 2}, "every one of the 3 tasks must have a track"
    return root


def _env(cluster) -> dict[str, str]:
    return {"SLURM_CONF": cluster.env["SLURM_CONF"], "PYTHONPATH": str(REPO),
            "MTBC_SLURM_POLL_SECONDS": "0.3", "MTBC_CPU_BF16": "0"}


def _mtbc(cluster, *args, **popen):
    env = {**cluster.env, **_env(cluster)}
    cmd = [sys.executable, "-m", "mtbc.cli", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, env=env, cwd=REPO, text=True, **popen)
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)


def _squeue(cluster, *args) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--array", *args], env=cluster.env,
                         capture_output=True, text=True, timeout=30)
    return out.stdout.split()


def _entries(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/??/*.npy"))}


@pytest.mark.slow
def test_cluster_refusals_are_one_line(cluster, songs, tmp_path, monkeypatch, capsys):
    for key, value in {**_env(cluster), "PATH": cluster.env["PATH"]}.items():
        monkeypatch.setenv(key, value)
    base = ["extract", str(songs), "-e", "mfcc", "--cache", str(tmp_path), "--slurm"]
    err = _one_line_error(capsys, [*base, "--partition", "nosuch"])
    assert "'nosuch'" in err and "mtbctest" in err, err
    err = _one_line_error(capsys, [*base, "--slurm-option", "no-such-flag=1"])
    assert "sbatch refuses the job array" in err and "no-such-flag" in err, err
    err = _one_line_error(capsys, [*base, "--gpus-per-task", "1"])  # the node has none
    assert "sbatch refuses the job array" in err, err


@pytest.mark.slow
def test_slurm_options_reach_sbatch(cluster, tmp_path):
    from mtbc.cache.slurm_queue import _executor

    opts = SlurmOptions(partition="mtbctest", gpus_per_task=2, tasks=3, time="01:30:00",
                        extra=(("cpus_per_task", 8), ("mem_gb", 32), ("mail-type", "END")))
    script = _executor(opts, tmp_path, 3)._make_submission_file_text("true", "x")
    for line in ("--partition=mtbctest", "--gpus-per-task=2", "--time=90",
                 "--cpus-per-task=8", "--mem=32GB", "--mail-type=END", "--signal=USR2@60"):
        assert f"#SBATCH {line}" in script, script


@pytest.mark.slow
def test_slurm_extraction_equals_local_and_recovers_a_cancelled_task(cluster, songs, tmp_path,
                                                                     monkeypatch, capsys):
    from mtbc.cache.extract import extract_collection
    from mtbc.cache.store import EmbeddingStore
    from mtbc.data.collection import load_collection
    from mtbc.extractors import get_extractor

    # the reference: a local extraction, one track per model batch as the tasks do below
    reference = time.monotonic()
    coll = load_collection(str(songs), progress=False)
    local = EmbeddingStore(tmp_path / "local")
    for name in ("mfcc", "musicnn"):
        report = extract_collection(coll.tracks, get_extractor(name), local, batch_tracks=1,
                                    progress=False)
        assert len(report.extracted) == 4, report

    reference = time.monotonic() - reference
    cache = tmp_path / "cache"
    args = ["extract", songs, "-e", "mfcc", "-e", "musicnn", "--cache", cache, "--batch", "1",
            "--slurm", "--tasks", "3", "--time", "00:10:00", "--retries", "1"]
    start = time.monotonic()
    proc = _mtbc(cluster, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    logs = cache / "slurm-logs"
    try:
        # one running task is cancelled (resubmitted as a new job), another one is preempted
        # once it is embedding (submitit's signal: it requeues itself under the same id)
        deadline, victim, preempted = time.monotonic() + 150, None, None
        while preempted is None and time.monotonic() < deadline and proc.poll() is None:
            running = _squeue(cluster, "--states=RUNNING", "--format=%i")
            if victim is None and running:
                victim = running[0]
                assert not (logs / f"{victim}_outcome.json").exists()
                subprocess.run(["scancel", victim], env=cluster.env, check=True, timeout=30)
            for jid in running:
                log = logs / jid / f"{jid}_0_log.out"
                if jid != victim and log.is_file() and "shard " in log.read_text():
                    subprocess.run(["scancel", "--signal=USR2", jid], env=cluster.env,
                                   check=True, timeout=30)
                    preempted = jid
                    break
            time.sleep(0.1)  # polling the queue and logs, bounded by the deadline
        assert victim and preempted, (victim, preempted)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seconds = time.monotonic() - start
    assert proc.returncode == 0, out + err
    assert f"task {victim} " in out and "resubmitting (retry 1/1)" in out, out
    assert f"task {preempted} " not in out, out  # requeued by itself, not resubmitted
    log = (logs / preempted / f"{preempted}_0_log.out").read_text()
    assert "Calling checkpoint method" in log, log  # then it requeued itself: ran twice
    assert log.count(f"Starting with JobEnvironment(job_id={preempted},") == 2, log
    assert (logs / f"{preempted}_outcome.json").is_file()
    assert "8 of 8 entries present and verified" in out, out
    assert "logs in " in out and "submitted job " in out

    # every entry present, verified, byte for byte the local one
    store = EmbeddingStore(cache)
    assert store.verify().empty
    assert _entries(cache) == _entries(tmp_path / "local")
    # 4 songs x (MFCC, musicnn, and musicnn's tags, which the same forward pass gives)
    assert len(_entries(cache)) == 12

    # the submitit log of a task holds the extraction report
    outcomes = [json.loads(p.read_text()) for p in (cache / "slurm-logs").glob("*_outcome.json")]
    assert sorted(o["shard"][0] for o in outcomes) == sorted({o["shard"][0] for o in outcomes})
    one = outcomes[0]["job_id"]
    assert "extracted" in (cache / "slurm-logs" / one / f"{one}_0_log.out").read_text()
    record = [json.loads(line) for line in
              (cache / "slurm-logs" / "submissions.jsonl").read_text().splitlines()]
    submitted = min(r["time"] for r in record)
    overhead = [o["seconds"] - o["extract_seconds"] for o in outcomes]
    launch = [o["started"] - submitted for o in outcomes]
    with capsys.disabled():  # the figures docs/compute.md quotes (pytest -s shows them)
        print(f"\nslurm run {seconds:.1f} s (local reference {reference:.1f} s); per task: "
              f"in-task overhead (imports, scan, model load) {np.median(overhead):.1f} s "
              f"median, submit-to-start {min(launch):.1f}-{max(launch):.1f} s; embedding "
              f"{np.median([o['extract_seconds'] for o in outcomes]):.1f} s median")

    # a rerun submits nothing; with one shard's entries gone, it submits that shard only
    # (in this process, to spare the interpreter's start; the tasks get the same environment)
    for key, value in {**_env(cluster), "PATH": cluster.env["PATH"]}.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert main(list(map(str, args))) == 0
    assert "nothing to submit" in capsys.readouterr().out
    # `mtbc run`'s extraction step with a params file's slurm: block: one shard's entries
    # gone, it submits that shard alone, waits, and reports what was cached and extracted
    from mtbc.cache.extract import select_shard
    from mtbc.pipeline import prepare
    from mtbc.reports.params import validate_params

    shard = outcomes[0]["shard"][0]
    gone = select_shard(coll.tracks, (shard, 3))["content_hash"].iloc[0]
    fingerprints = sorted({p.parent.parent.name for p in cache.glob("*/??/*.npy")})

    def drop():
        for fp in fingerprints:
            store.path_for(gone, fp).unlink()

    drop()
    params = validate_params({"run": "t", "collection": str(songs), "cache_dir": str(cache),
                              "extractors": {"mfcc": {}, "musicnn": {}},
                              "slurm": {"tasks": 3, "time": "00:10:00", "retries": 1}})
    record = prepare(params, progress=False)
    assert [(e.label, e.cached, e.extracted, e.failed) for e in record.extraction] == [
        ("mfcc", 3, 1, 0), ("musicnn", 3, 1, 0)]
    assert f"1 of 3 shards ({shard})" in capsys.readouterr().out
    assert _entries(cache) == _entries(tmp_path / "local")

    # --no-wait submits the missing shard and returns; `mtbc cache` names the task
    drop()
    assert main([*map(str, args), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert f"1 of 3 shards ({shard})" in out and "not waiting (--no-wait)" in out, out
    assert main(["cache", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "1 extraction task(s) still pending or running" in out or len(
        _entries(cache)) == 8, out  # (unless that task already finished)
