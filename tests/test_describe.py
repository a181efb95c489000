"""``train --describe``: the CreateAlgorithm listing and the tuning settings, generated from the declarations.

Checked, without AWS, against botocore's own service model plus SageMaker's maximums and enumerations
(``sagemaker_api``), against the SDK that consumes them (``AlgorithmEstimator``, ``HyperparameterTuner``),
and against real jobs: the validation profile trains on the embedded data, and every objective's regex
matches a line a job printed. Every SDK / boto3 snippet of the README runs against the same offline API.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ParamValidationError

from conftest import CSV, ROOT, TRAIN, Job, csv_bytes
from sagemaker_api import ROLE, fake_session

from byoa.algorithms import ALGORITHMS
from byoa.hyperparameters import parse
from byoa.serving.app import create_app
from byoa.training.metric_definitions import definitions

IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/byoa:1"
VALIDATION_S3 = "s3://bucket/byoa-validation"
TEST_DATA = ROOT / "local_test" / "test_dir" / "input" / "data" / "train" / "iris.csv"
PAYLOAD = ROOT / "local_test" / "payloads" / "payload.csv"
# the several-algorithms listing: all but xgboost (with it, more than the 100 hyperparameters SageMaker lists)
SEVERAL = ",".join(a for a in ALGORITHMS if a != "xgboost")
CHOICES = [*ALGORITHMS, SEVERAL]
IDS = [*ALGORITHMS, "several"]
README_LISTING = "linear-learner,xgboost"  # as the README's command makes algorithm.json


def describe(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("SAGEMAKER_ALGORITHM", None)
    return subprocess.run([str(TRAIN), "--describe", *args], capture_output=True, text=True, env=env, timeout=60)


def listing_of(algorithm: str | None) -> dict:
    one = ["--algorithm", algorithm] if algorithm else []
    out = describe("--image", IMAGE, "--validation-s3", VALIDATION_S3, "--role", ROLE, *one)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def tuning() -> dict:
    out = describe("--tuning")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module", autouse=True)
def offline_sdk(tmp_path_factory):
    """The SDK's telemetry off, and any HTTP request that would leave the machine sent to a closed loopback port."""
    config = tmp_path_factory.mktemp("sdk") / "sdk.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
        mp.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            mp.setenv(var, "http://127.0.0.1:9")
        for var in ("NO_PROXY", "no_proxy"):
            mp.delenv(var, raising=False)
        import sagemaker.session
        import sagemaker.utils
        from sagemaker.config import load_sagemaker_config, validate_sagemaker_config

        validate_sagemaker_config(load_sagemaker_config())  # once: the SDK checks it against its schema at every lookup
        mp.setattr(sagemaker.utils, "validate_sagemaker_config", lambda config: None)
        mp.setattr(sagemaker.session, "time", NoWait())
        yield


class NoWait:
    """The time module, but the SDK's polls of AWS (5 to 30 s each) return at once: the fake answers "done" already."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        pass


@pytest.fixture
def api():
    """(boto3 session, fake) for one test; also boto3's default session, which the SDK and snippets use."""
    import boto3

    session, fake = fake_session()
    saved, boto3.DEFAULT_SESSION = boto3.DEFAULT_SESSION, session
    try:
        yield session, fake
    finally:
        boto3.DEFAULT_SESSION = saved


def names_of(choice: str) -> list[str]:
    return choice.split(",")


def hyperparameters_for(algorithm: str, names: list[str]) -> dict:
    return {**({"algorithm": algorithm} if len(names) > 1 else {}), **ALGORITHMS[algorithm].example}


# ----------------------------------------------------------------------------- the listing


@pytest.mark.parametrize("algorithm", CHOICES, ids=IDS)
def test_listing_is_accepted_by_botocore_and_drives_the_sdk(algorithm, api):
    import sagemaker
    from sagemaker import AlgorithmEstimator
    from sagemaker.inputs import TrainingInput

    session, fake = api
    listing = listing_of(algorithm)
    session.client("sagemaker").create_algorithm(**listing)
    names = names_of(algorithm)
    sm = sagemaker.Session(boto_session=session)
    for name in names:
        estimator = AlgorithmEstimator(algorithm_arn=listing["AlgorithmName"], role=ROLE, instance_count=2,
                                       instance_type="ml.m5.xlarge", input_mode="Pipe", sagemaker_session=sm,
                                       output_path="s3://bucket/out", hyperparameters=hyperparameters_for(name, names))
        estimator.fit({"train": TrainingInput("s3://bucket/train", content_type="application/x-recordio-protobuf"),
                       "test": TrainingInput("s3://bucket/test", content_type="text/csv;label_size=1")}, wait=False)
        sent = fake.called("CreateTrainingJob")[-1]["HyperParameters"]
        raw = dict(sent)
        chosen = raw.pop("algorithm", name)
        assert chosen == name
        parse(ALGORITHMS[name].params, raw, name)  # what the SDK sends, defaults included, is what train accepts
    if algorithm == SEVERAL:  # once: a batch transform of a trained model
        transformer = estimator.transformer(1, "ml.c5.xlarge", strategy="MultiRecord", assemble_with="Line", accept="text/csv",
                                            output_path="s3://bucket/transform-out")
        transformer.transform("s3://bucket/rows", content_type="text/csv", split_type="Line", wait=False)
        assert fake.called("CreateModelPackage") and fake.called("CreateModel") and fake.called("CreateTransformJob")


@pytest.mark.parametrize("algorithm", CHOICES, ids=IDS)
def test_listing_says_what_train_does(algorithm, tuning):
    listing = listing_of(algorithm)
    spec = listing["TrainingSpecification"]
    params = {p["Name"]: p for p in spec["SupportedHyperParameters"]}
    names = names_of(algorithm)
    metrics = {d["Name"]: d["Regex"] for d in spec["MetricDefinitions"]}
    objectives = {o["MetricName"]: o["Type"] for o in spec["SupportedTuningJobObjectiveMetrics"]}
    for name in names:
        for p in ALGORITHMS[name].params:
            if p.ignored and len(names) > 1:  # no effect: left out of a several-algorithms listing (at most 100)
                continue
            assert params[p.name]["IsRequired"] == (p.required and len(names) == 1)
        for task, objective in tuning.get(name, {}).get("objectives", {}).items():
            assert objectives[objective["objective_metric_name"]] == objective["objective_type"], (name, task)
            assert objective["objective_metric_name"] in metrics
        for param, r in tuning.get(name, {}).get("hyperparameter_ranges", {}).items():
            listed = params[param]
            assert listed["IsTunable"], param
            kind, bounds = next(iter(listed["Range"].items()))
            if r["type"] == "Categorical":
                assert set(r["values"]) <= set(bounds["Values"]), param
            else:
                assert kind.startswith(r["type"]), param
                assert float(bounds["MinValue"]) <= r["min_value"] < r["max_value"] <= float(bounds["MaxValue"]), param
    assert set(objectives) <= set(metrics)
    assert {c["Name"] for c in spec["TrainingChannels"] if c["IsRequired"]} == {"train"}
    assert listing["ValidationSpecification"]["ValidationRole"] == ROLE


def test_botocore_and_the_limits_refuse_a_broken_listing(api):
    session, _ = api
    sm = session.client("sagemaker")
    listing = listing_of("kmeans")
    broken = json.loads(json.dumps(listing))
    del broken["TrainingSpecification"]["TrainingImage"]
    with pytest.raises(ParamValidationError, match="TrainingImage"):
        sm.create_algorithm(**broken)
    broken = json.loads(json.dumps(listing))
    broken["TrainingSpecification"]["MetricDefinitions"] *= 5
    with pytest.raises(ValueError, match="MetricDefinitions: 45 items, SageMaker takes at most 40"):
        sm.create_algorithm(**broken)
    broken = json.loads(json.dumps(listing))
    broken["TrainingSpecification"]["SupportedTrainingInstanceTypes"].append("ml.r5.large-ish")
    with pytest.raises(ValueError, match="not one of SageMaker's values"):
        sm.create_algorithm(**broken)


def test_a_several_algorithms_listing_keeps_the_most_useful_40_metrics_and_says_which_it_left_out():
    out = describe("--image", IMAGE, "--algorithm", SEVERAL)
    assert out.returncode == 0, out.stderr
    metrics = [d["Name"] for d in json.loads(out.stdout)["TrainingSpecification"]["MetricDefinitions"]]
    assert len(metrics) == 40 and not any(m.startswith("train:") for m in metrics)
    assert {"validation:roc_auc_score", "test:roc_auc_score", "test:msd", "validation:msd"} <= set(metrics)
    assert "left out (still printed in the log): " in out.stderr and "train:msd" in out.stderr


@pytest.mark.parametrize("args, message", [
    ((), "--image URI is required"),
    (("--image", IMAGE, "--validation-s3", VALIDATION_S3), "--validation-s3 and --role go together"),
    (("--image", IMAGE, "--validation-s3", "bucket/x", "--role", ROLE), "must be an s3:// URI"),
    (("--image", IMAGE, "--algorithm", "xgb"), "unknown algorithm 'xgb'"),
    (("--tuning", "--algorithm", "pca"), "pca: nothing to tune"),
    (("--image", IMAGE), "take 113 hyperparameters and SageMaker lists at most 100: list fewer algorithms"),
])
def test_describe_refuses_unclear_requests_with_one_line(args, message):
    out = describe(*args)
    assert out.returncode != 0 and message in out.stderr and not out.stdout


def test_an_image_built_for_one_algorithm_describes_that_one():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SAGEMAKER_ALGORITHM": "knn"}
    out = subprocess.run([str(TRAIN), "--describe", "--image", IMAGE], capture_output=True, text=True, env=env, timeout=60)
    listing = json.loads(out.stdout)
    assert listing["AlgorithmName"] == "byoa-knn"
    choice = listing["TrainingSpecification"]["SupportedHyperParameters"][0]
    assert choice["Name"] == "algorithm" and choice["DefaultValue"] == "knn"
    assert choice["Range"]["CategoricalParameterRangeSpecification"]["Values"] == ["knn"]


# ----------------------------------------------------------------------------- real jobs behind the listing


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_the_validation_profile_trains_and_transforms_the_embedded_data(algorithm, job):
    profile = listing_of(algorithm)["ValidationSpecification"]["ValidationProfiles"][0]
    training, transform = profile["TrainingJobDefinition"], profile["TransformJobDefinition"]
    channel = training["InputDataConfig"][0]
    job.hyperparameters(training["HyperParameters"]).channel(channel["ChannelName"], TEST_DATA.read_bytes(), channel["ContentType"])
    result = job.run()
    assert result.rc == 0, result.log
    client = create_app(job.root / "model").test_client()
    rows = PAYLOAD.read_bytes()
    answer = client.post("/invocations", data=rows, headers={"Content-Type": transform["TransformInput"]["ContentType"],
                                                             "Accept": transform["TransformOutput"]["Accept"]})
    assert answer.status_code == 200, answer.data
    assert len(answer.data.decode().splitlines()) == len(rows.decode().splitlines())


def _task_jobs(iris, cancer):
    """(algorithm, task) -> (hyperparameters, X, y): a job of every task every algorithm declares an objective for."""
    X, y = iris
    Xc, _, yc, _ = cancer
    regression = (X[:, 1:], X[:, 0])
    data = {"binary": (Xc, yc), "multiclass": (X, y), "regression": regression, "clustering": (X, None)}
    kinds = {"knn": {"binary": "classifier", "multiclass": "classifier", "regression": "regressor"},
             "linear-learner": {"binary": "binary_classifier", "multiclass": "multiclass_classifier", "regression": "regressor"},
             "decision-tree": {"binary": "classifier", "multiclass": "classifier", "regression": "regressor"}}
    kinds["random-forest"] = kinds["decision-tree"]
    kinds["factorization-machines"] = kinds["linear-learner"]
    objectives = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
    jobs = {}
    for algorithm, cls in ALGORITHMS.items():
        for task in cls.objectives:
            Xt, yt = data[task]
            hp = {"algorithm": algorithm}
            if algorithm == "kmeans":
                hp.update(k=3, feature_dim=Xt.shape[1])
            elif algorithm == "knn":
                hp.update(k=5, feature_dim=Xt.shape[1], sample_size=200)
            elif algorithm == "random-forest":
                hp.update(n_estimators=20)
            elif algorithm == "factorization-machines":
                hp.update(feature_dim=Xt.shape[1], num_factors=4)
            elif algorithm == "xgboost":
                hp.update(num_round=10, objective=objectives[task], **({"num_class": 3} if task == "multiclass" else {}))
            if algorithm in kinds:
                hp["predictor_type"] = kinds[algorithm][task]
            if hp.get("predictor_type") == "multiclass_classifier":
                hp["num_classes"] = 3
            jobs[(algorithm, task)] = (hp, Xt, yt)
    return jobs


def test_every_objective_regex_matches_a_line_a_job_without_extra_channels_printed(make_job, iris, cancer, tuning):
    """Only a train channel: the objective must be printed by the jobs users start first."""
    for (algorithm, task), (hp, X, y) in _task_jobs(iris, cancer).items():
        job = make_job(f"{algorithm}-{task}")
        job.hyperparameters(hp).channel("train", csv_bytes(X, y), CSV if y is not None else f"{CSV};label_size=0")
        result = job.run()
        assert result.rc == 0, result.log
        objective = tuning[algorithm]["objectives"][task]["objective_metric_name"]
        regex = {d["Name"]: d["Regex"] for d in tuning[algorithm]["metric_definitions"]}[objective]
        found = re.findall(regex, result.stdout)
        assert found, f"{algorithm} ({task}): {objective} never printed"
        assert math.isfinite(float(found[-1])), f"{algorithm} ({task}): {objective}={found[-1]}"


# ----------------------------------------------------------------------------- tuning


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if ALGORITHMS[a].objectives])
def test_tuning_settings_build_a_hyperparameter_tuner_botocore_accepts(algorithm, tuning, api):
    import sagemaker
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner, IntegerParameter

    session, fake = api
    settings = tuning[algorithm]
    kinds = {"Integer": IntegerParameter, "Continuous": ContinuousParameter, "Categorical": CategoricalParameter}
    ranges = {name: kinds[r["type"]](**{k: v for k, v in r.items() if k != "type"}) for name, r in settings["hyperparameter_ranges"].items()}
    estimator = Estimator(image_uri=IMAGE, role=ROLE, instance_count=1, instance_type="ml.m5.xlarge", output_path="s3://bucket/out",
                          sagemaker_session=sagemaker.Session(boto_session=session),
                          hyperparameters={"algorithm": algorithm, **ALGORITHMS[algorithm].example})
    for task, objective in settings["objectives"].items():
        tuner = HyperparameterTuner(estimator, objective["objective_metric_name"], ranges, settings["metric_definitions"],
                                    objective_type=objective["objective_type"], max_jobs=4, max_parallel_jobs=2)
        tuner.fit({"train": "s3://bucket/train"}, job_name=f"byoa-{task}"[:32], wait=False)
        request = fake.called("CreateHyperParameterTuningJob")[-1]
        config = request["HyperParameterTuningJobConfig"]
        assert config["HyperParameterTuningJobObjective"]["MetricName"] == objective["objective_metric_name"]
        tuned = {r["Name"] for kind in config["ParameterRanges"].values() for r in kind}
        assert tuned == {p.name for p in ALGORITHMS[algorithm].params if p.tune}
        static = request["TrainingJobDefinition"]["StaticHyperParameters"]
        assert not tuned & set(static)


# ----------------------------------------------------------------------------- the README's snippets


def readme_snippets() -> list[str]:
    """Every Python block of the README that calls SageMaker. Local-mode blocks need Docker: .ci/sdk_local_mode.py
    makes their calls for real."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if re.search(r"\b(boto3|sagemaker|estimator)\b", b) and 'instance_type="local"' not in b]


def test_every_readme_snippet_validates_against_botocore(api, tmp_path, monkeypatch, tuning):
    session, fake = api
    snippets = readme_snippets()
    assert len(snippets) >= 6, "the README's SageMaker snippets were not found"
    monkeypatch.chdir(tmp_path)  # the files the README's commands write
    (tmp_path / "algorithm.json").write_text(json.dumps(listing_of(README_LISTING)))
    (tmp_path / "tuning.json").write_text(json.dumps(tuning))
    trained = {name: SimpleNamespace(model_data=f"s3://bucket/{name}/model.tar.gz") for name in ("pca", "kmeans")}
    namespace = {"role": ROLE, "image_uri": IMAGE, "image": IMAGE, "s3_train": "s3://bucket/train", "s3_test": "s3://bucket/test",
                 "s3_input": "s3://bucket/rows", "s3_output": "s3://bucket/out", "metric_definitions": definitions(["kmeans"]),
                 "pca_estimator": trained["pca"], "kmeans_estimator": trained["kmeans"]}
    for snippet in snippets:
        before = len(fake.calls)
        exec(compile(snippet, "README.md snippet", "exec"), namespace)
        assert len(fake.calls) > before, f"this README snippet made no SageMaker call:\n{snippet}"
    made = {name for name, _ in fake.calls}
    assert {"CreateAlgorithm", "CreateTrainingJob", "CreateModel", "CreateTransformJob", "CreateHyperParameterTuningJob",
            "CreateEndpoint"} <= made
