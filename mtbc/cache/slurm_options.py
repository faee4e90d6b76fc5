"""Options of ``mtbc extract --slurm`` and of a params file's ``slurm:`` block.

Light on imports (the command line's parser and the params validation use it);
:mod:`mtbc.cache.slurm` does the submitting and waiting.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

#: Slurm job states in which a task may still write entries.
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED",
                           "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                           "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


class SlurmError(ValueError):
    """Slurm is missing or refuses a value (one line naming it and the fix)."""


@dataclass(frozen=True)
class SlurmOptions:
    """How to run an extraction on Slurm (``--slurm`` and its options, or a params file's
    ``slurm:`` block).

    ``time``: the per-task limit in Slurm's format (``HH:MM:SS``, ``MM``, ``D-HH:MM``...).
    ``extra``: further ``sbatch`` options as ``(key, value)`` pairs (``cpus_per_task=8``,
    ``account=proj``, ``mail-type=END``). ``log_dir``: submitit's folder (default
    ``<cache>/slurm-logs``; it must be on a file system the nodes share).
    """

    partition: str | None = None
    gpus_per_task: int = 0
    tasks: int = 4
    array_parallelism: int | None = None
    time: str = "04:00:00"
    extra: tuple[tuple[str, Any], ...] = ()
    wait: bool = True
    retries: int = 2
    log_dir: str | None = None
    poll_seconds: float = 5.0


def parse_time(text: str) -> int:
    """A Slurm time limit -> whole minutes (rounded up).

    Accepts Slurm's forms: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``. Example: ``parse_time("01:30:00") == 90``.
    """
    m = _TIME.match(str(text).strip())
    if not m:
        raise SlurmError(f"time limit {text!r} cannot be parsed; give HH:MM:SS (e.g. 04:00:00), "
                         f"MM or D-HH:MM:SS")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
        bad = a >= 24 or (b or 0) >= 60 or (c or 0) >= 60
    elif c is not None:  # HH:MM:SS
        seconds, bad = a * 3600 + b * 60 + c, b >= 60 or c >= 60
    elif b is not None:  # MM:SS
        seconds, bad = a * 60 + b, b >= 60
    else:  # MM
        seconds, bad = a * 60, False
    if bad or seconds <= 0:
        raise SlurmError(f"time limit {text!r} is out of range; give HH:MM:SS with minutes and "
                         f"seconds below 60 and more than 0 in all (e.g. 04:00:00)")
    return math.ceil(seconds / 60)


def run_command(cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a Slurm client command, capturing its text; one that hangs past ``timeout``
    seconds comes back as exit status 124 with a line saying so (never an exception)."""
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(cmd), 124, "",
                                           f"{cmd[0]} gave no answer within {timeout:.0f} s")


def check_slurm(partition: str | None) -> None:
    """Raise :class:`SlurmError` when ``sbatch`` is missing, the controller does not answer,
    or ``partition`` is not one of the cluster's."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise SlurmError("--slurm: no Slurm on this machine (`sbatch` is not on PATH); run it "
                         "on the cluster's login node, or drop --slurm to extract here "
                         "(add --devices cuda:0,cuda:1 for several local GPUs)")
    done = run_command(["sinfo", "--noheader", "--format=%R"])
    if done.returncode != 0:
        why = " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
        raise SlurmError(f"--slurm: `sinfo` fails ({why}); check that the Slurm controller is "
                         f"up (`scontrol ping`)")
    known = sorted(set(done.stdout.split()))
    if partition is not None and partition not in known:
        raise SlurmError(f"--partition {partition!r}: no such partition on this cluster; "
                         f"choose one of {', '.join(known) or '(none)'} (`sinfo -s` lists them)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--slurm`` options of ``mtbc extract``."""
    g = parser.add_argument_group("Slurm (one job array over the collection's shards)")
    g.add_argument("--slurm", action="store_true",
                   help="submit the extraction as a Slurm job array and wait for it")
    g.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    g.add_argument("--gpus-per-task", type=int, default=0, metavar="G",
                   help="GPUs per task (G > 1: one process per GPU in each task)")
    g.add_argument("--tasks", type=int, default=4, metavar="T",
                   help="array tasks = shards of the collection (default 4)")
    g.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                   help="at most N tasks at once (default: all)")
    g.add_argument("--time", default="04:00:00", metavar="HH:MM:SS",
                   help="time limit per task (default 04:00:00; a task that reaches it is "
                        "requeued and resumes)")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="further sbatch option, e.g. cpus_per_task=8, account=proj, mem_gb=32 "
                        "(repeatable)")
    g.add_argument("--retries", type=int, default=2,
                   help="resubmit a task that ended without finishing up to this many times "
                        "(default 2)")
    g.add_argument("--slurm-logs", default=None, metavar="DIR",
                   help="submitit's folder, on a shared file system (default "
                        "<cache>/slurm-logs)")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and return; `mtbc cache` shows the entries as they arrive")


def without_slurm(args: argparse.Namespace) -> list[str]:
    """The Slurm options given on a command line that lacks ``--slurm`` (they would be
    ignored)."""
    defaults = {"partition": None, "gpus_per_task": 0, "tasks": 4, "array_parallelism": None,
                "time": "04:00:00", "slurm_option": [], "retries": 2, "slurm_logs": None,
                "no_wait": False}
    return [f"--{k.replace('_', '-')}" for k, v in defaults.items()
            if getattr(args, k, v) != v]


def _pairs(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    import yaml

    out = []
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SlurmError(f"--slurm-option {item!r} is not KEY=VALUE (e.g. cpus_per_task=8)")
        out.append((key.strip(), yaml.safe_load(value) if value.strip() else value))
    return tuple(out)


def _checked(options: SlurmOptions, where: str) -> SlurmOptions:
    for name, low in (("tasks", 1), ("gpus_per_task", 0), ("retries", 0)):
        value = getattr(options, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SlurmError(f"{where}{name.replace('_', '-')} must be a whole number >= {low}, "
                             f"not {value!r}")
    par = options.array_parallelism
    if par is not None and (not isinstance(par, int) or isinstance(par, bool) or par < 1):
        raise SlurmError(f"{where}array-parallelism must be a whole number >= 1, not {par!r}")
    poll = options.poll_seconds
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0 < poll < 3600:
        raise SlurmError(f"{where}poll_seconds must be a number of seconds between 0 and "
                         f"3600, not {poll!r}")
    parse_time(options.time)
    return options


#: Environment variable: seconds between two looks at the cluster and the cache (default 5).
POLL_ENV = "MTBC_SLURM_POLL_SECONDS"


def poll_seconds() -> float:
    """Seconds between two looks at the queue and the cache (``$MTBC_SLURM_POLL_SECONDS``)."""
    try:
        value = float(os.environ.get(POLL_ENV, "5"))
    except ValueError:
        raise SlurmError(f"${POLL_ENV}={os.environ[POLL_ENV]!r} is not a number of "
                         f"seconds; unset it or give e.g. 5") from None
    if not 0 < value < 3600:
        raise SlurmError(f"${POLL_ENV}={value} must be between 0 and 3600 seconds")
    return value


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    """:class:`SlurmOptions` from ``mtbc extract``'s parsed arguments (checked)."""
    return _checked(SlurmOptions(
        partition=args.partition, gpus_per_task=args.gpus_per_task, tasks=args.tasks,
        array_parallelism=args.array_parallelism, time=str(args.time),
        extra=_pairs(args.slurm_option), wait=not args.no_wait, retries=args.retries,
        log_dir=args.slurm_logs, poll_seconds=poll_seconds()), "--")


def options_from_mapping(block: Mapping[str, Any], *, where: str = "slurm.") -> SlurmOptions:
    """:class:`SlurmOptions` from a params file's ``slurm:`` block (keys: the field names,
    ``options`` for ``extra`` as a mapping); raises :class:`SlurmError` naming the key."""
    names = {f.name for f in fields(SlurmOptions)} - {"extra", "wait"}
    unknown = [k for k in block if k not in names | {"options"}]
    if unknown:
        raise SlurmError(f"{where}{unknown[0]} is not a slurm option; use "
                         f"{', '.join(sorted(names | {'options'}))}")
    extra = block.get("options") or {}
    if not isinstance(extra, Mapping):
        raise SlurmError(f"{where}options must map sbatch options to values, not {extra!r}")
    values = {k: v for k, v in block.items() if k != "options"}
    if "time" in values:
        values["time"] = str(values["time"])
    return _checked(SlurmOptions(**values, extra=tuple((str(k), v) for k, v in extra.items())),
                    where)
