"""``text/csv``: one record per line, no header, label columns first.

Lines are decoded a chunk at a time by numpy's C parser; when a chunk fails,
the chunk is scanned line by line to name the exact line and byte.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from ..errors import DataError, shown
from .blocks import Block
from .lines import LineDecoder


def _line_problem(line: bytes, width: int | None, quote: bool) -> str | None:
    if b"\r" in line.removesuffix(b"\n").removesuffix(b"\r"):
        return "holds a carriage return (\\r) before its end: lines end with \\n or \\r\\n"
    fields = line.decode("utf-8", errors="replace").strip().split(",")
    if width is not None and len(fields) != width:
        return f"has {len(fields)} columns, expected {width} like the lines before it"
    for col, value in enumerate(fields, 1):
        try:
            if "_" in value:  # Python reads 1_000; numpy does not
                raise ValueError
            float(value)
        except ValueError:
            return f"column {col}: " + (f"{shown(value.strip()[:40])!r} is not a number" if quote else "not a number")
    return None


def parse_rows(text: bytes, width: int | None = None, where: str = "request body", first_line: int = 1, offset: int = 0,
               quote: bool = True) -> np.ndarray:
    """All numeric rows in ``text`` as a float32 matrix; blank lines skipped.

    Raises DataError naming line, byte offset and problem; ``quote`` shows the bad value (a request's own data: yes;
    a training file, which a link may have reached: no).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": blank chunks are fine
            rows = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float32, ndmin=2, comments=None, encoding="utf-8")
        if width is None or rows.size == 0 or rows.shape[1] == width:
            return rows
    except ValueError:
        pass
    line_no, pos = first_line, 0
    for line in text.split(b"\n"):  # numpy's own line ends (a lone \r is not one)
        line += b"\n"
        if line.strip(b"\r\n"):  # (numpy skips empty lines, not lines of spaces)
            problem = _line_problem(line, width, quote)
            if problem:
                raise DataError(f"line {line_no} (byte {offset + pos}) of {where} {problem}")
            if width is None:
                width = len(line.split(b","))
        line_no += 1
        pos += len(line)
    raise DataError(f"{where} could not be parsed as CSV")  # numpy disagreed with the line scan


class CsvDecoder(LineDecoder):
    """``label_size`` leading columns are the label."""

    format_name = "CSV"

    def __init__(self, where: str, label_size: int = 1):
        super().__init__(where)
        self.label_size = label_size
        self.width: int | None = None

    def decode(self, text: bytes) -> list[Block]:
        rows = parse_rows(text, self.width, self.where, self.line, self.offset, quote=False)
        if rows.size == 0:
            return []
        if self.width is None:
            self.width = rows.shape[1]
            if self.width <= self.label_size:
                raise DataError(
                    f"{self.where} has {self.width} columns: no feature columns after {self.label_size} label column(s)"
                )
        if self.label_size == 0:
            return [Block(rows)]
        return [Block(np.ascontiguousarray(rows[:, 1:]), rows[:, 0].copy())]
