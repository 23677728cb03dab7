#!/usr/bin/env bash
# Recipe for a NEW corpus: make egs/<corpus>/ with
#   run.sh        -> ../TEMPLATE/run.sh   (a symlink; no code to copy)
#   local/data.sh    writes Lhotse manifests <name>_cuts_{train,dev,test}.jsonl.gz into the
#                    folder given as its first argument (usually one `toolkit.bin.prepare` call)
#   conf/            pretrain.yaml (+ tagging.yaml for --init supervised), or a symlink to
#                    ../demo/conf for small corpora
# and run `egs/<corpus>/run.sh --stage 0 --stop-stage 5 --data-args "..."`. Every stage is the
# generic one of egs/TEMPLATE/pretrain.sh (see docs/recipes.md).
set -euo pipefail
cd "$(dirname "$0")"   # the corpus folder (the symlink's folder, not TEMPLATE)

stage=0
stop_stage=5
force=false
nj=2
data_args=""          # arguments passed to local/data.sh after the output folder
exp_dir=exp/contrastive
config=conf/pretrain.yaml
vocab_size=1000
train_args=""
eval_args=""
init=none
tag_config=conf/tagging.yaml
tag_args=""
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

[ -x local/data.sh ] || [ -f local/data.sh ] || {
  echo "$0: $(pwd)/local/data.sh is missing: it must write data/manifests/*_cuts_{train,dev,test}.jsonl.gz" >&2
  exit 1
}
manifests() {  # comma-separated manifests of split $1 (empty when stage 0 has not run yet)
  ls data/manifests/*_cuts_"$1".jsonl.gz 2>/dev/null | paste -sd, -
}
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%H:%M:%S') [stage 0] local/data.sh data/manifests $data_args"
  bash local/data.sh data/manifests $data_args
fi
train=$(manifests train); dev=$(manifests dev); test=$(manifests test)
if [ "$stop_stage" -ge 1 ]; then
  for v in train dev test; do
    [ -n "${!v}" ] || { echo "$0: no data/manifests/*_cuts_$v.jsonl.gz (run stage 0)" >&2; exit 1; }
  done
fi
[ "$stage" -le 0 ] && stage=1   # stage 0 is done above

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --train-manifests "$train" --dev-manifests "$dev" --test-manifests "$test" \
  --data-dir data --exp-dir "$exp_dir" --config "$config" --vocab-size "$vocab_size" --nj "$nj" \
  --train-args "$train_args" --init "$init" --tag-config "$tag_config" --tag-args "$tag_args" \
  --eval-args "$eval_args"
