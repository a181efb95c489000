#!/usr/bin/env python3
"""Emulates SageMaker Pipe mode for local runs: streams a channel's files into
FIFOs named <channel>_<epoch>, one epoch after the other.

    pipe_feeder.py DATA_DIR CHANNEL FILE... [--epochs N] [--wait SECONDS]

Each FIFO is created when the previous epoch has been read, as SageMaker does;
the feeder waits (up to --wait seconds) for `train` to open it, writes the
files' bytes, closes it (the reader's EOF) and moves on. It exits when all
epochs are written, when nobody opens the next FIFO in time, or when the
reader closes its end early.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path

CHUNK = 1 << 20


def open_for_writing(path: Path, wait: float) -> int | None:
    """Open the FIFO once a reader has opened it; None if none did within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd


def feed(data_dir: Path, channel: str, files: list[Path], epochs: int, wait: float) -> int:
    for epoch in range(epochs):
        fifo = data_dir / f"{channel}_{epoch}"
        if not fifo.exists():
            os.mkfifo(fifo)
        fd = open_for_writing(fifo, wait)
        if fd is None:
            print(f"pipe_feeder: nobody opened {fifo} within {wait:g} s; stopping", file=sys.stderr)
            return 0
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for path in files:
                    with open(path, "rb") as f:
                        while chunk := f.read(CHUNK):
                            out.write(chunk)
        except BrokenPipeError:
            pass  # the reader stopped early: allowed
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the input/data folder (FIFOs are made here)")
    parser.add_argument("channel")
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a reader per epoch")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return feed(args.data_dir, args.channel, args.files, args.epochs, args.wait)


if __name__ == "__main__":
    sys.exit(main())
