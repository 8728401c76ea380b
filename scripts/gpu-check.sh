#!/usr/bin/env bash
# The seed preset on one GPU: bench figures at the seed's batch and larger ones, then a
# short training run of mse and bark. Sized to finish in under 8 minutes on one H100.
#   PYTHON         interpreter with earshot importable (default: python3)
#   EARSHOT_DATA   folder of audio for the training run (default: the built-in corpus)
#   OUT            where the JSON figures and the run go (default: gpu-check-out)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-gpu-check-out}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
earshot() { "$PY" -m benchmark.cli "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "== seed preset, the seed's batch (32): every loss =="
earshot bench --preset seed --device cuda --batch 32 --steps 20 --json "$OUT_DIR/bench-seed-b32.json"
echo "== seed preset, batch 256 =="
earshot bench --preset seed --device cuda --batch 256 --steps 10 --losses mse,bark --json "$OUT_DIR/bench-seed-b256.json"
echo "== seed preset, batch 2048, mse =="
earshot bench --preset seed --device cuda --batch 2048 --steps 5 --losses mse --json "$OUT_DIR/bench-seed-b2048.json"
echo "== seed preset, batch 2048, mse, torch.compile =="
earshot bench --preset seed --device cuda --batch 2048 --steps 5 --losses mse --set train.compile=true \
  --json "$OUT_DIR/bench-seed-b2048-compile.json" || echo "compile bench failed"

echo "== a short training run of mse and bark (seed preset, 1 minute each) =="
data_args=()
[ -n "${EARSHOT_DATA:-}" ] && data_args=(--data "$EARSHOT_DATA")
earshot run --preset seed --losses mse,bark --budget 1m --device cuda "${data_args[@]}" \
  --out "$OUT_DIR/runs" --run-id gpu-check --quiet
"$PY" - "$OUT_DIR/runs/gpu-check" <<'PY'
import sys, pandas as pd, pathlib
run = pathlib.Path(sys.argv[1])
for log in sorted(run.glob("jobs/*/train_log.parquet")):
    frame = pd.read_parquet(log)
    print(f"{log.parent.name}: {int(frame.step.max())} steps, loss {frame.loss.iloc[0]:.4g} -> "
          f"{frame.loss.iloc[-1]:.4g}, median {frame.windows_per_s.median():.0f} windows/s")
PY
