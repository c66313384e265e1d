#!/usr/bin/env bash
# The GPU check of issue 25, for one lent GPU, in under 8 minutes:
#   bash benchmarks/device_check.sh [OUT_DIR]
# Installs nothing beyond `make install` (the package and its test extra),
# then writes to OUT_DIR (default: the folder device/ under benchmarks/results/):
#   device.txt        nvidia-smi, the TensorFlow devices, uptime
#   speed.json        python -m benchmarks.run records (layers on the four
#                     shapes and both Glows, XLA off and on; 5 repeats)
#   targets.txt       python -m benchmarks.targets on those records
#   sample_ops.json   ops and while_loop iterations of one sample call
#   *.log             each step's output
# Each step has its own time limit (timeout), so one slow step cannot take
# the whole budget; a step that fails or times out is logged and the next
# one runs. The exit status is the number of steps that failed.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/device}"
mkdir -p "$OUT"
make install >"$OUT/install.log" 2>&1 || { echo "make install failed"; exit 1; }
PY=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL=2
failed=0
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
    echo "$name: ok ($((SECONDS - start)) s)"
  else
    echo "$name: FAILED or timed out, status $? ($((SECONDS - start)) s)"
    failed=$((failed + 1))
  fi
}
{
  nvidia-smi || true
  $PY -c "import tensorflow as tf; print(tf.config.list_logical_devices())"
  uptime
} >"$OUT/device.txt" 2>&1
step speed 330 $PY -m benchmarks.run --repeats 5 --out "$OUT/speed.json"
step targets 30 $PY -m benchmarks.targets "$OUT/speed.json"
cp "$OUT/targets.log" "$OUT/targets.txt" 2>/dev/null || true
step sample_ops 90 $PY -m benchmarks.sample_ops --out "$OUT/sample_ops.json"
uptime >>"$OUT/device.txt"
exit "$failed"
