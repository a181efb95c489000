"""Hostile channel files, up to 2 GB, through the real container/train: each must fail with one clear line in
output/failure within 30 s, at a peak RSS of at most 512 MB (issue 13).

Each file goes to a streaming algorithm (k-means: mini-batches) and an in-memory one (decision-tree: gathers
its training records). Peak RSS is the largest resident size of the train process and its descendants, sampled
every 20 ms, and the kernel's own maximum for the train process (wait4), whichever is larger.

    python bench/hostile.py [--gb 2] [case ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))

from byoa.data import recordio  # noqa: E402
from byoa.data.protobuf_codec import encode_rows  # noqa: E402

TRAIN = ROOT / "container" / "train"
CSV, PROTOBUF, LIBSVM = "text/csv", "application/x-recordio-protobuf", "text/libsvm"
TARGET_MB, TARGET_S = 512, 30
ALGORITHMS = {
    "kmeans (streaming)": {"algorithm": "kmeans", "k": "3", "feature_dim": "4"},
    "decision-tree (in memory)": {"algorithm": "decision-tree"},
}


def _repeat(path: Path, block: bytes, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)


def no_newline(path: Path, size: int) -> tuple[str, str]:
    _repeat(path / "part.csv", b"1.5," * (1 << 22), size)
    return CSV, f"{size / 1e9:.1f} GB of '1.5,' without a line end"


def nul_bytes(path: Path, size: int) -> tuple[str, str]:
    with open(path / "part.csv", "wb") as f:
        f.truncate(size)  # a sparse file: reads give NUL bytes
    return CSV, f"{size / 1e9:.1f} GB of NUL bytes"


def gzip_bomb(path: Path, size: int) -> tuple[str, str]:
    """Members of 64 MB of zeros, one compressed copy repeated: a few MB that expand to 10x ``size``."""
    member = gzip.compress(bytes(64 << 20), compresslevel=9)
    count = 10 * size // (64 << 20)
    with open(path / "part.csv.gz", "wb") as f:
        for _ in range(count):
            f.write(member)
    return CSV, f"{count * len(member) / 1e6:.0f} MB .csv.gz expanding to {count * 64 / 1024:.0f} GB of NUL bytes"


def gzip_no_newline(path: Path, size: int) -> tuple[str, str]:
    """Random digits and commas without a line end, gzipped: it expands only about 2x, so the line limit must hold."""
    digits = np.random.default_rng(0).integers(0, 11, 16 << 20).astype(np.uint8)
    member = gzip.compress(np.where(digits == 10, ord(","), digits + ord("0")).astype(np.uint8).tobytes(), compresslevel=1)
    with open(path / "part.csv.gz", "wb") as f:
        for _ in range(size // (16 << 20)):
            f.write(member)
    return CSV, f"{(path / 'part.csv.gz').stat().st_size / 1e9:.1f} GB .csv.gz of {size / 1e9:.1f} GB of digits without a line end"


def recordio_length_claim(path: Path, size: int) -> tuple[str, str]:
    """A good record, then a header claiming 2**29 - 1 bytes (the most RecordIO can say), then ``size`` of junk."""
    good = encode_rows(np.ones((4, 4), np.float32), np.zeros(4, np.float32))
    with open(path / "part.pbr", "wb") as f:
        f.write(good + struct.pack("<II", recordio.MAGIC, (1 << 29) - 1))
        f.truncate(size)
    return PROTOBUF, f"{size / 1e9:.1f} GB RecordIO: a record claiming {((1 << 29) - 1) / 1e6:.0f} MB"


def recordio_multipart_claims(path: Path, size: int) -> tuple[str, str]:
    """One record split into parts (cflag 1, 2, 2...) that never ends: its parts add up past any record size."""
    part = bytes(16 << 20)
    header = struct.pack("<II", recordio.MAGIC, (1 << 29) | len(part))
    middle = struct.pack("<II", recordio.MAGIC, (2 << 29) | len(part))
    with open(path / "part.pbr", "wb") as f:
        f.write(header + part)
        for _ in range(size // len(part) - 1):
            f.write(middle + part)
    return PROTOBUF, f"{size / 1e9:.1f} GB RecordIO: one record in 16 MB parts that never ends"


def recordio_widest_sparse(path: Path, size: int) -> tuple[str, str]:
    """Valid sparse records whose shape claims 2**31 - 1 features (the most a record may): 1,000 records."""
    X = sp.csr_matrix((np.ones(1000, np.float32), (np.arange(1000), np.zeros(1000, np.int64))), shape=(1000, 2**31 - 1))
    (path / "part.pbr").write_bytes(encode_rows(X, np.arange(1000, dtype=np.float32) % 2))
    return PROTOBUF, "1,000 sparse records of 2**31-1 features"


def libsvm_no_newline(path: Path, size: int) -> tuple[str, str]:
    _repeat(path / "part.libsvm", b"1 0:1.5" + b" 1:1.5" * (1 << 20), size)
    return LIBSVM, f"{size / 1e9:.1f} GB of libsvm items without a line end"


def libsvm_widest_index(path: Path, size: int) -> tuple[str, str]:
    """Valid libsvm lines whose index is the largest a record may have (2**31 - 2): 1,000 lines."""
    (path / "part.libsvm").write_bytes(b"".join(b"%d 0:1 2147483646:1\n" % (i % 2) for i in range(1000)))
    return LIBSVM, "1,000 libsvm lines reaching index 2**31-2"


CASES = {f.__name__.replace("_", "-"): f for f in (no_newline, nul_bytes, gzip_bomb, gzip_no_newline, recordio_length_claim,
                                                     recordio_multipart_claims, recordio_widest_sparse, libsvm_no_newline,
                                                     libsvm_widest_index)}


def prepare(case: str, size: int, work: Path) -> tuple[Path, str]:
    """A fake /opt/ml whose train channel holds the case's file: (its root, what the file is)."""
    base = work / "opt_ml"
    shutil.rmtree(base, ignore_errors=True)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data" / "train").mkdir(parents=True)
    content_type, what = CASES[case](base / "input" / "data" / "train", size)
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"ContentType": content_type, "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}}))
    return base, what


def run(base: Path, algorithm: dict) -> dict:
    shutil.rmtree(base / "output", ignore_errors=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(algorithm))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.monotonic()
    proc = subprocess.Popen([str(TRAIN)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree, peak = psutil.Process(proc.pid), 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rc, peak = os.waitstatus_to_exitcode(status), max(peak, usage.ru_maxrss * 1024)
            break
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)]))
        except psutil.Error:
            pass
        if time.monotonic() - started > 300:
            proc.kill()
        time.sleep(0.02)
    seconds = time.monotonic() - started
    failure = base / "output" / "failure"
    line = failure.read_text() if failure.exists() else ""
    return {"rc": rc, "seconds": seconds, "peak_mb": peak / 2**20,
            "failure": line.strip(), "one_line": line.count("\n") <= 1 and bool(line.strip())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="size of the big files (default 2)")
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    size = int(args.gb * 1e9) // (16 << 20) * (16 << 20)
    work = Path(tempfile.mkdtemp(prefix="byoa-hostile-"))
    met = True
    print("| file | algorithm | exit | seconds | peak RSS MB | failure line |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for case in args.cases:
            base, what = prepare(case, size, work)
            for name, algorithm in ALGORITHMS.items():
                r = run(base, algorithm)
                ok = r["rc"] not in (0, None) and r["one_line"] and r["seconds"] <= TARGET_S and r["peak_mb"] <= TARGET_MB
                met &= ok
                print(f"| {what} | {name} | {r['rc']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                      f"{r['failure'][:150]}{'' if ok else ' **target not met**'} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntarget (every case: one failure line, <= {TARGET_S} s, peak RSS <= {TARGET_MB} MB): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
