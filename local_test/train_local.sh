#!/usr/bin/env bash
# Train inside the image on local_test/test_dir, mounted as /opt/ml (File mode, like SageMaker):
# channel train is CSV, channel test is RecordIO-protobuf.
#   local_test/train_local.sh <image> [extra `run` options, e.g. --network none --read-only --tmpfs /tmp]
# CONTAINER_CLI=podman to use podman instead of docker.
set -euo pipefail
image=${1:?usage: $0 <image> [run options...]}
shift
cli=${CONTAINER_CLI:-docker}
test_dir="$(cd "$(dirname "$0")" && pwd)/test_dir"
rm -rf "$test_dir/model" "$test_dir/output"
mkdir -p "$test_dir/model" "$test_dir/output"
"$cli" run --rm -v "$test_dir:/opt/ml" "$@" "$image" train
