"""``output/failure``: SageMaker shows its first 1024 characters as FailureReason."""

from __future__ import annotations

import logging

from ..paths import Paths

LIMIT = 1024
log = logging.getLogger("byoa.train")


def write_failure(paths: Paths, reason: str, detail: str = "") -> None:
    """One line first (the reason, at most LIMIT characters), then any detail."""
    line = " ".join(reason.split())[:LIMIT]
    log.error("training failed: %s", line)
    if detail:
        log.error("%s", detail)
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.failure.write_text(line + "\n" + (detail + "\n" if detail else ""))
