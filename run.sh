#!/usr/bin/env bash
# ./run.sh          set up .venv on first use, then reproduce the paper (quick profile, 2 seeds, about 6 min on 2 cores)
# ./run.sh full     the same with the paper's budgets (all Table II models, lambda sweep, 300 RP2 epochs)
# ./run.sh table2   every Table II row under seeds 0, 1, 2 at budgets measured flat (~1 h on 2 cores)
# ./run.sh mnist    Defend++'s small MNIST nets at the full budgets with the reconstruction-weight curve (~1.5 h)
# ./run.sh tradeoff every defence along its strength knob against the baseline along training (parts: --steps)
# ./run.sh longtrain the baseline, TV 1e-4 and Tik_hf trained 300 epochs, attacked after 10, 30, 100, 300 (~1-1.5 h)
# ./run.sh robustness every Table II row, Defend++ and Pixel Deflection through benchmark(): PGD-10, AutoAttack, strength checks
# ./run.sh fair     the central claim at matched accuracy, fully trained comparators, 10 seeds (parts: --seeds)
# ./run.sh physical digital and EOT RP2 stickers on the held-out stationary grid, every defence, 6 seeds (parts: --seeds)
# ./run.sh test     same set-up, then the test suite (what CI runs, after ./run.sh lint)
# ./run.sh lint     ruff (lint and format check) and mypy, configured in pyproject.toml
# Extra arguments go to the job, e.g. ./run.sh full --stages=train or ./run.sh test -k rp2.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.installed-requirements"
want=$(cat requirements.txt requirements-test.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "run.sh: setting up $VENV (first use or requirements changed)"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel
  "$VENV/bin/pip" install --quiet -r requirements.txt -r requirements-test.txt
  "$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$STAMP"
fi
PY="$VENV/bin/python"

# A first argument that is a flag goes to the quick reproduction (./run.sh --seeds=0,1,2).
job=main
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then job="$1"; shift; fi
case "$job" in
  test)
    # No TensorFlow C++ INFO/WARNING lines in the tests' own process (the binaries quiet themselves).
    export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
    exec "$PY" -m pytest -q "$@" ;;
  lint)
    "$VENV/bin/ruff" check blurnet_tf tests bench
    "$VENV/bin/ruff" format --check blurnet_tf tests bench
    exec "$VENV/bin/mypy" ;;
  main|quick)
    exec "$PY" -m blurnet_tf.cli.reproduce --profile=quick "$@" ;;
  full|table2|mnist|tradeoff|longtrain|robustness|fair|physical)
    exec "$PY" -m blurnet_tf.cli.reproduce --profile="$job" "$@" ;;
  *)
    echo "usage: ./run.sh [main|full|table2|mnist|tradeoff|longtrain|robustness|fair|physical|test|lint] [args...]" >&2; exit 2 ;;
esac
