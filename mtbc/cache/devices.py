"""One extraction process per device, all writing into one cache.

``mtbc extract ... --devices cuda:0,cuda:1`` starts one ``mtbc extract --shard k/n --device
cuda:k`` subprocess per device (:func:`device_commands`) and waits for all of them
(:func:`run_on_devices`). Shards are by content hash (:func:`mtbc.cache.extract.select_shard`),
so the processes never embed the same track, and the cache's atomic writes let them share
one folder. Combined with ``--shard i/n`` (a job-array task on a cluster node), device ``k``
of ``d`` takes global shard ``i * d + k`` of ``n * d``: every track still belongs to exactly
one process. See ``docs/compute.md`` for the SLURM recipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence


def parse_devices(text: str) -> list[str]:
    """``"cuda:0,cuda:1"`` -> ``["cuda:0", "cuda:1"]`` (no repeats, at least one)."""
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise ValueError(f"--devices takes a comma-separated list like cuda:0,cuda:1, "
                         f"not {text!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"--devices lists a device twice: {text!r}")
    return devices


def device_shards(devices: Sequence[str], shard: tuple[int, int] | None = None
                  ) -> list[tuple[str, tuple[int, int]]]:
    """``(device, (k, n))`` per device: device ``k`` of ``d`` takes shard ``i * d + k`` of
    ``n * d`` within an outer shard ``i/n`` (none: ``0/1``)."""
    i, n = shard or (0, 1)
    if not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, not {i}/{n}")
    d = len(devices)
    return [(dev, (i * d + k, n * d)) for k, dev in enumerate(devices)]


def device_commands(argv: Sequence[str], devices: Sequence[str],
                    shard: tuple[int, int] | None = None, *,
                    python: str | None = None) -> list[list[str]]:
    """The ``mtbc extract`` command line of each device's subprocess.

    ``argv`` is the parent's ``extract`` arguments (after ``mtbc``); its ``--devices``,
    ``--shard`` and ``--device`` are replaced by each child's own.
    """
    drop_value = {"--devices", "--shard", "--device"}
    base, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop_value:
            skip = "=" not in arg
            continue
        base.append(arg)
    exe = [python or sys.executable, "-m", "mtbc.cli"]
    return [[*exe, *base, "--shard", f"{k}/{n}", "--device", dev]
            for dev, (k, n) in device_shards(devices, shard)]


def run_on_devices(argv: Sequence[str], devices: Sequence[str],
                   shard: tuple[int, int] | None = None) -> int:
    """Run :func:`device_commands` concurrently; the worst exit status of them all.

    Each child sees only its own GPU's threads: ``OMP_NUM_THREADS`` is the CPU cores
    divided among the children (at least 1), so their decode threads do not oversubscribe.
    """
    commands = device_commands(argv, devices, shard)
    threads = max(1, (os.cpu_count() or 1) // len(commands))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MTBC_DECODE_WORKERS": str(threads)}
    procs = []
    for cmd in commands:
        print("starting:", " ".join(cmd[2:]), flush=True)
        procs.append(subprocess.Popen(cmd, env=env))
    return max(p.wait() for p in procs)


#: Environment variable that sets the decode threads of ``mtbc extract`` (``run_on_devices``
#: sets it per child).
DECODE_WORKERS_ENV = "MTBC_DECODE_WORKERS"


def decode_workers_for(extractor, *, cpu_count: int | None = None) -> int:
    """Decode threads that keep ``extractor``'s device busy.

    On a GPU every core but one decodes (decoding 30 s of MP3 costs tens of ms per clip on
    one core, docs/compute.md, while the GPU embeds hundreds of clips per second); on the
    CPU the model itself needs the cores, so two threads decode ahead. ``MTBC_DECODE_WORKERS``
    overrides both.
    """
    env = os.environ.get(DECODE_WORKERS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = cpu_count or os.cpu_count() or 1
    device = getattr(extractor, "device", None)
    if device is not None and getattr(device, "type", str(device)) in ("cuda", "mps"):
        return max(2, cores - 1)
    return 2
