#!/usr/bin/env bash
# The whole GPU measurement for bench/README.md in one call (device time is scarce: one run).
#
#   OUT=<folder> bash bench/gpu_session.sh          # on the GPU machine ($OUT: what comes back)
#   OUT=/tmp/rehearsal bash bench/gpu_session.sh --tiny   # CPU rehearsal, tiny sizes, ~2 min
#
# Steps, most important first, each under its own timeout so one slow step cannot eat the rest
# (GPU: 250 + 50 + 45 + 80 + 45 + 45 = 515 s):
#   1 synthetic sweep, contrastive paper config: eager-fp32 / eager-bf16 at 64, 128, 256 clips
#     of 10 s, compiled-bf16 at 256 (and 128 if it starts within 180 s)  → synthetic.{json,log}
#   2 ScaledAdam: flat buffers vs the per-tensor loop vs AdamW (foreach)  → optimizer.{json,log}
#   3 2,400 synthetic 10-s clips as Shar, then the real data path at batch 128, 8 workers
#                                                                          → data.{json,log}
#   4 captioning objective, eager-bf16 at 128 and 256                      → captioning.{json,log}
#   5 activation checkpointing (encoder.activation_checkpointing=true), eager-bf16 at 256 and
#     512: peak memory per clip against step 1's rows                     → checkpointing.{json,log}
# plus gpu.txt (nvidia-smi). The output ends with each step's table.
set -u
out=${OUT:?set OUT to the output folder}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
B=bench/pretrain_throughput.py
if [ "${1:-}" = --tiny ]; then
  common=(--device cpu --tiny)
  sweep=(--modes eager-fp32,eager-bf16 --batch-sizes 2 --steps 2)
  opt=(--warmup 9 --repeats 2)
  shar=(--clips 12 --tiny)
  data=(--modes eager-fp32 --num-workers 0 --steps 3)
  cap=(--modes eager-bf16 --batch-sizes 2 --steps 2)
  ckpt=(--modes eager-bf16 --batch-sizes 2 --steps 2)
  t=(120 60 60 60 60 60)
else
  common=()
  sweep=(--batch-sizes 64,128,256 --compiled-batch-sizes 256,128 --max-seconds 180)
  opt=()
  shar=(--clips 2400)
  data=(--modes eager-bf16 --batch-sizes 128 --steps 12)
  cap=(--modes eager-bf16 --batch-sizes 128,256)
  ckpt=(--modes eager-bf16 --batch-sizes 256,512 --steps 5)
  t=(250 50 45 80 45 45)
fi
(nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv \
  || echo "no nvidia-smi") > "$out/gpu.txt" 2>&1
timeout -k 15 "${t[0]}" python3 $B "${common[@]}" "${sweep[@]}" --json "$out/synthetic.json" \
  > "$out/synthetic.log" 2>&1
timeout -k 10 "${t[1]}" python3 bench/optimizer_step.py "${common[@]}" "${opt[@]}" \
  --json "$out/optimizer.json" > "$out/optimizer.log" 2>&1
timeout -k 10 "${t[2]}" python3 $B --make-synthetic-shar /tmp/gpu_session_shar "${shar[@]}" \
  > "$out/data.log" 2>&1
timeout -k 10 "${t[3]}" python3 $B "${common[@]}" --data shar:/tmp/gpu_session_shar "${data[@]}" \
  --json "$out/data.json" >> "$out/data.log" 2>&1
timeout -k 10 "${t[4]}" python3 $B "${common[@]}" --objective captioning "${cap[@]}" \
  --json "$out/captioning.json" > "$out/captioning.log" 2>&1
timeout -k 10 "${t[5]}" python3 $B "${common[@]}" "${ckpt[@]}" encoder.activation_checkpointing=true \
  --json "$out/checkpointing.json" > "$out/checkpointing.log" 2>&1
for f in synthetic optimizer data captioning checkpointing; do
  echo "== $f"
  grep -v '^[WIV][0-9]' "$out/$f.log" | tail -n 25
done
