#!/usr/bin/env bash
# Sets up (or reuses) the virtualenv with the pinned requirements, then runs the test suite.
#   ./tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
exec "$VENV/bin/python" -m pytest "$@"
