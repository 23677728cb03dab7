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
log() { echo "$(date '+%H:%M:%S') [study] $*"; }

mkdir -p "$study_dir/data"
cells=()
for obj in $objectives; do
  cfg=${config_pattern//\{objective\}/$obj}
  [ -f "$cfg" ] || { echo "$0: objective '$obj': config $cfg not found (--config-pattern)" >&2; exit 1; }
  for frac in $fractions; do
    subset="$subset_dir/cuts_train_$(printf '%s' "$frac" | $python -c 'import sys; print(float(sys.stdin.read()))').jsonl.gz"
    [ -f "$subset" ] || { echo "$0: $subset not found (write nested subsets with toolkit.bin.aggregate --fractions)" >&2; exit 1; }
    for set in $source_sets; do
      train=$subset
      if [ "$set" != all ]; then
        train="$study_dir/data/cuts_train_f${frac}_${set//[:,]/_}.jsonl.gz"
        [ -f "$train" ] || $python -m toolkit.data.source_sets --spec "$set" "$subset" "$train"
      fi
      for init in $inits; do
        init_args=""
        case "$init" in scratch) init_flag=none ;; supervised) init_flag=supervised ;;
          *) echo "$0: --inits takes scratch and/or supervised, got '$init'" >&2; exit 1 ;; esac
        if [ "$init" = supervised ] && [ -n "$init_checkpoint" ]; then
          init_flag=none
          init_args="encoder.init_from=$init_checkpoint"
          [ -n "$init_key_map" ] && init_args="$init_args encoder.init_key_map=$init_key_map"
        fi
        for seed in $seeds; do
          cell="$study_dir/${obj}_${init}_f${frac}_${set//[:,]/_}_s${seed}"
          cells+=("$cell")
          log "cell $cell"
          "$here/pretrain.sh" --stage 4 --stop-stage 5 --data-dir "$data_dir" --exp-dir "$cell" \
            --launcher "$launcher" \
            --config "$cfg" --init "$init_flag" --tag-config "$tag_config" \
            --tag-exp-dir "$study_dir/tagging" --tag-args "$tag_args" --nj "$nj" \
            --train-args "data.train=$train seed=$seed tags.objective=$obj tags.fraction=$frac tags.init=$init tags.source_set=$set $init_args $train_args" \
            --eval-args "data.train=$data_dir/cuts_train.jsonl.gz $eval_args" \
            --eval-config "$eval_config" --eval-tasks "$eval_tasks"
        done
      done
    done
  done
done

if [ "$report" = true ]; then
  log "report over ${#cells[@]} cells → $study_dir/report"
  $python -m toolkit.bin.report --runs "${cells[@]}" --out-dir "$study_dir/report"
fi
