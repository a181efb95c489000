"""SageMaker's API offline: real boto3 clients whose calls botocore validates against its own service model,
answered here instead of by AWS.

botocore checks required members, types and minimums; it does not check maximums (list sizes, string lengths) or
enumerations, which SageMaker would reject on the server. ``check_limits`` checks those too, on every call, so
a listing with 41 metric definitions or an unknown instance type fails here as it would there.
"""

from __future__ import annotations

import datetime as dt

import boto3
from botocore.awsrequest import AWSResponse

ACCOUNT = "111111111111"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/byoa-test"


def check_limits(shape, value, where: str) -> None:
    """Raise ValueError where ``value`` breaks a maximum or an enumeration of ``shape`` (botocore checks the rest)."""
    limit = shape.metadata.get("max")
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                check_limits(member, value[name], f"{where}.{name}")
    elif shape.type_name == "list":
        if limit is not None and len(value) > limit:
            raise ValueError(f"{where}: {len(value)} items, SageMaker takes at most {limit}")
        for i, item in enumerate(value):
            check_limits(shape.member, item, f"{where}[{i}]")
    elif shape.type_name == "map":
        if limit is not None and len(value) > limit:
            raise ValueError(f"{where}: {len(value)} entries, SageMaker takes at most {limit}")
        for key, item in value.items():
            check_limits(shape.key, key, f"{where} key")
            check_limits(shape.value, item, f"{where}[{key}]")
    elif shape.type_name == "string":
        if limit is not None and len(value) > limit:
            raise ValueError(f"{where}: {len(value)} characters, SageMaker takes at most {limit}")
        if shape.enum and value not in shape.enum:
            raise ValueError(f"{where}: {value!r} is not one of SageMaker's values")


class FakeSageMaker:
    """Answers the calls the SDK and the README make; remembers every call (operation name, parameters)."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.created: dict[tuple[str, str], dict] = {}  # (entity, name) -> the Create call's parameters

    def install(self, session: boto3.Session) -> None:
        session.events.register("before-parameter-build", self._check)
        session.events.register("before-call", self._answer)

    def _check(self, params, model, **_):
        check_limits(model.input_shape, params, model.name)
        self.calls.append((model.name, params))

    def _answer(self, model, **_):
        name, params = self.calls[-1]
        return AWSResponse("https://localhost", 200, {}, None), self.response(name, params)

    def called(self, operation: str) -> list[dict]:
        return [params for name, params in self.calls if name == operation]

    def response(self, operation: str, params: dict) -> dict:
        now = dt.datetime.now(dt.timezone.utc)
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:thing/x"
        if operation in ("CreateAlgorithm", "CreateModelPackage"):
            entity = operation[len("Create"):]
            self.created[(entity, params[f"{entity}Name"])] = params
            return {f"{entity}Arn": f"{arn}/{params[f'{entity}Name']}"}
        if operation in ("DescribeAlgorithm", "DescribeModelPackage"):
            entity = operation[len("Describe"):]
            name = params[f"{entity}Name"].rsplit("/", 1)[-1]  # a name or an ARN
            created = self.created[(entity, name)]
            for source in created.get("SourceAlgorithmSpecification", {}).get("SourceAlgorithms", [])[:1]:
                algorithm = self.created[("Algorithm", source["AlgorithmName"].rsplit("/", 1)[-1])]
                created = {**created, "InferenceSpecification": algorithm["InferenceSpecification"]}  # as SageMaker derives it
            return {**created, f"{entity}Name": name, f"{entity}Arn": f"{arn}/{name}", f"{entity}Status": "Completed",
                    "CreationTime": now}
        if operation == "DescribeTrainingJob":
            return {"TrainingJobName": params["TrainingJobName"], "TrainingJobArn": arn, "TrainingJobStatus": "Completed",
                    "SecondaryStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/model.tar.gz"},
                    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
                    "AlgorithmSpecification": {"TrainingImage": "byoa", "TrainingInputMode": "File"},
                    "HyperParameters": {}, "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"}, "RoleArn": ROLE,
                    "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": now, "TrainingStartTime": now,
                    "TrainingEndTime": now, "BillableTimeInSeconds": 1}
        if operation == "DescribeEndpoint":
            return {"EndpointName": params["EndpointName"], "EndpointArn": arn, "EndpointStatus": "InService",
                    "EndpointConfigName": params["EndpointName"], "CreationTime": now, "LastModifiedTime": now}
        if operation == "DescribeHyperParameterTuningJob":
            return {"HyperParameterTuningJobName": params["HyperParameterTuningJobName"], "HyperParameterTuningJobArn": arn,
                    "HyperParameterTuningJobStatus": "Completed", "CreationTime": now,
                    "BestTrainingJob": {"TrainingJobName": "best", "TrainingJobArn": arn, "CreationTime": now,
                                        "TrainingJobStatus": "Completed", "TunedHyperParameters": {}}}
        if operation == "DescribeLogStreams":
            return {"logStreams": []}
        if operation == "ListBuckets":  # the SDK's default bucket
            return {"Buckets": [{"Name": f"sagemaker-{REGION}-{ACCOUNT}", "CreationDate": now}]}
        if operation == "GetCallerIdentity":
            return {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/test", "UserId": "test"}
        if operation.startswith("Create"):
            return {f"{operation[len('Create'):]}Arn": arn}
        return {}


def fake_session() -> tuple[boto3.Session, FakeSageMaker]:
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    fake = FakeSageMaker()
    fake.install(session)
    return session, fake
