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
num_dev=600     # 600-clip dev/test: about 200 speech/music and 120 sound clips per probe
num_test=600
exp_dir=exp/contrastive
config=conf/pretrain.yaml
train_args=""
init=none            # none | supervised: tagging pretraining (conf/tagging.yaml) first
tag_config=conf/tagging.yaml
tag_args=""
eval_args=""
# study grid (stages 4–5; see egs/TEMPLATE/study.sh): set --objectives to run it instead of the
# single pretraining run, e.g. --objectives "contrastive captioning" --fractions "0.1 0.4 1.0"
# --inits "scratch supervised"
objectives=""
fractions="1.0"
inits="scratch"
seeds="0"
source_sets="all"
study_dir=exp/study
study_args="train.max_steps=200"   # overrides for every cell's training
study_eval_config=conf/eval_study.yaml
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

force_flag=""
[ "$force" = true ] && force_flag="--force"
prepare="$python -m toolkit.data.prepare.demo --corpus-dir corpus --output-dir data/manifests \
  --num-train $num_train --num-dev $num_dev --num-test $num_test --seed $seed --num-jobs $nj $force_flag"

if [ -n "$objectives" ]; then
  # stages 0–3 as usual, then the grid instead of the single run of stages 4–5
  if [ "$stage" -le 3 ]; then
    ../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage $(( stop_stage < 3 ? stop_stage : 3 )) \
      --force "$force" --prepare-cmd "$prepare" \
      --train-manifests data/manifests/demo_cuts_train.jsonl.gz \
      --dev-manifests data/manifests/demo_cuts_dev.jsonl.gz \
      --test-manifests data/manifests/demo_cuts_test.jsonl.gz \
      --data-dir data --config "$config" --vocab-size 600 --nj "$nj"
  fi
  if [ "$stop_stage" -ge 4 ]; then
    fr=$(echo $fractions | tr ' ' ',')
    missing=false
    for f in $fractions; do
      [ -f "data/aggregate/cuts_train_$($python -c "print(float('$f'))").jsonl.gz" ] || missing=true
    done
    if [ "$missing" = true ]; then  # nested, seeded subsets of the validated training cuts
      mkdir -p data/study_manifests
      ln -sf ../cuts_train.jsonl.gz data/study_manifests/demo_cuts_train.jsonl.gz
      $python -m toolkit.bin.aggregate --manifest-dir data/study_manifests --sources demo \
        --out-dir data/aggregate --fractions "$fr" --seed "$seed"
    fi
    ../TEMPLATE/study.sh --objectives "$objectives" --fractions "$fractions" --inits "$inits" \
      --seeds "$seeds" --source-sets "$source_sets" --subset-dir data/aggregate --data-dir data \
      --study-dir "$study_dir" --tag-config "$tag_config" --tag-args "$tag_args" \
      --train-args "$study_args $train_args" --eval-args "$eval_args" \
      --eval-config "$study_eval_config" --nj "$nj"
  fi
  exit 0
fi

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --prepare-cmd "$prepare" \
  --train-manifests data/manifests/demo_cuts_train.jsonl.gz \
  --dev-manifests data/manifests/demo_cuts_dev.jsonl.gz \
  --test-manifests data/manifests/demo_cuts_test.jsonl.gz \
  --data-dir data --exp-dir "$exp_dir" --config "$config" --vocab-size 600 --nj "$nj" \
  --train-args "$train_args" --init "$init" \
  --tag-config "$tag_config" --tag-args "$tag_args" --eval-args "$eval_args"
