#!/usr/bin/env bash
# Build the real Dockerfile with podman and run train and serve inside the image.
#   bash .ci/image_test.sh          (root; installs podman, buildah, debootstrap, runc from Debian)
# No registry is reachable here, so the base image is made locally with debootstrap (cached per day
# in /var/cache/byoa-ci) and imported as localhost/debian:bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
image=localhost/byoa-ci:test
cache=/var/cache/byoa-ci
log() { echo "[image-test $(date +%T)] $*"; }

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
  log "installing podman buildah debootstrap runc"
  apt-get update -qq
  apt-get install -y -qq podman buildah debootstrap runc >/dev/null
fi

# crun and the default ulimits fail on this VM: runc, cgroupfs, a file event log, explicit ulimits.
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

base_tar="$cache/debian-bookworm-$(date +%F).tar"
if ! podman image exists localhost/debian:bookworm || [ ! -f "$base_tar" ]; then
  if [ ! -f "$base_tar" ]; then
    log "debootstrap bookworm (minbase) -> $base_tar"
    root=$(mktemp -d)
    # The mirrors this machine's apt uses, whatever its configuration format: apt-cache policy lists each
    # archive as "500 <uri> <suite>/main amd64 Packages". No mirror is named in the repository.
    sources=$(apt-cache policy | awk '$NF == "Packages" && $3 ~ /^bookworm[-a-z]*\/main$/ { split($3, s, "/"); print "deb " $2 " " s[1] " main" }' | sort -u)
    mirror=$(awk '$3 == "bookworm" { print $2; exit }' <<<"$sources")
    [ -n "$mirror" ] || { log "this machine's apt has no bookworm main archive to debootstrap from"; exit 1; }
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    printf '%s\n' "$sources" > "$root/etc/apt/sources.list"
    # Where TLS is intercepted, pip inside the build needs the host's extra CAs (installed by the
    # image's ca-certificates package from /usr/local/share/ca-certificates) and to use that bundle.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      mkdir -p "$root/usr/local/share/ca-certificates"
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
    fi
    rm -rf "$root/var/cache/apt/archives/"*.deb
    mkdir -p "$cache"
    find "$cache" -name 'debian-bookworm-*.tar' ! -name "$(basename "$base_tar")" -delete
    tar -C "$root" -cf "$base_tar.partial" . && mv "$base_tar.partial" "$base_tar"
    rm -rf "$root"
  fi
  log "importing $base_tar as localhost/debian:bookworm"
  podman import "$base_tar" localhost/debian:bookworm >/dev/null
fi

log "podman build"
podman build -q --network host --build-arg BASE_IMAGE=localhost/debian:bookworm -t "$image" . >/dev/null
size=$(podman image inspect "$image" --format '{{.Size}}')
base_size=$(podman image inspect localhost/debian:bookworm --format '{{.Size}}')
added=$(( (size - base_size) / 1000000 ))
log "image size: $(( size / 1000000 )) MB, of which $added MB on top of the base (bound: 475 MB)"
[ "$added" -le 475 ] || { log "the image adds $added MB to its base, more than 475 MB"; exit 1; }

export CONTAINER_CLI=podman
cleanup() { podman rm -f --ignore byoa-ci-serve byoa-ci-isolated >/dev/null 2>&1 || true; }
cleanup
trap cleanup EXIT
# predicted labels from a JSON reply (predict.sh appends "(HTTP nnn)")
LABELS="import json, sys; body = sys.stdin.read().rsplit('(HTTP', 1)[0]; print(' '.join('%g' % p['predicted_label'] for p in json.loads(body)['predictions']))"
# runs inside a container without network: waits for /ping, posts stdin as CSV, prints the reply
ISOLATED_CLIENT="
import sys, time, urllib.request
body = sys.stdin.buffer.read()
for _ in range(300):
    try:
        if urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2).status == 200:
            break
    except OSError:
        time.sleep(0.1)
request = urllib.request.Request('http://127.0.0.1:8080/invocations', data=body, headers={'Content-Type': 'text/csv'})
print(urllib.request.urlopen(request).read().decode())
"
check_train() {
  local model=local_test/test_dir/model out=local_test/test_dir/output
  [ -s "$model/model.npz" ] && [ -s "$model/manifest.json" ] || { log "no model written"; exit 1; }
  [ ! -e "$out/failure" ] || { log "train failed: $(head -1 "$out/failure")"; exit 1; }
  python3 - "$out/data/evaluation.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
accuracy = report["metrics"]["test"]["multiclass_accuracy"]
assert accuracy > 0.8, report["metrics"]["test"]
print(f"  evaluation.json: test multiclass_accuracy {accuracy:.3f}, split {report['split']['sizes']}")
PY
  for png in confusion_matrix.png precision_recall.png; do [ -s "$out/data/$png" ] || { log "missing $png"; exit 1; }; done
  if grep -q "fontManager\|temporary cache directory" /tmp/byoa-ci-train.log; then
    log "matplotlib built its font cache at run time: the image should have prepared it"; exit 1
  fi
}

check_serve() {  # check_serve EXTRA_RUN_OPTIONS...
  local port name=byoa-ci-serve
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PORT=$port local_test/serve_local.sh "$image" --name "$name" "$@" >/tmp/byoa-ci-serve.log 2>&1 &
  python3 local_test/invoke.py --wait "http://127.0.0.1:$port/ping" || { cat /tmp/byoa-ci-serve.log; exit 1; }
  local expected
  expected=$(cat local_test/payloads/expected_labels.txt)
  for payload in local_test/payloads/payload.{csv,json,jsonl,pbr,npy,libsvm}; do
    for accept in application/json text/csv application/jsonlines application/x-recordio-protobuf; do
      PORT=$port local_test/predict.sh "$payload" "" "$accept" > /tmp/byoa-ci-reply && grep -q "(HTTP 200)" /tmp/byoa-ci-reply \
        || { log "$payload -> $accept:"; cat /tmp/byoa-ci-reply; exit 1; }
    done
    got=$(PORT=$port local_test/predict.sh "$payload" "" application/json | python3 -c "$LABELS")
    [ "$got" = "$expected" ] || { log "$payload: predicted $got, expected $expected"; exit 1; }
  done
  log "  serve: 6 content types x 4 accepts answered; predicted labels $expected as expected"
  podman stop -t 30 "$name" >/dev/null
}

log "train --describe in the image (the CreateAlgorithm listing and the tuning settings)"
podman run --rm --network none "$image" train --describe --image "$image" --algorithm linear-learner,xgboost 2>/dev/null \
  | python3 -c 'import json, sys; spec = json.load(sys.stdin)["TrainingSpecification"]; print(len(spec["SupportedHyperParameters"]), "hyperparameters,", len(spec["MetricDefinitions"]), "metric definitions")' \
  || { log "train --describe failed in the image"; exit 1; }
podman run --rm --network none "$image" train --describe --tuning | python3 -c 'import json, sys; print(sorted(json.load(sys.stdin)))' \
  || { log "train --describe --tuning failed in the image"; exit 1; }
log "train (File mode, CSV) in the image"
local_test/train_local.sh "$image" >/tmp/byoa-ci-train.log 2>&1 || { cat /tmp/byoa-ci-train.log; exit 1; }
check_train
log "serve in the image"
check_serve

check_serve_isolated() {  # no network at all: the requests come from inside the container, over its loopback
  local name=byoa-ci-isolated
  podman run -d --rm --name "$name" --network none --read-only --tmpfs /tmp -v "$PWD/local_test/test_dir:/opt/ml" "$image" serve >/dev/null
  local got
  got=$(podman exec -i "$name" python3 -c "$ISOLATED_CLIENT" < local_test/payloads/payload.csv | python3 -c "$LABELS")
  [ "$got" = "$(cat local_test/payloads/expected_labels.txt)" ] || { log "isolated serve predicted '$got'"; podman logs "$name" | tail -20; exit 1; }
  log "  isolated serve (--network none --read-only --tmpfs /tmp): predicted labels $got as expected"
  podman stop -t 30 "$name" >/dev/null
}

log "again with --network none --read-only --tmpfs /tmp (network isolation; writes only under /opt/ml and /tmp)"
local_test/train_local.sh "$image" --network none --read-only --tmpfs /tmp >/tmp/byoa-ci-train.log 2>&1 || { cat /tmp/byoa-ci-train.log; exit 1; }
check_train
check_serve_isolated
log "image test passed"
