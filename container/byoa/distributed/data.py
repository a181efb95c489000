"""What one host reads: its own channel files or FIFOs, and its share of the records.

``ShardedByS3Key``: each host already holds its own files, so it reads them all.
``FullyReplicated``: every host holds everything, so host i of n keeps the records whose
index in the channel is i modulo n: each record is used once per epoch, and one big file
does not leave a host idle.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..data.blocks import Block, gather


def share(blocks: Iterator[Block], host_index: int, n_hosts: int, distribution: str) -> Iterator[Block]:
    """This host's records of a pass."""
    if n_hosts == 1 or distribution == "ShardedByS3Key":
        yield from blocks
        return
    first = 0
    for block in blocks:
        mine = (np.arange(first, first + len(block)) % n_hosts) == host_index
        first += len(block)
        if mine.all():
            yield block
        elif mine.any():
            yield block.take(mine)


class HostShare:
    """A channel as one host of n sees it: the same passes, only this host's records."""

    def __init__(self, channel, host_index: int, n_hosts: int):
        self.channel, self.host_index, self.n_hosts = channel, host_index, n_hosts

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def spec(self):
        return self.channel.spec

    @property
    def bytes_last_pass(self) -> int:
        return self.channel.bytes_last_pass

    def describe(self) -> str:
        split = self.n_hosts > 1 and self.spec.distribution != "ShardedByS3Key"
        return self.channel.describe() + (f"; this host keeps records i with i % {self.n_hosts} == {self.host_index}" if split else "")

    def next_pass(self) -> Iterator[Block]:
        return share(self.channel.next_pass(), self.host_index, self.n_hosts, self.spec.distribution)

    def read_all(self) -> Block | None:
        return gather(self.next_pass())
