#!/usr/bin/env bash
# Build the image and push it to Amazon ECR as <name>:<version> and <name>:latest.
#
#   ./build_and_push.sh byoa                 version 1 and latest, with docker
#   ./build_and_push.sh byoa 2 --dry-run     print every command, run none
#   CONTAINER_CLI=podman ./build_and_push.sh byoa
#
# Account from `aws sts get-caller-identity`; region from AWS_REGION, else `aws configure get region`,
# else us-east-1. The ECR repository is created when missing. Production should pin the version tag
# (and the base image by digest: --build-arg BASE_IMAGE=public.ecr.aws/docker/library/debian@sha256:...).
set -euo pipefail
cd "$(dirname "$0")"

dry_run=false
args=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=true ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg (use --dry-run)" >&2; exit 2 ;;
    *) args+=("$arg") ;;
  esac
done
if [ "${#args[@]}" -lt 1 ] || [ "${#args[@]}" -gt 2 ]; then
  echo "usage: $0 <image-name> [version] [--dry-run]" >&2
  exit 2
fi
name=${args[0]}
version=${args[1]:-1}
cli=${CONTAINER_CLI:-docker}

run() {  # print a command; run it unless this is a dry run
  echo "+ $*"
  if ! $dry_run; then "$@"; fi
}

if $dry_run; then
  echo "+ aws sts get-caller-identity --query Account --output text"
  account="<account>"
  if [ -n "${AWS_REGION:-}" ]; then region=$AWS_REGION; else
    echo "+ aws configure get region   (us-east-1 if unset)"
    region="<region>"
  fi
else
  account=$(aws sts get-caller-identity --query Account --output text)
  region=${AWS_REGION:-$(aws configure get region || true)}
  region=${region:-us-east-1}
fi
registry="$account.dkr.ecr.$region.amazonaws.com"
image="$registry/$name"

if $dry_run; then
  echo "+ aws ecr describe-repositories --repository-names $name --region $region   (create it if missing:)"
  echo "+ aws ecr create-repository --repository-name $name --region $region"
elif ! aws ecr describe-repositories --repository-names "$name" --region "$region" >/dev/null 2>&1; then
  run aws ecr create-repository --repository-name "$name" --region "$region" >/dev/null
fi

echo "+ aws ecr get-login-password --region $region | $cli login --username AWS --password-stdin $registry"
if ! $dry_run; then
  aws ecr get-login-password --region "$region" | "$cli" login --username AWS --password-stdin "$registry"
fi

run "$cli" build -t "$name:$version" .
run "$cli" tag "$name:$version" "$image:$version"
run "$cli" tag "$name:$version" "$image:latest"
run "$cli" push "$image:$version"
run "$cli" push "$image:latest"

echo
echo "image: $image:$version   (pin this one in production)"
echo "image: $image:latest"
