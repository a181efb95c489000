"""Multi-host training: wall time of 2 hosts against 1 host, in the same run, each host on its own core.

Targets: random-forest (200 trees) and kmeans (k=100, 1M x 50): 2 hosts >= 1.6x faster (issues 6
and 11); linear-learner on make_classification(1_000_000, 50, random_state=0), default
mini_batch_size, epochs=5: 2 hosts >= 1.5x faster and test AUC within 0.01 of 1 host's (issue 11).
Every host (the single one included) is one `container/train` process pinned with `taskset` to
one core, so the comparison is one core against two. Data: RecordIO-protobuf, ShardedByS3Key
(each host holds half the files; the single host holds all). Reports where the first host's time
went: join, opening data, fit, evaluation.

    python bench/cluster.py [--pipe] [round|random-forest|kmeans|linear-learner ...]     (default: all)

``--pipe``: Pipe mode (each host's FIFOs fed by local_test/pipe_feeder.py on that host's core, one per
epoch) instead of File mode, where a job's later epochs read its first pass from memory.

``round``: what one call to another host costs on a two-host loopback cluster started by the
image's own bootstrap: a call to a long-lived actor (what the engine uses) against a submitted
Dask task (what it used before), with an empty and a 160 kB argument (k=100 x 4 centres of 50).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))
sys.path.insert(0, str(ROOT / "local_test"))

from byoa.data.protobuf_codec import encode_rows  # noqa: E402
from train_cluster import cluster_env, host_names, write_config  # noqa: E402

TARGET = 1.6
FILES = 8

JOBS = {
    "random-forest": dict(rows=40_000, features=20, labelled=True,
                          hp={"algorithm": "random-forest", "n_estimators": 200, "seed": 0}),
    "kmeans": dict(rows=1_000_000, features=50, labelled=False,
                   hp={"algorithm": "kmeans", "k": 100, "feature_dim": 50, "mini_batch_size": 50_000, "epochs": 5, "seed": 0}),
    "linear-learner": dict(rows=1_000_000, features=50, labelled=True, classification=True, target=1.5,
                           hp={"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 5, "seed": 0}),
}


def make_data(spec: dict, folder: Path) -> list[Path]:
    n, d = spec["rows"], spec["features"]
    if spec.get("classification"):
        from sklearn.datasets import make_classification

        X, y = make_classification(n, d, random_state=0)
        X, y = X.astype(np.float32), y.astype(np.float32)
    else:
        rng = np.random.default_rng(0)
        centres = rng.normal(scale=4, size=(50, d))
        X = (centres[rng.integers(0, 50, n)] + rng.normal(size=(n, d))).astype(np.float32)
        y = ((X[:, :5].sum(axis=1) + rng.normal(scale=2, size=n)) > 0).astype(np.float32) if spec["labelled"] else None
    folder.mkdir(parents=True)
    files = []
    for i in range(FILES):
        part = slice(i, None, FILES)
        path = folder / f"part-{i}.pbr"
        path.write_bytes(encode_rows(X[part], None if y is None else y[part]))
        files.append(path)
    return files


PIPE = "--pipe" in sys.argv


def lay_out(work: Path, files: list[Path], n: int, hp: dict) -> list[Path]:
    hosts = host_names(n)
    channels = {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe" if PIPE else "File",
                          "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"}}
    bases = []
    for i, host in enumerate(hosts):
        base = work / f"{n}-hosts" / host
        data = base / ("source" if PIPE else "input/data/train")
        data.mkdir(parents=True)
        for f in files[i::n]:
            os.link(f, data / f.name)
        write_config(base, hosts, host, hp, channels)
        bases.append(base)
    return bases


def feed(bases: list[Path], epochs: int) -> list[subprocess.Popen]:
    """Pipe mode: each host's files into its FIFOs train_0 .. train_<epochs-1>, by a feeder on that host's core."""
    return [subprocess.Popen(["taskset", "-c", str(i), sys.executable, str(ROOT / "local_test" / "pipe_feeder.py"),
                              str(base / "input" / "data"), "train", *map(str, sorted((base / "source").iterdir())),
                              "--epochs", str(epochs)])
            for i, base in enumerate(bases)]


def run(bases: list[Path], port: int, epochs: int = 1) -> tuple[float, str]:
    """Wall time of the whole job (every host's train process tree pinned to core i), and the first host's log."""
    procs = []
    started = time.monotonic()
    feeders = feed(bases, epochs) if PIPE else []
    for i in reversed(range(len(bases))):
        env = cluster_env(bases[i], len(bases), port) if len(bases) > 1 else {**os.environ, "SAGEMAKER_BASE_DIR": str(bases[i])}
        log = open(bases[i] / "train.log", "w")
        procs.append(subprocess.Popen(["taskset", "-c", str(i), sys.executable, str(ROOT / "container" / "train")],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - started
    for f in feeders:
        f.kill()
    text = (bases[0] / "train.log").read_text()
    if any(codes):
        raise SystemExit(f"a host failed ({codes}):\n{text[-4000:]}")
    return wall, text


def breakdown(log: str) -> str:
    timings = json.loads(re.search(r"timings (\{.*\})", log).group(1).replace("'", '"'))
    parts = [f"{k} {v:.1f} s" for k, v in timings.items() if k in ("join", "split", "fit", "evaluate")]
    fit = re.search(r"fit: ([\d.]+) s waiting for the other hosts", log)
    if fit:
        parts.append(f"(of the fit, {fit.group(1)} s waiting for algo-2 after algo-1's own part of each call)")
    return ", ".join(parts)


def auc(log: str) -> float | None:
    m = re.search(r"#quality_metric: host=\S+, test roc_auc_score <score>=(\S+)", log)
    return float(m.group(1)) if m else None


class Echo:
    """The actor of the round benchmark: returns what it is sent."""

    def echo(self, value):
        return value


def _echo(value):
    return value


def round_cost() -> None:
    from byoa.distributed.cluster import ClusterSpec, Leader

    port = 18787
    spec = ClusterSpec(["algo-1", "algo-2"], "algo-1", {"algo-1": "127.0.0.1", "algo-2": "127.0.0.2"}, port, 60)
    follower = subprocess.Popen([sys.executable, "-c", (
        f"import sys; sys.path[:0] = [{str(ROOT / 'container')!r}, {str(Path(__file__).parent)!r}]; "
        "from byoa.distributed.cluster import ClusterSpec, follow; "
        f"follow(ClusterSpec(['algo-1', 'algo-2'], 'algo-2', {{'algo-1': '127.0.0.1', 'algo-2': '127.0.0.2'}}, {port}, 60))")])
    try:
        with Leader(spec) as leader:
            address = leader.workers()["algo-2"]
            actor = leader.client.submit(Echo, workers=[address], actor=True).result()
            for label, value in (("empty", None), ("160 kB", np.zeros((400, 50)))):
                times = {}
                for name, call, n in (("actor call", lambda: actor.echo(value).result(), 300),
                                      ("Dask task", lambda: leader.client.submit(_echo, value, workers=[address], pure=False).result(), 60)):
                    for _ in range(5):
                        call()
                    started = time.perf_counter()
                    for _ in range(n):
                        call()
                    times[name] = (time.perf_counter() - started) / n * 1e3
                print(f"round trip to another host, {label} argument: actor call {times['actor call']:.2f} ms, "
                      f"Dask task {times['Dask task']:.2f} ms ({times['Dask task'] / times['actor call']:.0f}x)")
    finally:
        follower.wait(30)


def main() -> int:
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores")
    chosen = [a for a in sys.argv[1:] if a != "--pipe"] or ["round", *JOBS]
    if "round" in chosen:
        round_cost()
        chosen = [c for c in chosen if c != "round"]
    work = Path(tempfile.mkdtemp(prefix="byoa-bench-cluster-"))
    try:
        for name in chosen:
            spec = JOBS[name]
            files = make_data(spec, work / name / "source")
            size = sum(f.stat().st_size for f in files) / 1e6
            epochs = spec["hp"].get("epochs", 1)
            one, text_one = run(lay_out(work / name, files, 1, spec["hp"]), 0, epochs)
            two, text_two = run(lay_out(work / name, files, 2, spec["hp"]), 18786, epochs)
            ratio, target = one / two, spec.get("target", TARGET)
            print(f"{name} ({spec['rows']:,} rows x {spec['features']}, {size:.0f} MB, {'Pipe' if PIPE else 'File'} mode): "
                  f"1 host {one:.1f} s, 2 hosts {two:.1f} s "
                  f"-> {ratio:.2f}x faster (target >= {target}x: {'met' if ratio >= target else 'NOT met'})")
            if auc(text_one) is not None:
                gap = abs(auc(text_two) - auc(text_one))
                print(f"  test AUC: 1 host {auc(text_one):.4f}, 2 hosts {auc(text_two):.4f}, gap {gap:.4f} "
                      f"(target <= 0.01: {'met' if gap <= 0.01 else 'NOT met'})")
            print(f"  1 host : {breakdown(text_one)}")
            print(f"  2 hosts: {breakdown(text_two)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
