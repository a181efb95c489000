"""Per-epoch state of an algorithm's leader, resumed when the job starts again (spot, StopTrainingJob).

One-host jobs only: a multi-host job restarts from the beginning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..model_io import ArtifactWriter, ModelFormatError, load

log = logging.getLogger("byoa.train")

STATE_FORMAT = 2  # what the algorithms' ``state()`` holds; a checkpoint of another format is not resumed


@dataclass
class Checkpoints:
    folder: Path
    fingerprint: str  # the job's settings: a checkpoint of other settings is not resumed

    @classmethod
    def for_job(cls, folder: Path, algorithm: str, hp: dict, channels: dict) -> "Checkpoints":
        """Checkpoints fingerprinted by what the state depends on: algorithm, hyperparameters (but ``epochs``: a job may be
        resumed with more), the channels' content types and the state format of this image."""
        stable = {k: v for k, v in hp.items() if k != "epochs"}
        content = {n: str(c.spec.content_type) for n, c in channels.items()}
        blob = json.dumps([STATE_FORMAT, algorithm, stable, content], sort_keys=True, default=str)
        return cls(folder, hashlib.sha256(blob.encode()).hexdigest()[:16])

    def save(self, algo, epoch: int) -> None:
        arrays, meta = algo.state()
        ArtifactWriter(self.folder).save(algo.name, arrays, {"epoch": epoch, "fingerprint": self.fingerprint, **meta})

    def restore(self, algo) -> int | None:
        """The epoch of the checkpoint loaded into ``algo``, or None."""
        try:
            manifest, arrays = load(self.folder)
        except ModelFormatError:
            return None
        meta = manifest["meta"]
        if manifest["algorithm"] != algo.name or meta.get("fingerprint") != self.fingerprint:
            log.warning("ignoring the checkpoint in %s: it is from a job with other hyperparameters", self.folder)
            return None
        algo.load_state(arrays, meta)
        return int(meta["epoch"])
