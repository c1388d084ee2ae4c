#!/usr/bin/env bash
# The GPU checks of one lent GPU machine, one script, within ~9 minutes (docs/performance.md lists what it measures):
# the gpu test tier; issue 30's >= 100M-parameter GPT with compile and bf16 (steady-state MFU from two lengths of the
# same run); issue 32's step throughput against the hand loop; the scaling-law bench until the deadline.
#   OUT=gpu-results bash bench/gpu_checks.sh      # logs and results.md land in $OUT
set -u
OUT=${OUT:-logs/gpu}; WORK=${WORK:-/tmp/gpu-work}; mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
START=$(date +%s); LOG="$OUT/gpu.log"
say() { echo "=== $* ($(( $(date +%s) - START )) s)" | tee -a "$LOG"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$LOG"

say "pytest -m gpu"
python -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15 | tee -a "$LOG"

say "GPT >= 100M parameters: compile, bf16-mixed; 100 then 500 then 100 steps (the last two with a warm compile cache)"
G="experiment=gpt_stdlib_gpu model.width=832 model.depth=12 model.heads=13 lr=6e-4 scheduler.warmup_steps=20"
G="$G trainer.max_epochs=1 callbacks.rich_progress_bar=null test=false data.eval_windows=256"
for run in a:100 b:500 c:100; do
  python train.py $G data.batches_per_epoch=${run#*:} hydra.run.dir="$WORK/gpt_${run%%:*}" 2>&1 | tail -4 | tee -a "$LOG"
done
python - "$WORK" <<'PY' 2>&1 | tee -a "$LOG" "$OUT/gpt100m.json"
import json, sys, torch
from lightning.fabric.utilities.throughput import get_available_flops
m = {k: json.load(open(f"{sys.argv[1]}/gpt_{k}/metrics.json")) for k in "abc"}
tokens = m["b"]["data/tokens_trained"] - m["c"]["data/tokens_trained"]
seconds = m["b"]["time/train_s"] - m["c"]["time/train_s"]
per_token = m["b"]["model/flops"] / 256  # forward FLOPs per window of context 256
peak = get_available_flops(torch.device("cuda"), torch.bfloat16)
steady = tokens / seconds
print(json.dumps({"params": m["b"]["model/params"], "val/bpb_500": m["b"]["val/bpb"], "steady_tokens_per_s": steady,
                  "steady_mfu": 3 * per_token * steady / peak if peak else None, "peak_flops": peak,
                  "fit_mfu_500_steps": m["b"].get("throughput/mfu"), "fit_s": {k: v["time/train_s"] for k, v in m.items()},
                  "memory_peak_mb": m["b"]["memory/peak_mb"]}, indent=1))
PY

say "step throughput (issue 32)"
timeout 100 python bench/step_throughput.py --device cuda --repeats 1 --only mlp-256 resnet 2>&1 | tail -25 | tee -a "$LOG"
cp bench/results.md "$OUT/results.md"

LEFT=$(( START + ${DEADLINE:-540} - $(date +%s) ))
say "scaling-law bench ($LEFT s left)"
timeout "$LEFT" python bench/scaling_laws.py --folder "$WORK/scaling" --seeds 3 --lrs 5 --grid trainer=gpu 2>&1 | tail -40 | tee -a "$LOG"
cp "$WORK/scaling/partial.json" "$OUT/scaling_partial.json" 2>/dev/null
cp bench/results.md "$OUT/results.md"; cp bench/scaling_laws.png "$OUT/" 2>/dev/null
say "done"
