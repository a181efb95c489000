"""Structure-aware fuzzing of every decoder: strategies that build nearly valid inputs, and the properties they must keep.

Shared by tests/test_fuzz.py (a sample in every test run) and bench/fuzz.py (>= 200k cases per decoder).
Random bytes rarely get past a parser's first check; these strategies build what a crafted request or file
looks like: deep nesting, integers of every width, non-minimal and over-long varints, records whose widths
change, length claims that lie.
"""

from __future__ import annotations

import io
import json
import struct
from collections import Counter

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

from byoa.data import recordio
from byoa.data.blocks import concat
from byoa.data.csv_codec import CsvDecoder
from byoa.data.libsvm_codec import LibsvmDecoder
from byoa.data.protobuf_codec import RecordIOProtobufDecoder, parse_record
from byoa.errors import DataError
from byoa.serving import codecs

CASES: Counter = Counter()  # cases run per decoder, read by bench/fuzz.py

# ----------------------------------------------------------------------------- numbers of every width

EDGE_INTS = [0, 1, -1, 2**7, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100, -(2**63) - 1]
EDGE_FLOATS = [0.0, -0.0, 1.5, 1e-45, 1e-320, 3.4e38, 3.5e38, 1.7e308, float("inf"), float("-inf"), float("nan")]

integers = st.one_of(st.integers(-3, 300), st.sampled_from(EDGE_INTS), st.integers(-(2**80), 2**80))
floats = st.one_of(st.floats(-1e6, 1e6), st.sampled_from(EDGE_FLOATS), st.floats())
numbers = st.one_of(integers, floats)

# ----------------------------------------------------------------------------- JSON and JSON Lines

json_scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=4))
json_any = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                              st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=12)
value = st.one_of(numbers, numbers, numbers, json_any)  # mostly numbers, sometimes anything


ROWS = [st.lists(value, min_size=w, max_size=w) for w in range(7)]
# Strategies are built once: hypothesis validates every new strategy object, which costs more than drawing from it.
sparse_keys = [st.one_of(st.lists(st.one_of(st.integers(-2, 12), integers, value), min_size=n, max_size=n), json_any) for n in range(5)]
sparse_values = [st.lists(value, min_size=n, max_size=n + 1) for n in range(5)]
sparse_shapes = st.one_of(st.lists(st.one_of(st.integers(1, 12), integers), min_size=1, max_size=1), st.lists(integers, max_size=3), json_any)
omitted = st.sets(st.sampled_from(["keys", "values", "shape"]), max_size=1)


@st.composite
def sparse_instance(draw):
    n = draw(st.integers(0, 4))
    features = {"keys": draw(sparse_keys[n]), "values": draw(sparse_values[n]), "shape": draw(sparse_shapes)}
    for key in draw(omitted):
        del features[key]
    return {"data": {"features": features}}


INSTANCE = [st.one_of(ROWS[w], ROWS[w].map(lambda r: {"features": r}), sparse_instance(),
                      ROWS[w].map(lambda r: {"data": {"features": {"values": r}}}), json_any, ROWS[max(w - 1, 0)], ROWS[w + 1])
            for w in range(6)]


@st.composite
def instances(draw):
    """Up to 5 instances of one width, in any of the accepted forms, with a few of another width or form."""
    return draw(st.lists(INSTANCE[draw(st.integers(0, 5))], max_size=5))


json_docs = st.one_of(
    instances().map(lambda i: {"instances": i}),
    instances(),
    instances().map(lambda i: i[0] if i else {}),
    st.dictionaries(st.sampled_from(["instances", "features", "data"]), json_any, max_size=2),
    json_any,
)
depths = st.one_of(st.just(0), st.just(0), st.integers(1, 70), st.integers(900, 1100), st.sampled_from([5000, 100_000]))
wrappers = st.sampled_from([("[", "]"), ('{"instances":', "}"), ('{"features":', "}")])


@st.composite
def nested(draw):
    """A document wrapped in 0..100k levels of arrays or objects (recursion limits), as JSON text."""
    text = json.dumps(draw(json_docs))
    depth = draw(depths)
    if not depth:
        return text
    opener, closer = draw(wrappers)
    return opener * depth + text + closer * depth


json_bodies = nested().map(str.encode)
line_ends = st.sampled_from(["\n", "\r\n", "\n\n"])


@st.composite
def jsonlines(draw):
    return draw(line_ends).join(draw(st.lists(nested(), min_size=1, max_size=4))).encode()


jsonlines_bodies = jsonlines()

# ----------------------------------------------------------------------------- CSV

csv_tokens = st.one_of(
    numbers.map(str), numbers.map(repr), integers.map(lambda i: f"{i}e{i % 400}"),
    st.sampled_from(["", " ", "nan", "-inf", "Infinity", "0x10", "1_000", '"1"', "1 2", "\x00", "é", "1e99999", "-", "+", ".", "1.", "9" * 400]),
)


@st.composite
def csv_bodies(draw):
    width = draw(st.integers(1, 5))
    lines = draw(st.lists(st.lists(csv_tokens, min_size=width, max_size=width + draw(st.integers(0, 1))), min_size=1, max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join(",".join(cells) for cells in lines) + draw(st.sampled_from(["", end, end * 2]))
    return text.encode("utf-8", errors="surrogatepass")

# ----------------------------------------------------------------------------- libsvm

libsvm_indices = st.one_of(st.integers(0, 12).map(str), st.sampled_from(EDGE_INTS).map(str), integers.map(str),
                           st.sampled_from(["", "qid", "01", "1e2", "+1", "-0", "1.0", "9" * 30, "x", "١"]))
libsvm_values = st.one_of(numbers.map(repr), csv_tokens)
good_items = st.tuples(st.integers(0, 12), st.one_of(st.floats(-1e6, 1e6), st.integers(-99, 99), st.sampled_from(EDGE_FLOATS)))
odd_items = st.one_of(
    st.tuples(libsvm_indices, libsvm_values).map(":".join),
    st.sampled_from([":", "::", "1::2", "1:2:3", ":1", "1:", "#", "# 1:2", "\x00", "1:2\x00"]),
    libsvm_values,
)
good_labels = st.one_of(st.integers(-3, 3).map(str), st.floats(-10, 10).map(repr))
odd_labels = st.one_of(numbers.map(repr), st.just(""), st.sampled_from(["1:0.5", "x", "nan"]))
libsvm_separators = st.sampled_from([" ", " ", " ", "\t", "  ", "\x0b", "\x0c", " \r"])


@st.composite
def libsvm_line(draw):
    """A label and index:value items, mostly well formed (in any order, sometimes repeated); now and then an odd
    label or item."""
    items = [f"{i}:{v!r}" for i, v in draw(st.lists(good_items, max_size=5, unique_by=lambda item: item[0]))]
    if items and draw(st.integers(0, 8)) == 0:
        items.append(items[0])  # an index twice
    if draw(st.integers(0, 5)) == 0:
        items.insert(draw(st.integers(0, len(items))), draw(odd_items))
    label = draw(odd_labels if draw(st.integers(0, 5)) == 0 else good_labels)
    parts = ([label] if label else []) + items
    sep = draw(libsvm_separators)
    return draw(st.sampled_from(["", " ", "\t"])) + sep.join(parts) + draw(st.sampled_from(["", " ", " # note"]))


@st.composite
def libsvm_bodies(draw):
    lines = draw(st.lists(libsvm_line(), min_size=1, max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r"]))
    text = (end.join(lines) + draw(st.sampled_from(["", end]))).encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 8)) == 0 and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes([draw(st.integers(0, 255))]) + text[i + 1:]
    return text

# ----------------------------------------------------------------------------- RecordIO-protobuf, built by hand


def varint(v: int, extra: int = 0) -> bytes:
    """``v`` as a protobuf varint, with ``extra`` redundant bytes (a valid, non-minimal encoding up to 10 bytes)."""
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        byte, v = v & 0x7F, v >> 7
        if v or extra:
            out.append(byte | 0x80)
            if not v:
                break
        else:
            out.append(byte)
            return bytes(out)
    out += b"\x80" * (extra - 1) + b"\x00"
    return bytes(out)


LENGTH_LIES = st.sampled_from([0] * 20 + [-1, 1, 2**31])
PADDING = st.sampled_from([0] * 6 + [1, 4])
KEY_PADDING = st.sampled_from([0, 0, 0, 2])
SHAPE_PADDING = st.sampled_from([0, 0, 0, 5])
TENSOR_KINDS = st.sampled_from([2] * 6 + [3, 3, 7, 4])  # float32, float64, int32 tensors; 4 is the bytes field
MAP_KEYS = st.sampled_from([b"values"] * 8 + [b"value", b""])
small_ints = st.one_of(st.integers(-5, 300), integers)
float32s, float64s = st.floats(width=32), st.floats()
shapes = st.lists(st.one_of(st.integers(0, 12), integers), max_size=2)
# Helpers below take ``draw`` and are called directly: a strategy object per call would be validated each time (slow).


def field(draw, number: int, payload: bytes) -> bytes:
    """A length-delimited field; the length varint sometimes padded, rarely a lie."""
    length = len(payload) + draw(LENGTH_LIES)
    return varint(number << 3 | 2) + varint(max(length, 0), draw(PADDING)) + payload


def tensor(draw, width: int) -> tuple[int, bytes]:
    kind = draw(TENSOR_KINDS)
    sparse = draw(st.integers(0, 3)) == 0
    n = draw(st.integers(0, 4)) if sparse else width
    if kind == 2:
        values = struct.pack(f"<{n}f", *(draw(float32s) for _ in range(n)))
    elif kind == 3:
        values = struct.pack(f"<{n}d", *(draw(float64s) for _ in range(n)))
    else:
        values = b"".join(varint(draw(small_ints)) for _ in range(n))
    body = field(draw, 1, values) if n or draw(st.booleans()) else b""
    if sparse:
        keys = [draw(st.one_of(st.integers(0, width + 1), integers)) for _ in range(n + (draw(st.integers(0, 3)) == 0))]
        body += field(draw, 2, b"".join(varint(k, draw(KEY_PADDING)) for k in keys))
        shape = [width] if draw(st.booleans()) else draw(shapes)
        body += field(draw, 3, b"".join(varint(s, draw(SHAPE_PADDING)) for s in shape))
    return kind, body


def entry(draw, number: int, width: int) -> bytes:
    kind, body = tensor(draw, width)
    return field(draw, number, field(draw, 1, draw(MAP_KEYS)) + field(draw, 2, field(draw, kind, body)))


def record(draw, width: int) -> bytes:
    parts = [entry(draw, 1, width)] if draw(st.integers(0, 9)) else []
    if draw(st.booleans()):
        parts.append(entry(draw, 2, 1))
    if draw(st.integers(0, 9)) == 0:
        parts.reverse()
    return b"".join(parts)


LENGTH_CLAIMS = st.sampled_from(["mask", "+4", "-4", "2**28"])


def framed(draw, payload: bytes) -> bytes:
    """One RecordIO record; sometimes cut in multipart pieces (dmlc's flags 1, 2, 3), sometimes with a lying length."""
    if draw(st.integers(0, 5)) == 0 and len(payload) > 2:
        cut = draw(st.integers(1, len(payload) - 1))
        pieces = [(1, payload[:cut]), (3, payload[cut:])]
        if draw(st.booleans()):
            pieces.insert(1, (2, b""))
        if draw(st.integers(0, 4)) == 0:
            pieces = pieces[draw(st.integers(0, 1)):]  # a lost first or middle part
    else:
        pieces = [(0, payload)]
    out = b""
    for flag, piece in pieces:
        length = len(piece)
        if draw(st.integers(0, 30)) == 0:
            length = {"mask": recordio.LENGTH_MASK, "+4": length + 4, "-4": max(length - 4, 0), "2**28": 2**28}[draw(LENGTH_CLAIMS)]
        out += struct.pack("<II", recordio.MAGIC, flag << 29 | length) + piece + b"\0" * (recordio.padded(len(piece)) - len(piece))
    return out


@st.composite
def recordio_bodies(draw):
    """Records of one width, or of widths that change part way (by a block of records: the fast paths' edges)."""
    widths = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
    out = b""
    for width in widths:
        count = draw(st.integers(1, 4))
        template = record(draw, width)
        for _ in range(count):
            payload = template if draw(st.integers(0, 3)) else record(draw, width)  # repeats feed the uniform path
            out += framed(draw, payload)
    if draw(st.integers(0, 6)) == 0 and out:
        i = draw(st.integers(0, len(out) - 1))
        out = out[:i] + bytes([draw(st.integers(0, 255))]) + out[i + 1:]
    return out

# ----------------------------------------------------------------------------- .npy


@st.composite
def npy_bodies(draw):
    dtype = draw(st.sampled_from(["<f4", ">f8", "<i8", "|u1", "|b1", "<c8", "<U3", "|S2", "|V4", "<M8[s]", "<f2"]))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    array = np.zeros(shape, dtype=dtype)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    body = buf.getvalue()
    how = draw(st.sampled_from(["keep", "keep", "shape", "dtype", "cut", "object", "fortran"]))
    if how == "shape":
        claim = draw(st.sampled_from(["(2**40, 2**40)", "(4611686018427387904, 4)", "(-1, 3)", "(3, 'a')", "()", "(1, 1, 1, 1, 1)", "(0,)"]))
        body = body.replace(repr(shape).encode(), claim.encode(), 1)
    elif how == "dtype":
        body = body.replace(repr(np.dtype(dtype).str).encode(), draw(st.sampled_from([b"'O'", b"'<f4'", b"[('a', '<f4')]", b"'x'"])), 1)
    elif how == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif how == "object":
        body = body.replace(repr(np.dtype(dtype).str).encode(), b"'|O'", 1) + b"\x80\x04\x95" + b"\0" * 16  # a pickle header
    elif how == "fortran":
        body = body.replace(b"False", b"True", 1)
    return body + draw(st.sampled_from([b"", b"", b"\0" * 4]))

# ----------------------------------------------------------------------------- the properties


def check_request(content_type: str, body: bytes) -> None:
    """A body decodes to a finite-width float32 matrix, or is refused with a 4xx ClientError; nothing else."""
    CASES[content_type] += 1
    try:
        X = codecs.decode(content_type, body)
    except codecs.ClientError as exc:
        assert 400 <= exc.status < 500 and 0 < len(exc.message) <= 2000 and "Traceback" not in exc.message, exc.message
        assert "could not be parsed" not in exc.message, "the line scan found nothing wrong where the parse failed"
        return
    assert X.dtype == np.float32 and X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1, (X.dtype, X.shape)
    if sp.issparse(X):
        assert X.format == "csr" and (X.indices.size == 0 or (X.indices.min() >= 0 and X.indices.max() < X.shape[1]))


def check_libsvm(body: bytes) -> None:
    """As check_request; and where the one-line shortcut reads a body, the all-lines parser reads the same."""
    from byoa.data.libsvm_codec import _one_line, _parse

    check_request("text/libsvm", body)
    for labelled in (True, False):
        short = _one_line(body, labelled)
        if short is not None:
            full = _parse(body, labelled, blank_lines=False)
            assert full is not None and same_matrix(short[0], full[0]) and same_labels(short[1], full[1]), body


def check_npy(body: bytes) -> None:
    """As check_request; and where the decoder accepts a body, numpy's own reader gives the same array."""
    check_request("application/x-npy", body)
    try:
        X = codecs.decode("application/x-npy", body)
    except codecs.ClientError:
        return
    want = np.atleast_2d(np.load(io.BytesIO(body), allow_pickle=False)).astype(np.float32)
    assert np.array_equal(X, want, equal_nan=True)


def _fed(decoder, data: bytes, chunk: int):
    blocks = []
    for i in range(0, len(data), chunk):
        blocks += decoder.feed(data[i : i + chunk])
    return blocks + decoder.finish()


def _outcome(make, data: bytes, chunk: int):
    """('ok', [(X, y) per run of records of one width]) or ('error', message): what a training decoder makes of
    ``data`` fed in ``chunk``-byte pieces. (Widths that change are the channel's to report, with the file's name;
    libsvm records carry no width, so all of them are one run, as wide as the widest.)"""
    decoder = make()
    try:
        blocks = _fed(decoder, data, chunk)
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        assert "could not be parsed" not in str(exc), "the line scan found nothing wrong where the parse failed"
        return ("error", str(exc))
    if not decoder.fixed_width:
        return ("ok", [(concat(blocks).X, concat(blocks).y)] if blocks else [])
    runs = []
    for block in blocks:
        if runs and runs[-1][-1].n_features == block.n_features:
            runs[-1].append(block)
        else:
            runs.append([block])
    return ("ok", [(concat(run).X, concat(run).y) for run in runs])


def same_labels(a, b) -> bool:
    a, b = (None if v is None or np.isnan(v).all() else v for v in (a, b))
    return (a is None) == (b is None) and (a is None or np.array_equal(a, b, equal_nan=True))


def same_matrix(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    a, b = (sp.csr_matrix(m) for m in (a, b))
    for m in (a, b):
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
    return (np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data.view(np.uint32), b.data.view(np.uint32)))


def check_training_decoder(kind: str, data: bytes, chunk: int) -> None:
    """A training decoder raises only DataError (one line), and decodes the same in any chunking."""
    CASES[f"training {kind}"] += 1
    make = {"csv": lambda: CsvDecoder("f"), "recordio-protobuf": lambda: RecordIOProtobufDecoder("f"),
            "libsvm": lambda: LibsvmDecoder("f")}[kind]
    whole, pieces = _outcome(make, data, max(len(data), 1)), _outcome(make, data, chunk)
    assert whole[0] == pieces[0], (whole, pieces)
    if whole[0] == "ok":
        assert len(whole[1]) == len(pieces[1]), "a different sequence of widths in another chunking"
        for (X1, y1), (X2, y2) in zip(whole[1], pieces[1]):
            assert same_matrix(X1, X2) and same_labels(y1, y2), "different records in another chunking"
    if kind == "recordio-protobuf":
        _compare_with_the_protobuf_library(data, whole)
    if kind == "libsvm" and whole[0] == "ok" and whole[1]:
        _compare_with_scikit_learn(data, *whole[1][0])


def _compare_with_scikit_learn(data: bytes, X, y) -> None:
    """Where the decoder reads a file, scikit-learn's reader reads the same numbers (unless the lines list their
    indices out of order, which it refuses and xgboost does not)."""
    from sklearn.datasets import load_svmlight_file

    try:
        want_X, want_y = load_svmlight_file(io.BytesIO(data), n_features=X.shape[1], zero_based=True, dtype=np.float32)
    except ValueError as exc:
        if "should be sorted" in str(exc):
            return
        raise AssertionError(f"the decoder reads this file, scikit-learn does not: {exc}") from None
    assert same_matrix(X, want_X), "the decoder and scikit-learn disagree on X"
    with np.errstate(over="ignore"):  # labels beyond float32 are infinite in both
        assert same_labels(y, want_y.astype(np.float32)), "the decoder and scikit-learn disagree on the labels"


def _reference(data: bytes):
    """RecordIO-protobuf decoded the slow, obvious way: the protobuf library, record by record."""
    rows, labels = [], []
    try:
        for payload in recordio.iter_payloads(data, "f"):
            dense, sparse_row, label = parse_record(payload)
            rows.append(dense if dense is not None else sparse_row)
            labels.append(label)
    except (DataError, ValueError):
        return None
    runs, start = [], 0
    widths = [len(r) if isinstance(r, np.ndarray) else r[2] for r in rows]
    for i in range(1, len(rows) + 1):
        if i == len(rows) or widths[i] != widths[start]:
            runs.append(_csr(rows[start:i], widths[start], labels[start:i]))
            start = i
    return ("ok", runs)


def _csr(rows, width, labels):
    keys = [np.arange(len(r)) if isinstance(r, np.ndarray) else r[0] for r in rows]
    values = [r if isinstance(r, np.ndarray) else r[1] for r in rows]
    indptr = np.concatenate([[0], np.cumsum([len(k) for k in keys])])
    X = sp.csr_matrix((np.concatenate(values).astype(np.float32), np.concatenate(keys), indptr), shape=(len(rows), width))
    y = np.array(labels, np.float32)
    return X, None if np.isnan(y).all() else y


def _compare_with_the_protobuf_library(data: bytes, got) -> None:
    """Where the protobuf library reads the stream, the fast paths read it too, to the same numbers."""
    want = _reference(data)
    if want is None:
        return
    assert got[0] == "ok", f"the protobuf library reads this stream, the decoder says: {got[1]}"
    assert len(got[1]) == len(want[1]), "the decoder changes width where the protobuf library does not"
    for (X, y), (want_X, want_y) in zip(got[1], want[1]):
        assert same_matrix(X, want_X), "fast paths and the protobuf library disagree on X"
        assert same_labels(y, want_y), "fast paths and the protobuf library disagree on the labels"
