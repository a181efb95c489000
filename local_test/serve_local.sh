#!/usr/bin/env bash
# Serve local_test/test_dir/model from the image on http://localhost:${PORT:-8080} (stop: Ctrl-C or `docker stop`).
#   local_test/serve_local.sh <image> [extra `run` options]
# CONTAINER_CLI=podman to use podman instead of docker.
set -euo pipefail
image=${1:?usage: $0 <image> [run options...]}
shift
cli=${CONTAINER_CLI:-docker}
test_dir="$(cd "$(dirname "$0")" && pwd)/test_dir"
exec "$cli" run --rm -p "${PORT:-8080}:8080" -v "$test_dir:/opt/ml" "$@" "$image" serve
