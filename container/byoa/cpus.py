"""How many CPUs this process may really use (affinity and cgroup quota).

Imported before numpy so BLAS/OpenMP pools are sized from it, not from the
host's core count (containers often get a fraction of the host).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def available_cpus() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:
        count = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def limit_threads(count: int | None = None) -> int:
    """Set the BLAS/OpenMP thread variables the user has not set; returns the count."""
    count = count or available_cpus()
    for var in THREAD_VARS:
        os.environ.setdefault(var, str(count))
    return count
