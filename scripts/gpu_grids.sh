#!/usr/bin/env bash
# The conv-net grids on a lent GPU, bounded by a deadline: build the extension in place for the
# visible GPU, with COST=1 time the zoo's cost runs alone (`zoo_convnets.py cost --device cuda`), then train,
# side by side on the one GPU until DEADLINE seconds after the start, while the CUDA tests run:
#   - the zoo's convolutional families still unmeasured, if any (ZOO_MODELS; `zoo_convnets.py main
#     --measures --families nin`), then NiN's pilot (`zoo_convnets.py pilot --families nin`: the blocks behind its main grid's factors
#     first, depth, training-set size and label noise, then the others),
#   - the paper's conv nets on all 60,000 images (`reproduce_convnets.py --stages alexnet60k`, and its
#     second schedule, a constant learning rate, `alexnet60k_constant_lr`),
#   - the small-Inception stages a CPU session cannot reach (1.4-4.3 h a run there): the lr-0.01
#     schedule's two seeds, small Inception's second seed, its Table 1 and Appendix E (small
#     AlexNet's 10,000-image stages, 25-120 min a run, are left to a CPU session).
# Every grid is resumable, so what the deadline stops is simply not in the results; the finished
# runs' JSON files (results and cached measures, no weights) come back in $OUT/results.tar.gz.
# Needs Fashion-MNIST's four IDX files under ./data (copied in before the checkout travels).
#   OUT=gpu_out DEADLINE=540 bash scripts/gpu_grids.sh
# A second call on the still-warm machine (within its idle window) continues: the build and the
# results folder are kept there, and every grid resumes from its checkpoints.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
DEADLINE=${DEADLINE:-540}
ZOO_WORKERS=${ZOO_WORKERS:-6}
# The zoo's families still to be trained and measured on a GPU. The stored zoo is copied into
# results/ first: a run whose measures are stored is not trained again (weights do not come back).
ZOO_FAMILIES=${ZOO_FAMILIES:-nin}
# Only these models of those families (empty: all of them; "none": no zoo). The default: none, since
# all 32 NiNs of the main grid were trained and measured on a CPU (their stored measures are reused).
ZOO_MODELS=${ZOO_MODELS-none}
BIG_WORKERS=${BIG_WORKERS:-6}
REST_WORKERS=${REST_WORKERS:-4}
mkdir -p "$OUT" "$OUT/logs"
export PYTHONUNBUFFERED=1 RETHINK_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} OMP_NUM_THREADS=1
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(elapsed) s] $*" | tee -a "$OUT/device.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  lscpu | grep 'Model name'; nproc; } 2>&1 | tee "$OUT/device.txt"

[ "${SKIP_BUILD:-0}" = 1 ] || timeout 240 python3 setup.py -q build_ext --inplace > "$OUT/logs/build.log" 2>&1
rc=$?; say "build: rc=$rc"
if [ $rc -ne 0 ]; then tail -40 "$OUT/logs/build.log"; exit 1; fi
python3 -c "import rethink; from rethink import _C; print('rethink', rethink.__version__, _C.build_info())" \
  2>&1 | tail -2 | tee -a "$OUT/device.txt"

if [ "${COST:-0}" = 1 ]; then  # the GPU's cost per zoo model (stored in BENCHMARKS.md): COST=1 to measure again
  timeout 100 python3 scripts/zoo_convnets.py cost --device cuda > "$OUT/logs/cost_cuda.log" 2>&1
  say "cost (alone on the GPU): rc=$?"; tail -12 "$OUT/logs/cost_cuda.log"
fi

# The paper's conv-net runs stored from earlier GPU sessions: a randomization test reuses a stored
# result without its weights, so they are not trained again (cp -n keeps this machine's newer files).
mkdir -p results/convnets_cuda && cp -rn docs/results/convnets_cuda/. results/convnets_cuda/
mkdir -p results/zoo_convnets/main && cp -rn docs/results/zoo_convnets/main/. results/zoo_convnets/main/
mkdir -p results/zoo_convnets/pilot && cp -rn docs/results/zoo_convnets/pilot/. results/zoo_convnets/pilot/
left=$(( DEADLINE - $(elapsed) ))
say "grids and CUDA tests for $left s"
# In xdist workers, so that an op check that crashes that machine's build (seen before the CPU
# kernels' checks formatted their numbers without iostreams, csrc/check.h: a TORCH_CHECK message
# holding an integer) is reported as a crashed test and the others still run.
timeout $left python3 -m pytest -q -p no:cacheprovider -n 3 -k cuda > "$OUT/logs/tests_cuda.log" 2>&1 &
zoo() { python3 scripts/zoo_convnets.py "$@" --device cuda --workers "$ZOO_WORKERS"; }
{ if [ "$ZOO_MODELS" != none ]; then
    zoo main --measures --families $ZOO_FAMILIES ${ZOO_MODELS:+--models $ZOO_MODELS}
  fi
  # NiN's pilot (PILOT=0 leaves it out): the runs a CPU session did not train
  if [ "${PILOT:-1}" = 1 ]; then
    zoo pilot --families nin --hyperparameters depth train_size label_noise
    zoo pilot --families nin
  fi
} > "$OUT/logs/zoo_conv.log" 2>&1 &
python3 scripts/reproduce_convnets.py --device cuda --workers "$BIG_WORKERS" --results results/convnets_cuda \
  --stages alexnet60k alexnet60k_constant_lr --quiet > "$OUT/logs/alexnet60k.log" 2>&1 &
# The second schedule's stages first (its two seeds), then the paper's schedule for small Inception
# with batch norm (without batch norm it stays at chance at lr 0.1: not trained).
rest() { python3 scripts/reproduce_convnets.py --device cuda --workers "$REST_WORKERS" --results results/convnets_cuda --quiet "$@"; }
# REST_WORKERS=0 leaves them out (fewer runs side by side: each of the others runs faster).
if [ "$REST_WORKERS" -gt 0 ]; then
  { rest --stages inception5k_nobn_lr0.01 inception5k_bn_lr0.01
    rest --models inception_small --stages inception5k_s1 inception5k_table1
  } > "$OUT/logs/rest.log" 2>&1 &
fi
pack() {
  find results -name '*.json' | tar czf "$OUT/results.tar.gz" -T -
  tar czf "$OUT/logs.tar.gz" -C "$OUT" logs
}
while [ "$(elapsed)" -lt "$DEADLINE" ] && pgrep -f "scripts/zoo_convnets.py|scripts/reproduce_convnets.py|pytest" > /dev/null; do
  sleep 10
  if [ $(( $(elapsed) % 60 )) -lt 10 ]; then
    say "$(find results -name '*.json' ! -name '*.measures.json' | wc -l) results, $(find results -name '*.measures.json' | wc -l) measures"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$OUT/device.txt"
    pack
  fi
done
say "deadline: stopping"
pkill -TERM -f "scripts/zoo_convnets.py|scripts/reproduce_convnets.py|multiprocessing.spawn|pytest" ; sleep 3
pkill -KILL -f "scripts/zoo_convnets.py|scripts/reproduce_convnets.py|multiprocessing.spawn|pytest"; sleep 1
pack
say "$(find results -name '*.json' ! -name '*.measures.json' | wc -l) results, $(find results -name '*.measures.json' | wc -l) measures packed"
tail -n 3 "$OUT/logs/tests_cuda.log"; tail -n 4 "$OUT"/logs/zoo_conv.log "$OUT"/logs/alexnet60k.log "$OUT"/logs/rest*.log
