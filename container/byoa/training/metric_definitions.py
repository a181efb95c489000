"""``train --metric-definitions [algorithm]``: the ``metric_definitions`` list an Estimator
takes. A bring-your-own image gets no built-in regexes: without these, hyperparameter
tuning parses nothing."""

from __future__ import annotations

import json
import os
import sys

from ..algorithms import ALGORITHMS

LIMIT = 40  # SageMaker takes at most this many metric definitions in a training job, tuning job or listing


def ranked(names: list[str]) -> list[dict]:
    """Every metric definition of these algorithms, most useful first: each tuning objective's metric on validation
    and test, then every metric on test, on validation, on train."""
    defs = [d for name in names for d in ALGORITHMS[name].metric_defs]
    objectives = {o.split(":", 1)[1] for name in names for o in ALGORITHMS[name].objectives.values()}
    order = [(c, m) for m in defs if m.name in objectives for c in ("validation", "test")]
    order += [(c, m) for c in ("test", "validation", "train") for m in defs]
    seen, out = set(), []
    for channel, metric in order:
        if channel in metric.channels and (channel, metric.name) not in seen:
            seen.add((channel, metric.name))
            out.append({"Name": f"{channel}:{metric.name}", "Regex": metric.regex(channel)})
    return out


def definitions(names: list[str]) -> list[dict]:
    """The definitions a job or listing carries: the ``LIMIT`` most useful (``ranked``)."""
    return ranked(names)[:LIMIT]


def main(argv: list[str]) -> int:
    name = argv[0] if argv else os.environ.get("SAGEMAKER_ALGORITHM", "")
    if name not in ALGORITHMS:
        print(f"usage: train --metric-definitions ALGORITHM (one of: {', '.join(ALGORITHMS)})", file=sys.stderr)
        return 2
    print(json.dumps(definitions([name]), indent=2))
    return 0
