"""Pipe mode end to end: container/train reading a real FIFO fed a RecordIO stream generated on the fly.

Targets (issue 2): kmeans (k=10, mini_batch_size=5000) and linear-learner (binary_classifier,
mini_batch_size=1000) on 50 float32 features: >= 200 MB/s through training, peak RSS <= 1 GB,
and peak RSS the same within 20% for a 1 GB and a 4 GB stream. Baseline in the same run: a
Python reader draining the same generated stream from a FIFO (the ceiling of the pipe itself).
Issue 11: the bytes each job streams, next to the channel's size: a one-epoch job opens one FIFO
(the writer offers one more, and counts whether it was opened).

    python bench/pipe.py [--train PATH] [GB ...]       (default: 1 4; --train: another checkout's container/train)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))

from byoa.data.protobuf_codec import encode_rows  # noqa: E402

FEATURES = 50
CHUNK_ROWS = 20_000
RECORD_BYTES = len(encode_rows(np.zeros((1, FEATURES), np.float32), np.zeros(1, np.float32)))


def _feature_word() -> int:
    """Where the feature values start in an encoded record, in 4-byte words (the layout is fixed for 50 features)."""
    marker = np.arange(1, FEATURES + 1, dtype=np.float32)
    record = encode_rows(marker[None, :], np.zeros(1, np.float32))
    offset = record.index(marker.tobytes())
    assert offset % 4 == 0, "feature values must be 4-byte aligned in the record for the in-place shift"
    return offset // 4


FEATURE_WORD = _feature_word()


def records_for(gigabytes: float) -> int:
    return int(gigabytes * 1e9) // RECORD_BYTES


def writer(fifo_dir: Path, channel: str, rows: int, epochs: int, stats: Path | None = None) -> None:
    """Child process: writes ``rows`` fresh records per epoch into <channel>_<epoch> FIFOs, and appends
    each epoch's byte count to ``stats`` once that FIFO has been read.

    Records are never repeated: a pool of encoded random chunks is reused, and the feature
    values inside the encoded bytes are shifted in place before every write.
    """
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(8):
        X = rng.random((CHUNK_ROWS, FEATURES), dtype=np.float32)
        encoded = np.frombuffer(bytearray(encode_rows(X, (X[:, 0] > X[:, 1]).astype(np.float32))), np.uint8)
        pool.append(encoded.reshape(CHUNK_ROWS, -1))
    for epoch in range(epochs):
        path = fifo_dir / f"{channel}_{epoch}"
        os.mkfifo(path)
        written = 0
        with open(path, "wb", buffering=0) as out:
            done, i = 0, 0
            while done < rows:
                n = min(CHUNK_ROWS, rows - done)
                chunk = pool[i % len(pool)]
                values = chunk.view(np.float32)[:, FEATURE_WORD : FEATURE_WORD + FEATURES]
                values += np.float32(1e-3)
                out.write(chunk[:n].data)
                written += chunk[:n].nbytes
                done += n
                i += 1
        if stats is not None:
            with open(stats, "a") as f:
                f.write(f"{epoch} {written}\n")


def start_writer(fifo_dir: Path, channel: str, rows: int, epochs: int, stats: Path | None = None) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import pipe; "
            f"pipe.writer(pipe.Path({str(fifo_dir)!r}), 'train', {rows}, {epochs}, {str(stats) if stats else None!r})")
    return subprocess.Popen([sys.executable, "-c", code])


def peak_rss_while(proc: subprocess.Popen) -> int:
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.1)
    return peak


def drain_baseline(gigabytes: float) -> float:
    """MB/s of a plain Python reader draining the same generated stream: the pipe's own ceiling."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = records_for(gigabytes)
        w = start_writer(Path(tmp), "train", rows, 1)
        fifo = Path(tmp) / "train_0"
        while not fifo.exists():
            time.sleep(0.01)
        started, total = time.monotonic(), 0
        with open(fifo, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
        elapsed = time.monotonic() - started
        w.wait()
    return total / 1e6 / elapsed


def run_train(algorithm_hp: dict, gigabytes: float, train: Path) -> dict:
    rows = records_for(gigabytes)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "input" / "config").mkdir(parents=True)
        (base / "input" / "data").mkdir(parents=True)
        (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in algorithm_hp.items()}))
        (base / "input" / "config" / "inputdataconfig.json").write_text(
            json.dumps({"train": {"TrainingInputMode": "Pipe", "ContentType": "application/x-recordio-protobuf"}})
        )
        stats = base / "streamed"
        w = start_writer(base / "input" / "data", "train", rows, 2, stats)  # one FIFO more than one epoch needs
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "TRAIN_PIPE_TIMEOUT": "600"}
        started = time.monotonic()
        proc = subprocess.Popen([str(train)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = peak_rss_while(proc)
        out, err = proc.communicate()
        wall = time.monotonic() - started
        w.kill()
        if proc.returncode != 0:
            raise SystemExit(f"train failed:\n{err[-3000:]}")
        streamed = [int(line.split()[1]) for line in stats.read_text().splitlines()] if stats.exists() else []
    # The epoch line counts the records trained on (the held-out test and validation records are
    # read, hashed and routed too) and the bytes read from the FIFO.
    m = re.search(r"epoch 1/1: (\d+) records, ([\d.]+) MB in ([\d.]+) s", err)
    trained, megabytes, seconds = int(m.group(1)), float(m.group(2)), float(m.group(3))
    assert abs(megabytes * 1e6 / RECORD_BYTES - rows) < rows * 0.001, f"read {megabytes} MB, expected {rows} records"
    return {"records": rows, "trained": trained, "mb_per_s": megabytes / seconds, "peak_rss_mb": peak / 1e6, "passes": len(streamed),
            "streamed_gb": sum(streamed) / 1e9, "channel_gb": rows * RECORD_BYTES / 1e9, "wall": wall}


def main():
    args = sys.argv[1:]
    train = ROOT / "container" / "train"
    if args[:1] == ["--train"]:
        train, args = Path(args[1]), args[2:]
    sizes = [float(a) for a in args] or [1.0, 4.0]
    ceiling = drain_baseline(min(sizes))
    print(f"baseline: a Python reader drains the generated stream at {ceiling:,.0f} MB/s")
    only = os.environ.get("BENCH_ONLY")  # one case by name
    cases = {
        "kmeans": {"algorithm": "kmeans", "k": 10, "feature_dim": FEATURES, "mini_batch_size": 5000, "epochs": 1},
        "linear-learner": {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": 1000, "epochs": 1},
        "linear-learner num_models=1": {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": 1000,
                                        "epochs": 1, "num_models": 1},
    }
    for name, hp in cases.items():
        if only and name != only:
            continue
        results = {gb: run_train(hp, gb, train) for gb in sizes}
        for gb, r in results.items():
            print(
                f"{name} {gb:g} GB: {r['records']:,} records ({r['trained']:,} trained on), {r['mb_per_s']:,.0f} MB/s "
                f"({r['mb_per_s'] / ceiling:.2f} of the drain baseline; target >= 200 MB/s: "
                f"{'MET' if r['mb_per_s'] >= 200 else 'NOT MET'}), peak RSS {r['peak_rss_mb']:,.0f} MB "
                f"(target <= 1000 MB: {'MET' if r['peak_rss_mb'] <= 1000 else 'NOT MET'}); streamed {r['streamed_gb']:.2f} GB "
                f"in {r['passes']} pass{'es' * (r['passes'] != 1)} of the {r['channel_gb']:.2f} GB channel "
                f"(target: once: {'MET' if r['passes'] == 1 else 'NOT MET'}); job {r['wall']:.1f} s"
            )
        if len(sizes) > 1:
            small, large = results[min(sizes)]["peak_rss_mb"], results[max(sizes)]["peak_rss_mb"]
            growth = large / small - 1
            print(f"{name}: peak RSS {max(sizes):g} GB vs {min(sizes):g} GB: {growth:+.0%} (target within 20%: {'MET' if abs(growth) <= 0.2 else 'NOT MET'})")


if __name__ == "__main__":
    main()
