"""Per-epoch state of an algorithm's leader, resumed when the job starts again (spot, StopTrainingJob).

One-host jobs only: a multi-host job restarts from the beginning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..model_io import ArtifactWriter, ModelFormatError, load

log = logging.getLogger("byoa.train")


@dataclass
class Checkpoints:
    folder: Path
    fingerprint: str  # the job's settings: a checkpoint of other settings is not resumed

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
