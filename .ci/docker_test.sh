#!/usr/bin/env bash
# The image under real Docker, driven by the SageMaker Python SDK's local mode (.ci/sdk_local_mode.py).
#   bash .ci/docker_test.sh          (root; after .ci/image_test.sh, whose debootstrap base it reuses)
# A private dockerd (its own socket, data root and pid file; no iptables or NAT on this VM, so builds use the
# host network) builds the Dockerfile as the README says, from the debootstrap base imported with `docker import`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
log() { echo "[docker-test $(date +%T)] $*"; }
if [ ! -x /usr/bin/docker ] || [ ! -x /usr/sbin/dockerd ] || ! command -v docker-compose >/dev/null; then
  log "installing docker.io docker-compose"
  apt-get update -qq
  apt-get install -y -qq docker.io docker-compose >/dev/null
fi
# Debian's docker, whatever else is called docker on PATH (another client may come first).
export PATH="/usr/bin:/usr/sbin:$PATH"
docker=/usr/bin/docker

state=$(mktemp -d /tmp/byoa-dockerd.XXXXXX)
export DOCKER_HOST="unix://$state/docker.sock"
stop_daemon() {
  if [ -f "$state/docker.pid" ]; then
    local pid
    pid=$(cat "$state/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  # the daemon leaves its network namespace mounted under its exec root
  awk -v dir="$state/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r umount -l || true
  rm -rf "$state"
}
trap stop_daemon EXIT
/usr/sbin/dockerd --host "$DOCKER_HOST" --data-root "$state/root" --exec-root "$state/exec" --pidfile "$state/docker.pid" \
  --storage-driver=vfs --iptables=false --ip-masq=false --exec-opt native.cgroupdriver=cgroupfs \
  --default-ulimit nofile=20000:20000 --default-ulimit nproc=32768:32768 >"$state/dockerd.log" 2>&1 &
for _ in $(seq 150); do "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
"$docker" info >/dev/null 2>&1 || { cat "$state/dockerd.log"; log "dockerd did not start"; exit 1; }
log "private dockerd $("$docker" version --format '{{.Server.Version}}') on $DOCKER_HOST"

base_tar=$(ls -t /var/cache/byoa-ci/debian-bookworm-*.tar 2>/dev/null | head -1)
[ -n "$base_tar" ] || { log "no debootstrap base: run .ci/image_test.sh first"; exit 1; }
"$docker" import "$base_tar" byoa-base:bookworm >/dev/null
log "docker build (base: $(basename "$base_tar"))"
"$docker" build -q --network host --build-arg BASE_IMAGE=byoa-base:bookworm -t byoa-docker:test . >/dev/null
log "image: $("$docker" image inspect byoa-docker:test --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"

source tools/venv.sh
"$VENV/bin/python" .ci/sdk_local_mode.py byoa-docker:test
log "docker test passed"
