"""``text/libsvm``: one record per line, ``label index:value index:value ...``; the features not listed are 0.

Indices are column numbers as written (xgboost's default), so a file written counting from 1 has an empty column 0.
A line has no width of its own: a block is as wide as its largest index + 1, and the channel (``FeatureCheck``), the
evaluation and the server widen records to the width they need. ``#`` starts a comment.

Lines are checked and parsed all at once with numpy; only a chunk that fails is scanned line by line, to name the
line, the byte and the problem. Not supported, and refused in one line: ``label:weight`` (instance weights) and
``qid:`` (ranking groups).
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp

from ..errors import DataError, shown
from .blocks import Block
from .limits import MAX_FEATURES
from .lines import LineDecoder

_COMMENT = re.compile(rb"#[^\n]*")
_DIGIT = np.zeros(256, bool)
_DIGIT[ord("0"):ord("9") + 1] = True
COLON = ord(":")


def parse_lines(text: bytes, where: str, labelled: bool, first_line: int = 1, offset: int = 0, quote: bool = True,
                blank_lines: bool = True) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """(float32 CSR records, float32 labels or None) of the lines in ``text``.

    ``labelled``: every line starts with its label (training); else a line may start with a label, which is
    ignored, or with its first feature (a request). ``blank_lines``: skip them (a file) or refuse them (a request,
    whose answer has one row per line). Raises DataError naming the line, byte and problem; ``quote`` shows the bad
    item (a request's own data: yes; a training file, which a link may have reached: no).
    """
    parsed = _one_line(text, labelled)
    if parsed is None:
        parsed = _parse(_COMMENT.sub(b"", text) if b"#" in text else text, labelled, blank_lines)
    if parsed is None:
        raise DataError(_first_problem(text, where, labelled, first_line, offset, quote, blank_lines))
    return parsed


def _parse(text: bytes, labelled: bool, blank_lines: bool):
    """All lines at once; None when anything is off (the line scan then says what)."""
    a = np.frombuffer(text, np.uint8)
    separator = a <= 32  # the whitespace that splits items, as bytes.split (\r: a CRLF line end) ...
    if ((a < 9) | ((a > 13) & (a < 32))).any():
        return None  # ... once control bytes other than whitespace are refused
    starts = np.flatnonzero(~separator & np.r_[True, separator[:-1]])  # each item's first byte
    if not starts.size:  # (numpy reads whitespace alone as [-1.0])
        return sp.csr_matrix((0, 1), dtype=np.float32), None
    lines = np.searchsorted(np.flatnonzero(a == 10), starts)  # each item's line
    first = np.ones(starts.size, bool)  # the items that start a line
    first[1:] = lines[1:] != lines[:-1]
    if not blank_lines and first.sum() != text.rstrip().count(b"\n") + 1:  # (blank lines at the end are no records)
        return None
    colons = np.flatnonzero(a == COLON)
    item_of_colon = np.searchsorted(starts, colons, side="right") - 1
    if colons.size:
        if colons[0] == 0 or colons[-1] == a.size - 1:
            return None
        around = np.concatenate((a[colons - 1], a[colons + 1]))
        if ((around <= 32) | (around == COLON)).any() or (np.diff(item_of_colon) <= 0).any():
            return None  # every colon joins two non-empty parts, at most one per item
        begin = starts[item_of_colon]
        length = colons - begin  # the index parts: from an item's start to its colon
        at = np.arange(length.sum()) + np.repeat(begin - np.cumsum(length) + length, length)
        if not _DIGIT[a[at]].all():
            return None
    is_feature = np.zeros(starts.size, bool)
    is_feature[item_of_colon] = True
    if (~first & ~is_feature).any() or (labelled and (first & is_feature).any()):
        return None
    numbers = _numbers(text.replace(b":", b" "))
    if numbers is None or numbers.size != starts.size + colons.size:
        return None
    position = np.arange(starts.size) + np.cumsum(is_feature) - is_feature  # each item's first number
    row = np.cumsum(first) - 1
    n = int(row[-1]) + 1 if row.size else 0
    index, value = numbers[position[is_feature]], numbers[position[is_feature] + 1]
    if index.size and index.max() >= MAX_FEATURES:
        return None
    label = first & ~is_feature
    y = None
    with np.errstate(over="ignore"):  # beyond float32: infinite, which the channel and the server refuse
        if label.any():
            y = np.full(n, np.nan, np.float32)
            y[row[label]] = numbers[position[label]]
        value = value.astype(np.float32)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(row[is_feature], minlength=n), out=indptr[1:])
    width = int(index.max()) + 1 if index.size else 1
    X = sp.csr_matrix((value, index.astype(np.int32), indptr), shape=(n, width))
    if not X.has_sorted_indices:
        X.sort_indices()  # (sum_duplicates would also drop explicit zeros)
    repeated = np.diff(X.indices) == 0
    between = X.indptr[1:-1]
    repeated[between[(between > 0) & (between < X.nnz)] - 1] = False  # a row may start with the index the row before ends with
    if repeated.any():
        return None  # an index twice in one line
    return X, y


def _one_line(text: bytes, labelled: bool):
    """A short line the plain way (a one-record request: numpy's set-up would cost 8x the parse); None unless it is
    plainly well formed, so that ``_parse`` decides everything else."""
    if len(text) > 2048 or b"\n" in text.rstrip() or b"#" in text or b"_" in text:
        return None
    items = text.split()
    if not items:
        return None
    label = None if b":" in items[0] else items.pop(0)
    if labelled and label is None:
        return None
    try:
        pairs = [(int(index), float(value)) for index, _, value in (item.partition(b":") for item in items)
                 if index.isdigit() and len(index) <= 10 and b":" not in value]
        label = None if label is None else float(label)
    except ValueError:
        return None
    pairs.sort()
    indices = [i for i, _ in pairs]
    if len(pairs) != len(items) or len(set(indices)) != len(indices) or (indices and indices[-1] >= MAX_FEATURES):
        return None
    with np.errstate(over="ignore"):  # beyond float32: infinite, as in _parse
        values = np.array([v for _, v in pairs], np.float64).astype(np.float32)
        y = None if label is None else np.array([label], np.float64).astype(np.float32)
    X = sp.csr_matrix((values, np.array(indices, np.int32), np.array([0, len(pairs)])), shape=(1, indices[-1] + 1 if indices else 1))
    return X, y


def _first_problem(text: bytes, where: str, labelled: bool, first_line: int, offset: int, quote: bool, blank_lines: bool) -> str:
    """The first line that is not libsvm, and why."""
    lines = [line.partition(b"#")[0] for line in text.split(b"\n")]
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)  # blank lines after it end the text
    pos = 0
    for i, line in enumerate(lines):
        problem = _line_problem(line, labelled, quote)
        if problem is None and not blank_lines and not line.strip() and i < last:
            problem = "holds no record (it is blank, or only a comment): one record per line"
        if problem:
            return f"line {first_line + i} (byte {offset + pos}) of {where} {problem}"
        pos = text.find(b"\n", pos) + 1
    return f"{where} could not be parsed as text/libsvm"


def _line_problem(line: bytes, labelled: bool, quote: bool) -> str | None:
    items = line.split()
    if not items:
        return None

    def quoted(item: bytes) -> str:
        return repr(shown(item.decode("utf-8", "replace")[:40]))

    if b":" not in items[0]:
        if not _is_number(items[0]):
            return (f"starts with {quoted(items[0])} where its label belongs, and that is not a number" if quote
                    else "starts with something other than a number where its label belongs")
        items = items[1:]
    elif labelled:
        return (f"starts with {quoted(items[0]) if quote else 'index:value'} where its label belongs; a label is a number "
                "(label:weight, an instance weight, is not supported)")
    seen = set()
    for k, item in enumerate(items, 1):
        index, colon, value = item.partition(b":")
        shown_item = f"item {k} {quoted(item)}" if quote else f"item {k}"
        if index == b"qid":
            return "has a qid: item (ranking groups are not supported)"
        if not colon or b":" in value or not index.isdigit() or not _is_number(value):
            return f"has {shown_item}, which is not index:value (a whole number from 0, a colon, a number)"
        if len(index) > 10 or int(index) >= MAX_FEATURES:
            return f"has {shown_item}, whose index is beyond {MAX_FEATURES - 1:,}, the largest there may be"
        if int(index) in seen:
            return f"repeats index {int(index)} (item {k})" if quote else f"repeats an index (item {k})"
        seen.add(int(index))
    return None


def _numbers(text: bytes) -> np.ndarray | None:
    """The whitespace-separated numbers of ``text`` (C's strtod, as xgboost's parser), or None if one is not."""
    try:
        return np.fromstring(text, dtype=np.float64, sep=" ")
    except ValueError:
        return None


def _is_number(item: bytes) -> bool:
    numbers = _numbers(item)
    return numbers is not None and numbers.size == 1


class LibsvmDecoder(LineDecoder):
    """Every line starts with its label."""

    format_name = "text/libsvm"
    fixed_width = False

    def decode(self, text: bytes) -> list[Block]:
        X, y = parse_lines(text, self.where, labelled=True, first_line=self.line, offset=self.offset, quote=False)
        return [Block(X, y)] if X.shape[0] else []
