#!/usr/bin/env bash
# Everything a GPU machine should check, as one plain script (no nox needed):
# build the extension in place against the installed torch (for the visible GPU), run
# the CUDA tests, the benchmarks on CUDA, the CIFAR-scale fit target, the conv-net zoo's cost and, with FULL=1,
# the whole test suite. Each step has its own time limit; figures go to $OUT
# (default ./gpu_out), at most 9 files. Meant to finish in under 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RETHINK_CUDA=1 MAX_JOBS=${MAX_JOBS:-16}
status=0
step() {  # step NAME SECONDS CMD...: run CMD with a time limit, output to $OUT/NAME
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name" 2>&1
  local rc=$?
  echo "$name: rc=$rc, $(( $(date +%s) - t0 )) s" | tee -a "$OUT/device.txt"
  tail -25 "$OUT/$name"
  [ $rc -eq 0 ] || status=1
  return $rc
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/device.txt"
step build.log 240 python setup.py -q build_ext --inplace || exit 1
step tests_cuda.log 120 python -m pytest -q -p no:cacheprovider -k cuda
step bench_loader.md 60 python benchmarks/bench_loader.py --device cuda
step bench_interpolate.md 60 python benchmarks/bench_interpolate.py --device cuda
step fit_gaussian.md 90 python - <<'PY'
import time, torch, rethink
ds = rethink.datasets.synthetic(50_000, 10_000, shape=(3, 32, 32), seed=0)
rethink.fit_random("mlp1x512", ds, "gaussian", crop=28, max_epochs=1, device="cuda", progress=False)  # warm-up
t0 = time.perf_counter()
r = rethink.fit_random("mlp1x512", ds, "gaussian", crop=28, max_epochs=100, device="cuda", progress=False)
s = time.perf_counter() - t0
print(f"| MLP 1x512, 50,000 Gaussian 3x32x32 images (crop 28), random labels | {torch.cuda.get_device_name()} |"
      f" train acc {r.final['train_acc']:.4f} | {r.epochs_to_fit} epochs, {r.steps_to_fit} steps | {s:.1f} s |")
PY
step bench_train.md 150 python benchmarks/bench_train.py --device cuda
# The conv-net zoo's cost per model on the GPU (train and measures) and the Jiang-scale projection:
# needs Fashion-MNIST, e.g. `mkdir -p data && cp /usr/share/datasets/fashion-mnist/*.gz data/` before
# the checkout travels, with data named in the device's carry list.
if python -c "import rethink; rethink.datasets.load('fashion_mnist')" > /dev/null 2>&1; then
  step zoo_cost_cuda.log 180 python scripts/zoo_convnets.py cost --device cuda
else
  echo "zoo_cost_cuda.log: skipped, Fashion-MNIST not found (copy its IDX files to ./data)" | tee -a "$OUT/device.txt"
fi
if [ "${FULL:-0}" = 1 ]; then step tests_all.log 300 python -m pytest -q -p no:cacheprovider; fi
exit $status
