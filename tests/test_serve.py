"""container/serve end to end: real nginx + gunicorn on loopback, every algorithm, content type and error."""

from __future__ import annotations

import io
import resource
import socket
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from byoa.data.byoa_record_pb2 import Record
from byoa.data import recordio
from conftest import CONTAINER, CSV, MODELS, Job, csv_bytes, encode_rows, libsvm_bytes, seal, separable, wait_for
from serve_helpers import ServeProcess

EXPECTED_OUTPUTS = {
    "kmeans": ["closest_cluster", "distance_to_cluster"],
    "knn": ["predicted_label"],
    "ll-binary": ["score", "predicted_label"],
    "ll-multiclass": ["score", "predicted_label"],
    "ll-regressor": ["score"],
    "pca": ["projection"],
    "decision-tree": ["score", "predicted_label"],
    "random-forest": ["score", "predicted_label"],
    "fm-binary": ["score", "predicted_label"],
    "xgb-binary": ["score", "predicted_label"],
    "xgb-multiclass": ["score", "predicted_label"],
}


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, trained):
    job, X = trained(request.param)
    server = ServeProcess(job.root).start()
    yield request.param, server, job.model()[1], X[:7]
    assert server.stop() == 0


# ----------------------------------------------------------------------------- request encoders (the client side)


def requests_for(X: np.ndarray) -> dict[str, tuple[bytes, str]]:
    X = X.astype(np.float32)
    sparse = sp.csr_matrix(X)
    forms = []
    for i, row in enumerate(X.tolist()):  # the three JSON instance forms, mixed
        nz = [j for j, v in enumerate(row) if v != 0]
        forms.append([{"features": row}, {"data": {"features": {"values": row}}},
                      {"data": {"features": {"keys": nz, "shape": [len(row)], "values": [row[j] for j in nz]}}}][i % 3])
    npy = io.BytesIO()
    np.save(npy, X)
    return {
        "csv": (csv_bytes(X), "text/csv"),
        "csv-params": (csv_bytes(X), "Text/CSV; charset=utf-8; label_size=0"),
        "json": (json.dumps({"instances": forms}).encode(), "application/json"),
        "jsonlines": ("\n".join(json.dumps(f) for f in forms).encode(), "application/jsonlines"),
        "protobuf-dense": (encode_rows(X), "application/x-recordio-protobuf"),
        "protobuf-sparse": (encode_rows(sparse), "application/x-recordio-protobuf"),
        "npy": (npy.getvalue(), "application/x-npy"),
        "libsvm": (libsvm_bytes(X, np.zeros(len(X))), "text/libsvm"),  # a label first, as training lines have: ignored
        "libsvm-no-label": (libsvm_bytes(X), "text/x-libsvm"),
    }


def parse_response(body: bytes, accept: str, names: list[str]) -> dict[str, np.ndarray]:
    """Response body -> name -> array, whatever the response type."""
    if accept == "application/json":
        rows = json.loads(body)["predictions"]
    elif accept == "application/jsonlines":
        rows = [json.loads(line) for line in body.decode().splitlines()]
    elif accept == "application/x-recordio-protobuf":
        rows = []
        for payload in recordio.iter_payloads(body, "response"):
            r = Record()
            r.ParseFromString(payload)
            rows.append({k: list(v.float32_tensor.values) for k, v in r.label.items()})
            rows[-1] = {k: (v[0] if len(v) == 1 else v) for k, v in rows[-1].items()}
    else:
        return {"csv": np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)}
    assert all(list(r) == names or sorted(r) == sorted(names) for r in rows), rows[0]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in names}


ACCEPTS = ["application/json", "application/jsonlines", "text/csv", "application/x-recordio-protobuf"]


def test_every_content_type_and_accept_gives_the_models_predictions(served):
    case, server, model, X = served
    expected = model.predict(X)
    names = EXPECTED_OUTPUTS[case]
    for kind, (body, content_type) in requests_for(X).items():
        for accept in ACCEPTS:
            reply = server.invoke(body, content_type, accept)
            assert reply.status == 200, (kind, accept, reply.body[:300])
            assert reply.headers["content-type"].startswith(accept)
            got = parse_response(reply.body, accept, names)
            if "csv" in got:  # a model whose CSV answers are bare (xgboost, as the built-in) names those outputs
                want = np.hstack([np.asarray(expected[n], np.float64).reshape(len(X), -1) for n in model.csv_outputs or names])
                np.testing.assert_allclose(got["csv"], want, rtol=1e-4, atol=1e-4, err_msg=f"{kind} -> csv")
                continue
            for name in names:
                np.testing.assert_allclose(got[name], np.asarray(expected[name], np.float64), rtol=1e-4, atol=1e-4,
                                           err_msg=f"{case}: {kind} -> {accept}: {name}")


def test_default_accept_and_wildcards(served):
    case, server, model, X = served
    body, ct = requests_for(X)["csv"]
    for accept in (None, "*/*", "application/*", "text/html;q=0.9, */*;q=0.1"):
        reply = server.invoke(body, ct, accept)
        assert reply.status == 200 and reply.headers["content-type"].startswith("application/json"), accept
    reply = server.invoke(body, ct, "text/html, text/csv;q=0.5")
    assert reply.headers["content-type"].startswith("text/csv")


def test_execution_parameters_and_unknown_routes(served):
    _, server, _, _ = served
    assert server.request("GET", "/execution-parameters").json() == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    for method, path in (("GET", "/nope"), ("POST", "/ping"), ("GET", "/invocations")):
        reply = server.request(method, path)
        assert reply.status in (404, 405) and reply.headers["content-type"] == "application/json"
        assert set(reply.json()) == {"error", "message"}


# ----------------------------------------------------------------------------- one shared server for the rest


@pytest.fixture(scope="module")
def kmeans_server(trained):
    job, X = trained("kmeans")
    server = ServeProcess(job.root).start()
    yield server, X
    assert server.stop() == 0


GOOD = (b"5.1,3.5,1.4,0.2\n", "text/csv")


def _record_with_an_11_byte_key() -> bytes:
    """A Record whose sparse key is a varint of 11 bytes (protobuf allows 10): hand-built, no library writes it."""
    keys = bytes.fromhex("0a040000803f") + b"\x12\x0b" + b"\x81" * 10 + b"\x01" + bytes.fromhex("1a0104")  # values, keys, shape [4]
    tensor = b"\x12" + bytes([len(keys)]) + keys
    entry = b"\x0a\x06values\x12" + bytes([len(tensor)]) + tensor
    return b"\x0a" + bytes([len(entry)]) + entry


@pytest.mark.parametrize("body, content_type, accept, status, says", [
    (b"5.1,3.5,1.4,0.2", "text/plain", None, 415, "Content-Type 'text/plain' is not supported"),
    (b"5.1,3.5,1.4,0.2", "text/csv", "text/html", 406, "Accept 'text/html' names no supported response type"),
    (b"", "text/csv", None, 400, "the request body is empty"),
    (b"5.1,3.5,1.4", "text/csv", None, 400, "each record needs 4 features (the model's); got 3"),
    (b"5.1,3.5,1.4,0.2\n5.1,3.5,1.4", "text/csv", None, 400, "line 2 (byte 16) of the CSV body has 3 columns"),
    (b"5.1,abc,1.4,0.2", "text/csv", None, 400, "column 2: 'abc' is not a number"),
    (b"5.1,nan,1.4,0.2", "text/csv", None, 400, "record 0, feature 1 is nan: the model needs finite numbers"),
    (b"5.1,3.5,1.4,0.2\n\n5.1,3.5,1.4,0.2", "text/csv", None, 400, "line 2 of the CSV body is empty"),
    (b'{"instances": [{"features": [1, 2, 3]}]}', "application/json", None, 400, "got 3"),
    (b'{"instances": [{"features": [1, "x", 3, 4]}]}', "application/json", None, 400, 'instance 0, feature 1: "x" is not a number'),
    (b'{"instances": [{"features": [1, 2, 3, 4]}, {"features": [1, 2]}]}', "application/json", None, 400, "instance 1 has 2 values"),
    (b'{"instances": [{"features": [1, 2, 3, Infinity]}]}', "application/json", None, 400, "is inf"),
    (b'{"instances": [', "application/json", None, 400, "the JSON body is not valid JSON"),
    (b'{"instances": [{"data": {"features": {"keys": [9], "shape": [4], "values": [1]}}}]}', "application/json", None, 400,
     "key 9 is not an index in [0, 4)"),
    (b'{"features": [1, 2, 3, 4]}\nnot json', "application/jsonlines", None, 400, "line 2 of the JSON Lines body is not valid JSON"),
    (recordio.encode(b"x" * 40)[:20], "application/x-recordio-protobuf", None, 400, "truncated RecordIO record at byte 0"),
    (b"\x00\x01garbage and more bytes", "application/x-recordio-protobuf", None, 400, "corrupt RecordIO: no record starts at byte 0"),
    (b"not an npy file", "application/x-npy", None, 400, "the body is not a .npy array this server reads"),
    # each of these was a 500 before (RecursionError, OverflowError, ValueError from numpy's concatenate)
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", None, 400, "nests arrays or objects too deeply"),
    (b'{"instances": [{"data": {"features": {"keys": [0], "shape": [18446744073709551616], "values": [1]}}}]}', "application/json",
     None, 400, "needs 'shape': [number of features], at most 2,147,483,647"),
    (b"[[" + b"9" * 5000 + b", 1, 1, 1]]", "application/json", None, 400, "an integer of more than 4300 digits"),
    (encode_rows(np.ones((1, 4), np.float32)) + encode_rows(np.ones((1, 3), np.float32)), "application/x-recordio-protobuf", None, 400,
     "record 1 of the RecordIO-protobuf body has 3 features, the records before it have 4"),
    (recordio.encode(_record_with_an_11_byte_key()), "application/x-recordio-protobuf", None, 400, "a varint longer than 10 bytes"),
    (b"0:5.1 1:3.5 4:1", "text/libsvm", None, 400, "record 0 has feature index 4, beyond the model's 4 features"),
    (b"0:5.1 1:3.5\n\n2:1", "text/libsvm", None, 400, "line 2 (byte 12) of the libsvm body holds no record"),
    (b"1 0:5.1 0:3.5", "text/libsvm", None, 400, "line 1 (byte 0) of the libsvm body repeats index 0 (item 2)"),
    (b"1 0:5.1 qid:3", "text/libsvm", None, 400, "has a qid: item (ranking groups are not supported)"),
    (b"0:5.1 1:x", "text/libsvm", None, 400, "has item 2 '1:x', which is not index:value"),
    (b"0:5.1 1:nan", "text/libsvm", None, 400, "record 0, feature 1 is nan"),
])
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(kmeans_server, body, content_type, accept, status, says):
    server, _ = kmeans_server
    reply = server.invoke(body, content_type, accept)
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] and says in reply.json()["message"], reply.json()
    assert server.invoke(*GOOD).status == 200


def test_npy_bodies_are_never_unpickled(kmeans_server, tmp_path):
    server, _ = kmeans_server
    evil = io.BytesIO()
    np.save(evil, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    reply = server.invoke(evil.getvalue(), "application/x-npy")
    assert reply.status == 400 and "object arrays are refused" in reply.json()["message"]


def test_payload_limits_real_time(kmeans_server):
    server, X = kmeans_server
    row = b"5.1,3.5,1.4,0.2\n"
    six_mb = row * (6 * 1024 * 1024 // len(row) - 1)
    reply = server.invoke(six_mb, "text/csv", "text/csv")
    assert reply.status == 200 and reply.body.count(b"\n") == six_mb.count(b"\n")
    reply = server.invoke(row * (7 * 1024 * 1024 // len(row)), "text/csv")
    assert reply.status == 413 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == "payload_too_large" and "6 MB" in reply.json()["message"]
    assert server.invoke(*GOOD).status == 200


def test_batch_transform_one_line_per_line_and_a_100_mb_limit(trained):
    job, X = trained("kmeans")
    server = ServeProcess(job.root, {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"}).start()
    try:
        params = server.request("GET", "/execution-parameters").json()
        assert params == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 100}
        rows = np.tile(X, (int(50e6 / len(csv_bytes(X))) + 1, 1))
        body = csv_bytes(rows)
        assert len(body) > 50e6
        reply = server.invoke(body, "text/csv", "text/csv")
        assert reply.status == 200
        lines = reply.body.decode().splitlines()
        assert len(lines) == len(rows)
        np.testing.assert_allclose(np.loadtxt(lines[: len(X)], delimiter=","), np.loadtxt(lines[len(X) : 2 * len(X)], delimiter=","))
        jl = b"\n".join(json.dumps({"features": r}).encode() for r in X.tolist()) + b"\n"
        reply = server.invoke(jl, "application/jsonlines", "application/jsonlines")
        assert reply.status == 200 and len(reply.body.decode().splitlines()) == len(X)
        assert "timeout 600 s, batch transform" in server.output()
    finally:
        assert server.stop() == 0


def test_sagemaker_sdk_serializers_and_deserializers(kmeans_server):
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
    from sagemaker.base_deserializers import CSVDeserializer, JSONDeserializer
    from sagemaker.base_serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer, NumpySerializer

    server, X = kmeans_server
    X = X[:5]
    for serializer in (CSVSerializer(), JSONSerializer(), NumpySerializer(), RecordSerializer(),
                       JSONLinesSerializer()):
        payload = X.tolist() if isinstance(serializer, JSONLinesSerializer) else X
        body = serializer.serialize(payload)
        body = body.encode() if isinstance(body, str) else body.read() if hasattr(body, "read") else body
        for deserializer, accept in ((JSONDeserializer(), "application/json"), (CSVDeserializer(), "text/csv"),
                                     (RecordDeserializer(), "application/x-recordio-protobuf")):
            reply = server.invoke(body, serializer.CONTENT_TYPE, accept)
            assert reply.status == 200, (serializer, reply.body)
            parsed = deserializer.deserialize(io.BytesIO(reply.body), accept)
            if accept == "application/json":
                clusters = [p["closest_cluster"] for p in parsed["predictions"]]
            elif accept == "text/csv":
                clusters = [float(row[0]) for row in parsed]
            else:
                clusters = [r.label["closest_cluster"].float32_tensor.values[0] for r in parsed]
            assert len(clusters) == 5, (serializer, accept)


def test_binary_linear_learner_uses_the_threshold_chosen_at_training(tmp_path):
    X_train, y_train = separable(n=4000, imbalance=0.1)
    job = Job(tmp_path / "opt_ml")
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 3,
                         "binary_classifier_model_selection_criteria": "precision_at_target_recall", "target_recall": 0.95})
    job.channel("train", csv_bytes(X_train, y_train), CSV)
    assert job.run().rc == 0
    _, model = job.model()
    assert model.threshold != 0.5
    X_test, y_test = X_train, y_train
    # records on the line from a negative to a positive example: their scores sweep across both thresholds
    t = np.linspace(0, 1, 400, dtype=np.float32)[:, None]
    X = (1 - t) * X_test[y_test == 0][0] + t * X_test[y_test == 1][0]
    server = ServeProcess(job.root).start()
    try:
        reply = server.invoke(csv_bytes(X), "text/csv", "application/json").json()["predictions"]
        scores = np.array([p["score"] for p in reply])
        labels = np.array([p["predicted_label"] for p in reply])
        np.testing.assert_array_equal(labels, (scores >= model.threshold).astype(int))
        differs = (scores >= model.threshold) != (scores >= 0.5)
        assert differs.sum() >= 2  # records that 0.5 would have labelled the other way
    finally:
        server.stop()


def test_sigterm_lets_a_slow_request_finish_then_exits_zero(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 50)).astype(np.float32)
    job = Job(tmp_path / "opt_ml")
    job.hyperparameters({"algorithm": "knn", "k": 10, "feature_dim": 50, "predictor_type": "regressor", "sample_size": 20000})
    job.channel("train", csv_bytes(X, X[:, 0]), CSV)
    assert job.run().rc == 0
    server = ServeProcess(job.root, {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}).start()
    body = csv_bytes(np.tile(X[:5000], (3, 1)))
    replies = []
    worker = threading.Thread(target=lambda: replies.append(server.invoke(body, "text/csv", "text/csv")))
    started = time.monotonic()
    worker.start()
    time.sleep(0.5)  # the request is in the worker now
    server.proc.send_signal(signal.SIGTERM)
    worker.join(60)
    assert replies and replies[0].status == 200 and replies[0].body.count(b"\n") == 15000
    assert server.proc.wait(30) == 0
    assert time.monotonic() - started < 30
    server.log.close()


def test_ping_is_503_json_while_starting_then_200(trained):
    job, _ = trained("kmeans")
    server = ServeProcess(job.root).start(wait=False)
    try:
        first = None
        deadline = time.monotonic() + 10
        while first is None and time.monotonic() < deadline:
            try:
                first = server.request("GET", "/ping")
            except OSError:
                time.sleep(0.005)  # nginx not listening yet
        assert first.status == 503 and first.headers["content-type"] == "application/json", first
        assert first.json()["error"] == "unavailable"
        server.wait_ready()
    finally:
        assert server.stop() == 0


def tampered_copy(job, base, manifest_change=lambda m: None, arrays_change=lambda a: None):
    """A copy of a trained model under ``base`` with its manifest or arrays changed (the checksum follows the arrays)."""
    (base / "model").mkdir(parents=True)
    with np.load(job.root / "model" / "model.npz") as f:
        arrays = dict(f)
    arrays_change(arrays)
    np.savez(base / "model" / "model.npz", **arrays)
    manifest = json.loads((job.root / "model" / "manifest.json").read_text())
    manifest_change(manifest)
    seal(base / "model", manifest)
    return base


def test_unreadable_model_answers_500_json_and_the_server_stays_up(trained, tmp_path):
    job, _ = trained("kmeans")
    base = tampered_copy(job, tmp_path / "opt_ml", manifest_change=lambda m: m.update(format_version=99))
    server = ServeProcess(base).start(wait=False)
    try:
        server.wait_ready(status=500)
        reply = server.request("GET", "/ping")
        assert reply.json()["error"] == "model_not_loaded" and "model format version 99" in reply.json()["message"]
        assert server.invoke(*GOOD).status == 500
    finally:
        assert server.stop() == 0


def _tree_change(**change):
    """An arrays_change for a tree model: ``name=(index, value)`` per node array."""

    def apply(arrays):
        for name, (index, value) in change.items():
            arrays[name][index] = value

    return apply


def _replace_arrays(make):
    """A tampered copy whose model.npz is then replaced by ``make(path)``, with the checksum of what is there."""

    def tamper(job, base):
        tampered_copy(job, base)
        path = base / "model" / "model.npz"
        path.unlink()
        make(path)
        if path.is_file() and not path.is_symlink():
            seal(base / "model", json.loads((base / "model" / "manifest.json").read_text()))

    return tamper


def _compressed_bomb(path):
    """256 MB of zeros deflated into a few hundred kB: a member that expands far beyond its stored size."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("centers.npy", "w", force_zip64=True) as member:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**26, 1)})
        member.write(header.getvalue())
        zeros = bytes(1 << 24)
        for _ in range(16):
            member.write(zeros)


# what a crafted model does with a recomputed checksum -> what /ping says about it
CRAFTED = {
    "a tree child pointing at itself": ("decision-tree", lambda job, base: tampered_copy(job, base, arrays_change=_tree_change(left=(0, 0))), "not trees"),
    "a feature index just out of range": ("decision-tree", lambda job, base: tampered_copy(job, base, arrays_change=_tree_change(feature=(0, 4))), "not trees"),
    "a feature index far out of range": ("random-forest", lambda job, base: tampered_copy(job, base, arrays_change=_tree_change(feature=(0, 2**40))), "not trees"),
    "model.npz a link to /dev/zero": ("kmeans", _replace_arrays(lambda p: p.symlink_to("/dev/zero")), "not a link"),
    "model.npz a FIFO": ("kmeans", _replace_arrays(os.mkfifo), "not a regular file"),
    "arrays named by an absolute path": ("kmeans", lambda job, base: tampered_copy(job, base, manifest_change=lambda m: m.update(arrays=str(job.root / "model" / "model.npz"))), "must name its arrays"),
    "arrays named by a ../ path": ("kmeans", lambda job, base: tampered_copy(job, base, manifest_change=lambda m: m.update(arrays="../model/model.npz")), "must name its arrays"),
    "a compressed member (256 MB from 250 kB)": ("kmeans", _replace_arrays(_compressed_bomb), "is compressed"),
    "centers that are NaN": ("kmeans", lambda job, base: tampered_copy(job, base, arrays_change=lambda a: a["centers"].__setitem__((0, 0), np.nan)), "NaN"),
}


@pytest.mark.parametrize("crafted", list(CRAFTED))
def test_a_crafted_model_is_refused_at_ping_with_the_reason(crafted, trained, tmp_path):
    """The checksum is recomputed, as whoever edits a model would: structure is what refuses it, before a worker
    serves anything, and without hanging (these cases hung or crashed workers before)."""
    case, tamper, reason = CRAFTED[crafted]
    job, X = trained(case)
    base = tmp_path / "opt_ml"
    tamper(job, base)
    server = ServeProcess(base, workers=1).start(wait=False)
    try:
        server.wait_ready(status=500, timeout=60)
        reply = server.request("GET", "/ping")
        assert reply.headers["content-type"] == "application/json" and reply.json()["error"] == "model_not_loaded"
        assert reason in reply.json()["message"], reply.json()
        invoked = server.invoke(csv_bytes(X[:2]), "text/csv")
        assert invoked.status == 500 and invoked.json()["error"] == "model_not_loaded"
    finally:
        assert server.stop() == 0


def test_a_bug_is_a_500_json_with_a_request_id_in_the_log_and_the_worker_lives(trained, tmp_path):
    """A bug injected into the real worker (a ``sitecustomize`` that makes predict raise): models are validated at
    load, so no artifact can stand in for a bug any more."""
    job, _ = trained("ll-regressor")
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "from byoa.algorithms import linear_learner\n"
        "def predict(self, X):\n    raise ZeroDivisionError('an injected bug')\n"
        "linear_learner.LinearModel.predict = predict\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(inject), str(CONTAINER), os.environ.get("PYTHONPATH")]))
    server = ServeProcess(tampered_copy(job, tmp_path / "opt_ml"), {"PYTHONPATH": pythonpath}, workers=1).start()
    try:
        pid_before = server.request("GET", "/ping")
        reply = server.invoke(GOOD[0], "text/csv")
        assert reply.status == 500 and reply.headers["content-type"] == "application/json"
        rid = reply.json()["request_id"]
        assert reply.json()["error"] == "internal_error" and rid in reply.json()["message"]
        time.sleep(0.2)
        assert f"request {rid} failed" in server.output() and f"request_id={rid}" in server.output()
        assert pid_before.status == 200 and server.request("GET", "/ping").status == 200
        assert "Booting worker" in server.output() and server.output().count("Booting worker") == 1  # no worker died
    finally:
        assert server.stop() == 0


def test_two_servers_side_by_side(trained):
    job, _ = trained("kmeans")
    a, b = ServeProcess(job.root).start(), ServeProcess(job.root, {"SERVE_RUNTIME_DIR": str(job.root / "runtime-b")}).start()
    try:
        assert a.invoke(*GOOD).status == 200 and b.invoke(*GOOD).status == 200
    finally:
        assert a.stop() == 0 and b.stop() == 0


def _group_alive(pgid: int) -> bool:
    """Whether a running (not zombie) process is in the group: an orphan's zombie waits for init to reap it."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.mark.parametrize("child", ["nginx", "gunicorn", "serve"])
def test_a_killed_child_stops_serve_and_leaves_nothing_on_the_port(child, trained, tmp_path):
    """SIGKILL of nginx's (or gunicorn's) master: serve stops with 1, its whole process group is gone (an
    orphaned nginx worker used to keep the port), and a new serve on the same port starts. SIGKILL of serve
    itself: nginx and gunicorn die with it (their workers follow once they see their master gone)."""
    job, _ = trained("kmeans")
    first = ServeProcess(job.root, {"SERVE_RUNTIME_DIR": str(tmp_path / "first")}).start()
    pids = {name: int((tmp_path / "first" / f"{name}.pid").read_text()) for name in ("nginx", "gunicorn")}
    assert all(os.getpgid(pid) == pid for pid in pids.values())  # each its own process group
    assert first.invoke(*GOOD).status == 200
    os.kill(pids[child] if child in pids else first.proc.pid, signal.SIGKILL)
    if child == "serve":
        assert first.proc.wait(40) == -signal.SIGKILL
        assert wait_for(lambda: not any(_group_alive(pid) for pid in pids.values()), timeout=60)
    else:
        assert first.proc.wait(40) == 1
        assert f"{child} exited" in first.output()
        assert not any(_group_alive(pid) for pid in pids.values())
    second = ServeProcess(job.root, {"SERVE_RUNTIME_DIR": str(tmp_path / "second"), "SAGEMAKER_BIND_TO_PORT": str(first.port)})
    second.port = first.port
    second.start()
    try:
        assert second.invoke(*GOOD).status == 200
    finally:
        first.log.close()
        assert second.stop() == 0


def _raw_exchange(port: int, data: bytes) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one raw HTTP/1.1 exchange; the connection is closed by the request or the server."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(1 << 16):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


PING = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
MALFORMED = {  # raw request -> status, from whichever layer answers
    "a request line of 9 kB (nginx)": (b"GET /ping?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "a header of 9 kB (nginx)": (PING + b"X-A: " + b"a" * 9000 + b"\r\n\r\n", 400),
    "3,000 headers (nginx)": (PING + b"".join(b"X-%d: 1\r\n" % i for i in range(3000)) + b"\r\n", 400),
    "bytes that are not HTTP (nginx)": (b"\x00\x01\x02 hello\r\n\r\n", 400),
    "HTTP/9.9 (nginx)": (b"GET /ping HTTP/9.9\r\nHost: x\r\n\r\n", 501),
    "an unknown transfer encoding (nginx)": (b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "a space in a header name (nginx)": (PING + b"Bad Header: 1\r\n\r\n", 400),
    "an unknown path (flask)": (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    "GET /invocations (flask)": (b"GET /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    # beyond gunicorn's default limits (4094-byte line, 8190-byte field, 100 fields), within nginx's: served
    "a request line of 5 kB": (b"GET /ping?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
    "a header of 8,150 bytes": (PING + b"X-A: " + b"a" * 8150 + b"\r\n\r\n", 200),
    "150 headers": (PING + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 200),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_every_error_from_nginx_gunicorn_or_flask_is_json(case, kmeans_server):
    data, expected = MALFORMED[case]
    status, headers, body = _raw_exchange(kmeans_server[0].port, data)
    assert status == expected, body[:200]
    if status != 200:
        assert headers["content-type"] == "application/json", body[:200]
        assert set(json.loads(body)) == {"error", "message"}


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_during_an_upload_lets_it_finish_then_stops(trained, tmp_path):
    """The body is half sent when serve gets SIGTERM: nginx stops accepting but finishes this request, and gunicorn
    is stopped only after it (stopping both at once used to answer such uploads with 503)."""
    job, X = trained("kmeans")
    server = ServeProcess(job.root, {"SERVE_RUNTIME_DIR": str(tmp_path / "runtime")}).start()
    body = csv_bytes(np.tile(X, (20, 1)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as conn:
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        server.proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: "serve: stopping" in server.output(), timeout=30)
        assert wait_for(lambda: _refused(server.port), timeout=30)  # no new connections once stopping
        conn.sendall(body[len(body) // 2 :])
        reply = b""
        while chunk := conn.recv(1 << 16):
            reply += chunk
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:300]
    assert answer.count(b"\n") == len(X) * 20
    assert server.proc.wait(40) == 0
    server.log.close()


def test_2000_idle_connections_do_not_starve_ping(kmeans_server):
    server, _ = kmeans_server
    """Clients stuck in their body (1,000) or headers (500) and idle keep-alive clients (500), 2,000 in all (nginx's
    old 1,024 connections ran out; only keep-alive ones can be reclaimed): /ping and predictions still answer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    idle = []
    try:
        for i in range(2000):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            idle.append(conn)
            if i % 4 == 1:
                conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            elif i % 4 in (0, 2):
                conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n1,")  # body never finished
            elif i % 4 == 3:
                conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")  # then kept alive, idle
                assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        for _ in range(20):
            assert server.request("GET", "/ping", timeout=30).status == 200
        assert server.invoke(*GOOD).status == 200
    finally:
        for conn in idle:
            conn.close()


def test_an_unsupported_default_accept_stops_serve_with_one_line(trained):
    job, _ = trained("kmeans")
    server = ServeProcess(job.root, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/html\x1b[2J"}).start(wait=False)
    assert server.proc.wait(30) == 2
    out = server.output()
    server.log.close()
    assert "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/html\\x1b[2J' is not a type this server answers in" in out, out
    assert "Traceback" not in out and "\x1b" not in out
