"""A real SLURM for the tests: Debian's slurm-wlm and munge, two nodes on this host (127.0.0.1).

`munged`, `slurmctld` and one `slurmd` per node run as root in the foreground from a temporary
directory, each a child of the test process, and are stopped by their PIDs. Both nodes are this
host with its CPUs (slurmd -N names which one a daemon is), so a two-node job runs the sbatch
script's multi-node branch: a Ray worker started by srun on the second node joins the head.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.bench.slow_proxy import free_ports

NODES = ("n1", "n2")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def unavailable() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return f"slurm-wlm and munge are not installed (apt-get install slurm-wlm munge): no {', '.join(missing)}"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs: run the tests as root"
    return None


def slurm_conf(root: Path, host: str, cpus: int) -> str:
    ctld, *node_ports = free_ports(1 + len(NODES))
    nodes = "\n".join(f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} "
                      f"RealMemory=2000 State=UNKNOWN" for name, port in zip(NODES, node_ports))
    # Random job ids: the sbatch script derives Ray's port from the job id, so two test sessions on one
    # machine do not collide.
    first_job = random.randrange(1000, 19000)
    return f"""ClusterName=nerve-test
FirstJobId={first_job}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
PlugStackConfig={root}/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
MinJobAge=600
KillWait=10
ReturnToService=2
{nodes}
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """The daemons, the clients' environment, and what the tests ask of the cluster."""

    def __init__(self):
        # Short: munge's socket and Ray's (RAY_TMP_ROOT of the jobs) must stay under 108 characters.
        self.root = Path(tempfile.mkdtemp(prefix="nerve-slurm-", dir="/tmp"))
        self.daemons: list[subprocess.Popen] = []
        self.cpus = os.cpu_count() or 1  # each node's
        self.conf = self.root / "slurm.conf"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_ADDRESS"))}
        self.env.update(SLURM_CONF=str(self.conf), RAY_TMP_ROOT=str(self.root / "ray"),
                        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

    def start(self, timeout: float = 60) -> None:
        for sub in ("state", "ray", *(f"spool/{n}" for n in NODES)):
            (self.root / sub).mkdir(parents=True)
        (self.root / "plugstack.conf").touch()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(slurm_conf(self.root, socket.gethostname(), self.cpus))
        r = self.root
        self._daemon(["munged", "--foreground", "--force", f"--socket={r}/munge.socket", f"--key-file={key}",
                      f"--pid-file={r}/munged.pid", f"--log-file={r}/munged.log", f"--seed-file={r}/munged.seed"])
        self._until(lambda: (r / "munge.socket").exists(), timeout, "munged did not start")
        self._daemon(["slurmctld", "-D", "-f", str(self.conf)])
        for node in NODES:
            self._daemon(["slurmd", "-D", "-f", str(self.conf), "-N", node])
        self._until(lambda: self.sinfo() == {n: "idle" for n in NODES}, timeout, "the nodes did not come up")

    def _daemon(self, args: list[str]) -> None:
        log = open(self.root / f"{args[0]}-{len(self.daemons)}.out", "w")
        self.daemons.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env))
        log.close()

    def _until(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [d.args[0] for d in self.daemons if d.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} ({', '.join(dead) or 'timeout'}); logs in {self.root}:\n{self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        files = sorted([*self.root.glob("*.log"), *self.root.glob("*.out")])
        return "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in files)

    def stop(self) -> None:
        """Cancel what still runs (its processes end with their job), then stop each daemon by its PID."""
        try:
            if self.daemons and all(d.poll() is None for d in self.daemons):
                self.client("scancel", "--user", str(os.getuid()), check=False)
                self._until(lambda: not self.client("squeue", "--noheader", check=False).strip(), 60,
                            "jobs did not end")
        finally:  # the daemons run as root: never leave them behind
            for daemon in reversed(self.daemons):
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
            shutil.rmtree(self.root, ignore_errors=True)

    def client(self, *args: str, check: bool = True) -> str:
        run = subprocess.run(args, env=self.env, capture_output=True, text=True)
        if check and run.returncode:
            raise RuntimeError(f"{' '.join(args)}: exit {run.returncode}: {run.stderr.strip()}")
        return run.stdout

    def sinfo(self) -> dict[str, str]:
        lines = self.client("sinfo", "--noheader", "--Node", "--format=%N %T", check=False).split()
        return dict(zip(lines[::2], lines[1::2]))

    def sbatch(self, options: list[str], script: Path, args: list[str], cwd: Path) -> int:
        return int(self.client("sbatch", "--parsable", f"--chdir={cwd}", *options, str(script), *args).split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as key -> value (JobState, ExitCode, Restarts, ...)."""
        fields = self.client("scontrol", "show", "job", "--oneliner", str(job_id)).split()
        return dict(f.split("=", 1) for f in fields if "=" in f)

    def wait(self, job_id: int, timeout: float) -> dict[str, str]:
        """The job once it has ended for good (a requeued job is pending again, not ended)."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] not in FINAL_STATES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['JobState']} after {timeout} s")
            time.sleep(0.2)
        return job
