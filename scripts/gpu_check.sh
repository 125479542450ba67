#!/usr/bin/env bash
# Everything a GPU machine should check, as one plain script (no nox needed):
# build the extension in place against the installed torch (for the visible GPU),
# run the whole test suite (CUDA tests included), then the benchmarks on CUDA.
# Figures go to $OUT (default: ./gpu_out). Meant to finish in under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RETHINK_CUDA=1 MAX_JOBS=${MAX_JOBS:-16}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
t0=$(date +%s)
python setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/device.txt"
status=0
python -m pytest -q 2>&1 | tee "$OUT/tests.log" | tail -30
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
for f in benchmarks/bench_*.py; do
  name=$(basename "$f" .py)
  timeout 150 python "$f" --device cuda 2>&1 | tee "$OUT/$name.md"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status
