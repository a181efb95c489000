"""Every decoder under structure-aware fuzzing (tests/fuzzing.py). A sample here; bench/fuzz.py runs >= 200k cases each.

FUZZ_EXAMPLES sets the number of cases per decoder (default 300).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@fuzz
@given(fuzzing.json_bodies)
def test_json_bodies(body):
    fuzzing.check_request("application/json", body)


@fuzz
@given(fuzzing.jsonlines_bodies)
def test_jsonlines_bodies(body):
    fuzzing.check_request("application/jsonlines", body)


@fuzz
@given(fuzzing.csv_bodies())
def test_csv_bodies(body):
    fuzzing.check_request("text/csv", body)


@fuzz
@given(fuzzing.recordio_bodies())
def test_recordio_protobuf_bodies(body):
    fuzzing.check_request("application/x-recordio-protobuf", body)


@fuzz
@given(fuzzing.libsvm_bodies())
def test_libsvm_bodies(body):
    fuzzing.check_libsvm(body)


@fuzz
@given(fuzzing.npy_bodies())
def test_npy_bodies(body):
    fuzzing.check_npy(body)


@fuzz
@given(fuzzing.csv_bodies(), st.integers(1, 64))
def test_training_csv_decoder(data, chunk):
    fuzzing.check_training_decoder("csv", data, chunk)


@fuzz
@given(fuzzing.recordio_bodies(), st.integers(1, 256))
def test_training_recordio_protobuf_decoder(data, chunk):
    fuzzing.check_training_decoder("recordio-protobuf", data, chunk)


@fuzz
@given(fuzzing.libsvm_bodies(), st.integers(1, 64))
def test_training_libsvm_decoder(data, chunk):
    fuzzing.check_training_decoder("libsvm", data, chunk)
