#!/usr/bin/env bash
# CaptionStew: aggregate open audio–caption corpora (local copies) and pretrain/evaluate an audio
# encoder through the generic stages of egs/TEMPLATE/pretrain.sh. See README.md here.
#
#   0  prepare every corpus with a local path in $corpora (toolkit.bin.prepare all):
#      section `sources` (caption corpora) and `downstream` (evaluation corpora)
#   1  aggregate the sources (toolkit.bin.aggregate: normalise, dedup, merge clips shared by
#      corpora, drop clips leaking into evaluation sets, nested subsets, optional Shar export,
#      statistics) → data/aggregate/, then validate → data/cuts_{train,dev,test}.jsonl.gz
#   2–5 feature stats, tokenizer, pretraining, frozen-encoder evaluation (egs/TEMPLATE)
#
#   egs/captionstew/run.sh --corpora conf/corpora.yaml --stage 0 --stop-stage 1
#   egs/captionstew/run.sh --subset 0.1 --exp-dir exp/contrastive_f0.1 --stage 4
# Nothing is downloaded: every path is local.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=5
force=false
nj=8
corpora=conf/corpora.yaml
shar=false            # true: stage 1 also writes one Lhotse Shar dir per source (16 kHz mono flac) and
                      # stage 4 trains from them, mixed by --weights (docs/training.md)
weights=""            # per-source weights, e.g. "audiocaps=2,wavcaps=0.5" (default 1 each): with --shar the
                      # mix probabilities, otherwise the repetitions of cuts_train_weighted.jsonl.gz
aggregate_args=""     # extra toolkit.bin.aggregate options, e.g. "--weights audiocaps=2 --shar-dir data/shar"
fractions="0.04,0.1,0.4,1.0"   # nested training subsets written by stage 1
seed=0
data=data             # folder of every data output (manifests, aggregate, cuts, stats, tokenizer)
subset=""             # train on the nested subset of this fraction (e.g. 0.1); empty = all
exp_dir=exp/contrastive
config=conf/pretrain.yaml
vocab_size=5000
train_args=""
launcher=""           # training command instead of python (docs/training.md): e.g.
                      # "torchrun --standalone --nproc-per-node 8" or
                      # "srun --ntasks=$SLURM_NNODES --ntasks-per-node=1 <repo>/utils/slurm_torchrun.sh"
eval_args=""
eval_tasks=""         # downstream task configs evaluated in stage 5, e.g. "conf/tasks/*.yaml"
init=none
tag_config=conf/tagging.yaml
tag_args=""
# study grid instead of one run for stages 4–5 (egs/TEMPLATE/study.sh, docs/study.md), e.g.
#   --objectives "contrastive captioning" --grid-fractions "0.04 0.1 0.4 1.0" --inits "scratch supervised"
#   --source-sets "all all-minus:paraspeechcaps only:audiocaps,wavcaps" --init-checkpoint tagger.pt
objectives=""
grid_fractions="1.0"
inits="scratch"
seeds="0"
source_sets="all"
study_dir=exp/study
config_pattern="conf/paper/{objective}.yaml"
init_checkpoint=""
init_key_map=""
study_args=""
study_eval_config=""
python=${PYTHON:-python3}
. ../../utils/parse_options.sh
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "$(date '+%H:%M:%S') [stage $1] ${*:2}"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  log 0 "prepare the corpora with a local path in $corpora"
  $python -m toolkit.bin.prepare all --corpora "$corpora" --sections sources,downstream \
    --output-dir "$data/manifests" --num-jobs "$nj"
fi

agg=$data/aggregate
if run_stage 1; then
  sources=$($python -m toolkit.bin.prepare names --corpora "$corpora" --section sources \
    --output-dir "$data/manifests")
  [ -n "$sources" ] || { echo "$0: no source corpus prepared (give corpus_dir paths in $corpora)" >&2; exit 1; }
  # leakage: every evaluation manifest (downstream corpora, and the sources' own test splits)
  evals=$(ls "$data"/manifests/*_cuts_test.jsonl.gz "$data"/manifests/*_cuts_fold*.jsonl.gz 2>/dev/null | paste -sd, -)
  if [ "$force" = true ] || [ ! -e "$agg/cuts_train.jsonl.gz" ]; then
    log 1 "aggregate sources: $sources"
    shar_args=(); [ "$shar" = true ] && shar_args=(--shar-dir "$agg/shar" --shar-per-source true)
    [ -n "$weights" ] && shar_args+=(--weights "$weights")
    $python -m toolkit.bin.aggregate --manifest-dir "$data/manifests" --out-dir "$agg" \
      --sources "$sources" --eval-manifests "$evals" --fractions "$fractions" --seed "$seed" \
      "${shar_args[@]}" $aggregate_args
  else
    log 1 "skip aggregation: $agg/cuts_train.jsonl.gz exists (--force true to redo)"
  fi
fi

train=$agg/cuts_train.jsonl.gz
[ -n "$subset" ] && train=$agg/cuts_train_${subset}.jsonl.gz
if [ "$stop_stage" -ge 1 ] && [ ! -e "$train" ] && [ "$stage" -ge 1 ]; then
  echo "$0: $train not found (run stage 1; subsets: $(ls $agg/cuts_train_*.jsonl.gz 2>/dev/null | xargs -n1 basename | paste -sd' ' -))" >&2
  exit 1
fi
data_dir=$data
[ -n "$subset" ] && data_dir=$data/subset_$subset
train_sources=""
if [ "$shar" = true ]; then
  train_sources=$agg/shar/train_sources${subset:+_$subset}.yaml
  if [ "$stop_stage" -ge 4 ] && [ ! -e "$train_sources" ]; then
    echo "$0: $train_sources not found (run stage 1 with --shar true; --force true redoes it)" >&2
    exit 1
  fi
fi
[ "$stage" -le 1 ] && stage=1   # stage 0 and the aggregation are done above

if [ -n "$objectives" ]; then
  if [ "$stage" -le 3 ]; then
    ../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage $(( stop_stage < 3 ? stop_stage : 3 )) \
      --force "$force" --train-manifests "$agg/cuts_train.jsonl.gz" \
      --dev-manifests "$agg/cuts_dev.jsonl.gz" --test-manifests "$agg/cuts_test.jsonl.gz" \
      --data-dir "$data" --config "$config" --vocab-size "$vocab_size" --nj "$nj"
  fi
  if [ "$stop_stage" -ge 4 ]; then
    ../TEMPLATE/study.sh --objectives "$objectives" --fractions "$grid_fractions" \
      --inits "$inits" --seeds "$seeds" --source-sets "$source_sets" --subset-dir "$agg" \
      --data-dir "$data" --study-dir "$study_dir" --config-pattern "$config_pattern" \
      --tag-config "$tag_config" --tag-args "$tag_args" --init-checkpoint "$init_checkpoint" \
      --init-key-map "$init_key_map" --train-args "$study_args $train_args" \
      --eval-args "$eval_args" --eval-config "$study_eval_config" \
      --eval-tasks "$(echo $eval_tasks)" --nj "$nj" --launcher "$launcher"
  fi
  exit 0
fi

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --train-manifests "$train" --dev-manifests "$agg/cuts_dev.jsonl.gz" \
  --test-manifests "$agg/cuts_test.jsonl.gz" --data-dir "$data_dir" --exp-dir "$exp_dir" \
  --config "$config" --vocab-size "$vocab_size" --nj "$nj" --train-args "$train_args" \
  --train-sources "$train_sources" --eval-args "$eval_args" --eval-tasks "$(echo $eval_tasks)" --init "$init" \
  --tag-config "$tag_config" --tag-args "$tag_args" --launcher "$launcher"
