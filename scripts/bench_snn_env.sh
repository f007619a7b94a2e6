#!/usr/bin/env bash
# SuperNNova (fink-science snn_ia) pins numpy < 2 through astropy < 6, so it cannot share the
# project's environment. This builds a separate venv with fink-t2 + fink-science + SuperNNova
# (CPU torch) and runs the module benchmark there, so t2 and SuperNNova are timed in ONE run.
#   bash scripts/bench_snn_env.sh [bench_modules.py options, e.g. --quick --output FILE.json]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/bench-snn-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -e . "fink-science>=7.4" line_profiler supernnova "torch==2.13.0" matplotlib
fi
export PYSPARK_PYTHON="$PWD/$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$PWD/$VENV/bin/python"
exec "$VENV/bin/python" scripts/bench_modules.py --no-micro --modules t2,t2+status,nalerthist,roid,snn_snia_vs_nonia "$@"
