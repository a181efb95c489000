"""``train --metric-definitions [algorithm]``: the ``metric_definitions`` list an Estimator
takes. A bring-your-own image gets no built-in regexes: without these, hyperparameter
tuning parses nothing."""

from __future__ import annotations

import json
import os
import sys

from ..algorithms import ALGORITHMS


def definitions(algorithm: str) -> list[dict]:
    return [d for metric in ALGORITHMS[algorithm].metric_defs for d in metric.definitions()]


def main(argv: list[str]) -> int:
    name = argv[0] if argv else os.environ.get("SAGEMAKER_ALGORITHM", "")
    if name not in ALGORITHMS:
        print(f"usage: train --metric-definitions ALGORITHM (one of: {', '.join(ALGORITHMS)})", file=sys.stderr)
        return 2
    print(json.dumps(definitions(name), indent=2))
    return 0
