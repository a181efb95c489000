"""The Flask app factory with Flask's test client, and the codecs under hypothesis."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoa.data import recordio
from byoa.data.byoa_record_pb2 import Record
from byoa.serving import codecs
from byoa.serving.app import Settings, create_app
from conftest import CSV_NO_LABEL, Job, csv_bytes, encode_rows

SETTINGS = Settings(workers=3, timeout=60, batch=False, max_payload_mb=6, default_accept="application/json")


@pytest.fixture(scope="module")
def kmeans_dir(tmp_path_factory, iris):
    X, _ = iris
    job = Job(tmp_path_factory.mktemp("kmeans") / "opt_ml")
    job.hyperparameters({"algorithm": "kmeans", "k": 3, "feature_dim": 4}).channel("train", csv_bytes(X), CSV_NO_LABEL)
    assert job.run().rc == 0
    return job.root / "model"


def test_app_factory_serves_a_model(kmeans_dir):
    client = create_app(kmeans_dir, SETTINGS).test_client()
    assert client.get("/ping").status_code == 200 and client.get("/ping").data == b""
    r = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3", content_type="text/csv")
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 2
    assert client.get("/execution-parameters").get_json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    r = client.post("/invocations", data=b"1,2", content_type="text/csv")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"


def test_app_without_a_model_answers_500_with_the_reason(tmp_path):
    client = create_app(tmp_path / "nothing", SETTINGS).test_client()
    r = client.get("/ping")
    assert r.status_code == 500 and r.get_json() == {"error": "model_not_loaded", "message": f"no model in {tmp_path / 'nothing'}: manifest.json is missing"}
    assert client.post("/invocations", data=b"1", content_type="text/csv").status_code == 500


@pytest.mark.parametrize("env, message", [
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "50"}, "above SageMaker's limit (6 MB for real-time"),
    ({"SAGEMAKER_MODEL_SERVER_WORKERS": "lots"}, "SAGEMAKER_MODEL_SERVER_WORKERS='lots' is not an integer"),
    ({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/html"}, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/html' is not a type"),
])
def test_settings_reject_impossible_environments(env, message):
    with pytest.raises(ValueError) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_settings_defaults_and_old_names():
    s = Settings.from_env({"MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_TIMEOUT": "30"})
    assert (s.workers, s.timeout, s.batch, s.max_payload_mb) == (3, 30, False, 6)
    s = Settings.from_env({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"})
    assert (s.timeout, s.batch, s.max_payload_mb) == (600, True, 100)


# ----------------------------------------------------------------------------- codecs under hypothesis

CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf", "application/x-npy"]




@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONTENT_TYPES), st.binary(max_size=300))
def test_random_bytes_raise_only_client_errors(content_type, body):
    try:
        X = codecs.decode(content_type, body)
    except codecs.ClientError as exc:
        assert 400 <= exc.status < 500 and exc.message and "Traceback" not in exc.message
        return
    assert X.shape[0] >= 1


valid_matrix = st.integers(1, 6).flatmap(
    lambda d: st.lists(st.lists(st.floats(-1e6, 1e6, width=32), min_size=d, max_size=d), min_size=1, max_size=8)
).map(lambda rows: np.array(rows, dtype=np.float32))


def encodings(X: np.ndarray) -> dict[str, bytes]:
    npy = io.BytesIO()
    np.save(npy, X)
    instances = [{"features": r} for r in X.tolist()]
    return {
        "text/csv": csv_bytes(X),
        "application/json": json.dumps({"instances": instances}).encode(),
        "application/jsonlines": "\n".join(json.dumps(i) for i in instances).encode(),
        "application/x-recordio-protobuf": encode_rows(X),
        "application/x-npy": npy.getvalue(),
    }


@settings(max_examples=150, deadline=None)
@given(valid_matrix)
def test_encode_then_decode_gives_the_arrays_back(X):
    for content_type, body in encodings(X).items():
        got = codecs.decode(content_type, body)
        got = got.toarray() if sp.issparse(got) else got
        np.testing.assert_array_equal(got, X, err_msg=content_type)
    sparse = codecs.decode("application/x-recordio-protobuf", encode_rows(sp.csr_matrix(X)))
    np.testing.assert_array_equal(sparse.toarray(), X)


mutations = st.tuples(st.integers(0, 10_000), st.sampled_from(["drop", "flip", "cut", "insert"]), st.binary(min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(valid_matrix, st.sampled_from(CONTENT_TYPES), st.lists(mutations, min_size=1, max_size=3))
def test_near_valid_bodies_raise_only_client_errors_that_say_what(X, content_type, edits):
    body = bytearray(encodings(X)[content_type])
    for where, how, data in edits:
        if not body:
            break
        i = where % len(body)
        if how == "drop":
            del body[i]
        elif how == "flip":
            body[i] ^= data[0] or 1
        elif how == "cut":
            del body[i:]
        else:
            body[i:i] = data
    try:
        codecs.decode(content_type, bytes(body))
    except codecs.ClientError as exc:
        assert exc.status in (400, 415) and len(exc.message) > 10 and not exc.message.startswith("Traceback")


def test_encoders_write_one_line_or_record_per_row():
    outputs = {"score": np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]], np.float32), "predicted_label": np.array([1.0, 0.0, 1.0])}
    assert codecs.negotiate("text/csv", "application/json").encode(outputs).decode().splitlines() == [
        "0.100000001,0.899999976,1", "0.800000012,0.200000003,0", "0.5,0.5,1"]
    lines = codecs.negotiate("application/jsonlines", "application/json").encode(outputs, ("predicted_label",)).decode().splitlines()
    assert json.loads(lines[0]) == {"score": [0.10000000149011612, 0.8999999761581421], "predicted_label": 1}
    body = codecs.negotiate("application/x-recordio-protobuf", "application/json").encode(outputs)
    records = []
    for payload in recordio.iter_payloads(body):
        r = Record()
        r.ParseFromString(payload)
        records.append(r)
    assert len(records) == 3 and list(records[2].label["predicted_label"].float32_tensor.values) == [1.0]


def test_the_three_tree_walks_agree_with_scikit_learn():
    """Python walk (few records), numpy (medium), compiled scikit-learn trees (big batches): same leaves, same scores."""
    from sklearn.ensemble import RandomForestClassifier

    from byoa.algorithms import tree_walk
    from byoa.algorithms.trees import TreeEnsembleModel, _flatten

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=12, random_state=0).fit(X, y)
    model = TreeEnsembleModel("random-forest", "classifier", *_flatten(forest.estimators_, True), forest.classes_.astype(float), n_features=6)
    Q = rng.normal(size=(800, 6)).astype(np.float32)
    walker = model.walker
    python, numpy_ = walker._python_leaves(Q[:50]), walker._numpy_leaves(Q[:50])
    np.testing.assert_array_equal(python, numpy_)
    assert walker.compiles and len(Q) * 12 >= tree_walk.COMPILED_MIN_PAIRS
    np.testing.assert_allclose(model.predict(Q)["score"], forest.predict_proba(Q), atol=1e-6)  # compiled
    np.testing.assert_allclose(model.predict(Q[:3])["score"], forest.predict_proba(Q[:3]), atol=1e-6)  # python
    np.testing.assert_allclose(walker.mean_value(Q[:300], model.value), forest.predict_proba(Q[:300]), atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_the_first_non_finite_value_is_named_by_record_and_feature(kmeans_dir, sparse):
    from byoa.serving.app import check_records
    from byoa.algorithms import model_from_artifacts
    from byoa.model_io import load

    manifest, arrays = load(kmeans_dir)
    model = model_from_artifacts(manifest["algorithm"], arrays, manifest["meta"])
    X = np.ones((4, 4), np.float32)
    X[2, 3], X[3, 0] = np.inf, np.nan
    with pytest.raises(codecs.ClientError, match=r"record 2, feature 3 is inf: the model needs finite numbers"):
        check_records(sp.csr_matrix(X) if sparse else X, model)
