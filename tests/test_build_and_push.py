"""build_and_push.sh against recording shims of `aws` and the container CLI (ECR is unreachable from here)."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / "build_and_push.sh"

SHIM = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$SHIM_LOG"
case "$(basename "$0") $*" in
  "aws sts get-caller-identity"*) echo 123456789012 ;;
  "aws configure get region"*) [ -n "${SHIM_REGION:-}" ] && echo "$SHIM_REGION" ;;
  "aws ecr describe-repositories"*) [ "${SHIM_REPO_EXISTS:-0}" = 1 ] || { echo "RepositoryNotFoundException" >&2; exit 254; } ;;
  "aws ecr get-login-password"*) echo secret-token ;;
  *" login "*) read -r token; echo "login with $token" >> "$SHIM_LOG" ;;
esac
step=$(basename "$0")-$1
if [ "$step" = "${SHIM_FAIL:-}" ]; then exit 7; fi
exit 0
"""


@pytest.fixture
def shims(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("aws", "docker", "podman"):
        (bin_dir / name).write_text(SHIM)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"

    def run(*args, **env):
        full = {k: v for k, v in os.environ.items() if k != "AWS_REGION"}
        full.update({"PATH": f"{bin_dir}:{os.environ['PATH']}", "SHIM_LOG": str(log), **env})
        proc = subprocess.run([str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=30)
        calls = log.read_text().splitlines() if log.exists() else []
        return proc, calls

    return run


def test_dry_run_prints_every_command_and_runs_none(shims):
    proc, calls = shims("byoa", "3", "--dry-run", AWS_REGION="eu-west-1")
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    out = proc.stdout
    for expected in ("aws sts get-caller-identity", "aws ecr describe-repositories --repository-names byoa --region eu-west-1",
                     "aws ecr create-repository --repository-name byoa", "aws ecr get-login-password --region eu-west-1 | docker login",
                     "docker build -t byoa:3 .", "docker push <account>.dkr.ecr.eu-west-1.amazonaws.com/byoa:3",
                     "docker push <account>.dkr.ecr.eu-west-1.amazonaws.com/byoa:latest"):
        assert expected in out, (expected, out)


def test_real_run_creates_a_missing_repository_logs_in_then_pushes_both_tags(shims):
    proc, calls = shims("byoa", SHIM_REGION="ap-south-1")
    assert proc.returncode == 0, proc.stderr
    image = "123456789012.dkr.ecr.ap-south-1.amazonaws.com/byoa"
    login = "docker login --username AWS --password-stdin 123456789012.dkr.ecr.ap-south-1.amazonaws.com"
    assert calls[:4] == [
        "aws sts get-caller-identity --query Account --output text",
        "aws configure get region",
        "aws ecr describe-repositories --repository-names byoa --region ap-south-1",
        "aws ecr create-repository --repository-name byoa --region ap-south-1",
    ]
    # the two sides of the login pipe start together: either may log first; the token reaches the login
    assert sorted(calls[4:6]) == sorted(["aws ecr get-login-password --region ap-south-1", login])
    assert calls[6:] == [
        "login with secret-token",
        "docker build -t byoa:1 .",
        f"docker tag byoa:1 {image}:1",
        f"docker tag byoa:1 {image}:latest",
        f"docker push {image}:1",
        f"docker push {image}:latest",
    ]
    assert f"image: {image}:1" in proc.stdout and f"image: {image}:latest" in proc.stdout


def test_existing_repository_is_not_created_default_region_and_podman(shims):
    proc, calls = shims("byoa", "2", SHIM_REPO_EXISTS="1", CONTAINER_CLI="podman")
    assert proc.returncode == 0, proc.stderr
    assert not any("create-repository" in c for c in calls)
    assert "aws ecr describe-repositories --repository-names byoa --region us-east-1" in calls
    assert calls[-1] == "podman push 123456789012.dkr.ecr.us-east-1.amazonaws.com/byoa:latest"


@pytest.mark.parametrize("fail", ["docker-login", "docker-build", "docker-push"])
def test_a_failing_step_stops_the_script_with_its_exit_code(shims, fail):
    proc, calls = shims("byoa", SHIM_REPO_EXISTS="1", SHIM_FAIL=fail)
    assert proc.returncode == 7
    failed = max(i for i, c in enumerate(calls) if c.startswith(fail.replace("-", " ")))
    assert not any(c.startswith(("docker build", "docker tag", "docker push")) for c in calls[failed + 1 :])
    assert not any(c.startswith("docker push") and c.endswith(":latest") for c in calls)


def test_usage_errors():
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr
