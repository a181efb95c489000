#!/usr/bin/env bash
# The seed's cascading algorithms, without Docker: PCA feeds k-means, trained and served as a SageMaker
# serial inference pipeline would run them.
#   1. train PCA on the iris features;
#   2. batch-transform the features through PCA's serve (text/csv out): k-means' training channel;
#   3. train k-means on the projections;
#   4. serve both (PCA with SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv) on their own ports and send
#      requests through local_test/pipeline.py, which passes each response on as the next request.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
export PATH="$VENV/bin:$PATH"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
pca_port=${PCA_PORT:-8081} kmeans_port=${KMEANS_PORT:-8082}
python local_test/demo_data.py "$work/data" >/dev/null
cut -d, -f2- "$work/data/iris/train.csv" > "$work/features.csv"  # the label column off: PCA and k-means are unsupervised

train() {  # train NAME HYPERPARAMETERS-JSON FEATURES-CSV
  local base="$work/$1"
  mkdir -p "$base/input/config" "$base/input/data/train"
  echo "$2" > "$base/input/config/hyperparameters.json"
  echo '{"train": {"ContentType": "text/csv;label_size=0", "TrainingInputMode": "File"}}' > "$base/input/config/inputdataconfig.json"
  cp "$3" "$base/input/data/train/part.csv"
  SAGEMAKER_BASE_DIR="$base" container/train > "$base/stdout" 2> "$base/stderr" || { cat "$base/output/failure"; exit 1; }
  echo "  trained $1: $(grep -m2 '^#quality_metric' "$base/stdout" | sed 's/.*, //' | tr '\n' ' ')"
}

serve() {  # serve NAME PORT [ENV=VALUE...]: in the background, until /ping answers
  local name=$1 port=$2
  shift 2
  env "$@" SAGEMAKER_BASE_DIR="$work/$name" SAGEMAKER_BIND_TO_PORT="$port" SERVE_RUNTIME_DIR="$work/$name-runtime" \
    SAGEMAKER_MODEL_SERVER_WORKERS=1 container/serve > "$work/$name.log" 2>&1 &
  pids+=($!)
  python local_test/invoke.py --wait "http://127.0.0.1:$port/ping" || { cat "$work/$name.log"; exit 1; }
}

echo "=== 1. PCA (2 components) on the iris features"
train pca '{"algorithm": "pca", "num_components": "2", "feature_dim": "4", "mini_batch_size": "50"}' "$work/features.csv"
echo "=== 2. batch transform of the features through PCA (text/csv)"
serve pca "$pca_port" SAGEMAKER_BATCH=true SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv
python local_test/invoke.py "http://127.0.0.1:$pca_port/invocations" text/csv < "$work/features.csv" | sed '$d' > "$work/projections.csv"
echo "  $(wc -l < "$work/projections.csv") projections, e.g. $(head -1 "$work/projections.csv")"
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
echo "=== 3. k-means (k=3) on the projections"
train kmeans '{"algorithm": "kmeans", "k": "3", "feature_dim": "2"}' "$work/projections.csv"
echo "=== 4. the pipeline: PCA on :$pca_port (answers text/csv) -> k-means on :$kmeans_port"
serve pca "$pca_port" SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv
serve kmeans "$kmeans_port"
urls=("http://127.0.0.1:$pca_port/invocations" "http://127.0.0.1:$kmeans_port/invocations")
for payload in csv:text/csv json:application/json pbr:application/x-recordio-protobuf; do
  echo "  payload.${payload%%:*} (${payload#*:}) -> application/json:"
  python local_test/pipeline.py "${payload#*:}" application/json "${urls[@]}" < "local_test/payloads/payload.${payload%%:*}" | sed 's/^/    /'
done
