#!/usr/bin/env bash
# Send one payload file to a running server.
#   local_test/predict.sh <payload> [content-type] [accept]
#   local_test/predict.sh local_test/payloads/payload.json application/json text/csv
# Default content type from the file's extension (.csv .json .jsonl .pbr .npy .libsvm); default accept JSON.
set -euo pipefail
payload=${1:?usage: $0 <payload> [content-type] [accept]}
case "$payload" in
  *.csv) guess=text/csv ;; *.jsonl) guess=application/jsonlines ;; *.json) guess=application/json ;;
  *.pbr) guess=application/x-recordio-protobuf ;; *.npy) guess=application/x-npy ;; *.libsvm) guess=text/libsvm ;;
  *) guess=text/csv ;;
esac
content_type=${2:-$guess}
accept=${3:-application/json}
url="http://${HOST:-localhost}:${PORT:-8080}/invocations"
if command -v curl >/dev/null; then
  curl -sS -w '\n(HTTP %{http_code})\n' -X POST -H "Content-Type: $content_type" -H "Accept: $accept" --data-binary @"$payload" "$url"
else
  python3 "$(dirname "$0")/invoke.py" "$url" "$content_type" "$accept" < "$payload"
fi
