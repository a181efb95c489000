#!/usr/bin/env bash
# The no-Docker demo: sets up the venv, writes the embedded default data, and trains with the
# real container/train on a fake /opt/ml, in File mode and in Pipe mode (real FIFOs fed by
# local_test/pipe_feeder.py), then prints each job's evaluation summary. The reports
# (evaluation.json and the pictures) are kept in demo_output/<job>/.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
export PATH="$VENV/bin:$PATH"
work=$(mktemp -d)
trap 'kill ${serve_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
reports="$PWD/demo_output"
port=${DEMO_PORT:-8080}
rm -rf "$reports"
python local_test/demo_data.py "$work/data"

job() {  # job NAME MODE HYPERPARAMETERS-JSON DATASET FORMAT CONTENT-TYPE
  local name=$1 mode=$2 hp=$3 dataset=$4 ext=$5 ct=$6 base="$work/$1"
  mkdir -p "$base/input/config" "$base/input/data/train" "$base/input/data/test"
  echo "$hp" > "$base/input/config/hyperparameters.json"
  cat > "$base/input/config/inputdataconfig.json" <<JSON
{"train": {"ContentType": "$ct", "TrainingInputMode": "$mode"}, "test": {"ContentType": "$ct", "TrainingInputMode": "$mode"}}
JSON
  local feeders=()
  if [ "$mode" = Pipe ]; then
    python local_test/pipe_feeder.py "$base/input/data" train "$work/data/$dataset/train.$ext" --epochs 16 --wait 5 & feeders+=($!)
    python local_test/pipe_feeder.py "$base/input/data" test "$work/data/$dataset/test.$ext" --epochs 1 --wait 5 & feeders+=($!)
  else
    cp "$work/data/$dataset/train.$ext" "$base/input/data/train/"
    cp "$work/data/$dataset/test.$ext" "$base/input/data/test/"
  fi
  echo
  echo "=== $name ($mode mode, $ct)"
  SAGEMAKER_BASE_DIR="$base" container/train > "$base/stdout" 2> "$base/stderr" || { cat "$base/stderr" "$base/output/failure"; exit 1; }
  echo "  $(grep -c "^#quality_metric" "$base/stdout") metric lines; model: $(ls "$base/model" | tr '\n' ' ')"
  sed -n '/evaluation summary/,$p' "$base/stderr" | sed 's/^[0-9-]* [0-9:,]* [A-Z]* /  /'
  mkdir -p "$reports/$name" && cp "$base/output/data/"* "$reports/$name/"
  for pid in "${feeders[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}

job cancer-linear-learner File \
  '{"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": "32", "binary_classifier_model_selection_criteria": "precision_at_target_recall", "target_recall": "0.95", "k_fold": "5"}' \
  breast_cancer csv text/csv
job cancer-linear-learner-pipe Pipe \
  '{"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": "32", "binary_classifier_model_selection_criteria": "precision_at_target_recall", "target_recall": "0.95"}' \
  breast_cancer pbr application/x-recordio-protobuf
job iris-random-forest File '{"algorithm": "random-forest", "n_estimators": "50"}' iris pbr application/x-recordio-protobuf
job iris-kmeans Pipe '{"algorithm": "kmeans", "k": "3", "feature_dim": "4", "mini_batch_size": "30", "epochs": "5"}' iris csv text/csv
echo
echo "=== serving the iris random forest on 127.0.0.1:$port"
base="$work/iris-random-forest"
if command -v nginx >/dev/null; then  # tools/venv.sh installed it if it was missing and we are root
  echo "  container/serve: nginx -> gunicorn -> flask"
  SAGEMAKER_BASE_DIR="$base" SAGEMAKER_BIND_TO_PORT=$port SAGEMAKER_MODEL_SERVER_WORKERS=2 container/serve > "$work/serve.log" 2>&1 &
else
  echo "  nginx is not installed and cannot be without root: serving through gunicorn alone (no nginx in front)"
  SAGEMAKER_BASE_DIR="$base" python -m gunicorn --bind "127.0.0.1:$port" --workers 2 --chdir container byoa.serving.wsgi:app > "$work/serve.log" 2>&1 &
fi
serve_pid=$!
python local_test/invoke.py --wait "http://127.0.0.1:$port/ping" || { cat "$work/serve.log"; exit 1; }
url="http://127.0.0.1:$port/invocations"
echo "  three iris flowers (expected classes: $(cat local_test/payloads/expected_labels.txt)), in every request content type:"
for pair in csv:text/csv json:application/json jsonl:application/jsonlines pbr:application/x-recordio-protobuf npy:application/x-npy libsvm:text/libsvm; do
  reply=$(python local_test/invoke.py "$url" "${pair#*:}" application/json < "local_test/payloads/payload.${pair%%:*}")
  echo "  payload.${pair%%:*} (${pair#*:}) -> application/json: ${reply%%$'\n'*}"
done
echo "  payload.csv -> text/csv:"
python local_test/invoke.py "$url" text/csv text/csv < local_test/payloads/payload.csv | sed 's/^/    /'
echo "  a bad request (3 features):"
echo "1,2,3" | python local_test/invoke.py "$url" text/csv | sed 's/^/    /' || true
kill -TERM $serve_pid; wait $serve_pid || { cat "$work/serve.log"; exit 1; }
echo
echo "demo done: 4 training jobs (File and Pipe mode) on the embedded data, one served; reports in demo_output/"
