"""What each host's Dask worker keeps between the leader's calls: its share of the data and its plan.

The leader calls ``run(function, ...)`` pinned to a host's worker; ``function`` gets this
host's ``HostSession``. The session opens the host's own ``inputdataconfig.json`` and
channel files or FIFOs (from the worker's ``SAGEMAKER_BASE_DIR``), so raw records are
read where they are and only what a function returns crosses the network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..algorithms import ALGORITHMS, model_from_artifacts
from ..algorithms.base import Context
from ..data.blocks import Block, rebatch
from ..evaluation.evaluate import Scores, evaluate
from ..evaluation.plan import make_plan
from ..paths import Paths
from ..data.inputs import read_inputs
from .data import HostShare

@dataclass
class PassReport:
    """One host's pass over its data: what the leader logs per host."""

    host: str
    records: int
    nbytes: int
    seconds: float
    busy: float  # of which working (the rest: waiting for the leader and the network)

    def describe(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else float("inf")
        return (f"{self.host} {self.records} records, {self.nbytes / 1e6:.1f} MB in {self.seconds:.2f} s ({rate:,.0f} records/s; "
                f"busy {self.busy:.2f} s)")


_SESSIONS: dict[str, "HostSession"] = {}


class HostSession:
    def __init__(self, algorithm: str, hp: dict, host: str, index: int, n_hosts: int):
        self.algo_cls = ALGORITHMS[algorithm]
        self.hp, self.host, self.index, self.n_hosts = hp, host, index, n_hosts
        feature_dim = hp.get("feature_dim")
        channels, roles, _ = read_inputs(Paths.from_env(), feature_dim if isinstance(feature_dim, int) else None)
        self.channels = {name: HostShare(c, index, n_hosts) for name, c in channels.items()}
        shares = {role: c and self.channels[c.name] for role, c in roles.items()}
        started = time.monotonic()
        self.plan = make_plan(hp, self.algo_cls, shares["train"], shares["validation"], shares["test"])
        self.plan_seconds = time.monotonic() - started
        self.ctx = Context(host=host, checkpoints=None, emit=lambda line: None)  # the leader writes the job's metric lines
        self.scratch: dict = {}  # per-algorithm state between calls (an open pass, a sample)
        self.busy = 0.0  # seconds spent in the leader's calls (reading, decoding, computing)

    def start_pass(self, batch_size: int, part=None) -> None:
        """The next epoch of this host's training part (or of ``part``), in batches of ``batch_size``."""
        part = part if part is not None else self.plan.fit_inputs()[0]
        self.part, self.batches = part, rebatch(part.next_pass(), batch_size)
        self.pass_started, self.pass_records, self.pass_busy = time.monotonic(), 0, self.busy

    def next_batch(self) -> Block | None:
        batch = next(self.batches, None)
        if batch is not None:
            self.pass_records += len(batch)
        return batch

    def pass_report(self) -> "PassReport":
        return PassReport(self.host, self.pass_records, self.part.bytes_last_pass, time.monotonic() - self.pass_started,
                          self.busy - self.pass_busy)

    def describe(self) -> dict:
        return {"channels": [c.describe() for c in self.channels.values()], "info": self.plan.info,
                "warnings": self.plan.warnings, "plan_seconds": self.plan_seconds}


def run(key: str, function, *args):
    """The task the leader submits to one host's worker."""
    session = _SESSIONS[key]
    started = time.monotonic()
    try:
        return function(session, *args)
    finally:
        session.busy += time.monotonic() - started


def open_session(key: str, algorithm: str, hp: dict, host: str, index: int, n_hosts: int) -> dict:
    _SESSIONS[key] = HostSession(algorithm, hp, host, index, n_hosts)
    return _SESSIONS[key].describe()


def model_on_host(session: HostSession, artifacts: tuple[dict, dict]):
    """A model sent as its artifacts (plain arrays and metadata), rebuilt as ``serve`` would load it."""
    return model_from_artifacts(session.algo_cls.name, *artifacts)


def evaluate_share(session: HostSession, artifacts: tuple[dict, dict]) -> tuple[Scores, float]:
    """Score this host's records in every role; evaluators travel back without the model."""
    started = time.monotonic()
    scores = evaluate(model_on_host(session, artifacts), session.plan)
    for ev in scores.evaluators.values():
        ev.model = None
    return scores, time.monotonic() - started
