"""A throw-away single-node Slurm cluster on 127.0.0.1: munged, slurmctld and slurmd with a generated slurm.conf.

Everything (key, sockets, state, spool, logs) lives in one folder; nothing in /etc is read or changed. Clients find
the cluster through SLURM_CONF, which `SlurmCluster.env` sets.

In tests: `with SlurmCluster(folder) as cluster: subprocess.run([...], env=cluster.env)`.
By hand (e.g. to try `LAUNCHER=slurm bash run_baselines.sh`): `python tests/slurm_cluster.py /tmp/slurm`, then in
another shell `export SLURM_CONF=/tmp/slurm/slurm.conf`; Ctrl-C stops the cluster.
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

DAEMONS = ("munged", "slurmctld", "slurmd")
NODE = "lomnode"
PARTITION = "debug"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
LOG_TAIL_LINES = 15
# A stop signal's grace before SIGKILL; the preemption tests need train.py to save its checkpoint within it.
KILL_WAIT_S = 30
CRED_EXPIRE_S = 15


REQUIRED_PROGRAMS = (*DAEMONS, "sbatch", "scontrol")


class SlurmUnavailable(RuntimeError):
    """Slurm could not be started; the message carries the daemons' last log lines."""


def daemon_path(environ: dict[str, str] | None = None) -> str:
    """PATH with /usr/sbin and /sbin added: the daemons live there, which a non-login root shell may lack."""
    environ = os.environ if environ is None else environ
    return os.pathsep.join([environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])


def missing_programs(environ: dict[str, str] | None = None) -> list[str]:
    """The Slurm and munge programs this machine lacks (none once `apt-get install slurm-wlm munge` ran)."""
    path = daemon_path(environ)
    return [name for name in REQUIRED_PROGRAMS if shutil.which(name, path=path) is None]


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, all different (the sockets are held open together while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_hardware(env: dict[str, str]) -> str:
    """The node's CPUs/sockets/cores/memory as slurmd itself measures them, so slurmd accepts the node line."""
    probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30, env=env)
    first = probe.stdout.splitlines()[0] if probe.stdout else ""
    if probe.returncode != 0 or not first.startswith("NodeName="):
        raise SlurmUnavailable(f"slurmd -C failed (exit {probe.returncode}): {probe.stderr.strip() or probe.stdout}")
    return " ".join(field for field in first.split() if not field.startswith("NodeName="))


class SlurmCluster:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).resolve()
        self.conf = self.folder / "slurm.conf"
        self.munge_socket = self.folder / "munge.socket"
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": daemon_path()}

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        missing = missing_programs(self.env)
        if missing:
            raise SlurmUnavailable(f"{', '.join(missing)} not found: apt-get install -y slurm-wlm munge")
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._write_munge_key()
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={self.folder / 'munge.key'}", f"--pid-file={self.folder / 'munged.pid'}",
                               "--log-file=/dev/stderr",
                               f"--seed-file={self.folder / 'munged.seed'}"])
        self._wait(self.munge_socket.exists, "munged did not create its socket")
        self.conf.write_text(self._slurm_conf())
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._wait(lambda: self._query(["scontrol", "ping"]).endswith("is UP"), "slurmctld does not answer")
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait(lambda: self._query(["sinfo", "-h", "-n", NODE, "-o", "%t"]) in ("idle", "mix", "alloc"),
                   "slurmd did not register its node as idle")

    def stop(self) -> None:
        """Cancel every job, wait for their processes to end, then stop the daemons (newest first)."""
        if "slurmd" in self.processes and self.processes["slurmd"].poll() is None:
            subprocess.run(["scancel", "--full", "--signal=KILL", f"--partition={PARTITION}"], env=self.env,
                           capture_output=True, timeout=30)
            subprocess.run(["scancel", f"--partition={PARTITION}"], env=self.env, capture_output=True, timeout=30)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and self._query(["squeue", "-h", "-o", "%i"]):
                time.sleep(0.5)
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    # -- helpers ------------------------------------------------------------------------------------------------
    def _write_munge_key(self) -> None:
        key = self.folder / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

    def _slurm_conf(self) -> str:
        f = self.folder
        ctld_port, slurmd_port = free_ports(2)
        return "\n".join([
            "ClusterName=lomtest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            # A requeued job waits cred_expire seconds (default 120) before it may start again.
            f"AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            # In the foreground (-D) without a log file, each daemon logs to its console file log/<daemon>.out.
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # Containers and small VMs have no usable cgroups: track job processes by parentage, bind nothing.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            # Look at pending jobs every 2 s rather than every 60 s, so a requeued task restarts soon after its wait.
            "SchedulerParameters=sched_interval=2",
            "MpiDefault=none",
            "ReturnToService=2",
            f"KillWait={KILL_WAIT_S}",
            # Finished jobs stay visible to squeue/scontrol long enough for the tests to read their state.
            "MinJobAge=600",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} {node_hardware(self.env)} "
            "State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.folder / "log" / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                env=self.env, start_new_session=True)
        out.close()

    def _query(self, argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    def _wait(self, ready, problem: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{', '.join(dead)} exited during start-up ({problem})\n{self.logs()}")
            time.sleep(0.2)
        raise SlurmUnavailable(f"{problem} within {START_TIMEOUT_S} s\n{self.logs()}")

    def logs(self) -> str:
        """The last lines of every daemon's log and console output, for failure messages."""
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/slurm_cluster.py FOLDER  (starts a single-node Slurm; Ctrl-C stops it)")
    with SlurmCluster(sys.argv[1]) as cluster:
        print(f"single-node Slurm up; in another shell: export SLURM_CONF={cluster.conf}  (Ctrl-C here stops it)",
              flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's background job starts with it ignored
            signal.signal(signum, signal.default_int_handler)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("stopping the cluster", flush=True)


if __name__ == "__main__":
    main()
