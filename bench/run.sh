#!/usr/bin/env bash
# Runs every benchmark; each prints its ratios against baselines measured in the same run.
#   ./bench/run.sh            (all)      ./bench/run.sh decode   (one)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
for name in "${@:-decode pipe serve cluster fm}"; do
  for b in $name; do
    echo "== bench/$b.py"
    "$VENV/bin/python" "bench/$b.py"
  done
done
