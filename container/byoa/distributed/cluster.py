"""A Dask cluster across a training job's hosts (``instance_count > 1``).

The first host in ``resourceconfig.json``'s ``hosts`` runs the scheduler; every
host (the first included) runs one worker named after the host, so tasks can
be pinned to the host that holds the data. Dask pickles its own tasks inside
this cluster only; nothing it pickles is ever written to the model.
"""

from __future__ import annotations

import json
import signal
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, UserError

log = logging.getLogger("byoa.train")

# Dask's own INFO lines (and its tracebacks when the cluster closes on purpose) would drown the job's log.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

DEFAULT_PORT = 8786
DEFAULT_JOIN_TIMEOUT = 300.0


@dataclass
class ClusterSpec:
    hosts: list[str]
    current: str
    addresses: dict[str, str]
    port: int = DEFAULT_PORT
    join_timeout: float = DEFAULT_JOIN_TIMEOUT

    @property
    def leader(self) -> str:
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.current == self.leader

    @property
    def scheduler_address(self) -> str:
        return f"tcp://{self.addresses[self.leader]}:{self.port}"

    @classmethod
    def from_env(cls, hosts: list[str], current: str, env=os.environ) -> "ClusterSpec":
        port = int(env.get("TRAIN_SCHEDULER_PORT", DEFAULT_PORT))
        timeout = float(env.get("TRAIN_JOIN_TIMEOUT", DEFAULT_JOIN_TIMEOUT))
        given = env.get("TRAIN_HOST_ADDRESSES")
        if given:
            try:
                addresses = json.loads(given)
            except ValueError as exc:
                raise ConfigError(f"TRAIN_HOST_ADDRESSES is not a JSON object: {exc}") from None
            missing = [h for h in hosts if h not in addresses]
            if missing:
                raise ConfigError(f"TRAIN_HOST_ADDRESSES has no address for hosts {missing}")
        else:
            addresses = {h: _resolve(h, timeout) for h in hosts}
        if current not in hosts:
            raise ConfigError(f"resourceconfig.json: current_host {current!r} is not in hosts {hosts}")
        return cls(list(hosts), current, addresses, port, timeout)


def _resolve(host: str, timeout: float) -> str:
    """SageMaker's DNS names for the hosts can take a moment to appear: retry until the join timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                raise UserError(f"host name {host!r} does not resolve (after {timeout:.0f} s)") from None
            time.sleep(1)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the train process dies, even by SIGKILL (Linux), so a killed job leaves
    no scheduler or worker behind (they would otherwise keep each other alive)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Cluster:
    """Start this host's part of the cluster; on the leader, also the scheduler and a client."""

    spec: ClusterSpec
    processes: list = field(default_factory=list)
    client: object = None

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        """A Dask process that can import this package (its tasks are this package's functions)."""
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=sys.stderr, stderr=sys.stderr, env=env,
                                preexec_fn=_die_with_parent)
        self.processes.append(proc)
        return proc

    def start_worker(self) -> subprocess.Popen:
        from ..cpus import available_cpus

        scratch = tempfile.mkdtemp(prefix="byoa-dask-")
        return self._spawn([
            "distributed.cli.dask_worker", self.spec.scheduler_address,
            "--name", self.spec.current, "--host", self.spec.addresses[self.spec.current],
            "--nthreads", str(available_cpus()), "--nworkers", "1", "--no-nanny", "--no-dashboard",
            "--death-timeout", str(int(self.spec.join_timeout)), "--local-directory", scratch,
        ])

    def start_leader(self) -> None:
        """Scheduler, own worker, client; then wait until every host's worker has joined."""
        from distributed import Client

        started = time.monotonic()
        address = self.spec.addresses[self.spec.leader]
        self._spawn(["distributed.cli.dask_scheduler", "--host", address, "--port", str(self.spec.port), "--no-dashboard"])
        self.start_worker()  # at once: it retries until the scheduler listens
        deadline = started + self.spec.join_timeout
        while not _reachable(address, self.spec.port):
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise UserError(f"the Dask scheduler did not start on {address}:{self.spec.port} (TRAIN_SCHEDULER_PORT)")
            time.sleep(0.05)
        self.client = Client(self.spec.scheduler_address, timeout=max(5, deadline - time.monotonic()))
        while True:
            joined = self.worker_names()
            missing = [h for h in self.spec.hosts if h not in joined]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise UserError(
                    f"hosts {missing} never joined the training cluster within {self.spec.join_timeout:.0f} s "
                    f"(TRAIN_JOIN_TIMEOUT); joined: {sorted(joined)}"
                )
            time.sleep(0.2)
        log.info("cluster: %d hosts joined in %.1f s: %s (scheduler %s)", len(self.spec.hosts), time.monotonic() - started,
                 ", ".join(f"{h}={self.spec.addresses[h]}" for h in self.spec.hosts), self.spec.scheduler_address)

    def worker_names(self) -> dict[str, str]:
        """Host name -> worker address, for the workers connected now."""
        info = self.client.scheduler_info(n_workers=-1)
        return {w.get("name"): addr for addr, w in info.get("workers", {}).items()}

    def follow(self) -> int:
        """A non-leader host: wait for the scheduler, run this host's worker until the leader shuts the cluster down."""
        started = time.monotonic()
        address = self.spec.addresses[self.spec.leader]
        while not _reachable(address, self.spec.port):
            if time.monotonic() - started > self.spec.join_timeout:
                raise UserError(
                    f"the first host {self.spec.leader} ({address}:{self.spec.port}) never started the training cluster "
                    f"within {self.spec.join_timeout:.0f} s (TRAIN_JOIN_TIMEOUT)"
                )
            time.sleep(0.2)
        log.info("cluster: host %s joins the scheduler on %s", self.spec.current, self.spec.leader)
        worker = self.start_worker()
        code = worker.wait()
        if code != 0:
            raise UserError(f"the Dask worker of host {self.spec.current} stopped with exit status {code} before the "
                            f"first host {self.spec.leader} closed the training cluster")
        log.info("cluster: the first host closed the training cluster; the worker of %s has exited", self.spec.current)
        return 0

    def shutdown(self) -> None:
        if self.client is not None:
            try:
                self.client.shutdown()
            except Exception:  # the cluster may be half gone already: the processes are stopped below anyway
                pass
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
