"""text/libsvm: the parser against scikit-learn's, its messages, and training jobs whose records carry no width."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import CSV, LIBSVM, csv_bytes, libsvm_bytes, separable
from test_train_failures import failed

from byoa.data.libsvm_codec import LibsvmDecoder, parse_lines
from byoa.errors import DataError


def sklearn_reads(data: bytes, width: int | None = None):
    from sklearn.datasets import load_svmlight_file

    return load_svmlight_file(io.BytesIO(data), n_features=width, zero_based=True, dtype=np.float32)


def test_parses_what_scikit_learn_writes_and_reads_alike():
    rng = np.random.default_rng(4)
    X = sp.random(3000, 500, density=0.03, format="csr", random_state=5, dtype=np.float32)
    X.data = (X.data * 200 - 100).astype(np.float32)
    X = X.tolil()
    X[7] = 0  # a record with no features: a line that is only its label
    X = X.tocsr()
    y = rng.integers(0, 5, 3000)
    data = b"# a header\n" + libsvm_bytes(X, y).replace(b"\n", b" # a comment\n", 1)
    got, labels = parse_lines(data, "f", labelled=True)
    want, want_y = sklearn_reads(data, got.shape[1])
    assert got.shape == want.shape and (got != want).nnz == 0 and np.array_equal(labels, want_y)
    assert got.dtype == np.float32 and got.has_canonical_format


def test_in_any_chunking_the_decoder_gives_the_same_records():
    X, y = separable(n=500, d=6, seed=3)
    X[X < 0.3] = 0
    data = libsvm_bytes(X, y).replace(b"\n", b"\r\n")
    for chunk in (7, 100, len(data)):
        decoder = LibsvmDecoder("f")
        blocks = [b for i in range(0, len(data), chunk) for b in decoder.feed(data[i:i + chunk])] + decoder.finish()
        rows = sp.vstack([sp.csr_matrix(b.X, shape=(len(b), 6)) for b in blocks])
        assert np.array_equal(rows.toarray(), X) and np.array_equal(np.concatenate([b.y for b in blocks]), y)


def test_unsorted_indices_are_sorted_and_a_line_may_end_without_a_newline():
    X, y = parse_lines(b"1 3:1.5 0:2 # note\n0 2:1e-3", "f", labelled=True)
    assert X.toarray().tolist() == [[2, 0, 0, 1.5], [0, 0, np.float32(1e-3), 0]] and y.tolist() == [1, 0]
    assert X.has_sorted_indices


@pytest.mark.parametrize("text, says", [
    (b"1 0:1\n1:0.5 2:1\n", r"line 2 \(byte 6\) of f starts with '1:0.5' where its label belongs; a label is a number "
                            r"\(label:weight, an instance weight, is not supported\)"),
    (b"1 0:1 qid:2\n", r"line 1 \(byte 0\) of f has a qid: item \(ranking groups are not supported\)"),
    (b"# head\n1 0:1\n1 2:1 2:1\n", r"line 3 \(byte 13\) of f repeats index 2 \(item 2\)"),
    (b"1 0:1 -1:2\n", r"has item 2 '-1:2', which is not index:value"),
    (b"1 0:1 2:x\n", r"has item 2 '2:x', which is not index:value"),
    (b"1 0:1 2::1\n", r"has item 2 '2::1', which is not index:value"),
    (b"1 0:1 7\n", r"has item 2 '7', which is not index:value"),
    (b"yes 0:1\n", r"starts with 'yes' where its label belongs, and that is not a number"),
    (b"1 2147483647:1\n", r"whose index is beyond 2,147,483,646"),
    (b"1 " + b"9" * 5000 + b":1\n", r"whose index is beyond 2,147,483,646"),
    (b"1 0:1\x00\n", r"has item 1 '0:1.*', which is not index:value"),
])
def test_a_line_that_is_not_libsvm_is_named_with_its_byte_and_problem(text, says):
    with pytest.raises(DataError, match=says) as caught:
        parse_lines(text, "f", labelled=True)
    assert "\n" not in str(caught.value)


def test_training_files_are_not_quoted():
    with pytest.raises(DataError) as caught:
        parse_lines(b"1 0:secret\n", "f", labelled=True, quote=False)
    assert "secret" not in str(caught.value) and "has item 1, which is not index:value" in str(caught.value)


# ----------------------------------------------------------------------------- training jobs


FM = {"algorithm": "factorization-machines", "predictor_type": "binary_classifier", "feature_dim": 8, "num_factors": 2}


@pytest.fixture(scope="module")
def data():
    X, y = separable(n=1200, d=8, seed=6)
    X[np.abs(X) < 0.5] = 0
    return X, y


def test_an_index_beyond_feature_dim_fails_naming_the_record(job, data):
    X, y = data
    bad = libsvm_bytes(X[:300], y[:300]) + b"1 0:1 9:2\n"
    job.hyperparameters(FM).channel("train", bad, LIBSVM)
    failed(job.run(), r"part-0: record 300 has feature index 9, beyond feature_dim=8 \(indices count from 0\)")


def test_a_streaming_algorithm_without_feature_dim_asks_for_it(job, data):
    X, y = data
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier"})
    job.channel("train", libsvm_bytes(X, y), LIBSVM)
    failed(job.run(), r"is text/libsvm, whose records carry no width, and this algorithm streams its records: set feature_dim")


def test_a_bad_line_in_a_training_file_fails_with_its_line_and_byte(job, data):
    X, y = data
    good = libsvm_bytes(X[:5], y[:5])
    job.hyperparameters({"algorithm": "xgboost", "objective": "binary:logistic", "num_round": 5})
    job.channel("train", good + b"1:0.5 3:1\n", LIBSVM)
    lines = good.count(b"\n")
    failed(job.run(), rf"line {lines + 1} \(byte {len(good)}\) of .*part-0 starts with index:value where its label belongs")


def test_the_files_suffix_says_libsvm_when_no_content_type_is_given(job, data):
    X, y = data
    job.hyperparameters({"algorithm": "xgboost", "objective": "binary:logistic", "num_round": 20})
    job.channel("train", libsvm_bytes(X[:1000], y[:1000]), filename="part-0.libsvm")
    job.channel("test", libsvm_bytes(X[1000:], y[1000:]), filename="part-0.svm")
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("test", "roc_auc_score") > 0.85
    _, model = job.model()
    assert model.n_features == 8


def test_xgboost_takes_the_widest_of_train_and_validation_and_refuses_a_wider_test_record(make_job, data):
    """A libsvm model is as wide as its widest training or validation record; a test record reaching beyond it
    names itself (the built-in's xgboost would stop on a column-count mismatch)."""
    X, y = data
    narrow = X.copy()
    narrow[:, 7] = 0  # the training records never reach index 7; the validation records do
    hp = {"algorithm": "xgboost", "objective": "binary:logistic", "num_round": 10}
    job = make_job("wide").hyperparameters(hp)
    job.channel("train", libsvm_bytes(narrow[:800], y[:800]), LIBSVM)
    job.channel("validation", libsvm_bytes(X[800:1000], y[800:1000]), LIBSVM)
    job.channel("test", libsvm_bytes(X[1000:], y[1000:]), LIBSVM)
    result = job.run()
    assert result.rc == 0, result.log
    assert job.model()[1].n_features == 8

    job = make_job("narrow").hyperparameters(hp)
    job.channel("train", libsvm_bytes(narrow[:800], y[:800]), LIBSVM)
    job.channel("validation", libsvm_bytes(narrow[800:1000], y[800:1000]), LIBSVM)
    job.channel("test", libsvm_bytes(X[1000:], y[1000:]), LIBSVM)
    row = int(np.flatnonzero(X[1000:, 7])[0])
    failed(job.run(), rf"channel 'test': record {row} has feature index 7, beyond the model's 7 features \(indices count from 0\)")


def test_libsvm_beside_csv_is_widened_to_the_csv_width(job, data):
    X, y = data
    narrow = X.copy()
    narrow[:, 6:] = 0
    job.hyperparameters({"algorithm": "random-forest", "n_estimators": 20, "predictor_type": "classifier"})
    job.channel("train", csv_bytes(X[:1000], y[:1000]), CSV)
    job.channel("test", libsvm_bytes(narrow[1000:], y[1000:]), LIBSVM)
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("test", "binary_classification_accuracy") > 0.6
