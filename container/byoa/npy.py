"""The .npy format read without trusting its header: request bodies and model arrays both come from outside.

numpy's own reader allocates what the header claims before it reads the data, and unpickles object
arrays when allowed to. Here the header is parsed on its own, the claimed size must equal the bytes
that are really there, and only plain numeric dtypes are read.
"""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


class NpyError(ValueError):
    """Not a .npy array this project reads; the message says why, in one line."""


def read(f: BinaryIO, size: int) -> np.ndarray:
    """The array in the next ``size`` bytes of ``f`` (header included), refused unless those bytes are exactly
    a header and the data it describes."""
    start = f.tell()
    try:
        version = npy_format.read_magic(f)
        reader = _READERS.get(version)
        if reader is None:
            raise NpyError(f"format version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")
        shape, fortran, dtype = reader(f)
    except NpyError:
        raise
    except Exception as exc:  # a damaged header fails in many ways (ValueError, SyntaxError, EOFError...)
        raise NpyError(f"not a .npy array: {type(exc).__name__}: {exc}"[:300]) from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise NpyError(f"dtype {dtype} is not a plain real number type (object arrays are refused)")
    count = math.prod(shape)
    data = size - (f.tell() - start)
    if count * dtype.itemsize != data:
        raise NpyError(f"the header promises shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes); {data:,} bytes follow it")
    array = np.empty(count, dtype)
    view, filled = memoryview(array).cast("B"), 0
    while filled < data:
        got = f.readinto(view[filled:])
        if not got:
            raise NpyError(f"the data ends after {filled:,} of {data:,} bytes")
        filled += got
    return array.reshape(shape, order="F" if fortran else "C")
