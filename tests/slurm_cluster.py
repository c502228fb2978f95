"""A real one-node Slurm for the tests: Debian's munge, slurmctld and slurmd, started by hand on loopback.

Where the machine allows it (root, Linux, Debian's packages installed or installable with apt-get), the
cluster's daemons run in the foreground as children of the test session, each with its own files under
a temporary directory (munge socket and key, slurm.conf, state, spool, logs, free ports), so nothing of
the machine's own configuration is read or changed. `SlurmCluster.env` is what a client (sbatch, squeue,
`gptlab run --launcher submitit`) needs: SLURM_CONF. Elsewhere `unavailable()` says why, and `skip_or_fail`
skips the tests, or fails them where GPTLAB_REQUIRE_SLURM=1 (CI).

Settings that keep the tests short: `AuthInfo=cred_expire=10` (a requeued job waits cred_expire before it
may start again; default 120 s), `SchedulerParameters=bf_interval=2,sched_interval=2` (a job whose begin
time has passed is started within seconds, not at the next 30/60 s pass), `KillWait=10` (TERM -> KILL), `MinJobAge=600` (squeue keeps an ended
job's state for the driver), `ProctrackType=proctrack/linuxproc` and `TaskPlugin=task/none` (no cgroups
in a container).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
NODE = "gptlab-node"


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for d in ("/usr/sbin", "/usr/bin") if os.access(p := f"{d}/{name}",
                                                                                        os.X_OK)), None)


def unavailable() -> str | None:
    """None when a cluster can be started here (installing Debian's packages if needed), else why not."""
    if sys.platform != "linux":
        return "a real Slurm needs Linux"
    if all(_which(b) for b in BINARIES):
        return None
    if os.geteuid() != 0:
        return "Slurm is not installed and installing it needs root"
    if not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install Debian's packages"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    out = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:  # the package lists may be missing or stale: refresh once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        out = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0 or not all(_which(b) for b in BINARIES):
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"could not install {' '.join(PACKAGES)} with apt-get: {tail}"
    return None


REQUIRE_ENV = "GPTLAB_REQUIRE_SLURM"  # set to 1 (CI's .ci/run does): a missing Slurm fails the tests, never skips


def skip_or_fail(reason: str) -> None:
    """No cluster here (`reason`): skip the Slurm tests, or fail them where GPTLAB_REQUIRE_SLURM=1."""
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but no Slurm cluster can be started: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _mem_mb() -> int:
    with open("/proc/meminfo") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return kb // 1024


class SlurmCluster:
    """One node (this machine's CPUs, 90% of its memory, no GPUs) in one partition `debug`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cpus, self.mem_mb = os.cpu_count() or 1, int(_mem_mb() * 0.9)
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> "SlurmCluster":
        root = self.root
        for d in ("munge", "state", "spool", "log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "munge", 0o700)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = root / "munge" / "munge.socket"
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text("\n".join([
            "ClusterName=gptlab-test",
            f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock},cred_expire=10",
            f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SwitchType=switch/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU_Memory",
            "SchedulerType=sched/backfill", "SchedulerParameters=bf_interval=2,sched_interval=2",
            "ReturnToService=2", "SlurmdParameters=config_overrides",
            "KillWait=10", "MinJobAge=600", "InactiveLimit=0", "SlurmdTimeout=300", "MessageTimeout=20",
            f"NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.mem_mb} Features=gptlabfeat State=UNKNOWN",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=short Nodes={NODE} MaxTime=1 State=UP",  # a job asking more time pends forever
        ]) + "\n")
        log = open(root / "log" / "daemons.out", "ab")
        munged = [_which("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
                  f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                  f"--seed-file={root / 'munge' / 'munged.seed'}"]
        for cmd in (munged, [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)],
                    [_which("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)]):
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               env=self.env, start_new_session=True))
            time.sleep(0.5)
        deadline = time.time() + timeout
        while time.time() < deadline:
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                break
            if self.node_state() == "idle":
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Slurm did not come up (dead: {dead or 'none'}); logs in {root / 'log'}:\n"
                           + self.logs())

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", NODE, "-o", "%t", check=False)  # a line per partition
        return (out.stdout.split() or [""])[0] if out.returncode == 0 else ""

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
        return out

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key -> value (the first record: an array's first task)."""
        text = self.run("scontrol", "-o", "show", "job", job_id).stdout.splitlines()[0]
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def jobs(self) -> list[dict[str, str]]:
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T|%r|%j").stdout.splitlines()
        return [dict(zip(("id", "state", "reason", "name"), line.split("|"))) for line in out]

    def cancel_all(self) -> None:
        self.run("scancel", "--user", "root", check=False)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted((self.root / "log").glob("*")))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # slurmd, slurmctld, munged
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
