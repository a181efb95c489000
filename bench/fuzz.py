"""The structure-aware fuzzers of tests/test_fuzz.py at full size (issue 13: >= 200k cases per decoder).

Each decoder's fuzzer runs in its own process (two at a time: one per core) with FUZZ_EXAMPLES cases and a
fixed seed, so a failure here reproduces. The test run samples the same strategies (300 cases each).

    python bench/fuzz.py [--cases N] [--seed S] [name ...]     (names: test_fuzz.py's tests without "test_")
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "container"), str(ROOT / "tests")]


def run(name: str, cases: int, seed: int) -> tuple[str, int, float, str]:
    """(name, cases run, seconds, failure or '') for one fuzzer, in a fresh process."""
    import warnings

    from hypothesis import seed as hypothesis_seed

    os.environ["FUZZ_EXAMPLES"] = str(cases)
    warnings.simplefilter("ignore")  # overflow warnings of crafted numbers: expected, and refused downstream
    import fuzzing
    import test_fuzz

    fuzzing.CASES.clear()
    test = hypothesis_seed(seed)(getattr(test_fuzz, f"test_{name}"))
    started = time.perf_counter()
    failure = ""
    try:
        test()
    except BaseException:  # noqa: BLE001 - report hypothesis' minimal example, whatever it raised
        failure = traceback.format_exc(limit=3)[-3000:]
    return name, sum(fuzzing.CASES.values()), time.perf_counter() - started, failure


def main() -> int:
    import test_fuzz

    names = [n[len("test_"):] for n in dir(test_fuzz) if n.startswith("test_")]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("names", nargs="*", default=names)
    args = parser.parse_args()
    if set(args.names) - set(names):
        parser.error(f"unknown fuzzer {sorted(set(args.names) - set(names))}; known: {', '.join(names)}")
    failed = 0
    print(f"{'decoder':<36} {'cases':>9} {'seconds':>8} {'cases/s':>8}  result", flush=True)
    spawn = multiprocessing.get_context("spawn")  # each worker imports test_fuzz afresh, with FUZZ_EXAMPLES set
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=spawn, max_tasks_per_child=1) as pool:
        jobs = [pool.submit(run, name, args.cases, args.seed) for name in args.names]
        for job in as_completed(jobs):
            name, cases, seconds, failure = job.result()
            failed += bool(failure)
            print(f"{name:<36} {cases:>9,} {seconds:>8.0f} {cases / seconds:>8.0f}  {'FAILED' if failure else 'ok'}", flush=True)
            if failure:
                print(failure, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
