#!/usr/bin/env bash
# One timed check of the whole GPU path, for a lent GPU machine (under 8 minutes on one H200), ending in a
# verdict table and the figures of a docs/validation/<gpu>.md page. See docs/gpu-validation.md.
#
#   bash scripts/gpu-check.sh          # on a machine with a CUDA GPU
#   bash scripts/gpu-check.sh --cpu    # the same steps on the CPU (gloo, 32 px, small batches): for CI
#
# Steps, each under `timeout` and inside one overall time budget (a step that would start with too little time
# left is not run, and fails the check):
#   preflight   the Python modules the harness needs; carried wheels installed first (wheels/ or $WHEELS)
#   env         harness env, and harness env --json (saved as env.json)
#   pytest-gpu  python -m pytest -m gpu -q on the test files that hold gpu-marked tests
#   validation  harness run suites/gpu-check.yaml --filter 'resnet50/*'   (the 16 figures of a validation page)
#   ddp         harness run <one training case, strategy ddp, world_sizes [1], one_rank_ddp> --nproc-per-node 1
#               (DistributedDataParallel over nccl on one GPU; gloo on cpu)
#   torchrun    torchrun --standalone --nproc-per-node 1 -m harness.worker suites/gpu-check.yaml --filter ... --out DIR
#   checks      harness run suites/gpu-check.yaml --filter 'resnet18/*'   (precisions, channels_last, train,
#               torch.compile at two batch sizes, one profiled case; last, as compilation takes the longest)
# then scripts/gpu_check_verdict.py reads the run folders, prints the verdict table and writes verdict.md,
# verdict.json and validation.md. Exit status: 0 when every check passes, 1 when one fails, 2 when the machine
# cannot run the check at all (a module missing, no CUDA device).
#
# Environment:
#   OUT             when set, the figures are copied there (verdict, validation.md, env, pytest output, logs,
#                   each run's manifest.json and records.jsonl)
#   WHEELS          folder of wheels to install before anything runs (default: wheels, when it exists), with
#                   pip install --no-index --no-deps (into <work>/site, on PYTHONPATH, where pip refuses)
#   GPU_CHECK_DIR   work folder (default: results/gpu-check-runs/<UTC time>-<cuda|cpu>)
#   GPU_CHECK_BUDGET_S  overall time budget of the steps in seconds (default 450 on CUDA, 1200 on the CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=cuda
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE=cpu ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown option $arg (valid: --cpu, --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODE" = cpu ]; then
  SUITE=suites/gpu-check-cpu.yaml
  # Generous on the CPU: it runs in CI on 2 shared cores, where only a hang should fail it (it takes 1-2 min idle).
  BUDGET=${GPU_CHECK_BUDGET_S:-1200}
  DDP_DEVICE=cpu DDP_RES=32 DDP_BS=4 DDP_PRECISION=amp_bf16
  DDP_WARMUP='{min_iters: 2, max_iters: 20, max_seconds: 1, window: 3, tolerance: 0.1}'
  DDP_MEASURE='{min_seconds: 0.2, min_iters: 3, max_iters: 200, repeats: 1}'
  #          preflight env env-json pytest validation ddp torchrun checks
  CAPS=(     180       90  90       270    450        270 270      540)
else
  SUITE=suites/gpu-check.yaml
  BUDGET=${GPU_CHECK_BUDGET_S:-450}
  DDP_DEVICE=cuda DDP_RES=224 DDP_BS=128 DDP_PRECISION=amp_bf16
  DDP_WARMUP='{min_iters: 3, max_iters: 100, max_seconds: 5}'
  DDP_MEASURE='{min_seconds: 1, min_iters: 5, max_iters: 1000, repeats: 1}'
  CAPS=(     90        45  45       120    200        90  90       240)
fi

if [ -x .venv/bin/python ]; then PY=$ROOT/.venv/bin/python; else PY=$(command -v python3 || echo python3); fi
WORK=${GPU_CHECK_DIR:-results/gpu-check-runs/$(date -u +%Y%m%dT%H%M%SZ)-$MODE}
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
SITE=$WORK/site
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
STEPS=$WORK/steps.tsv
printf 'step\trc\tseconds\tlimit_s\tnote\n' > "$STEPS"

START=$(date +%s)
DEADLINE=$((START + BUDGET))
MIN_STEP_S=15

echo "gpu-check ($MODE): python $PY, suite $SUITE, budget ${BUDGET} s, work folder $WORK"

# step NAME CAP [--stdout FILE] CMD...: run CMD under timeout (the smaller of CAP and what is left of the budget),
# its output in logs/NAME.log (stdout in FILE instead, with --stdout), and note its exit code and wall seconds.
step() {
  local name=$1 cap=$2; shift 2
  local stdout_file=""
  if [ "${1:-}" = --stdout ]; then stdout_file=$2; shift 2; fi
  local log=$WORK/logs/$name.log
  local left=$((DEADLINE - $(date +%s)))
  local limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt "$MIN_STEP_S" ]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" 125 0 "$limit" "not run: ${left} s of the budget left" >> "$STEPS"
    printf '  %-11s NOT RUN  (%s s of the %s s budget left)\n' "$name" "$left" "$BUDGET"
    return 125
  fi
  printf '  %-11s ' "$name"
  local t0=$EPOCHREALTIME rc
  if [ -n "$stdout_file" ]; then
    timeout --kill-after=15 "$limit" "$@" > "$stdout_file" 2> "$log"; rc=$?
  else
    timeout --kill-after=15 "$limit" "$@" > "$log" 2>&1; rc=$?
  fi
  local secs
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  local note=""
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then note="timed out after ${limit} s"; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$limit" "$note" >> "$STEPS"
  printf 'rc=%-3s %7s s  (limit %s s)%s\n' "$rc" "$secs" "$limit" "${note:+  $note}"
  return "$rc"
}

# The run folder a step opened under DIR (the folder holding manifest.json), or nothing.
run_folder() {
  find "$1" -name manifest.json -not -path '*/profiles/*' -printf '%h\n' 2>/dev/null | sort | tail -n 1
}

copy_out() {
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT/logs"
  cp "$WORK"/logs/*.log "$OUT/logs/" 2>/dev/null
  for f in steps.tsv env.json env.txt pytest.txt verdict.md verdict.json validation.md ddp-suite.yaml; do
    [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"
  done
  local label dir
  for label in validation ddp torchrun checks; do
    dir=$(run_folder "$WORK/$label")
    [ -n "$dir" ] || continue
    mkdir -p "$OUT/runs/$label"
    for f in manifest.json records.jsonl; do [ -f "$dir/$f" ] && cp "$dir/$f" "$OUT/runs/$label/"; done
    echo "${dir#"$ROOT"/}" > "$OUT/runs/$label/run-folder.txt"
  done
  echo "figures copied to $OUT"
}

# ---------------------------------------------------------------------------------------------- preflight
preflight() {
  local wheels=${WHEELS:-wheels}
  shopt -s nullglob
  local files=("$wheels"/*.whl)
  shopt -u nullglob
  if [ "${#files[@]}" -gt 0 ]; then
    echo "installing ${#files[@]} carried wheels from $wheels"
    local pip=("$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps)
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
      echo "no pip: unpacking the wheels into $SITE with zipfile instead"
      mkdir -p "$SITE"
      for w in "${files[@]}"; do "$PY" -m zipfile -e "$w" "$SITE" || return 2; done
    elif ! "${pip[@]}" "${files[@]}"; then
      # An externally managed Python (PEP 668) refuses; a folder on PYTHONPATH does not.
      echo "pip install refused; installing into $SITE (on PYTHONPATH) instead"
      "${pip[@]}" --target "$SITE" "${files[@]}" || return 2
    fi
  fi
  "$PY" - "$MODE" <<'PY'
import importlib, sys
mode = sys.argv[1]
required = ["torch", "numpy", "yaml", "pydantic", "pydantic_core", "rich"]
optional = {"plotly": "no report.html", "pandas": "no report.html", "jinja2": "no report.html",
            "pytest": "the pytest-gpu step fails", "pynvml": "no NVML telemetry: energy/power fails",
            "orjson": "the store reads JSON with json instead: the same records, slower"}
missing = []
for name in required + list(optional):
    try:
        module = importlib.import_module(name)
        print(f"  {name:<14} {getattr(module, '__version__', '?')}  {getattr(module, '__file__', '')}")
    except Exception as exc:
        why = "required" if name in required else optional[name]
        print(f"  {name:<14} MISSING ({type(exc).__name__}: {exc}); {why}")
        missing.append(name)
print(f"  python         {sys.version.split()[0]} {sys.executable}")
bad = [m for m in missing if m in required]
if bad:
    print(f"missing required modules: {', '.join(bad)}; bring them as wheels (docs/gpu-validation.md)")
    sys.exit(2)
import torch
if mode == "cuda":
    if not torch.cuda.is_available():
        print(f"no CUDA device visible (torch {torch.__version__}, CUDA {torch.version.cuda}); use --cpu")
        sys.exit(3)
    print(f"  device         {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
import os, shutil, sysconfig
cc = shutil.which("gcc") or shutil.which("cc")
headers = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
print(f"  C compiler     {cc or 'MISSING'}; Python.h {'found' if headers else 'MISSING'} (torch.compile needs both)")
sys.exit(0)
PY
}

export -f preflight
export MODE PY SITE WHEELS
step preflight "${CAPS[0]}" bash -c preflight
rc=$?
cat "$WORK/logs/preflight.log"
if [ "$rc" != 0 ]; then
  echo "gpu-check.sh: the machine cannot run the check (preflight exit $rc; log above)" >&2
  copy_out
  exit 2
fi
NO_REPORT=()
"$PY" -c 'import plotly, pandas, jinja2' 2>/dev/null || NO_REPORT=(--no-report)
[ "${#NO_REPORT[@]}" = 0 ] || echo "  (plotly, pandas or jinja2 missing: runs write no report.html)"

# ---------------------------------------------------------------------------------------------- steps
step env "${CAPS[1]}" "$PY" -m harness env && cp "$WORK/logs/env.log" "$WORK/env.txt"
step env-json "${CAPS[2]}" --stdout "$WORK/env.json" "$PY" -m harness env --json

mapfile -t GPU_TESTS < <(grep -rlE 'mark\.gpu' tests --include='test_*.py' | sort)
step pytest-gpu "${CAPS[3]}" "$PY" -m pytest -m gpu -q -p no:cacheprovider "${GPU_TESTS[@]:-tests}"
cp "$WORK/logs/pytest-gpu.log" "$WORK/pytest.txt"
tail -n 1 "$WORK/pytest.txt" | sed 's/^/      /'

RUN_FLAGS=(--no-progress "${NO_REPORT[@]}")
step validation "${CAPS[4]}" "$PY" -m harness run "$SUITE" --filter 'resnet50/*' --out "$WORK/validation" "${RUN_FLAGS[@]}"

cat > "$WORK/ddp-suite.yaml" <<EOF
# Generated by scripts/gpu-check.sh: one training case under the ddp strategy, at world size 1, wrapped in
# DistributedDataParallel over a one-rank group, launched through torch's elastic agent (nccl on CUDA, gloo on the CPU).
name: gpu-check-ddp
description: One DDP training case at world size 1, for scripts/gpu-check.sh.
tags: [gpu-check, ddp]
defaults:
  device: $DDP_DEVICE
  mode: train
  resolution: $DDP_RES
  batch_size: $DDP_BS
  precision: $DDP_PRECISION
  channels_last: true
  warmup: $DDP_WARMUP
  measure: $DDP_MEASURE
  timeout_s: 300
matrix:
  model: [resnet18]
launch: {strategy: ddp, world_sizes: [1], one_rank_ddp: true, nproc_per_node: 1, max_restarts: 0}
telemetry: {nvml: true, interval_ms: 50}
EOF
step ddp "${CAPS[5]}" "$PY" -m harness run "$WORK/ddp-suite.yaml" --nproc-per-node 1 --out "$WORK/ddp" "${RUN_FLAGS[@]}"

# torchrun is torch.distributed.run; started through this Python so that it needs no venv on PATH.
step torchrun "${CAPS[6]}" "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
  -m harness.worker "$SUITE" --filter 'resnet18/*/fp32*' --out "$WORK/torchrun" "${RUN_FLAGS[@]}"

step checks "${CAPS[7]}" "$PY" -m harness run "$SUITE" --filter 'resnet18/*' --out "$WORK/checks" "${RUN_FLAGS[@]}"

# ---------------------------------------------------------------------------------------------- verdict
echo "steps took $(( $(date +%s) - START )) s of the ${BUDGET} s budget"
VERDICT_ARGS=(--steps "$STEPS" --env "$WORK/env.json" --write "$WORK")
[ "$MODE" = cpu ] && VERDICT_ARGS+=(--cpu)
for label in validation ddp torchrun checks; do
  VERDICT_ARGS+=(--run "$label=$(run_folder "$WORK/$label")")
done
echo
"$PY" scripts/gpu_check_verdict.py "${VERDICT_ARGS[@]}"
verdict=$?
copy_out
echo "gpu-check ($MODE) took $(( $(date +%s) - START )) s; run folders under ${WORK#"$ROOT"/}"
exit "$verdict"
