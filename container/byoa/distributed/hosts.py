"""The leader's handles on the other hosts: one long-lived actor per follower, called all together.

An actor lives in the follower's worker (``workers=[address]``, nowhere else), so whatever it
reads is read on that host, and a call goes straight from the leader's client to that worker:
about a millisecond on a network, where a submitted task costs ten or more. While waiting,
the leader watches the cluster: a host whose worker is gone fails the job by name instead
of leaving its call waiting forever.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..errors import UserError
from .cluster import Leader

log = logging.getLogger("byoa.train")

POLL_SECONDS = 1.0


class Hosts:
    def __init__(self, leader: Leader):
        self.leader = leader
        self.names = list(leader.spec.followers)
        self.actors: list = []
        self.waited = 0.0  # seconds the leader spent waiting for the followers, after its own part of a call

    def start(self, cls, args: Callable[[int, str], tuple], local: Callable, what: str):
        """One ``cls(*args(i, host))`` actor on each follower's worker (i counts the followers from 1);
        returns ``local()``'s result, run here meanwhile."""
        client, workers = self.leader.client, self.leader.workers()
        futures = [client.submit(cls, *args(i, name), workers=[workers[name]], allow_other_workers=False, actor=True, pure=False)
                   for i, name in enumerate(self.names, 1)]
        mine = local()
        self.actors = self._wait(futures, what)
        return mine

    def call(self, method: str, *args, local: Callable | None = None, what: str = "training") -> tuple:
        """``local()``'s result (run here meanwhile), then ``actor.method(*args)``'s of every follower in host order."""
        futures = [getattr(actor, method)(*args) for actor in self.actors]
        mine = local() if local is not None else None
        started = time.monotonic()
        try:
            return mine, self._wait(futures, what)
        finally:
            self.waited += time.monotonic() - started

    def _wait(self, futures: list, what: str) -> list:
        """Results in host order. A follower whose worker is gone is named; its error is raised with its name."""
        out = []
        for name, future in zip(self.names, futures):
            while True:
                try:
                    out.append(future.result(timeout=POLL_SECONDS))
                    break
                except TimeoutError:
                    gone = [n for n in self.names if n not in self.leader.workers()]
                    if gone:
                        raise _left(gone[0], what) from None
                except UserError as exc:
                    raise type(exc)(f"host {name}: {exc}") from None
                except OSError:  # the connection to its worker broke (CommClosedError is one)
                    raise _left(name, what) from None
        return out


def _left(host: str, what: str) -> UserError:
    return UserError(f"host {host} left the training cluster while {what}: its train process stopped or lost contact with "
                     "the first host (see that host's log); the job cannot finish without its data")
