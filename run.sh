#!/usr/bin/env bash
# ./run.sh          set up .venv on first use, then run the main job
# ./run.sh test     same set-up, then the test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.installed-requirements"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "run.sh: setting up $VENV (first use or requirements changed)"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel
  "$VENV/bin/pip" install --quiet -r requirements.txt
  "$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$STAMP"
fi
PY="$VENV/bin/python"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

job="${1:-main}"
[ $# -gt 0 ] && shift
case "$job" in
  test)
    exec "$PY" -m pytest -q "$@" ;;
  main)
    # Until the reproduction pipeline lands: train the baseline briefly and evaluate it.
    "$PY" -m blurnet_tf.train --flagfile=flags/models/baseline.flags --epochs=20 --out=runs/baseline-quick "$@"
    "$PY" -m blurnet_tf.evaluate --model=runs/baseline-quick
    "$PY" -m blurnet_tf.evaluate --model=original ;;
  *)
    echo "usage: ./run.sh [main|test] [args...]" >&2; exit 2 ;;
esac
