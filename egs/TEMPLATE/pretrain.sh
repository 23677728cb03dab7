#!/usr/bin/env bash
# Generic audio-language pretraining recipe (ESPnet egs2/TEMPLATE style). A corpus recipe
# (egs/<corpus>/run.sh) supplies a data-preparation command and configs, then calls this.
#
# Stages:
#   0  prepare manifests        (the corpus's own command: --prepare-cmd)
#   1  validate + statistics    toolkit.bin.validate → $data_dir/cuts_{train,dev,test}.jsonl.gz
#   2  feature statistics       toolkit.bin.compute_stats → $data_dir/fbank_stats.pt
#   3  tokenizer                toolkit.bin.train_tokenizer → $data_dir/spm.model
#   4  pretrain                 toolkit.bin.train → $exp_dir; with --init supervised it first
#                               writes $data_dir/labels.txt (toolkit.bin.label_vocab), trains the
#                               tagging config into $tag_exp_dir and starts from its encoder
#   5  evaluate                 toolkit.bin.evaluate → $exp_dir/eval/results.md
# Each stage skips work whose outputs exist (pass --force true to redo it); stage 5 also reruns
# when the model is newer than its results. --force true never deletes a run: stage 4 moves an
# existing $exp_dir (and $tag_exp_dir) aside to <dir>.old.<N> and says where.
#
# --model MODEL_DIR evaluates an existing model (a training run dir or an exported model dir)
# instead: stages 1-4 are skipped (the model brings its own statistics and tokenizer) and stage 5
# evaluates MODEL_DIR on the given train/dev/test manifests into $exp_dir/eval (never into
# MODEL_DIR; the run's own evaluators unless --eval-config / --eval-args say otherwise).
#
# --adapt MODEL continues pretraining from MODEL (a training run, an exported model or a released
# Auden/icefall encoder) on this recipe's data: stage 2 is skipped (the model keeps its feature
# statistics), stage 3 too when the model has a tokenizer; stage 4 trains with
# `toolkit.bin.train --init-model MODEL` (the model's frontend/encoder/objective/tokenizer and
# weights; data, optimiser and schedule from --config / --train-args); stage 5 evaluates the
# adapted run and MODEL the same way (eval/ and eval_before/, and per --eval-tasks task
# eval_<task>/ and eval_before_<task>/: forgetting) and writes $exp_dir/before_after.md.
set -eEuo pipefail
trap 'echo "$0: failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

stage=0
stop_stage=5
force=false
prepare_cmd=""          # stage 0: command that writes the manifests named below
train_manifests=""      # comma-separated manifests merged into the training split
dev_manifests=""
test_manifests=""
train_sources=""        # stage 4 trains from this YAML's data.train (Shar dirs / weighted sources,
                        # docs/training.md) instead of the validated $data_dir/cuts_train.jsonl.gz
data_dir=data
exp_dir=exp/pretrain
config=conf/pretrain.yaml  # one or more (space-separated) YAML files, later ones win
vocab_size=1000
nj=2
train_args=""           # extra key=value overrides for stages 2 and 4 (written into the run config)
eval_args=""            # extra key=value overrides for stage 5 (e.g. eval.baselines=[])
eval_config=""          # extra YAML file(s) (space-separated) merged over the run config in stage 5
eval_tasks=""           # downstream task configs (space-separated YAML, e.g. conf/tasks/*.yaml):
                        # each is evaluated into $exp_dir/eval_<name>; skipped when its corpus
                        # manifests are missing
init=none               # none | supervised (tagging pretraining on the labels, then init_from)
tag_config=conf/tagging.yaml   # config file(s) of the supervised (tagging) stage
tag_exp_dir=""          # default: ${exp_dir}_tagging
tag_args=""             # extra key=value overrides for the tagging stage
model=""                # evaluate this run / exported model dir: stages 1-4 skipped, stage 5
                        # writes $exp_dir/eval from the manifests above
adapt=""                # continue pretraining from this run / exported / released model (above)
python=${PYTHON:-python3}
launcher=""             # stage 4 training command instead of $python, e.g. (docs/training.md)
                        #   "torchrun --standalone --nproc-per-node 8"          (one node, 8 GPUs)
                        #   "srun --ntasks=$SLURM_NNODES --ntasks-per-node=1 <repo>/utils/slurm_torchrun.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/utils/parse_options.sh"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # see toolkit/bin/__init__.py

cfg_args=(); for c in $config; do cfg_args+=(-c "$c"); done
tag_cfg_args=(); for c in $tag_config; do tag_cfg_args+=(-c "$c"); done
eval_cfg_args=(); for c in $eval_config; do eval_cfg_args+=(-c "$c"); done
log() { echo "$(date '+%H:%M:%S') [stage $1] ${*:2}"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && stage_clock "$1"; }
# per-stage wall time: run_stage starts each stage's clock; the table is printed at exit
stage_times=(); stage_cur=""; stage_t0=$SECONDS
stage_clock() {  # stage_clock N: stage N runs from now on (ends the previous stage's clock)
  if [ "$1" != "$stage_cur" ]; then
    if [ -n "$stage_cur" ]; then stage_times+=("$stage_cur $((SECONDS - stage_t0))"); fi
    stage_cur=$1; stage_t0=$SECONDS
  fi
}
print_stage_times() {
  stage_clock ""
  if [ ${#stage_times[@]} -gt 0 ]; then
    echo "stage  seconds"
    for st in "${stage_times[@]}"; do printf '%5s  %7s\n' $st; done
  fi
}
trap print_stage_times EXIT
done_or_forced() { [ "$force" = true ] || [ ! -e "$1" ]; }
# move_aside STAGE DIR: rename DIR to the first free DIR.old.<N> (a redone run never deletes an
# earlier one: --exp-dir may point at a finished or released run)
move_aside() {
  local dir=${2%/} dest n=1
  [ -e "$dir" ] || return 0
  while [ -e "$dir.old.$n" ]; do n=$((n + 1)); done
  dest="$dir.old.$n"
  mv -- "$dir" "$dest"
  log "$1" "--force true: moved the earlier run $dir aside to $dest (delete it when not needed)"
}
paths=(data.train="$data_dir/cuts_train.jsonl.gz" data.dev="$data_dir/cuts_dev.jsonl.gz"
       data.test="$data_dir/cuts_test.jsonl.gz" frontend.stats_file="$data_dir/fbank_stats.pt")
# the stage-3 SentencePiece model is used only by configs whose tokenizer is sentencepiece
# (an `hf` tokenizer brings its own vocabulary from a local folder)
if [ -z "$model" ]; then
  tokenizer_name=$($python -m toolkit.bin.config_get tokenizer.name "${cfg_args[@]}")
  [ "$tokenizer_name" = sentencepiece ] && paths+=(tokenizer.model="$data_dir/spm.model")
fi
if [ -n "$model" ]; then
  model=${model%/}
  [ -e "$model" ] || { echo "$0: --model $model: no such run or model directory" >&2; exit 1; }
  case "$(realpath -m "$exp_dir")/" in
    "$(realpath -m "$model")"/*)
      echo "$0: --exp-dir $exp_dir is inside --model $model: results never go into the model; give another --exp-dir" >&2
      exit 1 ;;
  esac
  [ "$init" = none ] || { echo "$0: --init $init trains a model; it does not go with --model" >&2; exit 1; }
fi
adapt_tokenizer=no
if [ -n "$adapt" ]; then
  adapt=${adapt%/}
  [ -e "$adapt" ] || { echo "$0: --adapt $adapt: no such run or model" >&2; exit 1; }
  [ -z "$model" ] || { echo "$0: --adapt trains, --model only evaluates: give one of them" >&2; exit 1; }
  [ "$init" = none ] || { echo "$0: --init $init does not go with --adapt (the model is the init)" >&2; exit 1; }
  adapt_tokenizer=$($python -c 'import sys; from toolkit.runs import open_run
print("yes" if open_run(sys.argv[1]).config.get("tokenizer") else "no")' "$adapt")
  # the model's frontend statistics and (if it has one) tokenizer are kept: no overrides of them
  paths=("${paths[@]:0:3}")
  [ "$adapt_tokenizer" = no ] && [ "${tokenizer_name:-}" = sentencepiece ] && paths+=(tokenizer.model="$data_dir/spm.model")
fi
# yaml_list a,b → ['a', 'b'] (one path: 'a'): a manifest list as a dotted override value
yaml_list() {
  local IFS=, item out=()
  for item in $1; do out+=("'${item//\'/\'\'}'"); done
  if [ ${#out[@]} -eq 1 ]; then echo "${out[0]}"; else local IFS=,; echo "[${out[*]}]"; fi
}

if run_stage 0; then
  [ -n "$prepare_cmd" ] || { echo "stage 0 needs --prepare-cmd" >&2; exit 1; }
  log 0 "prepare manifests: $prepare_cmd"
  eval "$prepare_cmd"
fi

if [ -n "$model" ]; then
  for s in 1 2 3 4; do
    if run_stage "$s"; then
      log "$s" "skip: evaluating --model $model (no validation, statistics, tokenizer or training: the model brings its own)"
    fi
  done
  stage=$(( stage < 5 ? 5 : stage ))
fi

if run_stage 1; then
  if done_or_forced "$data_dir/stats.json"; then
    log 1 "validate manifests and compute corpus statistics"
    $python -m toolkit.bin.validate --out-dir "$data_dir" \
      --split "train=$train_manifests" --split "dev=$dev_manifests" --split "test=$test_manifests"
  else
    log 1 "skip: $data_dir/stats.json exists"
  fi
  log 1 "outputs: $data_dir/cuts_{train,dev,test}.jsonl.gz, $data_dir/stats.json"
fi

if run_stage 2 && [ -n "$adapt" ]; then
  log 2 "skip: --adapt $adapt keeps the model's feature statistics"
elif run_stage 2; then
  if done_or_forced "$data_dir/fbank_stats.pt"; then
    log 2 "global feature mean/std"
    $python -m toolkit.bin.compute_stats "${cfg_args[@]}" --cuts "$data_dir/cuts_train.jsonl.gz" \
      --out "$data_dir/fbank_stats.pt" data.num_workers="$nj" $train_args
  else
    log 2 "skip: $data_dir/fbank_stats.pt exists"
  fi
fi

if run_stage 3 && [ "$adapt_tokenizer" = yes ]; then
  log 3 "skip: --adapt $adapt keeps the model's tokenizer"
elif run_stage 3; then
  if done_or_forced "$data_dir/spm.model"; then
    log 3 "SentencePiece tokenizer (vocab $vocab_size)"
    $python -m toolkit.bin.train_tokenizer --cuts "$data_dir/cuts_train.jsonl.gz" \
      --out "$data_dir/spm" --vocab-size "$vocab_size"
  else
    log 3 "skip: $data_dir/spm.model exists"
  fi
fi

init_args=()
if run_stage 4 && [ "$init" = supervised ]; then
  tag_exp_dir=${tag_exp_dir:-${exp_dir}_tagging}
  if done_or_forced "$data_dir/labels.txt"; then
    log 4 "label vocabulary → $data_dir/labels.txt"
    $python -m toolkit.bin.label_vocab "$data_dir/cuts_train.jsonl.gz" -o "$data_dir/labels.txt"
  fi
  if done_or_forced "$tag_exp_dir/model.pt"; then
    [ "$force" = true ] && move_aside 4 "$tag_exp_dir"
    log 4 "supervised (tagging) pretraining → $tag_exp_dir"
    ${launcher:-$python} -m toolkit.bin.train "${tag_cfg_args[@]}" --exp-dir "$tag_exp_dir" --resume "${paths[@]}" \
      objective.vocab="$data_dir/labels.txt" $tag_args
  else
    log 4 "skip: $tag_exp_dir/model.pt exists"
  fi
  init_args=(encoder.init_from="$tag_exp_dir/model.pt")
elif [ "$init" != none ]; then
  echo "--init must be none or supervised, got '$init'" >&2; exit 1
fi

if run_stage 4; then
  if done_or_forced "$exp_dir/model.pt"; then
    [ "$force" = true ] && move_aside 4 "$exp_dir"
    train_cfg=("${cfg_args[@]}"); train_paths=("${paths[@]}")
    if [ -n "$train_sources" ]; then
      [ -f "$train_sources" ] || { echo "$0: --train-sources $train_sources not found" >&2; exit 1; }
      train_cfg+=(-c "$train_sources"); train_paths=("${paths[@]:1}")  # data.train from the file
    fi
    [ -n "$adapt" ] && train_cfg+=(--init-model "$adapt")
    log 4 "pretrain → $exp_dir (resumes if interrupted)${train_sources:+; data.train from $train_sources}${adapt:+; continuing from $adapt}"
    ${launcher:-$python} -m toolkit.bin.train "${train_cfg[@]}" --exp-dir "$exp_dir" --resume "${train_paths[@]}" \
      "${init_args[@]}" $train_args
  else
    log 4 "skip: $exp_dir/model.pt exists"
  fi
  log 4 "outputs: $exp_dir/{model.pt,config.yaml,checkpoints,tensorboard,train.log}"
fi

# newer_than FILE PATH...: some PATH (a file, or a file directly in a folder) is newer than FILE
newer_than() {
  local ref=$1; shift
  [ -n "$(find "$@" -maxdepth 1 -newer "$ref" -print -quit 2>/dev/null)" ]
}
if run_stage 5 && [ -n "$model" ]; then
  out="$exp_dir/eval"
  for v in train_manifests dev_manifests test_manifests; do
    [ -n "${!v}" ] || { echo "$0: --model evaluation needs --${v//_/-} (run stage 0)" >&2; exit 1; }
  done
  sources=$(echo "$train_manifests,$dev_manifests,$test_manifests" | tr , ' ')
  if [ "$force" = true ] || [ ! -e "$out/results.md" ] || newer_than "$out/results.md" "$model" $sources; then
    log 5 "evaluate --model $model (frozen encoder) on $train_manifests | $dev_manifests | $test_manifests → $out"
    $python -m toolkit.bin.evaluate --exp-dir "$model" --out-dir "$out" "${eval_cfg_args[@]}" \
      data.train="$(yaml_list "$train_manifests")" data.dev="$(yaml_list "$dev_manifests")" \
      data.test="$(yaml_list "$test_manifests")" eval.num_workers="$nj" $eval_args
  else
    log 5 "skip: $out/results.md is newer than the model and the manifests (--force true to redo)"
  fi
  log 5 "results: $out/results.md, results.csv, plot_metrics.png"
elif run_stage 5; then
  if done_or_forced "$exp_dir/eval/results.md" || [ "$exp_dir/model.pt" -nt "$exp_dir/eval/results.md" ]; then
    log 5 "evaluate (frozen encoder) → $exp_dir/eval"
    $python -m toolkit.bin.evaluate --exp-dir "$exp_dir" "${eval_cfg_args[@]}" \
      eval.num_workers="$nj" $eval_args
  else
    log 5 "skip: $exp_dir/eval/results.md is newer than the model (--force true to redo)"
  fi
  for task in $eval_tasks; do
    name=$(basename "$task" .yaml)
    out="$exp_dir/eval_$name"
    if [ "$force" = true ] || [ ! -e "$out/results.md" ] || [ "$exp_dir/model.pt" -nt "$out/results.md" ]; then
      log 5 "downstream task $name ($task) → $out"
      $python -m toolkit.bin.evaluate --exp-dir "$exp_dir" -c "$task" --out-dir "$out" \
        --skip-missing eval.name="$name" eval.num_workers="$nj" $eval_args
    else
      log 5 "skip: $out/results.md is newer than the model"
    fi
  done
  if [ -n "$adapt" ]; then  # the starting model on the same data and tasks, evaluated the same way
    before_args=(--eval-from "$exp_dir" data.train="$data_dir/cuts_train.jsonl.gz"
                 data.dev="$data_dir/cuts_dev.jsonl.gz" data.test="$data_dir/cuts_test.jsonl.gz")
    if done_or_forced "$exp_dir/eval_before/results.md"; then
      log 5 "evaluate the starting model $adapt the same way → $exp_dir/eval_before"
      $python -m toolkit.bin.evaluate --exp-dir "$adapt" --out-dir "$exp_dir/eval_before" "${eval_cfg_args[@]}" \
        "${before_args[@]}" eval.num_workers="$nj" $eval_args
    fi
    for task in $eval_tasks; do
      name=$(basename "$task" .yaml)
      if done_or_forced "$exp_dir/eval_before_$name/results.md"; then
        log 5 "downstream task $name, starting model → $exp_dir/eval_before_$name"
        $python -m toolkit.bin.evaluate --exp-dir "$adapt" -c "$task" --out-dir "$exp_dir/eval_before_$name" \
          --eval-from "$exp_dir" --skip-missing eval.name="$name" eval.num_workers="$nj" $eval_args
      fi
    done
    $python -m toolkit.bin.before_after "$exp_dir"
  fi
  log 5 "results: $exp_dir/eval/results.md, results.csv, plot_metrics.png, plot_loss.png${adapt:+, $exp_dir/before_after.md}"
fi
