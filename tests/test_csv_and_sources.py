"""CSV decoding, content types, File-mode file discovery and Pipe-mode FIFOs (real ones)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import FEEDER, csv_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from byoa.data import media
from byoa.data.blocks import Block, concat, rebatch
from byoa.data.csv_codec import CsvDecoder
from byoa.data.sources import channel_files, fifo_chunks, file_chunks
from byoa.errors import DataError


def csv_decode(text: bytes, label_size=1, chunk=None) -> Block:
    decoder = CsvDecoder("f.csv", label_size)
    chunk = chunk or len(text) or 1
    blocks = []
    for i in range(0, len(text), chunk):
        blocks += decoder.feed(text[i : i + chunk])
    blocks += decoder.finish()
    return concat(blocks) if blocks else None


def test_csv_label_first_and_unlabelled():
    text = b"1,0.5,2\n0,1.5,3\n\n1,2.5,4"
    block = csv_decode(text)
    np.testing.assert_array_equal(block.y, [1, 0, 1])
    np.testing.assert_array_equal(block.X, [[0.5, 2], [1.5, 3], [2.5, 4]])
    block = csv_decode(text, label_size=0, chunk=5)
    assert block.y is None and block.X.shape == (3, 3)


def test_csv_errors_name_line_and_byte():
    with pytest.raises(DataError, match=r"line 3 \(byte 12\) of f.csv column 2: not a number$"):  # a training file's content is never quoted
        csv_decode(b"1,2,3\n4,5,6\n7,abc,9\n")
    with pytest.raises(DataError, match=r"line 2 \(byte 6\) of f.csv has 2 columns, expected 3"):
        csv_decode(b"1,2,3\n4,5\n")
    with pytest.raises(DataError, match=r"line 4 .* has 2 columns, expected 3"):
        csv_decode(b"1,2,3\n4,5,6\n1,1,1\n4,5\n", chunk=6)  # the bad line is in a later chunk: line count carries over


@settings(max_examples=50, deadline=None)
@given(
    X=hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(2, 6)), elements=st.floats(-1e6, 1e6, width=32)),
    chunk=st.integers(1, 200),
)
def test_csv_round_trip_in_any_chunking(X, chunk):
    block = csv_decode(csv_bytes(X[:, 1:], X[:, 0]), chunk=chunk)
    np.testing.assert_allclose(block.X, X[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(block.y, X[:, 0], rtol=1e-6)


@settings(max_examples=100, deadline=None)
@given(text=st.binary(max_size=200))
def test_csv_random_bytes_raise_only_data_errors(text):
    try:
        csv_decode(text)
    except DataError as exc:
        assert "f.csv" in str(exc)


def test_content_types_tolerate_case_spaces_and_parameters():
    m = media.parse("Text/CSV ; Label_Size=0")
    assert m.essence == "text/csv" and m.params == {"label_size": "0"}
    assert media.parse("application/x-recordio-protobuf").params == {}


def test_rebatch_cuts_exact_sizes():
    blocks = [Block(np.full((n, 2), n, np.float32), np.zeros(n, np.float32)) for n in (3, 10, 1, 7)]
    sizes = [len(b) for b in rebatch(blocks, 4)]
    assert sizes == [4, 4, 4, 4, 4, 1]


def test_channel_files_recursive_sorted_hidden_skipped_and_gzip(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "2.csv").write_text("x")
    (tmp_path / "a.csv").write_text("y")
    (tmp_path / ".DS_Store").write_text("z")
    (tmp_path / ".hidden" / "c.csv").write_text("w")
    with gzip.open(tmp_path / "b" / "1.csv.gz", "wb") as f:
        f.write(b"1,2\n" * 1000)
    files = channel_files(tmp_path, tmp_path.parent)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.csv", "b/1.csv.gz", "b/2.csv"]
    assert b"".join(file_chunks(files[1], 100)) == b"1,2\n" * 1000
    (tmp_path / "fake.gz").write_text("plain")
    with pytest.raises(DataError, match="not gzip"):
        list(file_chunks(tmp_path / "fake.gz"))


def test_fifo_waits_for_a_late_writer_and_reads_to_eof(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "payload").write_bytes(data)

    def late_writer():
        time.sleep(0.7)  # the FIFO appears late, and the writer attaches later still
        subprocess.run([sys.executable, str(FEEDER), str(tmp_path), "train", str(tmp_path / "payload")], check=True)

    t = threading.Thread(target=late_writer)
    t.start()
    got = b"".join(fifo_chunks(tmp_path / "train_0", timeout=20, chunk_size=1 << 20))
    t.join()
    assert got == data


def test_fifo_with_no_writer_times_out_with_a_clear_error(tmp_path):
    os.mkfifo(tmp_path / "train_0")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"no writer attached to .*train_0 within 0.5 s"):
        list(fifo_chunks(tmp_path / "train_0", timeout=0.5))
    assert time.monotonic() - started < 3


def test_missing_fifo_times_out_with_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"FIFO .*train_3 did not appear within 0.3 s"):
        list(fifo_chunks(tmp_path / "train_3", timeout=0.3))


def test_empty_epoch_is_an_empty_read_not_an_error(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    feeder = subprocess.Popen([sys.executable, str(FEEDER), str(tmp_path), "train", str(tmp_path / "empty")])
    assert b"".join(fifo_chunks(tmp_path / "train_0", timeout=10)) == b""
    assert feeder.wait(10) == 0
