#!/usr/bin/env bash
# The seed preset on one GPU: bench figures at the seed's batch and larger ones, the grid packed
# against one job at a time, and mrstft, mel and adversarial (3 seeds each) packed and one at a time
# against mse, a short training run of mse and bark (with its evaluation), then torch.compile
# benches with the native convolutions and with train.conv_impl=gemm.
# Under 8 minutes on one H100 before the four per-loss packed benches (60 s at most each, run last)
# were added; since then every bounded step also stops at the script's DEADLINE (default 450 s), so the
# whole check stays within 8 minutes, skipping (and saying so) what would not fit.
#   PYTHON         interpreter with earshot's dependencies (default: python3, with the
#                  .gpu/ bundle from scripts/gpu-bundle.sh where there is one)
#   EARSHOT_DATA   folder of audio for the training run (default: the built-in corpus)
#   OUT            where the JSON figures and summaries go (default: gpu-check-out)
#   PRESET, DEVICE, BUDGET, BATCHES   for a dry run elsewhere (defaults: seed, cuda, 0.7m, "32 256 2048")
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -d .gpu/wheels ]; then
  # A lent GPU machine: python3 there holds CUDA torch and nothing can be downloaded, so
  # the rest comes from the bundle scripts/gpu-bundle.sh made (carried as .gpu/).
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/earshot-site .gpu/wheels/*.whl || exit 1
  export PYTHONPATH="/tmp/earshot-site:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"
  export EARSHOT_DATA=${EARSHOT_DATA:-$PWD/.gpu/data}
fi
OUT_DIR=${OUT:-gpu-check-out}
PRESET=${PRESET:-seed}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-0.7m}  # per job; leaves room for both compile benches within 8 minutes
read -r -a BATCH <<<"${BATCHES:-32 256 2048}"
RUNS=$(mktemp -d)  # checkpoints are large: keep them out of OUT
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
earshot() { "$PY" -m earshot "$@"; }
# NAME COMMAND...: run it for at most LIMIT seconds (default 150) and print its lines but the indented
# ones; say when it did not finish (by its own exit status: grep's would call a run whose lines were all
# filtered out failed).
bounded() {
  local name=$1 out rc limit=${LIMIT:-150} left=$(( ${DEADLINE:-450} - SECONDS )); shift
  if [ "$left" -lt 15 ]; then echo "$name skipped: the check's ${DEADLINE:-450} s are spent"; return; fi
  [ "$left" -lt "$limit" ] && limit=$left
  out=$(timeout "$limit" "$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v '^ ' || true
  [ "$rc" -eq 0 ] || echo "$name did not finish (exit $rc)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

echo "== $PRESET preset, batch ${BATCH[0]} (the seed's): every loss =="
earshot bench --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[0]}" --steps 20 --json "$OUT_DIR/bench-b${BATCH[0]}.json" 2>&1 | grep -v '^ '
echo "== batch ${BATCH[1]}: mse, bark =="
earshot bench --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[1]}" --steps 10 --losses mse,bark --json "$OUT_DIR/bench-b${BATCH[1]}.json" 2>&1 | grep -v '^ '
echo "== batch ${BATCH[2]}: mse =="
earshot bench --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[2]}" --steps 5 --losses mse --json "$OUT_DIR/bench-b${BATCH[2]}.json" 2>&1 | grep -v '^ '
echo "== batch ${BATCH[0]}: 6 losses x 3 seeds packed against one job at a time (packed_speedup) =="
bounded "packed bench" "$PY" -m earshot bench --pack --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[0]}" \
  --steps 5 --losses mse,bark,bark-norm,mrstft,mel,mulaw-ce --seeds 3 --json "$OUT_DIR/bench-pack-b${BATCH[0]}.json"
echo "== a short training run of mse and bark ($PRESET preset, $BUDGET each), then its evaluation =="
data_args=()
[ -n "${EARSHOT_DATA:-}" ] && data_args=(--data "$EARSHOT_DATA")
earshot run --preset "$PRESET" --losses mse,bark --budget "$BUDGET" --device "$DEVICE" "${data_args[@]}" \
  --out "$RUNS" --run-id gpu-check --quiet 2>&1 | tail -60
"$PY" - "$RUNS/gpu-check" "$OUT_DIR" <<'PY'
import shutil, sys, pathlib
from earshot.results.rundir import RunDir
run, out = RunDir(sys.argv[1]), pathlib.Path(sys.argv[2])
for job in run.finished_jobs():
    frame = job.read_log()
    print(f"{job.name}: {int(frame.step.max())} steps, loss {frame.loss.iloc[0]:.4g} -> "
          f"{frame.loss.iloc[-1]:.4g}, median {frame.windows_per_s.median():.0f} windows/s")
    shutil.copy(job.train_log, out / f"train-{job.name}.parquet")
if run.metrics_file.exists():
    shutil.copy(run.metrics_file, out / run.metrics_file.name)
PY

echo "== batch ${BATCH[2]}: mse with torch.compile =="
bounded "compile bench" "$PY" -m earshot bench --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[2]}" --steps 5 \
  --losses mse --set train.compile=true --json "$OUT_DIR/bench-b${BATCH[2]}-compile.json"
echo "== batch ${BATCH[2]}: mse with torch.compile, convolutions as matrix multiplies =="
bounded "compile gemm bench" "$PY" -m earshot bench --preset "$PRESET" --device "$DEVICE" --batch "${BATCH[2]}" \
  --steps 5 --losses mse --set train.compile=true --set train.conv_impl=gemm \
  --json "$OUT_DIR/bench-b${BATCH[2]}-compile-gemm.json"
echo "== batch ${BATCH[0]}: the three slow losses against mse, 3 seeds each, packed and one at a time (issue 18, item 6) =="
for loss in mse mrstft mel adversarial; do
  LIMIT=60 bounded "packed bench $loss" "$PY" -m earshot bench --pack --preset "$PRESET" --device "$DEVICE" \
    --batch "${BATCH[0]}" --steps 5 --losses "$loss" --seeds 3 --json "$OUT_DIR/bench-pack-$loss-b${BATCH[0]}.json"
done
"$PY" - "$OUT_DIR" "${BATCH[0]}" <<'PY'
import json, pathlib, sys
out, batch = pathlib.Path(sys.argv[1]), sys.argv[2]
found = {}
for loss in ("mse", "mrstft", "mel", "adversarial"):
    path = out / f"bench-pack-{loss}-b{batch}.json"
    if path.exists():
        found[loss] = json.loads(path.read_text())
if "mse" in found:
    way = f"packed_{found['mse']['pack_impl']}"
    for loss, result in found.items():
        rates, base = result["windows_per_s"], found["mse"]["windows_per_s"]
        print(f"{loss}: step cost x mse one at a time {base['one_at_a_time'] / rates['one_at_a_time']:.2f}, "
              f"packed {base[way] / rates[way]:.2f} (packed_speedup {result['packed_speedup']:.2f})")
PY

rm -rf "$RUNS"
echo "gpu-check took $SECONDS s"
