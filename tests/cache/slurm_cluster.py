"""A private single-node Slurm cluster for the tests (Debian's ``slurm-wlm`` and ``munge``).

:func:`install_reason` installs the packages when absent (only as root, only where
``apt-get`` exists) and says why the cluster cannot run otherwise. :class:`Cluster` writes a
minimal ``slurm.conf`` for this host (2 CPUs, one partition, process tracking without
cgroups, no accounting), a munge key, and starts ``munged``, ``slurmctld`` and ``slurmd``
with every file (state, spool, logs, sockets, pid files) under one private folder and on free
ports, so it touches nothing of the machine's own Slurm or munge. :meth:`Cluster.stop` ends
exactly the daemons it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel")
PARTITION = "mtbctest"


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d, name)).is_file()),
        None)


def install_reason() -> str | None:
    """``None`` when the daemons and clients are here (installing them with apt-get when
    absent, as root); else why not (the reason the Slurm tests skip with)."""
    if all(_find(p) for p in PROGRAMS):
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "slurm-wlm/munge are not installed and installing them needs root"
    if not shutil.which("apt-get"):
        return "slurm-wlm/munge are not installed and there is no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", *PACKAGES]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                       timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).split()[-30:])
        return f"apt-get install {' '.join(PACKAGES)} failed: {tail}"
    missing = [p for p in PROGRAMS if not _find(p)]
    return f"installed, but {', '.join(missing)} not found" if missing else None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """One node, one partition, two CPUs; everything under ``root``."""

    def __init__(self, root: Path, *, cpus: int = 2):
        self.root = Path(root)
        self.cpus = cpus
        self.host = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """The environment under which Slurm's clients talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "munge", "jobs"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, d_port = _free_ports(2)
        lines = [
            "ClusterName=mtbctest",
            f"SlurmctldHost={self.host}(127.0.0.1)",  # whether or not the name resolves
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # a requeued job waits for the credentials' lifetime + 1 s (default 120 s)
            f"AuthInfo=socket={self.munge_socket},cred_expire=5",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "KillWait=2",
            "SchedulerType=sched/builtin",  # FIFO, looked at every second
            "SchedulerParameters=sched_interval=1",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE "
            f"State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

    def _start(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}.out", "ab")  # noqa: SIM115
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True))
        log.close()

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the daemons; return once ``sinfo`` shows the node idle (else raise with
        the daemons' log tails)."""
        self._write_conf()
        m = self.root / "munge"
        self._start(_find("munged"), "-F", f"--socket={self.munge_socket}",
                    f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                    f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}",
                    "--force")
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged to open its socket")
        self._start(_find("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._start(_find("slurmd"), "-D", "-N", self.host, "-f", str(self.conf))
        self._wait(self._idle, timeout, "the node to show idle in sinfo")

    def _idle(self) -> bool:
        out = subprocess.run([_find("sinfo"), "-h", "-N", "-o", "%t"], env=self.env,
                             capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.2)  # polling a condition, bounded by the deadline
        raise RuntimeError(f"timed out waiting for {what}:\n{self.log_tails()}")

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def _steps_left(self) -> bool:
        busy = subprocess.run([_find("squeue"), "-h", "-o", "%i"], env=self.env,
                              capture_output=True, text=True, timeout=30)
        steps = list((self.root / "spool").glob(f"{self.host}_*"))
        return bool(steps) or (busy.returncode == 0 and bool(busy.stdout.strip()))

    def stop(self) -> None:
        """Cancel every job, let their steps end (at most 20 s), then terminate the daemons
        this object started (SIGKILL after 10 s)."""
        if self.procs and all(p.poll() is None for p in self.procs):
            subprocess.run([_find("scancel"), "--user=root"], env=self.env,
                           capture_output=True, timeout=30)
            deadline = time.monotonic() + 20
            while self._steps_left() and time.monotonic() < deadline:
                time.sleep(0.2)  # polling a condition, bounded by the deadline
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()
