#!/usr/bin/env bash
# The built-in demo corpus (synthetic speech/music/sound, generated locally) through the
# generic stages of egs/TEMPLATE/pretrain.sh. Run from anywhere:
#   egs/demo/run.sh --stage 0 --stop-stage 5
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=5
force=false
nj=2
seed=0
num_train=2000
num_dev=300
num_test=300
exp_dir=exp/contrastive
config=conf/pretrain.yaml
train_args=""
init=none            # none | supervised: tagging pretraining (conf/tagging.yaml) first
tag_config=conf/tagging.yaml
tag_args=""
eval_args=""
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

force_flag=""
[ "$force" = true ] && force_flag="--force"
prepare="$python -m toolkit.data.prepare.demo --corpus-dir corpus --output-dir data/manifests \
  --num-train $num_train --num-dev $num_dev --num-test $num_test --seed $seed --num-jobs $nj $force_flag"

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --prepare-cmd "$prepare" \
  --train-manifests data/manifests/demo_cuts_train.jsonl.gz \
  --dev-manifests data/manifests/demo_cuts_dev.jsonl.gz \
  --test-manifests data/manifests/demo_cuts_test.jsonl.gz \
  --data-dir data --exp-dir "$exp_dir" --config "$config" --vocab-size 600 --nj "$nj" \
  --train-args "$train_args" --init "$init" \
  --tag-config "$tag_config" --tag-args "$tag_args" --eval-args "$eval_args"
