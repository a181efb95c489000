"""Channel-shaped views of data roles, so algorithms fit on "the training part" unchanged.

An algorithm only calls ``next_pass()``, ``read_all()``, ``name`` and
``bytes_last_pass``; these classes provide them for a role of a channel and for
a channel already held in memory.
"""

from __future__ import annotations

from typing import Callable, Iterator

from ..data.blocks import Block, gather
from ..stats.split import TRAIN, VALIDATION, Split


class MemoryChannel:
    """A channel read once into memory (in-memory algorithms): further passes cost nothing."""

    def __init__(self, name: str, block: Block, nbytes: int):
        self.name, self.block, self.bytes_last_pass = name, block, nbytes

    def next_pass(self) -> Iterator[Block]:
        yield self.block

    def read_all(self) -> Block:
        return self.block


class RoleView:
    """The records of one role of a channel. Rows of the validation role seen on the way
    are handed to ``subscribers`` (progressive validation of streaming algorithms)."""

    def __init__(self, channel, split: Split, role: int = TRAIN):
        self.channel, self.split, self.role = channel, split, role
        self.subscribers: list[Callable[[Block], None]] = []

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def bytes_last_pass(self) -> int:
        return self.channel.bytes_last_pass

    def next_pass(self) -> Iterator[Block]:
        first = 0
        for block in self.channel.next_pass():
            roles = self.split.roles(block, first)
            first += len(block)
            if self.subscribers:
                side = roles == VALIDATION
                if side.any():
                    held = block.take(side)
                    for notify in self.subscribers:
                        notify(held)
            keep = roles == self.role
            if keep.all():
                yield block
            elif keep.any():
                yield block.take(keep)

    def read_all(self) -> Block | None:
        return gather(self.next_pass())


class HeldOutStream:
    """The validation slice of a streaming training pass: its rows arrive while the
    training rows stream (no second pass, nothing kept in memory)."""

    name = "validation"

    def __init__(self, view: RoleView):
        self.view = view

    def subscribe(self, notify: Callable[[Block], None]) -> None:
        self.view.subscribers.append(notify)
