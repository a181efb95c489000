"""The leader's handle on every host: call a function on each host's session, gather in host order.

Every call is pinned to the host's own worker (``workers=[address]``, no other worker
allowed), so a host's data is only ever read on that host. While waiting, the leader
watches the cluster: a host whose worker is gone fails the job by name instead of
leaving its task waiting forever.
"""

from __future__ import annotations

import logging
import time
import uuid

from ..errors import DataError, UserError
from . import host as on_host
from .cluster import Cluster

log = logging.getLogger("byoa.train")

POLL_SECONDS = 1.0


class Hosts:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.client = cluster.client
        self.names = list(cluster.spec.hosts)
        workers = cluster.worker_names()
        self.addresses = [workers[h] for h in self.names]
        self.key = uuid.uuid4().hex
        self.waited = 0.0  # seconds the leader spent waiting for hosts (their reading and computing)

    def __len__(self) -> int:
        return len(self.names)

    def open(self, algorithm: str, hp: dict) -> list[dict]:
        """Each host opens its channels and makes its data plan."""
        futures = [
            self.client.submit(on_host.open_session, self.key, algorithm, hp, name, i, len(self.names),
                               workers=[address], allow_other_workers=False, pure=False)
            for i, (name, address) in enumerate(zip(self.names, self.addresses))
        ]
        return self._gather(futures, "opening its data")

    def call(self, function, *args, each: list | None = None, what: str = "training") -> list:
        """``function(session, *args, *each[i])`` on host i; results in host order."""
        futures = [
            self.client.submit(on_host.run, self.key, function, *args, *(each[i] if each else ()),
                               workers=[address], allow_other_workers=False, pure=False)
            for i, address in enumerate(self.addresses)
        ]
        return self._gather(futures, what)

    def _gather(self, futures: list, what: str) -> list:
        started = time.monotonic()
        try:
            return self._wait(futures, what)
        finally:
            self.waited += time.monotonic() - started

    def _wait(self, futures: list, what: str) -> list:
        """Results in host order. A result is fetched from the host's worker, so a worker that dies even
        after finishing its task leaves the result waiting forever: hence the check for missing hosts."""
        out = []
        for name, future in zip(self.names, futures):
            while True:
                try:
                    out.append(future.result(timeout=POLL_SECONDS))
                    break
                except TimeoutError:
                    joined = self.cluster.worker_names()
                    gone = [n for n in self.names if n not in joined]
                    if gone:
                        self._cancel(futures)
                        raise UserError(f"host {gone[0]} left the training cluster while {what}: its worker stopped or "
                                        "lost contact with the scheduler (see that host's log); the job cannot finish "
                                        "without its data") from None
                except Exception as exc:
                    self._cancel(futures)
                    self._raise(name, exc)
        return out

    def _raise(self, name: str, exc: BaseException) -> None:
        if isinstance(exc, UserError):
            raise type(exc)(f"host {name}: {exc}") from None
        raise exc

    def _cancel(self, futures: list) -> None:
        try:
            self.client.cancel(futures)
        except Exception:  # the cluster is being torn down anyway
            pass


def merged(parts: list):
    """One object from the hosts' objects of the same kind (evaluators, baseline sums), added up with
    their ``merge``; None if no host had one."""
    present = [p for p in parts if p is not None]
    for other in present[1:]:
        present[0].merge(other)
    return present[0] if present else None


def _pass_report(session):
    return session.pass_report()


def epoch_done(hosts: Hosts, ctx, epoch: int, epochs: int) -> list:
    """Log each host's pass (records, MB, throughput) and the job's progress; no records at all is an error."""
    reports = hosts.call(_pass_report, what="reporting its pass")
    if sum(r.records for r in reports) == 0:
        raise DataError(f"channel 'train' has no records on any host (epoch {epoch})")
    log.info("epoch %d/%d: %s", epoch + 1, epochs, "; ".join(r.describe() for r in reports))
    for r in reports:
        ctx.emit(f"#throughput_metric: host={r.host}, train throughput={r.records / max(r.seconds, 1e-9):.2f} records/second")
    ctx.progress(epoch + 1, epochs)
    return reports
