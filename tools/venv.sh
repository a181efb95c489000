# Sourced: creates or reuses .venv (or $BYOA_VENV) with requirements-test.txt installed.
# Reinstalls only when the requirement files change.
VENV="${BYOA_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
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
