"""The SageMaker Python SDK's local mode against the image, under real Docker (.ci/docker_test.sh starts the daemon).

    python .ci/sdk_local_mode.py IMAGE

What a user does, checked at each step: fit with a RecordIO-protobuf channel written by the SDK's own writer and a
CSV channel; deploy and predict through the SDK's CSV, JSON and Record serializers and JSON/CSV deserializers; a
batch transform with Line split (one output line per input line, in order); a 2-instance job (two containers form
the Dask cluster over the compose network).
"""

from __future__ import annotations

import io
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # local mode needs a region and any credentials
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no credential lookup at the cloud metadata address
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
WORK = pathlib.Path(tempfile.mkdtemp(prefix="byoa-sdk-"))
(WORK / "sdk.yaml").write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(WORK / "sdk.yaml")

from sagemaker.amazon.common import RecordSerializer, write_numpy_to_dense_tensor  # noqa: E402
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.local import LocalSession  # noqa: E402
from sagemaker.serializers import CSVSerializer, JSONSerializer  # noqa: E402

ROLE = "arn:aws:iam::111111111111:role/local"


def log(message: str) -> None:
    print(f"[sdk-local {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"sdk local mode: {what}")


def data():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X.astype(np.float32), y.astype(np.float32), test_size=0.2,
                                                        stratify=y, random_state=0)
    (WORK / "train").mkdir()
    with open(WORK / "train" / "iris.pbr", "wb") as f:  # the SDK's own RecordIO-protobuf writer
        write_numpy_to_dense_tensor(f, X_train, y_train)
    (WORK / "test").mkdir()
    np.savetxt(WORK / "test" / "iris.csv", np.column_stack([y_test, X_test]), delimiter=",", fmt="%.6g")
    return X_test, y_test


def estimator(session, image: str, count: int, hyperparameters: dict) -> Estimator:
    return Estimator(image_uri=image, role=ROLE, instance_count=count, instance_type="local", sagemaker_session=session,
                     hyperparameters=hyperparameters, output_path=f"file://{WORK}/out-{count}")


def main(image: str) -> int:
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(WORK)}}
    X_test, y_test = data()
    channels = {"train": f"file://{WORK}/train", "test": f"file://{WORK}/test"}
    content = {"train": "application/x-recordio-protobuf", "test": "text/csv"}
    from sagemaker.inputs import TrainingInput

    inputs = {name: TrainingInput(uri, content_type=content[name]) for name, uri in channels.items()}

    log("fit: random-forest, train channel RecordIO-protobuf (the SDK's writer), test channel CSV")
    forest = estimator(session, image, 1, {"algorithm": "random-forest", "n_estimators": 50})
    forest.fit(inputs)
    check(forest.model_data.endswith("model.tar.gz") and pathlib.Path(forest.model_data[7:]).stat().st_size > 0, "no model.tar.gz")

    log("deploy and predict: CSV, JSON and Record serializers; JSON and CSV deserializers")
    predictor = forest.deploy(initial_instance_count=1, instance_type="local")
    try:
        expected = None
        for serializer in (CSVSerializer(), JSONSerializer(), RecordSerializer()):
            predictor.serializer, predictor.deserializer = serializer, JSONDeserializer()
            body = X_test.tolist() if isinstance(serializer, JSONSerializer) else X_test
            labels = [p["predicted_label"] for p in predictor.predict(body)["predictions"]]
            check(len(labels) == len(X_test), f"{type(serializer).__name__}: {len(labels)} predictions for {len(X_test)} rows")
            expected = expected or labels
            check(labels == expected, f"{type(serializer).__name__} predicted otherwise")
            log(f"  {type(serializer).__name__} -> JSON: {len(labels)} predictions")
        predictor.serializer, predictor.deserializer = CSVSerializer(), CSVDeserializer()  # Accept: the deserializer's
        rows = predictor.predict(X_test)
        check(len(rows) == len(X_test), f"CSV -> CSV: {len(rows)} rows")
        accuracy = float(np.mean(np.array(expected) == y_test))
        check(accuracy >= 0.9, f"test accuracy {accuracy:.3f}")
        log(f"  CSVSerializer -> CSVDeserializer: {len(rows)} rows; accuracy {accuracy:.3f}")
    finally:
        predictor.delete_endpoint()

    log("batch transform, Line split")
    (WORK / "transform").mkdir()
    np.savetxt(WORK / "transform" / "rows.csv", X_test, delimiter=",", fmt="%.6g")
    transformer = forest.transformer(instance_count=1, instance_type="local", strategy="MultiRecord", assemble_with="Line",
                                     accept="text/csv", output_path=f"file://{WORK}/transform-out")
    transformer.transform(f"file://{WORK}/transform", content_type="text/csv", split_type="Line", wait=True, logs=False)
    # AssembleWith=Line: the SDK writes a line end after each response, and ours already ends in one: a blank line
    # after each mini-batch, which CSV readers skip
    out = [line for line in (WORK / "transform-out" / "rows.csv.out").read_text().splitlines() if line]
    check(len(out) == len(X_test), f"transform: {len(out)} output lines for {len(X_test)} input lines")
    check([float(line.split(",")[-1]) for line in out] == expected, "transform: lines out of order or other predictions")
    log(f"  {len(out)} output lines, one per input line, in order")

    log("fit on 2 instances: two containers form the Dask cluster over the compose network")
    pair = estimator(session, image, 2, {"algorithm": "kmeans", "k": 3, "feature_dim": 4})
    logs = io.StringIO()
    stdout, sys.stdout = sys.stdout, Tee(sys.stdout, logs)
    try:
        pair.fit({"train": inputs["train"]})
    finally:
        sys.stdout = stdout
    text = logs.getvalue()
    check(pathlib.Path(pair.model_data[7:]).stat().st_size > 0, "2 instances: no model")
    check("#quality_metric: host=algo-1" in text and "test msd <loss>=" in text, "2 instances: no test msd metric line")
    check("cluster: 2 hosts joined" in text and "#throughput_metric: host=algo-2-" in text,
          "2 instances: the log does not show both hosts training together")
    log("  2 hosts joined one cluster; model written on the first; metric lines printed")
    log("SDK local mode passed")
    return 0


class Tee(io.TextIOBase):
    """stdout that is also kept: the SDK prints the containers' logs there."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
