#!/usr/bin/env python3
"""Run a multi-host training job on one machine: one `container/train` process per host.

    local_test/train_cluster.py [--hosts 2] [--distribution ShardedByS3Key] [--source local_test/test_dir]
                                [--work /tmp/byoa-cluster] [--port 8786] [-- HYPERPARAMETER=VALUE ...]

Each host gets its own SAGEMAKER_BASE_DIR (<work>/algo-<i>) holding the source job's
config, a resourceconfig.json naming all hosts and itself, and its data: every file with
FullyReplicated; with ShardedByS3Key, files dealt out in turn like S3 keys (a channel
with fewer files than hosts has its CSV lines dealt out instead). Host algo-<i> listens on
127.0.0.<i> (TRAIN_HOST_ADDRESSES), the scheduler on --port of algo-1. The model and
evaluation are written to <work>/algo-1; the other hosts exit 0 with an empty model
folder. For Pipe mode, feed each host's FIFOs with pipe_feeder.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN = HERE.parent / "container" / "train"
sys.path.insert(0, str(TRAIN.parent))

from byoa.data import recordio  # noqa: E402  (the package next to this script)


def host_names(n: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(n)]


def addresses(n: int) -> dict[str, str]:
    return {name: f"127.0.0.{i + 1}" for i, name in enumerate(host_names(n))}


def write_config(base: Path, hosts: list[str], current: str, hyperparameters: dict, channels: dict) -> None:
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": current, "hosts": hosts,
                                                             "network_interface_name": "lo"}))
    (base / "model").mkdir(exist_ok=True)
    (base / "output").mkdir(exist_ok=True)


def deal(files: list[Path], n: int) -> list[list[tuple[str, bytes]]]:
    """Each host's (name, bytes) for a sharded channel: files in turn, or, with fewer files than
    hosts, records in turn (CSV lines, or RecordIO records)."""
    if len(files) >= n:
        return [[(f.name, f.read_bytes()) for f in files[i::n]] for i in range(n)]
    if all(f.suffix == ".csv" for f in files):
        lines = [line for f in files for line in f.read_bytes().splitlines(keepends=True)]
        return [[(f"part-{i}.csv", b"".join(lines[i::n]))] for i in range(n)]
    records = [r for f in files for r in recordio.iter_payloads(f.read_bytes(), str(f))]
    return [[(f"part-{i}.pbr", recordio.encode_all(records[i::n]))] for i in range(n)]


def lay_out(source: Path, work: Path, n: int, distribution: str, overrides: dict) -> list[Path]:
    config = source / "input" / "config"
    hyperparameters = {k: v for k, v in {**json.loads((config / "hyperparameters.json").read_text()), **overrides}.items() if v != ""}
    channels = json.loads((config / "inputdataconfig.json").read_text())
    hosts = host_names(n)
    bases = [work / h for h in hosts]
    shutil.rmtree(work, ignore_errors=True)
    for name, spec in channels.items():
        spec["S3DistributionType"] = distribution
        files = sorted(p for p in (source / "input" / "data" / name).iterdir() if p.is_file())
        shares = deal(files, n) if distribution == "ShardedByS3Key" else [[(f.name, f.read_bytes()) for f in files]] * n
        for base, share in zip(bases, shares):
            folder = base / "input" / "data" / name
            folder.mkdir(parents=True, exist_ok=True)
            for filename, data in share:
                (folder / filename).write_bytes(data)
    for base, host in zip(bases, hosts):
        write_config(base, hosts, host, hyperparameters, channels)
    return bases


def cluster_env(base: Path, n: int, port: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({"SAGEMAKER_BASE_DIR": str(base), "TRAIN_HOST_ADDRESSES": json.dumps(addresses(n)),
                "TRAIN_SCHEDULER_PORT": str(port)})
    env.update(extra or {})
    return env


def start(bases: list[Path], port: int, extra: dict | None = None, **popen) -> list[subprocess.Popen]:
    """One train process per host, the first host last (hosts may start in any order)."""
    procs = {}
    for i in reversed(range(len(bases))):
        procs[i] = subprocess.Popen([sys.executable, str(TRAIN)], env=cluster_env(bases[i], len(bases), port, extra), **popen)
    return [procs[i] for i in range(len(bases))]


def _prefix(stream, host: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"[{host}] {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--distribution", choices=("ShardedByS3Key", "FullyReplicated"), default="ShardedByS3Key")
    parser.add_argument("--source", type=Path, default=HERE / "test_dir", help="a job folder laid out like /opt/ml")
    parser.add_argument("--work", type=Path, default=Path("/tmp/byoa-cluster"))
    parser.add_argument("--port", type=int, default=8786, help="the scheduler's port (TRAIN_SCHEDULER_PORT)")
    parser.add_argument("overrides", nargs="*", help="hyperparameters NAME=VALUE replacing the source job's (NAME= drops one)")
    args = parser.parse_args()
    if not 2 <= args.hosts <= 254:
        parser.error("--hosts must be between 2 and 254")
    overrides = dict(o.split("=", 1) for o in args.overrides)
    bases = lay_out(args.source, args.work, args.hosts, args.distribution, overrides)
    procs = start(bases, args.port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threads = [threading.Thread(target=_prefix, args=(p.stdout, b.name)) for p, b in zip(procs, bases)]
    for t in threads:
        t.start()
    codes = [p.wait() for p in procs]
    for t in threads:
        t.join()
    for base, code in zip(bases, codes):
        model = sorted(p.name for p in (base / "model").iterdir())
        failure = base / "output" / "failure"
        note = failure.read_text().strip() if failure.exists() else ("model: " + ", ".join(model) if model else "model folder empty")
        print(f"{base.name}: exit {code}; {note}")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
