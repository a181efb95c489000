"""What one host's worker reads: its own channel files or FIFOs, and its share of the records.

``ShardedByS3Key``: each host already holds its own files, so it reads them all.
``FullyReplicated``: every host holds everything, so host i of n keeps the records whose
index in the channel is i modulo n: each record is used once per epoch, and one big file
does not leave a host idle.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from ..data.blocks import Block
from ..data.channels import Channel, ChannelSpec
from ..paths import Paths


def host_channel(name: str, epoch: int) -> Channel:
    """This host's channel, positioned at ``epoch`` (Pipe mode opens FIFO ``<name>_<epoch>``)."""
    paths = Paths.from_env()
    config = paths.read_json("inputdataconfig.json")
    channel = Channel(ChannelSpec.from_config(name, config[name]), paths.data, float(os.environ.get("TRAIN_PIPE_TIMEOUT", "600")))
    channel.passes_done = epoch
    return channel


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
