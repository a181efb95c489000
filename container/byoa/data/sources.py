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

from ..errors import ConfigError, DataError, shown
from .limits import GZIP_FLOOR, gzip_ratio

CHUNK_SIZE = 8 << 20
F_SETPIPE_SZ = 1031


MAX_DEPTH = 32  # folders nested deeper than this in a channel are a mistake, not data


def channel_files(channel_dir: Path, data_root: Path) -> list[Path]:
    """All regular files under the channel folder, recursively, sorted; hidden ones skipped.

    Links are followed, but each real folder and file is read once (by device and inode), so a link back to a
    parent neither repeats the data nor loops. What a link reaches must lie inside the channel's folder or
    elsewhere under the job's data folder (``data_root``): a channel never reads the rest of the machine.
    """
    if not channel_dir.is_dir():
        return []
    real, root = channel_dir.resolve(), data_root.resolve()
    if root.is_relative_to(real):
        raise ConfigError(f"channel folder {shown(channel_dir)} is {shown(real)}, which holds the whole data folder {shown(root)}: "
                          "it cannot be one channel")
    seen, files = set(), []
    stack = [(channel_dir, 0)]
    while stack:
        folder, depth = stack.pop()
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        if depth > MAX_DEPTH:
            raise DataError(f"{shown(folder)}: folders nested more than {MAX_DEPTH} deep in a channel")
        for entry in sorted(os.scandir(folder), key=lambda e: e.name, reverse=True):
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            target = path.resolve()
            if not (target.is_relative_to(real) or target.is_relative_to(root)):
                raise ConfigError(f"{shown(path)} leads to {shown(target)}, outside the channel's folder {shown(channel_dir)} "
                                  f"and the data folder {shown(root)}: a channel reads only its own files")
            if entry.is_dir():
                stack.append((path, depth + 1))
            elif entry.is_file():
                info = entry.stat()
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    files.append(path)
    return sorted(files)


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


def file_chunks(path: Path, chunk_size: int = CHUNK_SIZE, gzipped: bool = False) -> Iterator[bytes]:
    """The (decompressed, for ``.gz`` or ``gzipped``) bytes of one file; gzip data that expands past
    ``limits.gzip_ratio`` fails at once."""
    try:
        with open(path, "rb") as raw:
            if path.suffix != ".gz" and not gzipped:
                while chunk := raw.read(chunk_size):
                    yield chunk
                return
            if raw.read(2) != b"\x1f\x8b":
                why = "ends in .gz" if path.suffix == ".gz" else "is in a channel with CompressionType=Gzip"
                raise DataError(f"{shown(path)} {why} but is not gzip data")
            raw.seek(0)
            ratio, out = gzip_ratio(), 0
            with gzip.GzipFile(fileobj=raw) as f:
                while chunk := f.read(chunk_size):
                    out += len(chunk)
                    if out > GZIP_FLOOR and out > ratio * raw.tell():
                        raise DataError(f"{shown(path)} expands more than {ratio:g} times ({raw.tell():,} compressed bytes gave "
                                        f"{out:,}): a damaged or crafted archive? (the limit is TRAIN_MAX_GZIP_RATIO)")
                    yield chunk
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {shown(path)}: {exc}") from None


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
