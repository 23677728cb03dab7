#!/usr/bin/env bash
# Recipe for a NEW corpus: make egs/<corpus>/ with
#   run.sh        -> ../TEMPLATE/run.sh   (a symlink; no code to copy)
#   local/data.sh    writes Lhotse manifests <name>_cuts_{train,dev,test}.jsonl.gz into the
#                    folder given as its first argument (usually one `toolkit.bin.prepare` call)
#   conf/            pretrain.yaml (+ tagging.yaml for --init supervised), or a symlink to
#                    ../demo/conf for small corpora
# and run `egs/<corpus>/run.sh --stage 0 --stop-stage 5 --data-args "..."`. Every stage is the
# generic one of egs/TEMPLATE/pretrain.sh (see docs/recipes.md).
#
# Evaluate an existing model on the corpus instead of training one (stages 1-4 are skipped):
#   egs/<corpus>/run.sh --model MODEL_DIR --stage 0 --stop-stage 5 --data-args "..."
# MODEL_DIR: a training run dir or an exported model dir; results go to <exp-dir>/eval (default
# exp/eval_<MODEL_DIR name>/eval), never into MODEL_DIR.
set -eEuo pipefail
cd "$(dirname "$0")"   # the corpus folder (the symlink's folder, not TEMPLATE)
trap 'echo "$0: failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

stage=0
stop_stage=5
force=false
nj=2
data_args=""          # arguments passed to local/data.sh after the output folder
exp_dir=""            # default exp/contrastive (with --model: exp/eval_<model dir name>)
config=conf/pretrain.yaml
vocab_size=1000
train_args=""
eval_args=""
eval_config=""        # extra YAML file(s) merged over the evaluated config in stage 5
init=none
tag_config=conf/tagging.yaml
tag_args=""
model=""              # evaluate this run / exported model dir instead of training (stages 1-4 skipped)
adapt=""              # continue pretraining from this run / exported / released model on this data
eval_tasks=""         # other task configs evaluated in stage 5 (with --adapt: before and after)
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$model" ]; then
  model=${model%/}
  exp_dir=${exp_dir:-exp/eval_$(basename "$model")}
elif [ -n "$adapt" ]; then
  exp_dir=${exp_dir:-exp/adapt_$(basename "${adapt%/}")}
else
  exp_dir=${exp_dir:-exp/contrastive}
fi

[ -x local/data.sh ] || [ -f local/data.sh ] || {
  echo "$0: $(pwd)/local/data.sh is missing: it must write data/manifests/*_cuts_{train,dev,test}.jsonl.gz" >&2
  exit 1
}
manifests() {  # comma-separated manifests of split $1 (empty when stage 0 has not run yet)
  local f found=()
  for f in data/manifests/*_cuts_"$1".jsonl.gz; do
    [ -e "$f" ] && found+=("$f")
  done
  local IFS=,
  echo "${found[*]}"
}
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%H:%M:%S') [stage 0] local/data.sh data/manifests $data_args"
  rc=0
  bash local/data.sh data/manifests $data_args || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "$0: stage 0 failed (status $rc): local/data.sh data/manifests $data_args (see the message above)" >&2
    exit "$rc"
  fi
fi
train=$(manifests train); dev=$(manifests dev); test=$(manifests test)
if [ "$stop_stage" -ge 1 ]; then
  missing=()
  for v in train dev test; do
    [ -n "${!v}" ] || missing+=("$v")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    have=$(cd data/manifests 2>/dev/null && ls -- *_cuts_*.jsonl.gz 2>/dev/null | paste -sd' ' - || true)
    {
      echo "$0: no ${missing[*]} manifest (data/manifests/*_cuts_{$(IFS=,; echo "${missing[*]}")}.jsonl.gz) in $(pwd)"
      if [ -n "$have" ]; then
        echo "  found only: $have"
        echo "  stage 0 (local/data.sh) wrote no ${missing[*]} split: give the data a ${missing[*]} part (e.g. a ${missing[0]}/ folder), or"
        echo "  enough files for one to be carved (see docs/recipes.md), then rerun with --stage 0"
      else
        echo "  run stage 0 first: $0 --stage 0 --data-args \"<your audio folder or listing> ...\""
      fi
    } >&2
    exit 1
  fi
fi
[ "$stage" -le 0 ] && stage=1   # stage 0 is done above

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --train-manifests "$train" --dev-manifests "$dev" --test-manifests "$test" \
  --data-dir data --exp-dir "$exp_dir" --config "$config" --vocab-size "$vocab_size" --nj "$nj" \
  --train-args "$train_args" --init "$init" --tag-config "$tag_config" --tag-args "$tag_args" \
  --eval-args "$eval_args" --eval-config "$eval_config" --model "$model" --python "$python" \
  --adapt "$adapt" --eval-tasks "$eval_tasks"
