#!/usr/bin/env bash
# The GPU check as one command for a lent GPU machine (options go on to gpu_check.py):
#   bash scripts/gpu_check.sh                      # --device cuda --size full, out: $OUT
#   bash scripts/gpu_check.sh --parts 2 3          # a rerun of some parts
# Wheels in $WHEELS (default .whl/, if it holds any) are installed into /tmp/site first:
# the packages a machine's image lacks (phiflow, escnn, netCDF4, ...), carried offline.
# GPU_CHECK_TIMEOUT (default 570 s) stops the run; the report is written after every
# check, so a stopped run still leaves it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G "${WHEELS:-.whl}/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
exec timeout -k 10 "${GPU_CHECK_TIMEOUT:-570}" "$PY" scripts/gpu_check.py --device cuda \
  --size full "$@"
