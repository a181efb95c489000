"""Every failure: one clear line in output/failure, a non-zero exit, an empty model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CSV, PROTOBUF, csv_bytes, sdk_recordio

KMEANS = {"algorithm": "kmeans", "k": 2, "feature_dim": 3, "mini_batch_size": 10}
X = np.random.default_rng(0).random((40, 3)).astype(np.float32)


def failed(result, pattern: str, rc: int = 1):
    import re

    assert result.rc == rc, result.log
    assert result.failure is not None, result.log
    first = result.failure.splitlines()[0]
    assert re.search(pattern, first), first
    assert len(first) <= 1024
    assert result.model_files == []
    return first


def test_bad_json_config(job):
    job.channel("train", csv_bytes(X), CSV + ";label_size=0")
    (job.config_dir / "hyperparameters.json").write_text("{not json")
    failed(job.run(), r"hyperparameters.json is not valid JSON")


def test_missing_train_channel(job):
    job.hyperparameters(KMEANS).channel("validation", csv_bytes(X), CSV)
    failed(job.run(), r"no training channel: .* 'train' \(or 'training'\) channel; got \['validation'\]")


def test_corrupt_recordio_names_byte_and_file(job):
    data = bytearray(sdk_recordio(X))
    stride = len(data) // len(X)
    data[7 * stride : 7 * stride + 4] = b"\0\0\0\0"
    job.hyperparameters(KMEANS).channel("train", bytes(data), PROTOBUF, filename="part-7.pbr")
    failed(job.run(), rf"bad magic 0x00000000 .* at byte {7 * stride} of .*part-7.pbr")


def test_protobuf_that_does_not_parse_names_the_record(job):
    from byoa.data import recordio

    payloads = list(recordio.iter_payloads(sdk_recordio(X)))
    payloads[12] = b"\x0a\xff\xff"
    job.hyperparameters(KMEANS).channel("train", recordio.encode_all(payloads), PROTOBUF, filename="p.pbr")
    failed(job.run(), r"record 12 \(byte \d+\) of .*p.pbr is not a valid protobuf Record")


def test_csv_wrong_column_count_and_non_number(job, make_job):
    text = csv_bytes(X).replace(b"\n", b"\n", 4)
    lines = text.splitlines(keepends=True)
    lines[5] = b"1,2\n"
    job.hyperparameters(KMEANS).channel("train", b"".join(lines), CSV + ";label_size=0", filename="d.csv")
    failed(job.run(), r"line 6 \(byte \d+\) of .*d.csv has 2 columns, expected 3")
    other = make_job("nan")
    lines[5] = b"1,oops,3\n"
    other.hyperparameters(KMEANS).channel("train", b"".join(lines), CSV + ";label_size=0", filename="d.csv")
    failed(other.run(), r"line 6 .* column 2: 'oops' is not a number")


def test_feature_count_differs_from_feature_dim(job):
    job.hyperparameters({**KMEANS, "feature_dim": 4}).channel("train", sdk_recordio(X), PROTOBUF, filename="p.pbr")
    failed(job.run(), r"p.pbr: records from 0 on have 3 features, but feature_dim=4")


def test_empty_data(job):
    job.hyperparameters(KMEANS).channel("train", b"", CSV + ";label_size=0", filename="empty.csv")
    failed(job.run(), r"channel 'train' has no records")


def test_pipe_writer_never_attaching(job):
    import os

    job.hyperparameters(KMEANS).channel("train", None, PROTOBUF, mode="Pipe")
    os.mkfifo(job.data_dir / "train_0")
    failed(job.run(env={"TRAIN_PIPE_TIMEOUT": "1"}), r"no writer attached to .*train_0 within 1 s")


def test_unknown_missing_and_invalid_hyperparameters(make_job):
    cases = [
        ({**KMEANS, "kk": 3}, r"unknown hyperparameter 'kk' for kmeans; known: .*extra_center_factor.*"),
        ({"algorithm": "kmeans", "feature_dim": 3}, r"missing required hyperparameter for kmeans: k"),
        ({**KMEANS, "k": "three"}, r"invalid value for hyperparameter k: 'three'; allowed: integer >= 2"),
        ({**KMEANS, "init_method": "best"}, r"invalid value for hyperparameter init_method: 'best'; allowed: one of random, kmeans\+\+"),
        ({"algorithm": "knn", "k": 3, "feature_dim": 3, "predictor_type": "classifier", "sample_size": 10,
          "dimension_reduction_type": "fjlt"}, r"dimension_reduction_type=fjlt is not supported by this image; supported: none, sign"),
        ({"algorithm": "linear-learner", "predictor_type": "regressor", "loss": "logistic"},
         r"loss=logistic does not fit predictor_type=regressor"),
        ({"algorithm": "svm"}, r"unknown algorithm 'svm'; known: kmeans, knn, linear-learner, pca, decision-tree, random-forest"),
        ({"k": 3}, r"no algorithm chosen"),
    ]
    for i, (hp, pattern) in enumerate(cases):
        j = make_job(f"hp{i}")
        j.hyperparameters(hp).channel("train", csv_bytes(X, np.zeros(len(X))), CSV)
        failed(j.run(), pattern)


def test_platform_hyperparameters_and_json_encoded_values_are_accepted(job):
    hp = {**KMEANS, "_tuning_objective_metric": "test:msd", "sagemaker_program": "x", "sagemaker_region": '"us-east-1"',
          "eval_metrics": '["msd","ssd"]', "init_method": '"kmeans++"', "k": '"2"'}
    job.hyperparameters(hp).channel("train", csv_bytes(X), CSV + ";label_size=0")
    result = job.run()
    assert result.rc == 0, result.log
    assert "platform hyperparameter _tuning_objective_metric=test:msd noted" in result.stderr
    assert result.metric("train", "ssd") > 0
    assert '"init_method": "kmeans++"' in result.stderr


def test_ignored_hyperparameters_are_logged(job):
    hp = {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "unbias_data": "true", "mini_batch_size": 10}
    job.hyperparameters(hp).channel("train", csv_bytes(X, (X[:, 0] > 0.5).astype(np.float32)), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    assert "hyperparameter unbias_data=True is accepted but has no effect in this image" in result.stderr


def test_algorithm_from_the_environment(job):
    job.hyperparameters({k: v for k, v in KMEANS.items() if k != "algorithm"}).channel("train", csv_bytes(X), CSV + ";label_size=0")
    result = job.run(env={"SAGEMAKER_ALGORITHM": "kmeans"})
    assert result.rc == 0, result.log
    assert json.loads((job.root / "model" / "manifest.json").read_text())["algorithm"] == "kmeans"


def test_unlabelled_data_for_a_supervised_algorithm(job):
    job.hyperparameters({"algorithm": "decision-tree"}).channel("train", sdk_recordio(X), PROTOBUF)
    failed(job.run(), r"channel 'train' has records without a label")


@pytest.mark.parametrize("resources, env, message", [
    ({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}, {"TRAIN_HOST_ADDRESSES": '{"algo-1": "127.0.0.1"}'},
     r"TRAIN_HOST_ADDRESSES has no address for hosts \['algo-2'\]"),
    ({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}, {"TRAIN_HOST_ADDRESSES": "{not json"},
     r"TRAIN_HOST_ADDRESSES is not a JSON object"),
    ({"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]}, {"TRAIN_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.2"}'},
     r"current_host 'algo-9' is not in hosts \['algo-1', 'algo-2'\]"),
    ({"current_host": "algo-1", "hosts": ["byoa-no-such-host-1.invalid", "algo-1"]}, {"TRAIN_JOIN_TIMEOUT": "1"},
     r"host name 'byoa-no-such-host-1.invalid' does not resolve \(after 1 s\)"),
])
def test_multi_host_configuration_errors_fail_before_any_cluster_starts(job, resources, env, message):
    job.hyperparameters(KMEANS).channel("train", csv_bytes(X), CSV + ";label_size=0")
    (job.config_dir / "resourceconfig.json").write_text(json.dumps(resources))
    failed(job.run(env), message)


@pytest.mark.parametrize("bad", [b"1,nan,3\n", b"1,inf,3\n"])
def test_non_finite_features(job, bad):
    job.hyperparameters(KMEANS).channel("train", csv_bytes(X) + bad, CSV + ";label_size=0", filename="d.csv")
    failed(job.run(), r"d.csv: record 40 has a NaN or infinite feature value")


def test_unlabelled_test_channel_is_named(job):
    y = (X[:, 0] > 0.5).astype(np.float32)
    job.hyperparameters({"algorithm": "decision-tree"}).channel("train", sdk_recordio(X, y), PROTOBUF)
    job.channel("test", sdk_recordio(X), PROTOBUF)
    failed(job.run(), r"channel 'test' has records without a label")


def test_sigterm_while_waiting_for_a_pipe_writer_stops_within_10s(job):
    import os
    import signal
    import time

    from conftest import wait_for

    job.hyperparameters(KMEANS).channel("train", None, PROTOBUF, mode="Pipe")
    os.mkfifo(job.data_dir / "train_0")
    proc = job.start(env={"TRAIN_PIPE_TIMEOUT": "120"})
    assert wait_for(lambda: False, timeout=1.5) is False  # let it reach the FIFO
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    result = job.finish(proc, timeout=30)
    assert time.monotonic() - started < 10
    failed(result, r"training stopped by SIGTERM", rc=143)


def test_linear_learner_stops_early_on_the_validation_channel(job, cancer):
    X_train, X_test, y_train, y_test = cancer
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": 16,
                         "epochs": 60, "early_stopping_patience": 2, "early_stopping_tolerance": 0.05})
    job.channel("train", csv_bytes(X_train, y_train), CSV).channel("validation", csv_bytes(X_test, y_test), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    assert "stopping early after epoch" in result.stderr
    assert "epoch=0, validation binary_classification_cross_entropy_objective <loss>=" in result.stdout
    assert "chosen on validation data" in result.stderr
    assert result.stdout.count("#progress_metric") < 60
