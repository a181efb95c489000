"""RecordIO-protobuf (``application/x-recordio-protobuf``) to numpy and back.

Three decoding paths, fastest first, all giving the same arrays:

* uniform: dense records of one dataset usually share one byte layout. The
  layout of one record is read, every following record is checked byte for byte
  against it (all bytes but the values), and the values are sliced out with numpy.
* lock-step: records of varying length (sparse rows, irregular data) are framed
  one by one, then parsed all together, one protobuf field at a time, with numpy.
* general: whatever the two above do not recognise (other tensor types, field
  orders, multipart records) is parsed by the protobuf library, one record at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import scipy.sparse as sp
from google.protobuf.message import DecodeError

from ..errors import DataError
from . import recordio
from .blocks import Block
from .byoa_record_pb2 import Record
from .limits import MAX_FEATURES, record_bytes

# Wire tags of the schema (field number << 3 | wire type 2).
TAG_FEATURES, TAG_LABEL = 0x0A, 0x12
TAG_F32, TAG_F64, TAG_I32 = 0x12, 0x1A, 0x3A  # Value.float32_tensor / float64_tensor / int32_tensor
TAG_VALUES, TAG_KEYS, TAG_SHAPE = 0x0A, 0x12, 0x1A
KEY_VALUES = b"\x0a\x06values"  # map entry key field: "values"
_DTYPES = {TAG_F32: np.dtype("<f4"), TAG_F64: np.dtype("<f8")}

MAX_LOCKSTEP_WORDS = 1 << 23  # 32 MB of records framed at a time


# ----------------------------------------------------------------------------- encoding


def _tensor(value, dtype):
    if dtype == np.float64:
        return value.float64_tensor
    if np.issubdtype(dtype, np.integer):
        return value.int32_tensor
    return value.float32_tensor


def encode_rows(X, y=None) -> bytes:
    """Rows of a dense array or CSR matrix (+ optional labels) as RecordIO-protobuf.

    The bytes equal those of the SDK's ``write_numpy_to_dense_tensor`` /
    ``write_spmatrix_to_sparse_tensor`` for the same arrays.
    """
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError("features must be a matrix")
        if X.dtype in (np.float32, np.float64) and X.shape[1] > 0 and (y is None or np.asarray(y).dtype == np.float32):
            return _encode_uniform(X, None if y is None else np.asarray(y))
    return b"".join(recordio.encode(r.SerializeToString()) for r in _records(X, y))


def _records(X, y) -> Iterator[Record]:
    sparse = sp.issparse(X)
    if sparse:
        X = sp.csr_matrix(X)
    for i in range(X.shape[0]):
        record = Record()
        tensor = _tensor(record.features["values"], X.dtype)
        if sparse:
            lo, hi = X.indptr[i], X.indptr[i + 1]
            tensor.values.extend(X.data[lo:hi].tolist())
            tensor.keys.extend(X.indices[lo:hi].astype(np.uint64).tolist())
            tensor.shape.append(X.shape[1])
        else:
            tensor.values.extend(X[i].tolist())
        if y is not None:
            _tensor(record.label["values"], np.asarray(y).dtype).values.append(np.asarray(y)[i].item())
        yield record


def _encode_uniform(X, y) -> bytes:
    """All rows share one layout: build it once, then fill the values with numpy."""
    n = X.shape[0]
    if n == 0:
        return b""
    first = b"".join(recordio.encode(r.SerializeToString()) for r in _records(X[:1], None if y is None else y[:1]))
    layout = _probe(first, 0, recordio.LENGTH_MASK)
    out = np.tile(np.frombuffer(first, np.uint8), n).reshape(n, len(first))
    X = np.ascontiguousarray(X, dtype=X.dtype.newbyteorder("<"))
    out[:, layout.feat_off : layout.feat_off + layout.feat_len] = X.view(np.uint8).reshape(n, -1)
    if y is not None:
        out[:, layout.label_off : layout.label_off + 4] = np.ascontiguousarray(y, "<f4").view(np.uint8).reshape(n, 4)
    return out.tobytes()


# ----------------------------------------------------------------------------- uniform path


@dataclass(frozen=True)
class _Layout:
    stride: int
    feat_off: int
    feat_len: int
    feat_dtype: np.dtype
    label_off: int = -1
    label_len: int = 0
    label_kind: str = ""  # "f4", "f8", or "varint1" (an int32 label < 128)


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("bad varint")


def _probe(buf, pos: int, max_length: int) -> Optional[_Layout]:
    """The layout of the whole record at ``pos`` if it is a plain dense one, else None.

    Raises recordio.Incomplete if the buffer ends inside the record.
    """
    frame = recordio.whole_record_at(buf, pos, max_length)
    if frame is None:
        return None
    length, stride = frame
    p, end = pos + 8, pos + 8 + length
    try:
        feat = _probe_entry(buf, p, end, TAG_FEATURES, (TAG_F32, TAG_F64))
        if feat is None:
            return None
        p, feat_off, feat_len, feat_tag = feat
        if feat_len % _DTYPES[feat_tag].itemsize:
            return None
        if p == end:
            return _Layout(stride, feat_off - pos, feat_len, _DTYPES[feat_tag])
        label = _probe_entry(buf, p, end, TAG_LABEL, (TAG_F32, TAG_F64, TAG_I32))
        if label is None or label[0] != end:
            return None
        _, label_off, label_len, label_tag = label
    except ValueError:
        return None
    kind = {TAG_F32: "f4", TAG_F64: "f8", TAG_I32: "varint1"}[label_tag]
    if label_len != {"f4": 4, "f8": 8, "varint1": 1}[kind]:
        return None
    return _Layout(stride, feat_off - pos, feat_len, _DTYPES[feat_tag], label_off - pos, label_len, kind)


def _probe_entry(buf, p, end, entry_tag, tensor_tags):
    """Map entry {"values": Value{tensor{values}}} with nothing else; returns (next, values offset, length, tag)."""
    if p >= end or buf[p] != entry_tag:
        return None
    entry_len, p = _varint(buf, p + 1, end)
    entry_end = p + entry_len
    if bytes(buf[p : p + 8]) != KEY_VALUES or p + 9 > end or buf[p + 8] != 0x12:
        return None
    value_len, p = _varint(buf, p + 9, end)
    if p + value_len != entry_end or p >= end or buf[p] not in tensor_tags:
        return None
    tag = buf[p]
    tensor_len, p = _varint(buf, p + 1, end)
    if p + tensor_len != entry_end or p >= end or buf[p] != TAG_VALUES:
        return None
    values_len, p = _varint(buf, p + 1, end)
    if p + values_len != entry_end or values_len == 0:
        return None
    return entry_end, p, values_len, tag


def _count_uniform(arr: np.ndarray, pos: int, layout: _Layout) -> int:
    """How many records from ``pos`` on match the first one's layout, byte for byte outside the values.

    Compared as 32-bit words (records are 4-byte aligned): only the words holding
    fixed bytes, masked where a word also holds value bytes.
    """
    stride = layout.stride
    available = (len(arr) - pos) // stride
    mask = np.full(stride, 0xFF, np.uint8)
    mask[layout.feat_off : layout.feat_off + layout.feat_len] = 0
    if layout.label_off >= 0:
        mask[layout.label_off : layout.label_off + layout.label_len] = 0
    mask32 = mask.view("<u4")
    words = np.flatnonzero(mask32)
    template = (arr[pos : pos + stride].view("<u4") & mask32)[words]
    mask32 = mask32[words]
    counted, window = 0, 256
    while counted < available:
        m = min(window, available - counted)
        start = pos + counted * stride
        view = arr[start : start + m * stride].view("<u4").reshape(m, stride // 4)
        ok = ((view[:, words] & mask32) == template).all(axis=1)
        if layout.label_kind == "varint1":  # a one-byte varint label: any value below 0x80
            ok &= arr[start : start + m * stride].reshape(m, stride)[:, layout.label_off] < 0x80
        if not ok.all():
            return counted + int(np.argmin(ok))
        counted += m
        window *= 4
    return counted


def _uniform_block(arr: np.ndarray, pos: int, n: int, layout: _Layout) -> Block:
    view = arr[pos : pos + n * layout.stride].reshape(n, layout.stride)
    X = view[:, layout.feat_off : layout.feat_off + layout.feat_len].copy().view(layout.feat_dtype)
    y = None
    if layout.label_off >= 0:
        raw = view[:, layout.label_off : layout.label_off + layout.label_len]
        y = raw[:, 0].astype(np.float32) if layout.label_kind == "varint1" else raw.copy().view("<" + layout.label_kind)[:, 0]
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused downstream
        return Block(X.astype(np.float32, copy=False), None if y is None else y.astype(np.float32, copy=False))


# ----------------------------------------------------------------------------- lock-step path


def _vvarint(arr: np.ndarray, pos: np.ndarray, active: np.ndarray):
    """Vectorized varint (up to 5 bytes: lengths < 2**35) at ``pos`` where ``active``; returns (value, new pos, ok)."""
    last = len(arr) - 1
    value = np.zeros(len(pos), np.int64)
    going = active.copy()
    new_pos = pos.copy()
    for i in range(5):
        byte = arr[np.minimum(pos + i, last)].astype(np.int64)
        value |= np.where(going, (byte & 0x7F) << (7 * i), 0)
        new_pos += going
        going &= byte >= 0x80
        if not going.any():
            break
    return value, new_pos, ~going


def _at(arr: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return arr[np.minimum(pos, len(arr) - 1)]


def _lockstep_entry(arr, pos, end, ok, entry_tag, tensor_tags):
    """Parse map entries {"values": Value{tensor{values, keys, shape}}} of all records at once.

    Returns (present, new pos, tensor tag, [(start, length) of values, keys, shape]).
    Clears ``ok`` where an entry is there but not in exactly that form.
    """
    present = ok & (pos < end) & (_at(arr, pos) == entry_tag)
    entry_len, p, good = _vvarint(arr, pos + 1, present)
    entry_end = p + entry_len
    for k, byte in enumerate(KEY_VALUES + b"\x12"):
        good &= _at(arr, p + k) == byte
    value_len, p, g = _vvarint(arr, p + 9, present)
    tag = _at(arr, p).astype(np.int64)
    good &= g & (p + value_len == entry_end) & np.isin(tag, tensor_tags)
    tensor_len, p, g = _vvarint(arr, p + 1, present)
    good &= g & (p + tensor_len == entry_end)
    fields = []
    for field_tag in (TAG_VALUES, TAG_KEYS, TAG_SHAPE):
        has = present & (p < entry_end) & (_at(arr, p) == field_tag)
        flen, p2, g = _vvarint(arr, p + 1, has)
        good &= g | ~has
        start = np.where(has, p2, p)
        flen = np.where(has, flen, 0)
        fields.append((start, flen))
        p = start + flen
    good &= (p == entry_end) & (entry_end <= end)
    ok &= good | ~present
    return present, np.where(present, p, pos), tag, fields


def _gather(arr: np.ndarray, *regions: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """The bytes of each region set, concatenated in record order: [values of all records], [keys of all records].

    Regions lie in order within and across records, so one run-length code array
    (0 = skip, i = region set i) covers the span, and numpy compresses each set out of it.
    """
    n = len(regions[0][0])
    if n == 0:
        return [np.zeros(0, np.uint8) for _ in regions]
    starts = np.stack([r[0] for r in regions], axis=1).ravel()
    lengths = np.stack([r[1] for r in regions], axis=1).ravel()
    ends = starts + lengths
    gaps = np.empty_like(starts)
    gaps[0] = 0
    gaps[1:] = starts[1:] - ends[:-1]
    if (gaps < 0).any():
        raise ValueError("regions overlap")
    runs = np.stack([gaps, lengths], axis=1).ravel()
    codes = np.tile(np.repeat(np.arange(1, len(regions) + 1, dtype=np.uint8), 2) * np.tile(np.array([0, 1], np.uint8), len(regions)), n)
    span = arr[starts[0] : ends[-1]]
    code = np.repeat(codes, runs)
    return [span[code == i + 1] for i in range(len(regions))]


def _decode_varints(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All varints in the bytes ``b``: (values, index of each value's last byte); uint64 wraps as protobuf's does.

    Values are int32 when every varint has at most 4 bytes (< 2**28, the usual column
    indices: half the memory traffic of int64), uint64 otherwise.
    """
    last = np.flatnonzero(b < 0x80)
    if len(last) == len(b):
        return b.astype(np.int32), last
    lengths = np.diff(last, prepend=-1)
    longest = int(lengths.max())
    if longest > 10:
        raise ValueError("varint longer than 10 bytes")
    dtype = np.int32 if longest <= 4 else np.uint64
    value = b[last].astype(dtype)
    for k in range(1, longest):  # from the most significant group down
        longer = lengths > k
        value = np.where(longer, (value << dtype(7)) | (b[last - k] & 0x7F).astype(dtype), value)
    return value, last


# ----------------------------------------------------------------------------- general path


def _tensor_of(value, what: str):
    kind = value.WhichOneof("value")
    if kind == "bytes" or kind is None:
        raise ValueError(f"{what} holds {kind or 'no'} data, expected a float32, float64 or int32 tensor")
    return getattr(value, kind)


def parse_record(payload: bytes):
    """(dense values or None, (keys, values, n_columns) or None, label) of one record, by the protobuf library."""
    record = Record()
    try:
        record.ParseFromString(payload)
    except DecodeError as exc:
        raise ValueError(f"is not a valid protobuf Record ({exc})") from None
    if "values" not in record.features:
        raise ValueError("has no features['values']")
    tensor = _tensor_of(record.features["values"], "features['values']")
    values = np.asarray(tensor.values, dtype=np.float32)
    label = np.nan
    if "values" in record.label:
        lab = _tensor_of(record.label["values"], "label['values']").values
        if len(lab) > 1:
            raise ValueError(f"has {len(lab)} label values; one label per record is supported")
        if len(lab) == 1:
            label = float(lab[0])
    if len(tensor.shape):
        if len(tensor.shape) != 1:
            raise ValueError(f"sparse shape {list(tensor.shape)[:4]} is not one-dimensional")
        width = int(tensor.shape[0])
        if width > MAX_FEATURES:
            raise ValueError(f"has a sparse shape [{width}] beyond {MAX_FEATURES:,} features")
        keys = np.asarray(tensor.keys, dtype=np.uint64)
        if len(keys) != len(values):
            raise ValueError(f"sparse tensor has {len(keys)} keys but {len(values)} values")
        if len(keys) and int(keys.max()) >= width:
            raise ValueError(f"has a key >= its shape [{width}]")
        return None, (keys.astype(np.int64), values, width), label
    if len(tensor.keys):
        raise ValueError("has keys but no shape")
    return values, None, label


# ----------------------------------------------------------------------------- the decoder


class RecordIOProtobufDecoder:
    """Turns the bytes of one source (file or FIFO epoch) into Blocks.

    Feed chunks with ``feed``; ``finish`` checks that the stream ended on a record boundary.
    """

    fixed_width = True  # every record says how wide it is (a sparse one by its shape)

    def __init__(self, where: str):
        self.where = where
        self.framer = recordio.Framer(where, record_bytes())
        self._tail = b""
        self._offset = 0  # absolute offset of _tail[0]
        self.records = 0

    def feed(self, chunk: bytes) -> list[Block]:
        buf = self._tail + chunk if self._tail else chunk
        blocks, consumed = self._decode(buf)
        self._tail = buf[consumed:]
        self._offset += consumed
        return blocks

    def finish(self) -> list[Block]:
        if len(self._tail) >= 8:
            self.framer.header(self._tail, 0, self._offset)  # names a bad magic number before calling it truncated
        self.framer.check_end(len(self._tail), self._offset)
        return []

    def _where(self, index: int, byte: int) -> str:
        return f"record {index} (byte {byte}) of {self.where}"

    def _decode(self, buf: bytes) -> tuple[list[Block], int]:
        arr = np.frombuffer(buf, np.uint8)
        blocks: list[Block] = []
        pos = 0
        while pos < len(buf):
            if not self.framer.in_multipart:
                try:
                    layout = _probe(buf, pos, self.framer.max_length)
                except recordio.Incomplete:
                    break
                n = _count_uniform(arr, pos, layout) if layout is not None else 0
                if n:
                    blocks.append(_uniform_block(arr, pos, n, layout))
                    self.records += n
                    pos += n * layout.stride
                    continue
            new_pos, run_blocks = self._lockstep_run(buf, arr, pos)
            if new_pos == pos:
                break
            blocks.extend(run_blocks)
            pos = new_pos
        return blocks, pos

    def _lockstep_run(self, buf: bytes, arr: np.ndarray, pos: int) -> tuple[int, list[Block]]:
        """Decode a run of records framed with numpy; a record it cannot frame goes through the Framer."""
        scanned = None if self.framer.in_multipart else recordio.scan_frames(buf, pos, MAX_LOCKSTEP_WORDS)
        if scanned is not None:
            starts, lengths, new_pos = scanned
            offsets = self._offset + starts - 8
            return new_pos, self._decode_run(buf, arr, starts, lengths, offsets, {})
        head = self.framer.header(buf, pos, self._offset)
        if head is None:
            return pos, []
        length, flag, end = head
        whole = self.framer.part(bytes(buf[pos + 8 : pos + 8 + length]), flag, self._offset + pos)
        if whole is None:
            return end, []
        where = self.framer.part_start if flag else self._offset + pos
        one = np.array([pos + 8], np.int64)
        return end, self._decode_run(buf, arr, one, np.array([length], np.int64), np.array([where]), {0: whole})

    def _decode_run(self, buf, arr, start, length, offsets, slow) -> list[Block]:
        n = len(start)
        end = start + length
        ok = np.ones(n, bool)
        if slow:
            ok[list(slow)] = False
        feat, pos, tag, (vals, keys, shape) = _lockstep_entry(arr, start, end, ok, TAG_FEATURES, (TAG_F32, TAG_F64))
        ok &= feat
        lab, pos, lab_tag, (lab_vals, lab_keys, lab_shape) = _lockstep_entry(
            arr, pos, end, ok, TAG_LABEL, (TAG_F32, TAG_F64, TAG_I32)
        )
        ok &= (pos == end) & ~(lab & ((lab_keys[1] > 0) | (lab_shape[1] > 0)))
        is64 = tag == TAG_F64
        ok &= vals[1] % np.where(is64, 8, 4) == 0
        # One label value per record: a float of its size, or one non-negative int32 varint.
        lab_size = np.where(lab_tag == TAG_F64, 8, np.where(lab_tag == TAG_I32, 1, 4))
        ok &= ~lab | (lab_vals[1] == 0) | ((lab_vals[1] == lab_size) & ((lab_tag != TAG_I32) | (_at(arr, lab_vals[0]) < 0x80)))
        # Sparse: one width, a varint of at most 5 bytes; keys without a shape, or longer shapes: the general path.
        sparse = shape[1] > 0
        ncols, shape_end, _ = _vvarint(arr, shape[0], sparse)
        ok &= np.where(sparse, shape_end == shape[0] + shape[1], keys[1] == 0)
        kind = np.where(ok, sparse + 3 * is64, -1)
        cuts = np.flatnonzero(np.diff(kind)) + 1
        bounds = [0, *cuts.tolist(), n]
        blocks = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            k = int(kind[lo])
            if k < 0:
                blocks += self._general(buf, start, length, offsets, slow, lo, hi)
                continue
            sl = slice(lo, hi)
            dtype = _DTYPES[TAG_F64 if k >= 3 else TAG_F32]
            y = self._labels(arr, lab[sl] & (lab_vals[1][sl] > 0), lab_vals[0][sl], lab_tag[sl])
            value_bytes, key_bytes = _gather(arr, (vals[0][sl], vals[1][sl]), (keys[0][sl], keys[1][sl]))
            values = value_bytes.view(dtype).astype(np.float32, copy=False)
            counts = vals[1][sl] // dtype.itemsize
            if k % 3 == 0:
                blocks += _split(values, counts, counts, y)
            else:
                blocks += _split(self._sparse(values, key_bytes, counts, keys[1][sl], ncols[sl], offsets, lo), counts, ncols[sl], y)
        self.records += n
        return blocks

    @staticmethod
    def _labels(arr, present, lstart, ltag):
        if not present.any():
            return None
        y = np.full(len(present), np.nan, np.float32)
        for tag, dtype in ((TAG_F32, "<f4"), (TAG_F64, "<f8")):
            sel = present & (ltag == tag)
            if sel.any():
                idx = lstart[sel][:, None] + np.arange(np.dtype(dtype).itemsize)
                y[sel] = arr[idx].copy().view(dtype)[:, 0]
        sel = present & (ltag == TAG_I32)
        y[sel] = arr[lstart[sel]]
        return y

    def _sparse(self, values, key_bytes, counts, key_lengths, ncols, offsets, lo):
        """All records of the run in one CSR matrix as wide as the widest; ``_split`` cuts it where widths change."""
        if (ncols > MAX_FEATURES).any():
            bad = int(np.argmax(ncols > MAX_FEATURES))
            raise DataError(f"{self._where(self.records + lo + bad, offsets[lo + bad])} has a sparse shape [{int(ncols[bad])}] "
                            f"beyond {MAX_FEATURES:,} features")
        width = int(ncols.max())
        try:
            key_values, key_last = _decode_varints(key_bytes)
        except ValueError:
            raise DataError(f"the sparse keys of records {self.records + lo}..{self.records + lo + len(counts) - 1} of {self.where} "
                            "hold a varint longer than 10 bytes") from None
        ends = np.cumsum(key_lengths)
        key_counts = np.diff(np.searchsorted(key_last, ends - 1, side="right"), prepend=0)
        if (key_counts != counts).any():
            bad = int(np.argmax(key_counts != counts))
            raise DataError(
                f"{self._where(self.records + lo + bad, offsets[lo + bad])} has {key_counts[bad]} keys "
                f"but {counts[bad]} values"
            )
        one_width = (ncols == width).all()
        if len(key_values) and (int(key_values.max()) >= width or not one_width):
            beyond = key_values >= (width if one_width else np.repeat(ncols, counts))
            if beyond.any():
                row = int(np.searchsorted(np.cumsum(counts), int(np.argmax(beyond)), side="right"))
                raise DataError(f"{self._where(self.records + lo + row, offsets[lo + row])} has a key >= its shape [{int(ncols[row])}]")
        indptr = np.concatenate([[0], np.cumsum(counts)])
        index_dtype = np.int32 if len(key_values) < 2**31 else np.int64
        matrix = sp.csr_matrix((values, key_values.astype(index_dtype, copy=False), indptr.astype(index_dtype)), shape=(len(counts), width))
        matrix.sum_duplicates()
        return matrix

    def _general(self, buf, start, length, offsets, slow, lo, hi) -> list[Block]:
        dense, sparse_rows, labels = [], [], []
        for i in range(lo, hi):
            payload = slow.get(i)
            if payload is None:
                payload = bytes(buf[start[i] : start[i] + length[i]])
            try:
                values, sparse_row, label = parse_record(payload)
            except ValueError as exc:
                raise DataError(f"{self._where(self.records + i, offsets[i])} {exc}") from None
            dense.append(values)
            sparse_rows.append(sparse_row)
            labels.append(label)
        y = np.array(labels, np.float32)
        widths = np.array([len(v) if v is not None else r[2] for v, r in zip(dense, sparse_rows)])
        if all(r is None for r in sparse_rows):
            return _split(np.concatenate(dense), widths, widths, None if np.isnan(y).all() else y)
        rows = [r if r is not None else (np.arange(len(v)), v, len(v)) for r, v in zip(sparse_rows, dense)]
        counts = np.array([len(r[0]) for r in rows])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        matrix = sp.csr_matrix(
            (np.concatenate([r[1] for r in rows]).astype(np.float32), np.concatenate([r[0] for r in rows]).astype(np.int64), indptr),
            shape=(len(rows), int(widths.max())),
        )
        return _split(matrix, counts, widths, None if np.isnan(y).all() else y)


def _split(X, counts: np.ndarray, widths: np.ndarray, y) -> list[Block]:
    """Records of one run as Blocks of one width each: dense values (flat, ``counts`` per record) or a CSR matrix
    (as wide as the widest record). Widths that change are the channel's to report, naming the file."""
    cuts = np.flatnonzero(np.diff(widths)) + 1
    if not len(cuts) and sp.issparse(X) and X.shape[1] == widths[0]:
        return [Block(X, y)]
    bounds = [0, *cuts.tolist(), len(widths)]
    blocks = []
    ends = np.concatenate([[0], np.cumsum(counts)])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        width = int(widths[lo])
        if sp.issparse(X):
            ip = X.indptr[lo : hi + 1]
            part = sp.csr_matrix((X.data[ip[0] : ip[-1]], X.indices[ip[0] : ip[-1]], ip - ip[0]), shape=(hi - lo, width))
            part.sum_duplicates()
        else:
            part = X[ends[lo] : ends[hi]].reshape(hi - lo, width)
        blocks.append(Block(part, None if y is None else y[lo:hi]))
    return blocks


def decode_bytes(data: bytes, where: str = "request body") -> list[Block]:
    """Decode a whole in-memory RecordIO-protobuf stream."""
    decoder = RecordIOProtobufDecoder(where)
    return decoder.feed(data) + decoder.finish()
