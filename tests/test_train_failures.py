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
    failed(job.run(), r"no train channel: .* 'train' \(or 'training'\) channel \(.*\); got \['validation'\]")


def test_corrupt_recordio_names_byte_and_file(job):
    data = bytearray(sdk_recordio(X))
    stride = len(data) // len(X)
    data[7 * stride : 7 * stride + 4] = b"\0\0\0\0"
    job.hyperparameters(KMEANS).channel("train", bytes(data), PROTOBUF, filename="part-7.pbr")
    failed(job.run(), rf"corrupt RecordIO: no record starts at byte {7 * stride} of .*part-7.pbr")


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
    result = other.run()
    failed(result, r"line 6 .* column 2: not a number")
    assert "oops" not in result.failure  # file contents are never quoted


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


# ----------------------------------------------------------------------------- hostile channels


def test_links_in_a_channel_reach_each_file_once_and_never_loop(job):
    """A link back to the channel folder (twice over) neither repeats the records nor hangs."""
    y = (X[:, 0] > 0.5).astype(np.float32)
    job.hyperparameters({"algorithm": "decision-tree"}).channel("train", csv_bytes(X, y), CSV, filename="d.csv")
    folder = job.data_dir / "train"
    (folder / "loop").symlink_to(".")
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to("..")
    (folder / "same.csv").symlink_to("d.csv")  # the same file under another name: read once
    result = job.run(timeout=60)
    assert result.rc == 0, result.log
    assert "1 files" in result.stderr
    sizes = json.loads((job.root / "output" / "data" / "evaluation.json").read_text())["split"]["sizes"]
    assert sum(sizes.values()) == len(X)


def test_a_link_out_of_the_data_folder_is_refused_naming_it_and_quoting_nothing(job, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("hunter2,s3cr3t\n")
    job.hyperparameters(KMEANS).channel("train", csv_bytes(X), CSV + ";label_size=0", filename="d.csv")
    (job.data_dir / "train" / "other.csv").symlink_to(secret)
    result = job.run()
    failed(result, r"train/other.csv leads to .*secret.csv, outside the channel's folder .* and the data folder")
    assert "hunter2" not in result.failure and "s3cr3t" not in result.log


@pytest.mark.parametrize("target", ["/", "data"])
def test_a_channel_folder_that_is_the_root_or_the_data_folder_is_a_configuration_error(job, target):
    job.hyperparameters(KMEANS).channel("train", None, CSV + ";label_size=0")
    (job.data_dir / "train").symlink_to("/" if target == "/" else job.data_dir)
    failed(job.run(), r"channel folder .*train is .*, which holds the whole data folder .*: it cannot be one channel")


def test_folders_nested_absurdly_deep_are_refused(job):
    job.hyperparameters(KMEANS).channel("train", csv_bytes(X), CSV + ";label_size=0", filename="d.csv")
    deep = job.data_dir / "train"
    for _ in range(40):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "x.csv").write_bytes(csv_bytes(X))
    failed(job.run(), r"folders nested more than 32 deep in a channel")


# ----------------------------------------------------------------------------- bounded decoders


def test_a_csv_file_without_line_ends_fails_at_once_naming_file_and_byte(job):
    job.hyperparameters(KMEANS).channel("train", b"1,2,3,4\n" + b"7" * 3_000_000, CSV + ";label_size=0", filename="d.csv")
    failed(job.run(env={"TRAIN_MAX_LINE_MB": "1"}), r"line 2 \(byte 8\) of .*d.csv runs past 1 MB without a line end")


def test_a_gzip_file_that_expands_absurdly_fails_at_once(job):
    import gzip

    bomb = gzip.compress(b"0,0,0\n" * 3_000_000, 9)  # 18 MB of valid CSV from ~30 kB: over 100 times from the first read
    job.hyperparameters(KMEANS).channel("train", bomb, CSV + ";label_size=0", filename="d.csv.gz")
    result = job.run(env={"TRAIN_MAX_GZIP_RATIO": "100"})
    failed(result, r"d.csv.gz expands more than 100 times .* a damaged or crafted archive\? \(the limit is TRAIN_MAX_GZIP_RATIO\)")


def test_compression_type_gzip_reads_files_whatever_their_names_and_fastfile_reads_as_file(make_job):
    """SageMaker lists Gzip and FastFile channels for this image (train --describe), so they must work as it sends them."""
    import gzip

    plain = make_job("plain")
    plain.hyperparameters(KMEANS).channel("train", csv_bytes(X), CSV + ";label_size=0")
    zipped = make_job("zipped")
    zipped.hyperparameters(KMEANS).channel("train", gzip.compress(csv_bytes(X)), CSV + ";label_size=0", filename="part-0",
                                           CompressionType="Gzip", TrainingInputMode="FastFile")
    expected, result = plain.run(), zipped.run()
    assert result.rc == 0, result.log
    assert result.metric("train", "msd") == expected.metric("train", "msd")
    assert "mode=File" in result.stderr


@pytest.mark.parametrize("config, message", [
    ({"CompressionType": "Gzip"}, r"part-0 is in a channel with CompressionType=Gzip but is not gzip data"),
    ({"CompressionType": "Zip"}, r"channel 'train': CompressionType='Zip' is not supported; use None or Gzip"),
    ({"TrainingInputMode": "Stream"}, r"channel 'train': TrainingInputMode='Stream' is not supported; use one of File, Pipe, FastFile"),
])
def test_channel_settings_this_image_cannot_read_fail_naming_them(job, config, message):
    job.hyperparameters(KMEANS).channel("train", csv_bytes(X), CSV + ";label_size=0", **config)
    failed(job.run(), message)


@pytest.mark.parametrize("multipart", [False, True])
def test_a_recordio_record_claiming_absurd_length_fails_at_once(job, multipart):
    import struct

    from byoa.data import recordio

    head = struct.pack("<II", recordio.MAGIC, 200_000_000)  # 200 MB claimed, 1 MB there
    if multipart:  # parts that are each small but join past the limit
        part = b"\0" * 1_000_000
        head = b"".join(struct.pack("<II", recordio.MAGIC, (flag << 29) | len(part)) + part for flag in (1, 2, 2, 2, 2))
    job.hyperparameters(KMEANS).channel("train", head + b"\0" * 1_000_000, PROTOBUF, filename="d.pbr")
    failed(job.run(env={"TRAIN_MAX_RECORD_MB": "3"}), r"the RecordIO record at byte \d+ of .*d.pbr claims [\d,]+ bytes, more than 3 MB")


@pytest.mark.parametrize("algorithm", [{"algorithm": "decision-tree"}, {"algorithm": "random-forest"},
                                       {"algorithm": "linear-learner", "predictor_type": "binary_classifier"}])
def test_records_claiming_absurdly_many_features_fail_at_once(job, algorithm):
    """A sparse shape of 2**31 - 1 features is a valid record, but scikit-learn's trees allocate per feature (21 GB
    before this check) and linear learner's weights are features x outputs: refused at the first record."""
    import scipy.sparse as sp

    from byoa.data.protobuf_codec import encode_rows

    rows = sp.csr_matrix((np.ones(40, np.float32), (np.arange(40), np.arange(40))), shape=(40, 2**31 - 1))
    job.hyperparameters(algorithm).channel("train", encode_rows(rows, np.arange(40, dtype=np.float32) % 2), PROTOBUF)
    failed(job.run(), r"d?part-0: record 0 has 2,147,483,647 features; training can take at most [\d,]+ within TRAIN_MAX_MODEL_MB=4096 "
                      r"\(.*\)\. Is the \(sparse\) shape right\?")


def test_a_feature_dim_beyond_what_training_can_hold_is_a_configuration_error(job):
    job.hyperparameters({**KMEANS, "feature_dim": 2**31 - 1}).channel("train", csv_bytes(X), CSV + ";label_size=0")
    failed(job.run(), r"feature_dim has 2,147,483,647 features; training can take at most")


# ----------------------------------------------------------------------------- user mistakes are one clear line


@pytest.mark.parametrize("hp, labels, message", [
    ({"algorithm": '["kmeans", "pca"]'}, None, r"the 'algorithm' hyperparameter must be one name; got a list"),
    ({"algorithm": "linear-learner", "predictor_type": "multiclass_classifier", "num_classes": 3}, "fraction",
     r"needs labels 0..2; found 7.5"),
    ({"algorithm": "random-forest"}, "fraction", r"predictor_type=classifier needs whole-number class labels; found 7.5"),
])
def test_user_mistakes_are_not_internal_errors(job, hp, labels, message):
    y = np.where(np.arange(len(X)) % 3 == 0, 7.5, np.arange(len(X)) % 3).astype(np.float32) if labels else None
    job.hyperparameters(hp).channel("train", csv_bytes(X, y) if y is not None else csv_bytes(X), CSV if y is not None else CSV + ";label_size=0")
    result = job.run()
    failed(result, message)
    assert "internal error" not in result.failure and "Traceback" not in result.failure


def test_a_bad_label_in_the_test_channel_is_a_data_error(job):
    y = (np.arange(len(X)) % 3).astype(np.float32)
    bad = y.copy()
    bad[5] = 4.0
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "multiclass_classifier", "num_classes": 3})
    job.channel("train", csv_bytes(X, y), CSV).channel("test", csv_bytes(X, bad), CSV)
    result = job.run()
    failed(result, r"channel 'test': predictor_type=multiclass_classifier with num_classes=3 needs labels 0..2; found 4")


def test_values_from_outside_cannot_forge_log_lines(job):
    """A hyperparameter (or platform) value with a line end is logged escaped: no forged metric line appears."""
    forged = "x\n#quality_metric: host=algo-1, test msd <loss>=0.0\n"
    job.hyperparameters({**KMEANS, "_tuning_objective_metric": forged, "sagemaker_job_name": forged})
    job.channel("train", csv_bytes(X), CSV + ";label_size=0")
    result = job.run()
    assert result.rc == 0, result.log
    assert not any(line.startswith("#quality_metric: host=algo-1, test msd <loss>=0.0") for line in result.log.splitlines())
    assert "x\\n#quality_metric" in result.stderr  # still there, escaped
    bad = make_bad = job.hyperparameters({**KMEANS, "k\n#quality_metric: host=algo-1, test msd <loss>=0.0": "2"}).run()
    assert bad.rc == 1 and not any(line.startswith("#quality_metric") for line in bad.log.splitlines())
