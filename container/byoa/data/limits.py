"""Bounds on what one file or record may make the decoders hold: a wrong or crafted file fails at once with one
line, instead of growing memory until the machine kills the job. Each is configurable."""

from __future__ import annotations

import os


def _megabytes(name: str, default: float) -> int:
    return int(float(os.environ.get(name, default)) * 1e6)


def line_bytes() -> int:
    """Longest CSV or libsvm line (TRAIN_MAX_LINE_MB, default 8): a file without line ends is not text."""
    return _megabytes("TRAIN_MAX_LINE_MB", 8)


def record_bytes() -> int:
    """Largest RecordIO-protobuf record, parts joined (TRAIN_MAX_RECORD_MB, default 64): one row of data."""
    return _megabytes("TRAIN_MAX_RECORD_MB", 64)


def gzip_ratio() -> float:
    """Most a .gz file may expand, once past GZIP_FLOOR (TRAIN_MAX_GZIP_RATIO, default 500: real data stays far below)."""
    return float(os.environ.get("TRAIN_MAX_GZIP_RATIO", 500))


def model_bytes() -> int:
    """Most memory training may need for the records' width (TRAIN_MAX_MODEL_MB, default 4096): the model and its
    per-feature work arrays grow with the feature count, which a sparse shape can claim up to 2**31 - 1."""
    return _megabytes("TRAIN_MAX_MODEL_MB", 4096)


GZIP_FLOOR = 8_000_000  # expansion is judged once this many bytes are out (one read)
MAX_FEATURES = 2**31 - 1  # columns a record may claim (a sparse shape): 32-bit column indices, as scipy and scikit-learn use
