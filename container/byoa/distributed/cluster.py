"""A Dask cluster across a training job's hosts (``instance_count > 1``), inside the train processes.

The first host in ``resourceconfig.json``'s ``hosts`` (the leader) runs the scheduler and a
client in its own train process; every other host's train process runs one Dask worker
named after the host, so work can be pinned to the host that holds the data. No extra
processes are started, so nothing outlives a train process. Dask pickles its own messages
inside this cluster only; nothing it pickles is ever written to the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from ..errors import ConfigError, UserError

log = logging.getLogger("byoa.train")

# Dask's own INFO lines (and its tracebacks when the cluster closes on purpose) would drown the job's log.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
# Dask samples every thread's stack every 10 ms for its dashboard, and polls system load: on a host whose
# train process has one core, that is time taken from training. Nothing here reads them.
os.environ.setdefault("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "false")
os.environ.setdefault("DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL", "10s")

DEFAULT_PORT = 8786
DEFAULT_JOIN_TIMEOUT = 300.0
# A host's training thread and Dask's network thread share its cores and the GIL; by default a waiting thread gets
# the GIL only after 5 ms, which would delay every message by that much while the other thread computes.
SWITCH_INTERVAL = 0.0005


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
    def followers(self) -> list[str]:
        return self.hosts[1:]

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


class Leader:
    """The first host's side: the scheduler and a client in this process, until every follower's worker has joined."""

    def __init__(self, spec: ClusterSpec):
        self.spec = spec
        self.cluster = self.client = None
        self.joined_in = 0.0

    def __enter__(self) -> "Leader":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        from distributed import Client, LocalCluster

        sys.setswitchinterval(SWITCH_INTERVAL)
        started = time.monotonic()
        address = self.spec.addresses[self.spec.leader]
        try:
            self.cluster = LocalCluster(n_workers=0, processes=False, host=address, scheduler_port=self.spec.port,
                                        dashboard_address=None)
        except OSError as exc:
            raise UserError(f"the Dask scheduler could not listen on {address}:{self.spec.port} (TRAIN_SCHEDULER_PORT): {exc}") from None
        self.client = Client(self.cluster)
        deadline = started + self.spec.join_timeout
        while True:
            missing = [h for h in self.spec.followers if h not in self.workers()]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise UserError(
                    f"hosts {missing} never joined the training cluster within {self.spec.join_timeout:.0f} s "
                    f"(TRAIN_JOIN_TIMEOUT); joined: {sorted(self.workers())}"
                )
            time.sleep(0.05)
        self.joined_in = time.monotonic() - started
        log.info("cluster: %d hosts joined in %.1f s: %s (scheduler %s)", len(self.spec.hosts), self.joined_in,
                 ", ".join(f"{h}={self.spec.addresses[h]}" for h in self.spec.hosts), self.spec.scheduler_address)

    def workers(self) -> dict[str, str]:
        """Host name -> worker address, for the workers connected now."""
        info = self.client.scheduler_info(n_workers=-1)
        return {w.get("name"): addr for addr, w in info.get("workers", {}).items()}

    def close(self) -> None:
        """Release the followers (they then exit 0: this host reports the job's outcome), then stop the scheduler."""
        if self.client is not None:
            try:
                self.client.run(_release)
            except Exception:  # a follower already gone: it has failed on its own
                pass
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None


_released = False  # set on a follower when the leader closes the cluster on purpose


def _release() -> None:
    global _released
    _released = True


def follow(spec: ClusterSpec) -> None:
    """A follower: run this host's worker in this process until the leader closes the cluster."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.run(_serve(spec))
    if not _released:
        raise UserError(f"the first host {spec.leader} ({spec.scheduler_address}) left the training cluster before the "
                        "job finished (see that host's log)")
    log.info("cluster: the first host closed the training cluster; host %s is done", spec.current)


async def _serve(spec: ClusterSpec) -> None:
    from distributed import Worker

    from ..cpus import available_cpus

    try:
        worker = await Worker(spec.scheduler_address, name=spec.current, host=spec.addresses[spec.current],
                              nthreads=available_cpus(), death_timeout=spec.join_timeout, memory_limit=0,
                              local_directory=tempfile.mkdtemp(prefix="byoa-dask-"))
    except (TimeoutError, OSError):
        raise UserError(f"the first host {spec.leader} ({spec.scheduler_address}) never started the training cluster "
                        f"within {spec.join_timeout:.0f} s (TRAIN_JOIN_TIMEOUT)") from None
    log.info("cluster: host %s joined the scheduler on %s", spec.current, spec.leader)
    async with worker:
        await worker.finished()
