"""RecordIO framing (dmlc-core), the container format of SageMaker's protobuf data.

Each record: uint32 magic, uint32 lrec (low 29 bits length, top 3 bits
continuation flag), payload, zero padding to a multiple of 4 bytes. This module
owns the framing, fast paths included: decoders above it only see payloads.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

import numpy as np

from ..errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
HEADER = struct.Struct("<II")


def padded(length: int) -> int:
    return (length + 3) & ~3


def encode(payload: bytes) -> bytes:
    """One whole record (flag 0)."""
    if len(payload) > LENGTH_MASK:
        raise ValueError("RecordIO payloads must be smaller than 2**29 bytes")
    return b"".join((HEADER.pack(MAGIC, len(payload)), payload, b"\0" * (padded(len(payload)) - len(payload))))


def encode_all(payloads: Iterable[bytes]) -> bytes:
    return b"".join(encode(p) for p in payloads)


class Framer:
    """Reads record headers and joins continuation parts (dmlc's rule: parts are
    joined with the 4 magic bytes between them).

    ``where`` names the source in error messages; offsets passed in are the
    absolute byte offset of the buffer's first byte in that source.
    """

    def __init__(self, where: str, max_length: int | None = None):
        """``max_length``: the largest record (parts joined) a reader accepts; None: the format's own bound (512 MB)."""
        self.where = where
        self.max_length = max_length
        self._parts: list[bytes] = []
        self._joined = 0
        self._part_start = 0

    def header(self, buf, pos: int, offset: int) -> tuple[int, int, int] | None:
        """(payload length, flag, end of record) or None if the record is not all in ``buf``."""
        if pos + 8 > len(buf):
            return None
        magic, lrec = HEADER.unpack_from(buf, pos)
        if magic != MAGIC:
            raise DataError(
                f"corrupt RecordIO: no record starts at byte {offset + pos} of {self.where} (its first 4 bytes are not the "
                f"magic number 0x{MAGIC:08X}; is it RecordIO-protobuf? otherwise set the channel's ContentType)"
            )
        length = lrec & LENGTH_MASK
        if self.max_length is not None and self._joined + length > self.max_length:
            raise DataError(f"the RecordIO record at byte {offset + pos} of {self.where} claims {self._joined + length:,} bytes, more "
                            f"than {self.max_length / 1e6:g} MB (the limit is TRAIN_MAX_RECORD_MB): damaged, or not RecordIO?")
        end = pos + 8 + padded(length)
        if end > len(buf):
            return None
        return length, lrec >> 29, end

    @property
    def in_multipart(self) -> bool:
        return bool(self._parts)

    @property
    def part_start(self) -> int:
        """Byte offset of the first part of the multipart record being read or last read."""
        return self._part_start

    def part(self, payload: bytes, flag: int, where_byte: int) -> bytes | None:
        """Feed one record's payload; returns the whole payload once complete."""
        if flag == 0 and not self._parts:
            return payload
        if flag == 1 and not self._parts:
            self._parts, self._part_start, self._joined = [payload], where_byte, len(payload)
            return None
        if flag == 2 and self._parts:
            self._parts.append(payload)
            self._joined += len(payload) + 4
            return None
        if flag == 3 and self._parts:
            self._parts.append(payload)
            joined, self._parts, self._joined = MAGIC_BYTES.join(self._parts), [], 0
            return joined
        raise DataError(
            f"corrupt RecordIO: continuation flag {flag} out of sequence at byte {where_byte} of {self.where}"
        )

    def check_end(self, leftover: int, offset: int) -> None:
        """At end of stream: complain about a truncated record or an unfinished multipart one."""
        if leftover:
            raise DataError(
                f"truncated RecordIO record at byte {offset} of {self.where}: "
                f"{leftover} bytes left that do not make a whole record"
            )
        if self._parts:
            raise DataError(f"truncated multipart RecordIO record starting at byte {self._part_start} of {self.where}")


def unwrap(chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Payloads of a RecordIO stream arriving in chunks (``RecordWrapperType: RecordIO``:
    each S3 object arrives as one record)."""
    framer, buf, offset = Framer(where), b"", 0
    for chunk in chunks:
        buf = buf + chunk if buf else chunk
        pos = 0
        while (head := framer.header(buf, pos, offset)) is not None:
            length, flag, end = head
            whole = framer.part(bytes(buf[pos + 8 : pos + 8 + length]), flag, offset + pos)
            if whole is not None:
                yield whole
            pos = end
        offset += pos
        buf = buf[pos:]
    framer.check_end(len(buf), offset)


def iter_payloads(data: bytes, where: str = "<bytes>") -> Iterator[bytes]:
    """All payloads of an in-memory RecordIO stream (small inputs, requests, tests)."""
    return unwrap([data], where)


# ----------------------------------------------------------------------------- fast paths for the decoders


class Incomplete(Exception):
    """The buffer ends inside a record."""


def whole_record_at(buf, pos: int, max_length: int) -> tuple[int, int] | None:
    """(payload length, bytes to the next record) of a single-part record at ``pos``; None if the bytes
    there are not one (bad magic, a multipart part, a length past ``max_length``: the ``Framer`` then says
    why). Raises ``Incomplete`` if the buffer ends inside it."""
    if pos + 8 > len(buf):
        raise Incomplete
    magic, lrec = HEADER.unpack_from(buf, pos)
    length = lrec & LENGTH_MASK
    if length > max_length:
        return None
    stride = 8 + padded(length)
    if pos + stride > len(buf):
        raise Incomplete
    if magic != MAGIC or lrec >> 29:
        return None
    return length, stride


def scan_frames(buf: bytes, pos: int, limit: int):
    """Payload starts and lengths of the whole, single-part records from ``pos`` on, found with numpy.

    Records start on 4-byte boundaries, so candidate starts are the aligned magic words; a
    candidate counts only if the record before it ends exactly there. Stops before a multipart
    record, a break in the chain, the end of ``buf`` or ``limit`` words. Returns (payload starts,
    payload lengths, position after the last record), or None if no record starts at ``pos``.
    """
    words = np.frombuffer(buf, "<u4", offset=pos, count=min((len(buf) - pos) // 4, limit))
    cand = np.flatnonzero(words == MAGIC)
    if len(cand) == 0 or cand[0] != 0:
        return None
    lrec = words[np.minimum(cand + 1, len(words) - 1)].astype(np.int64)
    length = lrec & LENGTH_MASK
    nxt = cand + 2 + ((length + 3) >> 2)
    good = (lrec >> 29 == 0) & (cand + 1 < len(words)) & (nxt <= len(words))
    good[:-1] &= nxt[:-1] == cand[1:]
    n = len(good) if good.all() else int(np.argmin(good))
    if n == 0:
        return None
    starts = pos + 4 * cand[:n] + 8
    return starts, length[:n], pos + 4 * int(nxt[n - 1])
