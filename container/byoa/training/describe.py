"""``train --describe``: the image as a SageMaker Algorithm (CreateAlgorithm's arguments) and, with
``--tuning``, the SDK's ``HyperparameterTuner`` settings, generated from the algorithms' declarations
(hyperparameters, channels, metrics, objectives), so a listing cannot drift from what ``train`` accepts.

    train --describe --image URI [--algorithm NAME] [--name NAME] [--validation-s3 S3 --role ARN]
    train --describe --tuning [--algorithm NAME]

One algorithm (``--algorithm``, or SAGEMAKER_ALGORITHM in an image built for one) or several
(``--algorithm a,b``; default all, as far as SageMaker's 100 listed hyperparameters allow), chosen by the
``algorithm`` hyperparameter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..algorithms import ALGORITHMS
from ..data import media
from ..data.channels import COMPRESSIONS, INPUT_MODES, content_types
from ..hyperparameters import Options, Param, specification, tuning_range
from .metric_definitions import definitions, ranked

# CPU instances only: the image has no GPU code. Memory-optimized r5 for training (the in-memory trees); SageMaker's
# batch transform has no r5.
SIZES = {"m5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"),
         "c5": ("xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge"),
         "r5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")}
TRAINING_INSTANCES = [f"ml.{family}.{size}" for family, sizes in SIZES.items() for size in sizes]
INFERENCE_INSTANCES = [t for t in TRAINING_INSTANCES if not t.startswith("ml.r5.")]
VALIDATION_INSTANCE = "ml.m5.large"
MAX_HYPERPARAMETERS = 100  # SageMaker's limit for a listing
ALGORITHM_PARAM = Param("algorithm", Options(tuple(ALGORITHMS)), help="the algorithm this job trains")


def chosen(names: str | None) -> list[str]:
    """The algorithms a listing covers: those named (comma-separated), the image's own (SAGEMAKER_ALGORITHM), or all."""
    names = names or os.environ.get("SAGEMAKER_ALGORITHM", "")
    unknown = [n for n in names.split(",") if n and n not in ALGORITHMS]
    if unknown:
        raise SystemExit(f"train --describe: unknown algorithm {unknown[0]!r}; one of: {', '.join(ALGORITHMS)}")
    return list(dict.fromkeys(n for n in names.split(",") if n)) or list(ALGORITHMS)


def _merged(name: str, specs: dict[str, dict], everywhere: bool) -> dict:
    """One listing entry for a name some algorithms declare: a range wide enough for each of them. A default only if
    every algorithm has the same one: SageMaker and the SDK send defaults to every job, and the others would refuse it."""
    first, *rest = specs.values()
    if everywhere and all(s == first for s in rest):
        return first
    types = {s["Type"] for s in specs.values()}
    kind = types.pop() if len(types) == 1 else "FreeText"
    merged = {"Name": name, "Type": kind, "IsTunable": kind != "FreeText" and any(s["IsTunable"] for s in specs.values()),
              "IsRequired": everywhere and all(s["IsRequired"] for s in specs.values())}
    ranges = [s["Range"] for s in specs.values() if "Range" in s]
    if kind in ("Integer", "Continuous") and len(ranges) == len(specs):
        key = f"{kind}ParameterRangeSpecification"
        number = int if kind == "Integer" else float
        lows, highs = [r[key]["MinValue"] for r in ranges], [r[key]["MaxValue"] for r in ranges]
        merged["Range"] = {key: {"MinValue": min(lows, key=number), "MaxValue": max(highs, key=number)}}
    elif kind == "Categorical":
        values = [v for r in ranges for v in r["CategoricalParameterRangeSpecification"]["Values"]]
        merged["Range"] = {"CategoricalParameterRangeSpecification": {"Values": list(dict.fromkeys(values))}}
    defaults = {s.get("DefaultValue") for s in specs.values()}
    if everywhere and len(defaults) == 1 and None not in defaults:
        merged["DefaultValue"] = defaults.pop()
    merged["Description"] = " ".join(f"{algorithm}: {s['Description']}" for algorithm, s in specs.items())
    return merged


def algorithm_choice(names: list[str]) -> dict:
    """The ``algorithm`` hyperparameter: required to choose among several; for one, its default, so the listing also
    works for an image that was not built with SAGEMAKER_ALGORITHM."""
    if len(names) > 1:
        return {**specification(ALGORITHM_PARAM), "IsRequired": True}
    return specification(Param("algorithm", Options((names[0],)), names[0], "the algorithm this image trains"))


def hyperparameters(names: list[str]) -> list[dict]:
    if len(names) == 1:
        return [algorithm_choice(names), *(specification(p) for p in ALGORITHMS[names[0]].params)]
    by_name: dict[str, dict[str, dict]] = {}
    for algorithm in names:
        for p in ALGORITHMS[algorithm].params:
            if not p.ignored:  # accepted for the built-in's jobs but without effect: SageMaker lists at most 100
                by_name.setdefault(p.name, {})[algorithm] = specification(p)
    return [algorithm_choice(names), *(_merged(n, specs, len(specs) == len(names)) for n, specs in by_name.items())]


def channels(names: list[str]) -> list[dict]:
    rules = {}
    for algorithm in names:
        for rule in ALGORITHMS[algorithm].channels:
            rules.setdefault(rule.name, []).append((algorithm, rule))
    out = []
    for name, owned in rules.items():
        texts = dict.fromkeys(r.description for _, r in owned)
        description = texts.popitem()[0] if len(texts) == 1 else " ".join(f"{a}: {r.description}." for a, r in owned)
        out.append({"Name": name, "Description": description, "IsRequired": len(owned) == len(names) and all(r.required for _, r in owned),
                    "SupportedContentTypes": content_types(), "SupportedInputModes": list(INPUT_MODES),
                    "SupportedCompressionTypes": list(COMPRESSIONS)})
    return out


def objective_type(names: list[str], objective: str) -> str:
    """Maximize or Minimize, for an objective ("<channel>:<metric>") of these algorithms."""
    metric = objective.split(":", 1)[1]
    kind = next(m.kind for a in names for m in ALGORITHMS[a].metric_defs if m.name == metric)
    return "Maximize" if kind == "score" else "Minimize"


def training_specification(names: list[str], image: str) -> dict:
    metrics = definitions(names)
    return {
        "TrainingImage": image,
        "SupportedHyperParameters": hyperparameters(names),
        "SupportedTrainingInstanceTypes": TRAINING_INSTANCES,
        "SupportsDistributedTraining": True,
        "MetricDefinitions": metrics,
        "TrainingChannels": channels(names),
        "SupportedTuningJobObjectiveMetrics": [
            {"Type": objective_type(names, d["Name"]), "MetricName": d["Name"]}
            for d in metrics if not d["Name"].startswith("train:")
        ],
    }


def inference_specification(image: str) -> dict:
    return {
        "Containers": [{"Image": image}],
        "SupportedTransformInstanceTypes": INFERENCE_INSTANCES,
        "SupportedRealtimeInferenceInstanceTypes": INFERENCE_INSTANCES,
        "SupportedContentTypes": list(media.names("request")),
        "SupportedResponseMIMETypes": list(media.names("response")),
    }


def validation_specification(names: list[str], s3: str, role: str) -> dict:
    """One profile (SageMaker's limit): the first algorithm trained on the embedded iris data at ``s3``/train/
    (local_test/test_dir/input/data/train/iris.csv), then a batch transform of ``s3``/transform/
    (local_test/payloads/payload.csv)."""
    algorithm, s3 = names[0], s3.rstrip("/")
    hp = {"algorithm": algorithm, **ALGORITHMS[algorithm].example}
    source = {"S3DataType": "S3Prefix", "S3Uri": f"{s3}/train/", "S3DataDistributionType": "FullyReplicated"}
    return {
        "ValidationRole": role,
        "ValidationProfiles": [{
            "ProfileName": f"{algorithm}-iris",
            "TrainingJobDefinition": {
                "TrainingInputMode": "File",
                "HyperParameters": hp,
                "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": source}, "ContentType": media.CSV}],
                "OutputDataConfig": {"S3OutputPath": f"{s3}/output/"},
                "ResourceConfig": {"InstanceType": VALIDATION_INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 10},
                "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
            },
            "TransformJobDefinition": {
                "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{s3}/transform/"}},
                                   "ContentType": media.CSV, "SplitType": "Line"},
                "TransformOutput": {"S3OutputPath": f"{s3}/transform-output/", "Accept": media.CSV, "AssembleWith": "Line"},
                "TransformResources": {"InstanceType": VALIDATION_INSTANCE, "InstanceCount": 1},
                "BatchStrategy": "MultiRecord",
            },
        }],
    }


def listing(names: list[str], image: str, name: str | None = None, s3: str | None = None, role: str | None = None) -> dict:
    """The keyword arguments of boto3's ``create_algorithm``."""
    one = names[0] if len(names) == 1 else None
    out = {
        "AlgorithmName": name or (f"byoa-{one}" if one else "byoa"),
        "AlgorithmDescription": f"byoa {one}" if one else f"byoa: {', '.join(names)} (chosen by the algorithm hyperparameter)",
        "TrainingSpecification": training_specification(names, image),
        "InferenceSpecification": inference_specification(image),
    }
    if s3:
        out["ValidationSpecification"] = validation_specification(names, s3, role)
    return out


def tuning(names: list[str]) -> dict:
    """Per tunable algorithm: the SDK's ``hyperparameter_ranges`` (as its Parameter classes take them), the objective
    per task (binary, multiclass, regression, clustering) and the ``metric_definitions``."""
    return {
        algorithm: {
            "hyperparameter_ranges": {p.name: tuning_range(p) for p in ALGORITHMS[algorithm].params if p.tune},
            "objectives": {task: {"objective_metric_name": o, "objective_type": objective_type([algorithm], o)}
                           for task, o in ALGORITHMS[algorithm].objectives.items()},
            "metric_definitions": definitions([algorithm]),
        }
        for algorithm in names if ALGORITHMS[algorithm].objectives
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train --describe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", help="one algorithm, or several comma-separated (default: SAGEMAKER_ALGORITHM, else all)")
    parser.add_argument("--image", help="the training and inference image URI (required unless --tuning)")
    parser.add_argument("--name", help="AlgorithmName (default: byoa or byoa-<algorithm>)")
    parser.add_argument("--validation-s3", help="S3 prefix holding train/iris.csv and transform/payload.csv: adds a ValidationSpecification")
    parser.add_argument("--role", help="the IAM role ARN the validation jobs run with")
    parser.add_argument("--tuning", action="store_true", help="print the HyperparameterTuner settings instead")
    args = parser.parse_args(argv)
    names = chosen(args.algorithm)
    if args.tuning:
        out = tuning(names)
        if not out:
            parser.error(f"{', '.join(names)}: nothing to tune (no objective declared)")
    else:
        if not args.image:
            parser.error("--image URI is required: the listing names the image SageMaker runs")
        if bool(args.validation_s3) != bool(args.role):
            parser.error("--validation-s3 and --role go together")
        if args.validation_s3 and not args.validation_s3.startswith("s3://"):
            parser.error("--validation-s3 must be an s3:// URI")
        out = listing(names, args.image, args.name, args.validation_s3, args.role)
        count = len(out["TrainingSpecification"]["SupportedHyperParameters"])
        if count > MAX_HYPERPARAMETERS:
            parser.error(f"{', '.join(names)} take {count} hyperparameters and SageMaker lists at most {MAX_HYPERPARAMETERS}: "
                         "list fewer algorithms (--algorithm a,b,...), or one per image built with SAGEMAKER_ALGORITHM")
        left_out = [d["Name"] for d in ranked(names)[len(out["TrainingSpecification"]["MetricDefinitions"]):]]
        if left_out:
            print(f"train --describe: SageMaker takes {len(out['TrainingSpecification']['MetricDefinitions'])} metric definitions; "
                  f"left out (still printed in the log): {', '.join(left_out)}", file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0
