#!/usr/bin/env bash
# The study grid (stages 4–5 per cell) and its report: pretraining objectives × nested data
# fractions × initialisations × caption-source sets × seeds, each cell a run directory
#   $study_dir/<objective>_<init>_f<fraction>_<source set>_s<seed>
# trained and evaluated by egs/TEMPLATE/pretrain.sh (resumable: finished cells are skipped,
# interrupted ones resume), then `toolkit.bin.report` writes $study_dir/report/study.md,
# study.csv, plot_scaling.png and plot_init_gain.png.
#
# Called by a corpus recipe after its stages 0–3, e.g. egs/demo/run.sh --objectives "..." .
# Training manifests: $subset_dir/cuts_train_<fraction>.jsonl.gz (nested subsets written by
# toolkit.bin.aggregate --fractions); a source set other than `all` is applied to that subset
# (toolkit.data.source_sets) into $study_dir/data/. Every cell is evaluated with the same
# probe/evaluation data ($data_dir/cuts_{train,dev,test}.jsonl.gz), whatever it was pretrained on.
#
# The logic is in `toolkit.bin.study` (toolkit-study, docs/study.md); this recipe sequences it:
#   plan    check the grid, print it (cells and their status) and write $study_dir/plan.json
#   run     pretrain.sh --stage 4 --stop-stage 5 <cell arguments> for every cell not done yet
#           (done: model.pt and eval/results.md, and eval_<task>/results.md of every
#           --eval-tasks task, not older than model.pt); output also in $study_dir/logs/<cell>.log
#   report  toolkit.bin.report over the cells of the plan (--report true)
set -euo pipefail

objectives="contrastive captioning"
fractions="1.0"
inits="scratch"        # scratch | supervised (tagging pretraining on the labels first)
seeds="0"
source_sets="all"      # all | only:a,b | all-minus:a,b
subset_dir=data/aggregate
data_dir=data
study_dir=exp/study
config_pattern="conf/pretrain_{objective}.yaml"   # {objective} is replaced
tag_config=conf/tagging.yaml
tag_args=""
init_checkpoint=""     # supervised init from this checkpoint (e.g. an AudioSet tagger) instead of
                       # a tagging run on the recipe's own labels
init_key_map=""        # encoder.init_key_map for init_checkpoint (see docs/init_from.md)
train_args=""
eval_args=""
eval_config=""         # extra YAML file(s) for stage 5 of every cell (e.g. conf/eval_study.yaml)
eval_tasks=""          # downstream task configs evaluated for every cell (pretrain.sh --eval-tasks)
report=true
nj=2
python=${PYTHON:-python3}
launcher=""            # training command of every cell (pretrain.sh --launcher, docs/training.md)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../utils/parse_options.sh"
export PYTHONPATH="$(cd "$here/../.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
study() { $python -m toolkit.bin.study "$@"; }

# --opt=value: values may start with '-' (e.g. --tag-args); lists are space-separated words
study plan --study-dir="$study_dir" --objectives="$objectives" --fractions="$fractions" \
  --inits="$inits" --seeds="$seeds" --source-sets="$source_sets" --subset-dir="$subset_dir" \
  --data-dir="$data_dir" --config-pattern="$config_pattern" --tag-config="$tag_config" \
  --tag-args="$tag_args" --init-checkpoint="$init_checkpoint" --init-key-map="$init_key_map" \
  --train-args="$train_args" --eval-args="$eval_args" --eval-config="$eval_config" \
  --eval-tasks="$eval_tasks" --nj="$nj" --launcher="$launcher"
study run --study-dir="$study_dir" -- "$here/pretrain.sh" --stage 4 --stop-stage 5
if [ "$report" = true ]; then
  study report --study-dir="$study_dir"
fi
