#!/usr/bin/env bash
# Every pretraining objective on the demo corpus (same encoder, data and schedule), evaluated by
# one protocol: linear probes, retrieval and zero-shot where a text tower exists, captioning with
# the model's own decoder where it has one, and a probe decoder trained on every frozen encoder.
# Then one comparison table + plot. Needs stages 0-3 first (./run.sh --stop-stage 3).
#   egs/demo/run_objectives.sh [--objectives "contrastive captioning"] [--train-args "..."]
set -euo pipefail
cd "$(dirname "$0")"

objectives="contrastive siglip captioning hybrid"
train_args=""
eval_args="-c conf/eval_all.yaml"   # stage-5 options (extra YAML files, key=value)
out_dir=exp/objectives
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

runs=()
for obj in $objectives; do
  config=conf/pretrain_$obj.yaml
  [ "$obj" = contrastive ] && config=conf/pretrain.yaml
  ./run.sh --stage 4 --stop-stage 5 --exp-dir "$out_dir/$obj" --config "$config" \
    --train-args "$train_args" --eval-args "$eval_args"
  runs+=("$out_dir/$obj")
done
$python -m toolkit.bin.compare "${runs[@]}" -o "$out_dir/compare.md"
