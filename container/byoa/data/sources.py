"""Where a channel's bytes come from: files (File mode) or FIFOs (Pipe mode).

Each source yields byte chunks of about ``chunk_size``: big enough that the
numpy decoders work on many records per call.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import select
import time
from pathlib import Path
from typing import Iterator

from ..errors import DataError

CHUNK_SIZE = 8 << 20
F_SETPIPE_SZ = 1031


def channel_files(channel_dir: Path) -> list[Path]:
    """All regular files under the channel folder, recursively, sorted; hidden ones skipped."""
    if not channel_dir.is_dir():
        return []
    files = []
    for root, dirs, names in os.walk(channel_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root, n) for n in names if not n.startswith("."))
    return sorted(f for f in files if f.is_file())


def _fill(read, size: int) -> bytes:
    """Read up to ``size`` bytes, fewer only at EOF (pipes return short reads)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = read(view[got:])
        if not n:
            break
        got += n
    del view
    return bytes(buf) if got == size else bytes(buf[:got])


def file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The (decompressed, for ``.gz``) bytes of one file."""
    if path.suffix == ".gz":
        with open(path, "rb") as raw:
            if raw.read(2) != b"\x1f\x8b":
                raise DataError(f"{path} ends in .gz but is not gzip data")
        opener = gzip.open
    else:
        opener = open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def wait_for_path(path: Path, timeout: float) -> None:
    """Pipe mode: the next epoch's FIFO usually exists, but may appear a little later."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DataError(f"Pipe mode: FIFO {path} did not appear within {timeout:g} s")
        time.sleep(0.02)


def fifo_chunks(path: Path, timeout: float, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """One epoch from a FIFO: open it once, wait (bounded) for a writer, read to EOF.

    Opened non-blocking so that waiting for the writer has a timeout; ``poll``
    reports nothing until a writer has attached, so an empty read before that is
    never taken for EOF. Then the descriptor is made blocking and read to EOF.
    """
    wait_for_path(path, timeout)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass  # not a pipe, or the limit is lower: the default size works too
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + timeout
        while not poller.poll(200):
            if time.monotonic() > deadline:
                raise DataError(f"Pipe mode: no writer attached to {path} within {timeout:g} s")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        with os.fdopen(fd, "rb", buffering=0, closefd=True) as f:
            fd = -1
            while chunk := _fill(f.readinto, chunk_size):
                yield chunk
    except OSError as exc:
        if exc.errno == errno.EINTR:
            raise
        raise DataError(f"Pipe mode: cannot read {path}: {exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
