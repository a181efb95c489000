"""linear-learner across hosts: synchronous data-parallel SGD with parameters averaged each epoch.

The scaler, label scaling and class weights come from sums over the first
``num_point_for_scaler`` records, split across hosts, so every host trains in the same
coordinates. Each epoch every host runs the single-host update on its own records, in
mini-batches of ``ceil(mini_batch_size / hosts)``, starting from the same parameters and
optimizer state; the leader then averages them (weighted by records) and judges the
epoch on validation data gathered from every host, exactly as one host would.
"""

from __future__ import annotations

import math

import numpy as np

from ..algorithms.base import batches, require_labels
from ..algorithms.linear_learner import LinearLearnerAlgorithm, LinearModel, ScalerStats
from ..data.blocks import concat
from ..errors import DataError
from ..evaluation.views import HeldOutStream
from .host import model_on_host
from .hosts import epoch_done, merged

PARAMS = ("W", "b", "m_W", "v_W", "m_b", "v_b")
SHARED = ("mean", "scale", "label_mean", "label_scale", "class_weights")


def _begin(session, per_host: int, scaler_records: int):
    """Open epoch 0 and read this host's part of the scaler sample (kept for training)."""
    algo = LinearLearnerAlgorithm(session.hp, session.ctx)
    algo._progressive = None
    train, validation = session.plan.fit_inputs()
    if isinstance(validation, HeldOutStream):
        validation.subscribe(algo._score_held_out)
    session.scratch.update(algo=algo, train=train)
    session.start_pass(per_host, train)
    kept, count = [], 0
    while count < scaler_records and (batch := session.next_batch()) is not None:
        algo._check_labels(require_labels(batch, "train"))
        kept.append(batch)
        count += len(batch)
    session.scratch["kept"] = kept
    return ScalerStats.of(concat(kept), algo.n_classes) if kept else None


def _epoch(session, per_host: int, state: dict):
    """One epoch of the single-host update on this host's records, from the leader's parameters."""
    algo = session.scratch["algo"]
    for name, value in state.items():
        setattr(algo, name, value.copy() if isinstance(value, np.ndarray) else value)
    kept = session.scratch.pop("kept", None)
    if kept is None:
        session.start_pass(per_host, session.scratch["train"])
        kept = []
    algo._progressive = None
    algo.epoch_loss = algo.epoch_weight = 0.0
    for batch in kept:
        algo._update(batch.X, batch.y)
    while (batch := session.next_batch()) is not None:
        algo.step(batch)
    progressive, algo._progressive = algo._progressive, None
    if progressive is not None:
        progressive.model = None
    return {"params": {k: getattr(algo, k) for k in PARAMS}, "t": algo.t, "records": session.pass_records,
            "loss": algo.epoch_loss, "weight": algo.epoch_weight, "progressive": progressive}


def _has_validation_channel(session) -> bool:
    return session.plan.validation is not None


def _validate(session, artifacts):
    channel = session.plan.validation
    ev = model_on_host(session, artifacts).evaluator()
    ev.channel = channel.name
    for batch in batches(channel, session.hp["mini_batch_size"]):
        ev.add(batch)
    ev.model = None
    return ev


def fit(hosts, algo: LinearLearnerAlgorithm) -> LinearModel:
    hp = algo.hp
    per_host = math.ceil(hp["mini_batch_size"] / len(hosts))
    total = merged(hosts.call(_begin, per_host, math.ceil(hp["num_point_for_scaler"] / len(hosts)), what="reading its scaler sample"))
    if total is None:
        raise DataError("channel 'train' has no records on any host")
    algo._setup(total)
    shared = {k: getattr(algo, k) for k in SHARED}
    validation = hosts.call(_has_validation_channel)[0]
    for epoch in range(hp["epochs"]):
        state = {**{k: getattr(algo, k) for k in PARAMS}, "t": algo.t, **(shared if epoch == 0 else {})}
        results = hosts.call(_epoch, per_host, state)
        weights = np.array([r["records"] for r in results], np.float64)
        if weights.sum() == 0:
            raise DataError(f"channel 'train' has no records on any host (epoch {epoch})")
        for name in PARAMS:
            setattr(algo, name, sum(w * r["params"][name] for w, r in zip(weights, results)) / weights.sum())
        algo.t = max(r["t"] for r in results)
        algo.epoch_loss, algo.epoch_weight = sum(r["loss"] for r in results), sum(r["weight"] for r in results)
        if validation:
            ev = merged(hosts.call(_validate, algo._model().to_artifacts(), what="scoring its validation data"))
        else:
            ev = merged([r["progressive"] for r in results])
        epoch_done(hosts, algo.ctx, epoch, hp["epochs"])
        if algo._judge(epoch, ev):
            break
    W, b = algo.best[1] if algo.best[1] is not None else (algo.W, algo.b)
    return algo._model(W, b)
