#!/usr/bin/env bash
# CaptionStew pretraining through the generic stages of egs/TEMPLATE/pretrain.sh.
#
# Stage 0 expects Lhotse cut manifests of the source corpora (captions in
# supervision.custom["caption"], see docs/contracts.md) listed per split, e.g. produced by the
# per-corpus prepare modules (toolkit/data/prepare/<corpus>.py) from your local copies:
#   egs/captionstew/run.sh --train-manifests data/manifests/audiocaps_train.jsonl.gz,data/manifests/wavcaps_train.jsonl.gz \
#       --dev-manifests ... --test-manifests ... --stage 1
# Nothing is downloaded: every path is local.
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=5
force=false
nj=8
train_manifests=""
dev_manifests=""
test_manifests=""
exp_dir=exp/contrastive_transformer
config=conf/pretrain.yaml
vocab_size=5000
train_args=""
python=${PYTHON:-python3}
. ../../utils/parse_options.sh

if [ "$stage" -le 0 ]; then
  echo "stage 0: prepare each source corpus with its toolkit.data.prepare module (local paths)," >&2
  echo "then rerun from --stage 1 with --train-manifests/--dev-manifests/--test-manifests." >&2
  exit 1
fi
for v in train_manifests dev_manifests test_manifests; do
  if [ -z "${!v}" ]; then echo "$0: --${v//_/-} is required (comma-separated manifests)" >&2; exit 1; fi
done

../TEMPLATE/pretrain.sh --stage "$stage" --stop-stage "$stop_stage" --force "$force" \
  --train-manifests "$train_manifests" --dev-manifests "$dev_manifests" \
  --test-manifests "$test_manifests" --data-dir data --exp-dir "$exp_dir" --config "$config" \
  --vocab-size "$vocab_size" --nj "$nj" --train-args "$train_args"
