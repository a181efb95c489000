"""Factorization machines: quality on data drawn from a known FM, and Pipe-mode throughput on one core.

Quality (issue 15): 200k records, 1,000 features, 10 non-zeros each, 4 factors (local_test/synthetic.py),
80/20 split, the 20% as the test channel. Targets: test ROC AUC within 0.03 of the generating model's, and
clearly above the linear learner's on the same data. Also shown, from the same split in the same run:
scikit-learn's LogisticRegression (the reference a linear model can reach) and FM with the built-in's
default rates (1 epoch, factors_lr 1e-4), which learns little on this data.

Throughput (issue 15): >= 50,000 records/s end to end (decode + train) in Pipe mode, 100 non-zeros per
record, num_factors=16, mini_batch_size=1000, on one core (taskset, one BLAS thread), at 10k, 100k and 1M features. A small test
channel is given, so every record of the stream is trained on; the job's log gives the fit phase's time; the baseline, in the same run, is the linear learner
(num_models=1) on the same stream, and the decoder alone on the same bytes.

    python bench/fm.py [quality] [throughput]
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
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))
sys.path.insert(0, str(ROOT / "local_test"))

from byoa.data.protobuf_codec import decode_bytes, encode_rows  # noqa: E402
from synthetic import factorization_machine_data  # noqa: E402

TRAIN = ROOT / "container" / "train"
FEEDER = ROOT / "local_test" / "pipe_feeder.py"
PROTOBUF = "application/x-recordio-protobuf"
FM = {"algorithm": "factorization-machines", "predictor_type": "binary_classifier"}


def run_job(work: Path, hp: dict, channels: dict, mode: str = "File", one_core: bool = False) -> str:
    """stdout + stderr of one job through container/train; ``channels``: name -> RecordIO bytes."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "input" / "config").mkdir(parents=True)
    data = work / "input" / "data"
    data.mkdir()
    (work / "input" / "config" / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hp.items()}))
    (work / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {name: {"ContentType": PROTOBUF, "TrainingInputMode": mode} for name in channels}))
    feeders = []
    for name, payload in channels.items():
        if mode == "File":
            (data / name).mkdir()
            (data / name / "part.pbr").write_bytes(payload)
        else:
            source = work / f"{name}.pbr"
            source.write_bytes(payload)
            epochs = int(hp.get("epochs", 1)) if name == "train" else 1
            feeders.append(subprocess.Popen([sys.executable, str(FEEDER), str(data), name, str(source), "--epochs", str(epochs)]))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(work), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [str(TRAIN)]
    if one_core:
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        command = ["taskset", "-c", "0", *command]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    for f in feeders:
        f.wait(60)
    if proc.returncode:
        raise SystemExit(f"job failed: {(work / 'output' / 'failure').read_text()}")
    return proc.stdout + proc.stderr


def metric(log: str, channel: str, name: str) -> float:
    return float(re.search(rf"#quality_metric: host=\S+, {channel} {name} <\w+>=(\S+)", log).group(1))


def fit_seconds(log: str) -> float:
    return float(re.search(r"phase fit took ([\d.]+) s", log).group(1))


def quality(work: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X, y, p = factorization_machine_data()
    cut = int(0.8 * len(y))
    channels = {"train": encode_rows(X[:cut], y[:cut]), "test": encode_rows(X[cut:], y[cut:])}
    generating = roc_auc_score(y[cut:], p[cut:])
    reference = LogisticRegression(max_iter=500).fit(X[:cut], y[:cut])
    rows = {"generating model": generating,
            "scikit-learn LogisticRegression": roc_auc_score(y[cut:], reference.predict_proba(X[cut:])[:, 1])}
    jobs = {
        "factorization-machines (epochs=5, linear_lr=factors_lr=0.01)": {**FM, "feature_dim": 1000, "num_factors": 4, "epochs": 5,
                                                                         "linear_lr": 0.01, "factors_lr": 0.01},
        "factorization-machines (the built-in's defaults)": {**FM, "feature_dim": 1000, "num_factors": 4},
        "linear-learner (defaults)": {"algorithm": "linear-learner", "predictor_type": "binary_classifier"},
    }
    for name, hp in jobs.items():
        started = time.perf_counter()
        log = run_job(work / "quality", hp, channels)
        rows[name] = metric(log, "test", "roc_auc_score")
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
    print("test ROC AUC, 200k records x 1,000 features, 10 non-zeros, 4 factors:")
    for name, auc in rows.items():
        print(f"  {name:62s} {auc:.4f}")
    fm = rows["factorization-machines (epochs=5, linear_lr=factors_lr=0.01)"]
    print(f"  FM - generating = {fm - generating:+.4f} (target >= -0.03: {'MET' if fm >= generating - 0.03 else 'NOT MET'}); "
          f"FM - linear learner = {fm - rows['linear-learner (defaults)']:+.4f}")


def sparse_stream(n: int, d: int, nnz: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.choice(d, size=(n, nnz)), axis=1)  # keys ascending within a record, as the SDK writes them
    X = sp.csr_matrix((rng.random(n * nnz, dtype=np.float32), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, d))
    X.sum_duplicates()
    return encode_rows(X, (rng.random(n) < 0.3).astype(np.float32))


def throughput(work: Path, n: int = 400_000, nnz: int = 100) -> None:
    """The test channel is given (a small one), so every record of the train stream is trained on."""
    for d in (10_000, 100_000, 1_000_000):
        stream, test = sparse_stream(n, d, nnz), sparse_stream(10_000, d, nnz, seed=2)
        started = time.perf_counter()
        decoded = sum(b.X.shape[0] for b in decode_bytes(stream))
        decode_rate = decoded / (time.perf_counter() - started)
        rates = {}
        for name, hp in (("factorization-machines", {**FM, "feature_dim": d, "num_factors": 16, "mini_batch_size": 1000}),
                         ("linear-learner (num_models=1)", {"algorithm": "linear-learner", "predictor_type": "binary_classifier",
                                                            "feature_dim": d, "mini_batch_size": 1000, "num_models": 1, "epochs": 1})):
            log = run_job(work / "throughput", hp, {"train": stream, "test": test}, mode="Pipe", one_core=True)
            rates[name] = n / fit_seconds(log)
        fm = rates["factorization-machines"]
        print(f"Pipe mode, one core, {n:,} records x {d:,} features, {nnz} non-zeros ({len(stream) / 1e6:.0f} MB), num_factors=16:")
        print(f"  factorization-machines: {fm:,.0f} records/s end to end (fit phase); target >= 50,000: "
              f"{'MET' if fm >= 50_000 else 'NOT MET'}")
        print(f"  linear-learner, same stream: {rates['linear-learner (num_models=1)']:,.0f} records/s "
              f"(FM / linear learner = {fm / rates['linear-learner (num_models=1)']:.2f}x)")
        print(f"  decoder alone, same bytes: {decode_rate:,.0f} records/s ({decode_rate * len(stream) / n / 1e6:.0f} MB/s); "
              f"FM / decode = {fm / decode_rate:.2f}")


def main() -> int:
    chosen = sys.argv[1:] or ["quality", "throughput"]
    work = Path(tempfile.mkdtemp(prefix="byoa-bench-fm-"))
    try:
        if "quality" in chosen:
            quality(work)
        if "throughput" in chosen:
            throughput(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
