#!/usr/bin/env bash
# Everything GPU-specific, in one call: the scan, parallel and float64-oracle tests on the card (every path
# as auto picks it there), the cell benchmarks against cuDNN (float32, bfloat16), parallel vs sequential,
# 8 seeds in one run (train.seeds, vmapped on the GPU) vs 8 runs, parallel's precision at long T, the loop sweep, generation.
#
#   benchmarks/gpu.sh [OUT_DIR]        # default: benchmarks/results
#
# Run from the repository root (PYTHONPATH=. is set here). Each part runs under its own time limit and
# inside an overall budget (GPU_SH_BUDGET seconds, default 540), so one part failing or hanging never
# costs the others; parts run most important first. Writes, under OUT_DIR, one JSON per benchmark named
# after the card (<slug>.json, <slug>-bfloat16.json, <slug>-parallel.json, <slug>-seeds.json,
# <slug>-parallel-accuracy.json, <slug>-loop.json, <slug>-generation.json) and <slug>-gpu.log, the whole output
# with each part's exit status and time.
# Exit status: 0 if every part passed, 1 otherwise.
set -u
OUT=${1:-benchmarks/results}
BUDGET=${GPU_SH_BUDGET:-540}
mkdir -p "$OUT" || exit 1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the card; test workers too
PY=${PYTHON:-python3}
START=$(date +%s)
SLUG=$($PY -c "from benchmarks import machine; print(machine.device()['slug'])" 2>/dev/null) || SLUG=unknown-device
LOG="$OUT/$SLUG-gpu.log"
: > "$LOG"
FAILED=0

say() { echo "$*" | tee -a "$LOG"; }

# part NAME LIMIT_S COMMAND...: runs COMMAND for at most LIMIT_S seconds (less if the budget is short).
part() {
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - START) ))
  if (( left < 20 )); then say "== $name: skipped, ${left}s of the budget left"; FAILED=1; return; fi
  (( limit > left )) && limit=$left
  say "== $name (limit ${limit}s): $*"
  local began=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo >> "$LOG"; echo
  say "== $name: exit $rc in $(( $(date +%s) - began ))s"
  (( rc == 0 )) || FAILED=1
}

say "== gpu.sh $(date -u +%FT%TZ), card: $SLUG, budget ${BUDGET}s, out: $OUT"
part environment 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
  $PY -c 'import jax, jaxlib; print(\"jax\", jax.__version__, jax.devices())'; \
  $PY -c 'import torch; print(\"torch\", torch.__version__, torch.cuda.is_available(), torch.backends.cudnn.version())'"
part tests 180 $PY -m pytest -q -o addopts= -p no:cacheprovider -n 4 -m "not slow" tests/test_paths.py tests/test_scan.py \
  tests/test_parallel.py tests/test_cells.py tests/test_edges.py
part cells-float32 150 $PY -m benchmarks.run --shapes gpu --repeats 10 --json "$OUT/$SLUG.json"
part parallel 80 $PY -m benchmarks.parallel --repeats 10 --json "$OUT/$SLUG-parallel.json"
# train.seeds: nine end-to-end runs through the app (a warm-up, 8 seeds in one run, 8 single runs), each paying its
# compiles, analysis and figures; the steps themselves are cheap on the card. About a minute; the limit leaves room.
part seeds 90 $PY -m benchmarks.seeds --seeds 8 --steps 200 --repeats 20 --json "$OUT/$SLUG-seeds.json"
part parallel-accuracy 60 $PY -m benchmarks.parallel --accuracy 1000,8192,20000 --json "$OUT/$SLUG-parallel-accuracy.json"
part cells-bfloat16 100 $PY -m benchmarks.run --shapes gpu --dtype bfloat16 --no-memory --repeats 10 \
  --json "$OUT/$SLUG-bfloat16.json"
part loop 70 $PY -m benchmarks.loop --shape B64T512I256H512 --cell lstm --unrolls 1,4,8,16 --repeats 10 \
  --json "$OUT/$SLUG-loop.json"
part generation 40 $PY -m benchmarks.generation --json "$OUT/$SLUG-generation.json"
say "== gpu.sh done in $(( $(date +%s) - START ))s, $([ $FAILED = 0 ] && echo 'every part passed' || echo 'some part failed')"
exit $FAILED
