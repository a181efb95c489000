"""The ``train`` entrypoint: SageMaker's training contract end to end.

config files -> hyperparameters -> channels -> fit -> evaluate -> model
artifacts and metric lines. Any failure becomes one line in
``output/failure`` and a non-zero exit, with no model left behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .. import __version__
from ..algorithms import ALGORITHMS
from ..algorithms.base import Context
from ..data.inputs import read_inputs
from ..distributed.cluster import ClusterSpec, follow
from ..engine.checkpoints import Checkpoints
from ..engine.executor import job_executor
from ..engine.kfold import cross_validate
from ..errors import ConfigError, TrainingStopped, UserError, shown
from ..evaluation import plots
from ..evaluation import report as evaluation_report
from ..hyperparameters import decode, parse
from ..model_io import ArtifactWriter
from ..paths import Paths
from ..stats.metrics import CHANNELS, aliased, line, scalars
from . import describe, metric_definitions
from .failure import write_failure

log = logging.getLogger("byoa.train")

EXIT_FAILED, EXIT_STOPPED = 1, 143


def _emit(line: str) -> None:
    print(line, flush=True)


@contextmanager
def phase(name: str, timings: dict):
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - started, 3)
        log.info("phase %s took %.2f s", name, timings[name])


def choose_algorithm(raw: dict) -> str:
    chosen = decode(raw.pop("algorithm", "")) or os.environ.get("SAGEMAKER_ALGORITHM", "")
    if not isinstance(chosen, str):
        raise ConfigError(f"the 'algorithm' hyperparameter must be one name; got a {type(chosen).__name__}: {shown(chosen)}")
    if not chosen:
        raise ConfigError(
            f"no algorithm chosen: set the 'algorithm' hyperparameter or SAGEMAKER_ALGORITHM; one of: {', '.join(ALGORITHMS)}"
        )
    if chosen not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm '{shown(chosen)}'; known: {', '.join(ALGORITHMS)}")
    return chosen


def _checkpoint_folder(paths: Paths) -> Path | None:
    config = paths.read_json("checkpointconfig.json", required=False)
    if config and config.get("LocalPath"):
        return Path(config["LocalPath"])
    return paths.default_checkpoints if paths.default_checkpoints.is_dir() else None


def _stop_on_sigterm(signum, frame):
    raise TrainingStopped("training stopped by SIGTERM (StopTrainingJob or spot interruption)")


def _log_plan(described: list[dict], names: list[str]) -> dict:
    """Log every host's channels and the data plan; returns the plan's part of the report."""
    for name, d in zip(names, described):
        for channel in d["channels"]:
            log.info("channel %s" if len(names) == 1 else f"host {name}: channel %s", channel)
    info = dict(described[0]["info"])
    if len(names) > 1:
        info["per_host"] = "each host holds out its own records by the same rule; the roles of all hosts together are the split"
    warnings = [w if len(names) == 1 else f"host {n}: {w}" for n, d in zip(names, described) for w in d["warnings"]]
    log.info("split: %s", json.dumps(info))
    for warning in warnings:
        log.warning("%s", warning)
    return {"info": info, "warnings": warnings}


def train(paths: Paths) -> None:
    timings: dict = {}
    started = time.monotonic()
    with phase("setup", timings):
        raw = paths.read_json("hyperparameters.json", required=False, default={})
        if not isinstance(raw, dict):
            raise ConfigError("hyperparameters.json must hold a JSON object")
        raw = dict(raw)
        algorithm = choose_algorithm(raw)
        algo_cls = ALGORITHMS[algorithm]
        parsed = parse(algo_cls.params, raw, algorithm)
        hp = algo_cls.configure(parsed.values, parsed.platform)
        resources = paths.read_json("resourceconfig.json", required=False, default={}) or {}
        host = resources.get("current_host", "algo-1")
        hosts = resources.get("hosts", [host])
        spec = ClusterSpec.from_env(hosts, host) if len(hosts) > 1 else None
        if spec is not None and hp["k_fold"]:
            raise ConfigError(f"k_fold={hp['k_fold']} runs on one instance: with {len(hosts)} hosts, use k_fold=0 "
                              "(the held-out test split still applies) or instance_count=1")
        channels, _, unused = read_inputs(paths, algo_cls.feature_check(hp), algo_cls.channels)
        folder = _checkpoint_folder(paths)
        checkpoints = None
        if folder and algo_cls.checkpoints:
            if spec is None:
                checkpoints = Checkpoints.for_job(folder, algorithm, hp, channels)
            else:
                log.info("checkpoints are not used by multi-host jobs: a restarted job trains from the start")

        log.info("byoa %s: training %s on host %s", __version__, algorithm, host)
        log.info("hyperparameters: %s", json.dumps(hp, default=str, sort_keys=True))
        for name, value in sorted(parsed.ignored.items()):
            log.info("hyperparameter %s=%s is accepted but has no effect in this image", name, shown(value))
        for name, value in sorted(parsed.platform.items()):
            log.info("platform hyperparameter %s=%s noted", shown(name), shown(value))
        if unused:
            log.warning("channels %s are not used by %s", unused, algorithm)
        if checkpoints:
            log.info("checkpoints: %s (saved at each epoch end, resumed when present)", folder)

    if spec is not None and not spec.is_leader:
        log.info("host %s serves its data to the training cluster of %s; the model is written there, not here", host, spec.leader)
        follow(spec)
        return
    ctx = Context(host=host, emit=_emit, address=spec.addresses[spec.leader] if spec else None)
    kfold = None
    with ExitStack() as stack:
        with phase("split", timings):  # every host opens its data and makes its plan (several hosts: after joining)
            executor = stack.enter_context(job_executor(algorithm, hp, host, spec, ctx, checkpoints))
            plan = _log_plan(executor.describe(), executor.names)
        if executor.hosts is not None:
            timings["join"] = round(executor.hosts.leader.joined_in, 3)
        with phase("fit", timings):
            model = executor.fit(algo_cls(hp, ctx, len(executor.names)))
        if hp["k_fold"]:
            with phase("k_fold", timings):
                kfold = cross_validate(algo_cls, hp, executor.local.plan, executor.local.channels)
            log.info("k-fold verdict: %s", kfold["verdict"])
        with phase("evaluate", timings):
            scores = executor.evaluate(model)

    model.finalize(scores.evaluators)
    results = {role: aliased(ev.result(), model.metric_defs) for role, ev in scores.evaluators.items()}
    for role in CHANNELS:
        for name, value in scalars(results.get(role, {})).items():
            _emit(line(host, role, name, model.kind_of(name), value))

    with phase("report", timings):
        report = evaluation_report.build(algorithm, model, plan, results, scores, kfold, timings)
        path = evaluation_report.write(paths.output_data, report)
        pictures = plots.draw(report, paths.output_data)
        log.info("evaluation report: %s%s", path, "".join(f", {p.name}" for p in pictures))

    with phase("save", timings):
        arrays, meta = model.to_artifacts()
        meta = {**meta, "hyperparameters": hp, "metrics": {r: scalars(m) for r, m in results.items()}}
        writer = ArtifactWriter(paths.model)
        try:
            writer.save(algorithm, arrays, json.loads(json.dumps(meta, default=float)))
        except BaseException:
            writer.discard()
            raise
    log.info("model written to %s; total %.2f s; timings %s", paths.model, time.monotonic() - started, timings)
    for text in evaluation_report.summary(report):
        log.info("%s", text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if argv and argv[0] == "--metric-definitions":
        return metric_definitions.main(argv[1:])
    if argv and argv[0] == "--describe":
        return describe.main(argv[1:])
    paths = Paths.from_env()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        train(paths)
        return 0
    except TrainingStopped as exc:
        write_failure(paths, str(exc))
        return EXIT_STOPPED
    except UserError as exc:
        write_failure(paths, str(exc))
        return EXIT_FAILED
    except Exception as exc:  # a bug in this image: say so, with the traceback
        write_failure(paths, f"internal error: {type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_FAILED
