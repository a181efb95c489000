"""A channel already held in memory (in-memory algorithms), shaped like a channel: passes cost nothing."""

from __future__ import annotations

from typing import Iterator

from ..data.blocks import Block


class MemoryChannel:
    """A channel read once into memory (in-memory algorithms): further passes cost nothing."""

    def __init__(self, name: str, block: Block, nbytes: int, spec=None):
        self.name, self.block, self.bytes_last_pass, self.spec = name, block, nbytes, spec

    def next_pass(self) -> Iterator[Block]:
        yield self.block

    def read_all(self) -> Block:
        return self.block
