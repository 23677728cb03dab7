#!/usr/bin/env bash
# Every encoder plugin on the demo corpus, from scratch and with supervised (tagging)
# initialisation, through stages 4-5 of the same recipe; then one comparison table.
# Needs stages 0-3 first (./run.sh --stop-stage 3). Run from anywhere:
#   egs/demo/run_encoders.sh [--encoders "transformer cnn"] [--inits "none supervised"]
#     [--train-args "train.max_steps=400"] [--tag-args "train.max_steps=200"]
set -euo pipefail
cd "$(dirname "$0")"

encoders="transformer zipformer cnn patch_transformer"
inits="none supervised"
train_args=""
tag_args=""
out_dir=exp/encoders
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

runs=()
for enc in $encoders; do
  # conf/pretrain.yaml holds the transformer; the others replace its encoder block
  extra=""
  [ "$enc" = transformer ] || extra="conf/encoder/$enc.yaml"
  for init in $inits; do
    exp="$out_dir/${enc}_${init}"
    ./run.sh --stage 4 --stop-stage 5 --exp-dir "$exp" --config "conf/pretrain.yaml $extra" \
      --init "$init" --tag-config "conf/tagging.yaml $extra" \
      --train-args "$train_args" --tag-args "$tag_args"
    runs+=("$exp")
  done
done
$python -m toolkit.bin.compare "${runs[@]}" -o "$out_dir/compare.md"
