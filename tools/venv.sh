# Sourced: creates or reuses .venv (or $BYOA_VENV) with requirements-test.txt installed.
# Reinstalls only when the requirement files change. As root on Debian/Ubuntu, first installs the
# system packages the project needs when they are missing: python3-venv (for .venv), nginx (serve).
VENV="${BYOA_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
need=()
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements-test.txt
  echo "$want" > "$stamp"
fi
export SAGEMAKER_SUPPRESS_V2_WARNING=1
