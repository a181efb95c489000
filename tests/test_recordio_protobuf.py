"""RecordIO-protobuf against the SageMaker SDK's own reader and writers, both ways, and fuzzed."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import sdk_recordio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from byoa.data import recordio
from byoa.data.blocks import concat
from byoa.data.protobuf_codec import RecordIOProtobufDecoder, decode_bytes, encode_rows
from byoa.errors import DataError


def decode(data: bytes, chunk: int | None = None):
    if chunk is None:
        blocks = decode_bytes(data)
    else:  # fed in pieces, as from a FIFO
        decoder = RecordIOProtobufDecoder("test")
        blocks = []
        for i in range(0, len(data), chunk):
            blocks += decoder.feed(data[i : i + chunk])
        blocks += decoder.finish()
    return concat(blocks)


RNG = np.random.default_rng(0)
X32 = RNG.random((300, 7)).astype(np.float32)
LABELS = RNG.integers(0, 3, 300)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("y_dtype", [None, np.float32, np.float64, np.int64])
@pytest.mark.parametrize("chunk", [None, 1000, 7])
def test_reads_what_the_sdk_writes_dense(x_dtype, y_dtype, chunk):
    X = X32.astype(x_dtype)
    y = None if y_dtype is None else LABELS.astype(y_dtype)
    block = decode(sdk_recordio(X, y), chunk)
    assert block.X.dtype == np.float32
    np.testing.assert_array_equal(block.X, X.astype(np.float32))
    if y is None:
        assert block.y is None
    else:
        np.testing.assert_array_equal(block.y, y.astype(np.float32))


@pytest.mark.parametrize("y_dtype", [None, np.float32, np.int64])
def test_reads_what_the_sdk_writes_sparse_including_empty_rows(y_dtype):
    S = sp.random(200, 3000, density=0.01, format="csr", dtype=np.float32, random_state=1)
    S = S.tolil()
    S[5, :] = 0  # a row with no non-zero value: keys and values empty, shape set
    S[199, :] = 0
    S = S.tocsr()
    S.eliminate_zeros()
    assert S[5].nnz == 0
    y = None if y_dtype is None else LABELS[:200].astype(y_dtype)
    block = decode(sdk_recordio(S, y), chunk=333)
    assert sp.issparse(block.X) and block.X.shape == (200, 3000)
    assert (block.X != S).nnz == 0
    if y is not None:
        np.testing.assert_array_equal(block.y, y.astype(np.float32))


def test_sparse_column_indices_of_every_varint_length():
    cols = np.array([0, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 + 5])
    S = sp.csr_matrix((np.arange(1, 9, dtype=np.float32), (np.zeros(8, int), cols)), shape=(1, 2**29))
    block = decode(sdk_recordio(S))
    assert block.X.indices.tolist() == cols.tolist()
    assert block.X.data.tolist() == list(range(1, 9))


def test_one_irregular_record_in_the_middle_of_regular_ones():
    X = RNG.random((5000, 12)).astype(np.float32)
    y = RNG.integers(0, 2, 5000).astype(np.float32)
    odd = sdk_recordio(X[2500:2501].astype(np.float64), y[2500:2501].astype(np.float64))  # another layout
    data = sdk_recordio(X[:2500], y[:2500]) + odd + sdk_recordio(X[2501:], y[2501:])
    blocks = decode_bytes(data)
    assert len(blocks) >= 3  # the fast path stopped at the odd record and resumed after it
    block = concat(blocks)
    np.testing.assert_array_equal(block.X, X)
    np.testing.assert_array_equal(block.y, y)


def test_sdk_reads_what_we_write_dense_and_sparse():
    from sagemaker.amazon.common import read_records

    y = LABELS.astype(np.float32)
    records = read_records(io.BytesIO(encode_rows(X32, y)))
    assert len(records) == len(X32)
    np.testing.assert_array_equal([r.features["values"].float32_tensor.values for r in records], X32)
    np.testing.assert_array_equal([r.label["values"].float32_tensor.values[0] for r in records], y)
    S = sp.random(50, 400, density=0.05, format="csr", dtype=np.float32, random_state=2)
    records = read_records(io.BytesIO(encode_rows(S)))
    for i, r in enumerate(records):
        t = r.features["values"].float32_tensor
        assert list(t.shape) == [400]
        assert list(t.keys) == S[i].indices.tolist()
        assert list(t.values) == pytest.approx(S[i].data.tolist())


def test_our_bytes_equal_the_sdks():
    y = LABELS.astype(np.float32)
    assert encode_rows(X32, y) == sdk_recordio(X32, y)
    assert encode_rows(X32.astype(np.float64)) == sdk_recordio(X32.astype(np.float64))
    S = sp.random(40, 300, density=0.05, format="csr", dtype=np.float32, random_state=3)
    assert encode_rows(S, y[:40]) == sdk_recordio(S, y[:40])


def test_multipart_records_are_joined_with_the_magic_between_parts():
    X = RNG.random((3, 6)).astype(np.float32)
    X.view(np.uint32)[1, 2] = recordio.MAGIC  # the payload holds the magic word: split the record there
    payloads = list(recordio.iter_payloads(encode_rows(X)))
    cut = payloads[1].index(recordio.MAGIC_BYTES)

    def part(payload, flag):
        return struct.pack("<II", recordio.MAGIC, len(payload) | flag << 29) + payload + b"\0" * (recordio.padded(len(payload)) - len(payload))

    data = recordio.encode(payloads[0]) + part(payloads[1][:cut], 1) + part(payloads[1][cut + 4 :], 3) + recordio.encode(payloads[2])
    np.testing.assert_array_equal(decode(data).X.view(np.uint32), X.view(np.uint32))
    with pytest.raises(DataError, match="continuation flag 3 out of sequence"):
        decode(part(payloads[1][cut + 4 :], 3))


def test_bad_magic_names_the_byte_offset():
    data = encode_rows(X32[:10])
    stride = len(data) // 10
    broken = data[: 4 * stride] + b"\xde\xad\xbe\xef" + data[4 * stride + 4 :]
    with pytest.raises(DataError, match=rf"no record starts at byte {4 * stride} of test"):
        concat(RecordIOProtobufDecoder("test").feed(broken))


def test_truncated_stream_is_an_error():
    data = encode_rows(X32[:10])
    decoder = RecordIOProtobufDecoder("f")
    decoder.feed(data[:-3])
    with pytest.raises(DataError, match="truncated RecordIO record"):
        decoder.finish()


def test_protobuf_that_does_not_parse_names_the_record():
    data = encode_rows(X32[:5])
    payloads = list(recordio.iter_payloads(data))
    payloads[3] = b"\xff\xff\xff\xff"
    with pytest.raises(DataError, match=r"record 3 \(byte \d+\) of request body is not a valid protobuf Record"):
        decode_bytes(recordio.encode_all(payloads))


# ----------------------------------------------------------------------------- properties

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 9)), elements=finite32),
    labelled=st.booleans(),
    chunk=st.integers(1, 5000),
)
def test_dense_round_trip(X, labelled, chunk):
    y = np.arange(len(X), dtype=np.float32) if labelled else None
    block = decode(encode_rows(X, y), chunk)
    np.testing.assert_array_equal(block.X.view(np.uint32), X.view(np.uint32))
    assert (block.y is None) == (not labelled)


@settings(max_examples=40, deadline=None)
@given(
    dense=hnp.arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 300)), elements=st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.0])),
)
def test_sparse_round_trip(dense):
    S = sp.csr_matrix(dense)
    block = decode(encode_rows(S))
    assert sp.issparse(block.X) and block.X.shape == S.shape
    np.testing.assert_array_equal(block.X.toarray(), dense)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_data_errors(data):
    try:
        decode_bytes(data)
    except DataError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_valid_streams_raise_only_data_errors_or_decode(flips):
    data = bytearray(encode_rows(X32[:20], LABELS[:20].astype(np.float32)) + sdk_recordio(sp.csr_matrix(X32[:5])))
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        blocks = decode_bytes(bytes(data))
    except DataError as exc:
        assert str(exc)
    else:
        assert sum(len(b) for b in blocks) <= 25
