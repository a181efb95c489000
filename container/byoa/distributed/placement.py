"""Which records a host uses: data placement across the job's hosts.

``ShardedByS3Key``: each host holds its own files, so it uses all of its records.
``FullyReplicated``: every host holds everything, so host i of n keeps the i-th of every n
records of each role (train, validation, test), counted in the order the records arrive.
Each record is then used by exactly one host per pass, and the hosts' j-th local
mini-batches together are exactly the single host's j-th mini-batch.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..data.blocks import Block

REPLICATED = "FullyReplicated"


class Dealer:
    """One pass's dealing of records to host ``index`` of ``count``, per role."""

    def __init__(self, index: int, count: int, distribution: str):
        self.index, self.count = index, count
        self.active = count > 1 and distribution == REPLICATED
        self.next: dict = defaultdict(int)  # role -> index of its next record in this pass

    def mask(self, n: int, role=None) -> np.ndarray | None:
        """Which of the next ``n`` records of ``role`` are this host's; None: all of them."""
        if not self.active:
            return None
        first = self.next[role]
        self.next[role] = first + n
        return (np.arange(first, first + n) % self.count) == self.index

    def share(self, block: Block, role=None) -> Block | None:
        """This host's records of ``block`` (all of them unless replicated data is dealt); None if none."""
        mine = self.mask(len(block), role)
        if mine is None or mine.all():
            return block
        return block.take(mine) if mine.any() else None

    def describe(self) -> str:
        return f"; this host keeps the i-th of every {self.count} records of each role, i = {self.index}" if self.active else ""
